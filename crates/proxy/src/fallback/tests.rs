use std::path::Path;
use std::time::Instant;

use http::{Request, Response};
use http_body_util::BodyExt;

use super::{Provenance, RouteFallback};
use crate::body;
use crate::config::{Config, RouteConfig};

fn route(fallback: &str) -> RouteConfig {
    let text = format!(
        "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\n[[route]]\nname = \"shop\"\ncluster = \"api\"\n[route.fallback]\n{fallback}\n\n[cluster.api]\nendpoints = [{{ address = \"127.0.0.1:9\" }}]\n"
    );
    let config = Config::parse(&text, Path::new("blastwall.toml")).unwrap();
    config.routes[0].clone()
}

#[tokio::test]
async fn the_stale_cache_and_counters_survive_a_reload_that_keeps_the_route() {
    let first = RouteFallback::new(&route("stale_if_error = {}"), None);
    let request = Request::get("http://shop.example/a").body(()).unwrap();
    let (request, ()) = request.into_parts();
    let observed = first.observe(
        &request,
        Provenance::default(),
        Response::new(body::full("kept")),
    );
    observed.into_body().collect().await.unwrap();
    assert_eq!(first.stats().stale_stored.get(), 1);

    let resized = RouteFallback::new(
        &route("stale_if_error = { max_entries = 5 }\nkill_switch = true"),
        Some(&first),
    );
    let cache = resized.stale.as_ref().expect("still has a cache");
    assert!(
        cache
            .lookup(&request, Provenance::default(), Instant::now())
            .is_some()
    );
    assert!(resized.killed(), "the key changed");
    assert!(std::sync::Arc::ptr_eq(resized.stats(), first.stats()));

    let without = RouteFallback::new(&route("static = {}\nkill_switch = true"), Some(&resized));
    assert!(without.stale.is_none());
    assert_eq!(without.stats().cache_entries.get(), 0);
}

#[test]
fn only_a_failure_of_the_cluster_opens_the_stale_cache() {
    use super::FallbackReason;
    for reason in [
        FallbackReason::Failed,
        FallbackReason::BreakerOpen,
        FallbackReason::Timeout,
        FallbackReason::Overloaded,
    ] {
        assert!(reason.cluster_failed(), "{reason:?}");
    }
    // A request the proxy shed, or whose caller's own time ran out, says nothing about the
    // cluster: any client can arrange either while the cluster answers.
    for reason in [FallbackReason::Shed, FallbackReason::CallerDeadline] {
        assert!(!reason.cluster_failed(), "{reason:?}");
    }
    // Nor does the application's own 500 to one request: input it fails on provokes it.
    assert!(!FallbackReason::ServerError.cluster_failed());
}
