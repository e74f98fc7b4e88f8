//! The Blastwall data plane: a reverse proxy that applies the `blastwall-policy`
//! mechanisms to every request. See `ARCHITECTURE.md` for the stages a request passes.
#![warn(missing_docs)]

pub mod config;
