//! What each request of a run is: its kind (method, target, body), drawn from a weighted
//! mix, and the optional headers it carries, each on its own share of the requests.
//!
//! The two are drawn differently on purpose. Kinds follow a smooth weighted round robin
//! ([`ClassMix`]): deterministic and exact over every prefix, so a run of 100 requests at
//! weights 3:1 sends exactly 75 and 25, and counts per route compare between runs. Optional
//! headers are drawn at random, each independently, from a seeded RNG: a deterministic
//! sequence for them would lock step with the kinds' (a 50% header on an alternating
//! 50/50 mix would land on one kind only) and a verdict per route and class would measure
//! the pattern, not the proxy. Seeded, the same plan draws the same headers every run.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::schedule::ClassMix;

/// One kind of request of the mix.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Its method.
    pub method: Method,
    /// Its request target (path and query).
    pub target: Uri,
    /// Its body (empty for none).
    pub body: Bytes,
    /// Its weight in the mix, above 0.
    pub weight: f64,
}

impl Kind {
    /// A kind of weight 1 without a body.
    pub fn new(method: Method, target: Uri) -> Self {
        Self {
            method,
            target,
            body: Bytes::new(),
            weight: 1.0,
        }
    }
}

/// A header added to a share of the requests, independently of the kind and of the other
/// optional headers.
#[derive(Debug, Clone)]
pub struct SharedHeader {
    /// Its name.
    pub name: HeaderName,
    /// Its value.
    pub value: HeaderValue,
    /// The share of requests that carry it, 0 to 1 (clamped).
    pub share: f64,
}

/// The most optional headers a plan may have: one bit each in [`super::Sample::headers`].
pub const MAX_SHARED_HEADERS: usize = 32;

/// Draws each request's kind and optional headers.
#[derive(Debug, Clone)]
pub(super) struct Draw {
    kinds: ClassMix,
    shares: Vec<f64>,
    rng: SmallRng,
}

impl Draw {
    /// A draw over kinds of these weights and headers of these shares, from `seed`.
    pub(super) fn new(weights: Vec<f64>, shares: Vec<f64>, seed: u64) -> Self {
        Self {
            kinds: ClassMix::new(weights),
            shares: shares.into_iter().take(MAX_SHARED_HEADERS).collect(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next request's kind (its index in the plan).
    pub(super) fn kind(&mut self) -> usize {
        self.kinds.next_class()
    }

    /// The next request's optional headers: bit `i` set when header `i` is sent.
    pub(super) fn headers(&mut self) -> u32 {
        let mut bits = 0;
        for (index, share) in self.shares.iter().enumerate() {
            // `random::<f64>()` is in [0, 1): a share of 1 always sends, 0 never.
            if self.rng.random::<f64>() < *share {
                bits |= 1 << index;
            }
        }
        bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_drawn_exactly_by_weight_over_each_cycle() {
        let mut draw = Draw::new(vec![3.0, 1.0, 2.0], vec![], 7);
        let mut counts = [0u32; 3];
        for _ in 0..600 {
            counts[draw.kind()] += 1;
        }
        assert_eq!(counts, [300, 100, 200]);
    }

    #[test]
    fn one_kind_is_always_kind_zero() {
        let mut draw = Draw::new(vec![1.0], vec![], 7);
        assert!((0..100).all(|_| draw.kind() == 0));
    }

    #[test]
    fn each_header_is_sent_on_its_share_within_tolerance() {
        let mut draw = Draw::new(vec![1.0], vec![0.2, 0.5, 0.9], 42);
        let draws = 20_000;
        let mut counts = [0u32; 3];
        for _ in 0..draws {
            let bits = draw.headers();
            assert_eq!(bits >> 3, 0, "only the three headers' bits are ever set");
            for (index, count) in counts.iter_mut().enumerate() {
                *count += (bits >> index) & 1;
            }
        }
        for (count, share) in counts.iter().zip([0.2, 0.5, 0.9]) {
            let seen = f64::from(*count) / f64::from(draws);
            assert!((seen - share).abs() < 0.02, "{seen} against {share}");
        }
    }

    #[test]
    fn a_share_of_one_always_sends_and_of_zero_never() {
        let mut draw = Draw::new(vec![1.0], vec![1.0, 0.0], 1);
        assert!((0..1000).all(|_| draw.headers() == 0b01));
    }

    #[test]
    fn headers_are_independent_of_an_alternating_kind_mix() {
        let mut draw = Draw::new(vec![1.0, 1.0], vec![0.5], 3);
        let mut with_header = [0u32; 2];
        for _ in 0..10_000 {
            let kind = draw.kind();
            with_header[kind] += draw.headers() & 1;
        }
        for count in with_header {
            let share = f64::from(count) / 5_000.0;
            assert!(
                (share - 0.5).abs() < 0.03,
                "kind share with header: {share}"
            );
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_headers() {
        let mut first = Draw::new(vec![1.0], vec![0.3, 0.6], 9);
        let mut second = Draw::new(vec![1.0], vec![0.3, 0.6], 9);
        let a: Vec<_> = (0..100).map(|_| first.headers()).collect();
        let b: Vec<_> = (0..100).map(|_| second.headers()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn headers_past_the_thirty_second_are_never_drawn() {
        let mut draw = Draw::new(vec![1.0], vec![1.0; 40], 1);
        assert_eq!(draw.headers(), u32::MAX);
    }
}
