//! Who may change things: a bearer token compared in constant time.
//!
//! Reads are open (the listener is loopback by default, and the config it shows is
//! redacted); every mutating call needs `Authorization: Bearer <token>` when a token is
//! configured. Without a token, mutations are allowed only on a loopback listener, which
//! config validation already insists on; the check is repeated here so a listener can never
//! be opened up by accident.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::config::admin::AdminToken;

/// Why a mutating call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this call needs an Authorization: Bearer <token> header")]
    Missing,
    /// A token that is not the configured one.
    #[error("the bearer token is not the admin token")]
    Wrong,
    /// Off loopback without a configured token (config validation prevents this).
    #[error("the admin listener is not on loopback and has no token: mutations are disabled")]
    NoToken,
}

/// Whether a mutating call with `headers` may proceed.
pub(crate) fn authorize(
    headers: &HeaderMap,
    token: Option<&AdminToken>,
    loopback: bool,
) -> Result<(), AuthError> {
    let Some(token) = token else {
        return if loopback {
            Ok(())
        } else {
            Err(AuthError::NoToken)
        };
    };
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .ok_or(AuthError::Missing)?;
    if constant_time_eq(given.trim_ascii(), token.as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

/// Compares without an early exit, so the time taken says nothing about where the first
/// difference is (only whether the lengths differ).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let difference = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("a header value"),
        );
        headers
    }

    #[test]
    fn the_right_bearer_token_is_accepted() {
        let token = AdminToken::new("s3cret".into());
        assert_eq!(
            authorize(&headers("Bearer s3cret"), Some(&token), false),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_or_missing_token_is_refused() {
        let token = AdminToken::new("s3cret".into());
        assert_eq!(
            authorize(&headers("Bearer s3cre"), Some(&token), true),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            authorize(&headers("Bearer s3cret!"), Some(&token), true),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            authorize(&headers("Basic s3cret"), Some(&token), true),
            Err(AuthError::Missing)
        );
        assert_eq!(
            authorize(&HeaderMap::new(), Some(&token), true),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn without_a_token_only_loopback_may_mutate() {
        assert_eq!(authorize(&HeaderMap::new(), None, true), Ok(()));
        assert_eq!(
            authorize(&HeaderMap::new(), None, false),
            Err(AuthError::NoToken)
        );
    }

    #[test]
    fn equal_bytes_compare_equal_and_others_do_not() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
