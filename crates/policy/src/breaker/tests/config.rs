use std::time::Duration;

use super::{ms, quiet_config, secs};
use crate::breaker::{
    BreakerConfig, CircuitBreaker, ConfigError, MAX_OPEN_DURATION, MAX_WINDOW_SLOTS, OpenBackoff,
    SlidingWindow,
};

fn rejected(config: BreakerConfig) -> ConfigError {
    CircuitBreaker::new(config).expect_err("config is invalid")
}

#[test]
fn default_config_is_valid_and_trips_on_failure_rate() {
    let b = CircuitBreaker::new(BreakerConfig::default()).expect("default is valid");
    assert_eq!(b.config().failure_rate, Some(0.5));
}

#[test]
fn a_config_without_trip_conditions_is_a_manual_switch() {
    assert!(CircuitBreaker::new(quiet_config()).is_ok());
}

#[test]
fn nonsense_thresholds_are_rejected() {
    let cases = [
        (
            BreakerConfig {
                consecutive_failures: Some(0),
                ..quiet_config()
            },
            ConfigError::ZeroConsecutiveFailures,
        ),
        (
            BreakerConfig {
                failure_rate: Some(0.0),
                ..quiet_config()
            },
            ConfigError::FailureRateOutOfRange(0.0),
        ),
        (
            BreakerConfig {
                failure_rate: Some(1.5),
                ..quiet_config()
            },
            ConfigError::FailureRateOutOfRange(1.5),
        ),
        (
            BreakerConfig {
                slow_call_rate: Some(-0.1),
                ..quiet_config()
            },
            ConfigError::SlowCallRateOutOfRange(-0.1),
        ),
        (
            BreakerConfig {
                slow_call_rate: Some(0.5),
                slow_call_duration: Duration::ZERO,
                ..quiet_config()
            },
            ConfigError::ZeroSlowCallDuration,
        ),
    ];
    for (config, error) in cases {
        assert_eq!(rejected(config), error);
    }
    let nan = rejected(BreakerConfig {
        failure_rate: Some(f64::NAN),
        ..quiet_config()
    });
    assert!(matches!(nan, ConfigError::FailureRateOutOfRange(v) if v.is_nan()));
}

#[test]
fn nonsense_windows_are_rejected() {
    let window = |window| BreakerConfig {
        window,
        ..quiet_config()
    };
    let cases = [
        (
            window(SlidingWindow::Count { calls: 0 }),
            ConfigError::EmptyWindow,
        ),
        (
            window(SlidingWindow::Count {
                calls: MAX_WINDOW_SLOTS + 1,
            }),
            ConfigError::WindowTooLarge(MAX_WINDOW_SLOTS + 1),
        ),
        (
            window(SlidingWindow::Time {
                span: Duration::ZERO,
                buckets: 10,
            }),
            ConfigError::EmptyWindow,
        ),
        (
            window(SlidingWindow::Time {
                span: secs(10),
                buckets: 0,
            }),
            ConfigError::EmptyWindow,
        ),
        (
            window(SlidingWindow::Time {
                span: Duration::from_nanos(5),
                buckets: 10,
            }),
            ConfigError::BucketsTooFine,
        ),
        (
            BreakerConfig {
                minimum_calls: 0,
                ..quiet_config()
            },
            ConfigError::ZeroMinimumCalls,
        ),
        (
            BreakerConfig {
                minimum_calls: 11,
                ..quiet_config()
            },
            ConfigError::MinimumCallsExceedWindow {
                minimum_calls: 11,
                window_calls: 10,
            },
        ),
    ];
    for (config, error) in cases {
        assert_eq!(rejected(config), error);
    }
}

#[test]
fn a_time_window_may_need_more_calls_than_a_count_window_would_hold() {
    let config = BreakerConfig {
        window: SlidingWindow::Time {
            span: secs(10),
            buckets: 10,
        },
        minimum_calls: 1000,
        ..quiet_config()
    };
    assert!(CircuitBreaker::new(config).is_ok());
}

