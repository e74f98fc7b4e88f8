//! The proxy's one source of randomness: a small, fast generator per thread.
//!
//! Balancers (two random choices), retry backoff jitter, health-check jitter, trace and
//! span ids and access-log sampling all draw from it, some on every request. One
//! generator per thread needs no lock and is never contended, and `SmallRng` costs a few
//! instructions a draw. Each thread's is seeded differently at first use; nothing here
//! needs to be unpredictable to an attacker, only spread.
//!
//! Code that must be reproducible takes the generator as a parameter instead (the
//! balancers' `*_with` functions, the policy crate): randomness is the caller's. A unit test
//! that runs code drawing from here can still make it repeat itself with [`seed`], which
//! reseeds only the calling thread's generator.

use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};

use rand::SeedableRng;
use rand::rngs::SmallRng;

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::seed_from_u64(
        RandomState::new().hash_one(std::thread::current().id()),
    ));
}

/// Runs `f` with this thread's random number generator.
///
/// NOTE: `f` must not call `with_rng` again (the generator is borrowed while it runs).
pub(crate) fn with_rng<T>(f: impl FnOnce(&mut SmallRng) -> T) -> T {
    RNG.with(|rng| f(&mut rng.borrow_mut()))
}

/// Reseeds this thread's generator: what it draws next is the same for the same `seed`.
#[cfg(test)]
pub(crate) fn seed(seed: u64) {
    RNG.with(|rng| *rng.borrow_mut() = SmallRng::seed_from_u64(seed));
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    fn draws() -> Vec<u64> {
        (0..8).map(|_| with_rng(|rng| rng.random())).collect()
    }

    #[test]
    fn one_seed_draws_the_same_numbers_every_time() {
        seed(7);
        let first = draws();
        seed(7);
        assert_eq!(draws(), first);
        seed(8);
        assert_ne!(draws(), first);
    }
}
