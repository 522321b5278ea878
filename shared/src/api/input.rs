//! Reading and validating what clients send. Every failure names the field and the problem.

use http::StatusCode;
use serde::{de::DeserializeOwned, Deserialize, Deserializer};

use super::ApiRequest;
use crate::error::{ApiError, ApiResult};

/// Parses the JSON body into `T`, naming the path of the first offending field.
pub fn json_body<T: DeserializeOwned>(req: &ApiRequest) -> ApiResult<T> {
    if let Some(content_type) = req.header("content-type") {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {essence:?} is not application/json"),
            ));
        }
    }
    match req.body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::bad_request(
                "missing_body",
                "a JSON request body is required",
            ))
        }
        // Every body this API takes is an object; serde would read a struct of optional fields
        // from `[]` too, and a PATCH with `[]` changed nothing but still answered 200 and audited.
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the body must be a JSON object",
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(&req.body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() {
            "invalid_json"
        } else {
            "invalid_field"
        };
        let message = if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        ApiError::bad_request(code, message)
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    Ok(value)
}

/// A query parameter parsed as `T`, or `default` when absent, within `range`.
pub fn query_number(
    req: &ApiRequest,
    name: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> ApiResult<usize> {
    let Some(raw) = req.query.get(name) else {
        return Ok(default);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!(
                    "{name}={raw:?} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

pub fn query_bool(req: &ApiRequest, name: &str) -> ApiResult<Option<bool>> {
    match req.query.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(
            "invalid_parameter",
            format!("{name}={other:?} must be true or false"),
        )),
    }
}

/// A normalised e-mail address (trimmed, lower-cased), or a 400 naming `field`.
pub fn email(raw: &str, field: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            format!("{field} {raw:?} is not an e-mail address"),
        ))
    }
}

/// Trimmed text of 1..=max characters.
pub fn required_text(raw: &str, field: &str, max: usize) -> ApiResult<String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    optional_text(text, field, max)
}

/// Trimmed text of at most `max` characters as sent (empty allowed).
pub fn optional_text(raw: &str, field: &str, max: usize) -> ApiResult<String> {
    let text = raw.trim();
    if raw.chars().count() > max {
        return Err(ApiError::bad_request(
            "field_too_long",
            format!("{field} may be at most {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A `#RRGGBB` colour, lower-cased.
pub fn color(raw: &str) -> ApiResult<String> {
    let valid =
        raw.len() == 7 && raw.starts_with('#') && raw[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(
            "invalid_color",
            format!("color {raw:?} is not #RRGGBB"),
        ))
    }
}

/// For PATCH fields where `null` clears and absence keeps: absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(v))`. Use with `#[serde(default)]`.
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
