//! What the proxy tells the world about the requests it serves, beyond metrics: an access
//! log (one JSON line per request), W3C trace context propagated upstream with spans
//! exported over OTLP, and the run-time log level of the proxy's own logs.
//!
//! Everything here is off by default and costs nothing when off: [`Telemetry::start`]
//! returns `None`s without reading a clock, and no span, id or line is made. When on, the
//! request path only formats and queues; files and collectors are written by threads of
//! their own (see [`access_log`] and [`otlp`]), behind bounded queues that drop (and count)
//! rather than slow a request down.
//!
//! The pipeline calls this module three times: [`Telemetry::start`] when a request arrives,
//! [`span::RequestTrace::attempt`] / [`span::RequestTrace::end_attempt`] around each
//! attempt, and [`Telemetry::finish`] with the response head and the request's
//! [`Record`]: what happened is read from the record, never from the response's headers.

pub(crate) mod access_log;
pub(crate) mod date;
pub(crate) mod json;
pub(crate) mod line;
mod log_filter;
pub(crate) mod otlp;
pub(crate) mod span;
pub(crate) mod traceparent;
pub(crate) mod wall_clock;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Method, Response};
use hyper::body::Body;
use rand::Rng;

use self::access_log::AccessLog;
use self::line::Line;
pub use self::log_filter::install_log_filter;
pub(crate) use self::log_filter::set_log_filter;
use self::span::{RequestSpan, RequestTrace, Tracer};
use self::traceparent::{TraceId, TraceParent};
use crate::body::ProxyBody;
use crate::config::TelemetryConfig;
use crate::record::Record;
use crate::rng::with_rng;

/// The access log and the tracer of one config, carried over across reloads that keep them.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    access_log: Option<(Arc<AccessLog>, f64)>,
    tracer: Option<Arc<Tracer>>,
}

/// When a request arrived, kept only when something will report it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    /// The instant the pipeline took (for its metrics) when the request arrived.
    at: Instant,
    /// The caller's trace, for the access log when tracing is off.
    trace_id: Option<TraceId>,
}

/// What a request was, as its span and access log line name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestNames<'a> {
    /// Its route.
    pub route: &'a str,
    /// Its route's cluster.
    pub cluster: &'a str,
    /// Its method.
    pub method: &'a Method,
    /// Its request id, as sent upstream and to the client.
    pub request_id: &'a HeaderValue,
}

impl Telemetry {
    /// The telemetry `config` asks for, keeping `previous`'s writer and exporter when their
    /// settings did not change (the access log file is then opened again: a reload is also
    /// how a rotated log is reopened). A log file that cannot be opened is logged as an
    /// error and leaves the access log off; the proxy serves on.
    pub(crate) fn build(config: &TelemetryConfig, previous: Option<&Telemetry>) -> Self {
        let access_log = config.access_log.as_ref().and_then(|wanted| {
            let kept = previous
                .and_then(|previous| previous.access_log.as_ref())
                .filter(|(log, _)| log.target == wanted.target)
                .map(|(log, _)| {
                    log.reopen();
                    log.clone()
                });
            let log = match kept {
                Some(log) => log,
                None => match AccessLog::start(wanted) {
                    Ok(log) => Arc::new(log),
                    Err(error) => {
                        tracing::error!(target = ?wanted.target, %error, "the access log cannot be opened; requests are not logged");
                        return None;
                    }
                },
            };
            Some((log, wanted.sample))
        });
        let tracer = config.tracing.as_ref().and_then(|wanted| {
            let kept = previous
                .and_then(|previous| previous.tracer.as_ref())
                .filter(|tracer| tracer.config == *wanted);
            match kept {
                Some(tracer) => Some(tracer.clone()),
                None => otlp::start(wanted)
                    .inspect_err(|error| {
                        tracing::error!(%error, "the OTLP exporter cannot start; spans are not exported");
                    })
                    .ok(),
            }
        });
        Self { access_log, tracer }
    }

