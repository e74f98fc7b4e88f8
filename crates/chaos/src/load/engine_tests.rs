//! The engine against servers on loopback: a mock that answers at once, and a listener
//! that never answers (for what a stop does to requests in flight).

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use tokio::sync::oneshot;

use super::*;
use crate::load::{Kind, Outcome, Protocol, SharedHeader, Source};
use crate::mock::{self, Behaviour, MockConfig, MockHandle};

async fn mock() -> MockHandle {
    mock::start(MockConfig {
        name: "a".into(),
        listen: "127.0.0.1:0".parse().expect("valid address"),
        behaviour: Behaviour::default(),
        seed: 1,
    })
    .await
    .expect("the mock starts")
}

fn plan(addr: SocketAddr, timetable: Timetable) -> Plan {
    let kind = |target: &'static str, weight| Kind {
        weight,
        ..Kind::new(Method::GET, Uri::from_static(target))
    };
    Plan {
        addr,
        kinds: vec![kind("/a", 3.0), kind("/b", 1.0)],
        headers: HeaderMap::new(),
        shared_headers: vec![SharedHeader {
            name: http::HeaderName::from_static("x-blastwall-priority"),
            value: http::HeaderValue::from_static("high"),
            share: 0.5,
        }],
        debug: true,
        seed: 5,
        mix: None,
        schedule: Schedule::Open(timetable),
        connections: 4,
        timeout: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        protocol: Protocol::Http1,
        tls: None,
    }
}

#[tokio::test]
async fn a_sampled_run_keeps_one_sample_per_request_due_in_due_order() {
    let mock = mock().await;
    let timetable = Timetable::new(1000.0, Some(50), None);
    let (summary, samples) = run_sampled(
        plan(mock.addr(), timetable),
        || {},
        SampleLog::new(),
        std::future::pending(),
    )
    .await;
    assert_eq!(samples.len(), 50);
    assert_eq!(summary.total.requests, 50);
    let dues: Vec<_> = samples.iter().map(|sample| sample.due).collect();
    let expected: Vec<_> = (0..50).map(|index| timetable.due(index)).collect();
    assert_eq!(dues, expected);
    let mut by_kind = [0; 2];
    for sample in &samples {
        by_kind[usize::from(sample.kind)] += 1;
        assert_eq!(sample.outcome, Outcome::Status(200));
        assert_eq!(sample.source, Source::Upstream);
    }
    // 3:1 by smooth round robin: twelve whole cycles of four, then two of kind 0.
    assert_eq!(by_kind, [38, 12]);
}

#[tokio::test]
async fn a_stop_ends_a_long_run_at_once_and_a_watcher_sees_samples_meanwhile() {
    let mock = mock().await;
    let log = SampleLog::new();
    let watcher = log.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let timetable = Timetable::new(50.0, None, Some(Duration::from_secs(60)));
    let run = tokio::spawn(run_sampled(
        plan(mock.addr(), timetable),
        || {},
        log,
        async move {
            let _ = stopped.await;
        },
    ));
    // Poll until the run has answered a few requests: the watcher reads them live.
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let seen = watcher.read_from(0);
            if seen.len() >= 5 {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("five samples within ten seconds");
    assert!(seen.iter().all(|sample| sample.outcome.is_ok()));
    let _ = stop.send(());
    let stopped_at = std::time::Instant::now();
    let (summary, samples) = tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .expect("the run ends within a second of the stop")
        .expect("the run does not panic");
    assert!(stopped_at.elapsed() < Duration::from_secs(1));
    assert!(
        samples.len() >= 5 && samples.len() < 3000,
        "{}",
        samples.len()
    );
    assert_eq!(summary.total.requests, samples.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_requests_in_flight_finish_by_their_timeout_and_drops_the_queued() {
    // A server that accepts and never answers: every request sent waits for its timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut plan = plan(
        addr,
        Timetable::new(10.0, None, Some(Duration::from_secs(60))),
    );
    plan.connections = 2;
    let start = Instant::now();
    let (summary, samples) = run_sampled(
        plan,
        || {},
        SampleLog::new(),
        tokio::time::sleep(Duration::from_secs(5)),
    )
    .await;
    // The two requests sent (due at 0 and 100 ms) time out; the 48 queued behind them
    // by the stop are never sent.
    assert_eq!(samples.len(), 2);
    assert!(
        samples
            .iter()
            .all(|sample| sample.source == Source::NoAnswer)
    );
    assert_eq!(summary.total.requests, 2);
    assert!(
        start.elapsed() < Duration::from_secs(11),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_closed_loop_draws_kinds_by_weight_and_stops_on_request_too() {
    let mock = mock().await;
    let mut counted = plan(mock.addr(), Timetable::new(1.0, Some(1), None));
    counted.schedule = Schedule::Closed {
        requests: Some(20),
        duration: None,
    };
    let (_, samples) = run_sampled(counted, || {}, SampleLog::new(), std::future::pending()).await;
    let to_kind_0 = samples.iter().filter(|sample| sample.kind == 0).count();
    assert_eq!((samples.len(), to_kind_0), (20, 15));

    let mut endless = plan(mock.addr(), Timetable::new(1.0, Some(1), None));
    endless.schedule = Schedule::Closed {
        requests: None,
        duration: Some(Duration::from_secs(60)),
    };
    let log = SampleLog::new();
    let watcher = log.clone();
    let stop = async move {
        // Poll until some requests are answered, then stop.
        while watcher.len() < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (summary, samples) = tokio::time::timeout(
        Duration::from_secs(10),
        run_sampled(endless, || {}, log, stop),
    )
    .await
    .expect("a stopped closed loop ends long before its minute");
    assert!(samples.len() >= 10);
    assert_eq!(summary.total.requests, samples.len() as u64);
}

#[tokio::test]
async fn a_rate_faster_than_requests_can_be_queued_still_stops_when_told() {
    // A server that accepts and never answers, and a rate (the spec allows up to u32::MAX a
    // second) the dispatcher cannot keep up with: it is busy queueing for good, and only
    // its own pauses let the stop (here a timer on this one thread) be seen.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut plan = plan(
        addr,
        Timetable::new(4e9, None, Some(Duration::from_secs(60))),
    );
    plan.connections = 1;
    plan.timeout = Duration::from_millis(50);
    let (_, samples) = run_sampled(
        plan,
        || {},
        SampleLog::new(),
        tokio::time::sleep(Duration::from_millis(20)),
    )
    .await;
    assert!(!samples.is_empty());
}
