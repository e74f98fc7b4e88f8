//! One access log line: what happened to one request, as one JSON object.
//!
//! Written by hand rather than through serde_json: the fields are few and fixed, the only
//! text that needs escaping is the request id, method and names, and the line is built with
//! one allocation and no intermediate value. (Not yet measured against serde_json.)

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::traceparent::{TraceId, hex};

/// What one request came to.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// When the request arrived.
    pub time: SystemTime,
    /// `x-request-id`, as sent upstream and to the client.
    pub request_id: &'a [u8],
    /// The trace, when the request has one.
    pub trace_id: Option<TraceId>,
    /// The method.
    pub method: &'a str,
    /// The route's name.
    pub route: &'a str,
    /// The route's cluster.
    pub cluster: &'a str,
    /// The endpoint whose answer (or failure) this is, when an attempt was sent.
    pub endpoint: Option<SocketAddr>,
    /// The status the client got.
    pub status: u16,
    /// Response body bytes, when known at the response head (a fixed-length body).
    pub bytes: Option<u64>,
    /// From the last attempt sent to its response head (or failure).
    pub upstream: Option<Duration>,
    /// From the request's arrival to the response head.
    pub total: Duration,
    /// Attempts sent, hedges included.
    pub attempts: u32,
    /// The fallback that answered (`x-blastwall-fallback`).
    pub fallback: Option<&'a [u8]>,
    /// Why the proxy answered itself (`x-blastwall-error`).
    pub error: Option<&'a [u8]>,
}

impl Record<'_> {
    /// The JSON line, newline included.
    #[cfg(test)]
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(320);
        self.write_to(&mut line);
        line
    }

    /// Appends the JSON line, newline included, to `line`.
    pub fn write_to(&self, line: &mut String) {
        line.push_str("{\"time\":\"");
        rfc3339(self.time, line);
        line.push_str("\",\"request_id\":");
        string(self.request_id, line);
        line.push_str(",\"trace_id\":");
        match &self.trace_id {
            Some(trace_id) => {
                let mut text = [0u8; 32];
                hex(trace_id, &mut text);
                line.push('"');
                line.push_str(std::str::from_utf8(&text).expect("hex digits"));
                line.push('"');
            }
            None => line.push_str("null"),
        }
        line.push_str(",\"method\":");
        string(self.method.as_bytes(), line);
        line.push_str(",\"route\":");
        string(self.route.as_bytes(), line);
        line.push_str(",\"cluster\":");
        string(self.cluster.as_bytes(), line);
        line.push_str(",\"endpoint\":");
        match self.endpoint {
            Some(endpoint) => {
                line.push('"');
                socket_address(endpoint, line);
                line.push('"');
            }
            None => line.push_str("null"),
        }
        line.push_str(",\"status\":");
        number(u64::from(self.status), line);
        line.push_str(",\"bytes\":");
        match self.bytes {
            Some(bytes) => {
                number(bytes, line);
            }
            None => line.push_str("null"),
        }
        line.push_str(",\"upstream_ms\":");
        match self.upstream {
            Some(upstream) => millis(upstream, line),
            None => line.push_str("null"),
        }
        line.push_str(",\"total_ms\":");
        millis(self.total, line);
        line.push_str(",\"attempts\":");
        number(u64::from(self.attempts), line);
        line.push_str(",\"fallback\":");
        optional_string(self.fallback, line);
        line.push_str(",\"error\":");
        optional_string(self.error, line);
        line.push_str("}\n");
    }
}

/// Milliseconds with microsecond precision: `12.345`.
fn millis(duration: Duration, out: &mut String) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    number(micros / 1000, out);
    out.push('.');
    padded(micros % 1000, 3, out);
}

// NOTE: the helpers below write digits by hand (and with `itoa`) rather than through
// `write!`: core::fmt's machinery was most of the access log's cost per line.

/// A number in decimal.
fn number(value: u64, out: &mut String) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// A number in decimal, zero padded to `width` digits (for values with at most that many).
fn padded(value: u64, width: usize, out: &mut String) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// An address as `Display` writes it; IPv4 by hand, IPv6 (rare here) through `Display`.
fn socket_address(address: SocketAddr, out: &mut String) {
    match address {
        SocketAddr::V4(v4) => {
            let mut buffer = [0u8; 15];
            let text = crate::forward::ipv4_text(*v4.ip(), &mut buffer);
            out.push_str(std::str::from_utf8(text).unwrap_or_default());
            out.push(':');
            number(u64::from(v4.port()), out);
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{address}");
        }
    }
}

