//! Validation of `circuit_breaker`, `endpoint_circuit_breaker` and `outlier_detection`:
//! every nonsense value is reported at its place, and the configs are checked by the policy
//! crate itself and kept checked, so the live breakers and detector are built without a
//! failure path.
//!
//! Outlier detection's ranges are the policy's alone: it reports every setting it refuses,
//! each naming its field ([`OutlierConfigError::field`]), and this file says each refusal in
//! the file's words at the key that holds it. What it checks itself are the proxy's own
//! bounds, which the policy leaves open (no interval or ejection longer than the longest
//! ejection, at most 100,000 hosts), and that at least one rule is on.

use std::ops::Range;
use std::time::Duration;

use blastwall_policy::breaker::{
    BreakerConfig, ConfigError as BreakerConfigError, MAX_OPEN_DURATION, MAX_WINDOW_SLOTS,
    OpenBackoff, SlidingWindow, ValidBreakerConfig,
};
use blastwall_policy::outlier::{
    FailurePercentageConfig, MAX_EJECTION_TIME_LIMIT, OutlierConfig, OutlierConfigError,
    SuccessRateConfig, ValidOutlierConfig,
};
use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::PassiveConfig;
use crate::config::file::{CircuitBreakerSection, ClusterSection, OutlierDetectionSection};
use crate::config::values::DurationValue;

const DEFAULT_FAILURE_RATE_PERCENT: u32 = 50;
const DEFAULT_SLOW_CALL_DURATION: Duration = Duration::from_secs(1);
const DEFAULT_MINIMUM_CALLS: u32 = 20;
const DEFAULT_WINDOW_CALLS: u32 = 100;
const TIME_WINDOW_BUCKETS: u32 = 10;
const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(5);
const DEFAULT_HALF_OPEN_PROBES: u32 = 3;
/// A probe whose permit is never given back (it cannot be: permits are recorded on drop) is
/// given up on after this, as a last safety net.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// More hosts than this for success-rate ejection is a typo, not a cluster.
const MAX_MINIMUM_HOSTS: u32 = 100_000;

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
    PassiveConfig {
        circuit_breaker: section
            .circuit_breaker
            .take()
            .and_then(|breaker| at.breaker("circuit_breaker", breaker)),
        endpoint_circuit_breaker: section
            .endpoint_circuit_breaker
            .take()
            .and_then(|breaker| at.breaker("endpoint_circuit_breaker", breaker)),
        outlier_detection: section
            .outlier_detection
            .take()
            .and_then(|outlier| at.outlier(outlier)),
    }
}

/// The checker, and the cluster whose sections are being checked (for messages).
struct Place<'c, 'a> {
    check: &'c mut Checker<'a>,
    cluster: &'c str,
    cluster_span: Range<usize>,
}

impl Place<'_, '_> {
    fn error_at(&mut self, span: Range<usize>, key: &str, problem: &str) {
        let message = format!("cluster \"{}\": {key} {problem}", self.cluster);
        self.check.error_at(span, message);
    }

    /// A count that must be at least 1 (and at most `max`).
    fn count(&mut self, value: Option<Spanned<u32>>, key: &str, max: u32) -> Option<u32> {
        let value = value?;
        let number = *value.get_ref();
        if number == 0 || number > max {
            self.error_at(
                value.span(),
                key,
                &format!("must be from 1 to {max}, got {number}"),
            );
            return None;
        }
        Some(number)
    }

    /// A percentage from `min` to 100.
    fn percent(&mut self, value: Option<Spanned<u32>>, key: &str, min: u32) -> Option<u8> {
        let value = value?;
        let number = *value.get_ref();
        if !(min..=100).contains(&number) {
            self.error_at(
                value.span(),
                key,
                &format!("is a percentage from {min} to 100, got {number}"),
            );
            return None;
        }
        u8::try_from(number).ok()
    }

    /// A duration that must be more than zero (and at most `max`).
    fn duration(
        &mut self,
        value: Option<Spanned<DurationValue>>,
        key: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let span = value.as_ref().map(Spanned::span);
        let duration = duration_or(self.check, value, default);
        if let Some(span) = span {
            if duration.is_zero() {
                self.error_at(span, key, "must be more than zero");
                return default;
            }
            if duration > max {
                self.error_at(span, key, &format!("must be at most {max:?}"));
                return default;
            }
        }
        duration
    }

