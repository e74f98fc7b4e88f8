//! Clients that stall what the connection waits on them for (under paused time): a request
//! body that stops or trickles, an answer that is not read.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::body::full;
use crate::config::MinDataRate;

const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

fn settings(min_rate: Option<MinDataRate>) -> Settings {
    Settings {
        head_limits: HeadLimits {
            max_header_bytes: 1024,
            max_headers: 16,
            max_request_body: 1024 * 1024,
        },
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_requests: None,
        body_pace: PaceRule {
            timeout: BODY_TIMEOUT,
            min_rate,
        },
        send_pace: PaceRule {
            timeout: SEND_TIMEOUT,
            min_rate,
        },
    }
}

/// Reads the request body whole, then answers its size.
async fn read_body(_: Parts, body: RequestBody) -> Response<ProxyBody> {
    match body.collect().await {
        Ok(collected) => Response::new(full(collected.to_bytes().len().to_string())),
        Err(error) => {
            let mut response = Response::new(full(error.to_string()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_body_that_stops_coming_gets_408_after_request_body_timeout() {
    let settings = settings(None);
    let (server_side, mut client) = tokio::io::duplex(64 * 1024);
    let server = serve(server_side, &settings, std::future::pending(), read_body);
    let started = Instant::now();
    let client = async {
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
            .await
            .expect("written");
        let mut output = Vec::new();
        client.read_to_end(&mut output).await.expect("read");
        (
            String::from_utf8_lossy(&output).into_owned(),
            started.elapsed(),
        )
    };
    let (ended, (output, closed_after)) =
        tokio::time::timeout(BODY_TIMEOUT * 10, async { tokio::join!(server, client) })
            .await
            .expect("the server gives up on a body that stopped coming");
    assert!(matches!(ended, Ended::Closed));
    assert!(output.starts_with("HTTP/1.1 408"), "{output}");
    assert!(output.contains("body_read_timeout"), "{output}");
    assert!(output.contains("connection: close"), "{output}");
    assert_eq!(closed_after, BODY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_request_body_trickled_under_the_minimum_rate_gets_408_after_the_grace() {
    let grace = Duration::from_secs(10);
    let settings = settings(Some(MinDataRate {
        bytes_per_second: 256,
        grace,
    }));
    let (server_side, mut client) = tokio::io::duplex(64 * 1024);
    let server = serve(server_side, &settings, std::future::pending(), read_body);
    let started = Instant::now();
    let client = async {
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .expect("written");
        // A byte every 5 s: never silent for the whole timeout.
        let mut output = Vec::new();
        for _ in 0..100 {
            tokio::select! {
                read = client.read_to_end(&mut output) => {
                    read.expect("read");
                    break;
                }
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    client.write_all(b"x").await.expect("written");
                }
            }
        }
        (
            String::from_utf8_lossy(&output).into_owned(),
            started.elapsed(),
        )
    };
    let (ended, (output, closed_after)) = tokio::join!(server, client);
    assert!(matches!(ended, Ended::Closed));
    assert!(output.starts_with("HTTP/1.1 408"), "{output}");
    assert!(output.contains("slower than the minimum"), "{output}");
    assert!(
        closed_after >= grace && closed_after <= grace + Duration::from_secs(5),
        "{closed_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_its_answer_is_dropped_after_send_timeout() {
    let settings = settings(None);
    let large = |_: Parts, _: RequestBody| async {
        Response::new(full(Bytes::from(vec![b'x'; 4 * 1024 * 1024])))
    };
    let (server_side, mut client) = tokio::io::duplex(64 * 1024);
    let server = serve(server_side, &settings, std::future::pending(), large);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("written");
    let started = Instant::now();
    // The client never reads: the server must end by itself.
    let ended = tokio::time::timeout(SEND_TIMEOUT * 10, server)
        .await
        .expect("the server gives up on a client that does not read");
    assert!(matches!(ended, Ended::Closed));
    assert_eq!(started.elapsed(), SEND_TIMEOUT);
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_reads_slowly_but_steadily_gets_its_whole_answer() {
    let settings = settings(Some(MinDataRate {
        bytes_per_second: 1024,
        grace: Duration::from_secs(10),
    }));
    let size = 256 * 1024;
    let large = move |_: Parts, _: RequestBody| async move {
        Response::new(full(Bytes::from(vec![b'x'; size])))
    };
    let (server_side, mut client) = tokio::io::duplex(16 * 1024);
    let server = serve(server_side, &settings, std::future::pending(), large);
    let client = async {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("written");
        // 8 KiB a second: well over the minimum, and no pause as long as a timeout.
        let mut total = 0;
        let mut buffer = vec![0; 8 * 1024];
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let read = client.read(&mut buffer).await.expect("read");
            if read == 0 {
                break total;
            }
            total += read;
        }
    };
    let (_, total) = tokio::join!(server, client);
    assert!(total > size, "the whole answer arrived: {total}");
}
