//! The topology `verify` starts (crates/cli/src/topology): the shop of examples/specs as
//! real `blastwall` processes on loopback, broken the ways a spec's causes say.
//!
//! The cli crate is a binary with no library, so this suite compiles the topology module
//! itself, by path, and runs it on the binary cargo built for it (`CARGO_BIN_EXE_blastwall`,
//! which only integration tests are given): the module under test is the one the binary has,
//! and the binary it starts is never a stale one.

#[allow(dead_code, unreachable_pub)]
#[path = "../src/topology/mod.rs"]
mod topology;

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use blastwall_chaos::mock::Behaviour;
use blastwall_chaos::spec::{self, BlastwallConfig, Spec, System};
use http::{Method, StatusCode};
use support::{eventually, get, send, try_send};
use topology::Topology;

const WITHIN: Duration = Duration::from_secs(10);

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_blastwall"))
}

/// The shop's topology, as `blastwall check` reads it.
fn shop() -> spec::Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs/shop.toml");
    let spec = Spec::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    match spec.system {
        System::Topology(topology) => topology,
        System::Running(_) => panic!("the shop spec starts a topology"),
    }
}

async fn start_shop(logs: &Path) -> Topology {
    Topology::start(&shop(), exe(), logs)
        .await
        .unwrap_or_else(|error| panic!("the shop starts: {error:#}"))
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// Whether process `pid` is gone: no entry in /proc, or a zombie (dead, not yet reaped).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Whether nothing accepts connections at `addr` any more.
async fn refuses(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

fn mock_name(answer: &support::Answer) -> String {
    answer
        .1
        .get("x-mock-name")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_shop_starts_and_traffic_through_it_reaches_each_service() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let shop = start_shop(logs.path()).await;
    let traffic = shop.traffic_addr();
    let requests = [
        (Method::POST, "/checkout/cart", "checkout-"),
        (Method::POST, "/pay/card", "payments"),
        (Method::GET, "/catalog/items?page=1", "cache"),
        (Method::POST, "/analytics/events", "analytics"),
    ];
    for (method, path, service) in &requests {
        let answer = send(method.clone(), &url(traffic, path), "", &[]).await;
        assert!(answer.0.is_success(), "{path}: {answer:?}");
        assert!(
            mock_name(&answer).starts_with(service),
            "{path}: {answer:?}"
        );
    }
    assert!(
        shop.admin_addr().is_some(),
        "the shop's config has an admin API"
    );
    assert!(shop.config_path().starts_with(logs.path()));
    assert!(logs.path().join("mock-payments.stdout.log").exists());
    assert!(logs.path().join("blastwall.stderr.log").exists());
}

#[tokio::test]
async fn each_service_runs_with_the_behaviour_its_spec_gives_it() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let topology = shop();
    let shop = Topology::start(&topology, exe(), logs.path())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    for service in &topology.services {
        let addr = shop.service_addr(&service.name).expect("a started service");
        let (status, _, body) = get(&url(addr, "/_mock/behaviour")).await;
        assert_eq!(status, StatusCode::OK);
        let running: Behaviour = serde_json::from_str(&body).expect("a behaviour");
        assert_eq!(running, service.behaviour, "{}", service.name);
    }
}

#[tokio::test]
async fn routes_of_names_each_request_kind_as_the_proxy_routes_it() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let shop = start_shop(logs.path()).await;
    let kinds = [
        (Method::POST, "/checkout/cart".to_owned()),
        (Method::POST, "/pay/card".to_owned()),
        (Method::GET, "/catalog/items?page=1".to_owned()),
        (Method::POST, "/analytics/events".to_owned()),
        (Method::GET, "/nowhere".to_owned()),
    ];
    assert_eq!(shop.config().routes.len(), 4);
    assert_eq!(
        shop.routes_of(&kinds),
        [
            Some("checkout"),
            Some("payments"),
            Some("catalog"),
            Some("analytics"),
            None
        ]
    );
}

