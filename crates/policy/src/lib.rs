//! Fault-tolerance mechanisms as sans-IO state machines.
//!
//! Every mechanism here is a plain struct that takes the current time (`now: Instant`, read
//! by the caller from a [`Clock`]) and the outcomes of calls, and answers
//! decisions: may this call go, how long to wait, which endpoint to eject. None of them
//! sleeps, spawns, opens a socket or reads the wall clock, so each can be tested to the
//! nanosecond with a [`ManualClock`] and driven from any runtime.
//!
//! Behind the `tower` feature, each mechanism that wraps a call is also a `tower::Layer`
//! that does only the async glue (sleeping for a backoff, waiting in a queue):
//! `breaker::CircuitBreakerLayer`, `retry::RetryLayer`, `hedge::HedgeLayer`,
//! `bulkhead::BulkheadLayer`, `ratelimit::RateLimitLayer` and
//! `concurrency::AdaptiveConcurrencyLayer`. The load-balancing estimators ([`ewma`]) and
//! the [`outlier`] detector have no layer: they choose among endpoints, which is the
//! proxy's job.
#![warn(missing_docs)]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod clock;
pub mod concurrency;
pub mod ewma;
pub mod hedge;
pub mod latency;
pub mod outlier;
pub mod ratelimit;
pub mod retry;
pub mod timeout;

pub use clock::{Clock, ManualClock, SystemClock};
