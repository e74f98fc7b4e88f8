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
//!
//! The two directions of a connection share a [`Link`]: the proxy's counters, the
//! connection's ordinal (for `first_connections`), and a bounded channel over which the
//! upstream direction hands the answers an `http_error` toxic makes to the downstream
//! one, which writes them to the client between the upstream's chunks.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::stats::ProxyStats;
use super::toxic::{Kind, Stream, Toxic};
use plan::{Plan, Seen, far_future, plan, refresh, slow_close_of, stall_of};

/// The toxics of one stream, in the order they were added.
pub type Chain = Arc<Vec<Toxic>>;

/// Bytes read at most at once.
const READ_SIZE: usize = 32 * 1024;

/// Chunks read ahead of the writing at most (so at most 2 MiB held per direction).
const IN_FLIGHT: usize = 64;

/// Answers waiting for the client at most (past that, reading the client's requests waits).
const ANSWERS_IN_FLIGHT: usize = 16;

/// What one direction of a connection shares with its proxy and its other direction.
#[derive(Debug)]
pub struct Link {
    /// Which way the bytes flow.
    pub stream: Stream,
    /// The connection's place among those its proxy accepted (0 first).
    pub ordinal: u64,
    /// The proxy's counters.
    pub stats: Arc<ProxyStats>,
    /// Answers the toxics make to the client instead of the upstream (`http_error`).
    pub answers: Answers,
}

/// The channel of answers between the two directions of a connection.
#[derive(Debug)]
pub enum Answers {
    /// The upstream direction makes them.
    Send(mpsc::Sender<Bytes>),
    /// The downstream direction writes them to the client.
    Write(mpsc::Receiver<Bytes>),
}

impl Link {
    /// The upstream and downstream directions of the connection accepted `ordinal`-th.
    pub fn pair(ordinal: u64, stats: Arc<ProxyStats>) -> (Link, Link) {
        let (send, receive) = mpsc::channel(ANSWERS_IN_FLIGHT);
        let up = Link {
            stream: Stream::Upstream,
            ordinal,
            stats: Arc::clone(&stats),
            answers: Answers::Send(send),
        };
        let down = Link {
            stream: Stream::Downstream,
            ordinal,
            stats,
            answers: Answers::Write(receive),
        };
        (up, down)
    }
}

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
pub async fn pipe<R, W>(
    source: R,
    dest: W,
    chain: watch::Receiver<Chain>,
    rng: SmallRng,
    link: Link,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (sender, receiver) = mpsc::channel(IN_FLIGHT);
    let reading = read_into(source, sender, Arc::clone(&link.stats), link.stream);
    let writing = write_through(receiver, dest, chain, rng, link);
    tokio::pin!(reading, writing);
    tokio::select! {
        end = &mut writing => end,
        () = &mut reading => writing.await,
    }
}

/// Reads chunks until the source ends, or the writing half is gone.
async fn read_into<R: AsyncRead + Unpin>(
    mut source: R,
    sender: mpsc::Sender<Read>,
    stats: Arc<ProxyStats>,
    stream: Stream,
) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = match source.read(&mut buf).await {
            Ok(0) => Read::Eof,
            Ok(n) => {
                stats.received(stream, n);
                Read::Chunk(Instant::now(), Bytes::copy_from_slice(&buf[..n]))
            }
            Err(_) => Read::Broken,
        };
        let last = !matches!(read, Read::Chunk(..));
        if sender.send(read).await.is_err() || last {
            return;
        }
    }
}

