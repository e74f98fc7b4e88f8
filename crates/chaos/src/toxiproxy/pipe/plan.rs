//! What the chain of toxics does to one direction of one connection, without I/O: the
//! state a connection keeps per toxic (its toxicity draw, when it started, the bytes
//! `limit_data` let through) and the [`Plan`] one chunk becomes. Pure functions of the
//! chain, the state, the chunk and a seeded random source, so each toxic's arithmetic is
//! tested without sockets or clocks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::super::http::{Filtered, HttpFaults, Release};
use super::super::toxic::{Kind, Slicer, Toxic};
use super::End;

/// What this connection knows about one toxic.
#[derive(Debug)]
pub(super) struct Seen {
    /// Whether the toxicity draw chose this connection.
    pub(super) applies: bool,
    /// When this connection first saw the toxic (a timeout counts from here).
    pub(super) since: Instant,
    /// Bytes `limit_data` let through so far.
    pub(super) sent: u64,
    /// The toxic as last seen: an update restarts it (a new draw, a new timeout).
    pub(super) toxic: Toxic,
    /// `http_error`'s framing of the client's requests (kept across an update).
    pub(super) http: Option<HttpFaults>,
}

/// The pieces one chunk becomes, and what happens after them.
#[derive(Debug, PartialEq)]
pub(super) struct Plan {
    /// Nothing is written before this (latency moves it later).
    pub(super) start: Instant,
    /// Each piece is written after waiting its duration.
    pub(super) pieces: Vec<(Duration, Bytes)>,
    /// Ends the connection after the pieces (`reset_peer` waits its timeout first).
    pub(super) end: Option<(Duration, End)>,
    /// Answers for the client instead of the upstream (`http_error`), after the pieces.
    pub(super) answers: Vec<Bytes>,
}

/// What a change of the chain comes to for one connection.
#[derive(Debug, Default)]
pub(super) struct Refreshed {
    /// The connection must close (a timeout toxic was removed, or an `http_error` toxic
    /// left in the middle of a request it was answering).
    pub(super) close: bool,
    /// Bytes a departing `http_error` toxic held, to forward before anything else.
    pub(super) flush: Vec<Bytes>,
    /// The types (their index) of the toxics newly drawn to act on this connection.
    pub(super) drawn: Vec<usize>,
}

/// Forgets toxics no longer in the chain, draws new ones against their toxicity, and
/// restarts updated ones as Toxiproxy does (a new draw and timer; `limit_data` keeps its
/// count, `http_error` its place in the requests). Toxiproxy closes the connection when a
/// timeout toxic is removed (its cleanup closes the stream, whether or not the draw chose
/// it); so does this, and when an `http_error` toxic leaves in the middle of a request it
/// was answering. `ordinal` is the connection's place in its proxy's (`first_connections`).
pub(super) fn refresh(
    seen: &mut HashMap<String, Seen>,
    toxics: &[Toxic],
    rng: &mut SmallRng,
    ordinal: u64,
) -> Refreshed {
    let mut refreshed = Refreshed::default();
    // A set, not a scan of the chain per name: a change costs each open connection time
    // in proportion to the chain, not to its square.
    let current: HashSet<&str> = toxics.iter().map(|t| t.name.as_str()).collect();
    let gone: Vec<String> = seen
        .keys()
        .filter(|name| !current.contains(name.as_str()))
        .cloned()
        .collect();
    for name in gone {
        if let Some(state) = seen.remove(&name) {
            refreshed.close |= matches!(state.toxic.kind, Kind::Timeout(_));
            release(state.http, &mut refreshed);
        }
    }
    for toxic in toxics {
        let (sent, http) = match seen.get_mut(&toxic.name) {
            Some(state) if state.toxic == *toxic => continue,
            Some(state) => (state.sent, state.http.take()),
            None => (0, None),
        };
        // NOTE: one draw per toxic, whether or not it is used, so a seeded connection
        // draws the same sequence as before `first_connections` existed.
        let drawn = rng.random::<f64>() < toxic.toxicity;
        let per_request = matches!(toxic.kind, Kind::HttpError(_));
        let applies = toxic.covers(ordinal) && (drawn || per_request);
        if applies && !per_request {
            refreshed.drawn.push(toxic.kind.index());
        }
        let http = if applies {
            http
        } else {
            release(http, &mut refreshed);
            None
        };
        let state = Seen {
            applies,
            since: Instant::now(),
            sent,
            toxic: toxic.clone(),
            http,
        };
        seen.insert(toxic.name.clone(), state);
    }
    refreshed
}

/// An `http_error` toxic stops acting on the connection: what it held goes on, or the
/// connection closes.
fn release(http: Option<HttpFaults>, refreshed: &mut Refreshed) {
    match http.map(HttpFaults::release) {
        Some(Release::Forward(held)) if !held.is_empty() => refreshed.flush.push(held),
        Some(Release::Close) => refreshed.close = true,
        _ => {}
    }
}

