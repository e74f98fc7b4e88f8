//! The refresh rule: an entry younger than its refresh interval stands for its URL's next
//! answers with the same head (their bodies compared, not copied; a changed body becomes the
//! entry's), unless they would be kept by other rules or for another variant. Time is the
//! `now` each call is given, never waited for.

use std::time::Duration;
use std::time::Instant;

use std::collections::VecDeque;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Frame;

use super::tests::{Frames, cache, chunks, get, keep, limits, pass, response, secs, served};
use crate::body::BoxError;
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
async fn an_entry_younger_than_its_refresh_interval_stands_for_the_same_answer() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "v1", t0).await;
    let read = pass(
        &cache,
        &get("/a", &[]),
        response(200, &[], chunks(&["v", "1"])),
        t0 + millis(999),
    )
    .await
    .unwrap();
    assert_eq!(&read[..], b"v1", "the client still reads the answer whole");
    assert_eq!(cache.stats.stale_stored.get(), 1, "not stored again");
    let (_, headers, _) = served(&cache, &get("/a", &[]), t0 + secs(2)).await.unwrap();
    assert_eq!(
        headers["age"], "2",
        "its window counts from the first answer"
    );

    keep(&cache, "/a", &[], "v1", t0 + secs(1)).await;
    assert_eq!(
        cache.stats.stale_stored.get(),
        2,
        "stored again after the interval"
    );
}

#[tokio::test]
async fn a_changed_body_becomes_the_entrys_body_at_once() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "catalog v1", t0).await;
    let changed = response(200, &[], chunks(&["catalog", " v2"]));
    pass(&cache, &get("/a", &[]), changed, t0 + millis(10))
        .await
        .unwrap();
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("catalog v2")
    );
    let shorter = response(200, &[], chunks(&["cat"]));
    pass(&cache, &get("/a", &[]), shorter, t0 + millis(20))
        .await
        .unwrap();
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("cat"),
        "a body that ends short of the entry's"
    );
    let longer = response(200, &[], chunks(&["cat", "alog v3"]));
    pass(&cache, &get("/a", &[]), longer, t0 + millis(30))
        .await
        .unwrap();
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("catalog v3")
    );
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "every copy returned its budget"
    );
}

#[tokio::test]
async fn a_changed_body_that_fails_or_has_trailers_leaves_the_entry_as_it_was() {
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/a", &[], "v1", t0).await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let with_trailers = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"v2"))),
        Ok(Frame::trailers(trailers)),
    ]));
    pass(
        &cache,
        &get("/a", &[]),
        response(200, &[], with_trailers.boxed()),
        t0 + millis(1),
    )
    .await
    .unwrap();
    let failing = Frames(VecDeque::from([
        Ok(Frame::data(Bytes::from_static(b"v3"))),
        Err(BoxError::from("connection reset")),
    ]));
    let read = pass(
        &cache,
        &get("/a", &[]),
        response(200, &[], failing.boxed()),
        t0 + millis(2),
    )
    .await;
    assert!(read.is_err());
    assert_eq!(
        body_served(&cache, "/a", t0 + secs(1)).await.as_deref(),
        Some("v1")
    );
    assert_eq!(
        cache.capturing.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_request_with_a_cookie_is_never_stood_for() {
    // Its answer is judged by the rules again: not kept unless it says public, so a
    // cookie-holder's page never becomes the entry's body by being compared.
    let cache = cache(limits());
    let t0 = Instant::now();
    keep(&cache, "/me", &[], "anyone's", t0).await;
    let alice = get("/me", &[("cookie", "session=alice")]);
    pass(&cache, &alice, response(200, &[], chunks(&["alice's"])), t0)
        .await
        .unwrap();
    assert_eq!(
        body_served(&cache, "/me", t0).await.as_deref(),
        Some("anyone's")
    );
}

#[tokio::test]
async fn an_answer_the_entry_stands_for_is_compared_not_copied() {
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
    keep(&cache, "/a", &[], "v1", t0 + millis(499)).await;
    assert_eq!(cache.stats.stale_stored.get(), 1);
    keep(&cache, "/a", &[], "v1", t0 + millis(500)).await;
    assert_eq!(cache.stats.stale_stored.get(), 2);

    // Served stale for no time at all (s-maxage without stale-if-error): never stands.
    let never = [("cache-control", "s-maxage=0")];
    keep(&cache, "/s", &never, "s1", t0).await;
    keep(&cache, "/s", &never, "s1", t0).await;
    assert_eq!(cache.stats.stale_stored.get(), 4);
}
