use super::*;
use crate::backoff::Jitter;
use crate::budget::BudgetConfig;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const MS: Duration = Duration::from_millis(1);

fn ample_budget() -> RetryBudget {
    RetryBudget::new(BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: 1000,
        ..BudgetConfig::default()
    })
    .expect("valid budget")
}

fn empty_budget() -> RetryBudget {
    RetryBudget::new(BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: 0,
        ..BudgetConfig::default()
    })
    .expect("valid budget")
}

/// 100 ms, 200 ms, 400 ms ... without jitter, so waits are exact.
fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        max_attempts,
        backoff: BackoffConfig::exponential(100 * MS, 2.0, 10_000 * MS),
        ..RetryConfig::default()
    })
    .expect("valid policy")
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(1)
}

fn decide_once(policy: &RetryPolicy, idempotency: Idempotency, kind: FailureKind) -> RetryDecision {
    let t0 = Instant::now();
    let mut state = policy.start(idempotency, None);
    policy.decide(&mut state, &kind.into(), t0, &mut rng(), &ample_budget())
}

#[test]
fn retryable_failures_wait_the_backoff_then_run_out_of_attempts() {
    let t0 = Instant::now();
    let policy = policy(3);
    let budget = ample_budget();
    let mut state = policy.start(Idempotency::Idempotent, None);
    let reset = Failure::new(FailureKind::Reset);
    let decide = |state: &mut RetryState| policy.decide(state, &reset, t0, &mut rng(), &budget);
    assert_eq!(decide(&mut state), RetryDecision::RetryAfter(100 * MS));
    assert_eq!(decide(&mut state), RetryDecision::RetryAfter(200 * MS));
    assert_eq!(state.attempts(), 3);
    assert_eq!(
        decide(&mut state),
        RetryDecision::GiveUp(GiveUp::AttemptsExhausted)
    );
}

#[test]
fn one_attempt_means_never_retry() {
    let decision = decide_once(&policy(1), Idempotency::Idempotent, FailureKind::Reset);
    assert_eq!(decision, RetryDecision::GiveUp(GiveUp::AttemptsExhausted));
}

#[test]
fn a_request_that_gave_up_stays_given_up() {
    let t0 = Instant::now();
    let policy = policy(3);
    let mut state = policy.start(Idempotency::Idempotent, None);
    let other = Failure::new(FailureKind::Other);
    let reset = Failure::new(FailureKind::Reset);
    let budget = ample_budget();
    let first = policy.decide(&mut state, &other, t0, &mut rng(), &budget);
    assert_eq!(first, RetryDecision::GiveUp(GiveUp::NotRetryable));
    let again = policy.decide(&mut state, &reset, t0, &mut rng(), &budget);
    assert_eq!(again, RetryDecision::GiveUp(GiveUp::NotRetryable));
    assert_eq!(state.gave_up(), Some(GiveUp::NotRetryable));
}

#[test]
fn every_transport_failure_and_gateway_error_is_retryable_by_default() {
    let policy = policy(3);
    for kind in [
        FailureKind::ConnectFailed,
        FailureKind::Refused,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Status(502),
        FailureKind::Status(503),
        FailureKind::Status(504),
    ] {
        let decision = decide_once(&policy, Idempotency::Idempotent, kind);
        assert_eq!(decision, RetryDecision::RetryAfter(100 * MS), "{kind:?}");
    }
}

#[test]
fn other_failures_and_unlisted_statuses_are_not_retried() {
    let policy = policy(3);
    for kind in [
        FailureKind::Other,
        FailureKind::Status(500),
        FailureKind::Status(404),
        FailureKind::Status(429),
    ] {
        let decision = decide_once(&policy, Idempotency::Idempotent, kind);
        assert_eq!(
            decision,
            RetryDecision::GiveUp(GiveUp::NotRetryable),
            "{kind:?}"
        );
    }
}

#[test]
fn configured_classes_decide_what_is_retryable() {
    let mut config = RetryConfig::default();
    config.retry_on.timeout = false;
    config.retry_on.statuses = StatusSet::from_codes([429, 500]).expect("valid codes");
    let policy = RetryPolicy::new(config).expect("valid");
    let give_up = RetryDecision::GiveUp(GiveUp::NotRetryable);
    assert_eq!(
        decide_once(&policy, Idempotency::Idempotent, FailureKind::Timeout),
        give_up
    );
    assert_eq!(
        decide_once(&policy, Idempotency::Idempotent, FailureKind::Status(503)),
        give_up
    );
    for code in [429, 500] {
        let decision = decide_once(&policy, Idempotency::Idempotent, FailureKind::Status(code));
        assert!(matches!(decision, RetryDecision::RetryAfter(_)));
    }
}

