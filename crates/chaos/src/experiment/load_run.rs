//! PLACEHOLDER until the load mix lands: the load of one experiment, watched while it runs.

use std::net::SocketAddr;

use crate::load::Sample;
use crate::spec::Load;

pub(super) struct LoadRun;

pub(super) struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub recent_p99_ms: Option<f64>,
}

impl LoadRun {
    pub(super) fn start(_load: &Load, _addr: SocketAddr, _host: &str) -> Self {
        Self
    }
    pub(super) fn samples(&self) -> Vec<Sample> {
        Vec::new()
    }
    pub(super) fn counts(&self) -> Counts {
        Counts {
            requests: 0,
            errors: 0,
            recent_p99_ms: None,
        }
    }
    pub(super) fn stop(&self) {}
    pub(super) async fn finish(self) -> Vec<Sample> {
        Vec::new()
    }
}
