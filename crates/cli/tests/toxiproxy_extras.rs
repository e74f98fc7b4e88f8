//! What `blastwall toxiproxy` does beyond Toxiproxy, on real sockets: toxics on the first
//! connections only, `GET /metrics` counting real traffic, `--config`, and `/version` as
//! Shopify's server answers it. The `http_error` toxic has its own suite
//! (`toxiproxy_http_error.rs`).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::toxiproxy_api::{add_toxic, call, echo_server, proxy};
use support::{Toxiproxy, eventually_blocking, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `data` and expects it back.
async fn echoes(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).await.expect("written");
    let mut back = vec![0; data.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .expect("echoed");
    assert_eq!(back, data);
}

/// Whether nothing comes back for a while (a stalled connection).
async fn stalls(stream: &mut TcpStream, data: &[u8]) -> bool {
    stream.write_all(data).await.expect("written");
    let mut buf = [0; 1];
    tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test]
async fn a_toxic_with_first_connections_acts_on_that_many_new_connections_then_none() {
    let server = Toxiproxy::start();
    let listen = proxy(&server, "p", echo_server().await).await;
    let mut before = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut before, b"warm").await;
    let created = add_toxic(
        &server,
        "p",
        json!({"type": "timeout", "first_connections": 2, "attributes": {"timeout": 0}}),
    )
    .await;
    assert_eq!(created["first_connections"], 2);
    echoes(&mut before, b"opened before it: untouched").await;
    for n in 0..2 {
        let mut stream = TcpStream::connect(listen).await.expect("connected");
        assert!(
            stalls(&mut stream, b"lost").await,
            "new connection {n} stalls"
        );
    }
    let mut third = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut third, b"the third passes").await;
    let (_, listed) = call(&server, Method::GET, "/proxies/p/toxics", Value::Null).await;
    assert_eq!(listed[0]["first_connections"], 2);
    let plain = add_toxic(&server, "p", json!({"type": "latency"})).await;
    assert!(plain.get("first_connections").is_none(), "{plain}");
}

/// The samples of a Prometheus text exposition, by name and labels as written; panics on a
/// line that is not a comment nor a sample.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_the_real_connections_bytes_and_toxics_in_prometheus_text() {
    let server = Toxiproxy::start();
    let echo = echo_server().await;
    let listen = proxy(&server, "db", echo).await;
    add_toxic(
        &server,
        "db",
        json!({"type": "latency", "attributes": {"latency": 1}}),
    )
    .await;
    let mut first = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut first, b"0123456789").await;
    let mut second = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut second, b"abcde").await;
    drop(first);

    let (status, headers, _) = send(Method::GET, &server.url("/metrics"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4");
    let labels = |direction: &str| {
        format!("direction=\"{direction}\",proxy=\"db\",listener=\"{listen}\",upstream=\"{echo}\"")
    };
    let mut expected = HashMap::new();
    for direction in ["upstream", "downstream"] {
        for family in ["received", "sent"] {
            let series = format!(
                "toxiproxy_proxy_{family}_bytes_total{{{}}}",
                labels(direction)
            );
            expected.insert(series, 15.0);
        }
    }
    expected.insert(
        "toxiproxy_proxy_connections_accepted_total{proxy=\"db\"}".to_owned(),
        2.0,
    );
    // The first connection's end reaches the count when the proxy's pipes notice it.
    expected.insert(
        "toxiproxy_proxy_connections_open{proxy=\"db\"}".to_owned(),
        1.0,
    );
    let latency =
        "toxiproxy_toxic_applied_total{proxy=\"db\",type=\"latency\",stream=\"downstream\"}";
    expected.insert(latency.to_owned(), 2.0);
    let last = std::sync::Mutex::new(String::new());
    let counted = support::eventually(Duration::from_secs(10), || {
        let (url, expected, last) = (server.url("/metrics"), &expected, &last);
        async move {
            let text = send(Method::GET, &url, "", &[]).await.2;
            let samples = samples(&text);
            *last.lock().expect("not poisoned") = text;
            expected
                .iter()
                .all(|(series, value)| samples.get(series) == Some(value))
        }
    })
    .await;
    let text = last.lock().expect("not poisoned").clone();
    assert!(counted, "expected {expected:#?} in\n{text}");
}

#[tokio::test]
async fn version_answers_json_as_shopifys_server_does() {
    let server = Toxiproxy::start();
    let (status, headers, body) = send(Method::GET, &server.url("/version"), "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json;charset=utf-8");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(body, format!("{{\"version\": \"blastwall-{version}\"}}\n"));
}

#[tokio::test]
async fn config_creates_the_files_proxies_at_start() {
    let echo = echo_server().await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let file = scratch.path().join("proxies.json");
    let proxies = json!([
        {"name": "on", "listen": "127.0.0.1:0", "upstream": echo.to_string()},
        {"name": "off", "listen": "127.0.0.1:0", "upstream": echo.to_string(), "enabled": false},
    ]);
    std::fs::write(&file, proxies.to_string()).expect("written");
    let server = Toxiproxy::start_with(&["--config", file.to_str().expect("a path")]);
    let (status, all) = call(&server, Method::GET, "/proxies", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (all["on"]["enabled"].clone(), all["off"]["enabled"].clone()),
        (json!(true), json!(false))
    );
    let listen: SocketAddr = all["on"]["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let mut stream = TcpStream::connect(listen).await.expect("connected");
    echoes(&mut stream, b"from the file").await;
}

/// Runs `blastwall toxiproxy --config FILE` expecting it to exit; its status and stderr.
fn start_failing(file: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["toxiproxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("blastwall starts");
    let exited = eventually_blocking(Duration::from_secs(20), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("its output");
    assert!(exited, "it kept running with a bad --config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_config_file_stops_the_server_with_an_error_naming_the_file() {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let cases = [
        ("missing.json", None, "cannot read the proxies file"),
        ("broken.json", Some("[{\"name\": "), "is not valid JSON"),
        (
            "object.json",
            Some("{\"name\": \"x\"}"),
            "expected an array of proxies",
        ),
        (
            "partial.json",
            Some("[{\"name\": \"x\"}]"),
            "missing required field: upstream at proxy 1",
        ),
    ];
    for (name, content, says) in cases {
        let file = scratch.path().join(name);
        if let Some(content) = content {
            std::fs::write(&file, content).expect("written");
        }
        let (ok, stderr) = start_failing(&file);
        assert!(!ok, "{name}: exits with a failure");
        assert!(
            stderr.contains(&file.display().to_string()),
            "{name}: names the file: {stderr}"
        );
        assert!(stderr.contains(says), "{name}: says {says:?}: {stderr}");
    }
}
