//! Validation of `outlier_detection`: the section as the policy's [`OutlierConfig`],
//! checked by the policy.
//!
//! The ranges are the policy's alone: it reports every setting it refuses, each naming its
//! field ([`OutlierConfigError::field`]), and this file says each refusal in the file's words
//! at the key that holds it. What it checks itself are the proxy's own bounds, which the
//! policy leaves open (no interval or ejection longer than the longest ejection, at most
//! 100,000 hosts), that at least one rule is on, and stall detection (`stall_after`), which
//! is the proxy's own rule (the policy's `outlier::stall`) beside the detector's.

use std::time::Duration;

use blastwall_policy::outlier::stall::StallAfter;
use blastwall_policy::outlier::{
    FailurePercentageConfig, MAX_EJECTION_TIME_LIMIT, OutlierConfig, OutlierConfigError,
    SuccessRateConfig, ValidOutlierConfig,
};
use toml::Spanned;

use super::duration_or;
use super::passive::{DEFAULT_SLOW_CALL_DURATION, Place, Written, section_has};
use crate::config::StallConfig;
use crate::config::file::OutlierDetectionSection;
use crate::config::values::{DurationValue, Learned, LearnedDurationValue};

const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// More hosts than this for success-rate ejection is a typo, not a cluster.
const MAX_MINIMUM_HOSTS: u32 = 100_000;

impl Place<'_, '_> {
    /// Outlier detection, checked by the policy, and stall detection beside it: every
    /// setting the policy refuses is reported at the key that holds it, in the file's words.
    /// What is checked here is only the proxy's own: the upper bounds the policy leaves open,
    /// and that at least one rule is on (`stall_after` alone is one: the detector is then
    /// left out).
    pub(super) fn outlier(
        &mut self,
        mut section: OutlierDetectionSection,
    ) -> (Option<ValidOutlierConfig>, Option<StallConfig>) {
        let errors = self.check.errors.len();
        let stall_after = section
            .stall_after
            .take()
            .and_then(|value| self.stall_after(value));
        let stall_written = self.check.errors.len() > errors || stall_after.is_some();
        let mut written = Written::default();
        let config = self.outlier_config(section, &mut written);
        for refusal in config.errors() {
            self.outlier_refused(&refusal, &written);
        }
        // NOTE: slow_call is not a rule of its own: it makes slow calls failures for the others.
        let has_rule = section_has(&[
            config.consecutive_errors.is_some(),
            config.consecutive_gateway_errors.is_some(),
            config.failure_percentage.is_some(),
            config.success_rate.is_some(),
        ]);
        if !has_rule && !stall_written && self.check.errors.len() == errors {
            let span = self.cluster_span.clone();
            self.error_at(
                span,
                "outlier_detection",
                "enables no rule: give at least one of consecutive_errors, \
                 consecutive_gateway_errors, failure_percentage, success_rate, stall_after \
                 (slow_call only makes slow calls count as failures for those)",
            );
        }
        if self.check.errors.len() > errors {
            return (None, None);
        }
        let stall = stall_after.map(|after| StallConfig {
            after,
            max_ejection_percent: config.max_ejection_percent,
        });
        if !has_rule {
            return (None, stall);
        }
        match config.validated() {
            Ok(valid) => (Some(valid), stall),
            Err(error) => {
                let span = self.cluster_span.clone();
                self.error_at(span, "outlier_detection", &error.to_string());
                (None, None)
            }
        }
    }

    /// `stall_after`: `"auto"`, or a duration more than zero and at most the longest
    /// ejection; `None` (reported at the value) otherwise.
    fn stall_after(&mut self, value: Spanned<LearnedDurationValue>) -> Option<StallAfter> {
        let span = value.span();
        let problem = match value.into_inner().0 {
            Ok(Learned::Auto) => return Some(StallAfter::Auto),
            Ok(Learned::Fixed(after)) if after.is_zero() => "must be more than zero".to_owned(),
            Ok(Learned::Fixed(after)) if after > MAX_EJECTION_TIME_LIMIT => {
                format!("must be at most {MAX_EJECTION_TIME_LIMIT:?}")
            }
            Ok(Learned::Fixed(after)) => return Some(StallAfter::Fixed(after)),
            Err(message) => message,
        };
        self.error_at(span, "outlier_detection.stall_after", &problem);
        None
    }

