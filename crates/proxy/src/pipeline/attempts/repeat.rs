//! What a request says about repeating it: whether it may be sent again (its method, an
//! `Idempotency-Key`), and how long an overloaded answer asks to wait (`Retry-After`).

use std::time::{Duration, SystemTime};

use blastwall_policy::retry::Idempotency;
use http::request::Parts;
use http::{HeaderMap, Method, header};

const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");

/// Whether repeating the request is harmless: the methods RFC 9110 §9.2.2 calls idempotent,
/// or any request carrying an `Idempotency-Key` (the server then deduplicates).
pub(crate) fn idempotency(parts: &Parts) -> Idempotency {
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || parts.headers.contains_key(IDEMPOTENCY_KEY);
    if idempotent {
        Idempotency::Idempotent
    } else {
        Idempotency::NonIdempotent
    }
}

/// The delay a `Retry-After` asks for: delta-seconds, or an HTTP date (a date in the past
/// asks for no delay). `None` when absent or unreadable.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request};

    use super::*;

    fn parts(method: Method) -> Parts {
        Request::builder()
            .method(method)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn idempotent_methods_or_an_idempotency_key_make_a_request_repeatable() {
        assert_eq!(idempotency(&parts(Method::GET)), Idempotency::Idempotent);
        assert_eq!(idempotency(&parts(Method::PUT)), Idempotency::Idempotent);
        assert_eq!(
            idempotency(&parts(Method::POST)),
            Idempotency::NonIdempotent
        );
        let mut keyed = parts(Method::POST);
        keyed
            .headers
            .insert("idempotency-key", HeaderValue::from_static("abc"));
        assert_eq!(idempotency(&keyed), Idempotency::Idempotent);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(10));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(10));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&earlier).unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