#[test]
fn non_idempotent_requests_retry_only_failures_that_never_reached_the_upstream() {
    let policy = policy(3);
    for kind in [FailureKind::ConnectFailed, FailureKind::Refused] {
        let decision = decide_once(&policy, Idempotency::NonIdempotent, kind);
        assert_eq!(decision, RetryDecision::RetryAfter(100 * MS), "{kind:?}");
    }
    for kind in [
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Status(503),
    ] {
        let decision = decide_once(&policy, Idempotency::NonIdempotent, kind);
        assert_eq!(
            decision,
            RetryDecision::GiveUp(GiveUp::NotIdempotent),
            "{kind:?}"
        );
    }
}

#[test]
fn retry_non_idempotent_lifts_the_idempotency_check() {
    let policy = RetryPolicy::new(RetryConfig {
        retry_non_idempotent: true,
        ..RetryConfig::default()
    })
    .expect("valid");
    let decision = decide_once(&policy, Idempotency::NonIdempotent, FailureKind::Reset);
    assert!(matches!(decision, RetryDecision::RetryAfter(_)));
}

fn with_retry_after(retry_after: RetryAfter) -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        retry_after,
        backoff: BackoffConfig::constant(100 * MS),
        ..RetryConfig::default()
    })
    .expect("valid")
}

fn decide_503_asking(policy: &RetryPolicy, asked: Duration) -> RetryDecision {
    let t0 = Instant::now();
    let failure = Failure::new(FailureKind::Status(503)).with_retry_after(asked);
    let mut state = policy.start(Idempotency::Idempotent, None);
    policy.decide(&mut state, &failure, t0, &mut rng(), &ample_budget())
}

#[test]
fn retry_after_is_honoured_when_longer_than_the_backoff() {
    let policy = with_retry_after(RetryAfter::Honour { max: 5000 * MS });
    assert_eq!(
        decide_503_asking(&policy, 2000 * MS),
        RetryDecision::RetryAfter(2000 * MS)
    );
    // Shorter than the backoff: the backoff still applies.
    assert_eq!(
        decide_503_asking(&policy, 10 * MS),
        RetryDecision::RetryAfter(100 * MS)
    );
    // Exactly the maximum is still honoured.
    assert_eq!(
        decide_503_asking(&policy, 5000 * MS),
        RetryDecision::RetryAfter(5000 * MS)
    );
}

#[test]
fn retry_after_longer_than_the_maximum_gives_up() {
    let policy = with_retry_after(RetryAfter::Honour { max: 5000 * MS });
    let asked = 5001 * MS;
    let decision = decide_503_asking(&policy, asked);
    assert_eq!(
        decision,
        RetryDecision::GiveUp(GiveUp::RetryAfterTooLong { asked })
    );
}

#[test]
fn capped_retry_after_waits_at_most_the_maximum() {
    let policy = with_retry_after(RetryAfter::HonourCapped { max: 1000 * MS });
    assert_eq!(
        decide_503_asking(&policy, 60_000 * MS),
        RetryDecision::RetryAfter(1000 * MS)
    );
    assert_eq!(
        decide_503_asking(&policy, 300 * MS),
        RetryDecision::RetryAfter(300 * MS)
    );
}

#[test]
fn ignored_retry_after_waits_only_the_backoff() {
    let policy = with_retry_after(RetryAfter::Ignore);
    assert_eq!(
        decide_503_asking(&policy, 60_000 * MS),
        RetryDecision::RetryAfter(100 * MS)
    );
}

#[test]
fn a_retry_that_would_start_at_or_past_the_deadline_is_not_scheduled() {
    let t0 = Instant::now();
    let policy = policy(5);
    let budget = ample_budget();
    let reset = Failure::new(FailureKind::Reset);
    // The first wait is 100 ms: it must end strictly before the deadline.
    let mut state = policy.start(Idempotency::Idempotent, Some(t0 + 100 * MS));
    let decision = policy.decide(&mut state, &reset, t0, &mut rng(), &budget);
    assert_eq!(decision, RetryDecision::GiveUp(GiveUp::DeadlineExceeded));
    let mut state = policy.start(Idempotency::Idempotent, Some(t0 + 101 * MS));
    let decision = policy.decide(&mut state, &reset, t0, &mut rng(), &budget);
    assert_eq!(decision, RetryDecision::RetryAfter(100 * MS));
}

