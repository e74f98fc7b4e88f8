//! One client connection of the load generator: HTTP/1.1, or HTTP/2 by prior knowledge
//! (h2c), the same requests and answers either way; over TLS the server's ALPN choice
//! decides ([`super::tls`]).
//!
//! Each worker keeps one request in flight on its connection in both versions, so
//! `--connections` bounds the requests in flight whatever the protocol; HTTP/2 changes the
//! framing and header compression a server sees, not the concurrency.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::TlsSettings;

/// The HTTP version the load is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 by prior knowledge, without an upgrade (h2c).
    Http2,
}

/// The sending half of an open connection.
pub(super) enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Waits until the connection can take a request; an error means it is closed.
    pub(super) async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Self::Http1(sender) => sender.ready().await,
            Self::Http2(sender) => sender.ready().await,
        }
    }

    /// Sends one request; the answer's body is still to be read.
    pub(super) async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<Response<Incoming>> {
        match self {
            Self::Http1(sender) => sender.send_request(request).await,
            Self::Http2(sender) => sender.send_request(request).await,
        }
    }
}

/// Opens a connection: the outer error is TCP's or TLS's, the inner one the HTTP
/// handshake's.
pub(super) async fn connect(
    addr: SocketAddr,
    protocol: Protocol,
    tls: Option<&TlsSettings>,
) -> std::io::Result<hyper::Result<Sender>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(handshake(stream, protocol).await);
    };
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), stream)
        .await?;
    let agreed = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    Ok(handshake(stream, agreed).await)
}

async fn handshake<Io>(io: Io, protocol: Protocol) -> hyper::Result<Sender>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    // The connection task ends when the sender is dropped or the peer closes.
    match protocol {
        Protocol::Http1 => http1::handshake(io).await.map(|(sender, connection)| {
            tokio::spawn(connection);
            Sender::Http1(sender)
        }),
        Protocol::Http2 => {
            http2::handshake(TokioExecutor::new(), io)
                .await
                .map(|(sender, connection)| {
                    tokio::spawn(connection);
                    Sender::Http2(sender)
                })
        }
    }
}
