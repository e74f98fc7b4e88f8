//! The integration suites' one way to wait for a state a test caused (a health check
//! noticing a dead endpoint, a process exiting): poll until it holds, bounded, never sleep a
//! fixed time.
//!
//! Standalone (the standard library and tokio only), so that the suites of other crates
//! use this very file: the chaos crate's mock tests include it by path, since the rest of
//! this `support` module runs the `blastwall` binary, which only this crate's tests can
//! name. The proxy's unit tests have its twin, `crate::eventually`, on the runtime's clock.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

/// Polls `check` until it returns true, for at most `within`; for waiting on a state change
/// the test caused (a health check noticing a dead endpoint), never for a fixed time.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// [`eventually`] for a check that blocks or runs outside the runtime (a child process's
/// status): polls it on this thread until it returns true, for at most `within`.
pub fn eventually_blocking(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
