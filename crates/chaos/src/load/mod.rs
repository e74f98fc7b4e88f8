//! An open-loop HTTP load generator, the client of `blastwall load` and of the benchmarks.
//! (A closed-loop max-throughput mode is there too, [`Schedule::Closed`], reported as such.)
//!
//! Requests are sent at a fixed rate on a timetable set before the run ([`Timetable`]), over
//! a bounded number of keep-alive connections ([`run`]), and each one's latency is
//! counted from when it was due ([`Summary`]), so a server that stalls is charged for every
//! request the stall delayed (no coordinated omission). A run is always bounded by a
//! duration, a request count or both. Its [`Report`] has counts by status and error kind,
//! percentiles, a per-class breakdown when traffic is split by a header value, and a
//! timeline to plot. Thresholds ([`Threshold`]) judge a run's figures for CI.
//!
//! A run sends a mix of request kinds with optional headers on shares of them
//! ([`Plan::kinds`], [`Plan::shared_headers`]), and may keep every request's outcome
//! ([`run_sampled`], [`Sample`]) so that `blastwall verify` can judge requests by window,
//! route and class afterwards, watch them live, and stop the run early.
//!
//! It lives next to the mock service because the two are the halves of an experiment: one
//! misbehaves on command, the other measures what a caller sees meanwhile.

mod closed;
mod connection;
mod engine;
mod exchange;
mod plan;
mod report;
mod request;
mod sample;
mod schedule;
mod stats;
mod threshold;
mod tls;

pub use connection::Protocol;
pub use engine::{run, run_sampled, run_with_progress};
pub use plan::{Plan, PlanError, connections_for};
pub use report::Report;
pub use request::{Kind, MAX_SHARED_HEADERS, SharedHeader};
pub use sample::{FallbackKind, Sample, SampleLog, Source};
pub use schedule::{Schedule, Timetable};
pub use stats::{ErrorKind, Outcome, Percentiles, Progress, Summary, TallySummary, TimelinePoint};
pub use threshold::{Comparison, Figure, Threshold, ThresholdError, Verdict, verdict_table};
pub use tls::{TlsError, TlsSettings, Trust};
