use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[[listener]]
name = "public"
listen = "127.0.0.1:8080"

[[route]]
cluster = "api"

[cluster.api]
endpoints = [{ address = "127.0.0.1:9001" }]
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("blastwall.toml"))
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

fn first_line(error: &str) -> &str {
    error.lines().next().unwrap_or_default()
}

#[test]
fn a_minimal_config_takes_safe_defaults() {
    let config = parse(MINIMAL).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.limits.max_headers, 100);
    assert_eq!(listener.limits.max_header_bytes, 16 * 1024);
    assert_eq!(listener.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(
        listener.limits.request_body_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(listener.limits.send_timeout, Duration::from_secs(30));
    assert_eq!(
        listener.limits.min_data_rate,
        Some(MinDataRate {
            bytes_per_second: 256,
            grace: Duration::from_secs(10)
        })
    );
    assert_eq!(listener.limits.http2_max_concurrent_streams, 100);
    assert_eq!(config.routes[0].name, "route-1");
    assert_eq!(config.routes[0].cluster, 0);
    let cluster = &config.clusters[0];
    assert_eq!(cluster.balance, BalanceConfig::PeakEwma);
    assert_eq!(cluster.connect_timeout, Duration::from_secs(1));
    assert_eq!(cluster.body_read_timeout, Duration::from_secs(60));
    assert_eq!(cluster.panic_threshold, 0.5);
    assert_eq!(config.proxy.drain_timeout, Duration::from_secs(30));
    assert_eq!(config.source.hash.len(), 16);
}

#[test]
fn the_reference_config_in_examples_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/blastwall.toml");
    let config = Config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(config.routes.len() >= 2);
    assert!(
        config.routes.iter().any(|route| !route.faults.is_empty()),
        "the reference config shows a fault rule"
    );
}

#[test]
fn an_unknown_key_is_named_with_its_line_and_column() {
    let text = MINIMAL.replace("[cluster.api]\n", "[cluster.api]\ntimout = \"1s\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1);
    assert!(
        first_line(&errors[0]).starts_with("blastwall.toml:10:1: unknown field `timout`"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("expected one of"), "{}", errors[0]);
}

#[test]
fn a_route_naming_a_missing_cluster_points_at_the_name_and_lists_the_clusters() {
    let text = MINIMAL.replace("cluster = \"api\"", "cluster = \"apii\"");
    let errors = errors(&text);
    assert_eq!(
        first_line(&errors[0]),
        "blastwall.toml:7:11: route \"route-1\" names cluster \"apii\", which does not exist (defined clusters: api)"
    );
    assert!(errors[0].ends_with("  |           ^^^^^^"), "{}", errors[0]);
}

#[test]
fn a_negative_timeout_is_refused_as_negative() {
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api]\nconnect_timeout = \"-5s\"\n",
    );
    let errors = errors(&text);
    assert!(
        first_line(&errors[0]).starts_with("blastwall.toml:10:19:"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("is negative"), "{}", errors[0]);
}

#[test]
fn a_duration_without_unit_says_how_to_write_it() {
    let text = MINIMAL.replace("[cluster.api]\n", "[cluster.api]\nrequest_timeout = 250\n");
    let errors = errors(&text);
    assert!(errors[0].contains("has no unit"), "{}", errors[0]);
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = r#"
[[listener]]
name = "public"
listen = "nowhere"

[[route]]
cluster = "missing"
match = { path_regex = "([" }

[cluster.api]
endpoints = [{ address = "not an address" }]
"#;
    let errors = errors(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].contains("invalid listen address \"nowhere\""));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("invalid endpoint address"))
    );
    assert!(errors.iter().any(|e| e.contains("which does not exist")));
    assert!(errors.iter().any(|e| e.contains("invalid path_regex")));
}

#[test]
fn duplicate_listeners_by_name_or_address_are_refused() {
    let text = MINIMAL.replace(
        "[[route]]",
        "[[listener]]\nname = \"public\"\nlisten = \"127.0.0.1:8080\"\n\n[[route]]",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("a listener named \"public\" is already defined"));
    assert!(errors[1].contains("listener \"public\" already listens on 127.0.0.1:8080"));
}

