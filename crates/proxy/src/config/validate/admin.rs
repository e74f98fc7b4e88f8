//! Validation of `[admin]`: the address parses (or is "off"), exactly one way of giving the
//! token, the token's variable is set, a listener off loopback has a token, and its limits
//! are more than zero.

use toml::Spanned;

use super::{Checker, duration_or};
use crate::config::admin::{AdminConfig, AdminToken};
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
    if config.fault_max_ttl.is_zero()
        && let Some(span) = span
    {
        check.error_at(span, "[admin] fault_max_ttl must be more than zero");
    }
    match section.max_faults {
        Some(0) => check.error(
            "[admin] max_faults must be at least 1 (the kill switch, DELETE /admin/faults, turns faults off)",
        ),
        Some(cap) => config.max_faults = cap as usize,
        None => {}
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
