//! Spans: one per request, one per attempt, in the trace the client's `traceparent` names
//! (or a new one), recorded when sampled and handed to the [`super::otlp`] exporter.
//!
//! Every attempt gets its own span id, sent upstream as the parent in `traceparent`, so a
//! retried request shows as sibling attempts under the proxy's request span. Sampling is
//! parent-based: a caller that says whether it sampled is followed; a new trace is sampled
//! at `[tracing] sample`. Unsampled requests still propagate the context.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::SystemTime;

use http::HeaderMap;
use rand::Rng;

use super::traceparent::{self, SAMPLED, SpanId, TRACEPARENT, TRACESTATE, TraceId, TraceParent};
use crate::config::telemetry::TracingConfig;
use crate::rng::with_rng;

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    /// The proxy serving a request.
    Server = 2,
    /// The proxy sending an attempt upstream.
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
}

/// A finished span, waiting for export.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    /// Its trace.
    pub trace_id: TraceId,
    /// Itself.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent_id: Option<SpanId>,
    /// What it is.
    pub name: &'static str,
    /// Server (the request) or client (an attempt).
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Route, cluster, endpoint, status, attempt number.
    pub attributes: Vec<(&'static str, Value)>,
    /// Whether it failed (a 5xx or no answer).
    pub error: bool,
}

/// The tracing side of [`super::Telemetry`]: sampling and the exporter's queue.
#[derive(Debug)]
pub(crate) struct Tracer {
    /// The config it was built from, to tell on reload whether it can be kept.
    pub config: TracingConfig,
    sender: SyncSender<SpanRecord>,
    /// Request traces started: stays 0 while tracing is off (tests check it).
    started: AtomicU64,
    dropped: AtomicU64,
}

impl Tracer {
    /// A tracer queueing into `sender`.
    pub(crate) fn new(config: TracingConfig, sender: SyncSender<SpanRecord>) -> Self {
        Self {
            config,
            sender,
            started: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The trace of a request with these headers: the caller's when its `traceparent` is
    /// valid, else a new one (and the caller's `tracestate`, which belongs to the context
    /// just refused, is removed).
    pub(crate) fn begin(self: &Arc<Self>, headers: &mut HeaderMap) -> RequestTrace {
        self.started.fetch_add(1, Ordering::Relaxed);
        let parent = TraceParent::from_headers(headers);
        if parent.is_none() {
            headers.remove(TRACESTATE);
        }
        let (trace_id, span_id, sampled) = with_rng(|rng| {
            let trace_id = parent.map_or_else(|| nonzero(rng), |parent| parent.trace_id);
            let sampled = parent.map_or_else(
                || rng.random::<f64>() < self.config.sample,
                |parent| parent.sampled(),
            );
            (trace_id, nonzero(rng), sampled)
        });
        RequestTrace {
            tracer: self.clone(),
            trace_id,
            span_id,
            parent_id: parent.map(|parent| parent.parent_id),
            flags: if sampled { SAMPLED } else { 0 },
            start: SystemTime::now(),
        }
    }

    fn export(&self, record: SpanRecord) {
        if self.sender.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An id that is not all zeros (the spec's "invalid").
fn nonzero<const N: usize>(rng: &mut impl Rng) -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        rng.fill(&mut id[..]);
        if id != [0u8; N] {
            return id;
        }
    }
}

/// One request's trace.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    tracer: Arc<Tracer>,
    /// The trace.
    pub trace_id: TraceId,
    /// The proxy's span for the request.
    pub span_id: SpanId,
    parent_id: Option<SpanId>,
    flags: u8,
    start: SystemTime,
}

/// An attempt's span, open.
#[derive(Debug)]
pub(crate) struct AttemptSpan {
    span_id: SpanId,
    number: u32,
    endpoint: SocketAddr,
    start: SystemTime,
}

impl RequestTrace {
    /// Whether its spans are recorded.
    pub(crate) fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// Opens the span of attempt `number` to `endpoint` and names it as the parent in the
    /// attempt's `traceparent`.
    pub(crate) fn attempt(
        &self,
        headers: &mut HeaderMap,
        number: u32,
        endpoint: SocketAddr,
    ) -> AttemptSpan {
        let span_id = with_rng(nonzero);
        headers.insert(
            TRACEPARENT,
            traceparent::header_value(&self.trace_id, &span_id, self.flags),
        );
        AttemptSpan {
            span_id,
            number,
            endpoint,
            start: SystemTime::now(),
        }
    }

    /// Closes an attempt's span: `status` is the upstream's, `None` when it did not answer.
    pub(crate) fn end_attempt(&self, span: AttemptSpan, status: Option<u16>) {
        if !self.sampled() {
            return;
        }
        let mut attributes = vec![
            ("blastwall.attempt", Value::Int(i64::from(span.number))),
            ("server.address", Value::Text(span.endpoint.to_string())),
        ];
        if let Some(status) = status {
            attributes.push(("http.response.status_code", Value::Int(i64::from(status))));
        }
        self.tracer.export(SpanRecord {
            trace_id: self.trace_id,
            span_id: span.span_id,
            parent_id: Some(self.span_id),
            name: "attempt",
            kind: SpanKind::Client,
            start: span.start,
            end: SystemTime::now(),
            attributes,
            error: status.is_none_or(|status| status >= 500),
        });
    }

    /// Closes the request's span.
    pub(crate) fn end(&self, served: RequestSpan<'_>) {
        if !self.sampled() {
            return;
        }
        let mut attributes = vec![
            ("blastwall.route", Value::Text(served.route.to_owned())),
            ("blastwall.cluster", Value::Text(served.cluster.to_owned())),
            ("http.request.method", Value::Text(served.method.to_owned())),
            (
                "http.response.status_code",
                Value::Int(i64::from(served.status)),
            ),
            ("blastwall.attempts", Value::Int(i64::from(served.attempts))),
        ];
        if let Some(endpoint) = served.endpoint {
            attributes.push(("server.address", Value::Text(endpoint.to_string())));
        }
        self.tracer.export(SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            name: "request",
            kind: SpanKind::Server,
            start: self.start,
            end: SystemTime::now(),
            attributes,
            error: served.status >= 500,
        });
    }
}

/// What the request span says about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestSpan<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The cluster's name.
    pub cluster: &'a str,
    /// The method.
    pub method: &'a str,
    /// The endpoint that answered last.
    pub endpoint: Option<SocketAddr>,
    /// The status the client got.
    pub status: u16,
    /// Attempts sent.
    pub attempts: u32,
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use http::HeaderValue;

