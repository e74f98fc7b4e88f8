//! The `[admin]` section as written: where the admin API listens and the token it asks for.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::values::DurationValue;

/// The admin API and dashboard: JSON over HTTP on a listener of its own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminSection {
    /// `address:port` of the admin listener, or "off" for none. Default "127.0.0.1:9901";
    /// when the default cannot be bound (another proxy on the host has it) the proxy runs
    /// without an admin listener and says so, while an address written here must bind. Bound
    /// off loopback, a token is required.
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// The bearer token every mutating call must carry (`Authorization: Bearer <token>`).
    /// Prefer `token_env`: a token in the file is readable by whoever reads the file.
    #[schemars(with = "Option<String>")]
    pub token: Option<Spanned<String>>,
    /// The name of an environment variable holding the token, read when the config loads.
    #[schemars(with = "Option<String>")]
    pub token_env: Option<Spanned<String>>,
    /// Admin connections served at once; past this, a new one is closed at once (so a
    /// flood of connections cannot take the descriptors the traffic listeners need).
    /// Default 64.
    pub max_connections: Option<u32>,
    /// Time a client has to send a complete request head, and again its body; also how
    /// long a keep-alive connection may wait for its next request. Default "10s".
    #[schemars(with = "Option<DurationValue>")]
    pub header_read_timeout: Option<Spanned<DurationValue>>,
    /// The longest `ttl` a fault rule made through the API (`POST /admin/faults`) may
    /// have; every such rule must have one, so an experiment that crashes cannot leave a
    /// fault behind for longer. Also the longest `after` (delay before a rule starts).
    /// Default "1h", at most "7d".
    #[schemars(with = "Option<DurationValue>")]
    pub fault_max_ttl: Option<Spanned<DurationValue>>,
    /// Fault rules made through the API in force at once, at most; past it, creating one is
    /// refused (409). Default 64, at most 10000.
    #[schemars(with = "Option<u32>")]
    pub max_faults: Option<Spanned<u32>>,
}
