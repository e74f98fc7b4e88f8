//! The proxy's own log level, changed at run time (`PUT /admin/log-level`).
//!
//! The library does not own the `tracing` subscriber: the binary builds it, with a reload
//! layer, and installs here the one function that swaps its filter. A process-wide slot is
//! the honest shape for it: there is one global subscriber per process.

use std::sync::OnceLock;

/// Replaces the subscriber's filter with one parsed from the text.
type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_FILTER: OnceLock<Setter> = OnceLock::new();

/// Installs the function that changes the log filter; `false` if one was installed already
/// (the first stays).
pub fn install_log_filter(
    setter: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
) -> bool {
    LOG_FILTER.set(Box::new(setter)).is_ok()
}

/// Changes the proxy's log filter at run time, in `EnvFilter` syntax (`info`,
/// `blastwall_proxy=debug,warn`). An invalid filter is refused with the reason, and the
/// filter in force stays.
pub(crate) fn set_log_filter(filter: &str) -> Result<(), String> {
    match LOG_FILTER.get() {
        Some(set) => set(filter),
        None => Err(
            "the log level cannot be changed: this process has no reloadable log subscriber"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn the_filter_is_changed_through_the_installed_setter_only() {
        // NOTE: the only test touching the process-wide slot.
        assert!(set_log_filter("debug").is_err(), "nothing installed yet");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        assert!(install_log_filter(move |filter| {
            if filter.contains('!') {
                return Err(format!("bad filter {filter}"));
            }
            recorder.lock().unwrap().push(filter.to_owned());
            Ok(())
        }));
        assert!(!install_log_filter(|_| Ok(())), "the first setter stays");
        assert_eq!(set_log_filter("blastwall_proxy=debug"), Ok(()));
        assert!(set_log_filter("!").is_err());
        assert_eq!(*seen.lock().unwrap(), ["blastwall_proxy=debug"]);
    }
}
