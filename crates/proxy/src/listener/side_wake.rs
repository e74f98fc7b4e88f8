//! The waker a connection task hands the signals it watches besides hyper's connection: the
//! tracker, the stop signal and the idle timer.
//!
//! Why: those signals fire a few times in a connection's life, while the connection task
//! wakes several times per request. Polled with the task's own waker, every wake would have
//! to poll them all again to learn that nothing happened (and a `Notify` or a `watch` locks
//! a mutex to do so). Polled with a [`SideWake`] instead, they say themselves when they may
//! have fired, and the task looks at them only then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

/// Records that a side signal may have fired, and wakes the task that watches it.
#[derive(Debug)]
pub(super) struct SideWake {
    /// Set by a wake, cleared by the task when it looks; starts set, so the task polls (and
    /// so subscribes to) every signal once.
    fired: AtomicBool,
    /// The task's own waker, as of its latest poll.
    task: Mutex<Option<Waker>>,
}

impl SideWake {
    pub(super) fn new() -> Self {
        Self {
            fired: AtomicBool::new(true),
            task: Mutex::new(None),
        }
    }

    /// Remembers the task's waker for the next side wake. `known` is the waker it remembered
    /// last, so that the common case, the same waker again, takes no lock.
    pub(super) fn register(&self, known: &mut Option<Waker>, task: &Waker) {
        if known.as_ref().is_some_and(|known| known.will_wake(task)) {
            return;
        }
        *known = Some(task.clone());
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.clone());
    }

    /// Whether a side signal may have fired since the last call.
    // NOTE: the task registers its waker before calling this, so a wake that comes after
    // the swap still wakes the task, which then sees the flag on its next poll.
    pub(super) fn take_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire) && self.fired.swap(false, Ordering::AcqRel)
    }
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(task) = &*self.task.lock().unwrap_or_else(PoisonError::into_inner) {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_side_wake_wakes_the_task_and_is_seen_once() {
        let side = Arc::new(SideWake::new());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(count.clone());
        let mut known = None;
        side.register(&mut known, &task);
        assert!(
            side.take_fired(),
            "every signal is polled once at the start"
        );
        assert!(!side.take_fired());
        Waker::from(side.clone()).wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(side.take_fired());
        assert!(!side.take_fired());
    }
}
