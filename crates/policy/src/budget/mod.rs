//! May this retry (or hedge) go? A retry budget shared by all requests to one cluster.
//!
//! # Why a budget, not only a maximum number of attempts
//!
//! "Retry up to 3 times" is harmless while a dependency is healthy and ruinous when it is not:
//! every failing request becomes four, the extra load deepens the failure, and each layer of
//! retrying clients multiplies it again (a retry storm). A budget bounds the *extra* load
//! instead: retries may add at most `retry_ratio` of the recent traffic (Finagle's, linkerd's
//! and tower's `TpsBudget` default is 20%), plus a small floor of `min_retries_per_second` so
//! a client that sends little can still retry. Per-request attempt limits still apply on top
//! (see [`retry`](crate::retry)); the budget is what keeps a whole cluster's retries in check.
//! Hedged requests are extra load of the same kind, so they draw on the same budget.
//!
//! # Accounting
//!
//! Each original request [`deposit`](RetryBudget::deposit)s `retry_ratio` of a retry; each
//! retry or hedge [`withdraw`](RetryBudget::withdraw)s one whole retry. A deposit counts for
//! `window`, after which it expires, and so does a withdrawal (which gives its share back);
//! the floor adds a constant reserve of `min_retries_per_second * window` retries. So at every
//! instant, over the live window:
//!
//! ```text
//! withdrawals <= retry_ratio * deposits + min_retries_per_second * window
//! ```
//!
//! The floor is a reserve per window, not a steady drip: with no traffic at all, a whole
//! window's worth of floor may be spent at once (as in Finagle and tower).
//!
//! Time is cut into `buckets` equal slices of the window (default 10), held in a ring, so a
//! deposit lives between `window - window/buckets` and `window` depending on where in its
//! slice it fell. That slack is the price of O(1) bookkeeping. Stated without buckets: for any
//! withdrawal at time `t`, the withdrawals in `(t - (window - window/buckets), t]` are at most
//! `retry_ratio` times the deposits in `(t - window, t]` plus the floor reserve. Amounts are
//! counted in thousandths of a retry, so `retry_ratio` is rounded to the nearest 0.001.
//!
//! # Concurrency
//!
//! The budget is used through `&self` by every request of a cluster. The hot path is lock-free:
//! a deposit is two atomic adds; a withdrawal is one compare-and-swap loop on a single running
//! balance (deposits minus withdrawals in live buckets) plus one atomic add, so two concurrent
//! withdrawals can never both spend the last retry. A mutex is taken only to move the ring
//! forward, once per slice of time, and only by a caller whose `now` is in a newer slice.
//! Expiry first removes the old deposits and only then gives back the old withdrawals, so a
//! concurrent reader only ever sees a balance that is too small, never one too large.
//!
//! A caller whose `now` is older than the newest slice seen counts in the newest slice (time
//! never goes backwards for the budget). The one imprecision concurrency adds: a deposit made
//! at the very moment the ring moves on may land in the new slice and so live up to one slice
//! longer than it should.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::backoff::nanos;

#[cfg(test)]
mod tests;

/// One retry, in the units the budget counts in (thousandths of a retry).
const UNITS_PER_RETRY: i64 = 1000;

/// The largest ring allowed; more slices buy little precision and cost memory.
pub const MAX_BUCKETS: u32 = 1000;

/// The longest window allowed.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// The largest retry ratio allowed (100 retries per request would be no limit at all).
pub const MAX_RETRY_RATIO: f64 = 100.0;

/// How a [`RetryBudget`] is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries allowed per original request, over the window (`0.2` = 20%). Between 0 and
    /// [`MAX_RETRY_RATIO`]; rounded to the nearest 0.001.
    pub retry_ratio: f64,
    /// Retries allowed per second of window even with no traffic.
    pub min_retries_per_second: u32,
    /// How long a deposit (and a withdrawal) counts. At most [`MAX_WINDOW`].
    pub window: Duration,
    /// Into how many slices the window is cut; each must be at least 1 ms long.
    pub buckets: u32,
}

impl Default for BudgetConfig {
    /// linkerd's and Finagle's defaults: 20% of requests over 10 s, plus 10 retries a second.
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            min_retries_per_second: 10,
            window: Duration::from_secs(10),
            buckets: 10,
        }
    }
}

