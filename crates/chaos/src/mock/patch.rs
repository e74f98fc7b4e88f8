//! `PATCH /_mock/behaviour`: change only the fields given.
//!
//! A test that slows one replica down should not have to restate its status, body and
//! capacity, nor undo what another part of the test set. A patch is a JSON object whose
//! top-level fields replace the current behaviour's; fields left out keep their value. A
//! field is replaced whole, so `paths`, `phases` and `latency_distribution` are given in full
//! (as in JSON Merge Patch for arrays; objects are not merged deeper). `null` clears an
//! optional field such as `capacity`. Each field given is checked alone first, so a bad one
//! is named in the error, and the result is validated as a `PUT` would be.
//!
//! A patch sets a new behaviour, so a script of `phases` starts again from its first phase;
//! while phases run, a patch of the other top-level fields changes nothing that answers.

use serde_json::{Map, Value};

use super::{Behaviour, InvalidBehaviour};

/// Why a patch was refused; the behaviour in force stays.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// Not JSON at all.
    #[error("invalid behaviour JSON: {0}")]
    Json(String),
    /// JSON, but not an object of fields.
    #[error("a behaviour patch must be a JSON object of fields, got {0}")]
    NotAnObject(&'static str),
    /// A field that is unknown or has a value of the wrong type.
    #[error("invalid behaviour field `{field}`: {message}")]
    Field {
        /// The field, as given.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Fields each fine alone that make no sense together (or a value out of range).
    #[error("invalid behaviour: {0}")]
    Invalid(#[from] InvalidBehaviour),
}

impl Behaviour {
    /// This behaviour with the fields of the JSON object `patch` replaced.
    pub fn patched(&self, patch: &[u8]) -> Result<Behaviour, PatchError> {
        let patch: Value =
            serde_json::from_slice(patch).map_err(|err| PatchError::Json(err.to_string()))?;
        let Value::Object(fields) = patch else {
            return Err(PatchError::NotAnObject(kind(&patch)));
        };
        let mut merged = match serde_json::to_value(self) {
            Ok(Value::Object(current)) => current,
            // NOTE: a behaviour always serializes to an object; an empty base only loses
            // the fields not given, and the result is still validated.
            _ => Map::new(),
        };
        for (field, value) in fields {
            let alone = Value::Object(Map::from_iter([(field.clone(), value.clone())]));
            if let Err(err) = serde_json::from_value::<Behaviour>(alone) {
                let message = err.to_string();
                return Err(PatchError::Field { field, message });
            }
            merged.insert(field, value);
        }
        let behaviour: Behaviour =
            serde_json::from_value(Value::Object(merged)).map_err(|err| PatchError::Field {
                field: "(merged)".into(),
                message: err.to_string(),
            })?;
        behaviour.validate()?;
        Ok(behaviour)
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mock::Mode;

    fn base() -> Behaviour {
        Behaviour {
            status: 202,
            body: "kept".into(),
            capacity: Some(8),
            ..Behaviour::default()
        }
    }

    #[test]
    fn a_patch_changes_only_the_fields_given() {
        let patched = base()
            .patched(br#"{"latency":"150ms","mode":"stall_body"}"#)
            .expect("valid patch");
        assert_eq!(patched.latency, Duration::from_millis(150));
        assert_eq!(patched.mode, Mode::StallBody);
        assert_eq!((patched.status, patched.body.as_str()), (202, "kept"));
        assert_eq!(patched.capacity, Some(8));
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        assert_eq!(base().patched(b"{}"), Ok(base()));
    }

    #[test]
    fn null_clears_an_optional_field() {
        let patched = base()
            .patched(br#"{"capacity":null}"#)
            .expect("valid patch");
        assert_eq!(patched.capacity, None);
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = base()
            .patched(br#"{"status":503,"latncy":"1s"}"#)
            .unwrap_err();
        assert!(
            matches!(&err, PatchError::Field { field, .. } if field == "latncy"),
            "{err}"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = base().patched(br#"{"status":"five hundred"}"#).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("invalid behaviour field `status`: invalid type"),
            "{message}"
        );
        let err = base().patched(br#"{"latency":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("`latency`"), "{err}");
    }

    #[test]
    fn an_out_of_range_value_is_refused_as_put_refuses_it() {
        let err = base().patched(br#"{"failure_status":42}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid behaviour: failure_status must be an HTTP status from 100 to 599, got 42"
        );
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        assert_eq!(
            base().patched(b"[1]"),
            Err(PatchError::NotAnObject("an array"))
        );
        assert!(matches!(base().patched(b"{oops"), Err(PatchError::Json(_))));
    }
}
