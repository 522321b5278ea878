//! Who may try how often (docs/decisions.md 41): sign-ins per account and per source address,
//! registrations per source address. Counters live in DynamoDB (`Store::count_attempt`), so every
//! container of every function sees the same counts.

use std::net::IpAddr;

use super::ApiRequest;
use crate::error::{ApiError, ApiResult};
use crate::store::{Admission, Limit};

/// Sign-in attempts per e-mail address (known or not, so a 429 says nothing about existence).
/// Successful sign-ins are refunded; a lock lifts when its 15-minute window ends.
pub const LOGIN_PER_ACCOUNT: Limit = Limit {
    kind: "login-account",
    max: 10,
    window_seconds: 15 * 60,
};

/// Sign-in attempts per known device (decisions 56): its own limit, so a lock that others'
/// guesses put on the account never holds back the owner's devices.
pub const LOGIN_PER_DEVICE: Limit = Limit {
    kind: "login-device",
    max: 10,
    window_seconds: 15 * 60,
};

/// Password confirmations (password change, erasure) per signed-in user: a stolen session
/// cannot guess the password, and nobody without a session can hold the owner back.
pub const PASSWORD_CONFIRM_PER_USER: Limit = Limit {
    kind: "password-confirm",
    max: 10,
    window_seconds: 15 * 60,
};

/// The limit a sign-in counts against, and its subject: a known device's own (by the hash of
/// its token), else the account's (by the hash of the e-mail address).
pub fn login_limit<'a>(
    known_device: Option<&'a str>,
    account: &'a str,
) -> (&'static Limit, &'a str) {
    match known_device {
        Some(device_hash) => (&LOGIN_PER_DEVICE, device_hash),
        None => (&LOGIN_PER_ACCOUNT, account),
    }
}

/// Sign-in attempts per source address, across accounts (password spraying); refunded on
/// success, so an office behind one address is not throttled by its own sign-ins.
pub const LOGIN_PER_SOURCE: Limit = Limit {
    kind: "login-source",
    max: 50,
    window_seconds: 15 * 60,
};

/// Registrations per source address.
pub const REGISTER_PER_SOURCE: Limit = Limit {
    kind: "register-source",
    max: 10,
    window_seconds: 60 * 60,
};

/// The counter subject of a request's source: the address itself for IPv4, its /64 for IPv6
/// (one subscriber's usual allocation, so rotating within it does not escape). `None` without
/// a source address (direct invocations, tests), which no limit then applies to.
pub fn source_subject(req: &ApiRequest) -> Option<String> {
    match req.source_ip? {
        IpAddr::V4(ip) => Some(ip.to_string()),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => Some(v4.to_string()),
            None => {
                let s = ip.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

/// A refused attempt as the client sees it: 429 with Retry-After.
pub fn refusal(admission: Admission, what: &str) -> ApiResult<()> {
    match admission {
        Admission::Allowed => Ok(()),
        Admission::Refused {
            retry_after_seconds,
            ..
        } => Err(ApiError::too_many_requests(
            "too_many_attempts",
            format!("too many {what}; retry in {retry_after_seconds} s"),
            u64::try_from(retry_after_seconds).unwrap_or(1),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn sources_are_addresses_and_ipv6_slash_64s() {
        let req = |ip: &str| {
            ApiRequest::new(Method::POST, "/v1/auth/login").with_source_ip(ip.parse().unwrap())
        };
        assert_eq!(
            source_subject(&req("203.0.113.7")).as_deref(),
            Some("203.0.113.7")
        );
        assert_eq!(
            source_subject(&req("::ffff:203.0.113.7")).as_deref(),
            Some("203.0.113.7")
        );
        let a = source_subject(&req("2001:db8:1:2:aaaa::1"));
        assert_eq!(a.as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(a, source_subject(&req("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(a, source_subject(&req("2001:db8:1:3::1")));
        assert_eq!(
            source_subject(&ApiRequest::new(Method::POST, "/v1/auth/login")),
            None
        );
    }
}
