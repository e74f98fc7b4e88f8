//! The typed `[admin]` settings: where the admin listener binds and the token mutating calls
//! need (resolved from the environment at load, so nothing reads the environment later).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::Location;

/// The default admin address: loopback only.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// Admin connections served at once by default: a few dashboards, scripts and scrapers.
pub(crate) const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
/// The longest `ttl` a fault made at run time may have by default: an experiment that
/// crashes leaves its faults for an hour at most.
pub(crate) const DEFAULT_FAULT_MAX_TTL: Duration = Duration::from_secs(3600);
/// The most `[admin] fault_max_ttl` may be: a week. It bounds a runtime rule's `ttl` and
/// its `after` alike, so a rule ends at most two weeks after it is made.
pub(crate) const MAX_FAULT_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most `[admin] max_faults` may be (each change to the table copies its list).
pub(crate) const MAX_MAX_FAULTS: u32 = 10_000;
/// Runtime fault rules in force at once by default.
pub(crate) const DEFAULT_MAX_FAULTS: usize = 64;
/// The default time to send a request head (and body), and to send the next one.
pub(crate) const DEFAULT_ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where to listen; `None` when `listen = "off"`.
    pub listen: Option<SocketAddr>,
    /// Whether `listen` was written in the file (a default that cannot bind is not fatal).
    pub listen_explicit: bool,
    /// Where `listen` is written (the whole file when defaulted).
    pub listen_location: Option<Location>,
    /// The bearer token mutating calls must carry, if any.
    pub token: Option<AdminToken>,
    /// Connections served at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// Time to send a request head, then its body; also the keep-alive idle time.
    pub header_read_timeout: Duration,
    /// The longest `ttl` a fault rule made through the API may have.
    pub fault_max_ttl: Duration,
    /// Fault rules made through the API in force at once, at most.
    pub max_faults: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
            listen_explicit: false,
            listen_location: None,
            token: None,
            max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_ADMIN_HEADER_READ_TIMEOUT,
            fault_max_ttl: DEFAULT_FAULT_MAX_TTL,
            max_faults: DEFAULT_MAX_FAULTS,
        }
    }
}

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token (non-empty, checked at load).
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token's bytes, for a constant-time comparison.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}