    fn breaker(
        &mut self,
        name: &str,
        section: CircuitBreakerSection,
    ) -> Option<ValidBreakerConfig> {
        let key = |field: &str| format!("{name}.{field}");
        let errors = self.check.errors.len();
        let consecutive_failures = self.count(
            section.consecutive_failures,
            &key("consecutive_failures"),
            u32::MAX,
        );
        let written_rate = self.percent(
            section.failure_rate_percent,
            &key("failure_rate_percent"),
            1,
        );
        let slow_call_percent =
            self.percent(section.slow_call_percent, &key("slow_call_percent"), 1);
        let any_condition = section_has(&[
            consecutive_failures.is_some(),
            written_rate.is_some(),
            slow_call_percent.is_some(),
        ]);
        let failure_rate_percent =
            written_rate.or_else(|| (!any_condition).then_some(DEFAULT_FAILURE_RATE_PERCENT as u8));
        let slow_call_duration = self.duration(
            section.slow_call_duration,
            &key("slow_call_duration"),
            DEFAULT_SLOW_CALL_DURATION,
            MAX_OPEN_DURATION,
        );
        let window = self.breaker_window(name, section.window, section.window_calls);
        let minimum_span = section.minimum_calls.as_ref().map(Spanned::span);
        let mut minimum_calls = self
            .count(section.minimum_calls, &key("minimum_calls"), u32::MAX)
            .unwrap_or(DEFAULT_MINIMUM_CALLS);
        if let SlidingWindow::Count { calls } = window
            && minimum_span.is_none()
        {
            // The default minimum shrinks to a small written window; a written one that
            // exceeds it is the policy's to refuse.
            minimum_calls = minimum_calls.min(calls);
        }
        let open_duration = self.duration(
            section.open_duration,
            &key("open_duration"),
            DEFAULT_OPEN_DURATION,
            MAX_OPEN_DURATION,
        );
        let max_span = section.max_open_duration.as_ref().map(Spanned::span);
        let max_open_duration = self.duration(
            section.max_open_duration,
            &key("max_open_duration"),
            open_duration,
            MAX_OPEN_DURATION,
        );
        let half_open_probes = self
            .count(section.half_open_probes, &key("half_open_probes"), 1000)
            .unwrap_or(DEFAULT_HALF_OPEN_PROBES);
        let config = BreakerConfig {
            consecutive_failures,
            failure_rate: failure_rate_percent.map(|percent| f64::from(percent) / 100.0),
            slow_call_rate: slow_call_percent.map(|percent| f64::from(percent) / 100.0),
            slow_call_duration,
            window,
            minimum_calls,
            open_duration,
            // NOTE: a written maximum below the base is kept, for the policy to refuse.
            open_backoff: (max_open_duration != open_duration).then_some(OpenBackoff {
                multiplier: 2.0,
                max: max_open_duration,
            }),
            half_open_probes,
            probe_timeout: Some(PROBE_TIMEOUT),
        };
        if self.check.errors.len() > errors {
            return None;
        }
        match config.validated() {
            Ok(valid) => Some(valid),
            Err(error) => {
                let spans = BreakerSpans {
                    minimum_calls: minimum_span,
                    max_open_duration: max_span,
                    open_durations: (open_duration, max_open_duration),
                };
                self.breaker_refused(name, &error, spans);
                None
            }
        }
    }

    /// A breaker's window: by count (`window_calls`) or by time (`window`), not both.
    fn breaker_window(
        &mut self,
        name: &str,
        window: Option<Spanned<DurationValue>>,
        window_calls: Option<Spanned<u32>>,
    ) -> SlidingWindow {
        let key = |field: &str| format!("{name}.{field}");
        match (window, window_calls) {
            (Some(_), Some(calls)) => {
                self.error_at(
                    calls.span(),
                    &key("window_calls"),
                    "cannot be given with window: choose a count or a time window",
                );
                SlidingWindow::Count {
                    calls: DEFAULT_WINDOW_CALLS,
                }
            }
            (Some(span), None) => SlidingWindow::Time {
                span: self.duration(
                    Some(span),
                    &key("window"),
                    Duration::from_secs(10),
                    MAX_OPEN_DURATION,
                ),
                buckets: TIME_WINDOW_BUCKETS,
            },
            (None, calls) => SlidingWindow::Count {
                calls: self
                    .count(calls, &key("window_calls"), MAX_WINDOW_SLOTS)
                    .unwrap_or(DEFAULT_WINDOW_CALLS),
            },
        }
    }

