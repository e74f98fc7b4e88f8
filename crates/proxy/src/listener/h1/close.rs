//! Ending a connection: answering a refused head, and closing so that the answer reaches a
//! client that is still sending.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use http::Version;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Connection;
use crate::error::error_response;
use crate::listener::checks::Rejection;

/// What is read and thrown away, at most, after answering a request whose body was not
/// read (see `close`).
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Answers a refused head (or one not whole in time), then closes.
    pub(super) async fn refuse(&mut self, rejection: &Rejection) {
        tracing::debug!(error = rejection.error.as_str(), reason = %rejection.reason, "request refused");
        let response = error_response(rejection.error, &rejection.reason);
        let mut close = true;
        let mut answer = self.start_answer(response, false, Version::HTTP_11, false, &mut close);
        let limit = self.settings.header_read_timeout;
        let written = poll_fn(|cx| self.poll_answer(cx, &mut answer));
        // A client that does not read its answer does not keep the connection.
        if tokio::time::timeout(limit, written).await.is_ok() {
            self.close(true).await;
        }
    }

    /// Writes what is pending and closes the sending side, within `header_read_timeout`
    /// for a client that does not read. With `linger`, what the client is still sending
    /// (a body the proxy answered without reading) is read and thrown away for a while:
    /// closed with unread bytes, the socket would send a reset, which can destroy the
    /// answer before the client reads it.
    pub(super) async fn close(&mut self, linger: bool) {
        let limit = self.settings.header_read_timeout;
        let closed = poll_fn(|cx| {
            ready!(self.poll_flush(cx))?;
            Pin::new(&mut self.io).poll_shutdown(cx)
        });
        if !matches!(tokio::time::timeout(limit, closed).await, Ok(Ok(()))) || !linger {
            return;
        }
        let mut discarded = 0;
        let drained = poll_fn(|cx| {
            loop {
                self.read.clear();
                match ready!(self.poll_fill(cx)) {
                    Ok(n) if n > 0 && discarded < LINGER_BYTES => discarded += n,
                    _ => return Poll::Ready(()),
                }
            }
        });
        let _ = tokio::time::timeout(LINGER_TIME, drained).await;
    }
}
