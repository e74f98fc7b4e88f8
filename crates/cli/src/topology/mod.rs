//! A spec's `[system]` topology, started on loopback: its mocks and the Blastwall in front,
//! each a real `blastwall` child process, and the ways `verify` breaks them.
//!
//! Why processes and not tasks in this one: the spec's causes are what an operator does to a
//! process (`kill` is SIGKILL, `stop` is SIGSTOP), and only a process has sockets that die
//! with it, or stay open while nothing answers, as a real service's would. The proxy is the
//! real `blastwall run` too, so what verify measures is the binary an operator runs, with
//! its own runtime, not one sharing verify's threads and allocator.
//!
//! Starting, in order, each step stopping everything already started when it fails:
//! 1. the Blastwall config is checked with every `"{service:NAME}"` standing for a made-up
//!    address, so a bad config is refused, at its own file's lines, before any process
//!    starts;
//! 2. each service is `blastwall mock --listen 127.0.0.1:0 --name NAME --seed INDEX
//!    --behaviour JSON` (the whole behaviour, over the flags' defaults), its address read
//!    from the line it prints when it listens;
//! 3. the config with the real addresses (and the admin API on a free port unless it says
//!    where, see [`config`]) is written to the log dir (`blastwall.toml`, beside the logs,
//!    so a report can point at what ran) and `blastwall run --config FILE --no-watch` is
//!    started; the first listener's address is where traffic goes, the admin's where
//!    faults go. A relative file the config names (a TLS certificate, the access log) is
//!    therefore taken beside that copy, not beside the spec's config; a certificate missing
//!    there is refused at this step, with the path looked at.
//!
//! Every child's stdout and stderr go to `LOGS/NAME.stdout.log` and `.stderr.log`
//! (`blastwall.*` for the proxy, `mock-NAME.*` for a service), never to the terminal. Each
//! child is killed (SIGKILL, after SIGCONT if it was stopped) when the topology is dropped;
//! [`Topology::shutdown`] also waits until each has exited.
//!
//! The ways to break it are in [`faults`]; which route a kind of request takes is the
//! proxy's own answer ([`blastwall_proxy::Config::route_of`]).

mod child;
mod config;
mod faults;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use blastwall_chaos::mock::Behaviour;
use blastwall_chaos::spec::{self, BlastwallConfig};
use blastwall_proxy::Config;
use http::{Method, Uri};

use child::Child;

/// What the proxy prints when a listener is bound: `listener "name" listening on http://addr`.
const LISTENER_LINE: &str = "listener ";
/// What the proxy prints when its admin API listens.
const ADMIN_LINE: &str = "admin listening on http://";
/// What the proxy prints when it serves.
const READY_LINE: &str = "blastwall ready";
/// The first of the made-up ports standing for the services while the config is checked
/// first, one each, so two services in one cluster are two endpoints (as `blastwall check`
/// does); nothing connects to them.
const CHECK_FIRST_PORT: u16 = 20_000;

/// The environment variable a topology's children find verify's process id in.
pub const PARENT_PID_ENV: &str = "BLASTWALL_PARENT_PID";

/// In a child a topology started (`blastwall mock`, `blastwall run` with
/// [`PARENT_PID_ENV`] set): asks the kernel for SIGKILL when verify dies, however it dies
/// (SIGKILL included, when no `Drop` runs), and exits at once if verify is already gone. A
/// process started by hand has no such variable and is left alone.
pub fn die_with_parent() {
    let Some(parent) = std::env::var(PARENT_PID_ENV)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok())
    else {
        return;
    };
    // NOTE: the signal comes when the *thread* that started this process ends; verify starts
    // children from its runtime's worker threads, which live as long as it does.
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
    {
        return;
    }
    // Verify may have died before the line above: then this process's parent is another.
    if rustix::process::getppid()
        .map(rustix::process::Pid::as_raw_nonzero)
        .map(|pid| pid.get())
        != Some(parent)
    {
        std::process::exit(0);
    }
}