fn optional_string(value: Option<&[u8]>, out: &mut String) {
    match value {
        Some(value) => string(value, out),
        None => out.push_str("null"),
    }
}

/// A JSON string; bytes that are not ASCII (header values may carry them) are read as
/// Latin-1, so the line stays valid JSON whatever a client sent.
fn string(value: &[u8], out: &mut String) {
    out.push('"');
    for &byte in value {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
    }
    out.push('"');
}

/// `2024-05-01T12:34:56.789Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339(time: SystemTime, out: &mut String) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    padded(year, 4, out);
    out.push('-');
    padded(month, 2, out);
    out.push('-');
    padded(day, 2, out);
    out.push('T');
    padded(of_day / 3600, 2, out);
    out.push(':');
    padded(of_day / 60 % 60, 2, out);
    out.push(':');
    padded(of_day % 60, 2, out);
    out.push('.');
    padded(u64::from(since.subsec_millis()), 3, out);
    out.push('Z');
}

/// Year, month, day of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_714_566_896_789),
            request_id: b"id-\"1\"",
            trace_id: Some([0xab; 16]),
            method: "GET",
            route: "api",
            cluster: "backend",
            endpoint: Some("127.0.0.1:8080".parse().unwrap()),
            status: 200,
            bytes: Some(12),
            upstream: Some(Duration::from_micros(1234)),
            total: Duration::from_micros(2001),
            attempts: 2,
            fallback: None,
            error: Some(b"upstream_timeout"),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let line = record().to_line();
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["time"], "2024-05-01T12:34:56.789Z");
        assert_eq!(json["request_id"], "id-\"1\"");
        assert_eq!(json["trace_id"], "ab".repeat(16));
        assert_eq!(json["method"], "GET");
        assert_eq!(json["route"], "api");
        assert_eq!(json["cluster"], "backend");
        assert_eq!(json["endpoint"], "127.0.0.1:8080");
        assert_eq!(json["status"], 200);
        assert_eq!(json["bytes"], 12);
        assert_eq!(json["upstream_ms"], 1.234);
        assert_eq!(json["total_ms"], 2.001);
        assert_eq!(json["attempts"], 2);
        assert_eq!(json["fallback"], serde_json::Value::Null);
        assert_eq!(json["error"], "upstream_timeout");
    }

    #[test]
    fn control_and_non_ascii_bytes_stay_valid_json() {
        let mut record = record();
        record.request_id = b"a\\b\x01\xe9";
        record.trace_id = None;
        record.endpoint = None;
        let json: serde_json::Value = serde_json::from_str(&record.to_line()).unwrap();
        assert_eq!(json["request_id"], "a\\b\u{1}\u{e9}");
        assert_eq!(json["trace_id"], serde_json::Value::Null);
    }

    #[test]
    fn dates_are_civil_dates_in_utc() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (4_102_444_799, "2099-12-31T23:59:59.000Z"),
        ] {
            let mut out = String::new();
            rfc3339(UNIX_EPOCH + Duration::from_secs(seconds), &mut out);
            assert_eq!(out, text);
        }
    }
}

#[cfg(test)]
mod hand_formatting {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn digits_written_by_hand_match_what_format_writes() {
        for micros in [0u64, 7, 999, 1_000, 1_234_567, 59_999_999] {
            let mut out = String::new();
            millis(Duration::from_micros(micros), &mut out);
            assert_eq!(out, format!("{}.{:03}", micros / 1000, micros % 1000));
        }
        for address in ["10.0.0.1:80", "255.255.255.255:65535", "[::1]:8080"] {
            let address: SocketAddr = address.parse().unwrap();
            let mut out = String::new();
            socket_address(address, &mut out);
            assert_eq!(out, address.to_string());
        }
    }

    #[test]
    fn rfc3339_pads_every_field() {
        let mut out = String::new();
        rfc3339(UNIX_EPOCH + Duration::from_millis(5), &mut out);
        assert_eq!(out, "1970-01-01T00:00:00.005Z");
        let mut out = String::new();
        // 2026-11-23T06:07:08.090Z
        rfc3339(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_414_028_090),
            &mut out,
        );
        assert_eq!(out, "2026-11-23T06:07:08.090Z");
    }
}