    use super::*;

    fn tracer(sample: f64) -> (Arc<Tracer>, std::sync::mpsc::Receiver<SpanRecord>) {
        let (sender, receiver) = sync_channel(16);
        let config = TracingConfig {
            collector: "127.0.0.1:4318".to_owned(),
            path: "/v1/traces".to_owned(),
            sample,
            service_name: "test".to_owned(),
        };
        (Arc::new(Tracer::new(config, sender)), receiver)
    }

    #[test]
    fn an_attempt_keeps_the_callers_trace_with_a_new_parent_id() {
        let (tracer, receiver) = tracer(0.0);
        let mut headers = HeaderMap::new();
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(incoming));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = tracer.begin(&mut headers);
        assert!(trace.sampled(), "the caller sampled it, whatever the ratio");
        let mut upstream = headers.clone();
        let span = trace.attempt(&mut upstream, 1, "127.0.0.1:1".parse().unwrap());
        let sent = TraceParent::from_headers(&upstream).unwrap();
        assert_eq!(
            sent.trace_id,
            TraceParent::parse(incoming.as_bytes()).unwrap().trace_id
        );
        assert_ne!(
            sent.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(upstream[TRACESTATE], "vendor=1");
        trace.end_attempt(span, Some(200));
        let record = receiver.try_recv().unwrap();
        assert_eq!(record.span_id, sent.parent_id);
        assert_eq!(record.parent_id, Some(trace.span_id));
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_without_its_tracestate() {
        let (tracer, _receiver) = tracer(1.0);
        let mut headers = HeaderMap::new();
        let invalid = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(invalid));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        let trace = tracer.begin(&mut headers);
        assert_ne!(trace.trace_id, [0; 16]);
        assert!(!headers.contains_key(TRACESTATE));
    }

    #[test]
    fn new_traces_are_sampled_at_the_configured_ratio() {
        let (never, receiver) = tracer(0.0);
        for _ in 0..100 {
            let trace = never.begin(&mut HeaderMap::new());
            assert!(!trace.sampled());
            trace.end(RequestSpan {
                route: "r",
                cluster: "c",
                method: "GET",
                endpoint: None,
                status: 200,
                attempts: 1,
            });
        }
        assert!(
            receiver.try_recv().is_err(),
            "unsampled spans are not exported"
        );
        let (half, _receiver) = tracer(0.5);
        let sampled = (0..2000)
            .filter(|_| half.begin(&mut HeaderMap::new()).sampled())
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 2000");
    }
}