/// A [`BudgetConfig`] that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum BudgetConfigError {
    /// The ratio is negative, too large, or not a number.
    #[error("retry_ratio must be between 0 and {MAX_RETRY_RATIO}, got {0}")]
    RetryRatio(f64),
    /// The window is zero or longer than [`MAX_WINDOW`].
    #[error("budget window must be longer than zero and at most {MAX_WINDOW:?}, got {0:?}")]
    Window(Duration),
    /// Zero buckets or more than [`MAX_BUCKETS`].
    #[error("budget buckets must be between 1 and {MAX_BUCKETS}, got {0}")]
    Buckets(u32),
    /// The window cut into `buckets` gives slices shorter than a millisecond.
    #[error("budget window / buckets must be at least 1ms, got {0:?}")]
    BucketTooShort(Duration),
}

impl BudgetConfig {
    /// Checks every field; [`RetryBudget::new`] calls this.
    pub fn validate(&self) -> Result<(), BudgetConfigError> {
        if !(0.0..=MAX_RETRY_RATIO).contains(&self.retry_ratio) {
            return Err(BudgetConfigError::RetryRatio(self.retry_ratio));
        }
        if self.window.is_zero() || self.window > MAX_WINDOW {
            return Err(BudgetConfigError::Window(self.window));
        }
        if self.buckets == 0 || self.buckets > MAX_BUCKETS {
            return Err(BudgetConfigError::Buckets(self.buckets));
        }
        let slice = self.window / self.buckets;
        if slice < Duration::from_millis(1) {
            return Err(BudgetConfigError::BucketTooShort(slice));
        }
        Ok(())
    }
}

/// A [`BudgetConfig`] whose checks passed. Made by [`BudgetConfig::validated`] (or
/// [`Default`], the default being valid); a budget built from it
/// ([`RetryBudget::from_valid`]) cannot fail. A caller that validates once at load keeps
/// this, so building budgets later (on a reload) has no failure path to forget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidBudgetConfig(BudgetConfig);

impl ValidBudgetConfig {
    /// The configuration as given.
    pub fn config(&self) -> &BudgetConfig {
        &self.0
    }
}

impl Default for ValidBudgetConfig {
    /// [`BudgetConfig::default`], which is valid (a test says so).
    fn default() -> Self {
        Self(BudgetConfig::default())
    }
}

impl std::ops::Deref for ValidBudgetConfig {
    type Target = BudgetConfig;

    fn deref(&self) -> &BudgetConfig {
        &self.0
    }
}

impl BudgetConfig {
    /// Checks every field and keeps the configuration as checked.
    pub fn validated(self) -> Result<ValidBudgetConfig, BudgetConfigError> {
        self.validate()?;
        Ok(ValidBudgetConfig(self))
    }
}

/// The retry budget had nothing left to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("retry budget exhausted")]
pub struct BudgetExhausted;

/// Retries (and hedges) as a share of recent requests, plus a floor; shared by all requests
/// of a cluster through `&self`. See the module docs.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    /// The instant slice 0 starts at: the first `now` the budget is given.
    origin: OnceLock<Instant>,
    slice_nanos: u64,
    deposit_units: i64,
    reserve_units: i64,
    /// The newest slice the ring has moved to.
    head: AtomicU64,
    /// Deposits minus withdrawals over the live slices, in units.
    /// NOTE: equals the sum of `deposited - withdrawn` over the ring whenever no operation is
    /// half done; every add to one is paired with an add to the other.
    balance: AtomicI64,
    deposited: Box<[AtomicI64]>,
    withdrawn: Box<[AtomicI64]>,
    /// Taken only to move the ring forward.
    rotation: Mutex<()>,
}

impl RetryBudget {
    /// An empty budget (only the floor's reserve is available).
    pub fn new(config: BudgetConfig) -> Result<Self, BudgetConfigError> {
        Ok(Self::from_valid(config.validated()?))
    }

