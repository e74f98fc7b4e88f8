//! What one proxy counts as traffic goes through it: connections accepted and open, bytes
//! each way, and how often each type of toxic acted on each stream. Relaxed atomics,
//! counted where it happens (the accept loop, the pipes) and only read by [`super::metrics`]
//! when `GET /metrics` is scraped.

use std::sync::atomic::{AtomicU64, Ordering};

use super::toxic::{Stream, TYPES};

/// The counters of one proxy; they live as long as the proxy (across disable and enable).
#[derive(Debug, Default)]
pub struct ProxyStats {
    accepted: AtomicU64,
    open: AtomicU64,
    received: [AtomicU64; 2],
    sent: [AtomicU64; 2],
    applied: [[AtomicU64; 2]; TYPES.len()],
}

/// Holds one open connection in the count; dropping it (however the connection ends,
/// abort included) lets it go.
#[derive(Debug)]
pub struct OpenConnection<'a> {
    stats: &'a ProxyStats,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn slot(stream: Stream) -> usize {
    match stream {
        Stream::Upstream => 0,
        Stream::Downstream => 1,
    }
}

impl ProxyStats {
    /// Counts a connection accepted; returns its ordinal (0 for the proxy's first).
    pub fn accept(&self) -> u64 {
        self.accepted.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a connection open until the guard is dropped.
    pub fn open(&self) -> OpenConnection<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection { stats: self }
    }

    /// Counts bytes read from the side a stream starts at.
    pub fn received(&self, stream: Stream, bytes: usize) {
        self.received[slot(stream)].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts bytes written to the side a stream ends at.
    pub fn sent(&self, stream: Stream, bytes: usize) {
        self.sent[slot(stream)].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a toxic of the type at `index` (in [`TYPES`]) acting `times` on a stream.
    pub fn applied(&self, index: usize, stream: Stream, times: u64) {
        if let Some(counts) = self.applied.get(index) {
            counts[slot(stream)].fetch_add(times, Ordering::Relaxed);
        }
    }

    /// Connections accepted so far.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Bytes read on a stream so far.
    pub fn received_total(&self, stream: Stream) -> u64 {
        self.received[slot(stream)].load(Ordering::Relaxed)
    }

    /// Bytes written on a stream so far.
    pub fn sent_total(&self, stream: Stream) -> u64 {
        self.sent[slot(stream)].load(Ordering::Relaxed)
    }

    /// Times the type at `index` acted on a stream so far.
    pub fn applied_total(&self, index: usize, stream: Stream) -> u64 {
        self.applied
            .get(index)
            .map_or(0, |counts| counts[slot(stream)].load(Ordering::Relaxed))
    }
}