    /// Reports the policy's refusal of a breaker at the key it is about, in the words of the
    /// file (its keys, its units); a refusal no written key explains is put at the cluster.
    fn breaker_refused(&mut self, name: &str, error: &BreakerConfigError, spans: BreakerSpans) {
        let place = match *error {
            BreakerConfigError::MinimumCallsExceedWindow {
                minimum_calls,
                window_calls,
            } => spans.minimum_calls.map(|span| {
                (
                    span,
                    "minimum_calls",
                    format!("({minimum_calls}) cannot exceed window_calls ({window_calls})"),
                )
            }),
            BreakerConfigError::BackoffMaxBelowOpenDuration => {
                spans.max_open_duration.map(|span| {
                    (
                        span,
                        "max_open_duration",
                        format!(
                            "({:?}) cannot be less than open_duration ({:?})",
                            spans.open_durations.1, spans.open_durations.0
                        ),
                    )
                })
            }
            _ => None,
        };
        match place {
            Some((span, field, problem)) => {
                self.error_at(span, &format!("{name}.{field}"), &problem);
            }
            None => {
                let span = self.cluster_span.clone();
                self.error_at(span, name, &error.to_string());
            }
        }
    }

    /// Outlier detection, checked by the policy: every setting it refuses is reported at the
    /// key that holds it, in the file's words. What is checked here is only the proxy's own:
    /// the upper bounds the policy leaves open, and that at least one rule is on.
    fn outlier(&mut self, section: OutlierDetectionSection) -> Option<ValidOutlierConfig> {
        let errors = self.check.errors.len();
        let mut written = Written::default();
        let config = self.outlier_config(section, &mut written);
        for refusal in config.errors() {
            self.outlier_refused(&refusal, &written);
        }
        // NOTE: slow_call is not a rule of its own: it makes slow calls failures for the others.
        if !section_has(&[
            config.consecutive_errors.is_some(),
            config.consecutive_gateway_errors.is_some(),
            config.failure_percentage.is_some(),
            config.success_rate.is_some(),
        ]) && self.check.errors.len() == errors
        {
            let span = self.cluster_span.clone();
            self.error_at(
                span,
                "outlier_detection",
                "enables no rule: give at least one of consecutive_errors, \
                 consecutive_gateway_errors, failure_percentage, success_rate \
                 (slow_call only makes slow calls count as failures for those)",
            );
        }
        if self.check.errors.len() > errors {
            return None;
        }
        match config.validated() {
            Ok(valid) => Some(valid),
            Err(error) => {
                let span = self.cluster_span.clone();
                self.error_at(span, "outlier_detection", &error.to_string());
                None
            }
        }
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
                    .minimum_hosts(sr.minimum_hosts, written)
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
        let value = value?;
        let span = value.span();
        written.note(field, span.clone(), None);
        let errors = self.check.errors.len();
        let duration = duration_or(self.check, Some(value), Duration::ZERO);
        if self.check.errors.len() > errors {
            return None;
        }
        if duration > MAX_EJECTION_TIME_LIMIT {
            let key = format!("outlier_detection.{}", outlier_key(field));
            self.error_at(
                span,
                &key,
                &format!("must be at most {MAX_EJECTION_TIME_LIMIT:?}"),
            );
            return None;
        }
        Some(duration)
    }

