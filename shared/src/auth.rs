//! Passwords (Argon2id) and bearer sessions.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::error::ApiError;

/// Hashes with Argon2id and the crate's defaults (19 MiB, 2 passes), OWASP's recommendation.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time of one verification, so an unknown e-mail answers as slowly as a wrong
/// password and accounts cannot be discovered by timing.
pub fn burn_verification_time(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("calsync-timing-equaliser").unwrap_or_default());
    let _ = verify_password(password, hash);
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let header =
        header.ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be \"Bearer <token>\"")
        })?;
    // Our tokens are 43 URL-safe characters; anything else cannot be a session.
    if token.len() > 128
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::unauthorized("session is invalid or expired"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn bearer_header_is_parsed_strictly() {
        assert_eq!(bearer_token(Some("Bearer abc_DEF-1")).unwrap(), "abc_DEF-1");
        assert_eq!(bearer_token(None).unwrap_err().status, 401);
        assert_eq!(bearer_token(Some("Basic abc")).unwrap_err().status, 401);
        assert_eq!(bearer_token(Some("Bearer a b")).unwrap_err().status, 401);
    }
}
