//! The connections kept open to each endpoint between requests.
//!
//! Why not hyper-util's pool: it keys connections by `(Scheme, Authority)` hashed with
//! SipHash (byte by byte, twice a request) and hands every HTTP/1.1 connection back through
//! a task spawned per request. Here the key is the endpoint's authority text, hashed a word
//! at a time with a multiply-rotate hash (the keys are our own endpoints' addresses, not
//! attacker-chosen), and an HTTP/1.1 connection goes back into its endpoint's list when its
//! response has been read to the end (with the head, for most small answers), and comes out
//! again only if its endpoint has neither closed it nor sent anything since
//! (`h1::Connection::is_reusable`, free of system calls in the common case).
//!
//! Idle time is counted in epochs of a quarter of the idle timeout, advanced by the
//! client's reaper: a returned connection notes the epoch (one relaxed load), and the
//! reaper drops those five epochs old, so a connection idles between 1 and 1.25 idle
//! timeouts before it is closed. Checkout reads no clock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use hyper::client::conn::http2;
use tokio::sync::watch;

use super::h1;
use crate::body::ProxyBody;

/// A connection that carries one HTTP/1.1 request at a time.
pub(super) type Http1 = Box<h1::Connection>;
/// A handle on a multiplexed HTTP/2 connection.
pub(super) type Http2 = http2::SendRequest<ProxyBody>;

/// Epochs a connection may sit unused before the reaper closes it; an epoch is a quarter
/// of the idle timeout.
const STALE_EPOCHS: u64 = 5;
/// How many epochs make one idle timeout.
pub(super) const EPOCHS_PER_IDLE_TIMEOUT: u32 = 4;

/// Every endpoint's kept connections.
#[derive(Debug)]
pub(super) struct Pool {
    max_idle: usize,
    epoch: AtomicU64,
    next_id: AtomicU64,
    endpoints: Mutex<HashMap<Box<str>, Endpoint, BuildHasherDefault<AuthorityHasher>>>,
}

/// One endpoint's connections.
#[derive(Debug, Default)]
struct Endpoint {
    /// HTTP/1.1 connections between requests, most recently used last.
    http1: VecDeque<Idle>,
    /// The one shared HTTP/2 connection.
    http2: Http2Slot,
}

#[derive(Debug)]
struct Idle {
    connection: Http1,
    epoch: u64,
}

#[derive(Debug, Default)]
enum Http2Slot {
    #[default]
    Empty,
    /// A request is connecting; others wait for it (once) instead of each connecting.
    Connecting(watch::Receiver<()>),
    Ready {
        id: u64,
        sender: Http2,
        epoch: u64,
    },
}

/// What a request gets when it asks for the endpoint's HTTP/2 connection.
#[derive(Debug)]
pub(super) enum Http2Checkout<'a> {
    /// The shared connection, and its id (to evict exactly it if it fails).
    Ready(Http2, u64),
    /// Another request is connecting: wait for it to finish, then ask again.
    Wait(watch::Receiver<()>),
    /// Connect, then [`Connecting::install`] the connection for the others.
    Connect(Connecting<'a>),
}

impl Pool {
    /// An empty pool keeping at most `max_idle` HTTP/1.1 connections per endpoint.
    pub(super) fn new(max_idle: usize) -> Self {
        Self {
            max_idle,
            epoch: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            endpoints: Mutex::new(HashMap::default()),
        }
    }

