//! The unit tests' one way to wait for a state they caused (a pool closing a connection, a
//! server freeing a slot): poll until it holds, bounded, never sleep a fixed time. The
//! twin of `support::eventually` in the cli's integration tests; [`eventually_blocking`]
//! waits the same way outside a runtime (for a thread the test started).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Polls `check` until it returns true, for at most `within` (of the runtime's clock, so
/// under paused time the wait is virtual too).
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// [`eventually`] for a test without a runtime: polls `check` on this thread until it
/// returns true, for at most `within`.
pub(crate) fn eventually_blocking(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
