//! File descriptors: the one resource every listener shares, so the one whose exhaustion
//! stops them all at once.
//!
//! Every client connection is a descriptor, and so is the upstream connection it may hold,
//! every idle pooled connection, every admin connection, and the proxy's own sockets and
//! files. When they run out, `accept` fails on every listener alike (the traffic listener
//! stopped answering in issue #15 while half-sent admin requests held the descriptors).
//! So the limit is raised as far as the process may ([`raise_open_file_limit`], the soft
//! limit up to the hard one, at start), and a config is checked against it ([`check`]):
//!
//! - **refused** when a `max_connections` the operator wrote cannot fit: the file
//!   contradicts the host, the fix is one of two numbers, and at a reload the old config
//!   simply keeps serving;
//! - **a loud warning** when only defaults overcommit: the default 10000 must not stop a
//!   proxy from starting on a host with a smaller limit, where it ran before; the warning
//!   says which number to set.
//!
//! The need is an estimate ("~"), and deliberately a generous one: each client connection
//! counted twice (itself and one upstream connection), every pool full of idle
//! connections, one health check per endpoint, the admin cap, and a margin for the rest.

use std::io;

use crate::config::{Config, ConfigError};

/// Descriptors for everything not counted per connection: listening sockets, the runtime's
/// event queue and wakers, signal pipes, log and config files, DNS lookups.
pub(crate) const MARGIN: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the soft limit now.
pub fn raise_open_file_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The soft open-file limit in force; `None` when unlimited or unknown.
pub(crate) fn open_file_limit() -> Option<u64> {
    let (soft, _) = rlimit::Resource::NOFILE.get().ok()?;
    (soft != rlimit::INFINITY).then_some(soft)
}

/// The descriptors a config may need at its busiest, by where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Need {
    /// Client connections: the sum of the listeners' `max_connections`.
    pub clients: u64,
    /// One upstream connection per client connection.
    pub upstream: u64,
    /// Idle pooled connections (`max_idle_per_endpoint` for every endpoint) and one health
    /// check per endpoint.
    pub pools: u64,
    /// The admin listener's connection cap.
    pub admin: u64,
}

impl Need {
    /// What `config` may need.
    pub(crate) fn of(config: &Config) -> Self {
        let clients: u64 = config
            .listeners
            .iter()
            .map(|listener| listener.limits.max_connections as u64)
            .sum();
        let pools = config
            .clusters
            .iter()
            .map(|cluster| {
                let endpoints = cluster.endpoints.len() as u64;
                endpoints * (cluster.max_idle_per_endpoint as u64 + 1)
            })
            .sum();
        let admin = config
            .admin
            .listen
            .map_or(0, |_| config.admin.max_connections as u64);
        Self {
            clients,
            upstream: clients,
            pools,
            admin,
        }
    }

    /// All of it, with the [`MARGIN`].
    pub(crate) fn total(&self) -> u64 {
        self.clients + self.upstream + self.pools + self.admin + MARGIN
    }
}

/// [`check`] against the soft limit in force, the warning logged: whether `config` may be
/// put in force.
pub(crate) fn fits_open_file_limit(config: &Config) -> Result<(), ConfigError> {
    let Some(limit) = open_file_limit() else {
        return Ok(());
    };
    if let Some(warning) = check(config, limit)? {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Whether `config` fits `limit` open files: `Ok(None)` if it does, `Ok(Some(warning))` if
/// only defaults overcommit, an error at the largest `max_connections` written otherwise.
pub(crate) fn check(config: &Config, limit: u64) -> Result<Option<String>, ConfigError> {
    let need = Need::of(config);
    let total = need.total();
    if total <= limit {
        return Ok(None);
    }
    let advice = format!(
        "(clients {}, upstream {}, pools and health checks {}, admin {}, other {MARGIN}): lower max_connections, or raise the limit (ulimit -n, LimitNOFILE= under systemd)",
        need.clients, need.upstream, need.pools, need.admin
    );
    let written = config
        .listeners
        .iter()
        .filter_map(|listener| Some((listener, listener.max_connections_location.as_ref()?)))
        .max_by_key(|(listener, _)| listener.limits.max_connections);
    if let Some((listener, location)) = written {
        return Err(ConfigError {
            path: config.source.path.clone(),
            location: Some(location.clone()),
            message: format!(
                "max_connections = {} on listener {:?} needs ~{total} descriptors but the open-file limit is {limit} {advice}",
                listener.limits.max_connections, listener.name
            ),
        });
    }
    let largest = config
        .listeners
        .iter()
        .max_by_key(|listener| listener.limits.max_connections);
    Ok(largest.map(|listener| {
        format!(
            "the default max_connections = {} on listener {:?} needs ~{total} descriptors but the open-file limit is {limit}: past it, accepts fail on every listener {advice}",
            listener.limits.max_connections, listener.name
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(listener_keys: &str) -> Config {
        let text = format!(
            r#"
[admin]
listen = "127.0.0.1:0"
max_connections = 10

[[listener]]
name = "public"
listen = "127.0.0.1:0"
{listener_keys}

[[route]]
cluster = "api"

[cluster.api]
max_idle_per_endpoint = 4
endpoints = [{{ address = "127.0.0.1:9" }}, {{ address = "127.0.0.1:10" }}]
"#
        );
        Config::parse(&text, Path::new("blastwall.toml")).expect("a valid config")
    }

    #[test]
    fn the_need_counts_clients_twice_pools_admin_and_a_margin() {
        let need = Need::of(&config("max_connections = 100"));
        assert_eq!(
            need,
            Need {
                clients: 100,
                upstream: 100,
                pools: 10,
                admin: 10,
            }
        );
        assert_eq!(need.total(), 284);
    }

    #[test]
    fn a_written_max_connections_that_cannot_fit_is_refused_at_its_place() {
        let config = config("max_connections = 100");
        assert_eq!(check(&config, 284), Ok(None));
        let error = check(&config, 283).expect_err("refused");
        assert!(
            error.message.starts_with(
                "max_connections = 100 on listener \"public\" needs ~284 descriptors but the open-file limit is 283"
            ),
            "{}",
            error.message
        );
        assert_eq!(error.location.map(|at| at.line), Some(9));
    }

    #[test]
    fn a_default_max_connections_that_cannot_fit_is_only_a_warning() {
        let warning = check(&config(""), 1024)
            .expect("not refused")
            .expect("a warning");
        assert!(
            warning.contains("default max_connections = 10000 on listener \"public\""),
            "{warning}"
        );
    }
}
