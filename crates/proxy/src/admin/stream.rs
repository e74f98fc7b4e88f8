//! `GET /admin/stream`: the dashboard's live feed as server-sent events.
//!
//! Once a second (and at once on connecting) one `state` event carries everything the
//! dashboard draws: clusters with their endpoints, routes with their counters, recent
//! events. Whole states rather than deltas, so a browser that missed one (or reconnected)
//! is right again at the next; at a second apart, a few kilobytes each, that is cheap.

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
use tokio::time::{Interval, MissedTickBehavior};

use super::reply::AdminBody;
use super::views;
use crate::reload::Runtime;

/// Time between two states.
const PERIOD: Duration = Duration::from_secs(1);

/// The streaming response.
pub(super) fn response(runtime: Arc<Runtime>) -> Response<AdminBody> {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut response = Response::new(StateStream { runtime, interval }.boxed_unsync());
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
        "config_hash": runtime.snapshot().config.source.hash,
    })
}

/// A body that never ends: one SSE event per tick.
struct StateStream {
    runtime: Arc<Runtime>,
    interval: Interval,
}

impl Body for StateStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        ready!(self.interval.poll_tick(cx));
        let event = format!("event: state\ndata: {}\n\n", state(&self.runtime));
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}
