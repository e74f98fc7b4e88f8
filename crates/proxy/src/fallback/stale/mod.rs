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
//! stands for the answers with the same head that follow it within a refresh interval
//! ([`entry::REFRESH`], one second or less; [`Entry::stands_for`]). Such an answer's head is
//! not copied nor its rules read again, and its body is only compared with the entry's as
//! it streams ([`capture::compare`]): the entry takes it only if it differs. What that
//! costs is the key, one look-up and the comparison; a stale answer is still the last body
//! the upstream sent, with the head (bar `Date`) of the first answer of its interval.
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

/// What the cache does with an answer that may be kept.
#[derive(Debug)]
pub(crate) enum Keep {
    /// Nothing: it may not be kept.
    Not,
    /// Copy its body into a new entry.
    Copy(Pending),
    /// Its URL's younger entry stands for it: only compare its body with the entry's.
    Compare(Standing),
}

/// An answer the kept entry of its URL stands for ([`Entry::stands_for`]): its body is
/// compared with the entry's as it streams, and only if it differs does it become the
/// entry's body (so a stale answer is always the last body the upstream sent).
#[derive(Debug)]
pub(crate) struct Standing {
    key: entry::KeyBytes,
    /// The entry's body.
    kept: Bytes,
    /// When the entry was received: which entry it is (another may replace it meanwhile).
    received: Instant,
    /// When this answer was received.
    now: Instant,
    max_body: u64,
    max_bytes: u64,
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

    /// What to do with a response to `request`: compare it with the entry kept for its URL
    /// if that stands for it ([`Entry::stands_for`]); else copy it into the entry it would
    /// make, if it may be kept and its declared length fits.
    pub(crate) fn keep(
        &self,
        request: &request::Parts,
        provenance: Provenance,
        response: &http::response::Parts,
        now: Instant,
    ) -> Keep {
        if !matches!(request.method, Method::GET | Method::HEAD) {
            return Keep::Not;
        }
        let Some(key) = CacheKey::bytes(request, provenance) else {
            return Keep::Not;
        };
        if let Some((kept, received)) = self.kept_for(&key, request, response, now) {
            return Keep::Compare(Standing {
                key,
                kept,
                received,
                now,
                max_body: self.max_body.load(Ordering::Relaxed),
                max_bytes: self.max_bytes.load(Ordering::Relaxed),
            });
        }
        self.pending(&key, request, response, now)
            .map_or(Keep::Not, Keep::Copy)
    }

    /// The entry a response to `request` would make under `key`, if it may be kept and its
    /// declared length fits.
    fn pending(
        &self,
        key: &[u8],
        request: &request::Parts,
        response: &http::response::Parts,
        now: Instant,
    ) -> Option<Pending> {
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
            key: CacheKey::from(key),
            entry,
            max_body,
            max_bytes: self.max_bytes.load(Ordering::Relaxed),
        })
    }

    /// The body and receipt time of the entry kept under `key`, if it stands for `response`
    /// (see [`Entry::stands_for`]): one look-up under the lock, the entry's place in the use
    /// order left as it is (it is stored again within an interval while its URL is asked
    /// for).
    fn kept_for(
        &self,
        key: &[u8],
        request: &request::Parts,
        response: &http::response::Parts,
        now: Instant,
    ) -> Option<(Bytes, Instant)> {
        let state = self.lock();
        let max_age = state.config.max_age;
        let entry = state.store.peek(key)?;
        entry
            .stands_for(request, response, now, max_age)
            .then(|| (entry.body.clone(), entry.received))
    }

    /// The answer `standing` was compared for ended whole with another body than its
    /// entry's: the entry takes that body, as received at the answer's time (its head is
    /// the same, bar its `Date`). Nothing when the entry was replaced or dropped meanwhile.
    pub(crate) fn refresh(&self, standing: &Standing, body: Bytes) {
        let key = &standing.key[..];
        let mut state = self.lock();
        let entry = match state.store.peek(key) {
            Some(entry) if entry.received == standing.received => Entry {
                body,
                received: standing.now,
                ..entry.clone()
            },
            _ => return,
        };
        let key = CacheKey::from(key);
        let size = entry.size(&key);
        let limits = state.limits();
        self.store(&mut state, key, entry, size, limits);
    }

    /// Keeps `pending` with the body it streamed, whole.
    pub(crate) fn commit(&self, pending: Pending, body: Bytes) {
        let Pending { key, mut entry, .. } = pending;
        entry.body = body;
        let size = entry.size(&key);
        let mut state = self.lock();
        let limits = state.limits();
        self.store(&mut state, key, entry, size, limits);
    }

    fn store(&self, state: &mut State, key: CacheKey, entry: Entry, size: u64, limits: Limits) {
        match state.store.insert(key, entry, size, limits) {
            Inserted::Stored { evicted } => {
                self.stats.stale_stored.increment();
                self.publish(state, evicted);
            }
            Inserted::TooLarge => {
                self.stats.stale_too_large.increment();
                self.publish(state, 0);
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
        let body = match self.keep(request, provenance, &parts, now) {
            Keep::Not => body,
            Keep::Copy(pending) => capture::wrap(body, self.clone(), pending),
            Keep::Compare(standing) => capture::compare(body, self.clone(), standing),
        };
        Response::from_parts(parts, body)
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
