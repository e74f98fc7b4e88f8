//! Toxics as the API reads and writes them.

use serde_json::json;

use super::*;

#[test]
fn a_create_body_with_only_a_type_gets_toxiproxys_defaults() {
    let toxic = Toxic::from_create(&json!({"type": "latency"})).expect("valid");
    assert_eq!(toxic.name, "latency_downstream");
    assert_eq!(toxic.stream, Stream::Downstream);
    assert_eq!(toxic.toxicity, 1.0);
    assert_eq!(toxic.kind, Kind::Latency(Latency::default()));
}

#[test]
fn an_update_keeps_the_attributes_it_does_not_name() {
    let toxic = Toxic::from_create(&json!({
        "type": "latency", "stream": "upstream", "toxicity": 0.5,
        "attributes": {"latency": 100, "jitter": 10}
    }))
    .expect("valid");
    let updated = toxic
        .updated(&json!({"attributes": {"latency": 300}}))
        .expect("valid");
    assert_eq!(updated.toxicity, 0.5);
    assert_eq!(
        updated.kind,
        Kind::Latency(Latency {
            latency: 300,
            jitter: 10
        })
    );
    assert_eq!(
        updated.to_json(),
        json!({"attributes": {"latency": 300, "jitter": 10}, "name": "latency_upstream",
               "type": "latency", "stream": "upstream", "toxicity": 0.5})
    );
}

#[test]
fn unknown_types_streams_and_bad_attributes_are_400s_that_say_why() {
    let unknown = Toxic::from_create(&json!({"type": "nope"})).expect_err("invalid");
    assert_eq!(
        (unknown.status, unknown.message.as_str()),
        (400, "invalid toxic type")
    );
    let stream =
        Toxic::from_create(&json!({"type": "latency", "stream": "sideways"})).expect_err("invalid");
    assert_eq!(
        stream.message,
        "stream was invalid, can be either upstream or downstream"
    );
    let negative = Toxic::from_create(&json!({"type": "latency", "attributes": {"latency": -1}}))
        .expect_err("invalid");
    assert!(
        negative.message.starts_with("bad request body: attributes"),
        "{negative:?}"
    );
    let slicer = Toxic::from_create(&json!({"type": "slicer", "attributes": {"average_size": 0}}))
        .expect_err("invalid");
    assert_eq!(slicer.status, 400);
}

#[test]
fn first_connections_is_echoed_only_when_set_and_kept_by_an_update() {
    let plain = Toxic::from_create(&json!({"type": "latency"})).expect("valid");
    assert!(plain.to_json().get("first_connections").is_none());
    let first =
        Toxic::from_create(&json!({"type": "latency", "first_connections": 2})).expect("valid");
    assert_eq!(first.first_connections, Some(2));
    assert_eq!(first.to_json()["first_connections"], 2);
    let updated = first
        .updated(&json!({"attributes": {"latency": 5}}))
        .expect("valid");
    assert_eq!(updated.first_connections, Some(2));
    let changed = first
        .updated(&json!({"first_connections": 7}))
        .expect("valid");
    assert_eq!(changed.first_connections, Some(7));
}

#[test]
fn first_connections_must_be_a_count_of_at_least_one() {
    for bad in [json!(0), json!(-1), json!(1.5), json!("2")] {
        let err = Toxic::from_create(&json!({"type": "latency", "first_connections": bad}))
            .expect_err("invalid");
        assert_eq!(err.status, 400);
        assert!(err.message.contains("first_connections"), "{err:?}");
    }
}

#[test]
fn a_toxic_covers_the_next_n_connections_after_its_creation_only() {
    let mut toxic =
        Toxic::from_create(&json!({"type": "latency", "first_connections": 2})).expect("valid");
    toxic.from_connection = 3;
    let covered: Vec<u64> = (0..8).filter(|&n| toxic.covers(n)).collect();
    assert_eq!(covered, [3, 4]);
    toxic.first_connections = None;
    assert!(
        (0..8).all(|n| toxic.covers(n)),
        "without it: every connection"
    );
}

#[test]
fn http_error_acts_on_requests_so_its_stream_is_upstream_and_its_status_a_real_one() {
    let toxic = Toxic::from_create(&json!({"type": "http_error"})).expect("valid");
    assert_eq!(
        (toxic.stream, toxic.name.as_str()),
        (Stream::Upstream, "http_error_upstream")
    );
    assert_eq!(
        toxic.kind,
        Kind::HttpError(HttpError {
            status: 503,
            body: String::new()
        })
    );
    let down = Toxic::from_create(&json!({"type": "http_error", "stream": "downstream"}))
        .expect_err("invalid");
    assert!(
        down.message.contains("its stream must be upstream"),
        "{down:?}"
    );
    for status in [0, 99, 199, 600] {
        let err =
            Toxic::from_create(&json!({"type": "http_error", "attributes": {"status": status}}))
                .expect_err("invalid");
        assert!(err.message.contains("from 200 to 599"), "{err:?}");
    }
    let mut toxic = toxic;
    toxic.from_connection = 2;
    assert!(
        !toxic.covers(1),
        "not a connection opened before it: mid-request"
    );
    assert!(toxic.covers(2));
}

#[test]
fn attributes_past_what_toxiproxy_decodes_are_400s_that_name_the_field() {
    let huge = LARGEST + 1;
    for (kind, field) in [
        ("latency", "latency"),
        ("latency", "jitter"),
        ("bandwidth", "rate"),
        ("slow_close", "delay"),
        ("timeout", "timeout"),
        ("reset_peer", "timeout"),
        ("slicer", "average_size"),
        ("slicer", "delay"),
        ("limit_data", "bytes"),
    ] {
        let err = Toxic::from_create(&json!({"type": kind, "attributes": {field: huge}}))
            .expect_err("too large");
        assert_eq!(err.status, 400, "{kind} {field}");
        assert!(
            err.message
                .contains(&format!("{kind} {field} must be at most {LARGEST}")),
            "{err:?}"
        );
    }
    let slicer = json!({"type": "slicer",
        "attributes": {"average_size": LARGEST, "size_variation": LARGEST - 1}});
    assert!(Toxic::from_create(&slicer).is_ok());
}
