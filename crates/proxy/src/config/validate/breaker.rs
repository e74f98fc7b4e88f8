//! Validation of `circuit_breaker` and `endpoint_circuit_breaker`: the section as the
//! policy's [`BreakerConfig`], checked by the policy.
//!
//! The ranges are the policy's alone: it reports every setting it refuses, each naming its
//! field ([`BreakerConfigError::field`]), and this file says each refusal in the file's
//! words at the key that holds it. What it checks itself are the proxy's own rules, which
//! the policy leaves open: a window by count or by time, not both; a time window and a
//! slow-call duration of at most a year; no zero slow-call duration even when slow calls trip
//! nothing; at most 1000 probes at once.

use std::time::Duration;

use blastwall_policy::breaker::{
    BreakerConfig, ConfigError as BreakerConfigError, MAX_OPEN_DURATION, MAX_WINDOW_SLOTS,
    OpenBackoff, SlidingWindow, ValidBreakerConfig,
};
use toml::Spanned;

use super::passive::{DEFAULT_SLOW_CALL_DURATION, Place, Written, section_has};
use crate::config::file::{BreakerProbe, CircuitBreakerSection};
use crate::config::values::DurationValue;

const DEFAULT_FAILURE_RATE_PERCENT: u32 = 50;
const DEFAULT_MINIMUM_CALLS: u32 = 20;
const DEFAULT_WINDOW_CALLS: u32 = 100;
const DEFAULT_WINDOW_SPAN: Duration = Duration::from_secs(10);
const TIME_WINDOW_BUCKETS: u32 = 10;
const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(5);
const DEFAULT_HALF_OPEN_PROBES: u32 = 3;
/// More probes than this at once is a typo, not a policy (a bound of the proxy's).
const MAX_HALF_OPEN_PROBES: u32 = 1000;
/// A probe whose permit is never given back (it cannot be: permits are recorded on drop) is
/// given up on after this, as a last safety net.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

impl Place<'_, '_> {
    /// A breaker, checked by the policy: every setting it refuses is reported at the key
    /// that holds it, in the file's words. What is checked here is only the proxy's own: a
    /// window by count or by time (not both), the bounds the policy leaves open, and the
    /// defaults the file promises.
    pub(super) fn breaker(
        &mut self,
        name: &str,
        section: CircuitBreakerSection,
    ) -> Option<ValidBreakerConfig> {
        let errors = self.check.errors.len();
        let mut written = Written::default();
        let config = self.breaker_config(name, section, &mut written);
        for refusal in config.errors() {
            self.breaker_refused(name, &refusal, &config, &written);
        }
        if self.check.errors.len() > errors {
            return None;
        }
        match config.validated() {
            Ok(valid) => Some(valid),
            Err(error) => {
                let span = self.cluster_span.clone();
                self.error_at(span, name, &error.to_string());
                None
            }
        }
    }

    /// The section as the policy's config, defaults filled in, each key's place (and number)
    /// noted in `written` under the key's name. Values out of the policy's ranges are kept
    /// for it to refuse.
    fn breaker_config(
        &mut self,
        name: &str,
        section: CircuitBreakerSection,
        written: &mut Written,
    ) -> BreakerConfig {
        let consecutive_failures =
            written.quoted("consecutive_failures", section.consecutive_failures);
        let failure_rate_percent =
            written.quoted("failure_rate_percent", section.failure_rate_percent);
        let slow_call_percent = written.quoted("slow_call_percent", section.slow_call_percent);
        // The default condition holds only for a section that writes none.
        let failure_rate_percent = failure_rate_percent.or_else(|| {
            let any_condition =
                section_has(&[consecutive_failures.is_some(), slow_call_percent.is_some()]);
            (!any_condition).then_some(DEFAULT_FAILURE_RATE_PERCENT)
        });
        let slow_call_duration = self
            .slow_call_duration(name, section.slow_call_duration, slow_call_percent, written)
            .unwrap_or(DEFAULT_SLOW_CALL_DURATION);
        let window = self.breaker_window(name, section.window, section.window_calls, written);
        let minimum_calls = match written.quoted("minimum_calls", section.minimum_calls) {
            Some(written) => written,
            // The default minimum shrinks to a small written window; a written one that
            // exceeds it is the policy's to refuse.
            None => match window {
                SlidingWindow::Count { calls } if calls > 0 => DEFAULT_MINIMUM_CALLS.min(calls),
                _ => DEFAULT_MINIMUM_CALLS,
            },
        };
        let open_duration = self
            .breaker_duration(name, section.open_duration, "open_duration", None, written)
            .unwrap_or(DEFAULT_OPEN_DURATION);
        let max_open_duration = self
            .breaker_duration(
                name,
                section.max_open_duration,
                "max_open_duration",
                None,
                written,
            )
            .unwrap_or(open_duration);
        let half_open_probes = self
            .written_count(
                section.half_open_probes,
                "half_open_probes",
                MAX_HALF_OPEN_PROBES,
                || format!("{name}.half_open_probes"),
                written,
            )
            .unwrap_or(DEFAULT_HALF_OPEN_PROBES);
        BreakerConfig {
            consecutive_failures,
            failure_rate: failure_rate_percent.map(ratio),
            slow_call_rate: slow_call_percent.map(ratio),
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
            external_probes: section.probe == Some(BreakerProbe::HealthCheck),
        }
    }

