//! Driving `blastwall toxiproxy`'s API and its proxies from the toxiproxy suites: an echo
//! upstream, API calls parsed as JSON, proxies and toxics created with their statuses checked.

use std::net::SocketAddr;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{Toxiproxy, send};

/// A TCP server on loopback that echoes every byte back.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Sends a request to the API and parses the answer (null when it has no JSON body).
pub async fn call(
    server: &Toxiproxy,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, _, text) = send(method, &server.url(path), &body, &[]).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates proxy `name` in front of `upstream` and returns the address it really listens on.
pub async fn proxy(server: &Toxiproxy, name: &str, upstream: SocketAddr) -> SocketAddr {
    let body = json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream.to_string()});
    let (status, created) = call(server, Method::POST, "/proxies", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["listen"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("a real address")
}

pub async fn add_toxic(server: &Toxiproxy, name: &str, toxic: Value) -> Value {
    let path = format!("/proxies/{name}/toxics");
    let (status, created) = call(server, Method::POST, &path, toxic).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}
