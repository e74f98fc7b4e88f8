//! One access log line: what happened to one request (its [`crate::record::Line`] and
//! what the request was), as one JSON object.
//!
//! Written by hand (see [`super::json`]) rather than through serde_json: the fields are few
//! and fixed, the only text that needs escaping is the request id, method and names, and the
//! line is written straight into the access log's buffer with no intermediate value.
//!
//! NOTE: with the log on, a request costs about 1.4k instructions more than with it off
//! (callgrind behind wrk, medians of five runs: 49.6k → 51.0k, +2.8%; it was +4.0k, +8%): no
//! clock is read for the line (the time is told from the pipeline's own instant,
//! [`super::wall_clock`]), the date is worked out once a second ([`DateCache`]), strings are
//! tested and copied eight bytes at a time, nothing is checked for UTF-8, and all but the
//! time is written on the stack by one inlined function ([`super::json::ArrayBuffer`]).

use std::net::SocketAddr;
// The tests below name `UNIX_EPOCH` through `use super::*`.
#[cfg(test)]
use std::time::UNIX_EPOCH;
use std::time::{Duration, SystemTime};

use super::date::{DateCache, rfc3339};
use super::json::{Buffer, digits, number, string};
use super::traceparent::{TraceId, hex};

/// One request's access log line, before it is written.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
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
    /// The fault a rule injected; the key is written only on a faulted request.
    pub fault: Option<&'a [u8]>,
    /// The rule that injected it (written after `fault`).
    pub fault_rule: Option<crate::record::FaultRuleId>,
}

impl Line<'_> {
    /// The JSON line, newline included.
    #[cfg(test)]
    pub(crate) fn to_line(&self) -> String {
        let mut line = String::with_capacity(320);
        self.write_to(&mut line, &mut DateCache::default());
        line
    }

    /// Appends the JSON line, newline included, to `line`, taking the date up to the second
    /// from `dates` when it spells the same second.
    #[cfg(test)]
    pub(crate) fn write_to(&self, line: &mut impl Buffer, dates: &mut DateCache) {
        self.write_time(line, dates);
        self.write_rest(line);
    }

    /// The start of the line, `{"time":"…"`: the part that needs the date cache.
    #[inline(always)]
    pub(crate) fn write_time(&self, line: &mut impl Buffer, dates: &mut DateCache) {
        const KEY: &[u8; 9] = b"{\"time\":\"";
        match dates.text(self.time) {
            Some(text) => {
                let mut field = [b'"'; KEY.len() + 24 + 1];
                field[..KEY.len()].copy_from_slice(KEY);
                field[KEY.len()..KEY.len() + 24].copy_from_slice(&text);
                line.put(&field);
            }
            None => {
                line.put(KEY);
                rfc3339(self.time, line);
                line.put_byte(b'"');
            }
        }
    }

    /// The rest of the line, from `,"request_id":` to the newline.
    #[inline(always)]
    pub(crate) fn write_rest(&self, line: &mut impl Buffer) {
        line.put(b",\"request_id\":");
        string(self.request_id, line);
        match &self.trace_id {
            Some(trace_id) => {
                let mut text = [b'"'; 46];
                text[..13].copy_from_slice(b",\"trace_id\":\"");
                hex(trace_id, &mut text[13..45]);
                line.put(&text);
            }
            None => line.put(b",\"trace_id\":null"),
        }
        line.put(b",\"method\":");
        string(self.method.as_bytes(), line);
        line.put(b",\"route\":");
        string(self.route.as_bytes(), line);
        line.put(b",\"cluster\":");
        string(self.cluster.as_bytes(), line);
        match self.endpoint {
            Some(endpoint) => {
                line.put(b",\"endpoint\":\"");
                socket_address(endpoint, line);
                line.put_byte(b'"');
            }
            None => line.put(b",\"endpoint\":null"),
        }
        match digits::<3>(u64::from(self.status)) {
            Some(status) if self.status >= 100 => {
                let mut field = *b",\"status\":000";
                field[10..].copy_from_slice(&status);
                line.put(&field);
            }
            _ => {
                line.put(b",\"status\":");
                number(u64::from(self.status), line);
            }
        }
        match self.bytes {
            Some(bytes) => {
                line.put(b",\"bytes\":");
                number(bytes, line);
            }
            None => line.put(b",\"bytes\":null"),
        }
        match self.upstream {
            Some(upstream) => {
                line.put(b",\"upstream_ms\":");
                millis(upstream, line);
            }
            None => line.put(b",\"upstream_ms\":null"),
        }
        line.put(b",\"total_ms\":");
        millis(self.total, line);
        line.put(b",\"attempts\":");
        number(u64::from(self.attempts), line);
        if self.fallback.is_none() && self.error.is_none() && self.fault.is_none() {
            // The usual end, in one piece.
            return line.put(b",\"fallback\":null,\"error\":null}\n");
        }
        line.put(b",\"fallback\":");
        optional_string(self.fallback, line);
        line.put(b",\"error\":");
        optional_string(self.error, line);
        if self.fault.is_some() {
            line.put(b",\"fault\":");
            optional_string(self.fault, line);
        }
        if let Some(rule) = self.fault_rule {
            // NOTE: a faulted request only; one small string for its id.
            line.put(b",\"fault_rule\":");
            string(rule.text(self.route).as_bytes(), line);
        }
        line.put(b"}\n");
    }
}

