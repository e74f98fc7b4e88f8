//! Break and prove: load generation, fault injection, the mock service, and the
//! fault-tolerance spec that `blastwall verify` runs. See `ARCHITECTURE.md`.
#![warn(missing_docs)]

pub mod experiment;
pub mod load;
pub mod mock;
pub mod report;
pub mod spec;
pub mod toxiproxy;
