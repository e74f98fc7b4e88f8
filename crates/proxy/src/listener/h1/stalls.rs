//! The paces of what waits on the client, an answer's write and a request body, kept on the
//! connection's one timer.

use std::task::Context;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Connection;
use crate::listener::pace::Stall;

/// Which transfer waits on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// The request body.
    Body,
    /// The answer.
    Send,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<'_, S> {
    /// Keeps the paces of what waits on the client (the answer's write when `sending`, the
    /// request body when `poll_feed` waits for it), and the timer at the first of their
    /// deadlines. `Err` when one of them stalled.
    pub(super) fn poll_pace(&mut self, sending: bool) -> Result<(), (Direction, Stall)> {
        let settings = self.settings;
        let mut moved = false;
        if sending {
            moved |= self
                .send_pace
                .wait(self.moved_out, &settings.send_pace)
                .is_some();
        } else {
            self.send_pace.rest();
        }
        if self.feed_waits {
            moved |= self
                .body_pace
                .wait(self.moved_in, &settings.body_pace)
                .is_some();
        } else {
            self.body_pace.rest();
        }
        if !self.send_pace.is_waiting() && !self.body_pace.is_waiting() {
            return Ok(());
        }
        loop {
            if self.timer_elapsed {
                let now = Instant::now();
                self.send_pace
                    .check(now, self.moved_out, &settings.send_pace)
                    .map_err(|stall| (Direction::Send, stall))?;
                self.body_pace
                    .check(now, self.moved_in, &settings.body_pace)
                    .map_err(|stall| (Direction::Body, stall))?;
                moved = true;
            }
            let deadline = match (self.send_pace.deadline(), self.body_pace.deadline()) {
                (Some(send), Some(body)) => send.min(body),
                (Some(deadline), None) | (None, Some(deadline)) => deadline,
                (None, None) => return Ok(()),
            };
            if !moved && self.timer.deadline() == deadline {
                return Ok(());
            }
            moved = false;
            self.timer.as_mut().reset(deadline);
            self.timer_elapsed = false;
            // Polled once with the side waker, so that it wakes the task when it fires.
            let mut side_cx = Context::from_waker(&self.side_waker);
            if self.timer.as_mut().poll(&mut side_cx).is_pending() {
                return Ok(());
            }
            self.timer_elapsed = true;
        }
    }
}
