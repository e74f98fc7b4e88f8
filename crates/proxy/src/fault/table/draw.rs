//! The table's read side: the runtime rule a request or an attempt draws, and whether the
//! rules in force take an endpoint down for its health checks. Lock-free reads of the list
//! in force; only a rule that faults its last request takes the write lock, to leave.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use http::HeaderMap;

use super::{FaultTable, FaultTarget, Removal, RuntimeRule};
use crate::config::fault::{FaultRule, FaultStage};
use crate::fault::{Take, drawn, matches, take};

impl FaultTable {
    /// The request-level runtime rule that faults this request of `route` (of `cluster`) at
    /// `now`: the first, in creation order, that covers it, is live, matches its headers,
    /// wins its draw and has requests left. A rule that faults its last request leaves the
    /// table here.
    pub(in crate::fault) fn draw(
        &self,
        names: (&str, &str),
        headers: &HeaderMap,
        trusted: bool,
        now: Instant,
    ) -> Option<Arc<RuntimeRule>> {
        self.draw_where(names, headers, trusted, now, |rule| {
            rule.at == FaultStage::Request
        })
    }

    /// The attempt-level runtime rule that faults this attempt of `route` (of `cluster`),
    /// which picked `endpoint`, at `now`: chosen as [`FaultTable::draw`] chooses, among the
    /// rules drawn in the attempts whose endpoint, when they have one, is this one.
    pub(in crate::fault) fn draw_attempt(
        &self,
        names: (&str, &str),
        headers: &HeaderMap,
        trusted: bool,
        endpoint: SocketAddr,
        now: Instant,
    ) -> Option<Arc<RuntimeRule>> {
        self.draw_where(names, headers, trusted, now, |rule| {
            rule.at == FaultStage::Attempt
                && rule.endpoint.is_none_or(|only| only.address == endpoint)
        })
    }

    fn draw_where(
        &self,
        (route, cluster): (&str, &str),
        headers: &HeaderMap,
        trusted: bool,
        now: Instant,
        stage: impl Fn(&FaultRule) -> bool,
    ) -> Option<Arc<RuntimeRule>> {
        let rules = self.rules.load();
        for rule in rules.iter() {
            if !stage(&rule.rule)
                || !rule.target.covers(route, cluster)
                || !rule.live_at(now)
                || !matches(&rule.rule, headers, trusted)
                || !drawn(rule.rule.per_million)
            {
                continue;
            }
            match take(&rule.faulted, rule.rule.first) {
                Take::Spent => continue,
                Take::Taken => return Some(rule.clone()),
                Take::Last => {
                    let rule = rule.clone();
                    drop(rules);
                    let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
                    self.remove_locked(|kept| std::ptr::eq(kept, &*rule), Removal::Spent);
                    return Some(rule);
                }
            }
        }
        None
    }

    /// Whether a runtime rule live at `now`, on a target `covers` accepts, takes the
    /// endpoint at `address` down for every attempt (see
    /// [`crate::config::fault::FaultRule::downs_for_everyone`]).
    pub(crate) fn takes_down(
        &self,
        covers: impl Fn(&FaultTarget) -> bool,
        address: SocketAddr,
        now: Instant,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        self.rules.load().iter().any(|rule| {
            rule.rule.downs_for_everyone(address) && rule.live_at(now) && covers(&rule.target)
        })
    }
}