    /// The section as the policy's config, defaults filled in, each key's place noted in
    /// `written`. Values out of the policy's ranges are kept for it to refuse.
    fn outlier_config(
        &mut self,
        section: OutlierDetectionSection,
        written: &mut Written,
    ) -> OutlierConfig {
        let defaults = OutlierConfig::default();
        let interval = self.outlier_duration(section.interval, "interval", written);
        let base_ejection_time =
            self.outlier_duration(section.base_ejection_time, "base_ejection_time", written);
        let base_ejection_time = base_ejection_time.unwrap_or(defaults.base_ejection_time);
        let max_ejection_time = section.max_ejection_time.map(|max| {
            written.note("max_ejection_time", max.span(), None);
            duration_or(self.check, Some(max), DEFAULT_MAX_EJECTION_TIME)
        });
        let failure_percentage = section.failure_percentage.map(|fp| {
            let defaults = FailurePercentageConfig::default();
            FailurePercentageConfig {
                threshold_percent: written
                    .percent("failure_percentage.threshold_percent", fp.threshold)
                    .unwrap_or(defaults.threshold_percent),
                request_volume: written
                    .number("failure_percentage.request_volume", fp.request_volume)
                    .unwrap_or(defaults.request_volume),
            }
        });
        let success_rate = section.success_rate.map(|sr| {
            let defaults = SuccessRateConfig::default();
            SuccessRateConfig {
                stdev_factor: sr.stdev_factor.map_or(defaults.stdev_factor, |factor| {
                    written.note("success_rate.stdev_factor", factor.span(), None);
                    factor.into_inner()
                }),
                request_volume: written
                    .number("success_rate.request_volume", sr.request_volume)
                    .unwrap_or(defaults.request_volume),
                minimum_hosts: self
                    .written_count(
                        sr.minimum_hosts,
                        "success_rate.minimum_hosts",
                        MAX_MINIMUM_HOSTS,
                        || "outlier_detection.success_rate.minimum_hosts".to_owned(),
                        written,
                    )
                    .map(|hosts| hosts as usize)
                    .unwrap_or(defaults.minimum_hosts),
            }
        });
        OutlierConfig {
            interval: interval.unwrap_or(defaults.interval),
            base_ejection_time,
            max_ejection_time: max_ejection_time
                .unwrap_or(DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time)),
            max_ejection_percent: written
                .percent("max_ejection_percent", section.max_ejection_percent)
                .unwrap_or(defaults.max_ejection_percent),
            consecutive_errors: written.number("consecutive_errors", section.consecutive_errors),
            consecutive_gateway_errors: written.number(
                "consecutive_gateway_errors",
                section.consecutive_gateway_errors,
            ),
            failure_percentage,
            success_rate,
            slow_call_threshold: section.slow_call.map(|slow| {
                self.outlier_duration(Some(slow.threshold), "slow_call_threshold", written)
                    .unwrap_or(DEFAULT_SLOW_CALL_DURATION)
            }),
        }
    }

    /// A duration of outlier detection, noted; one longer than the longest ejection is an
    /// error here (a bound of the proxy's: the policy bounds only `max_ejection_time`).
    fn outlier_duration(
        &mut self,
        value: Option<Spanned<DurationValue>>,
        field: &'static str,
        written: &mut Written,
    ) -> Option<Duration> {
        let key = || format!("outlier_detection.{}", outlier_key(field));
        let max = Some(MAX_EJECTION_TIME_LIMIT);
        self.written_duration(value, field, max, key, written)
    }

    /// Reports the policy's refusal of one outlier setting at the key that holds it, in the
    /// words of the file.
    fn outlier_refused(&mut self, refusal: &OutlierConfigError, written: &Written) {
        use OutlierConfigError as E;
        let field = refusal.field();
        let value = written.value(field);
        let problem = match refusal {
            E::ZeroInterval | E::ZeroBaseEjectionTime | E::Zero("slow_call_threshold") => {
                "must be more than zero".to_owned()
            }
            E::MaxBelowBase { max, .. } if max.is_zero() => "must be more than zero".to_owned(),
            E::MaxBelowBase { base, max } => {
                format!("({max:?}) cannot be less than base_ejection_time ({base:?})")
            }
            E::MaxEjectionTimeTooLong(_) => format!("must be at most {MAX_EJECTION_TIME_LIMIT:?}"),
            E::PercentOutOfRange {
                field: "max_ejection_percent",
                ..
            } => format!("is a percentage from 0 to 100, got {}", value.unwrap_or(0)),
            E::PercentOutOfRange { .. } | E::Zero("failure_percentage.threshold_percent") => {
                format!("is a percentage from 1 to 100, got {}", value.unwrap_or(0))
            }
            E::Zero("consecutive_errors" | "consecutive_gateway_errors") => {
                format!("must be from 1 to {}, got 0", u32::MAX)
            }
            E::Zero("success_rate.minimum_hosts") => {
                format!("must be from 1 to {MAX_MINIMUM_HOSTS}, got 0")
            }
            E::Zero(_) => "must be at least 1".to_owned(),
            E::BadStdevFactor(factor) => {
                format!("must be a number of at least 0, got {factor}")
            }
        };
        let span = written
            .span(field)
            .unwrap_or_else(|| self.cluster_span.clone());
        let key = format!("outlier_detection.{}", outlier_key(field));
        self.error_at(span, &key, &problem);
    }
}

