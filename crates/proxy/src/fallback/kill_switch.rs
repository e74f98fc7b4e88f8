//! A route's kill switch: on, every request takes the fallback without touching the cluster.
//!
//! Two hands may move it: the config (`kill_switch = true`, put in force by a reload) and an
//! operator at run time ([`crate::reload::Runtime::set_kill_switch`], for the admin API).
//! The rule between them: a reload that changes the route's `kill_switch` key sets the switch
//! to the key's new value (the config was edited to say so); a reload that leaves the key as
//! it was keeps the switch where it is, operator's override included. So fixing a typo in
//! another route never undoes an incident response, and editing the key always wins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A route's kill switch.
#[derive(Debug)]
pub(crate) struct KillSwitch {
    /// The route's `kill_switch` key when this state was built.
    configured: bool,
    /// NOTE: shared with the route's state in the config being replaced when the key did not
    /// change, so a flip made while a reload is being prepared is not lost.
    on: Arc<AtomicBool>,
}

impl KillSwitch {
    /// The switch for a route whose key says `configured`, given the same route's switch in
    /// the config being replaced.
    pub(crate) fn new(configured: bool, previous: Option<&KillSwitch>) -> Self {
        let on = match previous {
            Some(previous) if previous.configured == configured => previous.on.clone(),
            _ => Arc::new(AtomicBool::new(configured)),
        };
        Self { configured, on }
    }

    /// Whether the switch is on.
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Turns the switch on or off.
    pub(crate) fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_survives_a_reload_that_keeps_the_key() {
        let first = KillSwitch::new(false, None);
        first.set(true);
        let reloaded = KillSwitch::new(false, Some(&first));
        assert!(reloaded.is_on());
        reloaded.set(false);
        assert!(
            !first.is_on(),
            "the old config's requests see the same switch"
        );
    }

    #[test]
    fn a_reload_that_changes_the_key_sets_the_switch_to_it() {
        let first = KillSwitch::new(false, None);
        first.set(true);
        let turned_off_by_config = KillSwitch::new(true, Some(&first));
        assert!(turned_off_by_config.is_on());
        let edited = KillSwitch::new(false, Some(&turned_off_by_config));
        assert!(!edited.is_on());
        first.set(false);
        let on_again = KillSwitch::new(true, Some(&edited));
        assert!(on_again.is_on());
    }
}
