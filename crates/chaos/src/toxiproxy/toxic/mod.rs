//! A toxic as Toxiproxy's API describes it: a type, a stream, a toxicity and the type's
//! attributes, with Toxiproxy's exact names and units (milliseconds, KB/s, bytes,
//! microseconds for the slicer's delay), so its client libraries work unchanged.
//!
//! Attributes are parsed by merging the JSON given over the current values (defaults on
//! create), which is how Toxiproxy's Go server decodes an update: fields left out keep
//! their value.
//!
//! Two things Toxiproxy lacks, named so they cannot clash with its own: the `http_error`
//! toxic (see [`super::http`]) and `first_connections`, a field of the toxic beside
//! `toxicity` (not an attribute, which every type would then have to share) that limits
//! it to the next N connections the proxy accepts after the toxic was created. It
//! appears in the toxic's JSON only when set, so clients that compare JSON see
//! Toxiproxy's shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;

mod attributes;

pub use attributes::{Bandwidth, HttpError, Latency, LimitData, Slicer, SlowClose, TimeoutAttrs};

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// From the client to the upstream.
    Upstream,
    /// From the upstream back to the client.
    Downstream,
}

impl Stream {
    /// Parses a stream name as Toxiproxy does (case-insensitive).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.to_ascii_lowercase().as_str() {
            "upstream" => Ok(Self::Upstream),
            "downstream" => Ok(Self::Downstream),
            _ => Err(ApiError::invalid_stream()),
        }
    }

    /// The name used in JSON and in default toxic names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

/// The largest number an attribute takes: Toxiproxy's attributes are Go `int`s (64 bits,
/// signed), so a client cannot have relied on more.
pub const LARGEST: u64 = i64::MAX as u64;

/// What a toxic does, with its attributes in Toxiproxy's units.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Delays every chunk by `latency` ± `jitter` milliseconds.
    Latency(Latency),
    /// Passes data at most `rate` KB/s.
    Bandwidth(Bandwidth),
    /// Delays the close by `delay` milliseconds.
    SlowClose(SlowClose),
    /// Drops all data; closes after `timeout` ms (0: never).
    Timeout(TimeoutAttrs),
    /// Resets the connection (TCP RST) `timeout` ms after data arrives.
    ResetPeer(TimeoutAttrs),
    /// Cuts chunks to about `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer(Slicer),
    /// Closes the connection once `bytes` bytes went through.
    LimitData(LimitData),
    /// Answers `status` to its toxicity's share of HTTP/1 requests instead of forwarding
    /// them (not Toxiproxy's).
    HttpError(HttpError),
}

/// The toxic types, by their API names: Toxiproxy's seven, then Blastwall's own, in the
/// order of [`Kind::index`].
pub const TYPES: [&str; 8] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "http_error",
];

