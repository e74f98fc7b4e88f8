//! Writing an answer: its head framed for this connection, then its body gathered into as
//! few writes as it allows.

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use http::{Response, StatusCode, Version, header};
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Connection;
use crate::body::ProxyBody;
use crate::codec::{self, Delimit, encode_end, encode_frame, encode_line};

/// Answer bytes gathered before they are written.
const WRITE_HIGH_WATER: usize = 64 * 1024;

/// An answer being written.
pub(super) struct Writing {
    body: ProxyBody,
    delimit: Delimit,
    left: u64,
    trailers: bool,
    ended: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Writes `response`'s head into the write buffer, and says how its body follows.
    pub(super) fn start_answer(
        &mut self,
        response: Response<ProxyBody>,
        head_request: bool,
        version: Version,
        takes_trailers: bool,
        close: &mut bool,
    ) -> Writing {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let no_body = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let stated = if no_body {
            None
        } else {
            let mut values = parts.headers.get_all(header::CONTENT_LENGTH).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => codec::content_length(value.as_bytes()),
                _ => None,
            }
        };
        // The framing headers are this connection's own, as are `Connection` and its
        // options; a stated length is kept when it is valid.
        let (delimit, own_length) = delimit(no_body, stated, head_request, &body, version);
        *close |= matches!(delimit, Delimit::UntilClose);
        let out = &mut self.write;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        let keep_stated = head_request || stated.is_some();
        let mut dated = false;
        for (name, value) in &parts.headers {
            if *name == header::CONNECTION
                || *name == header::TRANSFER_ENCODING
                || name.as_str() == "keep-alive"
                || (*name == header::CONTENT_LENGTH && (!keep_stated || no_body))
            {
                continue;
            }
            dated |= *name == header::DATE;
            encode_line(out, name, value);
        }
        match (delimit, own_length) {
            (_, Some(length)) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            (Delimit::Chunked, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if !dated {
            // Writing into a Vec cannot fail.
            let _ = write!(
                out,
                "date: {}\r\n",
                httpdate::HttpDate::from(SystemTime::now())
            );
        }
        if *close {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let left = match delimit {
            Delimit::Length(length) => length,
            _ => 0,
        };
        Writing {
            body,
            delimit,
            left,
            trailers: takes_trailers,
            ended: matches!(delimit, Delimit::None | Delimit::Length(0)),
        }
    }

    /// Writes the answer's body after its head, gathering what the body has ready into one
    /// write.
    pub(super) fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
        answer: &mut Writing,
    ) -> Poll<Result<(), crate::body::BoxError>> {
        loop {
            while !answer.ended && self.write.len() < WRITE_HIGH_WATER {
                match Pin::new(&mut answer.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        answer.ended = encode_frame(
                            &mut self.write,
                            frame,
                            answer.delimit,
                            &mut answer.left,
                            answer.trailers,
                        )?;
                    }
                    Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                    Poll::Ready(None) => {
                        answer.ended = true;
                        encode_end(&mut self.write, answer.delimit, answer.left, None)?;
                    }
                    Poll::Pending => break,
                }
            }
            if self.write.is_empty() {
                return if answer.ended {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            ready!(self.poll_flush(cx))?;
        }
    }
}

/// How an answer's body is delimited on the connection, and the length to state when the
/// answer did not state its own: by its length, chunked for HTTP/1.1, else until the
/// connection closes.
fn delimit(
    no_body: bool,
    stated: Option<u64>,
    head_request: bool,
    body: &ProxyBody,
    version: Version,
) -> (Delimit, Option<u64>) {
    if no_body {
        (Delimit::None, None)
    } else if head_request {
        // The length a GET would have, when the answer has it and does not say it.
        let known = body.size_hint().exact().filter(|&length| length > 0);
        (Delimit::None, known.filter(|_| stated.is_none()))
    } else if let Some(length) = stated {
        (Delimit::Length(length), None)
    } else if let Some(length) = body.size_hint().exact() {
        (Delimit::Length(length), Some(length))
    } else if version == Version::HTTP_11 {
        (Delimit::Chunked, None)
    } else {
        (Delimit::UntilClose, None)
    }
}