#[test]
fn consistent_hash_needs_a_key() {
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api]\nbalance = \"consistent_hash\"\n",
    );
    assert!(errors(&text)[0].contains("needs hash_on"));
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api]\nbalance = \"consistent_hash\"\nhash_on = { cookie = \"session\" }\n",
    );
    assert_eq!(
        parse(&text).unwrap().clusters[0].balance,
        BalanceConfig::ConsistentHash(HashKey::Cookie("session".into()))
    );
}

#[test]
fn endpoints_take_names_weights_zones_and_priorities() {
    let text = MINIMAL.replace(
        "endpoints = [{ address = \"127.0.0.1:9001\" }]",
        "endpoints = [\n  { address = \"payments.internal:80\", weight = 3, zone = \"a\", priority = 1 },\n  { address = \"[::1]:9002\" },\n]",
    );
    let config = parse(&text).unwrap();
    let endpoints = &config.clusters[0].endpoints;
    assert_eq!(
        endpoints[0].address,
        EndpointAddress::Dns {
            host: "payments.internal".into(),
            port: 80
        }
    );
    assert_eq!((endpoints[0].weight, endpoints[0].priority), (3, 1));
    assert_eq!(endpoints[0].zone.as_deref(), Some("a"));
    assert!(matches!(endpoints[1].address, EndpointAddress::Socket(_)));
}

#[test]
fn a_weight_out_of_range_is_refused() {
    let text = MINIMAL.replace(
        "address = \"127.0.0.1:9001\"",
        "address = \"127.0.0.1:9001\", weight = 0",
    );
    assert!(errors(&text)[0].contains("weight must be from 1 to 1000, got 0"));
}

#[test]
fn routes_parse_matchers_and_header_edits() {
    let text = MINIMAL.replace(
        "[[route]]\ncluster = \"api\"",
        r#"[[route]]
name = "checkout"
cluster = "api"
rewrite_prefix = "/"
match = { host = "*.Shop.example", path_prefix = "/checkout/", methods = ["get", "POST"], headers = { "x-canary" = "1" } }
request_headers = { add = { "x-from" = "blastwall" }, remove = ["x-debug"] }"#,
    );
    let config = parse(&text).unwrap();
    let route = &config.routes[0];
    assert_eq!(
        route.matcher.host,
        Some(HostMatch::Subdomain(".shop.example".into()))
    );
    assert!(matches!(&route.matcher.path, PathMatch::Prefix(prefix) if prefix == "/checkout/"));
    assert_eq!(route.matcher.methods, Some(vec![Method::GET, Method::POST]));
    assert_eq!(route.matcher.headers.len(), 1);
    assert_eq!(route.request_headers.add[0].0, "x-from");
    assert_eq!(route.request_headers.remove[0], "x-debug");
}

#[test]
fn rewrite_prefix_needs_a_path_prefix() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nrewrite_prefix = \"/v2\"\n",
    );
    assert!(errors(&text)[0].contains("rewrite_prefix needs match.path_prefix"));
}

#[test]
fn two_path_conditions_are_refused() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmatch = { path = \"/a\", path_prefix = \"/b\" }\n",
    );
    assert!(errors(&text)[0].contains("give only one of path, path_prefix and path_regex"));
}

#[test]
fn health_checks_parse_status_ranges_and_refuse_bad_ones() {
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api.health_check]\nkind = \"http\"\nexpected_statuses = [204, \"200-299\"]\n\n[cluster.api]\n",
    );
    // TOML forbids defining the table after its sub-table only when keys clash; this layout is valid.
    let config = parse(&text).unwrap();
    let health = config.clusters[0].health_check.as_ref().unwrap();
    assert_eq!(
        health.kind,
        HealthCheck::Http {
            path: "/healthz".into(),
            host: None,
            expected_statuses: vec![(204, 204), (200, 299)]
        }
    );
    let bad = text.replace("[204, \"200-299\"]", "[\"299-200\"]");
    assert!(errors(&bad)[0].contains("invalid expected status"));
}

