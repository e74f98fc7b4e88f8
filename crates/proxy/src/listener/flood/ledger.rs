//! What the guard keeps of one connection, sans IO: a budget of control frames, the requests
//! and their cancellations, and the highest stream the client opened (for the GOAWAY).

use std::time::{Duration, Instant};

use super::frames::{
    CONTINUATION, DATA, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS, Head, RST_STREAM,
};

/// Control frames (PING, SETTINGS, PRIORITY, RST_STREAM, WINDOW_UPDATE, unknown types,
/// empty DATA frames that end nothing) a connection may send per [`BUDGET_WINDOW`] on top of
/// what it earns: 100 a second on average, more than any client sends when idle.
pub(super) const ALLOWANCE: u32 = 1_000;

/// The window the allowance is renewed over.
pub(super) const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Control frames each request (HEADERS) earns: Envoy allows 100 PRIORITY frames a stream
/// (`max_inbound_priority_frames_per_stream`); it also covers the request's RST_STREAM and
/// the WINDOW_UPDATEs of its body.
pub(super) const HEADERS_EARN: u32 = 100;

/// Control frames each DATA frame we send earns: the client's WINDOW_UPDATEs for it, and a
/// gRPC client's bandwidth PING. Envoy's `max_inbound_window_update_frames_per_data_frame_sent`.
pub(super) const DATA_SENT_EARNS: u32 = 10;

/// The most a connection can hold in its budget: what it earned is spent within a while,
/// not saved up for a flood later. Envoy bounds queued control frames at 10,000.
pub(super) const MAX_BALANCE: u32 = 10_000;

/// Requests a connection must have opened before its share of cancelled ones is judged:
/// Envoy's `premature_reset_total_stream_count`.
pub(super) const RESETS_JUDGED_AFTER: u32 = 500;

/// The largest GOAWAY the guard sends: head, last stream id, error code, debug data.
const GOAWAY_MAX_LEN: usize = 9 + 8 + 32;

/// How many control frames a connection may still send: a sans-IO budget, renewed each
/// [`BUDGET_WINDOW`] and topped up by what the connection earns.
#[derive(Debug)]
pub(super) struct Budget {
    balance: u32,
    window_start: Instant,
}

impl Budget {
    /// A full allowance, its window starting `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            balance: ALLOWANCE,
            window_start: now,
        }
    }

    /// Adds what a frame earned, up to [`MAX_BALANCE`].
    pub(super) fn earn(&mut self, amount: u32) {
        self.balance = self.balance.saturating_add(amount).min(MAX_BALANCE);
    }

    /// Spends one control frame; false if the budget is spent and its window not yet over.
    /// The clock is read only then, once per allowance at most.
    pub(super) fn spend(&mut self, now: impl FnOnce() -> Instant) -> bool {
        if let Some(balance) = self.balance.checked_sub(1) {
            self.balance = balance;
            return true;
        }
        let now = now();
        if now.saturating_duration_since(self.window_start) < BUDGET_WINDOW {
            return false;
        }
        self.window_start = now;
        self.balance = ALLOWANCE - 1;
        true
    }

    /// Weighs one frame the client sent: false if it is one control frame too many.
    pub(super) fn inbound(&mut self, head: Head, now: impl FnOnce() -> Instant) -> bool {
        match head.kind {
            HEADERS => {
                self.earn(HEADERS_EARN);
                true
            }
            // A body's bytes, or its end: what DATA frames are for.
            DATA if head.len > 0 || head.flags & END_STREAM != 0 => true,
            // Bounded by `h2` itself (frames per header block), or sent once.
            CONTINUATION | GOAWAY => true,
            _ => self.spend(now),
        }
    }

    /// Weighs one frame we sent.
    pub(super) fn outbound(&mut self, head: Head) {
        if head.kind == DATA {
            self.earn(DATA_SENT_EARNS);
        }
    }
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flood {
    /// More control frames than its [`Budget`].
    ControlFrames,
    /// Most of its requests cancelled as they began: rapid reset paced so that the streams
    /// are accepted before they are reset, past `h2`'s count.
    Resets,
}

impl Flood {
    /// What the GOAWAY says, for whoever debugs the client.
    fn debug_data(self) -> &'static [u8] {
        match self {
            Self::ControlFrames => b"too_many_control_frames",
            Self::Resets => b"too_many_cancelled_requests",
        }
    }
}

/// The client's requests and its cancellations (RST_STREAM) over the connection's life.
///
/// Envoy's rule for rapid reset: once a connection has opened [`RESETS_JUDGED_AFTER`]
/// streams, it may not have cancelled half of them. Envoy counts only resets within a second
/// of the stream's start; knowing that takes state per stream, so every reset counts here: a
/// client that cancels most of what it asks for, however slowly, is told to reconnect.
#[derive(Debug, Default)]
pub(super) struct Resets {
    opened: u32,
    reset: u32,
}

impl Resets {
    /// Notes a new stream.
    pub(super) fn opened(&mut self) {
        self.opened = self.opened.saturating_add(1);
    }

    /// Notes a cancelled one: false if the connection now cancels too much.
    pub(super) fn reset(&mut self) -> bool {
        self.reset = self.reset.saturating_add(1);
        self.opened < RESETS_JUDGED_AFTER || u64::from(self.reset) * 2 <= u64::from(self.opened)
    }
}

/// What the guard keeps of a connection's frames: the control-frame budget, the requests
/// and their cancellations, and the highest stream the client opened.
#[derive(Debug)]
pub(super) struct Ledger {
    budget: Budget,
    resets: Resets,
    last_stream: u32,
}

impl Ledger {
    /// A connection starting `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            budget: Budget::new(now),
            resets: Resets::default(),
            last_stream: 0,
        }
    }

    /// Notes one frame the client sent; an error if it is one too many.
    pub(super) fn inbound(
        &mut self,
        head: Head,
        now: impl FnOnce() -> Instant,
    ) -> Result<(), Flood> {
        match head.kind {
            // NOTE: client streams only grow (h2 refuses the rest), so a higher id is a new
            // stream, and a HEADERS frame on a known one is trailers.
            HEADERS if head.stream > self.last_stream => {
                self.last_stream = head.stream;
                self.resets.opened();
            }
            RST_STREAM if !self.resets.reset() => return Err(Flood::Resets),
            _ => {}
        }
        if self.budget.inbound(head, now) {
            Ok(())
        } else {
            Err(Flood::ControlFrames)
        }
    }

    /// Notes one frame we sent.
    pub(super) fn outbound(&mut self, head: Head) {
        self.budget.outbound(head);
    }

    /// The GOAWAY for a flood: its bytes, and how many of them there are.
    pub(super) fn goaway(&self, flood: Flood) -> ([u8; GOAWAY_MAX_LEN], usize) {
        let debug = flood.debug_data();
        let len = 9 + 8 + debug.len();
        let mut frame = [0; GOAWAY_MAX_LEN];
        let payload = u32::try_from(len - 9).expect("a GOAWAY of a few bytes");
        frame[..3].copy_from_slice(&payload.to_be_bytes()[1..]);
        frame[3] = GOAWAY;
        // The highest stream the client opened that hyper has seen: it may have been acted on.
        frame[9..13].copy_from_slice(&self.last_stream.to_be_bytes());
        frame[13..17].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        frame[17..len].copy_from_slice(debug);
        (frame, len)
    }
}
