//! Identifiers and secrets: random ids, session tokens, their hashes, opaque public ids.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// 128 random bits as 32 lowercase hex characters. Hex is a subset of Google's base32hex event-id
/// alphabet, so the same id can later be used as a client-chosen provider event id.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// True for ids made by [`new_id`] or [`connection_id`]; anything else names nothing of ours.
pub fn is_id(candidate: &str) -> bool {
    candidate.len() == 32
        && candidate
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A session token: 32 random bytes, URL-safe. Only its SHA-256 is ever stored.
pub fn new_secret_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(input: &str) -> String {
    hex(&Sha256::digest(input.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A connection's id is derived from what makes it unique, so connecting the same calendar twice
/// lands on the same item instead of a duplicate.
pub fn connection_id(user_id: &str, provider: &str, provider_calendar_id: &str) -> String {
    let digest = Sha256::digest(format!("{user_id}\n{provider}\n{provider_calendar_id}"));
    hex(&digest[..16])
}

/// The public id of an event: its connection and its key, encoded so that any provider event id
/// (Graph's carry `=` and `/`-like characters) is safe in a URL path.
pub fn encode_event_id(connection_id: &str, event_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{connection_id}:{event_key}"))
}

/// Inverse of [`encode_event_id`]; `None` for anything we did not produce.
pub fn decode_event_id(public_id: &str) -> Option<(String, String)> {
    if public_id.is_empty() || public_id.len() > 2048 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(public_id).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (conn, key) = text.split_once(':')?;
    (is_id(conn) && !key.is_empty() && key.len() <= 1024).then(|| (conn.to_owned(), key.to_owned()))
}

/// Opaque pagination cursors: base64url of a small JSON value.
pub fn encode_cursor(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

pub fn decode_cursor(cursor: &str) -> Option<serde_json::Value> {
    if cursor.len() > 4096 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_reject_foreign_input() {
        let conn = new_id();
        let id = encode_event_id(&conn, "AAMkAGI2=/x:y");
        assert_eq!(
            decode_event_id(&id),
            Some((conn.clone(), "AAMkAGI2=/x:y".into()))
        );
        assert_eq!(decode_event_id("not-an-id"), None);
        assert_eq!(decode_event_id(""), None);
        assert_eq!(decode_event_id(&URL_SAFE_NO_PAD.encode("short:key")), None);
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (new_secret_token(), new_secret_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