#[tokio::test]
async fn a_killed_service_refuses_and_starts_again_on_the_same_address() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut shop = start_shop(logs.path()).await;
    let addr = shop.service_addr("payments").expect("payments");
    let before = shop.pids();
    shop.kill("payments").await.expect("payments is killed");
    assert!(refuses(addr).await, "a killed service refuses connections");
    let killed: Vec<u32> = before
        .iter()
        .copied()
        .filter(|pid| !shop.pids().contains(pid))
        .collect();
    assert_eq!(killed.len(), 1);
    assert!(is_gone(killed[0]), "the killed process is gone");
    let fallback = send(
        Method::POST,
        &url(shop.traffic_addr(), "/pay/card"),
        "",
        &[],
    )
    .await;
    assert_eq!(fallback.0, StatusCode::SERVICE_UNAVAILABLE, "{fallback:?}");
    let again = shop.kill("payments").await.expect_err("killed already");
    assert!(format!("{again:#}").contains("not running"), "{again:#}");

    shop.restart("payments")
        .await
        .expect("payments starts again");
    assert_eq!(shop.service_addr("payments"), Some(addr));
    let (status, _, _) = get(&url(addr, "/")).await;
    assert_eq!(status, StatusCode::OK);
    let through = url(shop.traffic_addr(), "/pay/card");
    let reached = eventually(WITHIN, || {
        let through = through.clone();
        async move {
            let answer = send(Method::POST, &through, "", &[]).await;
            mock_name(&answer) == "payments"
        }
    })
    .await;
    assert!(reached, "the proxy reaches the restarted service");
    let running = shop.restart("payments").await.expect_err("running");
    assert!(format!("{running:#}").contains("kill it"), "{running:#}");
}

#[tokio::test]
async fn a_stopped_service_holds_a_request_until_it_is_resumed() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut shop = start_shop(logs.path()).await;
    let addr = shop.service_addr("cache").expect("cache");
    shop.stop("cache").expect("cache stops");
    let target = url(addr, "/");
    let request = tokio::spawn(async move { try_send(Method::GET, &target, "", &[]).await });
    let request = {
        let mut request = request;
        // A bound, not a wait for something: a stopped process must not answer at all.
        let held = tokio::time::timeout(Duration::from_millis(300), &mut request).await;
        assert!(held.is_err(), "a stopped service answered: {held:?}");
        request
    };
    let refused = shop
        .set_behaviour("cache", &Behaviour::default())
        .await
        .expect_err("a stopped service takes no behaviour");
    assert!(format!("{refused:#}").contains("stopped"), "{refused:#}");
    shop.resume("cache").expect("cache resumes");
    let answer = tokio::time::timeout(WITHIN, request)
        .await
        .expect("answered once resumed")
        .expect("the task ran")
        .expect("an answer");
    assert_eq!(answer.0, StatusCode::OK);
    assert!(shop.resume("cache").is_err(), "not stopped any more");
}

#[tokio::test]
async fn a_new_behaviour_is_served_until_the_services_own_is_restored() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut shop = start_shop(logs.path()).await;
    let addr = shop.service_addr("analytics").expect("analytics");
    let failing = Behaviour {
        failure_rate: 1.0,
        failure_status: 503,
        ..Behaviour::default()
    };
    shop.set_behaviour("analytics", &failing)
        .await
        .expect("a new behaviour");
    assert_eq!(
        get(&url(addr, "/")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    shop.restore_behaviour("analytics")
        .await
        .expect("its own behaviour");
    assert_eq!(get(&url(addr, "/")).await.0, StatusCode::ACCEPTED);

    let invalid = Behaviour {
        failure_rate: 2.0,
        ..Behaviour::default()
    };
    let refused = shop
        .set_behaviour("analytics", &invalid)
        .await
        .expect_err("an invalid behaviour");
    assert!(format!("{refused:#}").contains("400"), "{refused:#}");
    let unknown = shop.stop("nobody").expect_err("no such service");
    assert!(
        format!("{unknown:#}").contains("services: checkout-a"),
        "{unknown:#}"
    );
}

#[tokio::test]
async fn dropping_the_topology_leaves_no_child_even_a_stopped_one() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut shop = start_shop(logs.path()).await;
    shop.stop("database").expect("database stops");
    let pids = shop.pids();
    assert_eq!(pids.len(), 7, "the proxy and six services");
    drop(shop);
    for pid in pids {
        assert!(
            eventually(WITHIN, || async move { is_gone(pid) }).await,
            "process {pid} outlived the topology"
        );
    }
}

#[tokio::test]
async fn shutdown_waits_until_every_child_has_exited() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut shop = start_shop(logs.path()).await;
    shop.stop("cache").expect("cache stops");
    let pids = shop.pids();
    shop.shutdown().await.expect("a clean shutdown");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} not reaped"
        );
    }
}

