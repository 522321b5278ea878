//! The page the OAuth callback sends the browser to in the dev stack (`AppRedirectUrl`), standing
//! in for the web app: it says how the connection went, in words, from the query alone.

use std::collections::HashMap;

/// Where the local gateway serves it.
pub const PATH: &str = "/connected";

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            other => other.to_string(),
        })
        .collect()
}

/// What an error code of the callback means to the person who was connecting.
fn explain(code: &str) -> &'static str {
    match code {
        "access_denied" => "You declined access at the provider. Nothing was connected.",
        "browser_mismatch" => {
            "This sign-in was started in another browser. Start again from the app, in this browser."
        }
        "state_used" => "This link was already used. Start again from the app.",
        "state_expired" => "The link expired (15 minutes). Start again from the app.",
        "state_unknown" | "state_invalid" | "state_missing" => {
            "This link is not one the app issued. Start again from the app."
        }
        "invalid_grant" => "The provider did not accept the sign-in. Start again from the app.",
        "provider_unavailable" | "provider_error" => {
            "The provider could not be reached or failed. Try again in a moment."
        }
        "provider_not_configured" => "This provider is not configured on this server.",
        _ => "The connection failed.",
    }
}

/// The page for the callback's query (`status=connected&provider=…&calendars=…`, or
/// `status=error&error=…`).
pub fn render(query: &HashMap<String, String>) -> String {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let (title, message) = match get("status") {
        "connected" => (
            "Connected".to_owned(),
            format!(
                "Your {} account is connected: {} calendar(s). They sync in the background.",
                escape(get("provider")),
                escape(get("calendars"))
            ),
        ),
        "error" => (
            "Not connected".to_owned(),
            format!(
                "{} <small>({})</small>",
                explain(get("error")),
                escape(get("error"))
            ),
        ),
        _ => (
            "calsync".to_owned(),
            "Nothing to show: this page is where a connection ends.".to_owned(),
        ),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - calsync</title></head>\
         <body><h1>{title}</h1><p>{message}</p><p>You can close this window.</p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_page_says_what_happened_and_escapes_what_it_repeats() {
        let ok = render(&query(&[
            ("status", "connected"),
            ("provider", "google"),
            ("calendars", "3"),
        ]));
        assert!(
            ok.contains("<h1>Connected</h1>")
                && ok.contains("google account")
                && ok.contains("3 calendar")
        );
        let refused = render(&query(&[
            ("status", "error"),
            ("error", "browser_mismatch"),
        ]));
        assert!(refused.contains("Not connected") && refused.contains("another browser"));
        let hostile = render(&query(&[
            ("status", "connected"),
            ("provider", "<script>alert(1)</script>"),
        ]));
        assert!(!hostile.contains("<script>") && hostile.contains("&lt;script&gt;"));
    }
}
