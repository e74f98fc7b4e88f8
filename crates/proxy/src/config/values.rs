//! Values written the way an operator writes them: durations as `250ms`, sizes as `16KiB`.
//!
//! Each parses once, at load, into the typed value the request path uses, and a value that
//! does not parse is an error pointing at the value itself.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A duration written with its unit, like `250ms`, `10s` or `1m 30s`.
///
/// A value that does not parse is kept as its error rather than failing the whole parse, so
/// validation can report it at its place along with every other error in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DurationValue(pub Result<Duration, String>);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with its unit, like \"250ms\" or \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DurationValue, E> {
                Ok(DurationValue(parse_duration(text)))
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<DurationValue, E> {
                Ok(DurationValue(Err(format!(
                    "a bare number ({number}) has no unit: write it as a string with one, like \"{number}ms\" or \"{number}s\""
                ))))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<DurationValue, E> {
                self.visit_i64(i64::try_from(number).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `250ms`, `1.5s`, `1m 30s`; refuses negative durations with a message that says so.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!(
            "duration \"{text}\" is negative; durations must be zero or more"
        ));
    }
    if let Some((number, unit)) = split_fraction(trimmed) {
        let scale = match unit {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad_duration(text)),
        };
        return Duration::try_from_secs_f64(number * scale).map_err(|_| bad_duration(text));
    }
    humantime::parse_duration(trimmed).map_err(|_| bad_duration(text))
}

/// `1.5s` style values, which humantime does not take.
fn split_fraction(text: &str) -> Option<(f64, &str)> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    if !number.contains('.') {
        return None;
    }
    Some((number.parse().ok()?, unit.trim()))
}

fn bad_duration(text: &str) -> String {
    format!(
        "invalid duration \"{text}\": expected a number and a unit (ms, s, m, h), like \"250ms\" or \"1.5s\""
    )
}

impl JsonSchema for DurationValue {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration with its unit, like \"250ms\", \"1.5s\", \"10s\" or \"1m 30s\".",
            "pattern": "^[0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|m|min|h|hr)?(\\s+[0-9]+\\s*[a-zµ]+)*$"
        })
    }
}

/// A duration the proxy may learn: `"auto"`, or a duration with its unit like `"50ms"`. Kept
/// as its error when it is neither, like [`DurationValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LearnedDurationValue(pub Result<Learned, String>);

/// What a [`LearnedDurationValue`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// `"auto"`: learned from what is observed.
    Auto,
    /// Always this long.
    Fixed(Duration),
}

