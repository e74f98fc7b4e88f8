//! Who gets a slot, who waits, who is shed: the priority rules as one pure function, and the
//! waiters in the order they are served.
//!
//! [`decide`] sees a snapshot ([`View`]) and answers for one request. Three rules make
//! lower priorities give way first, and each is monotone in the priority, so a higher
//! priority is never shed where a lower one would be admitted (a property test checks it):
//!
//! - **shares**: a priority may hold only [`cap`] slots (low 50%, normal 75%, high 90%,
//!   critical 100% of the limit, rounded up), so a flood of low traffic leaves room for
//!   high traffic to start at once;
//! - **order**: a request takes a free slot only when nobody of its priority or higher
//!   waits; waiters are served highest priority first, oldest first within one;
//! - **room**: a full queue makes room for a request by shedding the newest waiter of the
//!   lowest priority below it; and a request that could not be served within the queue
//!   timeout at the current pace (waiters ahead × time a slot is held ÷ its slots) is shed
//!   at once rather than queued behind doomed work;
//! - **who waits**: priorities below `queue_from` never wait: without a free slot they
//!   are shed at once (in well under a millisecond, with Retry-After), which is what a
//!   sheddable request's caller wants from an overloaded service, and keeps the queue for
//!   the requests that must get through.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::admission::Priority;

/// The slots requests of `priority` may hold under `limit`.
pub(crate) fn cap(limit: u32, priority: Priority) -> u32 {
    if priority == Priority::Critical {
        return limit;
    }
    let share = u64::from(limit) * u64::from(priority.share_percent());
    u32::try_from(share.div_ceil(100)).unwrap_or(limit)
}

/// What a limiter looks like at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// Slots held.
    pub in_flight: u32,
    /// The limit.
    pub limit: u32,
    /// Waiters of each priority, indexed by [`Priority::index`].
    pub queued: [usize; 4],
    /// The longest queue allowed.
    pub max_queue: usize,
    /// How long one may wait.
    pub queue_timeout: Duration,
    /// How long a slot is typically held, once known.
    pub hold: Option<Duration>,
    /// The lowest priority that may wait.
    pub queue_from: Priority,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Take a slot now.
    Take,
    /// Wait in the queue, first shedding the newest waiter of this priority if given.
    Wait {
        /// The priority whose newest waiter makes room.
        displace: Option<Priority>,
    },
    /// Refuse now.
    Shed(ShedReason),
}

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShedReason {
    /// No slot its priority may use, and no room in the queue.
    QueueFull,
    /// The queue ahead of it could not be served within the queue timeout.
    Hopeless,
    /// It waited the whole queue timeout.
    Timeout,
    /// A higher-priority request took its place in the queue.
    Displaced,
}

impl ShedReason {
    /// A few words for the client and the log.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ShedReason::QueueFull => "every slot is taken and the queue is full",
            ShedReason::Hopeless => "the queue could not be served within its timeout",
            ShedReason::Timeout => "no slot came free within the queue timeout",
            ShedReason::Displaced => "a higher-priority request took its place in the queue",
        }
    }

    /// One line for the client and the log: which limit shed a request of `priority`
    /// (`owner` "route" or "cluster", and its `name`), and why.
    pub(crate) fn explain(self, owner: &str, name: &str, priority: Priority) -> String {
        format!(
            "{owner} \"{name}\" shed a {priority}-priority request: {}",
            self.describe()
        )
    }
}

/// The rules of the module doc, for one request of `priority`.
pub(crate) fn decide(view: &View, priority: Priority) -> Decision {
    let ahead: usize = view.queued[priority.index()..].iter().sum();
    let slots = cap(view.limit, priority);
    if ahead == 0 && view.in_flight < slots {
        return Decision::Take;
    }
    if view.max_queue == 0 || priority < view.queue_from {
        return Decision::Shed(ShedReason::QueueFull);
    }
    if let Some(hold) = view.hold {
        let turns = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        let expected = hold.saturating_mul(turns) / slots.max(1);
        if expected > view.queue_timeout {
            return Decision::Shed(ShedReason::Hopeless);
        }
    }
    let total: usize = view.queued.iter().sum();
    if total < view.max_queue {
        return Decision::Wait { displace: None };
    }
    match Priority::ALL[..priority.index()]
        .iter()
        .find(|lower| view.queued[lower.index()] > 0)
    {
        Some(&lower) => Decision::Wait {
            displace: Some(lower),
        },
        None => Decision::Shed(ShedReason::QueueFull),
    }
}

/// Waiters by priority, each in arrival order. Ids grow strictly, so each deque stays
/// sorted by id and a waiter finds itself by binary search.
#[derive(Debug)]
pub(crate) struct Waiters<T> {
    next_id: u64,
    by_priority: [VecDeque<(u64, T)>; 4],
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Self {
            next_id: 0,
            by_priority: Default::default(),
        }
    }
}

impl<T> Waiters<T> {
    /// Waiters of each priority.
    pub(crate) fn counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for (count, waiters) in counts.iter_mut().zip(&self.by_priority) {
            *count = waiters.len();
        }
        counts
    }

    /// All waiters.
    pub(crate) fn len(&self) -> usize {
        self.by_priority.iter().map(VecDeque::len).sum()
    }

    /// Adds a waiter at the back of its priority; returns its id.
    pub(crate) fn push(&mut self, priority: Priority, waiter: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_priority[priority.index()].push_back((id, waiter));
        id
    }

    /// The priority served next: the highest with a waiter.
    pub(crate) fn best(&self) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .rev()
            .find(|priority| !self.by_priority[priority.index()].is_empty())
    }

    /// Takes the waiter served next.
    pub(crate) fn pop_best(&mut self) -> Option<T> {
        let best = self.best()?;
        self.by_priority[best.index()]
            .pop_front()
            .map(|(_, waiter)| waiter)
    }

    /// Takes the newest waiter of `priority` (the one displaced).
    pub(crate) fn pop_newest(&mut self, priority: Priority) -> Option<T> {
        self.by_priority[priority.index()]
            .pop_back()
            .map(|(_, waiter)| waiter)
    }

    /// Removes the waiter `id` of `priority`; false if it is no longer queued.
    pub(crate) fn remove(&mut self, priority: Priority, id: u64) -> bool {
        let waiters = &mut self.by_priority[priority.index()];
        match waiters.binary_search_by_key(&id, |(id, _)| *id) {
            Ok(index) => waiters.remove(index).is_some(),
            Err(_) => false,
        }
    }
}
