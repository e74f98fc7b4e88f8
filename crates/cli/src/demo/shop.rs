//! `blastwall demo` (shop, the default): the four-row table of failures, proved.
//!
//! A small shop starts on loopback: checkout in two zones, payments, a cache with a
//! database behind it, analytics, each a `blastwall mock`, with Blastwall in front. The demo
//! then runs the shop's fault-tolerance spec, `examples/specs/shop.toml` (built into the
//! binary, so it runs anywhere), exactly as `blastwall verify` would: each failure under
//! load, and a verdict per expectation, measured. It ends by pointing at the HTML report and
//! the dashboard. When a verdict fails, the demo says so and exits as `verify` does.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use blastwall_chaos::report::{Outcome, VerifyReport};
use blastwall_chaos::spec::{Spec, System};

use super::{Admin, DemoArgs};
use crate::verify::{self, Printer, Started};

/// The spec, as `examples/specs/` holds it.
const SPEC: &str = include_str!("../../../../examples/specs/shop.toml");
/// The Blastwall config the spec names.
const CONFIG: &str = include_str!("../../../../examples/specs/shop.blastwall.toml");
/// The config's admin listener, which the demo moves to where `--admin` says.
const CONFIG_ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";
/// Where the dashboard is when nothing else is there.
const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// Runs the shop demo.
pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = args.report.join("spec");
    let admin = admin_listen(args.admin);
    let spec_path = write_spec(&dir, admin)?;
    let mut spec =
        Spec::load(&spec_path).map_err(|errors| anyhow::anyhow!("the built-in spec: {errors}"))?;
    verify::keep_only(&mut spec, &args.only)?;
    let System::Topology(topology) = &spec.system else {
        anyhow::bail!("the built-in spec starts its own shop");
    };
    // As verify does: the topology checked, the reports' folder writable, before anything.
    if let Err(problems) = crate::check::check_topology(&spec_path, &spec, topology) {
        anyhow::bail!("the built-in spec's topology: {problems}");
    }
    blastwall_chaos::report::prepare(&args.report)
        .with_context(|| format!("the reports' folder {}", args.report.display()))?;
    intro(&spec);
    let printer = Printer::new(!args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let (stopped, _signals) = verify::stop_on_signals();
    let started = Started::start(topology, &args.report.join("logs"))
        .await
        .context("starting the shop")?;
    let dashboard = format!("{}dashboard", started.admin());
    println!(
        "the shop: http://{}/ (logs in {})",
        started.traffic(),
        args.report.join("logs").display()
    );
    if args.admin != Some(Admin::Off) {
        println!("watch it live: {dashboard}");
    }
    println!();
    let target = verify::topology_target(&spec, &started).await;
    let report = verify::run_experiments(&spec, &target, &printer, stopped.clone()).await;
    let written = blastwall_chaos::report::write_all(&report, &args.report)
        .with_context(|| format!("writing the reports in {}", args.report.display()))?;
    printer.summary(&report, &written.html);
    outro(&report, &written.html);
    if args.admin != Some(Admin::Off) && !args.keep {
        println!(
            "The dashboard ({dashboard}) was live while it ran; `blastwall demo --keep` keeps the shop up to explore it."
        );
    }
    if args.keep && args.admin != Some(Admin::Off) && !*stopped.borrow() {
        println!("the shop keeps running (--keep): {dashboard}; Ctrl-C stops it");
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }
    started.stop().await;
    Ok(verify::exit_code(&report))
}

/// Where the demo's admin API listens: `--admin`, else the default address when it is
/// free, else any free port.
fn admin_listen(admin: Option<Admin>) -> SocketAddr {
    match admin {
        Some(Admin::At(addr)) => addr,
        Some(Admin::Off) => SocketAddr::from(([127, 0, 0, 1], 0)),
        None => {
            let default: SocketAddr = DEFAULT_ADMIN.parse().expect("a constant address");
            // NOTE: a probe, not a reservation: a program taking the port between the probe
            // and the proxy's bind makes the start fail with the address in the error.
            match TcpListener::bind(default) {
                Ok(_) => default,
                Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
            }
        }
    }
}

/// Writes the built-in spec and its config into `dir`, the admin API moved to `admin`.
fn write_spec(dir: &Path, admin: SocketAddr) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    anyhow::ensure!(
        CONFIG.contains(CONFIG_ADMIN),
        "the built-in config has no `{}` to move",
        CONFIG_ADMIN.trim()
    );
    let config = CONFIG.replace(CONFIG_ADMIN, &format!("[admin]\nlisten = \"{admin}\"\n"));
    let spec_path = dir.join("shop.toml");
    std::fs::write(dir.join("shop.blastwall.toml"), config)
        .and_then(|()| std::fs::write(&spec_path, SPEC))
        .with_context(|| format!("writing the built-in spec in {}", dir.display()))?;
    Ok(spec_path)
}

fn intro(spec: &Spec) {
    println!(
        "blastwall demo: a small shop on loopback, Blastwall in front, and its fault-tolerance spec"
    );
    println!(
        "  (examples/specs/shop.toml): {} failures, each an experiment under {} requests/s for {:.0}s.\n",
        spec.failures.len(),
        spec.load.rate,
        spec.load.duration.as_secs_f64()
    );
    let rows: Vec<[&str; 4]> = spec
        .failures
        .iter()
        .map(|failure| {
            [
                failure.failure.as_str(),
                failure.required_behaviour.as_str(),
                failure.acceptable_degradation.as_str(),
                failure.design.as_str(),
            ]
        })
        .collect();
    let header = [
        "failure",
        "required behaviour",
        "acceptable degradation",
        "design",
    ];
    let widths: Vec<usize> = (0..4)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("  {}", cells.join(" │ ").trim_end());
    };
    line(header);
    for row in rows {
        line(row);
    }
    println!();
}

fn outro(report: &VerifyReport, html: &Path) {
    println!();
    match report.outcome() {
        Outcome::Passed => println!(
            "Every failure was contained as the table says: the figures above were measured, not assumed."
        ),
        Outcome::Failed => println!(
            "Not every failure was contained as the table says: the ✘ lines above say which figure missed its bound."
        ),
        Outcome::CouldNotRun => {
            println!("Some experiments could not run: the ! lines above say why.")
        }
    }
    println!(
        "Open the report for each failure's plots: {}",
        html.display()
    );
}
