//! Fault rules made at run time (`POST /admin/faults`) and the faults' kill switch: one
//! table that every route's [`super::RouteFaults`] reads besides its own config rules.
//!
//! Why a table of its own rather than rules written into the config in force: an
//! experiment's faults are not configuration. They must outlive a reload (an operator who
//! fixes a typo in the file must not end an experiment), they must end by themselves (a
//! script that crashes cannot leave a fault behind: every rule has an expiry, checked on the
//! request path against the clock, and a sweeper removes it with an event), and there must
//! be a kill switch that ends every fault at once. The snapshot of each reload hands the
//! same table on (see `reload::Snapshot::build`); a reload removes the rules whose route or
//! cluster it took away ([`FaultTable::reloaded`]).
//!
//! Reads never lock: the rules are an immutable list behind an `ArcSwap`, and a count in an
//! atomic says whether there are any, so a request on a proxy without runtime rules pays one
//! relaxed load and a branch; a second count, of the attempt-level rules (`at = "attempt"`,
//! or with an `endpoint`), does the same for each attempt. Writes (an operator's call, a rule spent or expired) are rare:
//! they take a short lock, build a new list and swap it in. Every method takes `now`, so
//! tests move time by hand.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::runtime_rule::describe;
pub(crate) use super::runtime_rule::{FaultTarget, NewRule, RuntimeRule};

mod draw;
use crate::config::fault::FaultStage;
use crate::counters::Counter;
use crate::events::{Event, EventKind, EventLog};

/// Why a runtime rule left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Its `ttl` ran out.
    Expired,
    /// An operator deleted it.
    Deleted,
    /// It faulted its `first` requests.
    Spent,
    /// A reload took its route or cluster away.
    Orphaned,
}

impl Removal {
    fn event(self) -> EventKind {
        match self {
            Removal::Expired => EventKind::FaultExpired,
            Removal::Deleted => EventKind::FaultDeleted,
            Removal::Spent => EventKind::FaultSpent,
            Removal::Orphaned => EventKind::FaultOrphaned,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Removal::Expired => "expired",
            Removal::Deleted => "deleted",
            Removal::Spent => "spent (faulted its first requests)",
            Removal::Orphaned => "removed: the reload took its target away",
        }
    }
}

/// The table is full: `[admin] max_faults` rules are in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableFull {
    /// The cap.
    pub cap: usize,
    /// When the next rule expires, from now.
    pub next_expiry: Option<Duration>,
}

/// Why the table did not take a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `[admin] max_faults` rules are in force.
    Full(TableFull),
    /// Its target is not in the config in force (a reload took it away after the rule was
    /// checked).
    Gone,
    /// `after` and `ttl` put its end past what the clocks can hold (the admin API caps both
    /// long before; the table does not trust it to).
    OutOfRange,
}

/// What happened to runtime rules, counted (`blastwall_fault_rule_events_total`).
#[derive(Debug, Default)]
pub(crate) struct FaultRuleStats {
    /// Rules made.
    pub created: Counter,
    /// Rules whose `ttl` ran out.
    pub expired: Counter,
    /// Rules an operator deleted.
    pub deleted: Counter,
    /// Rules that faulted their `first` requests.
    pub spent: Counter,
    /// Rules a reload took the target of.
    pub orphaned: Counter,
    /// Kill switch uses.
    pub cleared: Counter,
}

impl FaultRuleStats {
    fn count(&self, why: Removal) {
        match why {
            Removal::Expired => self.expired.increment(),
            Removal::Deleted => self.deleted.increment(),
            Removal::Spent => self.spent.increment(),
            Removal::Orphaned => self.orphaned.increment(),
        }
    }
}

/// The runtime fault rules and the kill switch's state.
#[derive(Debug)]
pub(crate) struct FaultTable {
    rules: ArcSwap<Vec<Arc<RuntimeRule>>>,
    // NOTE: equals `rules`' length, written under `writing`; the request path reads only
    // this while it is zero.
    count: AtomicUsize,
    // NOTE: how many of `rules` are drawn in the attempts, written with `count`; an attempt
    // reads only this while it is zero.
    attempt_count: AtomicUsize,
    silenced: AtomicBool,
    next_id: AtomicU64,
    writing: Mutex<()>,
    // NOTE: what faults in progress wait on to end with their rule (`super::ending`): the
    // kill switch's uses, counted; sent again unchanged as an operator or a reload removes
    // a rule (flagged ended first). Only a faulted request subscribes.
    ends: tokio::sync::watch::Sender<u64>,
    /// Rules made and gone, for `/admin/events`.
    pub events: EventLog,
    /// The same, counted.
    pub stats: FaultRuleStats,
}

