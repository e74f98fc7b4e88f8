//! The HTTP/1.1 client: its head parser and chunked decoder as pure functions (examples and
//! properties), and whole exchanges against raw servers on loopback.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::head::MAX_HEAD_BYTES;
use super::*;
use crate::config::{BalanceConfig, ClusterConfig, UpstreamProtocol};
use crate::upstream::UpstreamClient;
use http::header::HeaderName;

fn parse(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
    take_head(&mut BytesMut::from(bytes), false)
}

fn whole(bytes: &[u8]) -> Head {
    parse(bytes).expect("a valid head").expect("a whole head")
}

#[test]
fn a_head_keeps_end_to_end_headers_and_drops_those_of_the_connection() {
    let head = whole(
        b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
          Content-Length: 2\r\nX-Kept: a\r\nX-Kept: b\r\n\r\nok",
    );
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.framing, Framing::Length(2));
    assert!(head.keep_alive);
    let names: Vec<_> = head.headers.keys().map(|name| name.as_str()).collect();
    assert_eq!(names, ["server", "content-length", "x-kept"]);
    assert_eq!(head.headers.get_all("x-kept").iter().count(), 2);
}

#[test]
fn a_head_in_pieces_is_taken_once_whole_and_the_body_stays_behind() {
    let text = b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\nrest";
    let mut buffer = BytesMut::new();
    for (at, byte) in text.iter().enumerate() {
        buffer.extend_from_slice(&[*byte]);
        let taken = take_head(&mut buffer, false).unwrap();
        if at + 1 < text.len() - 4 {
            assert!(taken.is_none(), "whole after {} bytes?", at + 1);
        } else {
            assert_eq!(taken.unwrap().framing, Framing::Empty);
            break;
        }
    }
    assert!(buffer.is_empty());
}

#[test]
fn interim_answers_are_skipped_and_101_is_refused() {
    let head = whole(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(head.status, StatusCode::CREATED);
    assert!(!head.headers.contains_key("link"));
    assert!(matches!(
        parse(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        Err(HeadError::Malformed(_))
    ));
}

#[test]
fn framing_follows_rfc_9112() {
    let framing = |text: &[u8], head_request: bool| {
        let head = take_head(&mut BytesMut::from(text), head_request)
            .unwrap()
            .unwrap();
        (head.framing, head.keep_alive)
    };
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true),
        (Framing::Empty, true)
    );
    assert_eq!(
        framing(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false
        ),
        (Framing::Empty, true)
    );
    assert_eq!(
        framing(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
            false
        ),
        (Framing::Chunked, true)
    );
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
        (Framing::UntilClose, false)
    );
    assert_eq!(
        framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false),
        (Framing::Length(5), true)
    );
    assert_eq!(
        framing(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false
        ),
        (Framing::Length(1), false)
    );
    assert_eq!(
        framing(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
        (Framing::Length(1), false)
    );
    assert_eq!(
        framing(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n",
            false
        ),
        (Framing::Length(1), true)
    );
}

#[test]
fn chunked_with_a_length_drops_the_length_and_the_connection() {
    let head = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
    assert!(!head.keep_alive);
    assert!(!head.headers.contains_key("content-length"));
}

#[test]
fn the_headers_a_connection_header_names_are_left_out_with_it() {
    let head = whole(
        b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n",
    );
    let names: Vec<_> = head.headers.keys().map(|name| name.as_str()).collect();
    assert_eq!(names, ["content-length"]);
}

#[test]
fn a_connection_header_cannot_name_away_the_length_that_frames_the_answer() {
    let head = whole(
        b"HTTP/1.1 200 OK\r\nConnection: content-length, x-secret\r\nContent-Length: 2\r\n\
          X-Secret: 1\r\nTrailer: x-sum\r\nConnection: trailer\r\n\r\nok",
    );
    assert_eq!(head.framing, Framing::Length(2));
    assert_eq!(head.headers["content-length"], "2");
    assert_eq!(head.headers["trailer"], "x-sum");
    assert!(!head.headers.contains_key("x-secret"));
    let answer_to_head = take_head(
        &mut BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 7\r\n\r\n"[..],
        ),
        true,
    )
    .unwrap()
    .unwrap();
    assert_eq!(answer_to_head.headers["content-length"], "7");
}

