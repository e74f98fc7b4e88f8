//! The unit tests' one way to wait for a state they caused (a pool closing a connection, a
//! server freeing a slot): poll until it holds, bounded, never sleep a fixed time. The
//! twin of `support::eventually` in the cli's integration tests.

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