    /// A breaker's window: by count (`window_calls`) or by time (`window`), not both (the
    /// proxy's rule); a time window at most [`MAX_OPEN_DURATION`] long (a bound of the
    /// proxy's: the policy bounds only its buckets).
    fn breaker_window(
        &mut self,
        name: &str,
        window: Option<Spanned<DurationValue>>,
        window_calls: Option<Spanned<u32>>,
        written: &mut Written,
    ) -> SlidingWindow {
        match (window, window_calls) {
            (Some(_), Some(calls)) => {
                self.error_at(
                    calls.span(),
                    &format!("{name}.window_calls"),
                    "cannot be given with window: choose a count or a time window",
                );
                SlidingWindow::Count {
                    calls: DEFAULT_WINDOW_CALLS,
                }
            }
            (Some(span), None) => SlidingWindow::Time {
                span: self
                    .breaker_duration(name, Some(span), "window", Some(MAX_OPEN_DURATION), written)
                    .unwrap_or(DEFAULT_WINDOW_SPAN),
                buckets: TIME_WINDOW_BUCKETS,
            },
            (None, calls) => SlidingWindow::Count {
                calls: written
                    .quoted("window_calls", calls)
                    .unwrap_or(DEFAULT_WINDOW_CALLS),
            },
        }
    }

    /// `slow_call_duration`, at most [`MAX_OPEN_DURATION`]; and more than zero even when
    /// slow calls trip nothing (the policy refuses a zero only when they do, for then every
    /// call would be slow; the file refuses a zero always, as it is no setting at all).
    fn slow_call_duration(
        &mut self,
        name: &str,
        value: Option<Spanned<DurationValue>>,
        slow_call_percent: Option<u32>,
        written: &mut Written,
    ) -> Option<Duration> {
        let field = "slow_call_duration";
        let duration =
            self.breaker_duration(name, value, field, Some(MAX_OPEN_DURATION), written)?;
        if duration.is_zero() && slow_call_percent.is_none() {
            let span = written
                .span(field)
                .unwrap_or_else(|| self.cluster_span.clone());
            self.error_at(span, &format!("{name}.{field}"), "must be more than zero");
            return None;
        }
        Some(duration)
    }

    /// A duration of a breaker as written, noted under its key; `max` is a bound of the
    /// proxy's, where the policy leaves one open.
    fn breaker_duration(
        &mut self,
        name: &str,
        value: Option<Spanned<DurationValue>>,
        key: &'static str,
        max: Option<Duration>,
        written: &mut Written,
    ) -> Option<Duration> {
        self.written_duration(value, key, max, || format!("{name}.{key}"), written)
    }

