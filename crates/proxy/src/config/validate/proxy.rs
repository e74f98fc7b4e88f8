//! `[proxy]`: settings of the process as a whole.

use std::num::NonZeroUsize;
use std::time::Duration;

use http::HeaderName;

use super::{Checker, duration_or};
use crate::config::ProxySettings;
use crate::config::file::ProxySection;

const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_DEADLINE_HEADER: &str = "x-blastwall-timeout-ms";

/// The process's settings; a header name that cannot be one is an error at its place.
pub(super) fn proxy(check: &mut Checker<'_>, section: &mut ProxySection) -> ProxySettings {
    let deadline_header = match &section.deadline_header {
        Some(name) => HeaderName::from_bytes(name.get_ref().as_bytes()).unwrap_or_else(|_| {
            check.error_at(
                name.span(),
                format!(
                    "deadline_header \"{}\" is not a valid header name",
                    name.get_ref()
                ),
            );
            HeaderName::from_static(DEFAULT_DEADLINE_HEADER)
        }),
        None => HeaderName::from_static(DEFAULT_DEADLINE_HEADER),
    };
    ProxySettings {
        zone: section.zone.take(),
        drain_timeout: duration_or(check, section.drain_timeout.take(), DEFAULT_DRAIN_TIMEOUT),
        deadline_header,
        decision_headers: section.decision_headers,
        worker_threads: worker_threads(check, section.worker_threads.take()),
    }
}

/// More threads than this is a typo, not a machine.
const MAX_WORKER_THREADS: u32 = 1024;

fn worker_threads(
    check: &mut Checker<'_>,
    value: Option<toml::Spanned<u32>>,
) -> Option<NonZeroUsize> {
    let value = value?;
    let threads = *value.get_ref();
    if (1..=MAX_WORKER_THREADS).contains(&threads) {
        return NonZeroUsize::new(threads as usize);
    }
    check.error_at(
        value.span(),
        format!("worker_threads must be between 1 and {MAX_WORKER_THREADS}, not {threads}"),
    );
    None
}
