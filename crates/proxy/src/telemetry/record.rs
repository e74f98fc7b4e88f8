//! One access log line: what happened to one request, as one JSON object.
//!
//! Written by hand (see [`super::json`]) rather than through serde_json: the fields are few
//! and fixed, the only text that needs escaping is the request id, method and names, and the
//! line is written straight into the access log's buffer with no intermediate value.
//!
//! NOTE: with the log on, a request costs about 1.6k instructions more than with it off
//! (callgrind behind wrk, 49.9k → 51.5k, +3.3%; it was +4.0k, +8%): no clock is read for the
//! line (the time is told from the pipeline's own instant, [`super::wall_clock`]), the date is
//! worked out once a second ([`DateCache`]), strings are copied in runs, and nothing is
//! checked for UTF-8.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::json::{Buffer, number, padded, small, string};
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
    /// The status the client got (three digits, as HTTP has them).
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
        self.write_to(&mut line, &mut DateCache::default());
        line
    }

    /// Appends the JSON line, newline included, to `line`, taking the date up to the second
    /// from `dates` when it spells the same second.
    pub fn write_to(&self, line: &mut impl Buffer, dates: &mut DateCache) {
        line.put(b"{\"time\":\"");
        dates.write(self.time, line);
        line.put(b"\",\"request_id\":");
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
        line.put(b",\"status\":");
        padded::<3>(u64::from(self.status), line);
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
        line.put(b",\"fallback\":");
        optional_string(self.fallback, line);
        line.put(b",\"error\":");
        optional_string(self.error, line);
        line.put(b"}\n");
    }
}

/// Milliseconds with microsecond precision: `12.345`.
fn millis(duration: Duration, out: &mut impl Buffer) {
    // `as_micros` is a `u128`, and 64-bit arithmetic is enough for 584,000 years.
    let micros = (duration.as_secs().saturating_mul(1_000_000))
        .saturating_add(u64::from(duration.subsec_micros()));
    number(micros / 1000, out);
    out.put_byte(b'.');
    padded::<3>(micros % 1000, out);
}

/// An address as `Display` writes it; IPv4 by hand, IPv6 (rare here) through `Display`.
fn socket_address(address: SocketAddr, out: &mut impl Buffer) {
    match address {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            for (octet, separator) in [(a, b'.'), (b, b'.'), (c, b'.'), (d, b':')] {
                small(octet, out);
                out.put_byte(separator);
            }
            number(u64::from(v4.port()), out);
        }
        SocketAddr::V6(_) => out.put(address.to_string().as_bytes()),
    }
}

fn optional_string(value: Option<&[u8]>, out: &mut impl Buffer) {
    match value {
        Some(value) => string(value, out),
        None => out.put(b"null"),
    }
}

/// The text of the last second written, `2024-05-01T12:34:56.`: the civil date is worked out
/// once a second rather than for every line.
#[derive(Debug, Default)]
pub struct DateCache {
    /// The second since the epoch that `text` spells, once it spells one.
    second: Option<u64>,
    /// RFC 3339 up to the second's dot (of a year of four digits: every other is written
    /// afresh).
    text: [u8; 20],
}

impl DateCache {
    /// Writes `time` as [`rfc3339`] does.
    pub fn write(&mut self, time: SystemTime, out: &mut impl Buffer) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            let mut fresh = Vec::with_capacity(32);
            rfc3339(UNIX_EPOCH + Duration::from_secs(second), &mut fresh);
            let Ok(text) = fresh[..fresh.len() - b"789Z".len()].try_into() else {
                return rfc3339(time, out);
            };
            (self.second, self.text) = (Some(second), text);
        }
        out.put(&self.text);
        padded::<3>(u64::from(since.subsec_millis()), out);
        out.put_byte(b'Z');
    }
}

/// `2024-05-01T12:34:56.789Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339(time: SystemTime, out: &mut impl Buffer) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    padded::<4>(year, out);
    out.put_byte(b'-');
    padded::<2>(month, out);
    out.put_byte(b'-');
    padded::<2>(day, out);
    out.put_byte(b'T');
    padded::<2>(of_day / 3600, out);
    out.put_byte(b':');
    padded::<2>(of_day / 60 % 60, out);
    out.put_byte(b':');
    padded::<2>(of_day % 60, out);
    out.put_byte(b'.');
    padded::<3>(u64::from(since.subsec_millis()), out);
    out.put_byte(b'Z');
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

#[cfg(test)]
mod date_cache {
    use super::*;

    #[test]
    fn the_date_cache_writes_what_rfc3339_writes_across_second_and_day_boundaries() {
        let mut dates = DateCache::default();
        // 2024-05-01T23:59:58.998Z onwards, with late lines from seconds before.
        let base = 1_714_607_998_998u64;
        for offset in [
            0, 1, 2, 3, 1_001, 1_002, 500, 1_999, 2_000, 2_001, 1_000, 86_400_000,
        ] {
            let time = UNIX_EPOCH + Duration::from_millis(base + offset);
            let mut cached = Vec::new();
            dates.write(time, &mut cached);
            let mut fresh = Vec::new();
            rfc3339(time, &mut fresh);
            assert_eq!(cached, fresh, "{offset}ms after the first");
        }
        let mut out = Vec::new();
        dates.write(UNIX_EPOCH + Duration::from_millis(base + 1_002), &mut out);
        assert_eq!(out, b"2024-05-02T00:00:00.000Z");
    }

    #[test]
    fn a_year_past_9999_is_written_whole_without_the_cache() {
        let mut dates = DateCache::default();
        let mut out = Vec::new();
        dates.write(
            UNIX_EPOCH + Duration::from_millis(253_402_300_800_001),
            &mut out,
        );
        assert_eq!(out, b"10000-01-01T00:00:00.001Z");
    }
}
