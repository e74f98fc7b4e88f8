//! Validation of `[admin]`: the address parses (or is "off"), exactly one way of giving the
//! token, the token's variable is set, a listener off loopback has a token, and its limits
//! are more than zero and bounded (a fault made at run time ends within two weeks).

use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::admin::{AdminConfig, AdminToken, MAX_FAULT_MAX_TTL, MAX_MAX_FAULTS};
use crate::config::file::AdminSection;

/// The typed admin settings; errors are reported at their place.
pub(super) fn admin(check: &mut Checker<'_>, section: Option<AdminSection>) -> AdminConfig {
    let mut config = AdminConfig::default();
    let Some(section) = section else {
        return config;
    };
    if let Some(listen) = &section.listen {
        config.listen_explicit = true;
        config.listen_location = Some(check.location(listen.span()));
        let written = listen.get_ref().trim();
        config.listen = if written.eq_ignore_ascii_case("off") {
            None
        } else {
            match written.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    check.error_at(
                        listen.span(),
                        format!(
                            "admin listen \"{written}\" is not an address:port (like \"127.0.0.1:9901\") or \"off\""
                        ),
                    );
                    None
                }
            }
        };
    }
    config.token = token(check, section.token, section.token_env);
    match section.max_connections {
        Some(0) => check.error("[admin] max_connections must be at least 1"),
        Some(cap) => config.max_connections = cap as usize,
        None => {}
    }
    let span = section.header_read_timeout.as_ref().map(Spanned::span);
    config.header_read_timeout = duration_or(
        check,
        section.header_read_timeout,
        config.header_read_timeout,
    );
    if config.header_read_timeout.is_zero()
        && let Some(span) = span
    {
        check.error_at(span, "[admin] header_read_timeout must be more than zero");
    }
    let span = section.fault_max_ttl.as_ref().map(Spanned::span);
    config.fault_max_ttl = duration_or(check, section.fault_max_ttl, config.fault_max_ttl);
    if let Some(span) = span {
        if config.fault_max_ttl.is_zero() {
            check.error_at(span, "[admin] fault_max_ttl must be more than zero");
        } else if config.fault_max_ttl > MAX_FAULT_MAX_TTL {
            check.error_at(
                span,
                format!(
                    "[admin] fault_max_ttl must be at most {}s (7 days): a fault made at run time must end by itself",
                    MAX_FAULT_MAX_TTL.as_secs()
                ),
            );
            config.fault_max_ttl = MAX_FAULT_MAX_TTL;
        }
    }
    if let Some(cap) = section.max_faults {
        let span = cap.span();
        match cap.into_inner() {
            0 => check.error_at(
                span,
                "[admin] max_faults must be at least 1 (the kill switch, DELETE /admin/faults, turns faults off)",
            ),
            cap if cap > MAX_MAX_FAULTS => check.error_at(
                span,
                format!("[admin] max_faults must be at most {MAX_MAX_FAULTS}"),
            ),
            cap => config.max_faults = cap as usize,
        }
    }
    if let (Some(addr), None) = (config.listen, &config.token)
        && !addr.ip().is_loopback()
    {
        let message = format!(
            "the admin listener on {addr} is reachable off this host but has no token: set [admin] token_env (or token), or listen on 127.0.0.1"
        );
        match &section.listen {
            Some(listen) => check.error_at(listen.span(), message),
            None => check.error(message),
        }
    }
    config
}

fn token(
    check: &mut Checker<'_>,
    token: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
) -> Option<AdminToken> {
    match (token, token_env) {
        (Some(_), Some(env)) => {
            check.error_at(
                env.span(),
                "give the admin token one way: token or token_env, not both",
            );
            None
        }
        (Some(token), None) if token.get_ref().trim().is_empty() => {
            check.error_at(token.span(), "the admin token is empty");
            None
        }
        (Some(token), None) => Some(AdminToken::new(token.into_inner())),
        (None, Some(env)) => match std::env::var(env.get_ref()) {
            Ok(value) if !value.trim().is_empty() => Some(AdminToken::new(value)),
            Ok(_) => {
                check.error_at(
                    env.span(),
                    format!("the environment variable {} is empty", env.get_ref()),
                );
                None
            }
            Err(_) => {
                check.error_at(
                    env.span(),
                    format!(
                        "the environment variable {} (the admin token) is not set",
                        env.get_ref()
                    ),
                );
                None
            }
        },
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn errors(admin: &str) -> Vec<String> {
        let text = format!(
            "[admin]\n{admin}\n\n[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:0\"\n\n[[route]]\ncluster = \"api\"\n\n[cluster.api]\nendpoints = [{{ address = \"127.0.0.1:9\" }}]\n"
        );
        match Config::parse(&text, Path::new("blastwall.toml")) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_fault_max_ttl_past_a_week_is_refused_at_its_place() {
        let found = errors("fault_max_ttl = \"30days\"");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("blastwall.toml:2:17:"), "{}", found[0]);
        assert!(found[0].contains("at most 604800s"), "{}", found[0]);
        assert!(errors("fault_max_ttl = \"7days\"").is_empty());
    }

    #[test]
    fn max_faults_past_ten_thousand_or_zero_is_refused_at_its_place() {
        let found = errors("max_faults = 10001");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("blastwall.toml:2:14:"), "{}", found[0]);
        assert!(found[0].contains("at most 10000"), "{}", found[0]);
        let found = errors("max_faults = 0");
        assert!(found[0].starts_with("blastwall.toml:2:14:"), "{}", found[0]);
        assert!(errors("max_faults = 10000").is_empty());
    }
}
