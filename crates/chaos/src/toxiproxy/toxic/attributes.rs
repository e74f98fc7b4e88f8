//! The attributes of each toxic type, with Toxiproxy's names and units: the JSON object a
//! client sends as `attributes`, read with serde over the current values.

use serde::{Deserialize, Serialize};

/// Attributes of `latency`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Milliseconds.
    pub latency: u64,
    /// Milliseconds either side.
    pub jitter: u64,
}

/// Attributes of `bandwidth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// KB/s (1 KB = 1000 bytes, as Toxiproxy counts); 0 means no limit.
    pub rate: u64,
}

/// Attributes of `slow_close`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowClose {
    /// Milliseconds.
    pub delay: u64,
}

/// Attributes of `timeout` and `reset_peer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutAttrs {
    /// Milliseconds.
    pub timeout: u64,
}

/// Attributes of `slicer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slicer {
    /// Bytes.
    pub average_size: u64,
    /// Bytes either side; must be below `average_size`.
    pub size_variation: u64,
    /// Microseconds between slices.
    pub delay: u64,
}

/// Attributes of `limit_data`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitData {
    /// Bytes.
    pub bytes: u64,
}

/// Attributes of `http_error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpError {
    /// The status answered (200 to 599).
    pub status: u16,
    /// The answer's body (text).
    pub body: String,
}

impl Default for HttpError {
    fn default() -> Self {
        Self {
            status: 503,
            body: String::new(),
        }
    }
}