    /// `success_rate.minimum_hosts`, at most [`MAX_MINIMUM_HOSTS`] (a bound of the proxy's).
    fn minimum_hosts(
        &mut self,
        value: Option<Spanned<u32>>,
        written: &mut Written,
    ) -> Option<usize> {
        let hosts = written.number("success_rate.minimum_hosts", value)?;
        if hosts > MAX_MINIMUM_HOSTS {
            let span = written.span("success_rate.minimum_hosts");
            let span = span.unwrap_or_else(|| self.cluster_span.clone());
            self.error_at(
                span,
                "outlier_detection.success_rate.minimum_hosts",
                &format!("must be from 1 to {MAX_MINIMUM_HOSTS}, got {hosts}"),
            );
            return None;
        }
        Some(hosts as usize)
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

/// Where the keys of `outlier_detection` were written (by the policy's field names), and the
/// numbers written there, so that a refusal points at its key and quotes the file.
#[derive(Default)]
struct Written(Vec<(&'static str, Range<usize>, Option<u32>)>);

impl Written {
    fn note(&mut self, field: &'static str, span: Range<usize>, value: Option<u32>) {
        self.0.push((field, span, value));
    }

    /// A count as written, noted.
    fn number<T: Copy>(&mut self, field: &'static str, value: Option<Spanned<T>>) -> Option<T> {
        let value = value?;
        self.note(field, value.span(), None);
        Some(*value.get_ref())
    }

    /// A percentage as written, noted; one past `u8` is kept as 255, out of range all the
    /// same, and the file's number is quoted.
    fn percent(&mut self, field: &'static str, value: Option<Spanned<u32>>) -> Option<u8> {
        let value = value?;
        let number = *value.get_ref();
        self.note(field, value.span(), Some(number));
        Some(u8::try_from(number).unwrap_or(u8::MAX))
    }

    fn span(&self, field: &str) -> Option<Range<usize>> {
        self.0
            .iter()
            .find(|(noted, ..)| *noted == field)
            .map(|(_, span, _)| span.clone())
    }

    fn value(&self, field: &str) -> Option<u32> {
        self.0
            .iter()
            .find(|(noted, ..)| *noted == field)
            .and_then(|(.., value)| *value)
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

/// Where the keys a breaker refusal may be about were written, when they were.
struct BreakerSpans {
    minimum_calls: Option<Range<usize>>,
    max_open_duration: Option<Range<usize>>,
    /// `open_duration` and `max_open_duration`, for the message.
    open_durations: (Duration, Duration),
}

fn section_has(written: &[bool]) -> bool {
    written.iter().any(|written| *written)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use blastwall_policy::breaker::SlidingWindow;

    use crate::config::{Config, PassiveConfig};

    fn config(sections: &str) -> String {
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

    fn passive(sections: &str) -> PassiveConfig {
        match Config::parse(&config(sections), Path::new("blastwall.toml")) {
            Ok(config) => config.clusters[0].passive.clone(),
            Err(errors) => panic!("{errors}"),
        }
    }

    fn errors(sections: &str) -> Vec<String> {
        match Config::parse(&config(sections), Path::new("blastwall.toml")) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn everything_is_off_unless_configured() {
        assert_eq!(passive(""), PassiveConfig::default());
    }

    #[test]
    fn an_empty_breaker_section_trips_at_half_the_calls_failing() {
        let passive = passive("[cluster.api.circuit_breaker]\n");
        let breaker = passive.circuit_breaker.expect("a breaker");
        assert_eq!(breaker.failure_rate, Some(0.5));
        assert_eq!(breaker.consecutive_failures, None);
        assert_eq!(breaker.window, SlidingWindow::Count { calls: 100 });
        assert_eq!(breaker.minimum_calls, 20);
        assert_eq!(breaker.open_duration, Duration::from_secs(5));
        assert_eq!(breaker.open_backoff, None);
        assert_eq!(breaker.half_open_probes, 3);
        assert!(passive.endpoint_circuit_breaker.is_none());
    }

    #[test]
    fn written_conditions_replace_the_default_one() {
        let passive = passive(
            "[cluster.api.endpoint_circuit_breaker]\nconsecutive_failures = 3\nwindow = \"10s\"\n\
             open_duration = \"1s\"\nmax_open_duration = \"8s\"\n",
        );
        let breaker = passive.endpoint_circuit_breaker.expect("a breaker");
        assert_eq!(breaker.consecutive_failures, Some(3));
        assert_eq!(breaker.failure_rate, None);
        assert!(matches!(
            breaker.window,
            SlidingWindow::Time { buckets: 10, .. }
        ));
        assert_eq!(
            breaker.open_backoff.map(|backoff| backoff.max),
            Some(Duration::from_secs(8))
        );
    }

    #[test]
    fn nonsense_breaker_values_are_located() {
        let errors = errors(
            "[cluster.api.circuit_breaker]\nfailure_rate_percent = 150\nopen_duration = \"0s\"\n\
             window = \"10s\"\nwindow_calls = 10\nhalf_open_probes = 0\n",
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("blastwall.toml:12:24: cluster \"api\": circuit_breaker.failure_rate_percent is a percentage from 1 to 100, got 150"), "{errors:#?}");
        assert!(
            errors[1].contains(":13:17:")
                && errors[1].contains("open_duration must be more than zero")
        );
        assert!(errors[2].contains(":15:16:") && errors[2].contains("cannot be given with window"));
        assert!(errors[3].contains("half_open_probes must be from 1"));
    }

    #[test]
    fn a_minimum_above_the_window_is_refused_but_the_default_shrinks() {
        let errors =
            errors("[cluster.api.circuit_breaker]\nwindow_calls = 10\nminimum_calls = 11\n");
        assert!(
            errors[0].contains("minimum_calls (11) cannot exceed window_calls (10)"),
            "{errors:#?}"
        );
        let passive = passive("[cluster.api.circuit_breaker]\nwindow_calls = 10\n");
        assert_eq!(
            passive.circuit_breaker.expect("a breaker").minimum_calls,
            10
        );
    }

    #[test]
    fn the_policys_refusals_are_located_at_the_key_they_are_about() {
        let found =
            errors("[cluster.api.circuit_breaker]\nwindow_calls = 10\nminimum_calls = 11\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("blastwall.toml:13:17: cluster \"api\": circuit_breaker.minimum_calls (11) cannot exceed window_calls (10)"),
            "{found:#?}"
        );
        let found = errors(
            "[cluster.api.endpoint_circuit_breaker]\nopen_duration = \"10s\"\nmax_open_duration = \"5s\"\n",
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("blastwall.toml:13:21: cluster \"api\": endpoint_circuit_breaker.max_open_duration (5s) cannot be less than open_duration (10s)"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_maximum_open_duration_equal_to_the_base_means_no_backoff() {
        let passive = passive(
            "[cluster.api.circuit_breaker]\nopen_duration = \"2s\"\nmax_open_duration = \"2s\"\n",
        );
        assert_eq!(
            passive.circuit_breaker.expect("a breaker").open_backoff,
            None
        );
    }

    proptest::proptest! {
        /// Whatever numbers the validator accepts, the policy accepts too: a breaker built
        /// from a loaded config (at start, on a reload, for a new endpoint) cannot fail.
        #[test]
        fn every_breaker_the_validator_accepts_builds(
            failures in proptest::option::of(0u32..5),
            rate in proptest::option::of(0u32..120),
            slow in proptest::option::of(0u32..120),
            slow_ms in 0u64..3000,
            window_calls in proptest::option::of(0u32..300),
            window_secs in proptest::option::of(0u64..30),
            minimum in proptest::option::of(0u32..300),
            open_ms in 0u64..5000,
            max_open_ms in proptest::option::of(0u64..10_000),
            probes in proptest::option::of(0u32..1200),
        ) {
            let mut section = String::from("[cluster.api.circuit_breaker]\n");
            let mut line = |key: &str, value: Option<String>| {
                if let Some(value) = value {
                    section.push_str(&format!("{key} = {value}\n"));
                }
            };
            line("consecutive_failures", failures.map(|n| n.to_string()));
            line("failure_rate_percent", rate.map(|n| n.to_string()));
            line("slow_call_percent", slow.map(|n| n.to_string()));
            line("slow_call_duration", Some(format!("\"{slow_ms}ms\"")));
            line("window_calls", window_calls.map(|n| n.to_string()));
            line("window", window_secs.map(|n| format!("\"{n}s\"")));
            line("minimum_calls", minimum.map(|n| n.to_string()));
            line("open_duration", Some(format!("\"{open_ms}ms\"")));
            line("max_open_duration", max_open_ms.map(|n| format!("\"{n}ms\"")));
            line("half_open_probes", probes.map(|n| n.to_string()));
            if let Ok(config) = Config::parse(&config(&section), Path::new("blastwall.toml")) {
                let valid = config.clusters[0].passive.circuit_breaker.clone().expect("a breaker");
                let breaker = blastwall_policy::breaker::CircuitBreaker::new(valid.config().clone());
                proptest::prop_assert!(breaker.is_ok(), "{section}: {:?}", breaker.err());
            }
        }
    }

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
            let mut section = String::from("[cluster.api.outlier_detection]\n");
            let mut line = |key: &str, value: Option<String>| {
                if let Some(value) = value {
                    section.push_str(&format!("{key} = {value}\n"));
                }
            };
            line("consecutive_errors", errors_in_a_row.map(|n| n.to_string()));
            line("consecutive_gateway_errors", gateway.map(|n| n.to_string()));
            line("interval", interval_ms.map(|n| format!("\"{n}ms\"")));
            line("base_ejection_time", base_ms.map(|n| format!("\"{n}ms\"")));
            line("max_ejection_time", max_ms.map(|n| format!("\"{n}ms\"")));
            line("max_ejection_percent", percent.map(|n| n.to_string()));
            line("failure_percentage", threshold.map(|n| format!("{{ threshold = {n} }}")));
            line(
                "success_rate",
                stdev.zip(hosts).map(|(s, h)| format!("{{ stdev_factor = {s:?}, minimum_hosts = {h} }}")),
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