#[test]
fn repeated_equal_lengths_reach_the_client_as_one() {
    let head = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(head.framing, Framing::Length(2));
    assert_eq!(head.headers.get_all("content-length").iter().count(), 1);
}

#[test]
fn an_answer_with_a_transfer_coding_besides_chunked_is_refused() {
    for text in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ] {
        assert!(
            matches!(parse(text), Err(HeadError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn bad_heads_are_refused_with_the_reason() {
    for text in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
        b"HTTP/9 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ] {
        assert!(
            matches!(parse(text), Err(HeadError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
    while huge.len() <= MAX_HEAD_BYTES {
        huge.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
    }
    assert!(matches!(
        parse(&huge),
        Err(HeadError::TooManyHeaders | HeadError::TooLarge)
    ));
    let mut long = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
    long.resize(MAX_HEAD_BYTES + 10, b'a');
    assert_eq!(parse(&long).unwrap_err(), HeadError::TooLarge);
}

fn decode_all(
    decoder: &mut Decoder,
    buffer: &mut BytesMut,
) -> Result<(Vec<u8>, Option<HeaderMap>, bool), ChunkedError> {
    let (mut data, mut trailers) = (Vec::new(), None);
    loop {
        match decoder.decode(buffer)? {
            Decoded::Data(bytes) => data.extend_from_slice(&bytes),
            Decoded::Trailers(fields) => trailers = Some(fields),
            Decoded::End => return Ok((data, trailers, true)),
            Decoded::NeedMore => return Ok((data, trailers, false)),
        }
    }
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let mut buffer = BytesMut::from(
        &b"4;name=value\r\nWiki\r\nB \r\npedia in \r\n\r\n0\r\nX-Sum: 9\r\n\r\nnext"[..],
    );
    let mut decoder = Decoder::new();
    let (data, trailers, ended) = decode_all(&mut decoder, &mut buffer).unwrap();
    assert_eq!(data, b"Wikipedia in \r\n");
    assert!(ended && decoder.is_done());
    assert_eq!(trailers.unwrap()["x-sum"], "9");
    assert_eq!(&buffer[..], b"next");
}

#[test]
fn malformed_chunked_bodies_are_refused() {
    for text in [
        &b"x\r\n"[..],
        b"4\r\nWikiXX",
        b"4\r\nWiki\r\n0\r\nBad Name: 1\r\n\r\n",
        b"10000000000000000\r\n",
        b"\r\n",
    ] {
        let mut buffer = BytesMut::from(text);
        assert!(
            decode_all(&mut Decoder::new(), &mut buffer).is_err(),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    let mut long = b"4;".to_vec();
    long.resize(5000, b'x');
    assert!(decode_all(&mut Decoder::new(), &mut BytesMut::from(&long[..])).is_err());
}

#[test]
fn a_chunk_size_line_with_a_control_byte_is_refused() {
    // httparse takes any byte but CR in a chunk extension, a bare LF included: a server
    // that ends the line at that LF reads the body's bytes as chunk sizes ("funky chunks").
    for text in [
        &b"2;a\nb\r\nok\r\n0\r\n\r\n"[..],
        b"2;a\x00\r\nok\r\n0\r\n\r\n",
        b"2;a\x7f\r\nok\r\n0\r\n\r\n",
        b"0;a\nb\r\n\r\n",
        // Refused before the line ends.
        b"4;\n",
    ] {
        let mut buffer = BytesMut::from(text);
        assert!(
            decode_all(&mut Decoder::new(), &mut buffer).is_err(),
            "{}",
            text.escape_ascii()
        );
    }
    let mut buffer = BytesMut::from(&b"2;a=\"b c\"\t\r\nok\r\n0\r\n\r\n"[..]);
    let (data, _, ended) = decode_all(&mut Decoder::new(), &mut buffer).unwrap();
    assert!(ended && data == b"ok");
}

proptest! {
    /// Any body, cut into any chunks and fed in any pieces, decodes to itself, ends once,
    /// and leaves what follows it in the buffer.
    #[test]
    fn chunked_decoding_inverts_encoding(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(1usize..90, 0..20),
        feed in proptest::collection::vec(1usize..40, 1..30),
        extension in any::<bool>(),
    ) {
        let mut encoded = Vec::new();
        let mut rest = &data[..];
        for cut in cuts.iter().cycle().take(if cuts.is_empty() { 0 } else { 1000 }) {
            if rest.is_empty() {
                break;
            }
            let (chunk, after) = rest.split_at((*cut).min(rest.len()));
            encoded.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
            if extension {
                encoded.extend_from_slice(b";a=b");
            }
            encoded.extend_from_slice(b"\r\n");
            encoded.extend_from_slice(chunk);
            encoded.extend_from_slice(b"\r\n");
            rest = after;
        }
        if !rest.is_empty() {
            encoded.extend_from_slice(format!("{:x}\r\n", rest.len()).as_bytes());
            encoded.extend_from_slice(rest);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\nafter");
        let mut decoder = Decoder::new();
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        let mut fed = 0;
        let mut sizes = feed.iter().cycle();
        let mut ended = false;
        while !ended {
            let size = (*sizes.next().unwrap()).min(encoded.len() - fed);
            prop_assert!(size > 0 || fed == encoded.len());
            buffer.extend_from_slice(&encoded[fed..fed + size]);
            fed += size;
            let (data, trailers, end) = decode_all(&mut decoder, &mut buffer).unwrap();
            prop_assert!(trailers.is_none());
            decoded.extend_from_slice(&data);
            ended = end;
            prop_assert!(ended || fed < encoded.len());
        }
        prop_assert_eq!(decoded, data);
        buffer.extend_from_slice(&encoded[fed..]);
        prop_assert_eq!(&buffer[..], b"after");
    }

    /// Any bytes: the head parser never panics, and a head it takes from a prefix it takes
    /// the same way from the whole.
    #[test]
    fn the_head_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buffer = BytesMut::from(&bytes[..]);
        let whole = take_head(&mut buffer, false);
        if let Ok(Some(head)) = &whole {
            prop_assert!(buffer.len() < bytes.len());
            let mut prefix = BytesMut::from(&bytes[..bytes.len() - buffer.len()]);
            let again = take_head(&mut prefix, false).unwrap().unwrap();
            prop_assert_eq!(again.status, head.status);
            prop_assert!(prefix.is_empty());
        }
    }
}

fn request(method: Method, headers: &[(&str, &str)], body: ProxyBody) -> Request<ProxyBody> {
    let mut request = Request::builder().method(method).uri("/p?q=1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).unwrap()
}

fn encoded(request: &Request<ProxyBody>) -> String {
    encoded_with(request, &AddedHeaders::default())
}

fn encoded_with(request: &Request<ProxyBody>, added: &AddedHeaders) -> String {
    let framing = request_framing(request.headers(), request.body());
    let mut out = Vec::new();
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.headers_mut() = request.headers().clone();
    encode_head(&mut out, &head.into_parts().0, added, framing);
    String::from_utf8(out).unwrap()
}

/// A body of these frames in turn, of no known size.
struct Frames(std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>);

impl HttpBody for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.get_mut().0.next())
    }
}

fn streamed(frames: Vec<Result<Frame<Bytes>, BoxError>>) -> ProxyBody {
    Frames(frames.into_iter()).boxed()
}

#[test]
fn request_heads_carry_their_framing() {
    let get = request(Method::GET, &[("host", "a")], crate::body::empty());
    assert_eq!(encoded(&get), "GET /p?q=1 HTTP/1.1\r\nhost: a\r\n\r\n");
    let declared = request(
        Method::POST,
        &[("content-length", "2")],
        Full::new(Bytes::from_static(b"ab"))
            .map_err(|never| match never {})
            .boxed(),
    );
    assert_eq!(
        encoded(&declared),
        "POST /p?q=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\n"
    );
    let known = request(
        Method::PUT,
        &[],
        Full::new(Bytes::from_static(b"abc"))
            .map_err(|never| match never {})
            .boxed(),
    );
    assert_eq!(
        encoded(&known),
        "PUT /p?q=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n"
    );
    let unknown = request(
        Method::POST,
        &[("content-length", "x")],
        streamed(vec![Ok(Frame::data(Bytes::from_static(b"a")))]),
    );
    assert_eq!(
        encoded(&unknown),
        "POST /p?q=1 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    );
}

#[test]
fn repeated_equal_lengths_go_upstream_as_one() {
    let declared = request(
        Method::POST,
        &[("content-length", "2"), ("content-length", "2")],
        Full::new(Bytes::from_static(b"ab"))
            .map_err(|never| match never {})
            .boxed(),
    );
    assert_eq!(
        encoded(&declared),
        "POST /p?q=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\n"
    );
}

#[test]
fn added_lines_follow_the_maps_own() {
    let get = request(
        Method::GET,
        &[("host", "a"), ("via", "1.0 edge")],
        crate::body::empty(),
    );
    let mut added = AddedHeaders::default();
    added.push(header::VIA, HeaderValue::from_static("1.1 blastwall"));
    added.push(
        HeaderName::from_static("x-forwarded-for"),
        HeaderValue::from_static("10.0.0.1"),
    );
    assert_eq!(
        encoded_with(&get, &added),
        "GET /p?q=1 HTTP/1.1\r\nhost: a\r\nvia: 1.0 edge\r\nvia: 1.1 blastwall\r\n\
         x-forwarded-for: 10.0.0.1\r\n\r\n"
    );
}

/// A raw server on loopback: reads a request, hands its bytes to `answer`, writes what it
/// returns, and closes when `answer` says so.
async fn raw_server<F>(answer: F) -> (String, tokio::task::JoinHandle<Vec<u8>>)
where
    F: Fn(&[u8]) -> Option<(Vec<u8>, bool)> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
            {
                Ok(Ok(n)) => n,
                _ => return seen,
            };
            if n == 0 {
                return seen;
            }
            seen.extend_from_slice(&buffer[..n]);
            if let Some((reply, close)) = answer(&seen) {
                let _ = stream.write_all(&reply).await;
                if close {
                    return seen;
                }
            }
        }
    });
    (authority, task)
}

fn home_for(client: &UpstreamClient, authority: &str) -> impl FnOnce() -> Home {
    let (shared, authority) = (client.shared.clone(), authority.parse().unwrap());
    move || Home { shared, authority }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn client() -> UpstreamClient {
    UpstreamClient::new(&ClusterConfig {
        name: "api".to_owned(),
        endpoints: Vec::new(),
        balance: BalanceConfig::RoundRobin,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(60),
        protocol: UpstreamProtocol::Http1,
        dns_refresh: Duration::from_secs(30),
        panic_threshold: 0.5,
        max_idle_per_endpoint: 8,
        health_check: None,
        passive: Default::default(),
        retry_budget: Default::default(),
        concurrency: None,
    })
}

async fn connect(authority: &str) -> Box<Connection> {
    Connection::new(TcpStream::connect(authority).await.unwrap())
}

/// Sends `request` on a new connection to `authority`, to be answered soon.
async fn exchange(
    client: &UpstreamClient,
    authority: &str,
    request: Request<ProxyBody>,
) -> Result<(Response<Body>, Option<Box<Connection>>), Failure> {
    send(
        connect(authority).await,
        request,
        &AddedHeaders::default(),
        soon(),
        home_for(client, authority),
    )
    .await
}

fn ends_with_head(seen: &[u8]) -> bool {
    seen.windows(4).any(|window| window == b"\r\n\r\n")
}

#[tokio::test]
async fn a_small_answer_comes_whole_and_frees_its_connection_at_once() {
    let (authority, server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                false,
            )
        })
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[("host", "up")], crate::body::empty());
    let (response, idle) = exchange(&client, &authority, get).await.unwrap();
    assert!(idle.is_some(), "the body came with the head");
    assert_eq!(response.body().size_hint().exact(), Some(2));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
    drop(idle);
    assert_eq!(
        server.await.unwrap(),
        b"GET /p?q=1 HTTP/1.1\r\nhost: up\r\n\r\n"
    );
}

#[tokio::test]
async fn a_chunked_answer_streams_with_its_trailers_then_returns_the_connection() {
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
                    .to_vec(),
                false,
            )
        })
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let (response, idle) = exchange(&client, &authority, get).await.unwrap();
    assert!(idle.is_none(), "the body holds the connection");
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-sum"], "5");
    assert_eq!(collected.to_bytes(), "abcde");
    assert_eq!(client.shared.pool.kept_http1(&authority), 1);
}

