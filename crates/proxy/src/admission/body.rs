//! Holding an admission permit until the response body ends.
//!
//! A streaming response still occupies the upstream (and its connection) until its last
//! byte, so a bulkhead slot given back when the head arrives would let more requests in
//! than the upstream is serving. The permit rides in the body and is released the moment
//! the body ends, fails, or is dropped (the client went away).

use http::Response;
use http_body_util::BodyExt;
use hyper::body::Body;

use super::AdmissionPermit;
use crate::body::{BoxError, End, Guard, Guarded, ProxyBody};

/// `response` with `permit` held until its body ends. A permit that holds nothing (no
/// limits on the route or cluster) is dropped at once and the body left as it is.
pub(crate) fn hold_until_body_end(
    response: Response<ProxyBody>,
    permit: AdmissionPermit,
) -> Response<ProxyBody> {
    if !permit.holds_slots() || response.body().is_end_stream() {
        return response;
    }
    response.map(|body| Guarded::new(body, permit).boxed())
}

impl Guard<ProxyBody> for AdmissionPermit {
    /// However the body ended, the slots go back as the permit is dropped.
    #[inline]
    fn ended(&mut self, _end: End<'_, BoxError>) {}
}
