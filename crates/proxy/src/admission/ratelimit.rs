//! A route's rate limit: one GCRA limiter from the policy crate for the whole route, or one
//! per client key in a map whose size has a hard cap.
//!
//! # Why the map cannot grow without bound, and why forgetting costs nothing
//!
//! Keys are chosen by clients (a header value, an address), so the map holds at most
//! `max_keys` of them. A GCRA limiter last admitting at `t` has its theoretical arrival
//! time at most `burst × T` ahead of `t`; from `t + burst × T` on it is exactly a fresh
//! limiter. Such idle keys are swept out when the map is full, which changes no answer.
//! If the map is full of keys that are all still active, new keys share one overflow
//! limiter until a sweep frees room (the next sweep is not tried before the oldest entry
//! can have gone idle, so a flood of new keys costs one lookup each, not a scan).
//!
//! Keys are stored as a 64-bit keyed hash (random per process), so a long header value
//! costs no memory and no client can aim for a collision.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use blastwall_policy::ratelimit::{RateLimited, RateLimiter, ValidRateLimitConfig};

use crate::config::admission::{RateLimitConfig, RateLimitKey};
use crate::counters::AdmissionStats;

/// A route's rate limit.
#[derive(Debug)]
pub(crate) struct RouteRateLimit {
    config: RateLimitConfig,
    gcra: ValidRateLimitConfig,
    /// The route's one limiter (`key` unset), or the overflow limiter of a full map.
    shared: RateLimiter,
    keys: Mutex<Keys>,
    hasher: RandomState,
    /// `burst × T`: a key unseen for this long is as good as new.
    idle_after: Duration,
}

#[derive(Debug, Default)]
struct Keys {
    map: HashMap<u64, Entry>,
    /// No entry can be idle before this.
    next_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    limiter: RateLimiter,
    last_seen: Instant,
}

impl RouteRateLimit {
    /// The limit for `config`, whose GCRA config the policy checked at load.
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        let gcra = config.limit.clone();
        let shared = RateLimiter::from_valid(&gcra);
        let idle_after = shared.emission_interval().saturating_mul(config.burst);
        Self {
            config,
            gcra,
            shared,
            keys: Mutex::default(),
            hasher: RandomState::new(),
            idle_after,
        }
    }

    /// The config it was built from.
    pub(crate) fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Admits one request with these `headers` from `client` at `now`, or says when the
    /// next would be admitted.
    pub(crate) fn check(
        &self,
        headers: &http::HeaderMap,
        client: IpAddr,
        now: Instant,
        stats: &AdmissionStats,
    ) -> Result<(), RateLimited> {
        let key = match &self.config.key {
            RateLimitKey::Route => return self.shared.check(now),
            RateLimitKey::ClientIp => self.hasher.hash_one((0u8, client)),
            RateLimitKey::Header(name) => match headers.get(name) {
                Some(value) => self.hasher.hash_one((1u8, value.as_bytes())),
                None => self.hasher.hash_one((0u8, client)),
            },
        };
        self.check_key(key, now, stats)
    }

    fn check_key(&self, key: u64, now: Instant, stats: &AdmissionStats) -> Result<(), RateLimited> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = keys.map.get_mut(&key) {
            entry.last_seen = now;
            return entry.limiter.check(now);
        }
        if keys.map.len() >= self.config.max_keys {
            self.sweep(&mut keys, now);
        }
        let result = if keys.map.len() < self.config.max_keys {
            let limiter = RateLimiter::from_valid(&self.gcra);
            let result = limiter.check(now);
            keys.map.insert(
                key,
                Entry {
                    limiter,
                    last_seen: now,
                },
            );
            result
        } else {
            self.shared.check(now)
        };
        stats.rate_limit_keys.set(keys.map.len() as u64);
        result
    }

    /// Forgets keys idle long enough to have their whole burst back (no answer changes).
    fn sweep(&self, keys: &mut Keys, now: Instant) {
        if keys.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        let idle_after = self.idle_after;
        keys.map
            .retain(|_, entry| now.saturating_duration_since(entry.last_seen) < idle_after);
        keys.next_sweep = keys
            .map
            .values()
            .map(|entry| entry.last_seen + idle_after)
            .min();
    }

    /// Client keys tracked now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}
