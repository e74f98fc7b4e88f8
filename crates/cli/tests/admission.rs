//! Admission control against real processes: a slow dependency fills only its own bulkhead,
//! overload sheds low priority before high, and a client over its rate limit is refused
//! alone.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::{Mock, Proxy, admin_url, eventually, get, send, try_send, with_admin};

const HIGH: &[(&str, &str)] = &[("x-blastwall-priority", "high")];
const LOW: &[(&str, &str)] = &[("x-blastwall-priority", "low")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_route_fills_its_own_bulkhead_while_another_route_keeps_answering() {
    let slow = Mock::start("slow", &["--latency", "10s"]);
    let fast = Mock::start("fast", &[]);
    let proxy = Proxy::start(&format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "slow"
cluster = "slow"
match = {{ path_prefix = "/slow" }}
concurrency = {{ limit = 2 }}

[[route]]
name = "fast"
cluster = "fast"

[cluster.slow]
request_timeout = "30s"
endpoints = [{{ address = "{}" }}]

[cluster.fast]
endpoints = [{{ address = "{}" }}]
"#,
        slow.addr, fast.addr
    ));
    // Two requests take the slow route's two slots and stay there.
    let url = proxy.url("/slow");
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { try_send(Method::GET, &url, "", &[]).await })
        })
        .collect();
    let full = eventually(Duration::from_secs(10), || async {
        slow.requests().await == 2
    })
    .await;
    assert!(
        full,
        "the two slow requests never reached the slow upstream"
    );
    // Full it stays: the two slow requests hold their slots for seconds.
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["x-blastwall-error"], "shed", "{body}");
    assert!(headers.contains_key("retry-after"));
    // The fast route is untouched by the slow one's full bulkhead.
    for _ in 0..20 {
        let (status, _, body) = get(&proxy.url("/fast")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        slow.requests().await,
        2,
        "shed requests never reached the slow upstream"
    );
    for task in stuck {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_three_times_the_capacity_high_priority_keeps_its_success_rate_and_low_is_shed() {
    const CAPACITY: usize = 4;
    const WORKERS_PER_PRIORITY: usize = 6; // 12 at once: three times the capacity
    const REQUESTS_PER_WORKER: usize = 20;
    let upstream = Mock::start(
        "api",
        &["--latency", "40ms", "--capacity", &CAPACITY.to_string()],
    );
    let proxy = Proxy::start(&format!(
        r#"
[proxy]
trusted_clients = ["127.0.0.1/32"]

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"
concurrency = {{ limit = {CAPACITY}, queue = 4, queue_timeout = "200ms" }}

[cluster.api]
endpoints = [{{ address = "{}" }}]
"#,
        upstream.addr
    ));
    let (high, low) = high_and_low(
        &proxy.url("/work"),
        WORKERS_PER_PRIORITY * 2,
        REQUESTS_PER_WORKER,
    )
    .await;
    let ok = |answers: &[(StatusCode, bool, Option<String>)]| {
        answers
            .iter()
            .filter(|(status, ..)| *status == StatusCode::OK)
            .count()
    };
    let high_ok = ok(&high) as f64 / high.len() as f64;
    let low_ok = ok(&low) as f64 / low.len() as f64;
    eprintln!("success: high {high_ok:.3}, low {low_ok:.3}");
    assert!(
        high_ok >= 0.95,
        "high priority success {high_ok:.2}, low {low_ok:.2}"
    );
    assert!(
        low_ok < high_ok,
        "low priority success {low_ok:.2}, high {high_ok:.2}"
    );
    let shed: Vec<_> = low
        .iter()
        .filter(|(status, ..)| *status != StatusCode::OK)
        .collect();
    assert!(!shed.is_empty(), "low priority was never shed");
    for (status, retry_after, error) in shed {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.as_deref(), Some("shed"));
        assert!(retry_after, "a shed answer says when to come back");
    }
    let stats = upstream.stats().await;
    assert_eq!(
        stats["overloaded"].as_u64().unwrap_or_default(),
        0,
        "the upstream was never pushed past its capacity: {stats}"
    );
}

/// Runs `workers` clients at once, half high and half low priority, each sending
/// `requests` one after another; returns the answers (status, Retry-After, error) of each
/// priority, high first.
async fn high_and_low(url: &str, workers: usize, requests: usize) -> (Answers, Answers) {
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let url = url.to_owned();
            let headers = if worker % 2 == 0 { HIGH } else { LOW };
            tokio::spawn(async move {
                let mut answers = Vec::with_capacity(requests);
                for _ in 0..requests {
                    let (status, headers_back, _) = send(Method::GET, &url, "", headers).await;
                    let retry_after = headers_back.contains_key("retry-after");
                    let error = headers_back
                        .get("x-blastwall-error")
                        .map(|value| value.to_str().unwrap_or_default().to_owned());
                    answers.push((status, retry_after, error));
                }
                (headers == HIGH, answers)
            })
        })
        .collect();
    let (mut high, mut low) = (Vec::new(), Vec::new());
    for task in tasks {
        let (is_high, answers) = task.await.expect("worker finished");
        if is_high { &mut high } else { &mut low }.extend(answers);
    }
    (high, low)
}

