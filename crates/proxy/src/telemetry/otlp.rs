//! Spans to an OpenTelemetry collector over OTLP/HTTP with JSON bodies, written by hand.
//!
//! Why not the `opentelemetry-otlp` crate: its HTTP exporter brings reqwest (or tonic) and
//! the opentelemetry SDK, a second HTTP stack and dozens of crates for what is, here, one
//! POST of a small JSON document every second; and its batch processor wants its own runtime
//! integration. The encoding below follows the OTLP JSON mapping (hex ids, nanosecond
//! timestamps as strings, `intValue` as a string), which every collector accepts on
//! `/v1/traces`.
//!
//! One thread batches what the request path queues (at most [`CAPACITY`] spans wait; more
//! are dropped and counted) and sends a batch when [`BATCH`] spans are waiting or a second
//! has passed. A collector that is down costs one failed connection per batch and a log
//! line when it starts failing, never a request's time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use super::span::{SpanRecord, Tracer, Value};
use super::traceparent::hex;
use crate::config::telemetry::TracingConfig;

/// Spans waiting for export at most.
pub(crate) const CAPACITY: usize = 4096;

/// Spans sent in one request at most.
pub(crate) const BATCH: usize = 512;

/// The longest a span waits before its batch is sent.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Time to connect to, and hear back from, the collector.
const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(2);

/// A tracer whose spans a new exporter thread sends to the configured collector.
pub(crate) fn start(config: &TracingConfig) -> std::io::Result<Arc<Tracer>> {
    let (sender, receiver) = sync_channel(CAPACITY);
    let exporter = config.clone();
    std::thread::Builder::new()
        .name("blastwall-otlp".to_owned())
        .spawn(move || export(&receiver, &exporter))?;
    Ok(Arc::new(Tracer::new(config.clone(), sender)))
}

/// The exporter thread: until every sender is gone, batch and send.
fn export(receiver: &Receiver<SpanRecord>, config: &TracingConfig) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    loop {
        let due = Instant::now() + FLUSH_EVERY;
        let mut closed = false;
        while batch.len() < BATCH {
            match receiver.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(span) => batch.push(span),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let body = encode(&batch, &config.service_name);
            batch.clear();
            match post(config, &body) {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(collector = %config.collector, %error, "OTLP export failed; spans are dropped until it works again");
                }
                Err(_) => {}
            }
        }
        if closed {
            return;
        }
    }
}

/// An `ExportTraceServiceRequest` in OTLP JSON.
pub(crate) fn encode(spans: &[SpanRecord], service_name: &str) -> Vec<u8> {
    let spans: Vec<Json> = spans.iter().map(span).collect();
    let request = json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": service_name}}
            ]},
            "scopeSpans": [{
                "scope": {"name": "blastwall", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans
            }]
        }]
    });
    serde_json::to_vec(&request).expect("JSON values always serialize")
}

fn span(record: &SpanRecord) -> Json {
    let attributes: Vec<Json> = record
        .attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Text(text) => json!({"stringValue": text}),
                Value::Int(number) => json!({"intValue": number.to_string()}),
            };
            json!({"key": key, "value": value})
        })
        .collect();
    let mut span = json!({
        "traceId": hex_string(&record.trace_id),
        "spanId": hex_string(&record.span_id),
        "name": record.name,
        "kind": record.kind as u8,
        "startTimeUnixNano": nanos(record.start),
        "endTimeUnixNano": nanos(record.end),
        "attributes": attributes,
        // 1 = OK, 2 = ERROR.
        "status": {"code": if record.error { 2 } else { 1 }},
    });
    if let Some(parent) = &record.parent_id {
        span["parentSpanId"] = Json::String(hex_string(parent));
    }
    span
}

fn hex_string(bytes: &[u8]) -> String {
    let mut text = vec![0u8; bytes.len() * 2];
    hex(bytes, &mut text);
    String::from_utf8(text).expect("hex digits")
}

fn nanos(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

/// One HTTP/1.1 POST on a fresh connection; `Ok` when the collector answered 2xx.
fn post(config: &TracingConfig, body: &[u8]) -> std::io::Result<()> {
    let address = config
        .collector
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the collector's name resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&address, COLLECTOR_TIMEOUT)?;
    stream.set_read_timeout(Some(COLLECTOR_TIMEOUT))?;
    stream.set_write_timeout(Some(COLLECTOR_TIMEOUT))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        config.path,
        config.collector,
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer)?;
    // "HTTP/1.1 200"
    match &answer[9..10] {
        b"2" => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "the collector answered {}",
            String::from_utf8_lossy(&answer[9..12])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::span::SpanKind;
    use super::*;

    #[test]
    fn spans_are_encoded_in_the_otlp_json_mapping() {
        let record = SpanRecord {
            trace_id: [0x11; 16],
            span_id: [0x22; 8],
            parent_id: Some([0x33; 8]),
            name: "attempt",
            kind: SpanKind::Client,
            start: UNIX_EPOCH + Duration::from_nanos(1_000),
            end: UNIX_EPOCH + Duration::from_nanos(2_500),
            attributes: vec![("blastwall.attempt", Value::Int(2))],
            error: true,
        };
        let json: Json = serde_json::from_slice(&encode(&[record], "svc")).unwrap();
        let resource = &json["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0]["value"]["stringValue"],
            "svc"
        );
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "11".repeat(16));
        assert_eq!(span["spanId"], "22".repeat(8));
        assert_eq!(span["parentSpanId"], "33".repeat(8));
        assert_eq!(span["kind"], 3);
        assert_eq!(span["startTimeUnixNano"], "1000");
        assert_eq!(span["endTimeUnixNano"], "2500");
        assert_eq!(span["attributes"][0]["value"]["intValue"], "2");
        assert_eq!(span["status"]["code"], 2);
    }
}