/// Runs what was read through the chain as it stands, and writes it; in the downstream
/// direction, writes the answers the upstream direction's toxics made, too.
async fn write_through<W: AsyncWrite + Unpin>(
    mut reads: mpsc::Receiver<Read>,
    mut dest: W,
    mut chain: watch::Receiver<Chain>,
    mut rng: SmallRng,
    link: Link,
) -> End {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let (answers_out, mut answers_in) = match link.answers {
        Answers::Send(sender) => (Some(sender), None),
        Answers::Write(receiver) => (None, Some(receiver)),
    };
    let out = Out {
        stats: &link.stats,
        stream: link.stream,
        answers: answers_out,
    };
    let mut answers_buf = Vec::new();
    loop {
        let toxics = chain.borrow_and_update().clone();
        let refreshed = refresh(&mut seen, &toxics, &mut rng, link.ordinal);
        for index in refreshed.drawn {
            link.stats.applied(index, link.stream, 1);
        }
        for bytes in refreshed.flush {
            if out.write(&mut dest, &bytes).await.is_err() {
                return End::Close;
            }
        }
        if refreshed.close {
            return End::Close;
        }
        let active: Vec<&Toxic> = toxics.iter().filter(|t| seen[&t.name].applies).collect();
        let stall = stall_of(&active, &seen);
        // NOTE: biased, a change of the chain first: a toxic updated or removed through
        // the API acts on the bytes read after the API answered, not on a chunk that
        // happened to be ready at the same time.
        tokio::select! {
            biased;
            changed = chain.changed() => {
                if changed.is_err() {
                    return End::Close; // the proxy is gone
                }
            }
            received = next_answers(answers_in.as_mut(), &mut answers_buf) => {
                if received == 0 {
                    answers_in = None; // the upstream direction is over
                }
                let mut chain = Through { active: &active, seen: &mut seen, rng: &mut rng, stall };
                if let Some(end) = chain.answer(&out, &mut dest, answers_buf.drain(..)).await {
                    return end;
                }
            }
            read = reads.recv() => match read {
                Some(Read::Chunk(..)) if stall.is_some() => {} // a timeout toxic drops the data
                Some(Read::Chunk(read_at, chunk)) => {
                    let plan = plan(&active, &mut seen, read_at, chunk, &mut rng);
                    if let Some(end) = out.carry_out(plan, &mut dest).await {
                        return end;
                    }
                }
                Some(Read::Eof) => {
                    // NOTE: an answer is queued before the upstream direction passes the
                    // client's end on, so it is here before the server's end that follows.
                    let waiting = queued(answers_in.as_mut());
                    let mut chain = Through { active: &active, seen: &mut seen, rng: &mut rng, stall };
                    if let Some(end) = chain.answer(&out, &mut dest, waiting).await {
                        return end;
                    }
                    tokio::time::sleep(slow_close_of(&active)).await;
                    let _ = dest.shutdown().await;
                    return End::Eof;
                }
                Some(Read::Broken) | None => {
                    let waiting = queued(answers_in.as_mut());
                    let mut chain = Through { active: &active, seen: &mut seen, rng: &mut rng, stall };
                    let _ = chain.answer(&out, &mut dest, waiting).await;
                    tokio::time::sleep(slow_close_of(&active)).await;
                    return End::Close;
                }
            },
            () = sleep_until(stall.flatten()), if matches!(stall, Some(Some(_))) => {
                return End::Close;
            }
        }
    }
}

/// The answers the other direction already made, if any.
fn queued(receiver: Option<&mut mpsc::Receiver<Bytes>>) -> Vec<Bytes> {
    let mut waiting = Vec::new();
    if let Some(receiver) = receiver {
        while let Ok(answer) = receiver.try_recv() {
            waiting.push(answer);
        }
    }
    waiting
}

/// This direction's chain as it stands, for the answers the other direction made: they
/// travel to the client through this stream's toxics as the upstream's bytes do (latency
/// delays them, a timeout toxic drops them).
struct Through<'a> {
    active: &'a [&'a Toxic],
    seen: &'a mut HashMap<String, Seen>,
    rng: &'a mut SmallRng,
    stall: Option<Option<Instant>>,
}

impl Through<'_> {
    async fn answer<W: AsyncWrite + Unpin>(
        &mut self,
        out: &Out<'_>,
        dest: &mut W,
        answers: impl IntoIterator<Item = Bytes>,
    ) -> Option<End> {
        for answer in answers {
            if self.stall.is_some() {
                continue;
            }
            let plan = plan(self.active, self.seen, Instant::now(), answer, self.rng);
            if let Some(end) = out.carry_out(plan, dest).await {
                return Some(end);
            }
        }
        None
    }
}

/// The next answers the other direction made (all that wait, up to a few); pending
/// forever without a channel. 0 when the channel closed.
async fn next_answers(receiver: Option<&mut mpsc::Receiver<Bytes>>, buf: &mut Vec<Bytes>) -> usize {
    match receiver {
        Some(receiver) => receiver.recv_many(buf, ANSWERS_IN_FLIGHT).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    tokio::time::sleep_until(deadline.unwrap_or_else(far_future)).await;
}

/// Where a direction's bytes go: the destination, counted, and the channel for answers.
struct Out<'a> {
    stats: &'a ProxyStats,
    stream: Stream,
    answers: Option<mpsc::Sender<Bytes>>,
}

impl Out<'_> {
    /// Writes and counts bytes.
    async fn write<W: AsyncWrite + Unpin>(
        &self,
        dest: &mut W,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        dest.write_all(bytes).await?;
        dest.flush().await?;
        self.stats.sent(self.stream, bytes.len());
        Ok(())
    }

    /// Writes the pieces, each after its wait, then hands over the answers; the end the
    /// plan asks for, or `Close` when the destination fails.
    async fn carry_out<W: AsyncWrite + Unpin>(&self, plan: Plan, dest: &mut W) -> Option<End> {
        tokio::time::sleep_until(plan.start).await;
        for (wait, piece) in plan.pieces {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if dest.write_all(&piece).await.is_err() {
                return Some(End::Close);
            }
            self.stats.sent(self.stream, piece.len());
        }
        if dest.flush().await.is_err() {
            return Some(End::Close);
        }
        if !plan.answers.is_empty() {
            let http_error = Kind::HttpError(Default::default()).index();
            self.stats
                .applied(http_error, self.stream, plan.answers.len() as u64);
        }
        for answer in plan.answers {
            if let Some(answers) = &self.answers {
                // The client's side is gone when this fails; the end comes from there.
                let _ = answers.send(answer).await;
            }
        }
        let (wait, end) = plan.end?;
        tokio::time::sleep(wait).await;
        Some(end)
    }
}

mod plan;
#[cfg(test)]
mod tests;