/// Milliseconds with microsecond precision: `12.345`.
#[inline(always)]
fn millis(duration: Duration, out: &mut impl Buffer) {
    // `as_micros` is a `u128`, and 64-bit arithmetic is enough for 584,000 years.
    let micros = (duration.as_secs().saturating_mul(1_000_000))
        .saturating_add(u64::from(duration.subsec_micros()));
    let [a, b, c] = digits::<3>(micros % 1000).expect("under 1000");
    match micros / 1000 {
        // The usual case, under 10ms, in one piece.
        whole @ 0..10 => out.put(&[b'0' + whole as u8, b'.', a, b, c]),
        whole => {
            number(whole, out);
            out.put(&[b'.', a, b, c]);
        }
    }
}

/// An address as `Display` writes it; IPv4 by hand, IPv6 (rare here) through `Display`.
#[inline(always)]
fn socket_address(address: SocketAddr, out: &mut impl Buffer) {
    match address {
        SocketAddr::V4(v4) => {
            // Written in one move of a constant length (`headers::ipv4_text` fills the array).
            let mut text = [0u8; 15];
            let len = crate::headers::ipv4_text(*v4.ip(), &mut text).len();
            out.put_prefix(text, len);
            out.put_byte(b':');
            number(u64::from(v4.port()), out);
        }
        SocketAddr::V6(_) => out.put(address.to_string().as_bytes()),
    }
}

#[inline(always)]
fn optional_string(value: Option<&[u8]>, out: &mut impl Buffer) {
    match value {
        Some(value) => string(value, out),
        None => out.put(b"null"),
    }
}

/// A line to write in tests: a success, without fallback or error.
#[cfg(test)]
pub(crate) fn example() -> Line<'static> {
    Line {
        time: UNIX_EPOCH + Duration::from_millis(1_714_566_896_789),
        request_id: b"id-1",
        trace_id: Some([0xab; 16]),
        method: "GET",
        route: "api",
        cluster: "backend",
        endpoint: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        status: 200,
        bytes: Some(12),
        upstream: Some(Duration::from_micros(1234)),
        total: Duration::from_micros(12_345_678),
        attempts: 1,
        fallback: None,
        fault: None,
        fault_rule: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example, retried and failed, with an id that needs escaping.
    fn record() -> Line<'static> {
        Line {
            request_id: b"id-\"1\"",
            total: Duration::from_micros(2001),
            attempts: 2,
            error: Some(b"upstream_timeout"),
            ..example()
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
    use std::time::{Duration, SystemTime};

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

#[cfg(test)]
mod pieces {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Addresses, milliseconds and numbers written by hand are what `Display` writes.
        #[test]
        fn hand_written_numbers_are_what_display_writes(
            ip in any::<[u8; 4]>(),
            port in any::<u16>(),
            micros in any::<u64>(),
            value in any::<u64>(),
        ) {
            let address = SocketAddr::from((ip, port));
            let mut out = Vec::new();
            socket_address(address, &mut out);
            prop_assert_eq!(out, address.to_string().into_bytes());
            let mut out = Vec::new();
            millis(Duration::from_micros(micros), &mut out);
            let expected = format!("{}.{:03}", micros / 1000, micros % 1000);
            prop_assert_eq!(out, expected.into_bytes());
            for value in [value, value % 100_000_000, value % 100_000, value % 100] {
                let mut out = Vec::new();
                number(value, &mut out);
                prop_assert_eq!(out, value.to_string().into_bytes());
            }
        }
    }

    #[test]
    fn any_status_is_written_as_format_writes_it() {
        for status in [0, 99, 100, 200, 599, 999, 1_000, u16::MAX] {
            let line = Line {
                status,
                ..example()
            }
            .to_line();
            assert!(line.contains(&format!(",\"status\":{status},")), "{line}");
        }
    }

    #[test]
    fn a_year_past_9999_is_written_whole() {
        let time = UNIX_EPOCH + Duration::from_millis(253_402_300_800_001);
        let line = Line { time, ..example() }.to_line();
        assert!(
            line.starts_with(r#"{"time":"10000-01-01T00:00:00.001Z","#),
            "{line}"
        );
    }

    #[test]
    fn a_line_without_fallback_or_error_ends_with_both_null() {
        let line = Line {
            upstream: None,
            ..example()
        }
        .to_line();
        let end = ",\"total_ms\":12345.678,\"attempts\":1,\"fallback\":null,\"error\":null}\n";
        assert!(line.ends_with(end), "{line}");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["upstream_ms"], serde_json::Value::Null);
        assert_eq!(json["fallback"], serde_json::Value::Null);
    }

    #[test]
    fn a_faulted_line_names_its_fault_after_the_error() {
        let line = Line {
            fault: Some(b"delay"),
            ..example()
        }
        .to_line();
        assert!(
            line.ends_with(",\"fallback\":null,\"error\":null,\"fault\":\"delay\"}\n"),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["fault"], "delay");
    }

    #[test]
    fn a_faulted_line_names_the_rule_that_faulted_it() {
        use crate::record::FaultRuleId;
        let line = |rule| {
            let line = Line {
                fault: Some(b"abort"),
                fault_rule: Some(rule),
                ..example()
            }
            .to_line();
            serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["fault_rule"].clone()
        };
        assert_eq!(line(FaultRuleId::Runtime(7)), "f7");
        let route = example().route;
        assert_eq!(line(FaultRuleId::Config(2)), format!("config:{route}:2"));
    }
}
