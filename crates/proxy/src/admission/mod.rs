//! Whether a request may start at all: rate limits, priority shedding, bulkheads.
//!
//! STUB from the skeleton commit: admits everything. The admission helper builds it.

use std::time::Duration;

use crate::config::RouteConfig;
use crate::forward::{Downstream, ProxyError};

/// A route's admission state.
#[derive(Debug, Default)]
pub struct RouteAdmission {}

impl RouteAdmission {
    /// The state for `config`, keeping what is still valid of `previous`.
    pub fn new(_config: &RouteConfig, _previous: Option<&RouteAdmission>) -> Self {
        Self {}
    }

    /// Admits a request or refuses it; the permit is held until the response is complete.
    pub async fn admit(
        &self,
        _parts: &http::request::Parts,
        _downstream: Downstream,
    ) -> Result<AdmissionPermit, Refusal> {
        Ok(AdmissionPermit {})
    }
}

/// Held while an admitted request is in progress (body included).
#[derive(Debug)]
pub struct AdmissionPermit {}

/// Why a request was not admitted.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// [`ProxyError::Shed`] or [`ProxyError::RateLimited`].
    pub error: ProxyError,
    /// When the client may try again, sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// One line for the client and the log.
    pub reason: String,
}
