//! What the metrics cost: the per-request recording on the hot path (in flight, status
//! class, request and attempt duration histograms) in nanoseconds, on one thread and on two
//! threads hitting the same route, and the time to render a scrape of a large config.
//! Run in release: `cargo run --release -p blastwall-proxy --example metrics_cost`.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use blastwall_proxy::config::Config;
use blastwall_proxy::counters::{record_request, request_started};
use blastwall_proxy::metrics;
use blastwall_proxy::reload::Runtime;
use http::StatusCode;

const REQUESTS: u32 = 5_000_000;

fn runtime(routes: usize, endpoints: usize) -> Runtime {
    let mut text = String::from("[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n");
    for route in 0..routes {
        let _ = write!(
            text,
            "\n[[route]]\nname = \"r{route}\"\ncluster = \"c{route}\"\nmatch = {{ path_prefix = \"/r{route}/\" }}\n"
        );
    }
    for cluster in 0..routes {
        let list: Vec<String> = (0..endpoints)
            .map(|port| format!("{{ address = \"127.0.0.1:{}\" }}", 10_000 + port))
            .collect();
        let _ = write!(
            text,
            "\n[cluster.c{cluster}]\nendpoints = [{}]\n[cluster.c{cluster}.circuit_breaker]\n[cluster.c{cluster}.endpoint_circuit_breaker]\n",
            list.join(", ")
        );
    }
    Runtime::new(Config::parse(&text, Path::new("bench.toml")).expect("a valid config"))
}

/// Records `REQUESTS` requests against route 0, the way the pipeline does; ns per request.
fn record(runtime: &Runtime) -> f64 {
    let snapshot = runtime.snapshot();
    let (route, cluster) = (&snapshot.routes[0].stats, snapshot.clusters[0].stats());
    let started = Instant::now();
    for index in 0..REQUESTS {
        let in_flight = request_started(route);
        cluster
            .attempt_duration
            .observe(Duration::from_micros(u64::from(index % 5_000)));
        record_request(in_flight, StatusCode::OK);
    }
    started.elapsed().as_nanos() as f64 / f64::from(REQUESTS)
}

fn main() {
    let small = runtime(1, 2);
    record(&small); // warm up
    println!("recording, 1 thread:  {:.1} ns/request", record(&small));
    let both = std::thread::scope(|scope| {
        let one = scope.spawn(|| record(&small));
        let two = record(&small);
        (one.join().expect("no panic"), two)
    });
    println!(
        "recording, 2 threads on one route: {:.1} / {:.1} ns/request",
        both.0, both.1
    );
    let large = runtime(50, 10);
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..100 {
        bytes = metrics::render(&large).len();
    }
    println!(
        "render, 50 routes x 10 endpoints: {:.2} ms per scrape, {} KiB",
        started.elapsed().as_secs_f64() * 1e3 / 100.0,
        bytes / 1024
    );
}
