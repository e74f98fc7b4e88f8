//! Whom a rule applies to: a route's rules as they stand while its config is in force
//! (`RouteFaults`: the config's, per request and per attempt, and the runtime table beside
//! them), the draw (window, header from a trusted client, percentage, `first`) and what a
//! request drew (`Drawn`). What a fault then does is the parent module's and `attempt`'s.

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

use http::HeaderMap;
use rand::Rng;

use super::table::{FaultTable, RuntimeRule};
use crate::config::fault::{FaultAction, FaultRule, FaultStage};
use crate::record::FaultRuleId;

/// A route's fault rules: its config rules, in file order (those drawn once per request,
/// and those drawn in each attempt), and the runtime table.
#[derive(Debug, Default)]
pub(crate) struct RouteFaults {
    rules: Box<[ConfiguredFault]>,
    attempt_rules: Box<[ConfiguredFault]>,
    pub(super) table: Arc<FaultTable>,
    /// The route's name and its cluster's, which runtime rules target.
    names: (Box<str>, Box<str>),
}

/// A config rule with what it keeps while it is in force: its id, its window on the
/// monotonic clock and how many requests it has faulted (for `first`).
#[derive(Debug)]
pub(crate) struct ConfiguredFault {
    /// `config:<route>:<n>` (n from 1, in file order).
    pub id: Box<str>,
    /// Its `n`.
    pub number: u32,
    /// The rule as the config gives it.
    pub rule: FaultRule,
    from: Option<Instant>,
    pub(super) until: Option<Instant>,
    faulted: Arc<AtomicU64>,
}

impl ConfiguredFault {
    /// Whether it applies at `now` (its window; `first` not counted).
    pub(crate) fn live_at(&self, now: Instant) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
    }

    /// Requests it has faulted while in force (across reloads that keep it as it is).
    pub(crate) fn faulted(&self) -> u64 {
        self.faulted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The fault a request drew: a config rule's or a runtime rule's; reads as its action.
#[derive(Debug)]
pub(crate) enum Drawn<'a> {
    /// A `[[route.fault]]` rule.
    Configured(&'a ConfiguredFault),
    /// A rule made through the admin API (held: the table may drop it meanwhile).
    Runtime(Arc<RuntimeRule>),
}

impl Drawn<'_> {
    /// The rule's id, as the access log writes it.
    pub(crate) fn rule_id(&self) -> FaultRuleId {
        match self {
            Drawn::Configured(rule) => FaultRuleId::Config(rule.number),
            Drawn::Runtime(rule) => FaultRuleId::Runtime(rule.number),
        }
    }
}

impl Deref for Drawn<'_> {
    type Target = FaultAction;

    fn deref(&self) -> &FaultAction {
        match self {
            Drawn::Configured(rule) => &rule.rule.action,
            Drawn::Runtime(rule) => &rule.rule.action,
        }
    }
}

/// Whether a rule's `first` has room for one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken; more may follow.
    Taken,
    /// Taken, and it was the last.
    Last,
    /// None left.
    Spent,
}

impl RouteFaults {
    /// The rules of a route, as its config gives them, alone (no runtime table).
    #[cfg(test)]
    pub(crate) fn new(rules: &[FaultRule]) -> Self {
        Self::for_route(("", ""), rules, None, Arc::default())
    }