#[tokio::test]
async fn an_answer_until_close_ends_with_the_connection_which_is_not_kept() {
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| (b"HTTP/1.1 200 OK\r\n\r\nall of it".to_vec(), true))
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let (response, _) = exchange(&client, &authority, get).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "all of it");
    assert_eq!(client.shared.pool.kept_http1(&authority), 0);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_not_a_short_answer() {
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf".to_vec(),
                true,
            )
        })
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let (response, _) = exchange(&client, &authority, get).await.unwrap();
    let error = response.into_body().collect().await.unwrap_err();
    assert!(matches!(error, Error::ClosedInBody), "{error}");
    assert_eq!(client.shared.pool.kept_http1(&authority), 0);
}

#[tokio::test]
async fn a_streamed_request_body_goes_chunked_with_its_trailers() {
    let (authority, server) = raw_server(|seen| {
        seen.ends_with(b"0\r\nx-check: 1\r\n\r\n")
            .then(|| (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), true))
    })
    .await;
    let client = client();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-check", HeaderValue::from_static("1"));
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"hello "))),
        Ok(Frame::data(Bytes::from_static(b"world"))),
        Ok(Frame::trailers(trailers)),
    ];
    let post = request(Method::POST, &[], streamed(frames));
    let (response, _) = exchange(&client, &authority, post).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let seen = server.await.unwrap();
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "POST /p?q=1 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
         6\r\nhello \r\n5\r\nworld\r\n0\r\nx-check: 1\r\n\r\n"
    );
}

