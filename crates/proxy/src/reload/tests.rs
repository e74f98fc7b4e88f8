use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::*;
use crate::Proxy;
use crate::config::ConfigErrors;

fn config(listeners: &[(&str, &str)], clusters: &[(&str, &str)]) -> String {
    let mut text = String::from("[proxy]\ndrain_timeout = \"1s\"\n");
    for (name, listen) in listeners {
        text.push_str(&format!(
            "\n[[listener]]\nname = \"{name}\"\nlisten = \"{listen}\"\n"
        ));
    }
    for (name, _) in clusters {
        text.push_str(&format!(
            "\n[[route]]\nname = \"{name}\"\ncluster = \"{name}\"\nmatch = {{ path_prefix = \"/{name}/\" }}\n"
        ));
    }
    for (name, endpoint) in clusters {
        text.push_str(&format!(
            "\n[cluster.{name}]\nendpoints = [{{ address = \"{endpoint}\" }}]\n"
        ));
    }
    // Without it a bound proxy would take the default admin port, which tests running side
    // by side race for.
    text.push_str("\n[admin]\nlisten = \"off\"\n");
    text
}

fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("blastwall.toml")).expect("a valid config")
}

fn cluster<'a>(snapshot: &'a Snapshot, name: &str) -> &'a Arc<Cluster> {
    snapshot
        .clusters
        .iter()
        .find(|cluster| cluster.name() == name)
        .expect("the cluster exists")
}

#[test]
fn an_unchanged_cluster_is_carried_over_live_and_a_changed_one_rebuilt() {
    let listeners = [("public", "127.0.0.1:0")];
    let before = Snapshot::build(
        parse(&config(
            &listeners,
            &[("a", "127.0.0.1:9001"), ("b", "127.0.0.1:9002")],
        )),
        None,
        Instant::now(),
    );
    cluster(&before, "a").endpoints()[0].set_healthy(false);
    let after = Snapshot::build(
        parse(&config(
            &listeners,
            &[("b", "127.0.0.1:9003"), ("a", "127.0.0.1:9001")],
        )),
        Some(&before),
        Instant::now(),
    );
    assert!(Arc::ptr_eq(cluster(&before, "a"), cluster(&after, "a")));
    assert!(
        !cluster(&after, "a").endpoints()[0].is_healthy(),
        "endpoint state survives"
    );
    assert!(!Arc::ptr_eq(cluster(&before, "b"), cluster(&after, "b")));
    assert_eq!(
        after.cluster_changes(&before),
        ClusterChanges {
            kept: 1,
            rebuilt: 1,
            removed: 0
        }
    );
}

#[test]
fn a_removed_cluster_lives_on_while_a_request_holds_the_old_snapshot() {
    let listeners = [("public", "127.0.0.1:0")];
    let runtime = Runtime::new(parse(&config(
        &listeners,
        &[("a", "127.0.0.1:9001"), ("gone", "127.0.0.1:9002")],
    )));
    let in_flight = runtime.snapshot();
    let weak = Arc::downgrade(cluster(&in_flight, "gone"));
    let replaced = runtime.replace(parse(&config(&listeners, &[("a", "127.0.0.1:9001")])));
    assert_eq!(
        runtime.snapshot().cluster_changes(&replaced),
        ClusterChanges {
            kept: 1,
            rebuilt: 0,
            removed: 1
        }
    );
    drop(replaced);
    assert!(
        weak.upgrade().is_some(),
        "the request still has its cluster"
    );
    drop(in_flight);
    assert!(weak.upgrade().is_none(), "freed with its last request");
}

#[test]
fn a_replaced_cluster_is_retired_at_once_and_a_kept_one_is_not() {
    let listeners = [("public", "127.0.0.1:0")];
    let runtime = Runtime::new(parse(&config(
        &listeners,
        &[("kept", "127.0.0.1:9001"), ("moved", "127.0.0.1:9002")],
    )));
    let in_flight = runtime.snapshot();
    let kept_alive = cluster(&in_flight, "kept").alive();
    let moved_alive = cluster(&in_flight, "moved").alive();
    runtime.replace(parse(&config(
        &listeners,
        &[("kept", "127.0.0.1:9001"), ("moved", "127.0.0.1:9003")],
    )));
    assert!(
        moved_alive.has_changed().unwrap_or(true),
        "the replaced cluster's health and DNS tasks stop although a request still holds it"
    );
    assert!(!kept_alive.has_changed().expect("the kept cluster lives"));
    drop(in_flight);
}