#[test]
fn health_check_paths_and_hosts_must_be_sendable() {
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api.health_check]\nkind = \"http\"\npath = \"/he alth\"\nhost = \"bad\\nhost\"\n\n[cluster.api]\n",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("health_check.path must be a path"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("health_check.host must be a host name"),
        "{errors:?}"
    );
}

#[test]
fn hash_on_without_consistent_hash_is_refused() {
    let text = MINIMAL.replace(
        "[cluster.api]\n",
        "[cluster.api]\nbalance = \"round_robin\"\nhash_on = { header = \"x-user\" }\n",
    );
    assert!(errors(&text)[0].contains("hash_on only applies to balance = \"consistent_hash\""));
}

#[test]
fn missing_tls_files_are_named() {
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:8080\"\n",
        "listen = \"127.0.0.1:8080\"\ntls = { cert = \"no-such.pem\", key = \"no-such.key\" }\n",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("cannot find the certificate file"));
}

#[test]
fn no_listener_or_no_route_is_explained() {
    assert!(errors("")[0].contains("no listener"));
    let text = "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\n";
    assert!(errors(text)[0].contains("no route"));
}

#[test]
fn a_toml_syntax_error_has_its_place() {
    let errors = errors("[[listener]\nname = 1\n");
    assert!(
        first_line(&errors[0]).starts_with("blastwall.toml:1:"),
        "{}",
        errors[0]
    );
}

#[test]
fn the_published_json_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/blastwall.schema.json");
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    assert!(
        published == Config::json_schema(),
        "examples/blastwall.schema.json is stale: regenerate it with `blastwall check --schema > examples/blastwall.schema.json`"
    );
}

#[test]
fn a_misspelt_method_is_refused_rather_than_never_matching() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmatch = { methods = [\"GTE\"] }\n",
    );
    assert!(errors(&text)[0].contains("unknown method \"GTE\": expected one of GET, HEAD"));
}

#[test]
fn bad_values_are_all_reported_with_their_places() {
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:8080\"\n",
        "listen = \"127.0.0.1:8080\"\nidle_timeout = \"soon\"\nmax_request_body = \"huge\"\n",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        first_line(&errors[0]).starts_with("blastwall.toml:5:16: invalid duration \"soon\""),
        "{}",
        errors[0]
    );
    assert!(
        first_line(&errors[1]).starts_with("blastwall.toml:6:20: invalid size \"huge\""),
        "{}",
        errors[1]
    );
}

#[test]
fn a_rewrite_prefix_that_is_not_a_path_is_refused() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmatch = { path_prefix = \"/a/\" }\nrewrite_prefix = \"/b c/\"\n",
    );
    assert!(
        errors(&text)[0].contains("rewrite_prefix \"/b c/\" is not a path"),
        "{:?}",
        errors(&text)
    );
    let text = text.replace("/b c/", "v2/");
    assert!(errors(&text)[0].contains("must be empty or start with /"));
}

#[test]
fn worker_threads_is_unset_by_default_and_must_be_at_least_one() {
    assert_eq!(parse(MINIMAL).unwrap().proxy.worker_threads, None);
    let one = format!("[proxy]\nworker_threads = 1\n{MINIMAL}");
    assert_eq!(
        parse(&one).unwrap().proxy.worker_threads,
        NonZeroUsize::new(1)
    );
    let errors = errors(&format!("[proxy]\nworker_threads = 0\n{MINIMAL}"));
    assert!(
        first_line(&errors[0])
            .starts_with("blastwall.toml:2:18: worker_threads must be between 1 and 1024, not 0"),
        "{}",
        errors[0]
    );
}

#[test]
fn slow_client_limits_take_their_units_and_a_zero_rate_turns_the_rate_off() {
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:8080\"\n",
        "listen = \"127.0.0.1:8080\"\nsend_timeout = \"2s\"\nmin_data_rate = \"0B/s\"\n",
    );
    let config = parse(&text).unwrap();
    let limits = &config.listeners[0].limits;
    assert_eq!(limits.send_timeout, Duration::from_secs(2));
    assert_eq!(limits.min_data_rate, None);
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:8080\"\n",
        "listen = \"127.0.0.1:8080\"\nmin_data_rate = \"256B\"\nrequest_body_timeout = \"0s\"\n",
    );
    let errors = errors(&text);
    assert!(
        errors.iter().any(|error| error.contains("like \"256B/s\"")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|error| error.contains("request_body_timeout")),
        "{errors:?}"
    );
}