#[test]
fn nonsense_open_and_probe_settings_are_rejected() {
    let cases = [
        (
            BreakerConfig {
                open_duration: Duration::ZERO,
                ..quiet_config()
            },
            ConfigError::ZeroOpenDuration,
        ),
        (
            BreakerConfig {
                open_duration: MAX_OPEN_DURATION + ms(1),
                ..quiet_config()
            },
            ConfigError::OpenDurationTooLong,
        ),
        (
            BreakerConfig {
                open_backoff: Some(OpenBackoff {
                    multiplier: 0.5,
                    max: secs(60),
                }),
                ..quiet_config()
            },
            ConfigError::BackoffMultiplierOutOfRange(0.5),
        ),
        (
            BreakerConfig {
                open_backoff: Some(OpenBackoff {
                    multiplier: 2.0,
                    max: secs(1),
                }),
                ..quiet_config()
            },
            ConfigError::BackoffMaxBelowOpenDuration,
        ),
        (
            BreakerConfig {
                open_backoff: Some(OpenBackoff {
                    multiplier: 2.0,
                    max: MAX_OPEN_DURATION + ms(1),
                }),
                ..quiet_config()
            },
            ConfigError::BackoffMaxTooLong,
        ),
        (
            BreakerConfig {
                half_open_probes: 0,
                ..quiet_config()
            },
            ConfigError::ZeroHalfOpenProbes,
        ),
        (
            BreakerConfig {
                probe_timeout: Some(Duration::ZERO),
                ..quiet_config()
            },
            ConfigError::ZeroProbeTimeout,
        ),
    ];
    for (config, error) in cases {
        assert_eq!(rejected(config), error);
    }
}

#[test]
fn config_errors_say_what_was_expected() {
    let message = ConfigError::FailureRateOutOfRange(1.5).to_string();
    assert_eq!(message, "failure_rate must be in (0, 1], got 1.5");
}

#[test]
fn open_period_grows_by_the_multiplier_and_stops_at_the_cap() {
    let config = BreakerConfig {
        open_duration: secs(1),
        open_backoff: Some(OpenBackoff {
            multiplier: 3.0,
            max: secs(20),
        }),
        ..quiet_config()
    };
    let compiled = config.validate().expect("valid");
    let periods: Vec<_> = (0..5).map(|k| compiled.open_period(k)).collect();
    assert_eq!(periods, [secs(1), secs(3), secs(9), secs(20), secs(20)]);
    assert_eq!(compiled.open_period(u32::MAX), secs(20));
}

#[test]
fn every_refusal_is_reported_each_naming_its_field() {
    let config = BreakerConfig {
        consecutive_failures: Some(0),
        failure_rate: Some(1.5),
        slow_call_rate: Some(0.0),
        slow_call_duration: Duration::ZERO,
        window: SlidingWindow::Count { calls: 0 },
        minimum_calls: 0,
        open_duration: MAX_OPEN_DURATION + ms(1),
        open_backoff: Some(OpenBackoff {
            multiplier: f64::INFINITY,
            max: secs(1),
        }),
        half_open_probes: 0,
        probe_timeout: Some(Duration::ZERO),
        external_probes: false,
    };
    let errors = config.errors();
    let fields: Vec<_> = errors.iter().map(ConfigError::field).collect();
    assert_eq!(
        fields,
        [
            "consecutive_failures",
            "failure_rate",
            "slow_call_rate",
            "slow_call_duration",
            "minimum_calls",
            "window",
            "open_duration",
            "open_backoff.multiplier",
            "open_backoff.max",
            "half_open_probes",
            "probe_timeout",
        ]
    );
    assert_eq!(
        rejected(config),
        errors[0],
        "the first refusal is the one returned"
    );
}

#[test]
fn a_valid_config_has_no_refusals() {
    assert_eq!(BreakerConfig::default().errors(), []);
    assert_eq!(quiet_config().errors(), []);
}

#[test]
fn a_backoff_cap_past_a_year_is_its_own_refusal() {
    let config = BreakerConfig {
        open_backoff: Some(OpenBackoff {
            multiplier: 2.0,
            max: MAX_OPEN_DURATION + ms(1),
        }),
        ..quiet_config()
    };
    let errors = config.errors();
    assert_eq!(errors, [ConfigError::BackoffMaxTooLong]);
    assert_eq!(errors[0].field(), "open_backoff.max");
}
