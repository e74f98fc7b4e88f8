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
pub fn set_log_filter(filter: &str) -> Result<(), String> {
    match LOG_FILTER.get() {
        Some(set) => set(filter),
        None => Err(
            "the log level cannot be changed: this process has no reloadable log subscriber"
                .to_owned(),
        ),
    }
}