/// A one-service topology whose config is `config` (`{service:one}` its endpoint).
fn one_service(config: &str) -> spec::Topology {
    spec::Topology {
        services: vec![spec::Service {
            name: "one".into(),
            zone: None,
            behaviour: Behaviour::default(),
        }],
        blastwall: BlastwallConfig::Inline(config.to_owned()),
    }
}

fn config_listening_on(listen: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"in\"\nlisten = \"{listen}\"\n\
         [[route]]\nname = \"all\"\ncluster = \"one\"\n\
         [cluster.one]\nendpoints = [{{ address = \"{{service:one}}\" }}]\n"
    )
}

/// The services a topology started, read from their logs: each one's address.
fn started_mocks(logs: &Path) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for entry in std::fs::read_dir(logs).expect("the log dir") {
        let path: PathBuf = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("mock-") && name.ends_with(".stdout.log") {
            let text = std::fs::read_to_string(&path).expect("a log");
            addrs.extend(
                text.lines()
                    .filter_map(|line| line.split_once("listening on http://"))
                    .filter_map(|(_, addr)| addr.trim().parse::<SocketAddr>().ok()),
            );
        }
    }
    addrs
}

#[tokio::test]
async fn a_bad_config_is_refused_before_any_service_starts() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let config =
        config_listening_on("127.0.0.1:0").replace("cluster = \"one\"", "cluster = \"two\"");
    let error = Topology::start(&one_service(&config), exe(), logs.path())
        .await
        .expect_err("an unknown cluster");
    assert!(format!("{error:#}").contains("invalid"), "{error:#}");
    assert!(started_mocks(logs.path()).is_empty(), "no mock was started");

    let unknown = config_listening_on("127.0.0.1:0").replace("{service:one}", "{service:two}");
    let error = Topology::start(&one_service(&unknown), exe(), logs.path())
        .await
        .expect_err("an unknown service");
    assert!(
        format!("{error:#}").contains("no service is named \"two\""),
        "{error:#}"
    );
}

#[tokio::test]
async fn a_proxy_that_cannot_start_says_why_and_stops_the_services_started() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken_addr = taken.local_addr().expect("its address").to_string();
    let error = Topology::start(
        &one_service(&config_listening_on(&taken_addr)),
        exe(),
        logs.path(),
    )
    .await
    .expect_err("the listener's port is taken");
    let error = format!("{error:#}");
    assert!(error.contains("blastwall run exited"), "{error}");
    assert!(
        error.contains(&taken_addr),
        "the proxy's own words: {error}"
    );
    let mocks = started_mocks(logs.path());
    assert_eq!(mocks.len(), 1, "the service was started first");
    assert!(
        eventually(WITHIN, || refuses(mocks[0])).await,
        "the service started was stopped"
    );
}

#[tokio::test]
async fn a_mock_that_cannot_start_says_why_and_stops_the_ones_started() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let mut topology = one_service(&config_listening_on("127.0.0.1:0"));
    topology.services.push(spec::Service {
        name: "broken".into(),
        zone: None,
        behaviour: Behaviour {
            failure_rate: 2.0,
            ..Behaviour::default()
        },
    });
    let error = Topology::start(&topology, exe(), logs.path())
        .await
        .expect_err("an invalid behaviour");
    let error = format!("{error:#}");
    assert!(error.contains("mock \"broken\" exited"), "{error}");
    assert!(
        error.contains("--behaviour"),
        "the mock's own words: {error}"
    );
    let mocks = started_mocks(logs.path());
    assert_eq!(mocks.len(), 1, "the first service was started");
    assert!(
        eventually(WITHIN, || refuses(mocks[0])).await,
        "the service started was stopped"
    );
}

#[tokio::test]
async fn a_config_without_an_admin_address_gets_one_on_a_free_port() {
    let logs = tempfile::tempdir().expect("a temp dir");
    let config =
        config_listening_on("127.0.0.1:0").replace("[admin]\nlisten = \"127.0.0.1:0\"\n", "");
    assert!(!config.contains("[admin]"));
    let topology = Topology::start(&one_service(&config), exe(), logs.path())
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    let admin = topology.admin_addr().expect("an admin API");
    assert!(admin.ip().is_loopback());
    assert_ne!(admin.port(), 9901, "not the fixed default");
    let (status, _, _) = get(&url(admin, "/admin/faults")).await;
    assert_eq!(status, StatusCode::OK);
    let answer = get(&url(topology.traffic_addr(), "/")).await;
    assert_eq!(mock_name(&answer), "one");
}