/// A started topology: its services and the proxy in front, each a child process.
#[derive(Debug)]
pub struct Topology {
    exe: PathBuf,
    logs: PathBuf,
    services: Vec<Service>,
    proxy: Child,
    traffic: SocketAddr,
    admin: Option<SocketAddr>,
    config: Config,
    #[allow(dead_code)] // tests/topology.rs reads it
    config_path: PathBuf,
}

/// One mock service and what it needs to be started again.
#[derive(Debug)]
struct Service {
    name: String,
    behaviour: Behaviour,
    /// Its failure and latency draws' seed: its index, so that two services with the same
    /// behaviour do not fail the same requests in step.
    seed: u64,
    /// Where it listens: port 0 until it first starts.
    addr: SocketAddr,
    /// `None` while it is killed.
    child: Option<Child>,
}

impl Topology {
    /// Starts `topology`'s services and its proxy, running `exe` (the `blastwall` binary:
    /// [`std::env::current_exe`], or the one a test was built with) for each, with their
    /// output in files under `logs` (created if need be). On any error, everything already
    /// started is stopped.
    pub async fn start(topology: &spec::Topology, exe: &Path, logs: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(logs)
            .with_context(|| format!("cannot create the log dir {}", logs.display()))?;
        let config_path = logs.join("blastwall.toml");
        let (text, _, _) = made_up_config(&topology.services, &topology.blastwall, &config_path)?;
        let mut services = Vec::with_capacity(topology.services.len());
        for (seed, service) in (0..).zip(&topology.services) {
            let mut started = Service {
                name: service.name.clone(),
                behaviour: service.behaviour.clone(),
                seed,
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                child: None,
            };
            let (child, addr) = start_mock(exe, logs, &started).await?;
            started.addr = addr;
            started.child = Some(child);
            services.push(started);
        }
        let addrs: Vec<(&str, SocketAddr)> = services
            .iter()
            .map(|service| (service.name.as_str(), service.addr))
            .collect();
        let filled = config::with_free_admin(&config::fill_placeholders(&text, &addrs)?)?;
        let loaded = load_config(&filled, &config_path)?;
        std::fs::write(&config_path, &filled)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let (proxy, traffic, admin) = start_proxy(exe, logs, &config_path).await?;
        Ok(Self {
            exe: exe.to_owned(),
            logs: logs.to_owned(),
            services,
            proxy,
            traffic,
            admin,
            config: loaded,
            config_path,
        })
    }

    /// Where traffic goes: the proxy's first listener.
    pub fn traffic_addr(&self) -> SocketAddr {
        self.traffic
    }

    /// The proxy's admin API, unless its config turns it off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Where service `name` listens (the same address across restarts).
    pub fn service_addr(&self, name: &str) -> Option<SocketAddr> {
        self.services
            .iter()
            .find(|service| service.name == name)
            .map(|service| service.addr)
    }

    /// The process ids of every child running now, the proxy's first.
    #[allow(dead_code)] // tests/topology.rs reads it
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.proxy.pid())
            .chain(
                self.services
                    .iter()
                    .filter_map(|service| service.child.as_ref().map(Child::pid)),
            )
            .collect()
    }

    /// The directory of the children's logs and of the config the proxy runs.
    #[allow(dead_code)] // tests/topology.rs reads it
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// The config the proxy runs, with the services' addresses in it.
    #[allow(dead_code)] // tests/topology.rs reads it
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The config the proxy runs, as it loaded it (its routes, its admin token).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The route each `(method, path)` takes through the proxy's first listener, as the
    /// proxy itself matches it; `None` for a request no route takes (or a path that is
    /// not a URI path).
    pub fn routes_of(&self, requests: &[(Method, String)]) -> Vec<Option<&str>> {
        requests
            .iter()
            .map(|(method, path)| {
                let uri = path.parse::<Uri>().ok()?;
                self.config.route_of(method, &uri)
            })
            .collect()
    }

    /// Kills every child (SIGCONT first for a stopped one) and waits until each has exited.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Self {
            proxy, services, ..
        } = self;
        proxy.kill().await?;
        for service in services {
            if let Some(child) = service.child {
                child.kill().await?;
            }
        }
        Ok(())
    }
}