#[tokio::test]
async fn a_large_body_frame_leaves_no_large_buffer_with_the_kept_connection() {
    const BODY: usize = 1 << 20;
    let (authority, _server) = raw_server(|seen| {
        let head_end = seen.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
        (seen.len() - head_end == BODY).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
                false,
            )
        })
    })
    .await;
    let client = client();
    let whole = Full::new(Bytes::from(vec![b'x'; BODY]))
        .map_err(|never| match never {})
        .boxed();
    let post = request(Method::POST, &[], whole);
    let (response, idle) = exchange(&client, &authority, post).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let idle = idle.expect("the connection is free again");
    assert!(
        idle.write.capacity() <= WRITE_HIGH_WATER,
        "{} bytes kept",
        idle.write.capacity()
    );
}

#[tokio::test]
async fn an_answer_before_the_body_is_taken_is_the_answer() {
    // The endpoint refuses the body after the head and closes without reading it: writing
    // the rest fails, and the 413 it sent is what the request gets.
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
                true,
            )
        })
    })
    .await;
    let client = client();
    let big = Bytes::from(vec![b'x'; 8 << 20]);
    let post = request(
        Method::POST,
        &[],
        Full::new(big).map_err(|never| match never {}).boxed(),
    );
    let (response, idle) = exchange(&client, &authority, post).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(idle.is_none());
}

