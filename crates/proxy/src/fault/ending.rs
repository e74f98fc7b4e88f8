//! When a fault in progress ends: with its rule. A delay or a throttle is drawn once and
//! then lasts (a delay up to an hour, a throttled body for as long as the body takes); were
//! it to outlast its rule, an operator's kill switch or a rule's `ttl` would not end the
//! experiment: the requests it holds keep their admission slots, and every other user of a
//! route with a concurrency limit gets 503 meanwhile. So a fault in progress waits on its
//! rule's end too ([`RuleEnd`]): the rule's expiry (a runtime rule's `ttl`, a config
//! rule's `until`), the kill switch (any use of it since the fault began, which ends every
//! fault, config or runtime, even a rule spent meanwhile), or an operator's delete (or a
//! reload that takes the rule's target away).
//!
//! The table tells of the last two through a `tokio::sync::watch` channel (the kill
//! switch's count, sent again unchanged when a rule is removed, which flags the rule
//! ended first). Only a faulted request subscribes to it, and it waits on it as it waits on
//! its timer, without polling; a request without a fault never looks at it.

use std::sync::Arc;
use std::time::Instant;

use super::table::{FaultTable, RuntimeRule};
use super::{Drawn, RouteFaults};

/// What ends a drawn fault: its rule's expiry, the kill switch, the rule's removal.
#[derive(Debug, Clone)]
pub(crate) struct RuleEnd {
    table: Arc<FaultTable>,
    /// The runtime rule, held; `None` for a config rule (which only the kill switch ends
    /// early).
    rule: Option<Arc<RuntimeRule>>,
    /// The rule's expiry on the monotonic clock, when it has one.
    expires: Option<Instant>,
}

impl RouteFaults {
    /// What ends the fault `drawn` from this route's rules.
    pub(crate) fn ending(&self, drawn: &Drawn<'_>) -> RuleEnd {
        let (rule, expires) = match drawn {
            Drawn::Configured(configured) => (None, configured.until),
            Drawn::Runtime(rule) => (Some(rule.clone()), Some(rule.expires)),
        };
        RuleEnd {
            table: self.table.clone(),
            rule,
            expires,
        }
    }
}

impl RuleEnd {
    /// The end of a config rule without `until` read from `table`: only its kill switch.
    #[cfg(test)]
    pub(crate) fn kill_switch_of(table: Arc<FaultTable>) -> Self {
        Self {
            table,
            rule: None,
            expires: None,
        }
    }

    /// Done when the rule ends (at once when it has already). Owns what it reads, so a
    /// body can keep it after the request's future is gone (`Send` and `Sync`, as a body
    /// must be).
    pub(crate) async fn ended(self) {
        let mut ends = self.table.ends();
        let kills = *ends.borrow_and_update();
        let over = |kills_now: u64| {
            kills_now != kills || self.rule.as_ref().is_some_and(|rule| rule.ended())
        };
        // A config rule drawn just before the kill switch, which has been used since.
        let silenced = self.rule.is_none() && self.table.silenced();
        if silenced || over(kills) {
            return;
        }
        let expiry = async {
            match self.expires {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let told = async {
            // The table holds the sender as long as `self` holds the table.
            while ends.changed().await.is_ok() {
                if over(*ends.borrow_and_update()) {
                    return;
                }
            }
            std::future::pending().await
        };
        tokio::select! {
            () = expiry => {}
            () = told => {}
        }
    }
}
