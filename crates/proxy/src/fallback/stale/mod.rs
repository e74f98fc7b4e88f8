//! The stale-if-error cache: the last good response of each URL, served when the upstream
//! fails (RFC 5861 `stale-if-error`, with RFC 9111's rules for what a shared cache may keep).
//!
//! It is not an HTTP cache in front of the upstream: it never answers while the upstream
//! does, fresh or not. It only remembers, and when the route's fallback is taken it answers
//! with a response that is still within its window: fresh (by `s-maxage`, `max-age` or
//! `Expires`), or stale by no more than the response's own `stale-if-error=N`, or else the
//! route's `max_age`. Its key is everything the upstream's answer may depend on (see
//! [`CacheKey`]), so that no client can have an answer kept that others then get. What is kept, and why, is in [`entry`]; the bounds (entries and bytes,
//! least recently used first) in [`store`]; how a body is copied while it streams to the
//! client, never buffered ahead of it, in [`capture`].
//!
//! While the upstream answers, the cache costs its route as little as it can: a URL's entry
//! is replaced at most once per refresh interval ([`entry::REFRESH`], one second or less;
//! [`Entry::stands_for`]). An answer that its URL's younger entry stands for is passed on
//! untouched, its head not copied, its body not wrapped; what that costs is the key and one
//! look-up. A stale answer is then at most one interval older than the last good one.
//!
//! NOTE: one short lock guards the map; it is taken once per answer that may be kept (to
//! look its entry up), once per kept response (at its end) and once per fallback look-up,
//! never across an `.await`.

mod cache_control;
mod capture;
mod entry;
#[cfg(test)]
mod refresh_tests;
mod store;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, request};

use self::entry::{CacheKey, Entry};
use self::store::{Inserted, Limits, Store};
use super::Provenance;
use crate::body;
use crate::body::ProxyBody;
use crate::config::fallback::StaleIfErrorConfig;
use crate::counters::FallbackStats;

/// A route's stale-if-error cache.
#[derive(Debug)]
pub(crate) struct StaleCache {
    state: Mutex<State>,
    /// Bytes copied so far by bodies still streaming, bounded by `max_bytes` on their own.
    capturing: AtomicU64,
    /// The config's `max_body` and `max_bytes`, read per response without the lock.
    max_body: AtomicU64,
    max_bytes: AtomicU64,
    stats: Arc<FallbackStats>,
}

#[derive(Debug)]
struct State {
    store: Store<CacheKey, Entry>,
    config: StaleIfErrorConfig,
}

impl State {
    fn limits(&self) -> Limits {
        Limits {
            entries: self.config.max_entries.get(),
            bytes: self.config.max_bytes,
        }
    }
}

/// A response being kept: its entry, waiting for its body.
#[derive(Debug)]
pub(crate) struct Pending {
    key: CacheKey,
    entry: Entry,
    max_body: u64,
    max_bytes: u64,
}