#[tokio::test]
async fn a_closed_connection_with_nothing_written_hands_the_request_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _accepted = listener.accept().unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream.set_nonblocking(true).unwrap();
    let connection = Connection::new(TcpStream::from_std(stream).unwrap());
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let failure = send(
        connection,
        get,
        &AddedHeaders::default(),
        soon(),
        home_for(&client, "127.0.0.1:1"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(failure, Failure::NotSent(Some(_), Error::Write(_))),
        "{failure:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_answer_by_the_expiry_is_a_timeout() {
    // The endpoint reads the request and never answers: the send waits until its expiry
    // (paused time: the runtime jumps there once nothing else can happen).
    let (authority, _server) = raw_server(|_| None).await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let expires = Instant::now() + Duration::from_secs(3);
    let failure = send(
        connect(&authority).await,
        get,
        &AddedHeaders::default(),
        expires,
        home_for(&client, &authority),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(failure, Failure::Sent(Error::TimedOut)),
        "{failure:?}"
    );
    assert_eq!(Instant::now(), expires);
    let error = crate::upstream::UpstreamError::from_http1(failure);
    assert_eq!(error.kind(), blastwall_policy::retry::FailureKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_connection_timer_moved_later_fires_at_the_later_instant_only() {
    let (authority, _server) = raw_server(|_| None).await;
    let mut connection = connect(&authority).await;
    let start = Instant::now();
    let mut cx = Context::from_waker(Waker::noop());
    connection
        .timer
        .as_mut()
        .reset(start + Duration::from_secs(1));
    assert!(connection.timer.as_mut().poll(&mut cx).is_pending());
    connection
        .timer
        .as_mut()
        .reset(start + Duration::from_secs(5));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(connection.timer.as_mut().poll(&mut cx).is_pending());
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(connection.timer.as_mut().poll(&mut cx).is_ready());
}

/// An endpoint that answers its first request with `first` and then, when the test says
/// so, sends `stray` on the same connection, which nobody asked for. Every later request,
/// on any connection, gets `answer N` (N counted from 1 over all connections).
struct Misbehaving {
    authority: String,
    stray: Option<tokio::sync::oneshot::Sender<()>>,
    stray_sent: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Misbehaving {
    async fn start(first: &'static [u8], stray: &'static [u8]) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::sync::{Mutex, oneshot};

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let (stray_tx, stray_rx) = oneshot::channel::<()>();
        let (sent_tx, sent_rx) = oneshot::channel::<()>();
        let signals = Arc::new(Mutex::new(Some((stray_rx, sent_tx))));
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (signals, served) = (signals.clone(), served.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        while !ends_with_head(&seen) {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buffer[..n]),
                            }
                        }
                        seen.clear();
                        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                        if n == 1 {
                            stream.write_all(first).await.unwrap();
                            let Some((stray_rx, sent_tx)) = signals.lock().await.take() else {
                                return;
                            };
                            if stray_rx.await.is_ok() {
                                stream.write_all(stray).await.unwrap();
                                let _ = sent_tx.send(());
                            }
                        } else {
                            let body = format!("answer {n}");
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self {
            authority,
            stray: Some(stray_tx),
            stray_sent: Some(sent_rx),
        }
    }

    fn request(&self, method: Method, path: &str) -> Request<ProxyBody> {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.authority))
            .body(crate::body::empty())
            .unwrap()
    }

    /// Has the stray bytes sent, and waits until they are written.
    async fn send_stray(&mut self) {
        self.stray.take().unwrap().send(()).unwrap();
        self.stray_sent.take().unwrap().await.unwrap();
    }
}

/// One client asks, the endpoint answers and, once the connection is back in the pool,
/// sends `stray`; the next client must get its own answer, never those bytes.
async fn the_next_request_gets_its_own_answer_after(
    method: Method,
    first: &'static [u8],
    stray: &'static [u8],
) {
    let mut upstream = Misbehaving::start(first, stray).await;
    let client = client();
    let pool = &client.shared.pool;
    let response = (client.send(
        upstream.request(method, "/one"),
        AddedHeaders::default(),
        soon(),
    ))
    .await
    .unwrap();
    response.into_body().collect().await.unwrap();
    upstream.send_stray().await;
    // Wait until the runtime has heard of the stray bytes, the connection put back as it was.
    let idle = pool
        .take_http1(&upstream.authority)
        .expect("the connection was kept after the first answer");
    idle.io.readable().await.unwrap();
    pool.give_back_http1(&upstream.authority, idle);

    let second = client
        .send(
            upstream.request(Method::GET, "/two"),
            AddedHeaders::default(),
            soon(),
        )
        .await
        .expect("the second request gets an answer");
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "answer 2", "the second request got another's bytes");
}