impl<'de> Deserialize<'de> for LearnedDurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LearnedDurationValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or a duration with its unit, like \"50ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                if text.trim() == "auto" {
                    return Ok(LearnedDurationValue(Ok(Learned::Auto)));
                }
                Ok(LearnedDurationValue(parse_duration(text).map(Learned::Fixed).map_err(
                    |_| {
                        format!(
                            "invalid value \"{text}\": expected \"auto\" or a number and a unit (ms, s, m, h), like \"50ms\""
                        )
                    },
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Ok(LearnedDurationValue(Err(format!(
                    "a bare number ({number}) has no unit: write \"auto\", or a string with a unit, like \"{number}ms\""
                ))))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Self::Value, E> {
                self.visit_i64(i64::try_from(number).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for LearnedDurationValue {
    fn schema_name() -> Cow<'static, str> {
        "LearnedDuration".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "\"auto\" (learned from what is observed), or a duration with its unit, like \"50ms\".",
            "anyOf": [
                { "const": "auto" },
                generator.subschema_for::<DurationValue>()
            ]
        })
    }
}

/// A size in bytes written with its unit, like `16KiB` or `10MB`; kept as its error when it
/// does not parse, like [`DurationValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ByteSizeValue(pub Result<u64, String>);

impl<'de> Deserialize<'de> for ByteSizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSizeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size with its unit, like \"16KiB\" or \"10MB\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ByteSizeValue, E> {
                Ok(ByteSizeValue(parse_size(text, || {
                    format!(
                        "invalid size \"{text}\": expected a number and a unit (B, KB, KiB, MB, MiB, GB, GiB), like \"16KiB\""
                    )
                })))
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<ByteSizeValue, E> {
                Ok(ByteSizeValue(Err(format!(
                    "a bare number ({number}) has no unit: write it as a string with one, like \"{number}B\" or \"{number}KiB\""
                ))))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<ByteSizeValue, E> {
                self.visit_i64(i64::try_from(number).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `16KiB` or `10MB` into bytes; `invalid` words the error for text that is not a
/// size. A size past `u64::MAX` bytes is refused as too large (bytesize multiplies in
/// floating point and would give `u64::MAX`, which reads as "no limit").
pub(crate) fn parse_size(text: &str, invalid: impl FnOnce() -> String) -> Result<u64, String> {
    let trimmed = text.trim();
    let Ok(size) = trimmed.parse::<bytesize::ByteSize>() else {
        return Err(invalid());
    };
    let split =
        (trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.'))).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = format!("1{}", unit.trim()).parse::<bytesize::ByteSize>();
    let exact = match (number.parse::<f64>(), unit) {
        (Ok(number), Ok(unit)) => number * unit.as_u64() as f64,
        _ => return Err(invalid()),
    };
    // NOTE: 2^64 as a float; every product at or past it saturated.
    if exact >= 18_446_744_073_709_551_616.0 {
        return Err(format!(
            "size \"{text}\" is too large: at most 16EiB (18446744073709551615 bytes)"
        ));
    }
    Ok(size.as_u64())
}

impl JsonSchema for ByteSizeValue {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A size with its unit, like \"16KiB\", \"1MiB\" or \"10MB\".",
            "pattern": "^[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B|B|[KMGT])?$"
        })
    }
}

/// A data rate written as a size per second, like `256B/s` or `1KiB/s`; kept as its error
/// when it does not parse, like [`DurationValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateValue(pub Result<u64, String>);

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(RateValue(parse_rate(&text)))
    }
}

/// Parses `256B/s` or `1KiB/s` into bytes per second.
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid rate \"{text}\": expected a size per second, like \"256B/s\" or \"1KiB/s\""
        )
    };
    let size = text.trim().strip_suffix("/s").ok_or_else(bad)?;
    parse_size(size, bad)
}

impl JsonSchema for RateValue {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A size per second, like \"256B/s\" or \"1KiB/s\".",
            "pattern": "^[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?B|B|[KMGT])?/s$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_their_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn negative_durations_are_refused_as_negative() {
        let error = parse_duration("-1s").unwrap_err();
        assert!(error.contains("negative"), "{error}");
    }

    #[test]
    fn durations_without_a_unit_are_refused_with_an_example() {
        let error = parse_duration("250").unwrap_err();
        assert!(error.contains("like \"250ms\""), "{error}");
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1.5parsecs").is_err());
    }

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("256B/s"), Ok(256));
        assert_eq!(parse_rate("1KiB/s"), Ok(1024));
        assert_eq!(parse_rate("0B/s"), Ok(0));
        let error = parse_rate("1KiB").unwrap_err();
        assert!(error.contains("like \"256B/s\""), "{error}");
    }

    #[test]
    fn sizes_past_64_bits_are_refused_as_too_large_not_saturated() {
        let invalid = || "invalid".to_owned();
        assert_eq!(parse_size("16KiB", invalid), Ok(16 * 1024));
        assert_eq!(parse_size("1.5KiB", invalid), Ok(1536));
        assert_eq!(parse_size("15EiB", invalid), Ok(15 << 60));
        for huge in ["99999999EiB", "16EiB", "18446744073709551616B", "20000PiB"] {
            let error = parse_size(huge, invalid).unwrap_err();
            assert!(error.contains("too large"), "{huge}: {error}");
        }
        assert_eq!(parse_size("lots", invalid), Err("invalid".to_owned()));
        let error = parse_rate("99999999EiB/s").unwrap_err();
        assert!(error.contains("too large"), "{error}");
    }
}
