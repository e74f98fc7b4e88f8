//! One direction of one proxied connection: bytes read from one side go through the
//! stream's chain of toxics and are written to the other side.
//!
//! The chain is read from a `watch` channel, so a toxic added, updated or removed through
//! the API acts on connections already open, as in Toxiproxy. Each chunk read is turned by
//! the chain into a plan (when to start, pieces to write each after a wait, then maybe an
//! end), a pure function tested apart from the I/O. Reading runs a bounded number of chunks
//! ahead of writing, stamped with their read time, so latency delays a stream once (as
//! Toxiproxy's pipeline does) while a slow toxic still slows the sender by TCP backpressure
//! instead of buffering without bound. Per connection, each toxic is drawn once against
//! its toxicity (again when it is updated), and `limit_data` counts the bytes it let through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::SmallRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::toxic::{Kind, Toxic};

/// The toxics of one stream, in the order they were added.
pub type Chain = Arc<Vec<Toxic>>;

/// Bytes read at most at once.
const READ_SIZE: usize = 32 * 1024;

/// Chunks read ahead of the writing at most (so at most 2 MiB held per direction).
const IN_FLIGHT: usize = 64;

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The source closed; the destination was shut down for writing (a half close).
    Eof,
    /// A toxic (timeout, limit_data) or an I/O error closed the connection.
    Close,
    /// `reset_peer`: the connection is to be reset (TCP RST), both sides.
    Reset,
}

/// What this connection knows about one toxic.
#[derive(Debug)]
struct Seen {
    /// Whether the toxicity draw chose this connection.
    applies: bool,
    /// When this connection first saw the toxic (a timeout counts from here).
    since: Instant,
    /// Bytes `limit_data` let through so far.
    sent: u64,
    /// The toxic as last seen: an update restarts it (a new draw, a new timeout).
    toxic: Toxic,
}

/// The pieces one chunk becomes, and what happens after them.
#[derive(Debug, PartialEq)]
struct Plan {
    /// Nothing is written before this (latency moves it later).
    start: Instant,
    /// Each piece is written after waiting its duration.
    pieces: Vec<(Duration, Bytes)>,
    /// Ends the connection after the pieces (`reset_peer` waits its timeout first).
    end: Option<(Duration, End)>,
}

/// What the reading half hands the writing half.
#[derive(Debug)]
enum Read {
    /// Bytes, with when they were read (latency counts from there).
    Chunk(Instant, Bytes),
    /// The source closed cleanly.
    Eof,
    /// The source failed.
    Broken,
}

/// Copies `source` to `dest` through the chain until one of them ends or a toxic ends it.
///
/// Reading runs ahead of writing by up to [`IN_FLIGHT`] chunks, each stamped with the time
/// it was read, so latency delays a stream once rather than once per chunk, as in
/// Toxiproxy's pipeline; past that, the sender is slowed by TCP backpressure.
pub async fn pipe<R, W>(source: R, dest: W, chain: watch::Receiver<Chain>, rng: SmallRng) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    let reading = read_into(source, sender);
    let writing = write_through(receiver, dest, chain, rng);
    tokio::pin!(reading, writing);
    tokio::select! {
        end = &mut writing => end,
        () = &mut reading => writing.await,
    }
}

/// Reads chunks until the source ends, or the writing half is gone.
async fn read_into<R: AsyncRead + Unpin>(mut source: R, sender: mpsc::Sender<Read>) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = match source.read(&mut buf).await {
            Ok(0) => Read::Eof,
            Ok(n) => Read::Chunk(Instant::now(), Bytes::copy_from_slice(&buf[..n])),
            Err(_) => Read::Broken,
        };
        let last = !matches!(read, Read::Chunk(..));
        if sender.send(read).await.is_err() || last {
            return;
        }
    }
}