/// What a misbehaving endpoint sends after its answer: a whole answer of its own, which
/// read as the next request's answer would hand that client someone else's response.
const STRAY_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstray";

#[tokio::test]
async fn a_body_sent_after_a_204_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        STRAY_ANSWER,
    )
    .await;
}

#[tokio::test]
async fn a_body_sent_after_a_304_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 40\r\n\r\n",
        STRAY_ANSWER,
    )
    .await;
}

#[tokio::test]
async fn a_body_sent_after_the_answer_to_head_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::HEAD,
        b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n",
        STRAY_ANSWER,
    )
    .await;
}

#[tokio::test]
async fn more_body_than_the_length_after_a_whole_answer_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        STRAY_ANSWER,
    )
    .await;
}

#[tokio::test]
async fn more_body_than_the_length_after_a_streamed_answer_is_not_read_as_the_next_answer() {
    // The head says more than comes with it: the body streams, and its end gives the
    // connection back; then the endpoint goes on.
    const FIRST: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 70000\r\n\r\n";
    let mut first = FIRST.to_vec();
    first.resize(FIRST.len() + 70000, b'b');
    the_next_request_gets_its_own_answer_after(Method::GET, first.leak(), STRAY_ANSWER).await;
}

#[tokio::test]
async fn more_after_the_end_of_a_chunked_answer_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        STRAY_ANSWER,
    )
    .await;
}