impl Kind {
    /// The API name of this toxic's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Latency(_) => "latency",
            Self::Bandwidth(_) => "bandwidth",
            Self::SlowClose(_) => "slow_close",
            Self::Timeout(_) => "timeout",
            Self::ResetPeer(_) => "reset_peer",
            Self::Slicer(_) => "slicer",
            Self::LimitData(_) => "limit_data",
            Self::HttpError(_) => "http_error",
        }
    }

    /// The type's place in [`TYPES`].
    pub fn index(&self) -> usize {
        TYPES
            .iter()
            .position(|name| *name == self.type_name())
            .unwrap_or_default()
    }

    /// The default attributes of a type, or `None` for a type Toxiproxy does not know.
    pub fn default_of(type_name: &str) -> Option<Self> {
        Some(match type_name {
            "latency" => Self::Latency(Latency::default()),
            "bandwidth" => Self::Bandwidth(Bandwidth::default()),
            "slow_close" => Self::SlowClose(SlowClose::default()),
            "timeout" => Self::Timeout(TimeoutAttrs::default()),
            "reset_peer" => Self::ResetPeer(TimeoutAttrs::default()),
            "slicer" => Self::Slicer(Slicer::default()),
            "limit_data" => Self::LimitData(LimitData::default()),
            "http_error" => Self::HttpError(HttpError::default()),
            _ => return None,
        })
    }

    /// The attributes as JSON.
    pub fn attributes(&self) -> Value {
        let value = match self {
            Self::Latency(a) => serde_json::to_value(a),
            Self::Bandwidth(a) => serde_json::to_value(a),
            Self::SlowClose(a) => serde_json::to_value(a),
            Self::Timeout(a) | Self::ResetPeer(a) => serde_json::to_value(a),
            Self::Slicer(a) => serde_json::to_value(a),
            Self::LimitData(a) => serde_json::to_value(a),
            Self::HttpError(a) => serde_json::to_value(a),
        };
        value.unwrap_or(Value::Null)
    }

    /// These attributes with the fields of `given` (a JSON object, or null) put over them.
    pub fn merged(&self, given: &Value) -> Result<Self, ApiError> {
        let given = match given {
            Value::Null => return Ok(self.clone()),
            Value::Object(map) => map,
            other => {
                return Err(ApiError::bad_body(format!(
                    "attributes must be an object, got {other}"
                )));
            }
        };
        let mut merged: Map<String, Value> = match self.attributes() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        for (key, value) in given {
            if merged.contains_key(key) {
                merged.insert(key.clone(), value.clone());
            }
        }
        let merged = Value::Object(merged);
        let bad = |err: serde_json::Error| ApiError::bad_body(format!("attributes: {err}"));
        let kind = match self {
            Self::Latency(_) => Self::Latency(serde_json::from_value(merged).map_err(bad)?),
            Self::Bandwidth(_) => Self::Bandwidth(serde_json::from_value(merged).map_err(bad)?),
            Self::SlowClose(_) => Self::SlowClose(serde_json::from_value(merged).map_err(bad)?),
            Self::Timeout(_) => Self::Timeout(serde_json::from_value(merged).map_err(bad)?),
            Self::ResetPeer(_) => Self::ResetPeer(serde_json::from_value(merged).map_err(bad)?),
            Self::Slicer(_) => Self::Slicer(serde_json::from_value(merged).map_err(bad)?),
            Self::LimitData(_) => Self::LimitData(serde_json::from_value(merged).map_err(bad)?),
            Self::HttpError(_) => Self::HttpError(serde_json::from_value(merged).map_err(bad)?),
        };
        kind.validate()?;
        Ok(kind)
    }

    /// Refuses attributes the data path cannot honour (Toxiproxy's slicer loops forever on
    /// an average size of 0; here it is a 400), and numbers past [`LARGEST`], which
    /// Toxiproxy's Go server cannot decode into its `int` attributes either (a 400 there).
    fn validate(&self) -> Result<(), ApiError> {
        if let Value::Object(attributes) = self.attributes() {
            for (name, value) in &attributes {
                if value.as_u64().is_some_and(|number| number > LARGEST) {
                    return Err(ApiError::bad_body(format!(
                        "attributes: {} {name} must be at most {LARGEST}, got {value}",
                        self.type_name()
                    )));
                }
            }
        }
        if let Self::HttpError(attrs) = self
            && !(200..=599).contains(&attrs.status)
        {
            return Err(ApiError::bad_body(format!(
                "attributes: http_error status must be from 200 to 599, got {}",
                attrs.status
            )));
        }
        if let Self::Slicer(slicer) = self {
            if slicer.average_size == 0 {
                return Err(ApiError::bad_body(
                    "attributes: slicer average_size must be at least 1".to_owned(),
                ));
            }
            if slicer.size_variation >= slicer.average_size {
                return Err(ApiError::bad_body(
                    "attributes: slicer size_variation must be less than average_size".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

/// One toxic on a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique within its proxy (both streams).
    pub name: String,
    /// Which way it acts.
    pub stream: Stream,
    /// Share of connections (0 to 1) it applies to, drawn once per connection.
    pub toxicity: f64,
    /// What it does.
    pub kind: Kind,
    /// Only the next this many connections the proxy accepts after the toxic was created
    /// (Blastwall's, not Toxiproxy's); `None`: every connection.
    pub first_connections: Option<u64>,
    /// The proxy's count of accepted connections when the toxic was created: the first
    /// connection it counts for `first_connections` (set by the proxy).
    pub from_connection: u64,
}

impl Toxic {
    /// The JSON Toxiproxy answers for a toxic.
    pub fn to_json(&self) -> Value {
        let mut json = serde_json::json!({
            "attributes": self.kind.attributes(),
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
        });
        if let (Some(first), Some(object)) = (self.first_connections, json.as_object_mut()) {
            object.insert("first_connections".to_owned(), first.into());
        }
        json
    }

    /// Whether it acts on the connection the proxy accepted `ordinal`-th (0 first), before
    /// any toxicity draw: within `first_connections`, and for `http_error` (which must
    /// see each request from its first byte) only on connections accepted after it.
    pub fn covers(&self, ordinal: u64) -> bool {
        let after = ordinal >= self.from_connection;
        let within = self
            .first_connections
            .is_none_or(|first| after && ordinal - self.from_connection < first);
        within && (after || !matches!(self.kind, Kind::HttpError(_)))
    }

    /// A toxic from a create body: stream defaults to downstream (upstream for
    /// `http_error`, the stream requests travel), toxicity to 1, the name to
    /// `{type}_{stream}`.
    pub fn from_create(body: &Value) -> Result<Self, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::bad_body("expected a JSON object".to_owned()))?;
        let type_name = match object.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(text)) => text.as_str(),
            Some(other) => {
                return Err(ApiError::bad_body(format!(
                    "type: expected a string, got {other}"
                )));
            }
        };
        let stream = match object.get("stream") {
            None | Some(Value::Null) if type_name == "http_error" => Stream::Upstream,
            None | Some(Value::Null) => Stream::Downstream,
            Some(Value::String(text)) => Stream::parse(text)?,
            Some(other) => {
                return Err(ApiError::bad_body(format!(
                    "stream: expected a string, got {other}"
                )));
            }
        };
        if type_name == "http_error" && stream != Stream::Upstream {
            return Err(ApiError::bad_body(
                "http_error acts on the requests a client sends: its stream must be upstream"
                    .to_owned(),
            ));
        }
        let name = match object.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => {
                return Err(ApiError::bad_body(format!(
                    "name: expected a string, got {other}"
                )));
            }
        };
        let name = if name.is_empty() {
            format!("{type_name}_{}", stream.as_str())
        } else {
            name
        };
        if name.contains('/') {
            return Err(ApiError::slash_in_name("toxic", &name));
        }
        let toxicity = toxicity_in(object, 1.0)?;
        let first_connections = first_connections_in(object, None)?;
        let kind = Kind::default_of(type_name).ok_or_else(ApiError::invalid_toxic_type)?;
        let kind = kind.merged(object.get("attributes").unwrap_or(&Value::Null))?;
        Ok(Self {
            name,
            stream,
            toxicity,
            kind,
            first_connections,
            from_connection: 0,
        })
    }

    /// This toxic updated by a body: attributes and toxicity given replace the current ones,
    /// the rest is kept.
    pub fn updated(&self, body: &Value) -> Result<Self, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::bad_body("expected a JSON object".to_owned()))?;
        let toxicity = toxicity_in(object, self.toxicity)?;
        let first_connections = first_connections_in(object, self.first_connections)?;
        let kind = self
            .kind
            .merged(object.get("attributes").unwrap_or(&Value::Null))?;
        Ok(Self {
            toxicity,
            kind,
            first_connections,
            ..self.clone()
        })
    }
}

fn toxicity_in(object: &Map<String, Value>, default: f64) -> Result<f64, ApiError> {
    match object.get("toxicity") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(value) if (0.0..=1.0).contains(&value) => Ok(value),
            _ => Err(ApiError::bad_body(format!(
                "toxicity must be between 0 and 1, got {number}"
            ))),
        },
        Some(other) => Err(ApiError::bad_body(format!(
            "toxicity: expected a number, got {other}"
        ))),
    }
}

/// `first_connections`: absent or null keeps `current`; a count of at least 1 sets it.
fn first_connections_in(
    object: &Map<String, Value>,
    current: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match object.get("first_connections") {
        None | Some(Value::Null) => Ok(current),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(count) if count >= 1 => Ok(Some(count)),
            _ => Err(ApiError::bad_body(format!(
                "first_connections must be a whole number of at least 1 (leave it out for every connection), got {number}"
            ))),
        },
        Some(other) => Err(ApiError::bad_body(format!(
            "first_connections: expected a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests;