type Answers = Vec<(StatusCode, bool, Option<String>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_never_written_is_learnt_from_the_upstreams_refusals_and_low_is_shed_at_once() {
    const CAPACITY: usize = 4;
    let upstream = Mock::start(
        "api",
        &["--latency", "40ms", "--capacity", &CAPACITY.to_string()],
    );
    let proxy = Proxy::start(&with_admin(&format!(
        r#"
[proxy]
trusted_clients = ["127.0.0.1/32"]

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{{ address = "{}" }}]

[cluster.api.concurrency]
adaptive = "capacity"
queue = 8
queue_timeout = "200ms"
queue_from = "normal"
"#,
        upstream.addr
    )));
    let (high, low) = high_and_low(&proxy.url("/work"), 12, 20).await;
    let ok = |answers: &Answers| {
        answers
            .iter()
            .filter(|(s, ..)| *s == StatusCode::OK)
            .count()
    };
    let high_ok = ok(&high) as f64 / high.len() as f64;
    let why = |answers: &Answers| {
        let mut kinds = std::collections::BTreeMap::new();
        for (status, _, error) in answers {
            *kinds.entry((status.as_u16(), error.clone())).or_insert(0) += 1;
        }
        kinds
    };
    // Less than with the capacity written (0.95): the first requests teach the limit.
    assert!(
        high_ok >= 0.75,
        "high priority success {high_ok:.2}: {:?}",
        why(&high)
    );
    assert!(
        ok(&low) < ok(&high),
        "low {} ≥ high {}",
        ok(&low),
        ok(&high)
    );
    let shed_by_proxy = low
        .iter()
        .filter(|(_, retry_after, error)| error.as_deref() == Some("shed") && *retry_after)
        .count();
    assert!(
        shed_by_proxy > 0,
        "low priority was never shed by the learnt limit"
    );
    let refused = upstream.stats().await["overloaded"]
        .as_u64()
        .unwrap_or_default();
    let sent = (high.len() + low.len()) as u64;
    assert!(
        refused * 10 < sent,
        "learning the capacity cost {refused} refusals of {sent} requests"
    );
    let (_, _, metrics) = get(&admin_url(&proxy, "/metrics")).await;
    let limit = metrics
        .lines()
        .find(|line| line.starts_with("blastwall_cluster_concurrency_limit{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok())
        .expect("the cluster's limit is exported");
    // Learnt, never above what the upstream showed (plus the growth of 2 quiet seconds);
    // it can be below it for a while when a refusal raced an answer (the upstream may still
    // hold the slot of an answer the proxy already has).
    assert!(
        (1..=CAPACITY as u64 + 1).contains(&limit),
        "the limit learnt is {limit}, the capacity {CAPACITY}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_limit_gets_429_while_another_key_is_unaffected() {
    let upstream = Mock::start("api", &[]);
    let proxy = Proxy::start(&format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"
rate_limit = {{ rate = 2, per = "1m", key = {{ header = "x-api-key" }} }}

[cluster.api]
endpoints = [{{ address = "{}" }}]
"#,
        upstream.addr
    ));
    let url = proxy.url("/");
    let alice = &[("x-api-key", "alice")];
    for _ in 0..2 {
        let (status, _, body) = send(Method::GET, &url, "", alice).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, body) = send(Method::GET, &url, "", alice).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers["x-blastwall-error"], "rate_limited");
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|value| value.parse().ok())
        .expect("Retry-After in seconds");
    assert!(
        (1..=30).contains(&retry_after),
        "retry after {retry_after}s"
    );
    let (status, _, body) = send(Method::GET, &url, "", &[("x-api-key", "bob")]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another key has its own limit: {body}"
    );
    assert_eq!(
        upstream.requests().await,
        3,
        "the refused request never went upstream"
    );
}