#[test]
fn listeners_are_found_by_name_when_the_file_reorders_them() {
    let clusters = [("a", "127.0.0.1:9001")];
    let runtime = Runtime::new(parse(&config(
        &[("one", "127.0.0.1:8001"), ("two", "127.0.0.1:8002")],
        &clusters,
    )));
    let retired = runtime.snapshot();
    runtime.replace(parse(&config(
        &[("three", "127.0.0.1:8003"), ("one", "127.0.0.1:8001")],
        &clusters,
    )));
    let index = |name: &str, retired: Option<Arc<Snapshot>>| {
        runtime
            .snapshot_for(name, || retired)
            .map(|(snapshot, index)| (snapshot.config.listeners.len(), index))
    };
    assert_eq!(index("one", None), Some((2, 1)));
    assert_eq!(index("two", None), None, "removed");
    assert_eq!(
        index("two", Some(retired)),
        Some((2, 1)),
        "its connections finish on the config it belonged to"
    );
}

#[test]
fn the_status_counts_attempts_and_keeps_the_last_error() {
    let mut status = ReloadStatus::new("aaaa".into(), SystemTime::UNIX_EPOCH);
    let errors =
        Config::parse("[proxy]\nbogus = 1\n", Path::new("b.toml")).expect_err("an unknown key");
    status.record(ReloadAttempt {
        at: SystemTime::now(),
        trigger: ReloadTrigger::Signal,
        outcome: ReloadOutcome::Refused {
            hash: Some("bbbb".into()),
            errors,
        },
    });
    assert_eq!((status.refused, status.current_hash.as_str()), (1, "aaaa"));
    assert!(
        status.last_error().expect("refused").contains("b.toml:2:1"),
        "{:?}",
        status.last_error()
    );
    status.record(ReloadAttempt {
        at: SystemTime::now(),
        trigger: ReloadTrigger::FileChanged,
        outcome: ReloadOutcome::Applied(AppliedReload {
            previous_hash: "aaaa".into(),
            hash: "cccc".into(),
            listeners: ListenerChanges::default(),
            clusters: ClusterChanges::default(),
        }),
    });
    assert_eq!(
        (
            status.attempts(),
            status.applied,
            status.current_hash.as_str()
        ),
        (2, 1, "cccc")
    );
    assert_eq!(status.last_error(), None);
}

// The proxy as a whole: listeners change on reload, all or nothing.

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_ok()
}

