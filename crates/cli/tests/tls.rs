//! TLS listeners: HTTP/2 and HTTP/1.1 by ALPN with a certificate made by the test, the
//! forwarded request marked https, handshake failures confined to their connection, a rotated
//! certificate served after a reload, and certificate problems refused at startup naming the
//! file.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Mock, Proxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A self-signed certificate for `localhost`, written as PEM files in a temporary folder.
struct Identity {
    folder: tempfile::TempDir,
    cert_der: CertificateDer<'static>,
}

impl Identity {
    fn new() -> Self {
        let mut identity = Self {
            folder: tempfile::tempdir().expect("a folder"),
            cert_der: CertificateDer::from(Vec::new()),
        };
        identity.rotate();
        identity
    }

    /// A new certificate and key, written over the files (as a certificate rotation does).
    fn rotate(&mut self) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let folder = self.folder.path();
        std::fs::write(folder.join("cert.pem"), certified.cert.pem()).expect("written");
        std::fs::write(
            folder.join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("written");
        self.cert_der = certified.cert.der().clone();
    }

    fn path(&self, name: &str) -> String {
        self.folder.path().join(name).display().to_string()
    }
}

fn config(upstream: &Mock, cert: &str, key: &str) -> String {
    format!(
        r#"
[[listener]]
name = "tls"
listen = "127.0.0.1:0"
tls = {{ cert = "{cert}", key = "{key}" }}

[[listener]]
name = "plain"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{{ address = "{}" }}]

[admin]
listen = "off"
"#,
        upstream.addr
    )
}

async fn connect(
    addr: SocketAddr,
    identity: &Identity,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tls = try_connect(addr, identity, alpn)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn), "ALPN agreed");
    tls
}

/// A TLS connection trusting only `identity`'s certificate, or the handshake's error.
async fn try_connect(
    addr: SocketAddr,
    identity: &Identity,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.cert_der.clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let stream = TcpStream::connect(addr).await.expect("connects");
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("a name"), stream)
        .await
}

fn echo_header(body: &[u8], name: &str) -> Option<String> {
    let echo: serde_json::Value = serde_json::from_slice(body).expect("echo JSON");
    let headers: Vec<(String, String)> =
        serde_json::from_value(echo["headers"].clone()).expect("headers");
    headers
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

fn get(addr: SocketAddr) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("https://localhost:{}/x", addr.port()))
        .header("host", format!("localhost:{}", addr.port()))
        .body(Empty::new())
        .expect("a request")
}

#[tokio::test]
async fn h2_and_http1_are_served_over_tls_and_forwarded_as_https() {
    let identity = Identity::new();
    let upstream = Mock::start("a", &["--echo"]);
    let proxy = Proxy::start(&config(
        &upstream,
        &identity.path("cert.pem"),
        &identity.path("key.pem"),
    ));
    let addr = proxy.listeners[0].1;

    let tls = connect(addr, &identity, b"h2").await;
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut request = get(addr);
    request.headers_mut().remove("host");
    let response = h2.send_request(request).await.expect("an h2 answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["via"], "1.1 blastwall");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert_eq!(
        echo_header(&body, "x-forwarded-proto").as_deref(),
        Some("https")
    );

    let tls = connect(addr, &identity, b"http/1.1").await;
    let (mut h1, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(connection);
    let response = h1
        .send_request(get(addr))
        .await
        .expect("an http/1.1 answer");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    assert_eq!(
        echo_header(&body, "x-forwarded-proto").as_deref(),
        Some("https")
    );

    // The plaintext listener beside it says http.
    let (_, _, body) = support::get(&format!("http://{}/x", proxy.listeners[1].1)).await;
    assert_eq!(
        echo_header(body.as_bytes(), "x-forwarded-proto").as_deref(),
        Some("http")
    );
}

#[tokio::test]
async fn a_failed_handshake_affects_only_its_own_connection() {
    let identity = Identity::new();
    let upstream = Mock::start("a", &[]);
    let proxy = Proxy::start(&config(
        &upstream,
        &identity.path("cert.pem"),
        &identity.path("key.pem"),
    ));
    let addr = proxy.listeners[0].1;
    // Plain HTTP to the TLS port, and a client that stops halfway.
    let mut plain = TcpStream::connect(addr).await.expect("connects");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("writes");
    let mut half = TcpStream::connect(addr).await.expect("connects");
    half.write_all(&[0x16, 0x03, 0x01, 0x00])
        .await
        .expect("writes");
    for _ in 0..3 {
        let tls = connect(addr, &identity, b"http/1.1").await;
        let (mut h1, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = h1.send_request(get(addr)).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_reload_serves_a_rotated_certificate_to_the_connections_that_come_next() {
    let mut identity = Identity::new();
    let upstream = Mock::start("a", &[]);
    let mut proxy = Proxy::start(&config(
        &upstream,
        &identity.path("cert.pem"),
        &identity.path("key.pem"),
    ));
    let addr = proxy.listeners[0].1;
    assert!(
        connect(addr, &identity, b"http/1.1")
            .await
            .get_ref()
            .1
            .peer_certificates()
            .is_some()
    );

    let old = identity.cert_der.clone();
    identity.rotate();
    proxy.process.signal("HUP");
    proxy.process.wait_for_line("config reloaded");

    // New connections get the new certificate: a client trusting only it completes its
    // handshake.
    let tls = connect(addr, &identity, b"http/1.1").await;
    let served = tls.get_ref().1.peer_certificates().expect("a certificate");
    assert_eq!(served[0], identity.cert_der);
    assert_ne!(served[0], old);
}

fn check(config: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["check", config.to_str().expect("utf-8")])
        .output()
        .expect("blastwall check runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn run_refuses(config: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .args(["run", "-c", config.to_str().expect("utf-8")])
        .output()
        .expect("blastwall run runs");
    assert!(!output.status.success(), "started with a bad TLS identity");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn unusable_certificates_and_keys_are_refused_at_startup_naming_the_file() {
    let identity = Identity::new();
    let other = Identity::new();
    let upstream = Mock::start("a", &[]);
    std::fs::write(identity.path("garbage.pem"), "not a certificate\n").expect("written");
    let cases = [
        (
            identity.path("cert.pem"),
            other.path("key.pem"),
            "key.pem",
            "cannot be used with the certificate",
        ),
        (
            identity.path("garbage.pem"),
            identity.path("key.pem"),
            "garbage.pem",
            "holds no PEM certificate",
        ),
        (
            identity.path("cert.pem"),
            identity.path("cert.pem"),
            "cert.pem",
            "holds no PEM private key",
        ),
        (
            identity.path("missing.pem"),
            identity.path("key.pem"),
            "missing.pem",
            "cannot find the certificate file",
        ),
    ];
    for (cert, key, file, expected) in cases {
        let config_path = identity.folder.path().join("blastwall.toml");
        std::fs::write(&config_path, config(&upstream, &cert, &key)).expect("written");
        let (ok, text) = check(&config_path);
        assert!(!ok, "accepted: {text}");
        assert!(text.contains(expected) && text.contains(file), "{text}");
        assert!(text.contains(":5:"), "points at the tls line: {text}");
        let text = run_refuses(&config_path);
        assert!(text.contains(expected) && text.contains(file), "{text}");
    }
}