impl Default for FaultTable {
    fn default() -> Self {
        Self {
            rules: ArcSwap::from_pointee(Vec::new()),
            count: AtomicUsize::new(0),
            attempt_count: AtomicUsize::new(0),
            silenced: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            writing: Mutex::new(()),
            ends: tokio::sync::watch::Sender::new(0),
            events: EventLog::default(),
            stats: FaultRuleStats::default(),
        }
    }
}

impl FaultTable {
    /// Whether there are no runtime rules: one relaxed load.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// Whether some runtime rule is drawn in the attempts: one relaxed load.
    #[inline]
    pub(crate) fn has_attempt_rules(&self) -> bool {
        self.attempt_count.load(Ordering::Relaxed) != 0
    }

    /// Runtime rules in the table (expired ones not yet swept included).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the kill switch silences the config's rules.
    pub(crate) fn silenced(&self) -> bool {
        self.silenced.load(Ordering::Relaxed)
    }

    /// A receiver of what ends faults in progress (see `super::ending`).
    pub(super) fn ends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ends.subscribe()
    }

    /// The runtime rules, in creation order.
    pub(crate) fn rules(&self) -> Arc<Vec<Arc<RuntimeRule>>> {
        self.rules.load_full()
    }

    /// The runtime rule `id`, if it is in the table.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<RuntimeRule>> {
        self.rules
            .load()
            .iter()
            .find(|rule| &*rule.id == id)
            .cloned()
    }

    /// Puts `new` in the table at `now` (`wall` the same moment by the wall clock), unless
    /// `cap` rules in force are there already (expired ones are swept first).
    #[cfg(test)]
    pub(crate) fn insert(
        &self,
        new: NewRule,
        cap: usize,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Arc<RuntimeRule>, Refused> {
        self.insert_if(new, cap, now, wall, |_| true)
    }

    /// [`FaultTable::insert`], if `exists` says its target is still in the config in force,
    /// asked under the lock a reload's sweep takes (see [`FaultTable::reloaded_then`]): a
    /// rule checked against a config that a reload replaces meanwhile is either swept by
    /// that reload or refused here, never left behind with a target the config lacks.
    pub(crate) fn insert_if(
        &self,
        new: NewRule,
        cap: usize,
        now: Instant,
        wall: SystemTime,
        exists: impl FnOnce(&FaultTarget) -> bool,
    ) -> Result<Arc<RuntimeRule>, Refused> {
        // NOTE: checked before the lock: nothing below panics while it is held.
        let window = (new.after.checked_add(new.ttl)).and_then(|span| {
            Some((
                wall.checked_add(new.after)?,
                wall.checked_add(span)?,
                now.checked_add(new.after)?,
                now.checked_add(span)?,
            ))
        });
        let Some((starts_at, expires_at, starts, expires)) = window else {
            return Err(Refused::OutOfRange);
        };
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if !exists(&new.target) {
            return Err(Refused::Gone);
        }
        self.remove_locked(|rule| now >= rule.expires, Removal::Expired);
        let rules = self.rules.load_full();
        if rules.len() >= cap {
            let next_expiry = rules.iter().map(|rule| rule.expires_in(now)).min();
            return Err(Refused::Full(TableFull { cap, next_expiry }));
        }
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rule = Arc::new(RuntimeRule {
            id: format!("f{number}").into(),
            number,
            target: new.target,
            rule: new.rule,
            given: new.given,
            created_at: wall,
            starts_at,
            expires_at,
            starts,
            expires,
            faulted: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        });
        let mut next = Vec::with_capacity(rules.len() + 1);
        next.extend(rules.iter().cloned());
        next.push(rule.clone());
        self.store(next);
        self.stats.created.increment();
        let detail = format!(
            "fault {} created: {} for {:?}{}",
            rule.id,
            describe(&rule),
            new.ttl,
            if new.after.is_zero() {
                String::new()
            } else {
                format!(", starting in {:?}", new.after)
            }
        );
        self.events
            .push(event(EventKind::FaultCreated, &rule, detail));
        Ok(rule)
    }

    /// Removes the runtime rule `id` (an operator's delete).
    pub(crate) fn delete(&self, id: &str) -> Option<Arc<RuntimeRule>> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.remove_locked(|rule| &*rule.id == id, Removal::Deleted)
            .into_iter()
            .next()
    }

    /// The kill switch: removes every runtime rule and silences the config's rules until
    /// the next reload or [`FaultTable::resume`]. Returns how many runtime rules it removed.
    pub(crate) fn clear(&self) -> usize {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let removed = self.rules.load().len();
        self.store(Vec::new());
        self.silenced.store(true, Ordering::Relaxed);
        // Every fault in progress ends, whatever its rule.
        self.ends.send_modify(|kills| *kills += 1);
        self.stats.cleared.increment();
        let detail = format!(
            "fault kill switch: {removed} runtime rule(s) removed, the config's rules silenced until the next reload or POST /admin/faults/resume"
        );
        self.events
            .push(Event::now(EventKind::FaultsCleared, detail));
        removed
    }

    /// Lets the config's rules apply again after the kill switch; `false` when they were
    /// not silenced.
    pub(crate) fn resume(&self) -> bool {
        let was = self.silenced.swap(false, Ordering::Relaxed);
        if was {
            self.events.push(Event::now(
                EventKind::FaultsResumed,
                "the config's fault rules apply again",
            ));
        }
        was
    }

    /// Removes the rules expired at `now`, each with an event; how many it removed.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        if self.is_empty() {
            return 0;
        }
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.remove_locked(|rule| now >= rule.expires, Removal::Expired)
            .len()
    }

    /// After a reload: the config's rules apply again (the kill switch lasts until the next
    /// reload), and the rules whose target the new config lacks are removed, each with an
    /// event.
    #[cfg(test)]
    pub(crate) fn reloaded(&self, exists: impl Fn(&FaultTarget) -> bool) {
        self.reloaded_then(exists, || ());
    }

    /// [`FaultTable::reloaded`], then `publish` (the new config put in force) before any
    /// rule can be inserted: an [`FaultTable::insert_if`] waiting meanwhile asks its
    /// `exists` of the config `publish` put in force.
    pub(crate) fn reloaded_then<R>(
        &self,
        exists: impl Fn(&FaultTarget) -> bool,
        publish: impl FnOnce() -> R,
    ) -> R {
        if self.silenced.swap(false, Ordering::Relaxed) {
            self.events.push(Event::now(
                EventKind::FaultsResumed,
                "the config's fault rules apply again: a new config is in force",
            ));
        }
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.is_empty() {
            self.remove_locked(|rule| !exists(&rule.target), Removal::Orphaned);
        }
        publish()
    }

    /// Removes the rules `which` picks, each with an event for `why`. Call with `writing`
    /// held.
    fn remove_locked(
        &self,
        which: impl Fn(&RuntimeRule) -> bool,
        why: Removal,
    ) -> Vec<Arc<RuntimeRule>> {
        let rules = self.rules.load_full();
        if !rules.iter().any(|rule| which(rule)) {
            return Vec::new();
        }
        let (removed, kept): (Vec<_>, Vec<_>) = rules.iter().cloned().partition(|rule| which(rule));
        self.store(kept);
        if matches!(why, Removal::Deleted | Removal::Orphaned) {
            // Their faults in progress end with them (an expired rule's end at its expiry
            // by themselves; a spent rule's last faults are done in full).
            removed.iter().for_each(|rule| rule.end());
            self.ends.send_modify(|_| {});
        }
        for rule in &removed {
            self.stats.count(why);
            let detail = format!("fault {} {}: {}", rule.id, why.words(), describe(rule));
            self.events.push(event(why.event(), rule, detail));
            tracing::info!(fault = &*rule.id, "fault rule {}", why.words());
        }
        removed
    }

    fn store(&self, rules: Vec<Arc<RuntimeRule>>) {
        let count = rules.len();
        let attempts = (rules.iter())
            .filter(|rule| rule.rule.at == FaultStage::Attempt)
            .count();
        self.rules.store(Arc::new(rules));
        self.count.store(count, Ordering::Relaxed);
        self.attempt_count.store(attempts, Ordering::Relaxed);
    }
}

fn event(kind: EventKind, rule: &RuntimeRule, detail: String) -> Event {
    let event = Event::now(kind, detail);
    match &rule.target {
        FaultTarget::Route(name) => event.on_route(name),
        FaultTarget::Cluster(name) => event.in_cluster(name, None),
    }
}

/// Sweeps `table` every `period` until `stop` changes (or its sender goes), and calls
/// `after` after each sweep while the table holds rules or the sweep removed some, so that
/// what depends on the rules in force (the endpoints a rule takes down, for health checks)
/// follows a rule that starts or expires within a period.
pub(crate) async fn sweep_every(
    table: Arc<FaultTable>,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<()>,
    after: impl Fn() + Send + 'static,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // NOTE: tokio's clock (the same as std's outside tests), so that a test with
            // paused time moves it.
            _ = ticks.tick() => {
                let removed = table.sweep(tokio::time::Instant::now().into_std());
                if removed > 0 || !table.is_empty() {
                    after();
                }
            }
            _ = stop.changed() => return,
        }
    }
}
