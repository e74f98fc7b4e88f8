//! `blastwall check`: validate a config or a fault-tolerance spec and explain every error,
//! or print either's JSON Schema.
//!
//! A spec is told from a config by its top-level keys (`[system]`, `[[failure]]`, which a
//! config never has), so one verb checks both. A spec's topology is checked through: its
//! Blastwall config is validated as `verify` would run it (each `"{service:NAME}"` written
//! as a loopback address), and its fault rules' `route` and `cluster`, and the routes its
//! expectations measure, must be in that config; each fault rule is tried in it as a
//! `[[route.fault]]`, so the proxy's own code judges it. The binary does this, not the chaos crate, which never imports the proxy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blastwall_chaos::spec::{BlastwallConfig, Cause, Metric, Scope, Spec, System, Topology};
use blastwall_proxy::Config;
use clap::Args;

/// Flags of `blastwall check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file, or fault-tolerance spec, to check.
    #[arg(required_unless_present_any = ["schema", "spec_schema"])]
    config: Option<PathBuf>,
    /// Print the JSON Schema of the config file instead.
    #[arg(long, conflicts_with_all = ["config", "spec_schema"])]
    schema: bool,
    /// Print the JSON Schema of a fault-tolerance spec instead.
    #[arg(long, conflicts_with = "config")]
    spec_schema: bool,
}