    fn endpoints(
        &self,
    ) -> MutexGuard<'_, HashMap<Box<str>, Endpoint, BuildHasherDefault<AuthorityHasher>>> {
        // NOTE: nothing panics while holding the lock (no user code runs under it), and
        // the map stays consistent if something did, so a poisoned lock is still usable.
        self.endpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used HTTP/1.1 connection to `authority` that may carry a request:
    /// not closed by the endpoint, and sent nothing since its last answer ended. The others
    /// met on the way are dropped.
    pub(super) fn checkout_http1(&self, authority: &str) -> Option<Http1> {
        let mut endpoints = self.endpoints();
        let idle = &mut endpoints.get_mut(authority)?.http1;
        while let Some(Idle { connection, .. }) = idle.pop_back() {
            if connection.is_reusable() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps an HTTP/1.1 connection whose response has ended, for a later request. Over
    /// the endpoint's cap the oldest kept connection is closed.
    pub(super) fn give_back_http1(&self, authority: &str, connection: Http1) {
        // NOTE: not checked here: it has just ended a response cleanly, and a checkout
        // checks it (after its time idle, when it matters) anyway.
        if self.max_idle == 0 {
            return;
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut endpoints = self.endpoints();
        let idle = match endpoints.get_mut(authority) {
            Some(endpoint) => &mut endpoint.http1,
            None => &mut endpoints.entry(authority.into()).or_default().http1,
        };
        if idle.len() >= self.max_idle {
            idle.retain(|idle| idle.connection.is_reusable());
            while idle.len() >= self.max_idle {
                idle.pop_front();
            }
        }
        idle.push_back(Idle { connection, epoch });
    }

    /// The endpoint's shared HTTP/2 connection, or what to do without one. After having
    /// waited once (`waited`), a request connects on its own rather than wait again.
    pub(super) fn checkout_http2<'a>(
        &'a self,
        authority: &'a str,
        waited: bool,
    ) -> Http2Checkout<'a> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut endpoints = self.endpoints();
        let slot = match endpoints.get_mut(authority) {
            Some(endpoint) => &mut endpoint.http2,
            None => &mut endpoints.entry(authority.into()).or_default().http2,
        };
        match slot {
            Http2Slot::Ready {
                id,
                sender,
                epoch: used,
            } if !sender.is_closed() => {
                *used = epoch;
                return Http2Checkout::Ready(sender.clone(), *id);
            }
            Http2Slot::Connecting(done) if !waited => {
                return Http2Checkout::Wait(done.clone());
            }
            Http2Slot::Connecting(_) => {
                return Http2Checkout::Connect(Connecting {
                    pool: self,
                    authority,
                    owner: None,
                });
            }
            _ => {}
        }
        let (done, waiting) = watch::channel(());
        *slot = Http2Slot::Connecting(waiting);
        Http2Checkout::Connect(Connecting {
            pool: self,
            authority,
            owner: Some(done),
        })
    }

    /// Forgets the shared HTTP/2 connection `id` (it failed): the next request connects.
    pub(super) fn evict_http2(&self, authority: &str, id: u64) {
        let mut endpoints = self.endpoints();
        if let Some(endpoint) = endpoints.get_mut(authority)
            && matches!(endpoint.http2, Http2Slot::Ready { id: current, .. } if current == id)
        {
            endpoint.http2 = Http2Slot::Empty;
        }
    }

    /// Advances idle time by one epoch and drops what has been unused for
    /// [`STALE_EPOCHS`], what has closed, and endpoints left with nothing.
    pub(super) fn reap(&self) {
        let now = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let fresh = |epoch: u64| epoch + STALE_EPOCHS > now;
        self.endpoints().retain(|_, endpoint| {
            endpoint
                .http1
                .retain(|idle| idle.connection.is_reusable() && fresh(idle.epoch));
            if let Http2Slot::Ready { sender, epoch, .. } = &endpoint.http2
                && (sender.is_closed() || !fresh(*epoch))
            {
                endpoint.http2 = Http2Slot::Empty;
            }
            !endpoint.http1.is_empty() || !matches!(endpoint.http2, Http2Slot::Empty)
        });
    }

    /// HTTP/1.1 connections kept for `authority` that could be handed out.
    #[cfg(test)]
    pub(super) fn open_http1(&self, authority: &str) -> usize {
        self.endpoints().get(authority).map_or(0, |endpoint| {
            endpoint
                .http1
                .iter()
                .filter(|idle| idle.connection.is_reusable())
                .count()
        })
    }

    /// Whether `authority` has a shared HTTP/2 connection not known to be closed.
    #[cfg(test)]
    pub(super) fn open_http2(&self, authority: &str) -> bool {
        self.endpoints().get(authority).is_some_and(|endpoint| {
            matches!(&endpoint.http2, Http2Slot::Ready { sender, .. } if !sender.is_closed())
        })
    }

    /// The most recently kept HTTP/1.1 connection to `authority`, taken unchecked.
    #[cfg(test)]
    pub(super) fn take_http1(&self, authority: &str) -> Option<Http1> {
        let mut endpoints = self.endpoints();
        let idle = endpoints.get_mut(authority)?.http1.pop_back()?;
        Some(idle.connection)
    }

    /// HTTP/1.1 connections kept for `authority`, open or not yet noticed closed.
    #[cfg(test)]
    pub(super) fn kept_http1(&self, authority: &str) -> usize {
        self.endpoints()
            .get(authority)
            .map_or(0, |endpoint| endpoint.http1.len())
    }
}

/// The right, and duty, to connect for an endpoint's HTTP/2 requests. Dropped without
/// [`install`](Self::install) (the connect failed or the request was cancelled), it frees
/// the slot and wakes the waiting requests, which then connect on their own.
#[derive(Debug)]
pub(super) struct Connecting<'a> {
    pool: &'a Pool,
    authority: &'a str,
    /// Set when this request marked the slot connecting; dropping it wakes the waiters.
    owner: Option<watch::Sender<()>>,
}

impl Connecting<'_> {
    /// Shares a new connection with the endpoint's later requests (unless another one
    /// already is), and returns its id.
    pub(super) fn install(mut self, sender: &Http2) -> u64 {
        let id = self.pool.next_id.fetch_add(1, Ordering::Relaxed);
        let epoch = self.pool.epoch.load(Ordering::Relaxed);
        let mut endpoints = self.pool.endpoints();
        let endpoint = match endpoints.get_mut(self.authority) {
            Some(endpoint) => endpoint,
            None => endpoints.entry(self.authority.into()).or_default(),
        };
        let shared =
            matches!(&endpoint.http2, Http2Slot::Ready { sender, .. } if !sender.is_closed());
        if !shared {
            endpoint.http2 = Http2Slot::Ready {
                id,
                sender: sender.clone(),
                epoch,
            };
        }
        // The slot is no longer ours to reset; dropping the sender wakes the waiters.
        self.owner = None;
        id
    }
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if self.owner.is_some() {
            let mut endpoints = self.pool.endpoints();
            if let Some(endpoint) = endpoints.get_mut(self.authority)
                && matches!(endpoint.http2, Http2Slot::Connecting(_))
            {
                endpoint.http2 = Http2Slot::Empty;
            }
        }
    }
}

/// FxHash (rustc's): a multiply and a rotate per word. Fine for keys we choose ourselves
/// (endpoint authorities and addresses, from the config or DNS, never from a client);
/// SipHash's flood resistance would buy nothing here and cost a few thousand instructions
/// a request.
#[derive(Debug, Default)]
pub(crate) struct AuthorityHasher {
    hash: u64,
}

impl AuthorityHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for AuthorityHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(
                chunk.try_into().expect("chunks_exact yields 8 bytes"),
            ));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last));
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
