//! The plan's arithmetic on any attribute values: whatever a client manages to store, a
//! chunk comes out as pieces (or an end), never as a panic or a blown stack.

use std::collections::HashMap;

use proptest::prelude::*;
use rand::SeedableRng;

use super::super::super::toxic::{Bandwidth, Latency, LimitData, SlowClose, Stream, TimeoutAttrs};
use super::*;

fn toxic(name: &str, kind: Kind) -> Toxic {
    Toxic {
        name: name.to_owned(),
        stream: Stream::Downstream,
        toxicity: 1.0,
        kind,
        first_connections: None,
        from_connection: 0,
    }
}

/// Checks that `bounds` cut `0..len` into slices, in order, none empty (but a lone empty
/// chunk's).
fn assert_covers(bounds: &[usize], len: usize) {
    assert_eq!(bounds.last(), Some(&len), "{bounds:?}");
    let mut at = 0;
    for &end in bounds {
        assert!(end > at || (len == 0 && end == 0), "{bounds:?}");
        at = end;
    }
}

#[test]
fn the_attackers_slicer_leaves_a_chunk_whole_instead_of_recursing_forever() {
    let mut rng = SmallRng::seed_from_u64(1);
    for (average, variation) in [(1 << 63 | 100, (1 << 63) - 50), (1 << 63 | 1, 1 << 63)] {
        let mut bounds = Vec::new();
        cut_points(0, 32 * 1024, average, variation, &mut rng, &mut bounds);
        assert_eq!(bounds, vec![32 * 1024]);
    }
}

#[test]
fn a_slicer_of_one_byte_cuts_a_large_chunk_without_a_deep_stack() {
    let mut rng = SmallRng::seed_from_u64(2);
    let mut bounds = Vec::new();
    cut_points(0, 1 << 20, 1, 0, &mut rng, &mut bounds);
    assert_eq!(bounds.len(), 1 << 20);
    assert_covers(&bounds, 1 << 20);
}

#[test]
fn a_latency_past_what_a_clock_holds_waits_for_ever_instead_of_panicking() {
    let latency = toxic(
        "latency",
        Kind::Latency(Latency {
            latency: u64::MAX,
            jitter: u64::MAX,
        }),
    );
    let mut seen = HashMap::new();
    let mut rng = SmallRng::seed_from_u64(3);
    refresh(&mut seen, std::slice::from_ref(&latency), &mut rng, 0);
    let now = Instant::now();
    let planned = plan(
        &[&latency, &latency],
        &mut seen,
        now,
        Bytes::from_static(b"x"),
        &mut rng,
    );
    assert!(planned.start >= now);
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (any::<u64>(), any::<u64>())
            .prop_map(|(latency, jitter)| Kind::Latency(Latency { latency, jitter })),
        any::<u64>().prop_map(|rate| Kind::Bandwidth(Bandwidth { rate })),
        any::<u64>().prop_map(|delay| Kind::SlowClose(SlowClose { delay })),
        any::<u64>().prop_map(|timeout| Kind::Timeout(TimeoutAttrs { timeout })),
        any::<u64>().prop_map(|timeout| Kind::ResetPeer(TimeoutAttrs { timeout })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(average_size, size_variation, delay)| {
                Kind::Slicer(Slicer {
                    average_size,
                    size_variation,
                    delay,
                })
            }
        ),
        any::<u64>().prop_map(|bytes| Kind::LimitData(LimitData { bytes })),
    ]
}

proptest! {
    #[test]
    fn slices_cover_any_chunk_for_any_sizes(
        len in 0usize..70_000,
        average in any::<u64>(),
        variation in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut bounds = Vec::new();
        cut_points(0, len, average, variation, &mut rng, &mut bounds);
        assert_covers(&bounds, len);
        if variation < average {
            let most = average.saturating_add(variation);
            let mut at = 0;
            for &end in &bounds {
                prop_assert!((end - at) as u64 <= most.max(1), "a slice of {}", end - at);
                at = end;
            }
        }
    }

    #[test]
    fn any_chain_of_any_attributes_plans_a_chunk_without_panicking(
        kinds in proptest::collection::vec(any_kind(), 1..5),
        len in 0usize..5_000,
        seed in any::<u64>(),
    ) {
        let chain: Vec<Toxic> = kinds
            .into_iter()
            .enumerate()
            .map(|(index, kind)| toxic(&format!("t{index}"), kind))
            .collect();
        let mut seen = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(seed);
        refresh(&mut seen, &chain, &mut rng, 0);
        let active: Vec<&Toxic> = chain.iter().collect();
        let now = Instant::now();
        let planned = plan(&active, &mut seen, now, Bytes::from(vec![7u8; len]), &mut rng);
        let out: usize = planned.pieces.iter().map(|(_, piece)| piece.len()).sum();
        prop_assert!(out <= len);
        prop_assert!(planned.start >= now);
        stall_of(&active, &seen);
        slow_close_of(&active);
    }
}

#[test]
fn adding_a_toxic_to_a_long_chain_draws_only_the_new_one_and_keeps_the_rest() {
    // NOTE: 20 000 toxics: before the name set, this refresh compared every name with
    // every other (4 * 10^8 string comparisons); now it is one pass.
    let mut chain: Vec<Toxic> = (0..20_000)
        .map(|index| {
            toxic(
                &format!("t{index}"),
                Kind::SlowClose(SlowClose { delay: 1 }),
            )
        })
        .collect();
    let mut seen = HashMap::new();
    let mut rng = SmallRng::seed_from_u64(4);
    refresh(&mut seen, &chain, &mut rng, 0);
    let since = seen["t0"].since;
    chain.push(toxic("new", Kind::Timeout(TimeoutAttrs { timeout: 5 })));
    let refreshed = refresh(&mut seen, &chain, &mut rng, 0);
    assert_eq!(
        refreshed.drawn,
        vec![Kind::Timeout(TimeoutAttrs::default()).index()]
    );
    assert_eq!(seen.len(), 20_001);
    assert_eq!(seen["t0"].since, since);
    chain.remove(0);
    let refreshed = refresh(&mut seen, &chain, &mut rng, 0);
    assert!(!refreshed.close && !seen.contains_key("t0"));
    assert_eq!(seen.len(), 20_000);
}
