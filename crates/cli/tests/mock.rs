//! `blastwall mock` from its command line: the flags and the `--behaviour` JSON they leave
//! room for, on the real binary.

mod support;

use std::process::Command;

use http::{Method, StatusCode};
use support::{Mock, get, send};

#[tokio::test]
async fn the_behaviour_flag_adds_paths_over_the_other_flags() {
    let mock = Mock::start(
        "paths",
        &[
            "--status",
            "202",
            "--behaviour",
            r#"{"paths":[{"prefix":"/orders","behaviour":{"status":503}}]}"#,
        ],
    );
    let (status, _, _) = get(&format!("http://{}/orders/1", mock.addr)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = get(&format!("http://{}/users", mock.addr)).await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, "ok\n"));
}

#[tokio::test]
async fn truncate_after_promises_the_whole_body_and_breaks_it_off() {
    let mock = Mock::start("cut", &["--body-size", "64", "--truncate-after", "8"]);
    let (_, _, current) = get(&format!("http://{}/_mock/behaviour", mock.addr)).await;
    assert!(current.contains(r#""truncate_after":8"#), "{current}");
    let (status, headers, body) = get(&format!("http://{}/", mock.addr)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], "64");
    assert!(
        body.len() < 64,
        "the body was broken off: {} bytes",
        body.len()
    );
}

#[tokio::test]
async fn patch_over_http_keeps_the_flags_not_named() {
    let mock = Mock::start("patched", &["--status", "202", "--body", "flagged\n"]);
    let url = format!("http://{}/_mock/behaviour", mock.addr);
    let (status, _, answer) = send(Method::PATCH, &url, r#"{"status":500}"#, &[]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _, body) = get(&format!("http://{}/", mock.addr)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "flagged\n")
    );
}

#[test]
fn a_bad_behaviour_flag_is_refused_naming_the_field() {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["mock", "--behaviour", r#"{"statuss":503}"#])
        .output()
        .expect("blastwall runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid --behaviour") && stderr.contains("`statuss`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn p50_and_p99_flags_make_a_log_normal_latency() {
    let mock = Mock::start("tail", &["--latency-p50", "1ms", "--latency-p99", "5ms"]);
    let (_, _, current) = get(&format!("http://{}/_mock/behaviour", mock.addr)).await;
    let current: serde_json::Value = serde_json::from_str(&current).expect("JSON");
    assert_eq!(
        current["latency_distribution"],
        serde_json::json!({"kind": "log_normal", "p50": "1ms", "p99": "5ms"})
    );
}

#[test]
fn an_unfittable_p50_and_p99_are_refused_with_both_values() {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["mock", "--latency-p50", "50ms", "--latency-p99", "5ms"])
        .output()
        .expect("blastwall runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 < p50 <= p99"), "{stderr}");
}

#[tokio::test]
async fn a_client_of_a_catch_all_proxy_cannot_reconfigure_the_mock_behind_it() {
    let mock = Mock::start("behind", &[]);
    let proxy = support::Proxy::start(&support::single_cluster_config(
        "",
        &[support::endpoint(&mock, "")],
        "",
    ));
    let (status, _, body) = send(
        Method::PATCH,
        &proxy.url("/_mock/behaviour"),
        r#"{"status":500,"failure_status":500}"#,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("came through a proxy"), "{body}");
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    // The mock's own port still takes the call: it is the mock's owner on the other end.
    let (status, _, body) = send(
        Method::PATCH,
        &format!("http://{}/_mock/behaviour", mock.addr),
        r#"{"status":500}"#,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = get(&proxy.url("/")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}