/// With an active timeout toxic: `Some(deadline)` to close at, `Some(None)` to stall forever.
pub(super) fn stall_of(active: &[&Toxic], seen: &HashMap<String, Seen>) -> Option<Option<Instant>> {
    active
        .iter()
        .filter_map(|toxic| match toxic.kind {
            Kind::Timeout(attrs) if attrs.timeout == 0 => Some(None),
            Kind::Timeout(attrs) => Some(Some(later(
                seen[&toxic.name].since,
                Duration::from_millis(attrs.timeout),
            ))),
            _ => None,
        })
        .min_by_key(|deadline| deadline.unwrap_or_else(far_future))
}

pub(super) fn slow_close_of(active: &[&Toxic]) -> Duration {
    active
        .iter()
        .filter_map(|toxic| match toxic.kind {
            Kind::SlowClose(attrs) => Some(Duration::from_millis(attrs.delay)),
            _ => None,
        })
        .max()
        .unwrap_or_default()
}

/// A time no timer reaches (a stall without a deadline).
pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// `at` plus `wait`, or a time no timer reaches when that is past what a clock holds.
fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait).unwrap_or_else(far_future)
}

/// Runs one chunk through the active toxics, in chain order.
pub(super) fn plan(
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
        answers: Vec::new(),
    };
    for toxic in active {
        match toxic.kind {
            Kind::Latency(attrs) => {
                plan.start = later(plan.start, jittered(attrs.latency, attrs.jitter, rng));
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
            Kind::HttpError(ref attrs) => {
                if let Some(state) = seen.get_mut(&toxic.name) {
                    let http = state.http.get_or_insert_default();
                    let filtered = answer_requests(&mut plan.pieces, http, attrs, toxic, rng);
                    plan.answers.extend(filtered.answers);
                    if filtered.close {
                        plan.end = Some((Duration::ZERO, End::Close));
                        return plan;
                    }
                }
            }
            Kind::Bandwidth(_) | Kind::SlowClose(_) | Kind::Timeout(_) => {}
        }
    }
    plan
}

/// Runs the pieces through `http_error`: what is forwarded keeps the waits (a wait whose
/// piece was all answered moves to the next piece forwarded).
fn answer_requests(
    pieces: &mut Vec<(Duration, Bytes)>,
    http: &mut HttpFaults,
    attrs: &super::super::toxic::HttpError,
    toxic: &Toxic,
    rng: &mut SmallRng,
) -> Filtered {
    let mut filtered = Filtered::default();
    let mut kept = Vec::with_capacity(pieces.len());
    let mut carried = Duration::ZERO;
    for (wait, piece) in pieces.drain(..) {
        carried = carried.saturating_add(wait);
        http.filter(piece, attrs, toxic.toxicity, rng, &mut filtered);
        for bytes in filtered.forward.drain(..) {
            kept.push((std::mem::take(&mut carried), bytes));
        }
        if filtered.close {
            break;
        }
    }
    *pieces = kept;
    filtered
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
            let cost = Duration::from_micros((part.len() as u64).saturating_mul(1000) / rate);
            out.push((wait.saturating_add(cost), part));
            wait = Duration::ZERO;
        }
    }
    out
}

/// Splits a piece as Toxiproxy's slicer does; the first slice keeps the piece's wait.
fn slice(
    wait: Duration,
    mut piece: Bytes,
    attrs: Slicer,
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
/// slice is within `variation` of `average` or smaller (Toxiproxy's slicer, which
/// recurses; this keeps its own stack, so no attribute value reaches the thread's).
///
/// Total for any `u64`s: the sum saturates, a cut stays strictly inside its slice (so
/// every slice shrinks and the loop ends), and a slice of one byte is never cut.
pub(super) fn cut_points(
    start: usize,
    end: usize,
    average: u64,
    variation: u64,
    rng: &mut SmallRng,
    bounds: &mut Vec<usize>,
) {
    let within = average.saturating_add(variation);
    // Slices still to cut, the leftmost last (so the ends come out in order).
    let mut todo = vec![(start, end)];
    while let Some((start, end)) = todo.pop() {
        let len = end.saturating_sub(start);
        if len <= 1 || u64::try_from(len).is_ok_and(|len| len <= within) {
            bounds.push(end);
            continue;
        }
        let mid = start + len / 2;
        let mid = if variation > 0 {
            let spread = i128::from(variation);
            let moved =
                i128::try_from(mid).unwrap_or(i128::MAX) + rng.random_range(-spread..spread);
            let inside = moved.clamp(start as i128 + 1, end as i128 - 1);
            usize::try_from(inside).unwrap_or(mid)
        } else {
            mid
        };
        todo.push((mid, end));
        todo.push((start, mid));
    }
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

#[cfg(test)]
mod tests;