    /// Reports the policy's refusal of one breaker setting at the key that holds it, in the
    /// words of the file (its keys, its units); a refusal no key explains (of a setting the
    /// file does not have) is put at the cluster, in the policy's words.
    fn breaker_refused(
        &mut self,
        name: &str,
        refusal: &BreakerConfigError,
        config: &BreakerConfig,
        written: &Written,
    ) {
        use BreakerConfigError as E;
        let Some(key) = breaker_key(refusal.field(), config.window) else {
            let span = self.cluster_span.clone();
            self.error_at(span, name, &refusal.to_string());
            return;
        };
        let quoted = written.value(key).unwrap_or(0);
        let problem = match *refusal {
            E::ZeroConsecutiveFailures | E::ZeroMinimumCalls => {
                format!("must be from 1 to {}, got 0", u32::MAX)
            }
            E::FailureRateOutOfRange(_) | E::SlowCallRateOutOfRange(_) => {
                format!("is a percentage from 1 to 100, got {quoted}")
            }
            E::EmptyWindow | E::WindowTooLarge(_) if key == "window_calls" => {
                format!("must be from 1 to {MAX_WINDOW_SLOTS}, got {quoted}")
            }
            E::BucketsTooFine => format!(
                "must be at least {TIME_WINDOW_BUCKETS}ns (a nanosecond for each of its \
                 {TIME_WINDOW_BUCKETS} buckets)"
            ),
            E::MinimumCallsExceedWindow {
                minimum_calls,
                window_calls,
            } => format!("({minimum_calls}) cannot exceed window_calls ({window_calls})"),
            E::OpenDurationTooLong | E::BackoffMaxTooLong => {
                format!("must be at most {MAX_OPEN_DURATION:?}")
            }
            E::BackoffMaxBelowOpenDuration => match config.open_backoff {
                Some(backoff) if !backoff.max.is_zero() => format!(
                    "({:?}) cannot be less than open_duration ({:?})",
                    backoff.max, config.open_duration
                ),
                _ => "must be more than zero".to_owned(),
            },
            E::ZeroHalfOpenProbes => format!("must be from 1 to {MAX_HALF_OPEN_PROBES}, got 0"),
            E::ZeroSlowCallDuration | E::ZeroOpenDuration | E::EmptyWindow => {
                "must be more than zero".to_owned()
            }
            // Settings the file does not have (a time window's buckets, the backoff's
            // multiplier, the probe timeout), in the policy's words.
            E::WindowTooLarge(_) | E::BackoffMultiplierOutOfRange(_) | E::ZeroProbeTimeout => {
                refusal.to_string()
            }
        };
        let span = written
            .span(key)
            .unwrap_or_else(|| self.cluster_span.clone());
        self.error_at(span, &format!("{name}.{key}"), &problem);
    }
}

/// The key of a breaker section that holds a field of the policy's config, if one does.
fn breaker_key(field: &str, window: SlidingWindow) -> Option<&'static str> {
    Some(match field {
        "consecutive_failures" => "consecutive_failures",
        "failure_rate" => "failure_rate_percent",
        "slow_call_rate" => "slow_call_percent",
        "slow_call_duration" => "slow_call_duration",
        "window" if matches!(window, SlidingWindow::Count { .. }) => "window_calls",
        "window" => "window",
        "minimum_calls" => "minimum_calls",
        "open_duration" => "open_duration",
        "open_backoff.max" => "max_open_duration",
        "half_open_probes" => "half_open_probes",
        _ => return None,
    })
}