#[test]
fn encoded_slashes_are_refused_unless_the_listener_says_otherwise() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(
        config.listeners[0].limits.escaped_slashes,
        EscapedSlashes::Reject
    );
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:8080\"\n",
        "listen = \"127.0.0.1:8080\"\nescaped_slashes = \"decode\"\n",
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.listeners[0].limits.escaped_slashes,
        EscapedSlashes::Decode
    );
    let text = text.replace("\"decode\"", "\"unescape\"");
    let refused = errors(&text);
    assert!(
        first_line(&refused[0]).starts_with("blastwall.toml:5:19: unknown variant `unescape`"),
        "{refused:?}"
    );
}

#[test]
fn routes_match_paths_case_sensitively_unless_told_not_to() {
    assert!(parse(MINIMAL).unwrap().routes[0].matcher.case_sensitive);
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmatch = { path_prefix = \"/m/\", case_sensitive = false }\n",
    );
    assert!(!parse(&text).unwrap().routes[0].matcher.case_sensitive);
    let refused = errors(&text.replace("false", "\"no\""));
    assert!(
        first_line(&refused[0]).starts_with("blastwall.toml:8:"),
        "{refused:?}"
    );
}

#[test]
fn a_route_path_with_segment_parameters_is_refused_as_never_matching() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmatch = { path_prefix = \"/m;v=1/\" }\n",
    );
    let refused = errors(&text);
    assert!(
        first_line(&refused[0]).starts_with("blastwall.toml:8:25: \"/m;v=1/\" would never match"),
        "{refused:?}"
    );
}

#[test]
fn a_breaker_probed_by_health_check_needs_a_health_check() {
    let cluster = "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[route]]\ncluster = \"api\"\n[cluster.api]\nendpoints = [{ address = \"127.0.0.1:1\" }]\n";
    let breaker = "[cluster.api.circuit_breaker]\nprobe = \"health_check\"\n";
    let errors = errors(&format!("{cluster}{breaker}"));
    assert!(
        errors.iter().any(|error| error.contains(
            "circuit_breaker.probe = \"health_check\" needs a [cluster.api.health_check]"
        )),
        "{errors:?}"
    );
    let checked = "[cluster.api.health_check]\nkind = \"http\"\npath = \"/\"\n";
    let config = parse(&format!("{cluster}{breaker}{checked}")).expect("valid");
    let breaker = config.clusters[0]
        .passive
        .circuit_breaker
        .as_ref()
        .expect("a breaker");
    assert!(breaker.config().external_probes);
}

#[test]
fn a_capacity_limit_is_learnt_from_a_cluster_never_given_on_a_route() {
    let base =
        "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[route]]\ncluster = \"api\"\n";
    let cluster = "[cluster.api]\nendpoints = [{ address = \"127.0.0.1:1\" }]\n";
    let on_route = "[route.concurrency]\nadaptive = \"capacity\"\n";
    let refused = errors(&format!("{base}{on_route}{cluster}"));
    assert!(
        refused
            .iter()
            .any(|error| error
                .contains("adaptive = \"capacity\" is learnt from a cluster's endpoints")),
        "{refused:?}"
    );
    let on_cluster =
        "[cluster.api.concurrency]\nadaptive = \"capacity\"\nqueue = 5\nqueue_from = \"normal\"\n";
    let config = parse(&format!("{base}{cluster}{on_cluster}")).expect("valid");
    let concurrency = config.clusters[0].concurrency.as_ref().expect("a limit");
    assert!(matches!(
        concurrency.limit,
        admission::LimitConfig::Capacity(_)
    ));
    assert_eq!(concurrency.queue_from, admission::Priority::Normal);
    let misspelt = "[cluster.api.concurrency]\nadaptive = \"capacity\"\nqueue_from = \"urgent\"\n";
    let refused = errors(&format!("{base}{cluster}{misspelt}"));
    assert!(
        refused
            .iter()
            .any(|error| error.contains("queue_from \"urgent\" is not a priority")),
        "{refused:?}"
    );
}
