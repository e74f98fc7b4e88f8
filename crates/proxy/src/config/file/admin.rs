//! The `[admin]` section as written: where the admin API listens and the token it asks for.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// The admin API and dashboard: JSON over HTTP on a listener of its own.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
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
}