#[tokio::test]
async fn a_second_answer_to_one_request_is_not_read_as_the_next_answer() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst",
        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond",
    )
    .await;
}

#[tokio::test]
async fn a_byte_sent_while_idle_retires_the_connection() {
    the_next_request_gets_its_own_answer_after(
        Method::GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst",
        b"X",
    )
    .await;
}

#[tokio::test]
async fn bytes_past_the_framing_in_the_same_read_retire_the_connection_at_once() {
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n".to_vec(),
                false,
            )
        })
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let (response, idle) = exchange(&client, &authority, get).await.unwrap();
    assert!(idle.is_none(), "bytes past the framing: not kept");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn a_connection_back_from_a_small_answer_is_checked_without_a_system_call() {
    // After an answer read in a read shorter than its room, the runtime knows the socket
    // is empty: handing the connection out again needs no read to tell.
    let (authority, _server) = raw_server(|seen| {
        ends_with_head(seen).then(|| {
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                false,
            )
        })
    })
    .await;
    let client = client();
    let get = request(Method::GET, &[], crate::body::empty());
    let (_, idle) = exchange(&client, &authority, get).await.unwrap();
    let idle = idle.expect("kept");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(idle.io.poll_read_ready(&mut cx).is_pending());
    assert!(idle.is_reusable());
}

#[test]
fn a_replayed_answer_is_kept_only_when_its_framing_ends_at_the_last_byte_read() {
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let exact = replay::replay(&mut [answer].into_iter(), false).unwrap();
    assert!(exact.kept && exact.taken == answer.len() && exact.body == b"ok");
    let more = [answer, b"HTTP/1.1 200 OK\r\n"].concat();
    let past = replay::replay(&mut [&more[..]].into_iter(), false).unwrap();
    assert!(!past.kept && past.taken == answer.len() && past.read == more.len());
    // The same answer streamed over two reads, the second of which ends it.
    let (head, body) = answer.split_at(answer.len() - 1);
    let streamed = replay::replay(&mut [head, body].into_iter(), false).unwrap();
    assert_eq!(streamed, exact);
    let chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let ended = replay::replay(&mut [chunked, b"next"].into_iter(), false).unwrap();
    assert!(ended.kept && ended.body == b"ok" && ended.read == chunked.len());
    let until_close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nall";
    let closed = replay::replay(&mut [until_close].into_iter(), false).unwrap();
    assert!(!closed.kept && closed.body == b"all");
    assert!(matches!(
        replay::replay(&mut [&answer[..answer.len() - 1]].into_iter(), false),
        Err(Error::ClosedInBody)
    ));
}
