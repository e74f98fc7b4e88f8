//! Which non-idempotent requests reached the mock twice. A proxy that retries a `POST`
//! without an `Idempotency-Key` may deliver it twice (the first attempt was processed, only
//! its answer was lost), and only the upstream can see that: the request id the proxy
//! stamped on it arrives a second time. The mock keeps a bounded window of the ids it saw
//! recently, per path, so memory stays flat under any load; a duplicate that arrives after
//! its first copy left the window is not counted, which at benchmark rates means seconds.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use http::{HeaderMap, Method, header::HeaderName};

/// The request id proxies stamp on each request (and keep across retries).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A request carrying this may be delivered twice safely: it is not tracked.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// How many recent ids the mock remembers.
pub const WINDOW: usize = 65_536;

/// The recent ids of non-idempotent requests, keyed by path and id, oldest first out.
#[derive(Debug)]
pub(super) struct Recent {
    window: usize,
    seen: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl Recent {
    /// A window of `window` ids (at least one).
    pub(super) fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            seen: Mutex::default(),
        }
    }

    /// Records a request; true when it is a non-idempotent request (`POST` or `PATCH`
    /// without an `Idempotency-Key`) whose id was already seen on the same path.
    /// Requests without an id, or with one that is not text, are not tracked.
    pub(super) fn is_duplicate(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        if !(method == Method::POST || method == Method::PATCH)
            || headers.contains_key(IDEMPOTENCY_KEY)
        {
            return false;
        }
        let Some(id) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let key = (path.to_owned(), id.to_owned());
        // A poisoned lock still holds a consistent window: each update is a set insert
        // then a queue push, and a panic between them only leaves an id uncounted.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.set.contains(&key) {
            return true;
        }
        if seen.order.len() >= self.window
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.set.remove(&oldest);
        }
        seen.set.insert(key.clone());
        seen.order.push_back(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(id: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(REQUEST_ID, HeaderValue::from_str(id).expect("ascii id"));
        map
    }

    #[test]
    fn a_post_seen_twice_with_the_same_id_is_a_duplicate() {
        let recent = Recent::new(16);
        assert!(!recent.is_duplicate(&Method::POST, "/post", &headers("a")));
        assert!(recent.is_duplicate(&Method::POST, "/post", &headers("a")));
        assert!(!recent.is_duplicate(&Method::POST, "/post", &headers("b")));
    }

    #[test]
    fn the_same_id_on_another_path_is_not_a_duplicate() {
        let recent = Recent::new(16);
        assert!(!recent.is_duplicate(&Method::POST, "/a", &headers("x")));
        assert!(!recent.is_duplicate(&Method::POST, "/b", &headers("x")));
    }

    #[test]
    fn idempotent_methods_and_keyed_posts_are_not_tracked() {
        let recent = Recent::new(16);
        for _ in 0..2 {
            assert!(!recent.is_duplicate(&Method::GET, "/", &headers("g")));
            assert!(!recent.is_duplicate(&Method::PUT, "/", &headers("p")));
        }
        let mut keyed = headers("k");
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("key-1"));
        assert!(!recent.is_duplicate(&Method::POST, "/", &keyed));
        assert!(!recent.is_duplicate(&Method::POST, "/", &keyed));
    }

    #[test]
    fn a_post_without_an_id_is_not_tracked() {
        let recent = Recent::new(16);
        let none = HeaderMap::new();
        assert!(!recent.is_duplicate(&Method::POST, "/", &none));
        assert!(!recent.is_duplicate(&Method::POST, "/", &none));
    }

    #[test]
    fn the_window_forgets_the_oldest_id_first() {
        let recent = Recent::new(2);
        assert!(!recent.is_duplicate(&Method::POST, "/", &headers("1")));
        assert!(!recent.is_duplicate(&Method::POST, "/", &headers("2")));
        assert!(!recent.is_duplicate(&Method::POST, "/", &headers("3")));
        assert!(
            !recent.is_duplicate(&Method::POST, "/", &headers("1")),
            "1 left the window"
        );
        assert!(recent.is_duplicate(&Method::POST, "/", &headers("3")));
    }
}
