//! The W3C Trace Context `traceparent` header (<https://www.w3.org/TR/trace-context/>),
//! parsed strictly: a malformed value is no context at all (the trace restarts here), never
//! a guess, since a wrong trace id silently joins unrelated requests.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header carrying the trace id, the caller's span id and the sampled flag.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The header carrying vendor state; propagated as it is.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A trace id: 16 bytes, never all zero.
pub(crate) type TraceId = [u8; 16];

/// A span id: 8 bytes, never all zero.
pub(crate) type SpanId = [u8; 8];

/// The `sampled` bit of the trace flags.
pub(crate) const SAMPLED: u8 = 0x01;

/// Length of a version-00 value: `00-` + 32 + `-` + 16 + `-` + 2.
const LENGTH: usize = 55;

/// A valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    /// The trace this request belongs to.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Trace flags; only [`SAMPLED`] means anything in version 00.
    pub flags: u8,
}

impl TraceParent {
    /// The request's trace context; `None` when absent, repeated or malformed.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let [found] = crate::headers::find(headers, [&TRACEPARENT]);
        if found.repeated {
            return None;
        }
        Self::parse(found.first?.as_bytes())
    }

    /// Parses one value per the spec: lower-case hex only; version `ff` is invalid; version
    /// 00 has exactly 55 characters; a later version may append fields after a `-`, and its
    /// first 55 characters are read as version 00 (flags other than sampled dropped).
    pub(crate) fn parse(value: &[u8]) -> Option<Self> {
        if value.len() < LENGTH {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        match version {
            0x00 if value.len() != LENGTH => return None,
            0xff => return None,
            0x00 => {}
            _ if value.len() > LENGTH && value[LENGTH] != b'-' => return None,
            _ => {}
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (index, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[3 + 2 * index..5 + 2 * index])?;
        }
        let mut parent_id = [0u8; 8];
        for (index, byte) in parent_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[36 + 2 * index..38 + 2 * index])?;
        }
        let mut flags = hex_byte(&value[53..55])?;
        if version != 0 {
            flags &= SAMPLED;
        }
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the caller recorded its span.
    pub(crate) fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// The version-00 value naming `span_id` as the parent of whatever the next hop does.
pub(crate) fn header_value(trace_id: &TraceId, span_id: &SpanId, flags: u8) -> HeaderValue {
    let mut text = [0u8; LENGTH];
    text[0..3].copy_from_slice(b"00-");
    hex(trace_id, &mut text[3..35]);
    text[35] = b'-';
    hex(span_id, &mut text[36..52]);
    text[52] = b'-';
    hex(&[flags], &mut text[53..55]);
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
pub(crate) fn hex(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

/// Two lower-case hex digits.
fn hex_byte(pair: &[u8]) -> Option<u8> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_version_00_value_is_read_whole() {
        let parent = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(parent.trace_id[0], 0x4b);
        assert_eq!(parent.trace_id[15], 0x36);
        assert_eq!(
            parent.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(parent.sampled());
        let written = header_value(&parent.trace_id, &parent.parent_id, parent.flags);
        assert_eq!(written, VALID);
    }

    #[test]
    fn all_zero_ids_version_ff_and_upper_case_are_invalid() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00_and_may_carry_more_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-the-future-says";
        let parent = TraceParent::parse(later.as_bytes()).unwrap();
        assert_eq!(parent.flags, SAMPLED, "unknown flags are dropped");
        let glued = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x";
        assert_eq!(TraceParent::parse(glued.as_bytes()), None);
    }

    #[test]
    fn two_traceparent_headers_are_no_context() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert_eq!(TraceParent::from_headers(&headers), None);
    }
}