/// A percentage as the ratio the policy takes; one past 100 is kept, for it to refuse.
fn ratio(percent: u32) -> f64 {
    f64::from(percent) / 100.0
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use blastwall_policy::breaker::SlidingWindow;

    use super::super::passive::tests::{config, errors, passive, section};
    use crate::config::Config;

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
    fn the_policys_breaker_refusals_are_located_at_their_keys_in_the_files_words() {
        let found = errors(
            "[cluster.api.circuit_breaker]\nconsecutive_failures = 0\nslow_call_percent = 0\n\
             slow_call_duration = \"0s\"\nwindow_calls = 0\nminimum_calls = 0\n\
             open_duration = \"400d\"\nmax_open_duration = \"500d\"\n",
        );
        assert_eq!(found.len(), 7, "{found:#?}");
        let expected = [
            ":12:24: cluster \"api\": circuit_breaker.consecutive_failures must be from 1 to 4294967295, got 0",
            ":13:21: cluster \"api\": circuit_breaker.slow_call_percent is a percentage from 1 to 100, got 0",
            ":14:22: cluster \"api\": circuit_breaker.slow_call_duration must be more than zero",
            ":15:16: cluster \"api\": circuit_breaker.window_calls must be from 1 to 1048576, got 0",
            ":16:17: cluster \"api\": circuit_breaker.minimum_calls must be from 1 to 4294967295, got 0",
            ":17:17: cluster \"api\": circuit_breaker.open_duration must be at most 31536000s",
            ":18:21: cluster \"api\": circuit_breaker.max_open_duration must be at most 31536000s",
        ];
        for (error, expected) in found.iter().zip(expected) {
            let first_line = error.lines().next().unwrap_or_default();
            assert!(
                first_line.ends_with(expected),
                "{error} ends with {expected}"
            );
        }
    }

    #[test]
    fn the_proxys_own_breaker_bounds_are_checked_beside_the_policys() {
        let found = errors(
            "[cluster.api.endpoint_circuit_breaker]\nslow_call_duration = \"0s\"\n\
             window = \"5ns\"\nhalf_open_probes = 1001\n",
        );
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains(":12:22:")
                && found[0]
                    .contains("endpoint_circuit_breaker.slow_call_duration must be more than zero"),
            "a zero is refused even when slow calls trip nothing: {found:#?}"
        );
        assert!(
            found[1].contains(":13:10:")
                && found[1].contains("endpoint_circuit_breaker.window must be at least 10ns"),
            "{found:#?}"
        );
        assert!(
            found[2].contains(
                "endpoint_circuit_breaker.half_open_probes must be from 1 to 1000, got 1001"
            ),
            "{found:#?}"
        );
        let found = errors("[cluster.api.circuit_breaker]\nwindow = \"400d\"\nwindow_calls = 10\n");
        assert_eq!(
            found.len(),
            1,
            "the window's length is not checked beside the conflict: {found:#?}"
        );
        let found = errors("[cluster.api.circuit_breaker]\nwindow = \"400d\"\n");
        assert!(
            found[0].contains("circuit_breaker.window must be at most 31536000s"),
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
            let section = section(
                "circuit_breaker",
                &[
                    ("consecutive_failures", failures.map(|n| n.to_string())),
                    ("failure_rate_percent", rate.map(|n| n.to_string())),
                    ("slow_call_percent", slow.map(|n| n.to_string())),
                    ("slow_call_duration", Some(format!("\"{slow_ms}ms\""))),
                    ("window_calls", window_calls.map(|n| n.to_string())),
                    ("window", window_secs.map(|n| format!("\"{n}s\""))),
                    ("minimum_calls", minimum.map(|n| n.to_string())),
                    ("open_duration", Some(format!("\"{open_ms}ms\""))),
                    ("max_open_duration", max_open_ms.map(|n| format!("\"{n}ms\""))),
                    ("half_open_probes", probes.map(|n| n.to_string())),
                ],
            );
            if let Ok(config) = Config::parse(&config(&section), Path::new("blastwall.toml")) {
                let valid = config.clusters[0].passive.circuit_breaker.clone().expect("a breaker");
                let breaker = blastwall_policy::breaker::CircuitBreaker::new(valid.config().clone());
                proptest::prop_assert!(breaker.is_ok(), "{section}: {:?}", breaker.err());
            }
        }
    }

    proptest::proptest! {
        /// Every refusal of a breaker section, the policy's or the proxy's, is said at a key
        /// of the section, never at the cluster in the policy's words.
        #[test]
        fn every_refusal_of_a_breaker_section_names_its_key(
            failures in proptest::option::of(0u32..3),
            rate in proptest::option::of(0u32..300),
            slow in proptest::option::of(0u32..300),
            slow_ns in proptest::option::of(0u64..3),
            window_calls in proptest::option::of(0u32..3),
            window_ns in proptest::option::of(0u64..30),
            minimum in proptest::option::of(0u32..5),
            open_ns in proptest::option::of(0u64..3),
            max_open_ns in proptest::option::of(0u64..3),
            probes in proptest::option::of(0u32..3),
        ) {
            let section = section(
                "circuit_breaker",
                &[
                    ("consecutive_failures", failures.map(|n| n.to_string())),
                    ("failure_rate_percent", rate.map(|n| n.to_string())),
                    ("slow_call_percent", slow.map(|n| n.to_string())),
                    ("slow_call_duration", slow_ns.map(|n| format!("\"{n}ns\""))),
                    ("window_calls", window_calls.map(|n| n.to_string())),
                    ("window", window_ns.map(|n| format!("\"{n}ns\""))),
                    ("minimum_calls", minimum.map(|n| n.to_string())),
                    ("open_duration", open_ns.map(|n| format!("\"{n}ns\""))),
                    ("max_open_duration", max_open_ns.map(|n| format!("\"{n}ns\""))),
                    ("half_open_probes", probes.map(|n| n.to_string())),
                ],
            );
            if let Err(errors) = Config::parse(&config(&section), Path::new("blastwall.toml")) {
                for error in errors.0.iter().map(ToString::to_string) {
                    let first_line = error.lines().next().unwrap_or_default();
                    proptest::prop_assert!(
                        first_line.contains("circuit_breaker."),
                        "{section}: {error}"
                    );
                }
            }
        }
    }
}
