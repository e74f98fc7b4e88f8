//! Any bytes as what a client sends through an `http_error` toxic: the request cutter
//! never panics, lets every byte out once and in order, cuts alike however the reads
//! fall (the first byte picks where they end), and holds no more than its limit; the
//! toxic itself never panics, and at toxicity 0 forwards every byte it does not hold.
#![no_main]

use blastwall_chaos::toxiproxy::http::cutter::{Cut, MAX_HEAD, RequestCutter};
use blastwall_chaos::toxiproxy::http::{Filtered, HttpFaults};
use blastwall_chaos::toxiproxy::toxic::HttpError;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// Runs the toxic over `data` in reads of `step` bytes: what it forwarded, answered, and
/// whether it closed.
fn through_toxic(data: &[u8], step: usize, toxicity: f64) -> Filtered {
    let mut faults = HttpFaults::default();
    let mut out = Filtered::default();
    let mut rng = SmallRng::seed_from_u64(u64::from(step as u32));
    let attrs = HttpError::default();
    for piece in data.chunks(step.max(1)) {
        faults.filter(Bytes::copy_from_slice(piece), &attrs, toxicity, &mut rng, &mut out);
        if out.close {
            break;
        }
    }
    out
}

fn cut(data: &[u8], step: usize) -> (Vec<u8>, Vec<&'static str>, Bytes) {
    let mut cutter = RequestCutter::default();
    let mut cuts = Vec::new();
    for piece in data.chunks(step.max(1)) {
        cutter.push(Bytes::copy_from_slice(piece), &mut cuts);
    }
    let mut out = Vec::new();
    let mut kinds: Vec<&'static str> = Vec::new();
    for cut in cuts {
        let kind = match cut {
            Cut::Head(bytes) => {
                out.extend_from_slice(&bytes);
                "head"
            }
            Cut::Body(bytes) => {
                out.extend_from_slice(&bytes);
                "body"
            }
            Cut::Opaque(bytes) => {
                out.extend_from_slice(&bytes);
                "opaque"
            }
            Cut::End => "end",
        };
        // Where the reads end splits bodies and opaque bytes, not the framing.
        if kinds.last() != Some(&kind) || kind == "head" || kind == "end" {
            kinds.push(kind);
        }
    }
    let held = cutter.take_held();
    (out, kinds, held)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let (whole, kinds, held) = cut(data, data.len());
    let (split, split_kinds, split_held) = cut(data, usize::from(step));
    assert!(held.len() <= MAX_HEAD);
    assert_eq!([&whole[..], &held[..]].concat(), data);
    assert_eq!((whole, kinds, held.clone()), (split, split_kinds, split_held));
    let open = through_toxic(data, usize::from(step), 0.0);
    assert!(open.answers.is_empty() && !open.close);
    assert_eq!([open.forward.concat(), held.to_vec()].concat(), data);
    let _ = through_toxic(data, usize::from(step), 0.5);
});
