//! `blastwall load https://…`: TLS to a Blastwall TLS listener in front of the mock, the
//! certificate trusted by `--ca` or skipped by `--insecure`, HTTP/2 when ALPN agrees it.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::{Mock, Proxy};

/// A self-signed certificate for 127.0.0.1, as PEM files in a temporary folder.
fn identity() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("a folder");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    std::fs::write(folder.path().join("cert.pem"), certified.cert.pem()).expect("written");
    std::fs::write(
        folder.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .expect("written");
    folder
}

fn tls_proxy(mock: &Mock, folder: &tempfile::TempDir) -> Proxy {
    let path = |name: &str| folder.path().join(name).display().to_string();
    Proxy::start(&format!(
        r#"
[[listener]]
name = "tls"
listen = "127.0.0.1:0"
tls = {{ cert = "{}", key = "{}" }}

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{{ address = "{}" }}]

[admin]
listen = "off"
"#,
        path("cert.pem"),
        path("key.pem"),
        mock.addr
    ))
}

fn load(url: &str, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["load", url, "--json", "--rate", "200", "--requests", "20"])
        .args(flags)
        .output()
        .expect("blastwall load runs")
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

#[tokio::test]
async fn https_with_the_ca_given_is_answered_over_http1_and_http2() {
    let mock = Mock::start("a", &[]);
    let folder = identity();
    let proxy = tls_proxy(&mock, &folder);
    let url = format!("https://{}/", proxy.addr());
    let ca = folder.path().join("cert.pem").display().to_string();
    let http1 = report(&load(&url, &["--ca", &ca]));
    assert_eq!(http1["total"]["statuses"]["200"], 20, "{http1}");
    assert_eq!(http1["versions"]["HTTP/1.1"], 20, "{http1}");
    let http2 = report(&load(&url, &["--ca", &ca, "--http2"]));
    assert_eq!(http2["total"]["statuses"]["200"], 20, "{http2}");
    assert_eq!(http2["versions"]["HTTP/2.0"], 20, "ALPN agreed h2: {http2}");
    assert_eq!(mock.stats().await["requests"], 40);
}

#[tokio::test]
async fn insecure_accepts_a_certificate_no_one_trusts() {
    let mock = Mock::start("a", &[]);
    let folder = identity();
    let proxy = tls_proxy(&mock, &folder);
    let report = report(&load(
        &format!("https://{}/", proxy.addr()),
        &["--insecure"],
    ));
    assert_eq!(report["total"]["statuses"]["200"], 20, "{report}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_every_connection() {
    let mock = Mock::start("a", &[]);
    let folder = identity();
    let proxy = tls_proxy(&mock, &folder);
    let other = identity();
    let ca = other.path().join("cert.pem").display().to_string();
    let report = report(&load(&format!("https://{}/", proxy.addr()), &["--ca", &ca]));
    assert_eq!(report["total"]["errors"]["connect"], 20, "{report}");
    assert_eq!(mock.stats().await["requests"], 0);
}

#[test]
fn https_without_a_ca_or_insecure_is_refused_with_both_choices_named() {
    let output = load("https://127.0.0.1:1/", &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--ca FILE") && stderr.contains("--insecure"),
        "{stderr}"
    );
}

#[test]
fn a_ca_file_without_certificates_is_refused_naming_it() {
    let folder = tempfile::tempdir().expect("a folder");
    let empty = folder.path().join("empty.pem");
    std::fs::write(&empty, "").expect("written");
    let output = load(
        "https://127.0.0.1:1/",
        &["--ca", &empty.display().to_string()],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("empty.pem") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}