impl StaleCache {
    /// An empty cache with these limits, counting into `stats`.
    pub(crate) fn new(config: StaleIfErrorConfig, stats: Arc<FallbackStats>) -> Self {
        Self {
            state: Mutex::new(State {
                store: Store::new(),
                config,
            }),
            capturing: AtomicU64::new(0),
            max_body: AtomicU64::new(config.max_body),
            max_bytes: AtomicU64::new(config.max_bytes),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes new limits (after a reload), evicting what no longer fits.
    pub(crate) fn reconfigure(&self, config: StaleIfErrorConfig) {
        let mut state = self.lock();
        state.config = config;
        self.max_body.store(config.max_body, Ordering::Relaxed);
        self.max_bytes.store(config.max_bytes, Ordering::Relaxed);
        let limits = state.limits();
        let evicted = state.store.trim(limits);
        self.publish(&state, evicted);
    }

    fn publish(&self, state: &State, evicted: usize) {
        self.stats.stale_evicted.add(evicted as u64);
        self.stats.cache_entries.set(state.store.len() as u64);
        self.stats.cache_bytes.set(state.store.bytes());
    }

    /// The entry a response to `request` would make, if it may be kept, its declared length
    /// fits, and the entry kept for its URL does not stand for it ([`Entry::stands_for`]).
    pub(crate) fn pending(
        &self,
        request: &request::Parts,
        provenance: Provenance,
        response: &http::response::Parts,
        now: Instant,
    ) -> Option<Pending> {
        if !matches!(request.method, Method::GET | Method::HEAD) {
            return None;
        }
        let key = CacheKey::bytes(request, provenance)?;
        if self.kept_for(&key, request, response, now) {
            return None;
        }
        let entry = Entry::storable(request, response, now)?;
        let max_body = self.max_body.load(Ordering::Relaxed);
        let declared = response
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > max_body) {
            self.stats.stale_too_large.increment();
            return None;
        }
        Some(Pending {
            key: CacheKey::from(&key[..]),
            entry,
            max_body,
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
        })
    }

    /// Whether the entry kept under `key` stands for `response` (see [`Entry::stands_for`]):
    /// one look-up under the lock, the entry's place in the use order left as it is (it is
    /// stored again within an interval while its URL is asked for).
    fn kept_for(
        &self,
        key: &[u8],
        request: &request::Parts,
        response: &http::response::Parts,
        now: Instant,
    ) -> bool {
        let state = self.lock();
        let max_age = state.config.max_age;
        state
            .store
            .peek(key)
            .is_some_and(|entry| entry.stands_for(request, response, now, max_age))
    }

    /// Keeps `pending` with the body it streamed, whole.
    pub(crate) fn commit(&self, pending: Pending, body: Bytes) {
        let Pending { key, mut entry, .. } = pending;
        entry.body = body;
        let size = entry.size(&key);
        let mut state = self.lock();
        let limits = state.limits();
        match state.store.insert(key, entry, size, limits) {
            Inserted::Stored { evicted } => {
                self.stats.stale_stored.increment();
                self.publish(&state, evicted);
            }
            Inserted::TooLarge => {
                self.stats.stale_too_large.increment();
                self.publish(&state, 0);
            }
        }
    }

    /// The kept response for `request`, if one may be served at `now`, with its `Age`.
    pub(crate) fn lookup(
        &self,
        request: &request::Parts,
        provenance: Provenance,
        now: Instant,
    ) -> Option<Response<ProxyBody>> {
        let found = CacheKey::bytes(request, provenance).and_then(|key| {
            let key = &key[..];
            let mut state = self.lock();
            let max_age = state.config.max_age;
            let entry = state.store.get(key)?;
            if !entry.matches(request) {
                return None;
            }
            if !entry.servable(now, max_age) {
                // Past its window for good: free the memory now.
                state.store.remove(key);
                self.publish(&state, 0);
                return None;
            }
            Some(response_of(entry, now))
        });
        match found {
            Some(_) => self.stats.stale_hits.increment(),
            None => self.stats.stale_misses.increment(),
        }
        found
    }

    /// Reserves `bytes` of the copy budget; false when the copies in flight would pass it.
    fn reserve(&self, bytes: u64, max_bytes: u64) -> bool {
        let reserved = self.capturing.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if reserved > max_bytes {
            self.release(bytes);
            return false;
        }
        true
    }

    fn release(&self, bytes: u64) {
        self.capturing.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// `response` as the client gets it, its body copied into the cache as it streams if it
    /// may be kept.
    pub(crate) fn capture(
        self: &Arc<Self>,
        request: &request::Parts,
        provenance: Provenance,
        response: Response<ProxyBody>,
        now: Instant,
    ) -> Response<ProxyBody> {
        let (parts, body) = response.into_parts();
        let Some(pending) = self.pending(request, provenance, &parts, now) else {
            return Response::from_parts(parts, body);
        };
        Response::from_parts(parts, capture::wrap(body, self.clone(), pending))
    }
}

fn response_of(entry: &Entry, now: Instant) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(entry.body.clone()));
    *response.status_mut() = entry.status;
    let headers = response.headers_mut();
    headers.clone_from(&entry.headers);
    headers.insert(header::AGE, HeaderValue::from(entry.age(now).as_secs()));
    response
}