    /// The access log, when on (its [`AccessLog::dropped`] count is worth exporting).
    #[cfg(test)]
    pub(crate) fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_ref().map(|(log, _)| &**log)
    }

    /// The tracer, when on.
    #[cfg(test)]
    pub(crate) fn tracer(&self) -> Option<&Arc<Tracer>> {
        self.tracer.as_ref()
    }

    /// Opens the access log file again (on SIGHUP, after log rotation).
    pub(crate) fn reopen(&self) {
        if let Some((log, _)) = &self.access_log {
            log.reopen();
        }
    }

    /// A request arrived `at` with these headers: its arrival if anything will report it,
    /// and its trace if tracing is on (the headers lose a `tracestate` whose `traceparent`
    /// is invalid). Both `None`, at no cost, when everything is off.
    ///
    /// NOTE: `at` is the instant the pipeline took anyway, and the access log tells the wall
    /// time from it ([`wall_clock`]): the access log reads no clock of its own per request.
    pub(crate) fn start(
        &self,
        headers: &mut HeaderMap,
        at: Instant,
    ) -> (Option<Started>, Option<RequestTrace>) {
        if self.access_log.is_none() && self.tracer.is_none() {
            return (None, None);
        }
        let trace = self.tracer.as_ref().map(|tracer| tracer.begin(headers));
        let trace_id = match &trace {
            Some(trace) => Some(trace.trace_id),
            None => TraceParent::from_headers(headers).map(|parent| parent.trace_id),
        };
        let started = Started { at, trace_id };
        (Some(started), trace)
    }

    /// The response head is ready: ends the request's span and writes its access log line
    /// (sampled; failures always), from what `record` says happened.
    pub(crate) fn finish(
        &self,
        started: Option<Started>,
        trace: Option<&RequestTrace>,
        request: &RequestNames<'_>,
        record: &Record,
        response: &Response<ProxyBody>,
    ) {
        let Some(started) = started else { return };
        let status = response.status().as_u16();
        if let Some(trace) = trace {
            trace.end(RequestSpan {
                route: request.route,
                cluster: request.cluster,
                method: request.method.as_str(),
                endpoint: record.endpoint,
                status,
                attempts: record.attempts,
            });
        }
        let Some((log, sample)) = &self.access_log else {
            return;
        };
        // A faulted request is always written: the experiment wants to see every one.
        let failed = status >= 500 || record.error.is_some() || record.fault.is_some();
        if !failed && *sample < 1.0 && with_rng(|rng| rng.random::<f64>() >= *sample) {
            return;
        }
        let line = Line {
            time: log.clock.time_of(started.at),
            request_id: request.request_id.as_bytes(),
            trace_id: started.trace_id,
            method: request.method.as_str(),
            route: request.route,
            cluster: request.cluster,
            endpoint: record.endpoint,
            status,
            bytes: response.body().size_hint().exact(),
            upstream: record.upstream,
            total: record.total,
            attempts: record.attempts,
            fallback: record.fallback.map(|kind| kind.as_str().as_bytes()),
            error: record.error.map(|error| error.as_str().as_bytes()),
            fault: record.fault.map(|kind| kind.as_str().as_bytes()),
            fault_rule: record.fault_rule,
        };
        log.append(&line);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::traceparent::TRACEPARENT;
    use super::*;

    #[test]
    fn with_everything_off_a_request_costs_no_clock_trace_or_id() {
        let telemetry = Telemetry::build(&TelemetryConfig::default(), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let before = headers.clone();
        let (started, trace) = telemetry.start(&mut headers, Instant::now());
        assert!(started.is_none() && trace.is_none());
        assert!(telemetry.tracer().is_none() && telemetry.access_log().is_none());
        assert_eq!(
            headers, before,
            "the caller's context passes through untouched"
        );
    }
}

#[cfg(test)]
mod propagation_tests {
    use http::HeaderValue;

    use super::traceparent::{TRACEPARENT, TRACESTATE};
    use super::*;

    #[test]
    fn traceparent_and_tracestate_are_not_hop_by_hop() {
        let mut headers = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(parent));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=1,b=2"));
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        crate::headers::remove_hop_by_hop(&mut headers, &[]);
        assert_eq!(headers[TRACEPARENT], parent);
        assert_eq!(headers[TRACESTATE], "a=1,b=2");
    }
}