/// The topology's config as written, and checked as `blastwall check` judges it: its
/// placeholders filled with distinct made-up addresses (two services of one cluster are two
/// endpoints; nothing connects to them) and loaded by the proxy's own code, before any
/// process starts. Its errors point at the spec's own config file (placeholders change no
/// line), or at `inline_path` for an inline one. Returns the text as written, the filled
/// text and the config loaded from it.
pub fn made_up_config(
    services: &[spec::Service],
    config: &BlastwallConfig,
    inline_path: &Path,
) -> anyhow::Result<(String, String, Config)> {
    let (text, path) = match config {
        BlastwallConfig::Inline(text) => (text.clone(), inline_path),
        BlastwallConfig::Path(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the Blastwall config {}", path.display()))?,
            path.as_path(),
        ),
    };
    let made_up: Vec<(&str, SocketAddr)> = services
        .iter()
        .zip(CHECK_FIRST_PORT..)
        .map(|(service, port)| {
            (
                service.name.as_str(),
                SocketAddr::from(([127, 0, 0, 1], port)),
            )
        })
        .collect();
    let filled = config::fill_placeholders(&text, &made_up)?;
    let loaded = load_config(&filled, path)?;
    Ok((text, filled, loaded))
}

/// The config `text` as the proxy will load it from `path`, or every error it has.
fn load_config(text: &str, path: &Path) -> anyhow::Result<Config> {
    Config::parse(text, path)
        .map_err(|errors| anyhow::anyhow!("the topology's Blastwall config is invalid:\n{errors}"))
}

/// Starts `service` as a mock on its address and waits until it listens there.
async fn start_mock(
    exe: &Path,
    logs: &Path,
    service: &Service,
) -> anyhow::Result<(Child, SocketAddr)> {
    let name = &service.name;
    let json = serde_json::to_string(&service.behaviour)
        .with_context(|| format!("cannot write service {name:?}'s behaviour as JSON"))?;
    let (listen, seed) = (service.addr.to_string(), service.seed.to_string());
    let args = [
        "mock",
        "--listen",
        &listen,
        "--name",
        name,
        "--seed",
        &seed,
        "--behaviour",
        &json,
    ];
    let what = format!("mock {name:?}");
    let mut child = Child::spawn(what.clone(), exe, &args, logs, &format!("mock-{name}"))?;
    let prefix = format!("mock {name:?} listening on http://");
    let rest = child.line_after(&prefix).await?;
    let addr = rest
        .trim()
        .parse()
        .with_context(|| format!("{what} printed an address that is not one: {rest:?}"))?;
    Ok((child, addr))
}

/// Starts `blastwall run` on `config` and waits until it is ready: the child, the first
/// listener's address and the admin API's.
async fn start_proxy(
    exe: &Path,
    logs: &Path,
    config: &Path,
) -> anyhow::Result<(Child, SocketAddr, Option<SocketAddr>)> {
    let config = config.to_string_lossy();
    let args = ["run", "--config", &config, "--no-watch"];
    let mut child = Child::spawn("blastwall run".into(), exe, &args, logs, "blastwall")?;
    let lines = child.lines_until(READY_LINE).await?;
    let traffic = lines
        .iter()
        .filter(|line| line.starts_with(LISTENER_LINE))
        .find_map(|line| line.split_once(" listening on http://"))
        .context("blastwall run is ready but printed no listener")?
        .1;
    let traffic = traffic.trim().parse().with_context(|| {
        format!("blastwall run printed a listener address that is not one: {traffic:?}")
    })?;
    let admin = lines
        .iter()
        .find_map(|line| line.strip_prefix(ADMIN_LINE))
        .map(|addr| {
            addr.trim().parse().with_context(|| {
                format!("blastwall run printed an admin address that is not one: {addr:?}")
            })
        })
        .transpose()?;
    Ok((child, traffic, admin))
}
