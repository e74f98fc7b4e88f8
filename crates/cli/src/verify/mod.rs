//! `blastwall verify SPEC`: runs each failure mode of a fault-tolerance spec as an
//! experiment under load and says, per expectation, what was measured, against what bound,
//! and whether it held; writes the reports (JSON, JUnit XML, HTML).
//!
//! The exit code is for CI, as `blastwall load`'s: 0 when every expectation held,
//! [`EXPECTATION_FAILED`] (3) when one did not, [`COULD_NOT_RUN`] (2) when an experiment could
//! not run (a bad spec, a system that does not start, a failure that could not be caused,
//! Ctrl-C).
//!
//! A topology is started here ([`crate::topology`]) because starting processes and reading
//! the proxy's config (which route a request kind goes to) is the binary's; the experiments
//! themselves are the chaos crate's, which reach the system over HTTP only.

mod output;
mod started;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use blastwall_chaos::experiment::api::Api;
use blastwall_chaos::experiment::inject::{NoServices, Services};
use blastwall_chaos::experiment::measure::Labels;
use blastwall_chaos::experiment::{self, Target};
use blastwall_chaos::report::{self, Outcome, VerifyReport};
use blastwall_chaos::spec::{Running, Spec, System};
use clap::Args;
use tokio::sync::watch;

pub use output::Printer;
pub use started::Started;

/// Exit code when an expectation did not hold.
pub const EXPECTATION_FAILED: u8 = 3;
/// Exit code when an experiment could not run.
pub const COULD_NOT_RUN: u8 = 2;

/// The header whose values are priority classes: Blastwall's default (a config that names
/// another is not read for this).
const PRIORITY_HEADER: &str = "x-blastwall-priority";
/// The priority classes a request may name.
const CLASSES: [&str; 4] = ["critical", "high", "normal", "low"];

/// Flags of `blastwall verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The spec (`blastwall check SPEC` checks it without running anything).
    spec: PathBuf,
    /// Where the reports go: report.json, junit.xml, report.html (and the started
    /// processes' logs, for a topology).
    #[arg(long, value_name = "DIR", default_value = "blastwall-report")]
    report: PathBuf,
    /// Run only this failure mode (repeatable); default: all of them.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// A running system's admin token (default: the environment's BLASTWALL_ADMIN_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

/// Runs `blastwall verify`.
pub async fn run(args: VerifyArgs) -> ExitCode {
    let printer = Printer::new(!args.quiet && std::io::stderr().is_terminal());
    match verify(&args, &printer).await {
        Ok(report) => exit_code(&report),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(COULD_NOT_RUN)
        }
    }
}

/// Keeps only the failure modes `only` names (all of them when it names none).
pub fn keep_only(spec: &mut Spec, only: &[String]) -> anyhow::Result<()> {
    for name in only {
        if !spec.failures.iter().any(|failure| &failure.name == name) {
            let known: Vec<&str> = spec.failures.iter().map(|f| f.name.as_str()).collect();
            bail!(
                "--only {name:?}: the spec has no failure mode of that name (it has {})",
                known.join(", ")
            );
        }
    }
    if !only.is_empty() {
        spec.failures.retain(|failure| only.contains(&failure.name));
    }
    Ok(())
}

/// The exit code a report earns.
pub fn exit_code(report: &VerifyReport) -> ExitCode {
    match report.outcome() {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(EXPECTATION_FAILED),
        Outcome::CouldNotRun => ExitCode::from(COULD_NOT_RUN),
    }
}

async fn verify(args: &VerifyArgs, printer: &Printer) -> anyhow::Result<VerifyReport> {
    // Listening from the start: a signal while the topology starts stops it too.
    let (stopped, _signals) = stop_on_signals();
    let mut spec = match Spec::load(&args.spec) {
        Ok(spec) => spec,
        Err(errors) => {
            eprintln!("{errors}");
            bail!("the spec has errors: nothing ran");
        }
    };
    keep_only(&mut spec, &args.only)?;
    // The reports' folder first: a run of minutes must not end on "cannot write".
    report::prepare(&args.report)
        .with_context(|| format!("the reports' folder {}", args.report.display()))?;
    let report = match &spec.system {
        System::Topology(topology) => {
            if let Err(problems) = crate::check::check_topology(&args.spec, &spec, topology) {
                eprintln!("{problems}");
                bail!("the spec's topology has errors: nothing ran");
            }
            let logs = args.report.join("logs");
            let started = Started::start(topology, &logs)
                .await
                .context("starting the topology")?;
            printer.system(&format!(
                "started {} service(s) and Blastwall in front (logs in {}): traffic on http://{}, admin API on {}",
                topology.services.len(),
                logs.display(),
                started.traffic(),
                started.admin()
            ));
            let target = topology_target(&spec, &started).await;
            let report = run_experiments(&spec, &target, printer, stopped).await;
            started.stop().await;
            report
        }
        System::Running(running) => {
            let token = args.token.clone().or_else(|| {
                std::env::var("BLASTWALL_ADMIN_TOKEN")
                    .ok()
                    .filter(|token| !token.is_empty())
            });
            let target = running_target(running, token, &spec).await?;
            run_experiments(&spec, &target, printer, stopped).await
        }
    };
    let written = report::write_all(&report, &args.report)
        .with_context(|| format!("writing the reports in {}", args.report.display()))?;
    printer.summary(&report, &written.html);
    Ok(report)
}