#[test]
fn the_deadline_applies_to_retry_after_waits_too() {
    let t0 = Instant::now();
    let policy = with_retry_after(RetryAfter::Honour { max: 5000 * MS });
    let failure = Failure::new(FailureKind::Status(503)).with_retry_after(2000 * MS);
    let mut state = policy.start(Idempotency::Idempotent, Some(t0 + 1000 * MS));
    let decision = policy.decide(&mut state, &failure, t0, &mut rng(), &ample_budget());
    assert_eq!(decision, RetryDecision::GiveUp(GiveUp::DeadlineExceeded));
}

#[test]
fn an_exhausted_budget_gives_up() {
    let decision = {
        let t0 = Instant::now();
        let policy = policy(3);
        let mut state = policy.start(Idempotency::Idempotent, None);
        let reset = Failure::new(FailureKind::Reset);
        policy.decide(&mut state, &reset, t0, &mut rng(), &empty_budget())
    };
    assert_eq!(decision, RetryDecision::GiveUp(GiveUp::BudgetExhausted));
}

#[test]
fn a_retry_withdraws_from_the_budget_and_a_refusal_does_not() {
    let t0 = Instant::now();
    let budget = RetryBudget::new(BudgetConfig {
        retry_ratio: 0.0,
        min_retries_per_second: 1,
        window: Duration::from_secs(2),
        buckets: 10,
    })
    .expect("valid");
    let policy = policy(3);
    let reset = Failure::new(FailureKind::Reset);
    // Refused by the deadline: the budget is untouched.
    let mut late = policy.start(Idempotency::Idempotent, Some(t0 + MS));
    policy.decide(&mut late, &reset, t0, &mut rng(), &budget);
    assert_eq!(budget.remaining(t0), 2);
    let mut state = policy.start(Idempotency::Idempotent, None);
    policy.decide(&mut state, &reset, t0, &mut rng(), &budget);
    assert_eq!(budget.remaining(t0), 1);
}

#[test]
fn jittered_waits_come_from_the_callers_rng() {
    let t0 = Instant::now();
    let policy = RetryPolicy::new(RetryConfig {
        backoff: BackoffConfig::exponential(100 * MS, 2.0, 1000 * MS).with_jitter(Jitter::Full),
        ..RetryConfig::default()
    })
    .expect("valid");
    let reset = Failure::new(FailureKind::Reset);
    let budget = ample_budget();
    let run = |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut state = policy.start(Idempotency::Idempotent, None);
        policy.decide(&mut state, &reset, t0, &mut rng, &budget)
    };
    assert_eq!(run(42), run(42));
    let RetryDecision::RetryAfter(wait) = run(42) else {
        panic!("expected a retry");
    };
    assert!(wait <= 100 * MS);
}

#[test]
fn invalid_configs_are_rejected() {
    let zero = RetryConfig {
        max_attempts: 0,
        ..RetryConfig::default()
    };
    assert_eq!(
        RetryPolicy::new(zero).err(),
        Some(RetryConfigError::ZeroAttempts)
    );
    let bad_backoff = RetryConfig {
        backoff: BackoffConfig::exponential(10 * MS, 0.5, 100 * MS),
        ..RetryConfig::default()
    };
    assert!(matches!(
        RetryPolicy::new(bad_backoff),
        Err(RetryConfigError::Backoff(_))
    ));
}

#[test]
fn status_sets_hold_only_real_status_codes() {
    let mut set = StatusSet::empty();
    assert_eq!(set.insert(99), Err(InvalidStatusCode(99)));
    assert_eq!(set.insert(600), Err(InvalidStatusCode(600)));
    set.insert(599).expect("valid");
    set.insert(100).expect("valid");
    assert!(set.contains(599) && set.contains(100));
    assert!(!set.contains(200) && !set.contains(u16::MAX));
    assert_eq!(StatusSet::server_errors().iter().count(), 100);
    assert_eq!(
        StatusSet::gateway_errors().iter().collect::<Vec<_>>(),
        vec![502, 503, 504]
    );
}