/// Runs what was read through the chain as it stands, and writes it.
async fn write_through<W: AsyncWrite + Unpin>(
    mut reads: mpsc::Receiver<Read>,
    mut dest: W,
    mut chain: watch::Receiver<Chain>,
    mut rng: SmallRng,
) -> End {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    loop {
        let toxics = chain.borrow_and_update().clone();
        if refresh(&mut seen, &toxics, &mut rng) {
            return End::Close;
        }
        let active: Vec<&Toxic> = toxics.iter().filter(|t| seen[&t.name].applies).collect();
        let stall = stall_of(&active, &seen);
        tokio::select! {
            read = reads.recv() => match read {
                Some(Read::Chunk(..)) if stall.is_some() => {} // a timeout toxic drops the data
                Some(Read::Chunk(read_at, chunk)) => {
                    let plan = plan(&active, &mut seen, read_at, chunk, &mut rng);
                    if let Some(end) = carry_out(plan, &mut dest).await {
                        return end;
                    }
                }
                Some(Read::Eof) => {
                    tokio::time::sleep(slow_close_of(&active)).await;
                    let _ = dest.shutdown().await;
                    return End::Eof;
                }
                Some(Read::Broken) | None => {
                    tokio::time::sleep(slow_close_of(&active)).await;
                    return End::Close;
                }
            },
            changed = chain.changed() => {
                if changed.is_err() {
                    return End::Close; // the proxy is gone
                }
            }
            () = sleep_until(stall.flatten()), if matches!(stall, Some(Some(_))) => {
                return End::Close;
            }
        }
    }
}

/// Forgets toxics no longer in the chain, draws new ones against their toxicity, and
/// restarts updated ones as Toxiproxy does (a new draw and timer; `limit_data` keeps its
/// count). True when a timeout toxic was removed: Toxiproxy then closes the connection
/// (the timeout toxic's cleanup closes the stream, whether or not the draw chose it).
fn refresh(seen: &mut HashMap<String, Seen>, toxics: &[Toxic], rng: &mut SmallRng) -> bool {
    let mut timeout_removed = false;
    seen.retain(|name, state| {
        let kept = toxics.iter().any(|t| &t.name == name);
        timeout_removed |= !kept && matches!(state.toxic.kind, Kind::Timeout(_));
        kept
    });
    for toxic in toxics {
        let sent = match seen.get(&toxic.name) {
            Some(state) if state.toxic == *toxic => continue,
            Some(state) => state.sent,
            None => 0,
        };
        let state = Seen {
            applies: rng.random::<f64>() < toxic.toxicity,
            since: Instant::now(),
            sent,
            toxic: toxic.clone(),
        };
        seen.insert(toxic.name.clone(), state);
    }
    timeout_removed
}

/// With an active timeout toxic: `Some(deadline)` to close at, `Some(None)` to stall forever.
fn stall_of(active: &[&Toxic], seen: &HashMap<String, Seen>) -> Option<Option<Instant>> {
    active
        .iter()
        .filter_map(|toxic| match toxic.kind {
            Kind::Timeout(attrs) if attrs.timeout == 0 => Some(None),
            Kind::Timeout(attrs) => Some(Some(
                seen[&toxic.name].since + Duration::from_millis(attrs.timeout),
            )),
            _ => None,
        })
        .min_by_key(|deadline| deadline.unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn sleep_until(deadline: Option<Instant>) {
    tokio::time::sleep_until(deadline.unwrap_or_else(far_future)).await;
}

fn slow_close_of(active: &[&Toxic]) -> Duration {
    active
        .iter()
        .filter_map(|toxic| match toxic.kind {
            Kind::SlowClose(attrs) => Some(Duration::from_millis(attrs.delay)),
            _ => None,
        })
        .max()
        .unwrap_or_default()
}

/// Runs one chunk through the active toxics, in chain order.
fn plan(
    active: &[&Toxic],
    seen: &mut HashMap<String, Seen>,
    read_at: Instant,
    chunk: Bytes,
    rng: &mut SmallRng,
) -> Plan {
    let mut plan = Plan {
        start: read_at,
        pieces: vec![(Duration::ZERO, chunk)],
        end: None,
    };
    for toxic in active {
        match toxic.kind {
            Kind::Latency(attrs) => {
                plan.start += jittered(attrs.latency, attrs.jitter, rng);
            }
            Kind::Bandwidth(attrs) if attrs.rate > 0 => {
                plan.pieces = throttle(plan.pieces, attrs.rate);
            }
            Kind::Slicer(attrs) => {
                plan.pieces = plan
                    .pieces
                    .into_iter()
                    .flat_map(|(wait, piece)| slice(wait, piece, attrs, rng))
                    .collect();
            }
            Kind::LimitData(attrs) => {
                if let Some(state) = seen.get_mut(&toxic.name) {
                    let ended = limit(&mut plan.pieces, &mut state.sent, attrs.bytes);
                    if ended {
                        plan.end = Some((Duration::ZERO, End::Close));
                        return plan;
                    }
                }
            }
            Kind::ResetPeer(attrs) => {
                // Toxiproxy drops the chunk that triggers the reset.
                plan.pieces.clear();
                plan.end = Some((Duration::from_millis(attrs.timeout), End::Reset));
                return plan;
            }
            Kind::Bandwidth(_) | Kind::SlowClose(_) | Kind::Timeout(_) => {}
        }
    }
    plan
}

/// `latency` ± `jitter` milliseconds, as Toxiproxy draws it: uniform in
/// `[latency - jitter, latency + jitter)`, never below zero.
fn jittered(latency: u64, jitter: u64, rng: &mut SmallRng) -> Duration {
    let mut millis = i128::from(latency);
    if jitter > 0 {
        let jitter = i128::from(jitter);
        millis += rng.random_range(-jitter..jitter);
    }
    Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX))
}

