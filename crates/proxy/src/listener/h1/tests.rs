//! The HTTP/1.1 server against a client on an in-memory stream, with an echoing responder:
//! framing both ways, the limits and timers (under paused time), and stops.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

use super::feed::CONTINUE;
use super::next_head::PREFACE;
use super::*;
use crate::body;
use crate::body::full;
use crate::listener::checks::Framing;

fn settings() -> Settings {
    Settings {
        head_limits: HeadLimits {
            max_header_bytes: 1024,
            max_headers: 16,
            max_request_body: 64,
        },
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_requests: None,
        body_pace: PaceRule {
            timeout: Duration::from_secs(30),
            min_rate: None,
        },
        send_pace: PaceRule {
            timeout: Duration::from_secs(30),
            min_rate: None,
        },
    }
}

/// Answers `METHOD target body-bytes [trailer names]`, with its length known unless the
/// request asks for `/chunked`.
async fn echo(parts: Parts, body: RequestBody) -> Response<ProxyBody> {
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => {
            let mut response = Response::new(full(error.to_string()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let trailers: Vec<String> = collected
        .trailers()
        .map(|fields| fields.keys().map(|name| name.to_string()).collect())
        .unwrap_or_default();
    let data = collected.to_bytes();
    let text = format!(
        "{} {} {} {}",
        parts.method,
        parts.uri,
        String::from_utf8_lossy(&data),
        trailers.join(",")
    );
    if parts.uri.path() == "/chunked" {
        return Response::new(UnknownLength([Frame::data(Bytes::from(text))].into()).boxed());
    }
    let mut response = Response::new(full(text));
    response
        .headers_mut()
        .insert("x-echo", HeaderValue::from_static("yes"));
    response
}

/// A body of frames whose length is not known in advance.
struct UnknownLength(std::collections::VecDeque<Frame<Bytes>>);

impl hyper::body::Body for UnknownLength {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, body::BoxError>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

/// Serves `client`'s side of the stream until the server ends; returns how it ended.
async fn serve_with<C, Fut>(settings: &Settings, stop: oneshot::Receiver<()>, client: C) -> bool
where
    C: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let (server_side, client_side) = tokio::io::duplex(64 * 1024);
    let stop = async move {
        let _ = stop.await;
    };
    let server = serve(server_side, settings, stop, echo);
    let (ended, ()) = tokio::join!(server, client(client_side));
    matches!(ended, Ended::Closed)
}

/// Writes `input`, ends the sending side, and reads all the server writes before closing.
async fn exchange(settings: &Settings, input: &[u8]) -> String {
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let sink = &mut output;
    serve_with(settings, stop, |mut client| async move {
        client.write_all(input).await.expect("written");
        client.shutdown().await.expect("shut down");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    String::from_utf8_lossy(&output).into_owned()
}

fn answers(output: &str) -> usize {
    output.matches("HTTP/1.1 ").count()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let output = exchange(
        &settings(),
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answers(&output), 3, "{output}");
    let a = output.find("GET /a").expect("a");
    let b = output.find("POST /b hello").expect("b");
    let c = output.find("GET /c").expect("c");
    assert!(a < b && b < c, "{output}");
    assert!(!output.contains("connection: close"), "{output}");
    assert!(output.contains("content-length: "), "{output}");
    assert!(output.contains("date: "), "{output}");
}

#[tokio::test]
async fn bodies_in_pieces_and_chunked_bodies_with_trailers_stream_to_the_responder() {
    let settings = settings();
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            .await
            .expect("written");
        tokio::task::yield_now().await;
        client.write_all(b"world").await.expect("written");
        client
            .write_all(b"POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n")
            .await
            .expect("written");
        tokio::task::yield_now().await;
        client
            .write_all(b"3\r\nfgh\r\n0\r\nx-sum: 1\r\n\r\n")
            .await
            .expect("written");
        client.shutdown().await.expect("shut down");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let output = String::from_utf8_lossy(&output);
    assert!(output.contains("POST /len helloworld"), "{output}");
    assert!(output.contains("POST /ch abcdefgh x-sum"), "{output}");
    assert_eq!(answers(&output), 2, "{output}");
}

#[tokio::test]
async fn smuggling_heads_get_400_and_the_connection_closes() {
    let output = exchange(
        &settings(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(
        output.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{output}"
    );
    assert!(
        output.contains("both Content-Length and Transfer-Encoding"),
        "{output}"
    );
    assert!(output.contains("connection: close"), "{output}");
    assert!(!output.contains("/never"), "{output}");
    assert_eq!(answers(&output), 1);
}

#[tokio::test]
async fn a_missing_host_and_oversized_heads_are_refused() {
    let output = exchange(&settings(), b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(output.starts_with("HTTP/1.1 400"), "{output}");
    let long = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let output = exchange(&settings(), long.as_bytes()).await;
    assert!(output.starts_with("HTTP/1.1 431"), "{output}");
}

#[tokio::test(start_paused = true)]
async fn a_head_not_whole_in_time_gets_408_and_a_silent_client_is_closed() {
    let settings = settings();
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let started = Instant::now();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("written");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let output = String::from_utf8_lossy(&output);
    assert!(output.starts_with("HTTP/1.1 408"), "{output}");
    assert_eq!(started.elapsed(), settings.header_read_timeout);

    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let started = Instant::now();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    assert!(output.is_empty());
    assert_eq!(started.elapsed(), settings.header_read_timeout);
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_lasts_idle_timeout_not_header_read_timeout() {
    let settings = settings();
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let mut answered_at = None;
    let sink = &mut output;
    let answered = &mut answered_at;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("written");
        let mut buffer = [0; 1024];
        let n = client.read(&mut buffer).await.expect("read");
        sink.extend_from_slice(&buffer[..n]);
        *answered = Some(Instant::now());
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let idle = answered_at.expect("answered").elapsed();
    assert_eq!(answers(&String::from_utf8_lossy(&output)), 1);
    assert!(idle >= settings.idle_timeout, "{idle:?}");
    assert!(
        idle < settings.idle_timeout + Duration::from_secs(1),
        "{idle:?}"
    );
}

#[tokio::test]
async fn a_client_expecting_100_continue_is_told_to_send_its_body() {
    let settings = settings();
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
            )
            .await
            .expect("written");
        let mut buffer = [0; 64];
        let n = client.read(&mut buffer).await.expect("read");
        assert_eq!(&buffer[..n], CONTINUE);
        client.write_all(b"body").await.expect("written");
        client.shutdown().await.expect("shut down");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let output = String::from_utf8_lossy(&output);
    assert!(output.starts_with("HTTP/1.1 200"), "{output}");
    assert!(output.contains("POST / body"), "{output}");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_gets_413_and_the_connection_closes() {
    let chunk = "a".repeat(40);
    let input = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n{chunk}\r\n28\r\n{chunk}\r\n0\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let output = exchange(&settings(), input.as_bytes()).await;
    assert!(output.starts_with("HTTP/1.1 413"), "{output}");
    assert!(output.contains("connection: close"), "{output}");
    assert_eq!(answers(&output), 1, "{output}");
    let declared = exchange(
        &settings(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n",
    )
    .await;
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
}

#[tokio::test]
async fn http10_clients_keep_the_connection_only_when_they_ask() {
    let output = exchange(
        &settings(),
        b"GET /a HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n",
    )
    .await;
    assert_eq!(answers(&output), 1, "{output}");
    assert!(output.contains("connection: close"), "{output}");
    let output = exchange(
        &settings(),
        b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    assert_eq!(answers(&output), 2, "{output}");
    assert!(output.contains("connection: keep-alive"), "{output}");
    // A body of unknown length goes to an HTTP/1.0 client until the connection closes.
    assert!(!output.contains("transfer-encoding"), "{output}");
    assert!(output.ends_with("GET /chunked  "), "{output}");
}

#[tokio::test]
async fn an_answer_of_unknown_length_is_chunked_and_head_answers_have_no_body() {
    let output = exchange(
        &settings(),
        b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\nHEAD /h HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(
        output.contains("transfer-encoding: chunked\r\n")
            && output.contains("\r\n\r\ne\r\nGET /chunked  \r\n0\r\n\r\n"),
        "{output}"
    );
    // The HEAD answer is the last thing written: a head and nothing after it.
    let head_answer = &output[output.rfind("HTTP/1.1 ").expect("two answers")..];
    assert!(head_answer.ends_with("\r\n\r\n"), "{output}");
    assert!(head_answer.contains("content-length: 9\r\n"), "{output}");
}

#[tokio::test]
async fn the_http2_preface_hands_the_connection_back_with_what_was_read() {
    let settings = settings();
    let (server_side, mut client) = tokio::io::duplex(1024);
    let server = serve(server_side, &settings, std::future::pending(), echo);
    let client = async {
        client.write_all(&PREFACE[..10]).await.expect("written");
        tokio::task::yield_now().await;
        client.write_all(&PREFACE[10..]).await.expect("written");
        client.write_all(b"frames").await.expect("written");
        client
    };
    let (ended, _client) = tokio::join!(server, client);
    match ended {
        Ended::Http2(_, read) => assert!(read.starts_with(PREFACE)),
        Ended::Closed => panic!("not handed back"),
    }
}

#[tokio::test]
async fn the_last_allowed_request_is_answered_with_connection_close() {
    let mut settings = settings();
    settings.max_requests = NonZeroU32::new(2);
    let output = exchange(
        &settings,
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answers(&output), 2, "{output}");
    assert_eq!(output.matches("connection: close").count(), 1, "{output}");
}

#[tokio::test]
async fn a_stop_closes_an_idle_connection_and_lets_a_begun_request_finish() {
    let settings = settings();
    let (stop_now, stop) = oneshot::channel();
    let mut output = Vec::new();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("written");
        tokio::task::yield_now().await;
        let _ = stop_now.send(());
        tokio::task::yield_now().await;
        client.write_all(b"\r\n").await.expect("written");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let output = String::from_utf8_lossy(&output);
    assert_eq!(answers(&output), 1, "{output}");
    assert!(output.contains("connection: close"), "{output}");

    let (stop_now, stop) = oneshot::channel();
    let closed = serve_with(&settings, stop, |mut client| async move {
        let _ = stop_now.send(());
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty());
    })
    .await;
    assert!(closed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However a client's bytes are split into reads, the answers are the same.
    #[test]
    fn requests_split_anywhere_get_the_same_answers(cuts in proptest::collection::vec(0usize..120, 0..4)) {
        let input: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n";
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(input.len())).collect();
        cuts.sort_unstable();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let output = runtime.block_on(async {
            let settings = settings();
            let (_stop, stop) = oneshot::channel();
            let mut output = Vec::new();
            let sink = &mut output;
            serve_with(&settings, stop, |mut client| async move {
                let mut at = 0;
                for cut in cuts {
                    client.write_all(&input[at..cut]).await.expect("written");
                    tokio::task::yield_now().await;
                    at = cut;
                }
                client.write_all(&input[at..]).await.expect("written");
                client.shutdown().await.expect("shut down");
                client.read_to_end(sink).await.expect("read");
            })
            .await;
            String::from_utf8_lossy(&output).into_owned()
        });
        prop_assert_eq!(answers(&output), 2, "{}", output);
        prop_assert!(output.contains("POST /a abc"), "{}", output);
        prop_assert!(output.contains("POST /b de"), "{}", output);
    }

    /// Any bytes as a request head: the parser never panics, and a head it takes is no
    /// longer than what it was given.
    #[test]
    fn any_bytes_as_a_head_are_taken_or_refused_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = settings().head_limits;
        let mut buffer = BytesMut::from(&data[..]);
        if let Ok(Some(_)) = take_head(&mut buffer, &limits) {
            prop_assert!(buffer.len() < data.len());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_by_another_task_streams_through_whole() {
    // As an HTTP/2 upstream reads it: from its connection's own task, on any thread.
    let settings = Settings {
        head_limits: HeadLimits {
            max_request_body: 1 << 20,
            ..settings().head_limits
        },
        ..settings()
    };
    let (server_side, mut client) = tokio::io::duplex(4096);
    let server = serve(
        server_side,
        &settings,
        std::future::pending(),
        |parts, body| {
            let reader =
                tokio::spawn(async move { body.collect().await.map(|body| body.to_bytes()) });
            async move {
                let data = reader.await.expect("joined").expect("whole");
                let _ = parts;
                Response::new(full(format!("{}", data.len())))
            }
        },
    );
    let body = vec![b'x'; 300_000];
    let client = async {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        client.write_all(head.as_bytes()).await.expect("written");
        for piece in body.chunks(7000) {
            client.write_all(piece).await.expect("written");
        }
        client.shutdown().await.expect("shut down");
        let mut output = Vec::new();
        client.read_to_end(&mut output).await.expect("read");
        String::from_utf8_lossy(&output).into_owned()
    };
    let (_, output) = tokio::join!(server, client);
    assert!(output.starts_with("HTTP/1.1 200"), "{output}");
    assert!(output.ends_with("\r\n\r\n300000"), "{output}");
}

#[tokio::test]
async fn a_body_reader_on_another_task_hears_the_end_when_the_answer_comes_first() {
    let settings = settings();
    let (told, heard) = oneshot::channel();
    let mut told = Some(told);
    let (server_side, mut client) = tokio::io::duplex(4096);
    let server = serve(server_side, &settings, std::future::pending(), |_, body| {
        let told = told.take().expect("one request");
        tokio::spawn(async move {
            let _ = told.send(body.collect().await.is_err());
        });
        async { Response::new(full("early")) }
    });
    let client = async {
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .expect("written");
        let mut output = Vec::new();
        client.read_to_end(&mut output).await.expect("read");
        drop(client);
        String::from_utf8_lossy(&output).into_owned()
    };
    let (_, output) = tokio::join!(server, client);
    assert!(output.contains("connection: close"), "{output}");
    let failed = tokio::time::timeout(Duration::from_secs(10), heard)
        .await
        .expect("the reader is not left waiting")
        .expect("told");
    assert!(failed, "the cut body ends in an error, not as whole");
}

#[tokio::test]
async fn http10_clients_are_never_sent_100_continue() {
    let settings = settings();
    let (_stop, stop) = oneshot::channel();
    let mut output = Vec::new();
    let sink = &mut output;
    serve_with(&settings, stop, |mut client| async move {
        client
            .write_all(b"POST / HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            .await
            .expect("written");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        client.write_all(b"body").await.expect("written");
        client.read_to_end(sink).await.expect("read");
    })
    .await;
    let output = String::from_utf8_lossy(&output);
    assert!(!output.contains("100 Continue"), "{output}");
    assert!(output.contains("POST / body"), "{output}");
}

/// A stream that, like TLS, holds what it is given until it is flushed.
struct HoldsUntilFlushed {
    inner: DuplexStream,
    held: Vec<u8>,
}

impl AsyncRead for HoldsUntilFlushed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HoldsUntilFlushed {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().held.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.held.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.held))?;
            this.held.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn an_answer_is_flushed_through_a_stream_that_holds_writes() {
    let settings = settings();
    let (server_side, mut client) = tokio::io::duplex(1024);
    let server_side = HoldsUntilFlushed {
        inner: server_side,
        held: Vec::new(),
    };
    let server = serve(server_side, &settings, std::future::pending(), echo);
    let client = async {
        client
            .write_all(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("written");
        let mut output = Vec::new();
        let mut buffer = [0; 1024];
        while !String::from_utf8_lossy(&output).ends_with("GET /whole  ") {
            let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buffer))
                .await
                .expect("the answer arrives while the connection stays open")
                .expect("read");
            assert!(read > 0, "closed");
            output.extend_from_slice(&buffer[..read]);
        }
        drop(client);
    };
    tokio::select! {
        _ = server => panic!("the server ended first"),
        () = client => {}
    }
}

#[tokio::test]
async fn trailers_go_only_to_clients_that_take_them() {
    let settings = settings();
    let with_trailers = |_: Parts, _: RequestBody| async {
        let mut fields = http::HeaderMap::new();
        fields.insert("x-sum", HeaderValue::from_static("7"));
        let frames = vec![
            Frame::data(Bytes::from_static(b"data")),
            Frame::trailers(fields),
        ];
        Response::new(UnknownLength(frames.into()).boxed())
    };
    for (te, expected) in [("TE: trailers\r\n", true), ("", false)] {
        let (server_side, mut client) = tokio::io::duplex(4096);
        let server = serve(
            server_side,
            &settings,
            std::future::pending(),
            with_trailers,
        );
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\n{te}\r\n");
        let client = async {
            client.write_all(request.as_bytes()).await.expect("written");
            client.shutdown().await.expect("shut down");
            let mut output = Vec::new();
            client.read_to_end(&mut output).await.expect("read");
            String::from_utf8_lossy(&output).into_owned()
        };
        let (_, output) = tokio::join!(server, client);
        assert!(output.contains("4\r\ndata\r\n0\r\n"), "{output}");
        assert_eq!(output.contains("x-sum: 7\r\n"), expected, "{output}");
    }
}

#[test]
fn repeated_equal_content_lengths_are_kept_as_one() {
    let mut buffer = BytesMut::from(
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc"[..],
    );
    let head = take_head(&mut buffer, &settings().head_limits)
        .expect("a valid head")
        .expect("a whole head");
    assert_eq!(head.framing, Framing::Length(3));
    let lengths: Vec<_> = head
        .parts
        .headers
        .get_all("content-length")
        .iter()
        .collect();
    assert_eq!(lengths, ["3"]);
}

#[tokio::test]
async fn a_bare_lf_in_a_chunked_request_body_fails_the_body() {
    for body in [&b"3;a\nb\r\nabc\r\n0\r\n\r\n"[..], b"3\r\nabc\r\n0\r\n\n"] {
        let mut input =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        input.extend_from_slice(body);
        let output = exchange(&settings(), &input).await;
        // The echo answers 502 when the body fails, and echoes it when it does not.
        assert!(output.starts_with("HTTP/1.1 502 "), "{output}");
        assert!(output.contains("malformed chunked body"), "{output}");
    }
}

#[tokio::test]
async fn forbidden_request_trailers_do_not_reach_the_responder() {
    let output = exchange(
        &settings(),
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\
          Host: evil\r\nContent-Length: 9\r\nx-sum: 1\r\nCookie: a=b\r\n\r\n",
    )
    .await;
    assert!(output.contains("POST /t a x-sum"), "{output}");
    assert!(
        !output.contains("host") && !output.contains("cookie"),
        "{output}"
    );
}
