//! An HTTP client call wrapped in Blastwall's policies, as a Rust service would use them:
//!
//! ```text
//! bulkhead → retry (with a retry budget) → circuit breaker → per-try timeout → hyper client
//! ```
//!
//! The example starts its own target server on 127.0.0.1, calls it, takes it down and brings
//! it back, printing what each layer decides. Watch the breaker open while the target is down
//! (calls then fail in microseconds instead of waiting on a dead dependency, and the target
//! gets no traffic), and close again once a half-open probe finds the target back.
//!
//! Run it with `cargo run -p blastwall-policy --features tower --example resilient_client`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use blastwall_policy::backoff::{BackoffConfig, Jitter};
use blastwall_policy::breaker::{
    BreakerConfig, BreakerOpen, CircuitBreaker, CircuitBreakerLayer, Outcome, SharedBreaker,
    SlidingWindow,
};
use blastwall_policy::budget::{BudgetConfig, RetryBudget};
use blastwall_policy::bulkhead::{Bulkhead, BulkheadConfig, BulkheadLayer};
use blastwall_policy::retry::{Failure, FailureKind, RetryConfig, RetryLayer, RetryPolicy};
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

type CallResult = Result<StatusCode, BoxError>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut target = Target::start("127.0.0.1:0".parse()?).await?;
    let addr = target.addr;
    let uri: Uri = format!("http://{addr}/checkout").parse()?;
    let attempts = Arc::new(AtomicU32::new(0));
    let mut client = resilient_client(attempts.clone())?;
    println!("target listening on {addr}");

    println!("\n== the target is up");
    for n in 1..=5 {
        call(&mut client, &uri, &attempts, n).await;
    }

    target.stop();
    println!("\n== the target is down (its process is gone: connections are refused)");
    for n in 6..=14 {
        call(&mut client, &uri, &attempts, n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    target = Target::start(addr).await?;
    println!(
        "\n== the target is back; the breaker lets a probe through once its open time is over"
    );
    for n in 15..=22 {
        call(&mut client, &uri, &attempts, n).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    target.stop();
    Ok(())
}

/// The client stack. Order matters: the bulkhead bounds everything below it; retries sit
/// outside the breaker so that an open breaker fails a retry as fast as a first attempt;
/// the timeout is per attempt.
fn resilient_client(
    attempts: Arc<AtomicU32>,
) -> Result<impl Service<Uri, Response = StatusCode, Error = BoxError>, BoxError> {
    let breaker_config = BreakerConfig {
        consecutive_failures: Some(5),
        failure_rate: Some(0.5),
        window: SlidingWindow::Count { calls: 20 },
        minimum_calls: 10,
        open_duration: Duration::from_secs(1),
        half_open_probes: 1,
        ..BreakerConfig::default()
    };
    let breaker =
        SharedBreaker::with_listener(CircuitBreaker::new(breaker_config)?, |transition| {
            println!("           breaker: {transition}");
        });
    let retry = RetryPolicy::new(RetryConfig {
        max_attempts: 3,
        backoff: BackoffConfig::exponential(
            Duration::from_millis(10),
            2.0,
            Duration::from_millis(100),
        )
        .with_jitter(Jitter::Full),
        ..RetryConfig::default()
    })?;
    let budget = Arc::new(RetryBudget::new(BudgetConfig {
        retry_ratio: 0.2,
        min_retries_per_second: 5,
        ..BudgetConfig::default()
    })?);
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 10,
        max_queue: 10,
        queue_timeout: Duration::from_millis(100),
    })?;

    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let send = tower::service_fn(move |uri: Uri| {
        let http = http.clone();
        attempts.fetch_add(1, Ordering::Relaxed);
        async move {
            let response = http.get(uri).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, BoxError>(status)
        }
    });

    Ok(ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead))
        .layer(RetryLayer::new(retry, budget, classify_for_retry))
        .layer(CircuitBreakerLayer::new(breaker).with_classifier(classify_for_breaker))
        .layer(TimeoutLayer::new(Duration::from_millis(300)))
        .service(send))
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
        // Retrying into an open breaker would only fail again: give up at once.
        Err(error) if error.is::<BreakerOpen>() => return None,
        Err(error) if error.is::<Elapsed>() => FailureKind::Timeout,
        Err(error) => match error.downcast_ref::<hyper_util::client::legacy::Error>() {
            Some(error) if error.is_connect() => FailureKind::ConnectFailed,
            // A pooled connection the target closed: the request was lost with it.
            Some(_) => FailureKind::Reset,
            None => FailureKind::Other,
        },
    };
    Some(Failure::new(kind))
}

async fn call<S>(client: &mut S, uri: &Uri, attempts: &AtomicU32, n: u32)
where
    S: Service<Uri, Response = StatusCode, Error = BoxError>,
{
    attempts.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let result = match client.ready().await {
        Ok(ready) => ready.call(uri.clone()).await,
        Err(error) => Err(error),
    };
    let took = started.elapsed();
    let attempts = attempts.load(Ordering::Relaxed);
    match result {
        Ok(status) => println!("  call {n:>2}: {status} in {took:.1?} ({attempts} attempt(s))"),
        Err(error) if error.is::<BreakerOpen>() => {
            println!("  call {n:>2}: failed fast in {took:.1?}: breaker open, target not called")
        }
        Err(error) => {
            println!("  call {n:>2}: failed in {took:.1?} after {attempts} attempt(s): {error}")
        }
    }
}

/// A small HTTP server standing in for a real dependency.
struct Target {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Target {
    async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // Dropping the set when the server is aborted drops every connection with it.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(async move {
                    let answer = hyper::service::service_fn(|_request| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), answer)
                        .await;
                });
            }
        });
        Ok(Self { addr, server })
    }

    fn stop(&self) {
        self.server.abort();
    }
}
