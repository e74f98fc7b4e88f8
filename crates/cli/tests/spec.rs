//! `blastwall check SPEC`: the real binary checks a fault-tolerance spec, its topology's
//! Blastwall config and the fault rules' targets in it, and prints the spec's JSON Schema.

use std::path::{Path, PathBuf};
use std::process::Command;

fn check(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_blastwall"))
        .arg("check")
        .args(args)
        .output()
        .expect("blastwall check runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/shop.toml")
}

/// The shop spec with `from` replaced by `to`, written beside its config (which it names
/// by a relative path).
fn shop_with(dir: &Path, from: &str, to: &str) -> PathBuf {
    let source = std::fs::read_to_string(shop()).expect("the shop spec is readable");
    assert!(source.contains(from), "{from:?} is in the shop spec");
    let config = shop().with_file_name("shop.blastwall.toml");
    std::fs::copy(config, dir.join("shop.blastwall.toml")).expect("copy the config");
    let path = dir.join("shop.toml");
    std::fs::write(&path, source.replacen(from, to, 1)).expect("write the spec");
    path
}

#[test]
fn the_shop_spec_and_its_blastwall_config_check_ok() {
    let (ok, text) = check(&[shop().to_str().expect("utf-8")]);
    assert!(ok, "{text}");
    assert!(
        text.contains("spec \"shop\": a topology of 6 service(s), 4 failure mode(s)"),
        "{text}"
    );
}

#[test]
fn a_broken_spec_fails_with_its_file_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(dir.path(), "at_least = \"99%\"", "at_least = \"199%\"");
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("shop.toml:"), "{text}");
    assert!(
        text.contains(": `at_least`: a share from 0% to 100%"),
        "{text}"
    );
}

#[test]
fn a_fault_rule_must_target_a_route_of_the_topologys_config() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(
        dir.path(),
        "cause = { stop = \"cache\" }",
        "cause = { fault = { route = \"basket\", abort = { status = 503 } } }",
    );
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("failure \"cache-down\": its fault rule names route \"basket\""),
        "{text}"
    );
}

#[test]
fn an_expectation_must_measure_a_route_of_the_topologys_config() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(dir.path(), "route = \"catalog\"", "route = \"catalogue\"");
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("failure \"cache-down\": an expectation measures route \"catalogue\""),
        "{text}"
    );
}

#[test]
fn a_fault_rule_the_proxy_would_refuse_fails_the_spec() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(
        dir.path(),
        "cause = { stop = \"cache\" }",
        "cause = { fault = { route = \"catalog\", abort = { status = 200 } } }",
    );
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("failure \"cache-down\": its fault rule: "),
        "{text}"
    );
    let good = shop_with(
        dir.path(),
        "cause = { stop = \"cache\" }",
        "cause = { fault = { cluster = \"cache\", delay = \"2s\", percent = 50 } }",
    );
    let (ok, text) = check(&[good.to_str().expect("utf-8")]);
    assert!(ok, "{text}");
}

#[test]
fn a_topology_config_the_proxy_refuses_fails_the_spec() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(dir.path(), "name = \"shop\"", "name = \"shop\"");
    let config = dir.path().join("shop.blastwall.toml");
    let text = std::fs::read_to_string(&config).expect("the copied config");
    std::fs::write(
        &config,
        text.replace("timeout = \"1s\"", "timeout = \"soon\""),
    )
    .expect("break the config");
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("shop.blastwall.toml:"), "{text}");
}

#[test]
fn the_spec_schema_is_printed_as_json() {
    let (ok, text) = check(&["--spec-schema"]);
    assert!(ok, "{text}");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    assert_eq!(schema["title"], "Blastwall fault-tolerance spec");
}

#[test]
fn every_example_spec_checks_ok() {
    let folder = shop().with_file_name("");
    for name in ["shop.toml", "running.toml"] {
        let (ok, text) = check(&[folder.join(name).to_str().expect("utf-8")]);
        assert!(ok, "{name}: {text}");
    }
}

#[test]
fn a_request_must_go_to_the_route_it_names_and_a_measured_route_get_requests() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(
        dir.path(),
        "path = \"/pay/card\"",
        "path = \"/pay/card\"\nroute = \"checkout\"",
    );
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("the request POST /pay/card names route \"checkout\", but")
            && text.contains("sends it to route \"payments\""),
        "{text}"
    );
    let spec = shop_with(dir.path(), "path = \"/pay/card\"", "path = \"/elsewhere\"");
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("an expectation measures route \"payments\" no request of [load] goes to"),
        "{text}"
    );
}

#[test]
fn expectations_on_decisions_need_a_proxy_that_tells_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec = shop_with(dir.path(), "name = \"shop\"", "name = \"shop\"");
    let config = dir.path().join("shop.blastwall.toml");
    let text = std::fs::read_to_string(&config).expect("the config");
    std::fs::write(
        &config,
        text.replacen("[proxy]\n", "[proxy]\ndecision_headers = \"never\"\n", 1),
    )
    .expect("config written");
    let (ok, text) = check(&[spec.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("decision_headers = \"never\""), "{text}");
}
