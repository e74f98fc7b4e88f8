//! Validation of `[access_log]` and `[tracing]`: ratios within 0..1, a collector URL that
//! plain HTTP can reach, a log path resolved against the config file's folder.

use std::path::Path;

use toml::Spanned;

use super::Checker;
use crate::config::file::telemetry::{AccessLogSection, RatioValue, TracingSection};
use crate::config::telemetry::{AccessLogConfig, AccessLogTarget, TelemetryConfig, TracingConfig};

const DEFAULT_SERVICE_NAME: &str = "blastwall";
const DEFAULT_OTLP_PATH: &str = "/v1/traces";

/// The typed `[access_log]` and `[tracing]`.
pub(super) fn telemetry(
    check: &mut Checker<'_>,
    access_log: Option<AccessLogSection>,
    tracing: Option<TracingSection>,
) -> TelemetryConfig {
    TelemetryConfig {
        access_log: access_log.and_then(|section| self::access_log(check, section)),
        tracing: tracing.and_then(|section| self::tracing(check, section)),
    }
}

fn access_log(check: &mut Checker<'_>, section: AccessLogSection) -> Option<AccessLogConfig> {
    let sample = ratio(check, section.sample, "access_log.sample");
    let path = section.path?;
    let text = path.get_ref().trim();
    let target = if text.is_empty() {
        check.error_at(
            path.span(),
            "access_log.path is empty: give a file or \"stdout\", or remove the key to turn the access log off",
        );
        return None;
    } else if text == "stdout" {
        AccessLogTarget::Stdout
    } else {
        let file = Path::new(text);
        AccessLogTarget::File(if file.is_relative() {
            check.path.parent().unwrap_or(Path::new(".")).join(file)
        } else {
            file.to_owned()
        })
    };
    Some(AccessLogConfig { target, sample })
}

fn tracing(check: &mut Checker<'_>, section: TracingSection) -> Option<TracingConfig> {
    let sample = ratio(check, section.sample, "tracing.sample");
    let endpoint = section.otlp_endpoint?;
    let Some((collector, path)) = collector(endpoint.get_ref()) else {
        check.error_at(
            endpoint.span(),
            format!(
                "otlp_endpoint \"{}\" is not a plain HTTP URL with a host and port, like \"http://127.0.0.1:4318\"",
                endpoint.get_ref()
            ),
        );
        return None;
    };
    Some(TracingConfig {
        collector,
        path,
        sample,
        service_name: section
            .service_name
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
    })
}

/// `host:port` and the path of an `http://` URL; the OTLP path when the URL has none.
fn collector(url: &str) -> Option<(String, String)> {
    let uri: http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?;
    let port = authority.port_u16().unwrap_or(80);
    let path = match uri.path() {
        "" | "/" => DEFAULT_OTLP_PATH.to_owned(),
        path => path.to_owned(),
    };
    Some((format!("{}:{port}", authority.host()), path))
}

fn ratio(check: &mut Checker<'_>, value: Option<Spanned<RatioValue>>, key: &str) -> f64 {
    let Some(value) = value else { return 1.0 };
    let ratio = value.get_ref().get();
    if (0.0..=1.0).contains(&ratio) {
        ratio
    } else {
        check.error_at(
            value.span(),
            format!("{key} is {ratio}: it must be between 0 and 1 (the share of requests)"),
        );
        1.0
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::config::telemetry::AccessLogTarget;

    const BASE: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{ address = "127.0.0.1:9000" }]
"#;

    fn parse(sections: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{BASE}\n{sections}"),
            Path::new("/etc/blastwall/b.toml"),
        )
        .map_err(|errors| errors.to_string())
    }

    #[test]
    fn telemetry_is_off_unless_configured() {
        let config = parse("").unwrap();
        assert_eq!(config.telemetry, Default::default());
        let config = parse("[access_log]\nsample = 0.5\n[tracing]\nsample = 1\n").unwrap();
        assert_eq!(config.telemetry, Default::default());
    }

    #[test]
    fn access_log_paths_resolve_against_the_config_folder() {
        let config = parse("[access_log]\npath = \"logs/access.log\"\nsample = 0.25").unwrap();
        let log = config.telemetry.access_log.unwrap();
        assert_eq!(
            log.target,
            AccessLogTarget::File("/etc/blastwall/logs/access.log".into())
        );
        assert_eq!(log.sample, 0.25);
        let config = parse("[access_log]\npath = \"stdout\"\nsample = 1").unwrap();
        assert_eq!(
            config.telemetry.access_log.unwrap().target,
            AccessLogTarget::Stdout
        );
    }

    #[test]
    fn the_collector_url_gets_the_otlp_path_when_it_has_none() {
        let config = parse("[tracing]\notlp_endpoint = \"http://collector:4318\"").unwrap();
        let tracing = config.telemetry.tracing.unwrap();
        assert_eq!(tracing.collector, "collector:4318");
        assert_eq!(tracing.path, "/v1/traces");
        assert_eq!(tracing.service_name, "blastwall");
        assert_eq!(tracing.sample, 1.0);
    }

    #[test]
    fn ratios_out_of_range_and_https_collectors_are_refused_at_their_place() {
        let errors = parse("[access_log]\npath = \"stdout\"\nsample = 1.5").unwrap_err();
        assert!(
            errors.contains(":14:10") && errors.contains("between 0 and 1"),
            "{errors}"
        );
        let errors = parse("[tracing]\notlp_endpoint = \"https://c:4318\"").unwrap_err();
        assert!(
            errors.contains(":13:") && errors.contains("plain HTTP"),
            "{errors}"
        );
    }
}