/// Pieces of at most 100 ms worth of bytes, each waiting for its share of the rate
/// (`rate` KB/s is `rate` bytes per millisecond).
fn throttle(pieces: Vec<(Duration, Bytes)>, rate: u64) -> Vec<(Duration, Bytes)> {
    let most = usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (wait, mut piece) in pieces {
        let mut wait = wait;
        while !piece.is_empty() {
            let part = piece.split_to(most.min(piece.len()));
            let cost = Duration::from_micros(part.len() as u64 * 1000 / rate);
            out.push((wait + cost, part));
            wait = Duration::ZERO;
        }
    }
    out
}

/// Splits a piece as Toxiproxy's slicer does; the first slice keeps the piece's wait.
fn slice(
    wait: Duration,
    mut piece: Bytes,
    attrs: super::toxic::Slicer,
    rng: &mut SmallRng,
) -> Vec<(Duration, Bytes)> {
    let mut bounds = Vec::new();
    cut_points(
        0,
        piece.len(),
        attrs.average_size,
        attrs.size_variation,
        rng,
        &mut bounds,
    );
    let delay = Duration::from_micros(attrs.delay);
    let mut out = Vec::with_capacity(bounds.len());
    let mut at = 0;
    for (index, end) in bounds.into_iter().enumerate() {
        let part = piece.split_to(end - at);
        at = end;
        out.push((if index == 0 { wait } else { delay }, part));
    }
    out
}

/// The ends of the slices of `start..end`: halves, moved by up to ± `variation`, until a
/// slice is within `variation` of `average` or smaller.
fn cut_points(
    start: usize,
    end: usize,
    average: u64,
    variation: u64,
    rng: &mut SmallRng,
    bounds: &mut Vec<usize>,
) {
    let (average, variation) = (average as usize, variation as usize);
    if end - start <= average + variation {
        bounds.push(end);
        return;
    }
    let mut mid = start + (end - start) / 2;
    if variation > 0 {
        mid = mid + rng.random_range(0..variation * 2) - variation;
    }
    cut_points(start, mid, average as u64, variation as u64, rng, bounds);
    cut_points(mid, end, average as u64, variation as u64, rng, bounds);
}

/// Keeps what fits in the `limit`, counting it in `sent`; true once the limit is reached.
fn limit(pieces: &mut Vec<(Duration, Bytes)>, sent: &mut u64, limit: u64) -> bool {
    let mut kept = Vec::with_capacity(pieces.len());
    for (wait, mut piece) in pieces.drain(..) {
        let room = usize::try_from(limit.saturating_sub(*sent)).unwrap_or(usize::MAX);
        if room == 0 {
            break;
        }
        piece.truncate(room);
        *sent += piece.len() as u64;
        kept.push((wait, piece));
    }
    *pieces = kept;
    *sent >= limit
}

/// Writes the pieces, each after its wait; the end the plan asks for, or `Close` when the
/// destination fails.
async fn carry_out<W: AsyncWrite + Unpin>(plan: Plan, dest: &mut W) -> Option<End> {
    tokio::time::sleep_until(plan.start).await;
    for (wait, piece) in plan.pieces {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if dest.write_all(&piece).await.is_err() {
            return Some(End::Close);
        }
    }
    if dest.flush().await.is_err() {
        return Some(End::Close);
    }
    let (wait, end) = plan.end?;
    tokio::time::sleep(wait).await;
    Some(end)
}

#[cfg(test)]
mod tests;
