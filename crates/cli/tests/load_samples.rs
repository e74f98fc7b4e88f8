//! A sampled load run through a real proxy that shows its decisions on request: each
//! sample says which kind of request it was and who answered, from the decision headers
//! the run asked for with `x-blastwall-debug: 1`.

mod support;

use std::time::Duration;

use blastwall_chaos::load::{
    self, FallbackKind, Kind, Outcome, Plan, Protocol, SampleLog, Schedule, Source, Timetable,
};
use http::{HeaderMap, HeaderValue, Method, Uri};
use support::{Mock, Proxy};

/// Route `up` (`/up`) to a healthy mock; route `down` (`/down`) to its static fallback by
/// kill switch; decisions shown only when asked for.
fn config(upstream: &Mock) -> String {
    format!(
        r#"
[proxy]
decision_headers = "on_request"

[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
name = "down"
cluster = "api"
match = {{ path_prefix = "/down" }}
[route.fallback]
kill_switch = true
static = {{ status = 200, body = 'kept' }}

[[route]]
name = "up"
cluster = "api"

[cluster.api]
endpoints = [{{ address = "{}" }}]
"#,
        upstream.addr
    )
}

fn plan(proxy: &Proxy, debug: bool) -> Plan {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("shop"));
    Plan {
        addr: proxy.addr(),
        kinds: vec![
            Kind::new(Method::GET, Uri::from_static("/up")),
            Kind::new(Method::GET, Uri::from_static("/down")),
        ],
        headers,
        shared_headers: Vec::new(),
        debug,
        seed: 1,
        mix: None,
        schedule: Schedule::Open(Timetable::new(500.0, Some(60), None)),
        connections: 4,
        timeout: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        protocol: Protocol::Http1,
        tls: None,
    }
}

#[tokio::test]
async fn samples_through_the_proxy_tell_upstream_answers_from_fallbacks_by_kind() {
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(&upstream));
    let (_, samples) = load::run_sampled(
        plan(&proxy, true),
        || {},
        SampleLog::new(),
        std::future::pending(),
    )
    .await;
    assert_eq!(samples.len(), 60);
    for sample in &samples {
        assert_eq!(sample.outcome, Outcome::Status(200), "{sample:?}");
        match sample.kind {
            0 => {
                assert_eq!(sample.source, Source::Upstream);
                assert_eq!(sample.attempts, 1, "one attempt at the upstream");
            }
            1 => assert_eq!(sample.source, Source::Fallback(FallbackKind::Static)),
            other => panic!("no kind {other}"),
        }
    }
    assert_eq!(samples.iter().filter(|sample| sample.kind == 1).count(), 30);

    // Not asked, the proxy says nothing: every answer looks like the upstream's.
    let (_, quiet) = load::run_sampled(
        plan(&proxy, false),
        || {},
        SampleLog::new(),
        std::future::pending(),
    )
    .await;
    assert!(quiet.iter().all(|sample| sample.source == Source::Upstream));
    assert!(quiet.iter().all(|sample| sample.attempts == 0));
}
