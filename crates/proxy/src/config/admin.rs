//! The typed `[admin]` settings: where the admin listener binds and the token mutating calls
//! need (resolved from the environment at load, so nothing reads the environment later).

use std::fmt;
use std::net::SocketAddr;

use super::Location;

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

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
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
            listen_explicit: false,
            listen_location: None,
            token: None,
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