    /// An empty budget for a configuration already checked: cannot fail.
    pub fn from_valid(config: ValidBudgetConfig) -> Self {
        let config = config.0;
        let slice_nanos = nanos(config.window / config.buckets);
        // Rounded to the nearest thousandth; exact for ratios like 0.2 or 0.05.
        let deposit_units = (config.retry_ratio * UNITS_PER_RETRY as f64).round() as i64;
        // floor * window in thousandths of a retry, in integers so it is exact.
        let reserve_units = u128::from(config.min_retries_per_second)
            * config.window.as_nanos()
            * UNITS_PER_RETRY as u128
            / 1_000_000_000;
        let reserve_units = i64::try_from(reserve_units).unwrap_or(i64::MAX / 4);
        let ring = |_| AtomicI64::new(0);
        Self {
            config,
            origin: OnceLock::new(),
            slice_nanos,
            deposit_units,
            reserve_units,
            head: AtomicU64::new(0),
            balance: AtomicI64::new(0),
            deposited: (0..config.buckets).map(ring).collect(),
            withdrawn: (0..config.buckets).map(ring).collect(),
            rotation: Mutex::new(()),
        }
    }

    /// The config this budget was built from.
    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Records an original request: adds `retry_ratio` of a retry to the budget.
    pub fn deposit(&self, now: Instant) {
        let slice = self.advance(now);
        // Slot first, then the balance: in between, the balance is too small, never too large.
        self.deposited[self.slot(slice)].fetch_add(self.deposit_units, Ordering::Relaxed);
        self.balance.fetch_add(self.deposit_units, Ordering::AcqRel);
    }

    /// Spends one retry, or says the budget is exhausted (and spends nothing).
    pub fn withdraw(&self, now: Instant) -> Result<(), BudgetExhausted> {
        let slice = self.advance(now);
        let mut balance = self.balance.load(Ordering::Acquire);
        loop {
            if balance.saturating_add(self.reserve_units) < UNITS_PER_RETRY {
                return Err(BudgetExhausted);
            }
            match self.balance.compare_exchange_weak(
                balance,
                balance - UNITS_PER_RETRY,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(current) => balance = current,
            }
        }
        // Balance first, then the slot: if the ring moves in between, the withdrawal lands
        // in a newer slice and is given back later, never sooner.
        self.withdrawn[self.slot(slice)].fetch_add(UNITS_PER_RETRY, Ordering::Relaxed);
        Ok(())
    }

    /// How many retries could be withdrawn now.
    pub fn remaining(&self, now: Instant) -> u64 {
        self.advance(now);
        let units = self
            .balance
            .load(Ordering::Acquire)
            .saturating_add(self.reserve_units);
        u64::try_from(units / UNITS_PER_RETRY).unwrap_or(0)
    }

    fn slot(&self, slice: u64) -> usize {
        // The ring has at most MAX_BUCKETS slots, so the remainder fits any usize.
        (slice % self.deposited.len() as u64) as usize
    }

    /// Moves the ring forward to `now`'s slice if it is newer, expiring what fell out of the
    /// window. Returns the slice to count in: the newer of `now`'s and the newest seen.
    fn advance(&self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_init(|| now);
        let slice = nanos(now.saturating_duration_since(origin)) / self.slice_nanos;
        let head = self.head.load(Ordering::Acquire);
        if slice <= head {
            return head;
        }
        // A poisoned lock guards no data (`()`), so carrying on is safe.
        let _rotating = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        let head = self.head.load(Ordering::Acquire);
        if slice <= head {
            return head;
        }
        // The slots of slices head+1 ..= slice are reused; what they hold has expired.
        let len = self.deposited.len() as u64;
        let reused = (slice - head).min(len);
        // NOTE: deposits leave before withdrawals come back, so the balance a concurrent
        // withdrawal sees is never larger than the truth.
        for k in 1..=reused {
            let expired = self.deposited[self.slot(head + k)].swap(0, Ordering::Relaxed);
            self.balance.fetch_sub(expired, Ordering::AcqRel);
        }
        for k in 1..=reused {
            let expired = self.withdrawn[self.slot(head + k)].swap(0, Ordering::Relaxed);
            self.balance.fetch_add(expired, Ordering::AcqRel);
        }
        self.head.store(slice, Ordering::Release);
        slice
    }
}
