use super::*;

#[test]
fn default_config_is_valid() {
    assert_eq!(OutlierConfig::default().validate(), Ok(()));
}

#[test]
fn a_checked_config_only_lowers_its_cap_and_stays_checked() {
    let valid = OutlierConfig::default()
        .validated()
        .expect("the default is valid");
    assert_eq!(valid.with_ejection_cap(4).max_ejection_percent, 4);
    assert_eq!(valid.with_ejection_cap(0).max_ejection_percent, 0);
    assert_eq!(valid.with_ejection_cap(200).max_ejection_percent, 10);
    for percent in 0..=u8::MAX {
        assert_eq!(valid.with_ejection_cap(percent).validate(), Ok(()));
    }
}

#[test]
fn a_detector_from_a_checked_config_runs_it() {
    let now = Instant::now();
    let valid = OutlierConfig::default()
        .validated()
        .expect("the default is valid");
    let detector = OutlierDetector::from_valid(valid.clone(), now);
    assert_eq!(detector.config(), valid.config());
    assert_eq!(
        OutlierConfig {
            interval: Duration::ZERO,
            ..OutlierConfig::default()
        }
        .validated(),
        Err(OutlierConfigError::ZeroInterval)
    );
}

#[test]
fn nonsense_configs_are_rejected_naming_the_setting() {
    use OutlierConfigError as E;
    let base = OutlierConfig::default();
    let cases: Vec<(OutlierConfig, E)> = vec![
        (
            OutlierConfig {
                interval: Duration::ZERO,
                ..base.clone()
            },
            E::ZeroInterval,
        ),
        (
            OutlierConfig {
                base_ejection_time: Duration::ZERO,
                ..base.clone()
            },
            E::ZeroBaseEjectionTime,
        ),
        (
            OutlierConfig {
                max_ejection_time: Duration::from_secs(10),
                ..base.clone()
            },
            E::MaxBelowBase {
                base: Duration::from_secs(30),
                max: Duration::from_secs(10),
            },
        ),
        (
            OutlierConfig {
                max_ejection_time: MAX_EJECTION_TIME_LIMIT + MS,
                ..base.clone()
            },
            E::MaxEjectionTimeTooLong(MAX_EJECTION_TIME_LIMIT + MS),
        ),
        (
            OutlierConfig {
                max_ejection_percent: 101,
                ..base.clone()
            },
            E::PercentOutOfRange {
                field: "max_ejection_percent",
                value: 101,
            },
        ),
        (
            OutlierConfig {
                consecutive_errors: Some(0),
                ..base.clone()
            },
            E::Zero("consecutive_errors"),
        ),
        (
            OutlierConfig {
                consecutive_gateway_errors: Some(0),
                ..base.clone()
            },
            E::Zero("consecutive_gateway_errors"),
        ),
        (
            OutlierConfig {
                failure_percentage: Some(FailurePercentageConfig {
                    threshold_percent: 0,
                    request_volume: 10,
                }),
                ..base.clone()
            },
            E::Zero("failure_percentage.threshold_percent"),
        ),
        (
            OutlierConfig {
                failure_percentage: Some(FailurePercentageConfig {
                    threshold_percent: 150,
                    request_volume: 10,
                }),
                ..base.clone()
            },
            E::PercentOutOfRange {
                field: "failure_percentage.threshold_percent",
                value: 150,
            },
        ),
        (
            OutlierConfig {
                failure_percentage: Some(FailurePercentageConfig {
                    threshold_percent: 50,
                    request_volume: 0,
                }),
                ..base.clone()
            },
            E::Zero("failure_percentage.request_volume"),
        ),
        (
            OutlierConfig {
                success_rate: Some(SuccessRateConfig {
                    stdev_factor: -1.0,
                    ..SuccessRateConfig::default()
                }),
                ..base.clone()
            },
            E::BadStdevFactor(-1.0),
        ),
        (
            OutlierConfig {
                success_rate: Some(SuccessRateConfig {
                    minimum_hosts: 0,
                    ..SuccessRateConfig::default()
                }),
                ..base.clone()
            },
            E::Zero("success_rate.minimum_hosts"),
        ),
        (
            OutlierConfig {
                success_rate: Some(SuccessRateConfig {
                    request_volume: 0,
                    ..SuccessRateConfig::default()
                }),
                ..base.clone()
            },
            E::Zero("success_rate.request_volume"),
        ),
        (
            OutlierConfig {
                slow_call_threshold: Some(Duration::ZERO),
                ..base.clone()
            },
            E::Zero("slow_call_threshold"),
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected.clone()));
        assert_eq!(
            OutlierDetector::new(config, Instant::now()).err(),
            Some(expected)
        );
    }
    let nan = OutlierConfig {
        success_rate: Some(SuccessRateConfig {
            stdev_factor: f64::NAN,
            ..SuccessRateConfig::default()
        }),
        ..base
    };
    assert!(matches!(nan.validate(), Err(E::BadStdevFactor(_))));
}

#[test]
fn max_ejected_is_at_least_one_and_never_the_last_endpoint() {
    let with = |percent| OutlierConfig {
        max_ejection_percent: percent,
        ..OutlierConfig::default()
    };
    // (percent, endpoints, expected)
    let table = [
        (10, 0, 0),
        (10, 1, 0),
        (10, 2, 1),
        (10, 3, 1),
        (10, 19, 1),
        (10, 20, 2),
        (50, 3, 1),
        (50, 4, 2),
        (100, 1, 0),
        (100, 2, 1),
        (100, 3, 2),
        (0, 3, 0),
        (0, 100, 0),
    ];
    for (percent, endpoints, expected) in table {
        assert_eq!(
            with(percent).max_ejected(endpoints),
            expected,
            "{percent}% of {endpoints}"
        );
    }
}

#[test]
fn ejection_reasons_read_as_sentences() {
    let r = EjectionReason::ConsecutiveErrors { count: 5, slow: 2 };
    assert_eq!(r.to_string(), "5 consecutive errors (2 slow)");
    let r = EjectionReason::FailurePercentage {
        requests: 100,
        failures: 90,
        slow: 0,
        threshold_percent: 85,
    };
    assert_eq!(
        r.to_string(),
        "90 of 100 calls failed (0 slow), threshold 85%"
    );
}

#[test]
fn every_error_is_reported_each_naming_its_field() {
    use OutlierConfigError as E;
    let config = OutlierConfig {
        interval: Duration::ZERO,
        max_ejection_percent: 150,
        consecutive_errors: Some(0),
        failure_percentage: Some(FailurePercentageConfig {
            threshold_percent: 0,
            request_volume: 0,
        }),
        slow_call_threshold: Some(Duration::ZERO),
        ..OutlierConfig::default()
    };
    let errors = config.errors();
    assert_eq!(
        errors,
        vec![
            E::ZeroInterval,
            E::PercentOutOfRange {
                field: "max_ejection_percent",
                value: 150
            },
            E::Zero("consecutive_errors"),
            E::Zero("failure_percentage.threshold_percent"),
            E::Zero("failure_percentage.request_volume"),
            E::Zero("slow_call_threshold"),
        ]
    );
    let fields: Vec<&str> = errors.iter().map(E::field).collect();
    assert_eq!(
        fields,
        [
            "interval",
            "max_ejection_percent",
            "consecutive_errors",
            "failure_percentage.threshold_percent",
            "failure_percentage.request_volume",
            "slow_call_threshold",
        ]
    );
    assert_eq!(config.validate(), Err(E::ZeroInterval), "the first of them");
    assert!(OutlierConfig::default().errors().is_empty());
}