/// Runs the experiments until `stopped` turns true (then the one in progress takes its
/// failure away and the rest are skipped).
pub async fn run_experiments<S: Services>(
    spec: &Spec,
    target: &Target<'_, S>,
    printer: &Printer,
    stopped: watch::Receiver<bool>,
) -> VerifyReport {
    let mut shown = usize::MAX;
    let on_progress = |progress: &experiment::Progress| {
        if progress.index != shown {
            shown = progress.index;
            printer.experiment_started(&spec.failures[progress.index], progress.index, progress.of);
        }
        printer.progress(progress);
    };
    experiment::verify(spec, target, stopped, on_progress, |experiment| {
        printer.experiment(experiment);
    })
    .await
}

/// A flag that turns true on SIGINT (Ctrl-C), SIGTERM or SIGHUP, so that whoever stops
/// verify (a person, CI's timeout, a closed terminal) gets the failure taken away and the
/// started processes stopped; a second signal quits at once. Dropping the guard stops
/// listening.
pub fn stop_on_signals() -> (watch::Receiver<bool>, SignalGuard) {
    let (stop, stopped) = watch::channel(false);
    let listening = tokio::spawn(async move {
        let Ok(first) = signal_name().await else {
            return;
        };
        eprintln!("\n{first}: stopping, taking the failure away (again to quit at once)");
        let _ = stop.send(true);
        if signal_name().await.is_ok() {
            std::process::exit(i32::from(COULD_NOT_RUN));
        }
    });
    (stopped, SignalGuard(listening))
}

/// Stops listening for signals when dropped.
#[derive(Debug)]
pub struct SignalGuard(tokio::task::JoinHandle<()>);

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next of SIGINT, SIGTERM, SIGHUP, by name.
async fn signal_name() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
    })
}

/// The target of a topology verify started: its addresses, its processes, and the route
/// each request kind takes, asked of the proxy's own router.
pub async fn topology_target<'a>(spec: &Spec, started: &'a Started) -> Target<'a, Started> {
    Target {
        traffic: started.traffic(),
        host: "localhost".into(),
        admin: Some(Api::new(started.admin().clone(), started.admin_token())),
        toxiproxy: None,
        services: started,
        labels: Labels {
            routes: started.routes(spec).await,
            classes: classes(spec),
        },
    }
}

/// The priority class each header share sets, when it is the priority header.
fn classes(spec: &Spec) -> Vec<Option<String>> {
    spec.load
        .headers
        .iter()
        .map(|share| {
            let value = share.value.to_str().unwrap_or("").to_ascii_lowercase();
            (share.name.as_str() == PRIORITY_HEADER && CLASSES.contains(&value.as_str()))
                .then_some(value)
        })
        .collect()
}

/// A running system's addresses, resolved.
async fn running_target<'a>(
    running: &Running,
    token: Option<String>,
    spec: &Spec,
) -> anyhow::Result<Target<'a, NoServices>> {
    let authority = running
        .traffic
        .authority()
        .context("the traffic URL has no host")?;
    let port = running.traffic.port_u16().unwrap_or(80);
    let traffic = tokio::net::lookup_host((authority.host(), port))
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    Ok(Target {
        traffic,
        host: authority.to_string(),
        admin: running.admin.clone().map(|admin| Api::new(admin, token)),
        toxiproxy: running.toxiproxy.clone().map(|api| Api::new(api, None)),
        services: &NoServices,
        // A running system's config is not here: the spec names each request's route.
        labels: Labels {
            routes: spec
                .load
                .requests
                .iter()
                .map(|kind| kind.route.clone())
                .collect(),
            classes: classes(spec),
        },
    })
}
