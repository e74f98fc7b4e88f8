//! `blastwall demo library`: the policy library's mechanisms keeping a caller answering
//! while its dependency degrades.
//!
//! A mock "payments" service runs on loopback; a caller sends it a steady open-loop load
//! through the policy stack (bulkhead, retry with budget, circuit breaker, per-try timeout).
//! The dependency then turns slow (a gray failure), crashes, and recovers, and the demo
//! prints, second by second, what the caller saw: answers, failures, calls failed fast by the
//! open breaker, latency, and every breaker transition as it happens.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{DemoArgs, format_latency, open_loop_second, percentile};
use blastwall_chaos::mock::{self, Behaviour, MockConfig, MockHandle};
use blastwall_policy::backoff::BackoffConfig;
use blastwall_policy::breaker::{
    BreakerConfig, BreakerOpen, CircuitBreaker, CircuitBreakerLayer, OpenBackoff, Outcome,
    SharedBreaker, SlidingWindow,
};
use blastwall_policy::budget::{BudgetConfig, RetryBudget};
use blastwall_policy::bulkhead::{
    Bulkhead, BulkheadConfig, BulkheadFull, BulkheadLayer, QueueTimeout,
};
use blastwall_policy::retry::{Failure, FailureKind, RetryConfig, RetryLayer, RetryPolicy};
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// What the caller waits for at most per attempt; the slow phase answers far slower.
const PER_TRY_TIMEOUT: Duration = Duration::from_millis(150);
const SLOW_LATENCY: Duration = Duration::from_secs(2);

/// Runs the demo and prints what happens.
pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let mut payments = Payments::start().await?;
    let uri: Uri = format!("http://{}/charge", payments.addr).parse()?;
    let stack = Stack::new()?;
    println!(
        "blastwall demo: a caller sends {} calls/s to a mock payments service at {}",
        args.rate, payments.addr
    );
    println!(
        "through: bulkhead → retry (budget) → circuit breaker → {PER_TRY_TIMEOUT:?} per-try timeout\n"
    );
    println!(
        "  second  phase      calls    ok  failed  fast-failed  shed      p50      p99  breaker"
    );

    let mut second = 0;
    for phase in [Phase::Healthy, Phase::Slow, Phase::Down, Phase::Recovered] {
        payments.enter(phase).await?;
        for _ in 0..args.phase.as_secs() {
            second += 1;
            let mut tally = drive_one_second(&stack, &uri, args.rate).await;
            stack.print_transitions();
            let breaker = stack.breaker.state(Instant::now());
            println!(
                "  {second:>5}s  {:<9} {}  {}",
                phase.name(),
                tally.row(),
                breaker.as_str()
            );
        }
    }
    payments.stop().await;
    println!(
        "\nWhile payments was slow or down, the caller stopped waiting on it: once the breaker"
    );
    println!(
        "opened, calls failed in microseconds (where a fallback would answer) instead of hanging,"
    );
    println!("and the breaker closed by itself once a probe found payments healthy again.");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    Slow,
    Down,
    Recovered,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Slow => "slow",
            Phase::Down => "down",
            Phase::Recovered => "recovered",
        }
    }
}

/// The mock dependency, which the demo slows down, kills and restarts on the same address.
struct Payments {
    addr: std::net::SocketAddr,
    running: Option<MockHandle>,
}

impl Payments {
    fn healthy() -> Behaviour {
        Behaviour {
            latency: Duration::from_millis(5),
            latency_jitter: Duration::from_millis(5),
            ..Behaviour::default()
        }
    }

    async fn start() -> anyhow::Result<Self> {
        let handle = Self::spawn("127.0.0.1:0".parse()?).await?;
        Ok(Self {
            addr: handle.addr(),
            running: Some(handle),
        })
    }

    async fn spawn(listen: std::net::SocketAddr) -> anyhow::Result<MockHandle> {
        mock::start(MockConfig {
            name: "payments".into(),
            listen,
            behaviour: Self::healthy(),
            seed: 1,
        })
        .await
        .context("cannot start the mock payments service")
    }

    async fn stop(&mut self) {
        if let Some(handle) = self.running.take() {
            handle.stop().await;
        }
    }

    async fn enter(&mut self, phase: Phase) -> anyhow::Result<()> {
        match phase {
            Phase::Healthy => {}
            Phase::Slow => {
                println!("  -- payments turns slow: every answer now takes {SLOW_LATENCY:?}");
                if let Some(handle) = &self.running {
                    handle.set_behaviour(Behaviour {
                        latency: SLOW_LATENCY,
                        ..Self::healthy()
                    })?;
                }
            }
            Phase::Down => {
                if let Some(handle) = self.running.take() {
                    println!(
                        "  -- payments crashes: its connections drop and new ones are refused"
                    );
                    handle.stop().await;
                }
            }
            Phase::Recovered => {
                println!("  -- payments restarts, healthy");
                self.running = Some(Self::spawn(self.addr).await?);
            }
        }
        Ok(())
    }
}

