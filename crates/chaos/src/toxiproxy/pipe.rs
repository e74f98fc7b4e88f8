//! One direction of one proxied connection: bytes read from one side go through the
//! stream's chain of toxics and are written to the other side.
//!
//! The chain is read from a `watch` channel, so a toxic added, updated or removed through
//! the API acts on connections already open, as in Toxiproxy. Each chunk read is turned by
//! the chain into a plan (when to start, pieces to write each after a wait, then maybe an
//! end): a pure function in `plan.rs`, tested apart from the I/O. Reading runs a bounded number of chunks
//! ahead of writing, stamped with their read time, so latency delays a stream once (as
//! Toxiproxy's pipeline does) while a slow toxic still slows the sender by TCP backpressure
//! instead of buffering without bound. Per connection, each toxic is drawn once against
//! its toxicity (again when it is updated), and `limit_data` counts the bytes it let through.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::toxic::Toxic;
use plan::{Plan, Seen, far_future, plan, refresh, slow_close_of, stall_of};

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
/// Reading runs ahead of writing by up to `IN_FLIGHT` chunks, each stamped with the time
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

async fn sleep_until(deadline: Option<Instant>) {
    tokio::time::sleep_until(deadline.unwrap_or_else(far_future)).await;
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

mod plan;
#[cfg(test)]
mod tests;