/// The key under `outlier_detection` that holds a field of the policy's config.
fn outlier_key(field: &str) -> &str {
    match field {
        "failure_percentage.threshold_percent" => "failure_percentage.threshold",
        "slow_call_threshold" => "slow_call.threshold",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::passive::tests::{config, errors, passive, section};
    use crate::config::Config;

    proptest::proptest! {
        /// Whatever outlier detection the validator accepts, the policy accepts too.
        #[test]
        fn every_outlier_detection_the_validator_accepts_builds(
            errors_in_a_row in proptest::option::of(0u32..5),
            gateway in proptest::option::of(0u32..5),
            interval_ms in proptest::option::of(0u64..20_000),
            base_ms in proptest::option::of(0u64..60_000),
            max_ms in proptest::option::of(0u64..600_000),
            percent in proptest::option::of(0u32..120),
            threshold in proptest::option::of(0u32..120),
            stdev in proptest::option::of(-1.0f64..5.0),
            hosts in proptest::option::of(0u32..10),
        ) {
            let section = section(
                "outlier_detection",
                &[
                    ("consecutive_errors", errors_in_a_row.map(|n| n.to_string())),
                    ("consecutive_gateway_errors", gateway.map(|n| n.to_string())),
                    ("interval", interval_ms.map(|n| format!("\"{n}ms\""))),
                    ("base_ejection_time", base_ms.map(|n| format!("\"{n}ms\""))),
                    ("max_ejection_time", max_ms.map(|n| format!("\"{n}ms\""))),
                    ("max_ejection_percent", percent.map(|n| n.to_string())),
                    ("failure_percentage", threshold.map(|n| format!("{{ threshold = {n} }}"))),
                    (
                        "success_rate",
                        stdev.zip(hosts).map(|(s, h)| {
                            format!("{{ stdev_factor = {s:?}, minimum_hosts = {h} }}")
                        }),
                    ),
                ],
            );
            if let Ok(config) = Config::parse(&config(&section), Path::new("blastwall.toml")) {
                let valid = config.clusters[0].passive.outlier_detection.clone().expect("outlier detection");
                proptest::prop_assert_eq!(valid.config().clone().validate(), Ok(()));
            }
        }
    }

    #[test]
    fn outlier_detection_takes_only_the_rules_written() {
        let passive = passive(
            "[cluster.api.outlier_detection]\nconsecutive_gateway_errors = 3\n\
             base_ejection_time = \"200ms\"\nslow_call = { threshold = \"300ms\" }\n\
             failure_percentage = { threshold = 60 }\n",
        );
        let outlier = passive.outlier_detection.expect("outlier detection");
        assert_eq!(outlier.consecutive_errors, None);
        assert_eq!(outlier.consecutive_gateway_errors, Some(3));
        assert_eq!(outlier.base_ejection_time, Duration::from_millis(200));
        assert_eq!(outlier.max_ejection_time, Duration::from_secs(300));
        assert_eq!(outlier.max_ejection_percent, 10);
        assert_eq!(
            outlier.slow_call_threshold,
            Some(Duration::from_millis(300))
        );
        let failure = outlier.failure_percentage.expect("failure percentage");
        assert_eq!(
            (failure.threshold_percent, failure.request_volume),
            (60, 50)
        );
        assert!(outlier.success_rate.is_none());
    }

    #[test]
    fn stall_after_is_auto_or_a_duration_and_may_be_the_only_rule() {
        use blastwall_policy::outlier::stall::StallAfter;

        let alone = passive("[cluster.api.outlier_detection]\nstall_after = \"auto\"\n");
        assert_eq!(
            alone.outlier_detection, None,
            "no detector without its rules"
        );
        let stall = alone.stall.expect("stall detection");
        assert_eq!(stall.after, StallAfter::Auto);
        assert_eq!(stall.max_ejection_percent, 10);
        let beside = passive(
            "[cluster.api.outlier_detection]\nconsecutive_errors = 5\nstall_after = \"50ms\"\n\
             max_ejection_percent = 34\n",
        );
        assert!(beside.outlier_detection.is_some());
        let stall = beside.stall.expect("stall detection");
        assert_eq!(stall.after, StallAfter::Fixed(Duration::from_millis(50)));
        assert_eq!(stall.max_ejection_percent, 34);
        let without = passive("[cluster.api.outlier_detection]\nconsecutive_errors = 5\n");
        assert_eq!(without.stall, None, "off unless written");
    }

    #[test]
    fn a_stall_after_that_is_neither_auto_nor_a_positive_duration_is_refused_at_its_value() {
        for (value, expected) in [
            (
                "\"fast\"",
                "invalid value \"fast\": expected \"auto\" or a number and a unit",
            ),
            ("50", "a bare number (50) has no unit: write \"auto\""),
            (
                "\"0ms\"",
                "outlier_detection.stall_after must be more than zero",
            ),
            ("\"30d\"", "outlier_detection.stall_after must be at most"),
        ] {
            let found = errors(&format!(
                "[cluster.api.outlier_detection]\nstall_after = {value}\n"
            ));
            assert_eq!(found.len(), 1, "{value}: {found:#?}");
            assert!(found[0].contains(expected), "{value}: {found:#?}");
            assert!(found[0].contains(":12:15:"), "at the value: {found:#?}");
        }
    }

    #[test]
    fn outlier_detection_without_a_rule_or_with_nonsense_is_refused() {
        let found = errors("[cluster.api.outlier_detection]\nslow_call = { threshold = \"1s\" }\n");
        assert!(
            found[0].contains("outlier_detection enables no rule"),
            "{found:#?}"
        );
        let errors = errors(
            "[cluster.api.outlier_detection]\nconsecutive_errors = 0\nmax_ejection_percent = 101\n\
             interval = \"0ms\"\nsuccess_rate = { stdev_factor = -1.0 }\n\
             base_ejection_time = \"10s\"\nmax_ejection_time = \"5s\"\n",
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].contains(":12:22:")
                && errors[0].contains("consecutive_errors must be from 1")
        );
        assert!(errors[1].contains("max_ejection_percent is a percentage from 0 to 100, got 101"));
        assert!(errors[2].contains("interval must be more than zero"));
        assert!(errors[3].contains("stdev_factor must be a number of at least 0"));
        assert!(
            errors[4]
                .contains("max_ejection_time (5s) cannot be less than base_ejection_time (10s)")
        );
    }

    #[test]
    fn the_policys_outlier_refusals_are_located_at_their_keys_in_the_files_words() {
        let errors = errors(
            "[cluster.api.outlier_detection]\nfailure_percentage = { threshold = 300, request_volume = 0 }\n\
             success_rate = { minimum_hosts = 0 }\nslow_call = { threshold = \"0s\" }\n",
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].contains(
                "outlier_detection.failure_percentage.threshold is a percentage from 1 to 100, got 300"
            ),
            "{errors:#?}"
        );
        assert!(
            errors[1]
                .contains("outlier_detection.failure_percentage.request_volume must be at least 1"),
            "{errors:#?}"
        );
        assert!(
            errors[2].contains(
                "outlier_detection.success_rate.minimum_hosts must be from 1 to 100000, got 0"
            ),
            "{errors:#?}"
        );
        assert!(
            errors[3].contains("outlier_detection.slow_call.threshold must be more than zero"),
            "{errors:#?}"
        );
        let line = |error: &str| error.split(':').nth(1).map(str::to_owned);
        assert_eq!(
            line(&errors[0]),
            line(&errors[1]),
            "both on the failure_percentage line"
        );
        assert_ne!(line(&errors[2]), line(&errors[3]));
    }
}