/// Prints what is wrong, or a one-line summary of what the config or spec defines.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.schema {
        println!("{}", serde_json::to_string_pretty(&Config::json_schema())?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.spec_schema {
        println!("{}", serde_json::to_string_pretty(&Spec::json_schema())?);
        return Ok(ExitCode::SUCCESS);
    }
    let path = args
        .config
        .expect("clap requires a config unless a schema is asked");
    if std::fs::read_to_string(&path).is_ok_and(|source| Spec::looks_like_spec(&source)) {
        return Ok(check_spec(&path));
    }
    match Config::load(&path) {
        Ok(config) => {
            println!(
                "{}: ok ({} listener(s), {} route(s), {} cluster(s), {} endpoint(s); hash {})",
                path.display(),
                config.listeners.len(),
                config.routes.len(),
                config.clusters.len(),
                config
                    .clusters
                    .iter()
                    .map(|cluster| cluster.endpoints.len())
                    .sum::<usize>(),
                config.source.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn check_spec(path: &Path) -> ExitCode {
    let spec = match Spec::load(path) {
        Ok(spec) => spec,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    if let System::Topology(topology) = &spec.system
        && let Err(problems) = check_topology(path, &spec, topology)
    {
        eprintln!("{problems}");
        return ExitCode::FAILURE;
    }
    let expectations = spec
        .failures
        .iter()
        .map(|failure| failure.expectations.len())
        .sum::<usize>();
    let system = match &spec.system {
        System::Topology(topology) => {
            format!("a topology of {} service(s)", topology.services.len())
        }
        System::Running(running) => format!("the running system at {}", running.traffic),
    };
    println!(
        "{}: ok (spec {:?}: {system}, {} failure mode(s), {expectations} expectation(s), {} steady-state check(s))",
        path.display(),
        spec.name,
        spec.failures.len(),
        spec.steady_state.len()
    );
    ExitCode::SUCCESS
}

/// The topology's Blastwall config, as `verify` would run it, and the names the spec uses
/// in it: fault rules' targets, measured routes.
pub fn check_topology(spec_path: &Path, spec: &Spec, topology: &Topology) -> Result<(), String> {
    let config_path = match &topology.blastwall {
        BlastwallConfig::Path(path) => path.clone(),
        BlastwallConfig::Inline(_) => PathBuf::from(format!(
            "{} (the inline `blastwall` config)",
            spec_path.display()
        )),
    };
    // Filled and loaded as verify's topology does it, by the same code.
    let (_, text, config) =
        crate::topology::made_up_config(&topology.services, &topology.blastwall, &config_path)
            .map_err(|error| format!("{error:#}"))?;
    let names = Names {
        spec: spec_path,
        config: &config_path,
    };
    let mut problems = unknown_fault_targets(&names, spec, &config);
    problems.extend(unknown_routes_measured(&names, spec, &config));
    problems.extend(requests_routed_elsewhere(&names, spec, &config));
    problems.extend(decisions_untold(&names, spec, &config));
    if problems.is_empty() {
        problems.extend(refused_fault_rules(&names, spec, &config, &text));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The files a problem names.
struct Names<'a> {
    spec: &'a Path,
    config: &'a Path,
}

/// Fault rules whose `route` or `cluster` the config does not have.
fn unknown_fault_targets(names: &Names<'_>, spec: &Spec, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for failure in &spec.failures {
        let Cause::Fault(rule) = &failure.cause else {
            continue;
        };
        let route = rule.get("route").and_then(|value| value.as_str());
        let cluster = rule.get("cluster").and_then(|value| value.as_str());
        let known = match (route, cluster) {
            (Some(route), _) => config.routes.iter().any(|known| known.name == route),
            (_, Some(cluster)) => config.clusters.iter().any(|known| known.name == cluster),
            (None, None) => true,
        };
        if !known {
            let (kind, name) = route.map_or(("cluster", cluster), |route| ("route", Some(route)));
            problems.push(format!(
                "error: {}: failure {:?}: its fault rule names {kind} {:?}, which {} does not have",
                names.spec.display(),
                failure.name,
                name.unwrap_or_default(),
                names.config.display()
            ));
        }
    }
    problems
}

/// Expectations that measure a route the config does not have.
fn unknown_routes_measured(names: &Names<'_>, spec: &Spec, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let expectations = spec
        .steady_state
        .iter()
        .map(|expectation| ("the steady state".to_owned(), expectation));
    let expectations = expectations.chain(spec.failures.iter().flat_map(|failure| {
        let whose = format!("failure {:?}", failure.name);
        failure
            .expectations
            .iter()
            .map(move |expectation| (whose.clone(), expectation))
    }));
    for (whose, expectation) in expectations {
        if let Scope::Route(route) = &expectation.scope
            && !config.routes.iter().any(|known| &known.name == route)
        {
            problems.push(format!(
                "error: {}: {whose}: an expectation measures route {route:?}, which {} does not have",
                names.spec.display(),
                names.config.display()
            ));
        }
    }
    problems
}

/// Expectations that read what the proxy decided (attempts, fallbacks) from answers it
/// will not tell (`decision_headers = "never"`): they could only be judged on nothing.
fn decisions_untold(names: &Names<'_>, spec: &Spec, config: &Config) -> Vec<String> {
    if config.tells_decisions() {
        return Vec::new();
    }
    let reads_decisions = spec
        .failures
        .iter()
        .flat_map(|failure| &failure.expectations)
        .chain(&spec.steady_state)
        .any(|expectation| {
            matches!(
                expectation.metric,
                Metric::RetryAmplification { .. } | Metric::FallbackShare { .. }
            )
        });
    if !reads_decisions {
        return Vec::new();
    }
    vec![format!(
        "error: {}: retry_amplification and fallback_share are read from the answers' x-blastwall-attempts and x-blastwall-fallback, which {} never sends (decision_headers = \"never\"): use \"on_request\" (verify asks) or \"always\"",
        names.spec.display(),
        names.config.display()
    )]
}

/// Request kinds whose `route` is not the one the proxy gives them, and measured routes
/// no request kind goes to (their expectations would count nothing).
fn requests_routed_elsewhere(names: &Names<'_>, spec: &Spec, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut routed = Vec::new();
    for kind in &spec.load.requests {
        // As the load sends it: `Host: localhost`, which a route may match on.
        let found = format!("http://localhost{}", kind.path)
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| config.route_of(&kind.method, &uri));
        if let Some(named) = &kind.route
            && found != Some(named.as_str())
        {
            problems.push(format!(
                "error: {}: the request {} {} names route {named:?}, but {} sends it to {}",
                names.spec.display(),
                kind.method,
                kind.path,
                names.config.display(),
                found.map_or_else(|| "no route".to_owned(), |route| format!("route {route:?}"))
            ));
        }
        routed.extend(found);
    }
    let measured = spec.steady_state.iter().chain(
        spec.failures
            .iter()
            .flat_map(|failure| &failure.expectations),
    );
    let mut told = std::collections::BTreeSet::new();
    for expectation in measured {
        if let Scope::Route(route) = &expectation.scope
            && config.routes.iter().any(|known| &known.name == route)
            && !routed.contains(&route.as_str())
            && told.insert(route)
        {
            problems.push(format!(
                "error: {}: an expectation measures route {route:?} no request of [load] goes to ({} routes them elsewhere)",
                names.spec.display(),
                names.config.display()
            ));
        }
    }
    problems
}

/// Fault rules the proxy would refuse: each is tried as a `[[route.fault]]` of a route it
/// targets (the first of its cluster's, for a cluster), in the config `verify` would run,
/// so the proxy's own code judges its action keys, as `POST /admin/faults` does.
fn refused_fault_rules(names: &Names<'_>, spec: &Spec, config: &Config, text: &str) -> Vec<String> {
    let Ok(base) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for failure in &spec.failures {
        let Cause::Fault(rule) = &failure.cause else {
            continue;
        };
        let route = match (
            rule.get("route").and_then(|value| value.as_str()),
            rule.get("cluster").and_then(|value| value.as_str()),
        ) {
            (Some(route), _) => Some(route.to_owned()),
            (None, Some(cluster)) => config
                .routes
                .iter()
                .find(|route| config.clusters[route.cluster].name == cluster)
                .map(|route| route.name.clone()),
            (None, None) => None,
        };
        let Some(route) = route else {
            continue;
        };
        let mut keys = rule.clone();
        keys.remove("route");
        keys.remove("cluster");
        let refused = match with_fault(&base, &route, keys) {
            Err(problem) => vec![problem],
            Ok(trial) => Config::parse(&trial, names.config)
                .err()
                .map_or_else(Vec::new, |errors| {
                    errors.0.into_iter().map(|error| error.message).collect()
                }),
        };
        problems.extend(refused.into_iter().map(|message| {
            format!(
                "error: {}: failure {:?}: its fault rule: {message}",
                names.spec.display(),
                failure.name
            )
        }));
    }
    problems
}

/// `base` with `rule` added to route `route`'s `[[route.fault]]`, as TOML text.
fn with_fault(
    base: &toml::Table,
    route: &str,
    rule: serde_json::Map<String, serde_json::Value>,
) -> Result<String, String> {
    let rule: toml::Value = serde_json::from_value(serde_json::Value::Object(rule))
        .map_err(|error| format!("not a TOML table: {error}"))?;
    let mut trial = base.clone();
    let routes = trial.get_mut("route").and_then(toml::Value::as_array_mut);
    let target = routes
        .into_iter()
        .flatten()
        .find(|section| section.get("name").and_then(toml::Value::as_str) == Some(route));
    let Some(toml::Value::Table(target)) = target else {
        return Err(format!("no route named {route:?}"));
    };
    let faults = target
        .entry("fault")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if let toml::Value::Array(faults) = faults {
        faults.push(rule);
    }
    toml::to_string(&trial).map_err(|error| error.to_string())
}