/// What the caller's calls came to in one second.
#[derive(Debug, Default)]
struct Tally {
    ok: u32,
    failed: u32,
    fast_failed: u32,
    shed: u32,
    latencies: Vec<Duration>,
}

impl Tally {
    fn row(&mut self) -> String {
        self.latencies.sort_unstable();
        let calls = self.ok + self.failed + self.fast_failed + self.shed;
        format!(
            "{calls:>5} {:>5} {:>7} {:>12} {:>5} {:>8} {:>8}",
            self.ok,
            self.failed,
            self.fast_failed,
            self.shed,
            format_latency(percentile(&self.latencies, 0.50)),
            format_latency(percentile(&self.latencies, 0.99)),
        )
    }
}

/// One second of open-loop calls through the stack.
async fn drive_one_second(stack: &Stack, uri: &Uri, rate: u32) -> Tally {
    let calls = open_loop_second(rate, || {
        let (mut client, uri) = (stack.client.clone(), uri.clone());
        async move {
            match client.ready().await {
                Ok(ready) => ready.call(uri).await,
                Err(error) => Err(error),
            }
        }
    })
    .await;
    let mut tally = Tally::default();
    for (took, result) in calls {
        tally.latencies.push(took);
        match result {
            Ok(status) if status.is_success() => tally.ok += 1,
            Ok(_) => tally.failed += 1,
            Err(error) if error.is::<BreakerOpen>() => tally.fast_failed += 1,
            Err(error) if error.is::<BulkheadFull>() || error.is::<QueueTimeout>() => {
                tally.shed += 1
            }
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

type CallResult = Result<StatusCode, BoxError>;
type Caller = tower::util::BoxCloneSyncService<Uri, StatusCode, BoxError>;

/// The caller's policy stack and the breaker inside it, kept to report its state.
struct Stack {
    client: Caller,
    breaker: SharedBreaker,
    transitions: Arc<Mutex<Vec<String>>>,
}

impl Stack {
    fn new() -> anyhow::Result<Self> {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let breaker = SharedBreaker::with_listener(
            CircuitBreaker::new(BreakerConfig {
                failure_rate: Some(0.5),
                window: SlidingWindow::Count { calls: 20 },
                minimum_calls: 10,
                open_duration: Duration::from_secs(1),
                // Probes that keep failing double the open time, up to 2 s, so a dead
                // dependency is probed less and less often.
                open_backoff: Some(OpenBackoff {
                    multiplier: 2.0,
                    max: Duration::from_secs(2),
                }),
                half_open_probes: 2,
                ..BreakerConfig::default()
            })?,
            {
                let transitions = transitions.clone();
                move |transition| {
                    transitions
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(transition.to_string());
                }
            },
        );
        let retry = RetryPolicy::new(RetryConfig {
            max_attempts: 2,
            backoff: BackoffConfig::exponential(
                Duration::from_millis(10),
                2.0,
                Duration::from_millis(50),
            ),
            ..RetryConfig::default()
        })?;
        let budget = Arc::new(RetryBudget::new(BudgetConfig {
            retry_ratio: 0.1,
            min_retries_per_second: 2,
            ..BudgetConfig::default()
        })?);
        let bulkhead = Bulkhead::new(BulkheadConfig {
            max_concurrent: 16,
            max_queue: 8,
            queue_timeout: Duration::from_millis(20),
        })?;
        let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let send = tower::service_fn(move |uri: Uri| {
            let http = http.clone();
            async move {
                let response = http.get(uri).await?;
                let status = response.status();
                response.into_body().collect().await?;
                Ok::<_, BoxError>(status)
            }
        });
        let client = ServiceBuilder::new()
            .layer(BulkheadLayer::new(bulkhead))
            .layer(RetryLayer::new(retry, budget, classify_for_retry))
            .layer(CircuitBreakerLayer::new(breaker.clone()).with_classifier(classify_for_breaker))
            .layer(TimeoutLayer::new(PER_TRY_TIMEOUT))
            .service(send);
        Ok(Self {
            client: Caller::new(client),
            breaker,
            transitions,
        })
    }

    fn print_transitions(&self) {
        let mut transitions = self
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for transition in transitions.drain(..) {
            println!("          breaker: {transition}");
        }
    }
}

fn classify_for_breaker(result: &CallResult) -> Outcome {
    match result {
        Ok(status) if status.is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

fn classify_for_retry(result: &CallResult) -> Option<Failure> {
    let kind = match result {
        Ok(status) if status.is_server_error() => FailureKind::Status(status.as_u16()),
        Ok(_) => return None,
        Err(error) if error.is::<BreakerOpen>() => return None,
        Err(error) if error.is::<Elapsed>() => FailureKind::Timeout,
        Err(error) => match error.downcast_ref::<hyper_util::client::legacy::Error>() {
            Some(error) if error.is_connect() => FailureKind::ConnectFailed,
            Some(_) => FailureKind::Reset,
            None => FailureKind::Other,
        },
    };
    Some(Failure::new(kind))
}