    /// The faults of the route `names` (its name, its cluster's): its config `rules`, and
    /// the runtime `table`. A rule that `previous` (the same route before a reload) had at
    /// the same place, unchanged, keeps its count of faulted requests, so a reload does not
    /// give a `first` rule its requests again.
    pub(crate) fn for_route(
        names: (&str, &str),
        rules: &[FaultRule],
        previous: Option<&RouteFaults>,
        table: Arc<FaultTable>,
    ) -> Self {
        let (now, wall) = (Instant::now(), SystemTime::now());
        for rule in rules {
            if let Some(endpoint) = &rule.endpoint {
                let picked = if endpoint.random {
                    "picked at random"
                } else {
                    "named"
                };
                let kind = rule.action.kind().as_str();
                tracing::info!(route = names.0, endpoint = %endpoint.address, picked, fault = kind, "fault rule: on the attempts that pick this endpoint");
            }
        }
        let kept = |index: usize, rule: &FaultRule| {
            let previous = previous?;
            (previous.rules.iter())
                .chain(previous.attempt_rules.iter())
                .find(|kept| kept.number as usize == index + 1 && kept.rule == *rule)
                .map(|kept| kept.faulted.clone())
        };
        let (attempt_rules, rules): (Vec<ConfiguredFault>, Vec<ConfiguredFault>) = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let faulted = kept(index, rule).unwrap_or_default();
                ConfiguredFault {
                    number: u32::try_from(index + 1).unwrap_or(u32::MAX),
                    id: format!("config:{}:{}", names.0, index + 1).into(),
                    rule: rule.clone(),
                    from: rule.window.from.map(|at| instant_of(at, now, wall)),
                    until: rule.window.until.map(|at| instant_of(at, now, wall)),
                    faulted,
                }
            })
            .partition(|configured| configured.rule.at == FaultStage::Attempt);
        Self {
            rules: rules.into(),
            attempt_rules: attempt_rules.into(),
            table,
            names: (names.0.into(), names.1.into()),
        }
    }

    /// The route's config rules (request-level, then attempt-level).
    pub(crate) fn configured(&self) -> impl Iterator<Item = &ConfiguredFault> {
        self.rules.iter().chain(self.attempt_rules.iter())
    }

    /// Whether any rule is drawn in the attempts: a config rule of the route's, or a
    /// runtime rule (of any target). One branch and one relaxed load when there is none.
    #[inline]
    pub(crate) fn has_attempt_rules(&self) -> bool {
        !self.attempt_rules.is_empty() || self.table.has_attempt_rules()
    }

    /// The fault for an attempt of a request with these headers that picked `endpoint`
    /// (see [`RouteFaults::draw_attempt_at`]).
    pub(crate) fn draw_attempt(
        &self,
        headers: &HeaderMap,
        trusted: bool,
        endpoint: SocketAddr,
    ) -> Option<Drawn<'_>> {
        self.draw_attempt_at(headers, trusted, endpoint, Instant::now())
    }

    /// The fault for an attempt of a request with these headers that picked `endpoint`, at
    /// `now`: an attempt-level runtime rule first, as in [`RouteFaults::draw_at`], then the
    /// first attempt-level config rule in its window that matches (a rule with an endpoint
    /// only on that endpoint), wins its draw and has room in its `first`. The kill switch
    /// silences the config's rules (and has removed the runtime ones).
    pub(crate) fn draw_attempt_at(
        &self,
        headers: &HeaderMap,
        trusted: bool,
        endpoint: SocketAddr,
        now: Instant,
    ) -> Option<Drawn<'_>> {
        if self.table.has_attempt_rules() {
            let names = (&*self.names.0, &*self.names.1);
            let drawn = (self.table).draw_attempt(names, headers, trusted, endpoint, now);
            if let Some(rule) = drawn {
                return Some(Drawn::Runtime(rule));
            }
        }
        if self.attempt_rules.is_empty() || self.table.silenced() {
            return None;
        }
        self.attempt_rules
            .iter()
            .find(|configured| {
                let rule = &configured.rule;
                rule.endpoint.is_none_or(|only| only.address == endpoint)
                    && configured.live_at(now)
                    && matches(rule, headers, trusted)
                    && drawn(rule.per_million)
                    && take(&configured.faulted, rule.first) != Take::Spent
            })
            .map(Drawn::Configured)
    }

    /// Whether no rule can apply to the route's requests: none in its config, none made at
    /// run time. One branch and one relaxed load, inlined in the request's path, so that a
    /// request to a route without faults reads nothing else (not even whether its client
    /// is trusted).
    #[inline]
    pub(crate) fn idle(&self) -> bool {
        self.rules.is_empty() && self.table.is_empty()
    }

    /// The fault for a request with these headers (see [`RouteFaults::draw_at`]); `None`
    /// at once when [`RouteFaults::idle`].
    pub(crate) fn draw(&self, headers: &HeaderMap, trusted: bool) -> Option<Drawn<'_>> {
        if self.idle() {
            return None;
        }
        self.draw_at(headers, trusted, Instant::now())
    }

    /// The fault for a request with these headers at `now`: a runtime rule first (an
    /// operator's experiment overrides the file), then the first config rule in its window
    /// whose header matches, whose percentage the draw falls in and whose `first` has room.
    /// A rule with a header matches only a `trusted` client's request: anyone else could
    /// fault their own requests at will and trip the cluster's breaker for every user. The
    /// kill switch silences the config rules.
    pub(crate) fn draw_at(
        &self,
        headers: &HeaderMap,
        trusted: bool,
        now: Instant,
    ) -> Option<Drawn<'_>> {
        if !self.table.is_empty() {
            let names = (&*self.names.0, &*self.names.1);
            if let Some(rule) = self.table.draw(names, headers, trusted, now) {
                return Some(Drawn::Runtime(rule));
            }
        }
        if self.rules.is_empty() || self.table.silenced() {
            return None;
        }
        self.rules
            .iter()
            .find(|configured| {
                configured.live_at(now)
                    && matches(&configured.rule, headers, trusted)
                    && drawn(configured.rule.per_million)
                    && take(&configured.faulted, configured.rule.first) != Take::Spent
            })
            .map(Drawn::Configured)
    }
}

