//! The `Cache-Control` directives the stale-if-error cache obeys (RFC 9111 §5.2, RFC 5861).
//!
//! Parsed once per cacheable response, and only the directives that decide whether a
//! response may be stored and for how long it may be served; unknown extensions are
//! ignored, as RFC 9111 §5.2.3 asks.

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// Delta-seconds past this are taken as this (RFC 9111 §1.2.2: 2^31).
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The directives of one message's `Cache-Control` fields that the cache reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    /// `no-store`: never stored.
    pub no_store: bool,
    /// `private`: not for a shared cache.
    pub private: bool,
    /// `no-cache` (with or without field names): must be revalidated, so never served stale.
    pub no_cache: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `public`: may be stored even for a request with `Authorization`.
    pub public: bool,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, seconds (overrides `max-age` in a shared cache; forbids serving stale).
    pub s_maxage: Option<u64>,
    /// `stale-if-error`, seconds: how long after becoming stale it may be served on error.
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// The directives of every `Cache-Control` field line in `headers`. For a repeated
    /// directive the first occurrence counts (RFC 9111 §4.2.1).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for directive in split_directives(text) {
                directives.apply(directive);
            }
        }
        directives
    }

    fn apply(&mut self, directive: &str) {
        let (name, argument) = match directive.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = |argument: Option<&str>| {
            argument.map(|text| {
                // An invalid value makes the response stale at once (RFC 9111 §4.2.1 and
                // §5.2.2.1): a value that cannot be read grants no time.
                text.parse::<u64>().map_or(0, |n| n.min(MAX_DELTA_SECONDS))
            })
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" => self.no_store = true,
            "private" => self.private = true,
            "no-cache" => self.no_cache = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "public" => self.public = true,
            "max-age" if self.max_age.is_none() => self.max_age = seconds(argument).or(Some(0)),
            "s-maxage" if self.s_maxage.is_none() => {
                self.s_maxage = seconds(argument).or(Some(0));
            }
            "stale-if-error" if self.stale_if_error.is_none() => {
                // Here an unreadable value grants nothing rather than zero: the route's own
                // window then applies, as if the directive were absent.
                self.stale_if_error = argument
                    .and_then(|text| text.parse::<u64>().ok())
                    .map(|n| n.min(MAX_DELTA_SECONDS));
            }
            _ => {}
        }
    }
}

/// The directives of one field value, split on commas outside quoted strings.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut quoted = false;
            let mut escaped = false;
            let mut end = rest.len();
            for (index, byte) in rest.bytes().enumerate() {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' if quoted => escaped = true,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => {
                        end = index;
                        break;
                    }
                    _ => {}
                }
            }
            let directive = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or_default();
            if !directive.is_empty() {
                return Some(directive);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn parse(values: &[&str]) -> CacheControl {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        CacheControl::of(&headers)
    }

    #[test]
    fn directives_are_read_case_insensitively_across_field_lines() {
        let parsed = parse(&["Max-Age=60, PUBLIC", "stale-if-error=\"300\""]);
        assert_eq!(parsed.max_age, Some(60));
        assert!(parsed.public);
        assert_eq!(parsed.stale_if_error, Some(300));
        assert!(!parsed.no_store);
    }

    #[test]
    fn commas_inside_quotes_do_not_split_directives() {
        let parsed = parse(&["no-cache=\"set-cookie, x-a\", max-age=5"]);
        assert!(parsed.no_cache);
        assert_eq!(parsed.max_age, Some(5));
    }

    #[test]
    fn the_first_of_repeated_directives_counts_and_bad_numbers_mean_stale() {
        let parsed = parse(&["max-age=10, max-age=99", "s-maxage=soon"]);
        assert_eq!(parsed.max_age, Some(10));
        assert_eq!(parsed.s_maxage, Some(0));
        assert_eq!(parse(&["stale-if-error=x"]).stale_if_error, None);
        assert_eq!(
            parse(&["max-age=99999999999999"]).max_age,
            Some(MAX_DELTA_SECONDS)
        );
    }

    #[test]
    fn revalidation_and_privacy_directives_are_recognised() {
        let parsed = parse(&["private, proxy-revalidate, no-store"]);
        assert!(parsed.private && parsed.must_revalidate && parsed.no_store);
    }
}
