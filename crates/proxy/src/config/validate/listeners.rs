//! `[[listener]]` sections: where traffic is accepted, with which TLS identity, and the
//! limits that protect the proxy from its clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use toml::Spanned;

use super::{Checker, duration_or, resolve_file, size_or};
use crate::config::file::{self, ListenerSection};
use crate::config::tls::{self, TlsFile};
use crate::config::values::{DurationValue, RateValue};
use crate::config::{ListenerConfig, ListenerLimits, MinDataRate, TlsConfig};

const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;
const DEFAULT_MAX_HEADER_BYTES: u64 = 16 * 1024;
const DEFAULT_MAX_HEADERS: u32 = 100;
const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MIN_DATA_RATE: u64 = 256;
const DEFAULT_MIN_DATA_RATE_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The `[[listener]]` sections: names and addresses unique, each with its TLS identity and
/// its limits.
pub(super) fn listeners(
    check: &mut Checker<'_>,
    sections: Vec<ListenerSection>,
) -> Vec<ListenerConfig> {
    let mut names: HashMap<String, ()> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, String> = HashMap::new();
    let mut listeners = Vec::new();
    for mut section in sections {
        let name = section.name.get_ref().clone();
        if name.is_empty() {
            check.error_at(section.name.span(), "listener name must not be empty");
        } else if names.insert(name.clone(), ()).is_some() {
            check.error_at(
                section.name.span(),
                format!("a listener named \"{name}\" is already defined"),
            );
        }
        let listen = match section.listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                check.error_at(
                    section.listen.span(),
                    format!(
                        "invalid listen address \"{}\": expected ip:port, like \"0.0.0.0:8080\" or \"[::]:8080\"",
                        section.listen.get_ref()
                    ),
                );
                continue;
            }
        };
        // Port 0 asks the system for a free port, different each time: never a clash.
        if listen.port() != 0
            && let Some(other) = addresses.insert(listen, name.clone())
        {
            check.error_at(
                section.listen.span(),
                format!("listener \"{other}\" already listens on {listen}"),
            );
        }
        let tls = section
            .tls
            .take()
            .and_then(|tls| self::tls(check, &name, &tls));
        let limits = limits(check, &name, &mut section);
        listeners.push(ListenerConfig {
            name,
            listen,
            listen_location: check.location(section.listen.span()),
            max_connections_location: section
                .max_connections
                .as_ref()
                .map(|value| check.location(value.span())),
            tls,
            limits,
        });
    }
    listeners
}

/// A listener's limits on its clients, defaults filled in; a limit that would refuse every
/// request is an error.
fn limits(check: &mut Checker<'_>, name: &str, section: &mut ListenerSection) -> ListenerLimits {
    let limits = ListenerLimits {
        max_connections: positive(
            check,
            section
                .max_connections
                .as_ref()
                .map(|value| *value.get_ref()),
            DEFAULT_MAX_CONNECTIONS,
            "max_connections",
        ) as usize,
        max_header_bytes: usize::try_from(size_or(
            check,
            section.max_header_bytes.take(),
            DEFAULT_MAX_HEADER_BYTES,
        ))
        .unwrap_or(usize::MAX),
        max_headers: positive(
            check,
            section.max_headers,
            DEFAULT_MAX_HEADERS,
            "max_headers",
        ) as usize,
        max_request_body: size_or(
            check,
            section.max_request_body.take(),
            DEFAULT_MAX_REQUEST_BODY,
        ),
        header_read_timeout: duration_or(
            check,
            section.header_read_timeout.take(),
            DEFAULT_HEADER_READ_TIMEOUT,
        ),
        idle_timeout: duration_or(check, section.idle_timeout.take(), DEFAULT_IDLE_TIMEOUT),
        max_requests_per_connection: section
            .max_requests_per_connection
            .and_then(NonZeroU32::new),
        request_body_timeout: duration_or(
            check,
            section.request_body_timeout.take(),
            DEFAULT_REQUEST_BODY_TIMEOUT,
        ),
        send_timeout: duration_or(check, section.send_timeout.take(), DEFAULT_SEND_TIMEOUT),
        min_data_rate: min_data_rate(
            check,
            section.min_data_rate.take(),
            section.min_data_rate_grace.take(),
        ),
        http2_max_concurrent_streams: positive(
            check,
            section.http2_max_concurrent_streams,
            DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            "http2_max_concurrent_streams",
        ),
        escaped_slashes: section.escaped_slashes,
    };
    if limits.max_header_bytes < 1024 {
        check.error(format!(
            "listener \"{name}\": max_header_bytes must be at least 1KiB, or no real request fits"
        ));
    }
    if limits.header_read_timeout.is_zero()
        || limits.idle_timeout.is_zero()
        || limits.request_body_timeout.is_zero()
        || limits.send_timeout.is_zero()
    {
        check.error(format!(
            "listener \"{name}\": header_read_timeout, idle_timeout, request_body_timeout and send_timeout must be more than zero"
        ));
    }
    limits
}

/// A listener's minimum data rate: `None` when turned off ("0B/s").
fn min_data_rate(
    check: &mut Checker<'_>,
    rate: Option<Spanned<RateValue>>,
    grace: Option<Spanned<DurationValue>>,
) -> Option<MinDataRate> {
    let bytes_per_second = match rate {
        None => DEFAULT_MIN_DATA_RATE,
        Some(rate) => match &rate.get_ref().0 {
            Ok(rate) => *rate,
            Err(message) => {
                check.error_at(rate.span(), message.clone());
                DEFAULT_MIN_DATA_RATE
            }
        },
    };
    let grace = duration_or(check, grace, DEFAULT_MIN_DATA_RATE_GRACE);
    (bytes_per_second > 0).then_some(MinDataRate {
        bytes_per_second,
        grace,
    })
}

/// Resolves the certificate and key files and builds the TLS identity from them, so
/// `blastwall check` refuses what the listener could not serve, and the listener serves what
/// was checked.
fn tls(check: &mut Checker<'_>, listener: &str, section: &file::TlsSection) -> Option<TlsConfig> {
    let errors_before = check.errors.len();
    let cert = resolve_file(check, &section.cert, "certificate");
    let key = resolve_file(check, &section.key, "private key");
    if check.errors.len() > errors_before {
        return None;
    }
    match tls::load(&cert, &key) {
        Ok(identity) => Some(TlsConfig {
            cert,
            key,
            server: identity.server,
            contents: identity.contents,
        }),
        Err(error) => {
            let span = match error.file() {
                TlsFile::Certificate => section.cert.span(),
                TlsFile::Key => section.key.span(),
            };
            check.error_at(span, format!("listener \"{listener}\": {error}"));
            None
        }
    }
}

fn positive(check: &mut Checker<'_>, value: Option<u32>, default: u32, key: &str) -> u32 {
    match value {
        Some(0) => {
            check.error(format!("{key} must be at least 1"));
            default
        }
        Some(value) => value,
        None => default,
    }
}
