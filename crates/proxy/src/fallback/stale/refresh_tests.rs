//! The refresh rule: an entry younger than its refresh interval stands for its URL's next
//! answers (they pass untouched, uncopied), unless they would be kept by other rules or for
//! another variant. Time is the `now` each call is given, never waited for.

use std::time::Duration;
use std::time::Instant;

use http::StatusCode;
use http_body_util::BodyExt;

use super::tests::{cache, chunks, get, keep, limits, pass, response, secs, served};
use crate::config::fallback::StaleIfErrorConfig;
use crate::fallback::Provenance;

fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn body_served(cache: &super::StaleCache, path: &str, now: Instant) -> Option<String> {
    let (_, _, body) = served(cache, &get(path, &[]), now).await?;
    Some(String::from_utf8(body.to_vec()).expect("the tests' bodies are text"))
}

#[tokio::test]
async fn an_entry_younger_than_its_refresh_interval_stands_for_its_urls_next_answers() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "v1", t0).await;
    let read = pass(
        &cache,
        &get("/a", &[]),
        response(200, &[], chunks(&["v", "2"])),
        t0 + millis(999),
    )
    .await
    .unwrap();
    assert_eq!(
        &read[..],
        b"v2",
        "the client still reads the new answer whole"
    );
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(2)).await.as_deref(),
        Some("v1")
    );
    assert_eq!(cache.stats.stale_stored.get(), 1);

    keep(&cache, "/a", &[], "v3", t0 + secs(1)).await;
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(2)).await.as_deref(),
        Some("v3")
    );
    assert_eq!(cache.stats.stale_stored.get(), 2);
}

#[tokio::test]
async fn an_answer_the_entry_stands_for_is_neither_wrapped_nor_copied() {
    let cache = cache(limits());
    let t0 = Instant::now();
    let request = get("/a", &[]);
    let mut copied = cache
        .capture(
            &request,
            Provenance::default(),
            response(200, &[], chunks(&["one", "two"])),
            t0,
        )
        .into_body();
    let _first = copied.frame().await;
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    while copied.frame().await.is_some() {}
    drop(copied);

    let mut passed = cache
        .capture(
            &request,
            Provenance::default(),
            response(200, &[], chunks(&["one", "two"])),
            t0 + millis(10),
        )
        .into_body();
    let _first = passed.frame().await;
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing is copied"
    );
}

#[tokio::test]
async fn a_new_status_new_cache_control_or_another_variant_replaces_the_entry_at_once() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "ok", t0).await;
    let gone = response(404, &[], chunks(&["gone"]));
    pass(&cache, &get("/a", &[]), gone, t0 + millis(1))
        .await
        .unwrap();
    let (status, _, _) = served(&cache, &get("/a", &[]), t0 + millis(2))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "a new status");

    keep(&cache, "/b", &[("cache-control", "max-age=1")], "short", t0).await;
    keep(
        &cache,
        "/b",
        &[("cache-control", "max-age=100")],
        "long",
        t0,
    )
    .await;
    assert_eq!(
        body_served(&cache, "/b", t0 + secs(150)).await.as_deref(),
        Some("long"),
        "new directives"
    );

    let vary = [("vary", "accept-encoding")];
    let gzip = get("/c", &[("accept-encoding", "gzip")]);
    let br = get("/c", &[("accept-encoding", "br")]);
    pass(&cache, &gzip, response(200, &vary, chunks(&["z"])), t0)
        .await
        .unwrap();
    pass(&cache, &br, response(200, &vary, chunks(&["b"])), t0)
        .await
        .unwrap();
    assert!(served(&cache, &br, t0).await.is_some(), "another variant");
    assert!(
        served(&cache, &gzip, t0).await.is_none(),
        "one variant per key"
    );
}

#[tokio::test]
async fn an_entry_with_a_short_window_is_refreshed_within_a_tenth_of_it() {
    let cache = cache(StaleIfErrorConfig {
        max_age: secs(5),
        ..limits()
    });
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "v1", t0).await;
    keep(&cache, "/a", &[], "v2", t0 + millis(499)).await;
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("v1")
    );
    keep(&cache, "/a", &[], "v3", t0 + millis(500)).await;
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("v3")
    );

    // Served stale for no time at all (s-maxage without stale-if-error): never stands.
    let never = [("cache-control", "s-maxage=0")];
    keep(&cache, "/s", &never, "s1", t0).await;
    keep(&cache, "/s", &never, "s2", t0).await;
    assert_eq!(body_served(&cache, "/s", t0).await.as_deref(), Some("s2"));
}
