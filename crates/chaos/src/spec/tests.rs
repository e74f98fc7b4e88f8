use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A running system and one failure: the smallest spec, with `extra` appended.
fn running(extra: &str) -> String {
    format!(
        r#"
[system]
traffic = "http://127.0.0.1:8080"
admin = "http://127.0.0.1:9901"

[load]
rate = 50
duration = "30s"

[[failure]]
name = "payments-down"
failure = "payment service down"
required_behaviour = "checkout degrades gracefully"
acceptable_degradation = "card payments off"
design = "breaker, fallback"
start = "5s"
duration = "10s"
cause = {{ fault = {{ cluster = "payments", abort = {{ status = 503 }} }} }}
{extra}"#
    )
}

fn errors(source: &str) -> Vec<String> {
    match Spec::parse(source, Path::new("t.toml")) {
        Ok(spec) => panic!("expected errors, got {spec:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

fn line_of(source: &str, needle: &str) -> usize {
    let at = source.find(needle).expect("the needle is in the source");
    source[..at].matches('\n').count() + 1
}

fn shop_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/shop.toml")
}

#[test]
fn the_shop_example_holds_the_issues_four_rows() {
    let spec = Spec::load(&shop_path()).unwrap_or_else(|errors| panic!("{errors}"));
    let rows: Vec<_> = spec
        .failures
        .iter()
        .map(|failure| failure.failure.as_str())
        .collect();
    assert_eq!(
        rows,
        [
            "one zone down",
            "payment service down",
            "cache down",
            "analytics down"
        ]
    );
    let System::Topology(topology) = &spec.system else {
        panic!("the shop is a topology verify starts");
    };
    assert_eq!(topology.services.len(), 6);
    assert!(
        matches!(&topology.blastwall, BlastwallConfig::Path(path) if path.ends_with("shop.blastwall.toml"))
    );
    assert_eq!(spec.load.requests.len(), 4);
    assert_eq!(spec.load.headers[0].share, 0.2);
    assert_eq!(
        spec.steady_state[0].metric,
        Metric::Availability { at_least: 0.999 }
    );
    let payments = &spec.failures[1];
    assert!(
        matches!(&payments.cause, Cause::Behaviour { service, behaviour } if service == "payments" && behaviour.failure_rate == 1.0)
    );
    assert!(payments.expectations.contains(&Expectation {
        metric: Metric::FallbackShare {
            kind: Some("static".into()),
            at_least: Some(0.9),
            at_most: None
        },
        window: Window::Fault,
        scope: Scope::Route("payments".into()),
    }));
    let cache = &spec.failures[2];
    assert_eq!(cache.cause, Cause::Stop("cache".into()));
    assert!(
        cache
            .expectations
            .iter()
            .any(|expectation| expectation.metric
                == Metric::Latency {
                    quantile: Quantile::P95,
                    at_most: Duration::from_millis(400)
                })
    );
}

#[test]
fn a_running_system_with_a_fault_rule_parses_into_the_admin_apis_body() {
    let spec =
        Spec::parse(&running(""), Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(spec.name, "t");
    let Cause::Fault(body) = &spec.failures[0].cause else {
        panic!("a fault rule");
    };
    assert_eq!(
        serde_json::Value::Object(body.clone()),
        serde_json::json!({"cluster": "payments", "abort": {"status": 503}})
    );
    assert_eq!(spec.failures[0].start, Duration::from_secs(5));
    assert_eq!(
        spec.load.requests[0].path, "/",
        "the default request is GET /"
    );
}

#[test]
fn an_unknown_key_is_refused_at_its_line_and_column() {
    let source = running("[[failure.expect]]\nmetric = \"p99\"\nat_most = \"1s\"\nbogus = 1\n");
    let errors = errors(&source);
    let line = line_of(&source, "bogus");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("t.toml:{line}:1: unknown field `bogus`")),
        "{errors:?}"
    );
}

#[test]
fn a_bound_that_does_not_apply_to_its_metric_is_refused_not_ignored() {
    let source = running(
        "[[failure.expect]]\nmetric = \"availability\"\nat_least = \"99%\"\nat_most = \"1s\"\n",
    );
    let errors = errors(&source);
    let line = line_of(&source, "at_most = \"1s\"");
    assert_eq!(
        errors,
        [format!(
            "t.toml:{line}:11: `at_most` does not apply to `availability`, which takes `at_least`"
        )]
    );
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let source = running(
        "[[failure.expect]]\nmetric = \"p42\"\n\n[[failure.expect]]\nmetric = \"availability\"\nat_least = \"120%\"\n\n[[failure.expect]]\nmetric = \"error_rate\"\nduring = \"later\"\nat_most = 0.1\n",
    );
    let errors = errors(&source).join("\n");
    assert!(errors.contains("unknown metric \"p42\""), "{errors}");
    assert!(
        errors.contains("`at_least`: a share from 0% to 100%"),
        "{errors}"
    );
    assert!(
        errors.contains("`during`: `run`, `fault` or `recovery`"),
        "{errors}"
    );
}

#[test]
fn a_fault_that_outlasts_the_load_is_refused() {
    let source = running("").replace("duration = \"10s\"", "duration = \"40s\"");
    let errors = errors(&source);
    assert!(
        errors[0].contains("the fault ends at 45s, after the load's 30s"),
        "{errors:?}"
    );
}

#[test]
fn a_recovery_needs_load_left_after_the_fault() {
    let source = running("[[failure.expect]]\nmetric = \"time_to_recover\"\nat_most = \"5s\"\n")
        .replace("duration = \"10s\"", "duration = \"25s\"");
    assert!(errors(&source)[0].contains("a recovery cannot be measured"));
}

#[test]
fn a_fault_rule_leaves_its_timing_to_the_failure_and_names_one_target() {
    let with_ttl = running("").replace("abort = {", "ttl = \"1m\", abort = {");
    assert!(errors(&with_ttl)[0].contains("a fault rule here has no `ttl`"));
    let no_target = running("").replace("cluster = \"payments\", ", "");
    assert!(errors(&no_target)[0].contains("exactly one `route` or `cluster`"));
    let no_action = running("").replace(", abort = { status = 503 }", "");
    assert!(errors(&no_action)[0].contains("a fault rule does something"));
}

#[test]
fn a_cause_is_exactly_one_thing() {
    let source = running("").replace("cause = {", "cause = { kill = \"x\",");
    assert!(errors(&source)[0].contains("`cause`: exactly one of"));
}

#[test]
fn killing_a_process_needs_a_topology_that_started_it() {
    let source = running("").replace(
        "cause = { fault = { cluster = \"payments\", abort = { status = 503 } } }",
        "cause = { kill = \"payments\" }",
    );
    assert!(errors(&source)[0].contains("only a topology ([[system.service]]) has them"));
}

#[test]
fn a_toxic_is_checked_as_toxiproxy_checks_it() {
    let source = running("")
        .replace(
            "admin = ",
            "toxiproxy = \"http://127.0.0.1:8474\"\nadmin = ",
        )
        .replace(
            "cause = { fault = { cluster = \"payments\", abort = { status = 503 } } }",
            "cause = { toxic = { proxy = \"redis\", type = \"laggy\" } }",
        );
    assert!(
        errors(&source)[0].contains("not a Toxiproxy toxic"),
        "{:?}",
        errors(&source)
    );
    let good = source.replace("laggy", "latency");
    let spec = Spec::parse(&good, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(matches!(&spec.failures[0].cause, Cause::Toxic { proxy, .. } if proxy == "redis"));
}

#[test]
fn a_system_is_a_topology_or_a_running_system_not_both() {
    let source = running("").replace("[system]\n", "[system]\nblastwall = {}\n");
    assert!(errors(&source)[0].contains("not both"));
}

const TOPOLOGY: &str = r#"
[system]
blastwall = { cluster = { api = { endpoints = [{ address = "{service:api}" }] } } }
[[system.service]]
name = "api"
behaviour = { latency = "5ms" }

[load]
rate = 10
duration = "10s"

[[failure]]
name = "api-slow"
failure = "api slow"
required_behaviour = "answers within 1s"
acceptable_degradation = "p99 up"
design = "timeouts"
start = "2s"
duration = "5s"
cause = { behaviour = { service = "api", latency = "2s" } }
"#;

#[test]
fn an_inline_config_and_a_behaviour_change_parse_for_a_topology() {
    let spec =
        Spec::parse(TOPOLOGY, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    let System::Topology(topology) = &spec.system else {
        panic!("a topology");
    };
    assert!(
        matches!(&topology.blastwall, BlastwallConfig::Inline(text) if text.contains("{service:api}"))
    );
    assert!(
        matches!(&spec.failures[0].cause, Cause::Behaviour { behaviour, .. } if behaviour.latency == Duration::from_secs(2))
    );
}

#[test]
fn a_config_that_names_an_unknown_service_is_refused() {
    let source = TOPOLOGY.replace("{service:api}", "{service:apu}");
    assert!(errors(&source)[0].contains("no [[system.service]] is named \"apu\""));
}

#[test]
fn a_behaviour_the_mock_would_refuse_is_refused_at_its_place() {
    let source = TOPOLOGY.replace("latency = \"5ms\"", "failure_rate = 2.0");
    let errors = errors(&source);
    let line = line_of(&source, "failure_rate");
    assert!(
        errors[0].starts_with(&format!("t.toml:{line}:")),
        "{errors:?}"
    );
    assert!(errors[0].contains("not a mock behaviour"), "{errors:?}");
}

#[test]
fn a_spec_is_told_from_a_proxy_config_by_its_top_level_keys() {
    assert!(Spec::looks_like_spec(TOPOLOGY));
    assert!(!Spec::looks_like_spec(
        "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n"
    ));
    assert!(!Spec::looks_like_spec("not toml ["));
}

#[test]
fn the_published_json_schema_is_current() {
    let path = shop_path().with_file_name("spec.schema.json");
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    assert!(
        published == Spec::json_schema(),
        "examples/specs/spec.schema.json is stale: regenerate it with `blastwall check --spec-schema > examples/specs/spec.schema.json`"
    );
}

#[test]
fn the_json_schema_describes_the_spec() {
    let schema = Spec::json_schema();
    assert_eq!(schema["title"], "Blastwall fault-tolerance spec");
    for key in ["system", "load", "steady_state", "failure"] {
        assert!(schema["properties"].get(key).is_some(), "{key} in {schema}");
    }
}

#[test]
fn the_steady_state_is_not_about_a_failure() {
    let source = running(
        "[[steady_state]]\nmetric = \"time_to_detect\"\nsignal = \"breaker_open\"\nat_most = \"1s\"\n",
    );
    assert!(errors(&source)[0].contains("it belongs in a [[failure.expect]]"));
    let during =
        running("[[steady_state]]\nmetric = \"p99\"\nduring = \"fault\"\nat_most = \"1s\"\n");
    assert!(errors(&during)[0].contains("no `during`"));
}

#[test]
fn a_header_mix_cannot_give_one_header_to_more_than_every_request() {
    let source = running(
        "[[load.header]]\nname = \"x-blastwall-priority\"\nvalue = \"high\"\nshare = \"60%\"\n[[load.header]]\nname = \"x-blastwall-priority\"\nvalue = \"low\"\nshare = 0.5\n",
    );
    assert!(errors(&source)[0].contains("add up to more than 100%"));
}

#[test]
fn a_running_systems_urls_are_http_urls() {
    let source = running("").replace("http://127.0.0.1:8080", "127.0.0.1:8080");
    assert!(errors(&source)[0].contains("`traffic`: an http:// URL"));
    let tls = running("").replacen("http://127.0.0.1:8080", "https://shop.example", 1);
    assert!(
        errors(&tls)[0].contains("https:// is not built yet"),
        "{:?}",
        errors(&tls)
    );
}

proptest::proptest! {
    /// The shop spec with any part of it replaced: a spec or located errors, never a panic.
    #[test]
    fn a_mangled_spec_is_refused_with_errors_inside_the_text(
        start in 0usize..6000,
        length in 0usize..40,
        insert in "[ -~\n]{0,12}",
    ) {
        let path = shop_path();
        let source = std::fs::read_to_string(&path).expect("the shop spec is readable");
        let start = (0..=start.min(source.len())).rev().find(|at| source.is_char_boundary(*at)).unwrap_or(0);
        let end = (start + length).min(source.len());
        let end = (end..=source.len()).find(|at| source.is_char_boundary(*at)).unwrap_or(source.len());
        let mangled = format!("{}{insert}{}", &source[..start], &source[end..]);
        if let Err(errors) = Spec::parse(&mangled, &path) {
            let lines = mangled.lines().count().max(1);
            for error in &errors.0 {
                if let Some((line, column)) = error.at {
                    proptest::prop_assert!(line >= 1 && line <= lines + 1 && column >= 1, "{error}");
                }
            }
        }
    }
}

#[test]
fn a_class_scope_needs_the_load_to_send_that_class() {
    let expect =
        "[[failure.expect]]\nmetric = \"availability\"\nclass = \"high\"\nat_least = \"99%\"\n";
    let source = running(expect);
    let found = errors(&source);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("the load sends no request of that class"),
        "{found:?}"
    );
    assert!(
        found[0].contains(&format!(":{}:", line_of(&source, "class = \"high\""))),
        "{found:?}"
    );
    let sent = source.replace(
        "[[failure]]",
        "[[load.header]]\nname = \"x-blastwall-priority\"\nvalue = \"high\"\nshare = \"10%\"\n\n[[failure]]",
    );
    Spec::parse(&sent, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    let normal = running(&expect.replace("high", "normal"));
    Spec::parse(&normal, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
}

#[test]
fn a_topologys_config_may_be_written_in_the_spec_as_a_multi_line_string() {
    let source = r#"
[system]
blastwall = """
[[listener]]
name = "public"
listen = "127.0.0.1:0"
"""

[[system.service]]
name = "api"

[load]
rate = 10
duration = "5s"

[[failure]]
name = "api-down"
failure = "-"
required_behaviour = "-"
acceptable_degradation = "-"
design = "-"
start = "1s"
duration = "1s"
cause = { kill = "api" }
"#;
    let spec = Spec::parse(source, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    let System::Topology(topology) = spec.system else {
        panic!("a topology")
    };
    assert!(
        matches!(&topology.blastwall, BlastwallConfig::Inline(text) if text.contains("[[listener]]"))
    );
    let start = source.find("blastwall = ").expect("the key");
    let end = source.find("\"\"\"\n\n").expect("the string's end") + 4;
    let path = format!(
        "{}blastwall = \"missing.toml\"\n{}",
        &source[..start],
        &source[end..]
    );
    let found = errors(&path);
    assert!(
        found.iter().any(|error| error.contains("cannot read")),
        "{found:?}"
    );
}

#[test]
fn a_running_systems_route_scope_needs_a_request_that_names_the_route() {
    let expect =
        "[[failure.expect]]\nmetric = \"availability\"\nroute = \"checkout\"\nat_least = \"99%\"\n";
    let source = running(expect);
    let found = errors(&source);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("no [[load.request]] names it"),
        "{found:?}"
    );
    assert!(
        found[0].contains(&format!(":{}:", line_of(&source, "route = \"checkout\""))),
        "{found:?}"
    );
    let named = source.replace(
        "[[failure]]",
        "[[load.request]]\npath = \"/checkout\"\nroute = \"checkout\"\n\n[[failure]]",
    );
    let spec = Spec::parse(&named, Path::new("t.toml")).unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(spec.load.requests[0].route.as_deref(), Some("checkout"));
}

#[test]
fn a_spec_past_what_one_load_generator_can_do_is_refused_not_a_panic() {
    for (from, to, says) in [
        ("rate = 50", "rate = 4000000000", "`rate`: from 1 to 100000"),
        (
            "duration = \"30s\"",
            "duration = \"100years\"",
            "at most 1day",
        ),
        (
            "rate = 50\nduration = \"30s\"",
            "rate = 1000\nduration = \"4h\"",
            "at most 10000000 requests an experiment",
        ),
        (
            "start = \"5s\"",
            "start = \"18446744073709551615s\"",
            "it must end within the load",
        ),
    ] {
        let source = running("").replacen(from, to, 1);
        let found = errors(&source);
        assert!(
            found.iter().any(|error| error.contains(says)),
            "{to}: {found:?}"
        );
    }
    let headers: String = (0..33)
        .map(|index| {
            format!("[[load.header]]\nname = \"x-h{index}\"\nvalue = \"v\"\nshare = 0.5\n\n")
        })
        .collect();
    let source = running("").replacen("[[failure]]", &format!("{headers}[[failure]]"), 1);
    let found = errors(&source);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("at most 32 [[load.header]]"), "{found:?}");
}

#[test]
fn a_fault_cannot_start_before_the_steady_state_has_requests_to_judge() {
    let source = running("").replacen("start = \"5s\"", "start = \"0s\"", 1);
    let found = errors(&source);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("`start`: at least 1s"), "{found:?}");
}