/// Whether `addr` refuses connections once the listener tasks have run.
async fn closes_soon(addr: SocketAddr) -> bool {
    for _ in 0..1000 {
        if !accepts(addr) {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

fn addr_of(proxy: &Proxy, name: &str) -> SocketAddr {
    proxy
        .local_addrs()
        .into_iter()
        .find(|(listener, _)| listener == name)
        .map(|(_, addr)| addr)
        .expect("the listener is serving")
}

fn free_port() -> String {
    let socket = StdListener::bind("127.0.0.1:0").expect("a free port");
    socket.local_addr().expect("bound").to_string()
}

const CLUSTERS: [(&str, &str); 1] = [("a", "127.0.0.1:9001")];

#[tokio::test]
async fn a_bad_config_is_refused_with_every_error_located_and_nothing_changes() {
    let mut proxy = Proxy::bind(parse(&config(&[("public", "127.0.0.1:0")], &CLUSTERS)))
        .await
        .expect("binds");
    let before = proxy.runtime().snapshot();
    let text = "[proxy]\ndrain_timeout = \"soon\"\n\n[[listener]]\nname = \"public\"\nlisten = \"nowhere\"\n";
    let outcome = proxy
        .apply(
            Config::parse(text, Path::new("blastwall.toml")),
            ReloadTrigger::Signal,
        )
        .await;
    let ReloadOutcome::Refused { errors, .. } = outcome else {
        panic!("refused: {outcome:?}")
    };
    let located: Vec<(usize, usize)> = errors
        .0
        .iter()
        .filter_map(|error| error.location.as_ref())
        .map(|at| (at.line, at.column))
        .collect();
    assert!(located.contains(&(2, 17)), "{errors}");
    assert!(located.contains(&(6, 10)), "{errors}");
    assert!(Arc::ptr_eq(&before, &proxy.runtime().snapshot()));
    assert!(accepts(addr_of(&proxy, "public")));
    assert_eq!(proxy.runtime().reload_status().refused, 1);
}

#[tokio::test]
async fn the_same_config_again_is_a_no_op() {
    let text = config(&[("public", "127.0.0.1:0")], &CLUSTERS);
    let mut proxy = Proxy::bind(parse(&text)).await.expect("binds");
    let before = proxy.runtime().snapshot();
    let outcome = proxy.apply(Ok(parse(&text)), ReloadTrigger::Signal).await;
    assert!(
        matches!(outcome, ReloadOutcome::Unchanged { .. }),
        "{outcome:?}"
    );
    assert!(Arc::ptr_eq(&before, &proxy.runtime().snapshot()));
}

#[tokio::test]
async fn listeners_added_are_bound_and_removed_ones_stop_accepting() {
    let (old_port, kept_port, new_port) = (free_port(), free_port(), free_port());
    let mut proxy = Proxy::bind(parse(&config(
        &[("old", &old_port), ("kept", &kept_port)],
        &CLUSTERS,
    )))
    .await
    .expect("binds");
    let (old, kept) = (addr_of(&proxy, "old"), addr_of(&proxy, "kept"));
    let outcome = proxy
        .apply(
            Ok(parse(&config(
                &[("kept", &kept_port), ("new", &new_port)],
                &CLUSTERS,
            ))),
            ReloadTrigger::Signal,
        )
        .await;
    let ReloadOutcome::Applied(applied) = outcome else {
        panic!("applied: {outcome:?}")
    };
    assert_eq!(
        applied.listeners,
        ListenerChanges {
            bound: 1,
            reconfigured: 0,
            kept: 1,
            retired: 1
        }
    );
    assert_eq!(addr_of(&proxy, "kept"), kept, "kept on its socket");
    assert!(accepts(addr_of(&proxy, "new")));
    assert!(accepts(kept));
    assert!(
        closes_soon(old).await,
        "the removed listener's socket is closed"
    );
}

#[tokio::test]
async fn a_listener_whose_limits_change_keeps_its_socket() {
    let listen = free_port();
    let text = config(&[("public", &listen)], &CLUSTERS);
    let mut proxy = Proxy::bind(parse(&text)).await.expect("binds");
    let changed = text.replace(
        &format!("listen = \"{listen}\"\n"),
        &format!("listen = \"{listen}\"\nmax_headers = 50\n"),
    );
    let outcome = proxy
        .apply(Ok(parse(&changed)), ReloadTrigger::Signal)
        .await;
    let ReloadOutcome::Applied(applied) = outcome else {
        panic!("applied: {outcome:?}")
    };
    assert_eq!(
        (applied.listeners.reconfigured, applied.listeners.bound),
        (1, 0)
    );
    assert_eq!(addr_of(&proxy, "public").to_string(), listen);
    assert!(accepts(addr_of(&proxy, "public")));
}

#[tokio::test]
async fn a_listener_that_cannot_bind_refuses_the_whole_reload() {
    let mut proxy = Proxy::bind(parse(&config(&[("public", "127.0.0.1:0")], &CLUSTERS)))
        .await
        .expect("binds");
    let taken = StdListener::bind("127.0.0.1:0").expect("a port to occupy");
    let taken_addr = taken.local_addr().expect("bound").to_string();
    let free = free_port();
    let before = proxy.runtime().snapshot();
    let outcome = proxy
        .apply(
            Ok(parse(&config(
                &[
                    ("public", "127.0.0.1:0"),
                    ("free", &free),
                    ("taken", &taken_addr),
                ],
                &[("a", "127.0.0.1:9001"), ("b", "127.0.0.1:9002")],
            ))),
            ReloadTrigger::Signal,
        )
        .await;
    let ReloadOutcome::Refused { errors, .. } = outcome else {
        panic!("refused: {outcome:?}")
    };
    let ConfigErrors(errors) = errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("\"taken\""), "{}", errors[0]);
    assert!(errors[0].location.is_some(), "points at the listen line");
    assert!(Arc::ptr_eq(&before, &proxy.runtime().snapshot()));
    assert_eq!(proxy.local_addrs().len(), 1);
    assert!(
        !accepts(free.parse().expect("an address")),
        "the socket bound for the refused plan is closed again"
    );
}

#[tokio::test]
async fn a_drain_with_nothing_in_flight_finishes_at_once_and_closes_the_sockets() {
    let proxy = Proxy::bind(parse(&config(&[("public", "127.0.0.1:0")], &CLUSTERS)))
        .await
        .expect("binds");
    let addr = addr_of(&proxy, "public");
    let report = proxy.drain().await;
    assert!(report.completed(), "{report:?}");
    assert!(!accepts(addr));
}
