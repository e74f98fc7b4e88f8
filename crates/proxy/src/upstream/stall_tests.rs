//! Endpoints that stop sending in the middle of a response body (under paused time): the
//! body fails with [`BodyStalled`] after `body_read_timeout`, and the connection is not kept.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::*;
use crate::body::full;
use crate::config::BalanceConfig;

const BODY_READ_TIMEOUT: Duration = Duration::from_secs(7);

fn client(protocol: UpstreamProtocol) -> UpstreamClient {
    UpstreamClient::new(&ClusterConfig {
        name: "api".to_owned(),
        endpoints: Vec::new(),
        balance: BalanceConfig::RoundRobin,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        body_read_timeout: BODY_READ_TIMEOUT,
        protocol,
        dns_refresh: Duration::from_secs(30),
        panic_threshold: 0.5,
        max_idle_per_endpoint: 8,
        health_check: None,
        passive: Default::default(),
        retry_budget: Default::default(),
        concurrency: None,
    })
}

fn get(authority: &str) -> Request<ProxyBody> {
    Request::get(format!("http://{authority}/"))
        .body(full(Bytes::new()))
        .expect("a valid request")
}

/// Reads the body until it fails; the error and when it came.
async fn read_until_failed(response: Response<UpstreamBody>) -> (BoxError, Instant) {
    let mut body = response.into_body();
    let failed = async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return (error, Instant::now()),
                None => panic!("the body ended although the endpoint stalled"),
            }
        }
    };
    tokio::time::timeout(BODY_READ_TIMEOUT * 10, failed)
        .await
        .expect("the body fails by itself once the endpoint stalls")
}

#[tokio::test(start_paused = true)]
async fn an_http1_body_that_stops_coming_fails_as_stalled_and_its_connection_is_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let _server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 1024];
        let _ = stream.read(&mut buffer).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf";
        stream.write_all(head).await.unwrap();
        // Holds the connection open and sends nothing more.
        std::future::pending::<()>().await;
        drop(stream);
    });
    let client = client(UpstreamProtocol::Http1);
    let response = client
        .send(
            get(&authority),
            AddedHeaders::default(),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    let head_at = Instant::now();
    let (error, failed_at) = read_until_failed(response).await;
    let stalled = error
        .downcast_ref::<BodyStalled>()
        .unwrap_or_else(|| panic!("not a stall: {error}"));
    assert_eq!(stalled.timeout, BODY_READ_TIMEOUT);
    assert_eq!(failed_at - head_at, BODY_READ_TIMEOUT);
    assert_eq!(client.shared.pool.kept_http1(&authority), 0);
}

/// A body that sends one frame, then nothing, forever.
struct OneFrameThenNothing(Option<Bytes>);

impl Body for OneFrameThenNothing {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut().0.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_http2_body_that_stops_coming_fails_as_stalled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let _server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(|_: Request<Incoming>| async {
            let body = OneFrameThenNothing(Some(Bytes::from_static(b"half")));
            Ok::<_, Infallible>(Response::new(body))
        });
        let _ = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let client = client(UpstreamProtocol::Http2);
    let response = client
        .send(
            get(&authority),
            AddedHeaders::default(),
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
    let head_at = Instant::now();
    let (error, failed_at) = read_until_failed(response).await;
    let stalled = error
        .downcast_ref::<BodyStalled>()
        .unwrap_or_else(|| panic!("not a stall: {error}"));
    assert_eq!(stalled.timeout, BODY_READ_TIMEOUT);
    assert!(
        failed_at - head_at >= BODY_READ_TIMEOUT,
        "{:?}",
        failed_at - head_at
    );
    assert!(
        failed_at - head_at < BODY_READ_TIMEOUT + Duration::from_secs(1),
        "{:?}",
        failed_at - head_at
    );
}