/// One request taken from a rule's `first`, counted in `faulted`.
pub(super) fn take(faulted: &AtomicU64, first: Option<NonZeroU64>) -> Take {
    let Some(first) = first else {
        faulted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Take::Taken;
    };
    let taken = faulted.fetch_update(
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
        |count| (count < first.get()).then_some(count + 1),
    );
    match taken {
        Ok(count) if count + 1 == first.get() => Take::Last,
        Ok(_) => Take::Taken,
        Err(_) => Take::Spent,
    }
}

/// The monotonic instant of the wall-clock time `at`, given one moment on both clocks (a
/// time too far back for the monotonic clock is `now`: already passed either way).
fn instant_of(at: SystemTime, now: Instant, wall: SystemTime) -> Instant {
    match at.duration_since(wall) {
        Ok(ahead) => now + ahead,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

/// Whether `rules` take the endpoint at `address` down for every attempt (see
/// [`FaultRule::downs_for_everyone`]).
pub(crate) fn takes_down(rules: &[FaultRule], address: SocketAddr) -> bool {
    rules.iter().any(|rule| rule.downs_for_everyone(address))
}

impl FaultRule {
    /// Whether this rule takes the endpoint at `address` down for every attempt, whoever
    /// sends it (no header, 100 percent, no `first`): then its active health checks should
    /// see it down too (see [`crate::endpoint::Endpoint::set_down_by_fault`]). A rule that
    /// spares some attempts leaves the checks alone.
    pub(crate) fn downs_for_everyone(&self, address: SocketAddr) -> bool {
        self.action == FaultAction::EndpointDown
            && self.header.is_none()
            && self.per_million >= 1_000_000
            && self.first.is_none()
            && self.endpoint.is_some_and(|only| only.address == address)
    }
}

/// Whether the request carries the rule's header (with its value, when the rule gives one)
/// from a trusted client.
pub(super) fn matches(rule: &FaultRule, headers: &HeaderMap, trusted: bool) -> bool {
    match &rule.header {
        None => true,
        Some(_) if !trusted => false,
        Some((name, None)) => headers.contains_key(name),
        Some((name, Some(value))) => headers.get_all(name).iter().any(|given| given == value),
    }
}

/// Whether this request falls in `per_million` (no draw at the bounds).
pub(super) fn drawn(per_million: u32) -> bool {
    match per_million {
        0 => false,
        1_000_000.. => true,
        share => crate::rng::with_rng(|rng| rng.random_range(0..1_000_000)) < share,
    }
}
