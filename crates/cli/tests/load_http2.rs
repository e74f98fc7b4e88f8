//! `blastwall load --http2`: HTTP/2 by prior knowledge, answered by the mock like HTTP/1.1.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::Mock;

#[tokio::test]
async fn http2_requests_are_answered_and_counted_like_http1_ones() {
    let mock = Mock::start("a", &[]);
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args([
            "load",
            &format!("http://{}/", mock.addr),
            "--http2",
            "--json",
        ])
        .args(["--rate", "200", "--requests", "30", "--connections", "2"])
        .output()
        .expect("blastwall load runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("the report is JSON");
    assert_eq!(report["total"]["statuses"]["200"], 30, "{report}");
    assert_eq!(report["versions"]["HTTP/2.0"], 30, "{report}");
    assert_eq!(mock.stats().await["requests"], 30);
}

#[test]
fn http2_connections_open_with_the_prior_knowledge_preface() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut load = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["load", &format!("http://{addr}/"), "--http2"])
        .args([
            "--rate",
            "10",
            "--requests",
            "1",
            "--connections",
            "1",
            "--timeout",
            "2s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("blastwall load starts");
    let (mut stream, _) = listener.accept().expect("the load connects");
    let mut preface = [0u8; 24];
    stream.read_exact(&mut preface).expect("a preface");
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    drop(stream);
    let status = load.wait().expect("blastwall load ends");
    // The run happened (its one request failed): no threshold, so it exits 0.
    assert_eq!(status.code(), Some(0));
}
