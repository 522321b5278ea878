//! Binds an OAuth flow to the browser that opened its start link (docs/decisions.md 40). The
//! start route sets a cookie holding a random binding secret and stores only its SHA-256; the
//! callback requires the cookie. A provider consent URL forwarded to someone else therefore
//! completes nowhere: their browser has no cookie.

use super::ApiRequest;
use crate::ids;

/// Long enough for a consent screen; the state itself expires after this too.
pub const COOKIE_MAX_AGE_SECONDS: i64 = 15 * 60;

/// One cookie per flow, so two flows in one browser do not overwrite each other.
fn cookie_name(state: &str) -> String {
    format!("calsync_oauth_{}", &ids::sha256_hex(state)[..16])
}

/// A fresh binding secret and the `Set-Cookie` value that gives it to the browser: HttpOnly (no
/// script reads it), Secure, SameSite=Lax (sent on the provider's top-level redirect back to
/// us, never on cross-site subrequests), and only to the OAuth routes.
pub fn issue(state: &str) -> (String, String) {
    let binding = ids::new_secret_token();
    let cookie = format!(
        "{}={binding}; Path=/oauth/; Max-Age={COOKIE_MAX_AGE_SECONDS}; HttpOnly; Secure; SameSite=Lax",
        cookie_name(state)
    );
    (binding, cookie)
}

/// The `Set-Cookie` value that removes the flow's cookie once the callback has used it.
pub fn clear(state: &str) -> String {
    format!(
        "{}=; Path=/oauth/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
        cookie_name(state)
    )
}

/// The binding secret the browser sent for this flow, if any. API Gateway joins the request's
/// cookies into one `cookie` header.
pub fn read<'r>(req: &'r ApiRequest, state: &str) -> Option<&'r str> {
    let name = cookie_name(state);
    req.header("cookie")?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty() && value.len() <= 64)
}

/// Whether `binding` is the secret whose hash the start route stored.
pub fn matches(binding: Option<&str>, stored_hash: Option<&str>) -> bool {
    // Hashes are compared, so timing reveals at most a prefix of a hash, never of the secret.
    matches!((binding, stored_hash), (Some(b), Some(h)) if ids::sha256_hex(b) == h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn the_callback_finds_only_its_own_flows_cookie() {
        let (binding, set_cookie) = issue("state-a");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Secure"));
        assert!(set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/oauth/"));
        let pair = set_cookie.split(';').next().unwrap();
        let (_, other) = issue("state-b");
        let other_pair = other.split(';').next().unwrap();
        let req = ApiRequest::new(Method::GET, "/oauth/google/callback")
            .with_header("cookie", &format!("theme=dark; {other_pair}; {pair}"));
        assert_eq!(read(&req, "state-a"), Some(binding.as_str()));
        assert_ne!(read(&req, "state-b"), Some(binding.as_str()));
        assert_eq!(read(&req, "state-c"), None);
        let hash = ids::sha256_hex(&binding);
        assert!(matches(Some(&binding), Some(&hash)));
        assert!(!matches(read(&req, "state-b"), Some(&hash)));
        assert!(!matches(None, Some(&hash)));
        assert!(!matches(Some(&binding), None));
        assert!(clear("state-a").starts_with(&format!("{}=;", cookie_name("state-a"))));
    }
}
