//! A fault's `delay` as written: a duration, or a table that names a distribution by its
//! keys.
//!
//! `delay = "200ms"` holds every faulted request as long; a table draws each one's delay:
//! `{ p50 = "50ms", p99 = "2s" }` is log-normal (a slow tail, as real services have),
//! `{ min = "10ms", max = "1s" }` uniform, `{ mean = "100ms", stddev = "20ms" }` normal. The
//! keys say which, so no `kind` is needed. Reading the value by hand (not as an untagged
//! enum) keeps serde's errors precise: a misspelt key is named with the keys allowed, at its
//! line and column; which keys go together is checked afterwards, in
//! `config::validate::delay`, at the table's place.

use std::fmt;

use schemars::JsonSchema;
use serde::de::IntoDeserializer;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::config::values::DurationValue;

/// A fault's `delay`: a duration or a distribution.
#[derive(Debug)]
pub(crate) enum DelayValue {
    /// `"200ms"`: always this long.
    Fixed(DurationValue),
    /// `{ ... }`: drawn per request from the distribution its keys name (boxed: six spanned
    /// values, read once at load).
    Distribution(Box<DelayTable>),
}

/// The keys a distribution table may have; which go together is the validator's to check.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DelayTable {
    /// Log-normal: the median.
    pub p50: Option<Spanned<DurationValue>>,
    /// Log-normal: the 99th percentile.
    pub p99: Option<Spanned<DurationValue>>,
    /// Uniform: the shortest delay.
    pub min: Option<Spanned<DurationValue>>,
    /// Uniform: the longest delay.
    pub max: Option<Spanned<DurationValue>>,
    /// Normal: the mean.
    pub mean: Option<Spanned<DurationValue>>,
    /// Normal: the standard deviation.
    pub stddev: Option<Spanned<DurationValue>>,
}

impl<'de> Deserialize<'de> for DelayValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = DelayValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration like \"200ms\", or a distribution: { p50, p99 }, { min, max } or { mean, stddev }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DelayValue, E> {
                DurationValue::deserialize(text.into_deserializer()).map(DelayValue::Fixed)
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<DelayValue, E> {
                DurationValue::deserialize(number.into_deserializer()).map(DelayValue::Fixed)
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<DelayValue, E> {
                DurationValue::deserialize(number.into_deserializer()).map(DelayValue::Fixed)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<DelayValue, A::Error> {
                DelayTable::deserialize(MapAccessDeserializer::new(map))
                    .map(|table| DelayValue::Distribution(Box::new(table)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A delay: a duration, or a distribution each request's delay is drawn from.
// The schema of `delay`, its four shapes as an operator writes them; only the schema reads
// it (`DelayValue` is read by hand, for its errors).
#[derive(JsonSchema)]
#[schemars(rename = "Delay", untagged, deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "describes the file for the JSON Schema; never built"
)]
pub(crate) enum DelaySchema {
    /// Always this long, like "200ms".
    Fixed(DurationValue),
    /// Log-normal: most delays near `p50`, one in a hundred beyond `p99` (a slow tail).
    LogNormal {
        /// The median delay, more than 0.
        p50: DurationValue,
        /// The 99th percentile, at least `p50`.
        p99: DurationValue,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// The shortest delay.
        min: DurationValue,
        /// The longest delay, at least `min`.
        max: DurationValue,
    },
    /// Normal around `mean`; a draw below zero waits zero.
    Normal {
        /// The mean delay.
        mean: DurationValue,
        /// The standard deviation.
        stddev: DurationValue,
    },
}
