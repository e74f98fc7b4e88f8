//! A cluster's passive checks (`circuit_breaker`, `endpoint_circuit_breaker`,
//! `outlier_detection`), which learn from the calls the cluster makes: where they are taken
//! out of the cluster's section, and what their validators share, the place they report at
//! and the note of where each key was written.
//!
//! Each is checked by the policy crate itself and kept checked, so the live breakers and
//! detector are built without a failure path: the policy reports every setting it refuses,
//! each naming its field, and `breaker.rs` and `outlier.rs` say each refusal in the file's
//! words at the key that holds it ([`Written`]), checking themselves only what the policy
//! leaves open.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::PassiveConfig;
use crate::config::file::ClusterSection;
use crate::config::values::DurationValue;

/// A call at least this long is slow, for a breaker and for outlier detection, unless the
/// section says otherwise.
pub(super) const DEFAULT_SLOW_CALL_DURATION: Duration = Duration::from_secs(1);

/// The typed passive checks of a cluster; `section` is taken apart (its three fields).
pub(super) fn passive(
    check: &mut Checker<'_>,
    cluster: &str,
    cluster_span: Range<usize>,
    section: &mut ClusterSection,
) -> PassiveConfig {
    let mut at = Place {
        check,
        cluster,
        cluster_span,
    };
    let circuit_breaker = section
        .circuit_breaker
        .take()
        .and_then(|breaker| at.breaker("circuit_breaker", breaker));
    let endpoint_circuit_breaker = section
        .endpoint_circuit_breaker
        .take()
        .and_then(|breaker| at.breaker("endpoint_circuit_breaker", breaker));
    let (outlier_detection, stall) = section
        .outlier_detection
        .take()
        .map_or((None, None), |outlier| at.outlier(outlier));
    PassiveConfig {
        circuit_breaker,
        endpoint_circuit_breaker,
        outlier_detection,
        stall,
    }
}

/// The checker, and the cluster whose sections are being checked (for messages).
pub(super) struct Place<'c, 'a> {
    pub(super) check: &'c mut Checker<'a>,
    pub(super) cluster: &'c str,
    pub(super) cluster_span: Range<usize>,
}

impl Place<'_, '_> {
    pub(super) fn error_at(&mut self, span: Range<usize>, key: &str, problem: &str) {
        let message = format!("cluster \"{}\": {key} {problem}", self.cluster);
        self.check.error_at(span, message);
    }

    /// A count as written, noted under `field` with its number; `None` if it is more than
    /// `max` (a bound of the proxy's, where the policy refuses only a zero; reported at `key`
    /// in the words the zero's refusal is said in).
    pub(super) fn written_count(
        &mut self,
        value: Option<Spanned<u32>>,
        field: &'static str,
        max: u32,
        key: impl FnOnce() -> String,
        written: &mut Written,
    ) -> Option<u32> {
        let count = written.quoted(field, value)?;
        if count > max {
            let span = written.span(field);
            let span = span.unwrap_or_else(|| self.cluster_span.clone());
            self.error_at(
                span,
                &key(),
                &format!("must be from 1 to {max}, got {count}"),
            );
            return None;
        }
        Some(count)
    }

    /// A duration as written, noted under `field`; `None` if it did not parse (reported at
    /// its place) or is longer than `max` (a bound of the proxy's, where the policy leaves
    /// one open; reported at `key`).
    pub(super) fn written_duration(
        &mut self,
        value: Option<Spanned<DurationValue>>,
        field: &'static str,
        max: Option<Duration>,
        key: impl FnOnce() -> String,
        written: &mut Written,
    ) -> Option<Duration> {
        let value = value?;
        let span = value.span();
        written.note(field, span.clone(), None);
        let errors = self.check.errors.len();
        let duration = duration_or(self.check, Some(value), Duration::ZERO);
        if self.check.errors.len() > errors {
            return None;
        }
        if let Some(max) = max.filter(|max| duration > *max) {
            self.error_at(span, &key(), &format!("must be at most {max:?}"));
            return None;
        }
        Some(duration)
    }
}

/// Where the keys of a section were written (outlier detection's by the policy's field names,
/// a breaker's by its own), and the numbers written there, so that a refusal points at its
/// key and quotes the file.
#[derive(Default)]
pub(super) struct Written(Vec<(&'static str, Range<usize>, Option<u32>)>);

impl Written {
    pub(super) fn note(&mut self, field: &'static str, span: Range<usize>, value: Option<u32>) {
        self.0.push((field, span, value));
    }

    /// A count as written, noted.
    pub(super) fn number<T: Copy>(
        &mut self,
        field: &'static str,
        value: Option<Spanned<T>>,
    ) -> Option<T> {
        let value = value?;
        self.note(field, value.span(), None);
        Some(*value.get_ref())
    }

    /// A number as written, noted with its value, so that a refusal can quote the file.
    pub(super) fn quoted(
        &mut self,
        field: &'static str,
        value: Option<Spanned<u32>>,
    ) -> Option<u32> {
        let value = value?;
        let number = *value.get_ref();
        self.note(field, value.span(), Some(number));
        Some(number)
    }

    /// A percentage as written, noted; one past `u8` is kept as 255, out of range all the
    /// same, and the file's number is quoted.
    pub(super) fn percent(
        &mut self,
        field: &'static str,
        value: Option<Spanned<u32>>,
    ) -> Option<u8> {
        let value = value?;
        let number = *value.get_ref();
        self.note(field, value.span(), Some(number));
        Some(u8::try_from(number).unwrap_or(u8::MAX))
    }

    pub(super) fn span(&self, field: &str) -> Option<Range<usize>> {
        self.0
            .iter()
            .find(|(noted, ..)| *noted == field)
            .map(|(_, span, _)| span.clone())
    }

    pub(super) fn value(&self, field: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|(noted, ..)| *noted == field)
            .and_then(|(.., value)| *value)
    }
}

/// Whether any of the settings was written.
pub(super) fn section_has(written: &[bool]) -> bool {
    written.iter().any(|written| *written)
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use crate::config::{Config, PassiveConfig};

    /// A file with one cluster, `api`, holding `sections`.
    pub(in crate::config::validate) fn config(sections: &str) -> String {
        format!(
            r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{{ address = "127.0.0.1:9001" }}]
{sections}
"#
        )
    }

    /// The table `[cluster.api.{table}]` with the keys that have a value.
    pub(in crate::config::validate) fn section(
        table: &str,
        keys: &[(&str, Option<String>)],
    ) -> String {
        let mut section = format!("[cluster.api.{table}]\n");
        for (key, value) in keys {
            if let Some(value) = value {
                section.push_str(&format!("{key} = {value}\n"));
            }
        }
        section
    }

    /// The passive checks of `api` in a valid file.
    pub(in crate::config::validate) fn passive(sections: &str) -> PassiveConfig {
        match Config::parse(&config(sections), Path::new("blastwall.toml")) {
            Ok(config) => config.clusters[0].passive.clone(),
            Err(errors) => panic!("{errors}"),
        }
    }

    /// The errors of an invalid file.
    pub(in crate::config::validate) fn errors(sections: &str) -> Vec<String> {
        match Config::parse(&config(sections), Path::new("blastwall.toml")) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn everything_is_off_unless_configured() {
        assert_eq!(passive(""), PassiveConfig::default());
    }
}
