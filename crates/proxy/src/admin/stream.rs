//! `GET /admin/stream`: the dashboard's live feed as server-sent events.
//!
//! Once a second (and at once on connecting) one `state` event carries everything the
//! dashboard draws: clusters with their endpoints, routes with their counters, recent
//! events. Whole states rather than deltas, so a browser that missed one (or reconnected)
//! is right again at the next; at a second apart, a few kilobytes each, that is cheap.
//!
//! A stream never ends by itself, so streams are bounded twice: at most [`cap`] open at once
//! (each holds a permit), and each ends after [`LIFETIME`] (a browser's `EventSource`
//! reconnects by itself), so a client that stops reading holds its permit that long at most.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Interval, MissedTickBehavior};

use super::reply::AdminBody;
use super::views;
use crate::reload::Runtime;

/// Time between two states.
const PERIOD: Duration = Duration::from_secs(1);

/// How long one stream lasts before it ends (and the browser reconnects).
pub(super) const LIFETIME: Duration = Duration::from_secs(300);

/// Streams open at once for an admin listener of `max_connections`: a quarter, at least one.
pub(super) fn cap(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// The streaming response, holding `permit` until it ends.
pub(super) fn response(runtime: Arc<Runtime>, permit: OwnedSemaphorePermit) -> Response<AdminBody> {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let ends = tokio::time::Instant::now() + LIFETIME;
    let stream = StateStream {
        runtime,
        interval,
        ends,
        _permit: permit,
    };
    let mut response = Response::new(stream.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Everything the dashboard draws, now.
pub(super) fn state(runtime: &Runtime) -> serde_json::Value {
    json!({
        "clusters": views::clusters(runtime)["clusters"],
        "routes": views::routes(runtime),
        "events": views::events(runtime)["events"],
        "faults": super::faults::view(runtime),
        "config_hash": runtime.snapshot().config.source.hash,
    })
}

/// One SSE event per tick, until [`LIFETIME`] has passed.
struct StateStream {
    runtime: Arc<Runtime>,
    interval: Interval,
    ends: tokio::time::Instant,
    _permit: OwnedSemaphorePermit,
}

impl Body for StateStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let tick = ready!(self.interval.poll_tick(cx));
        if tick >= self.ends {
            return Poll::Ready(None);
        }
        let event = format!("event: state\ndata: {}\n\n", state(&self.runtime));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}
