//! Holding an admission permit until the response body ends.
//!
//! A streaming response still occupies the upstream (and its connection) until its last
//! byte, so a bulkhead slot given back when the head arrives would let more requests in
//! than the upstream is serving. The permit rides in the body and is released the moment
//! the body ends, fails, or is dropped (the client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::AdmissionPermit;
use crate::body::{BoxError, ProxyBody};

/// `response` with `permit` held until its body ends. A permit that holds nothing (no
/// limits on the route or cluster) is dropped at once and the body left as it is.
pub fn hold_until_body_end(
    response: Response<ProxyBody>,
    permit: AdmissionPermit,
) -> Response<ProxyBody> {
    if !permit.holds_slots() || response.body().is_end_stream() {
        return response;
    }
    response.map(|body| {
        PermitBody {
            inner: body,
            permit: Some(permit),
        }
        .boxed()
    })
}

/// A body that drops its permit when it ends.
#[derive(Debug)]
struct PermitBody {
    inner: ProxyBody,
    permit: Option<AdmissionPermit>,
}

impl Body for PermitBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.permit = None,
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.permit = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
