//! The request cutter and the `http_error` toxic, without sockets: framing by hand-made
//! cases, then properties over any bytes cut anywhere.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::cutter::{Cut, MAX_HEAD, RequestCutter};
use super::*;

/// The cuts of `input` pushed in pieces cut at `splits`, with adjacent body or opaque
/// pieces joined (where a read ends is not the cutter's business).
fn cuts(input: &[u8], splits: &[usize]) -> Vec<Cut> {
    cuts_and_held(input, splits).0
}

/// [`cuts`], and what the cutter still holds at the end (an incomplete piece).
fn cuts_and_held(input: &[u8], splits: &[usize]) -> (Vec<Cut>, Bytes) {
    let mut cutter = RequestCutter::default();
    let mut out = Vec::new();
    let mut at = 0;
    let mut bounds: Vec<usize> = splits.iter().map(|s| s % (input.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    for end in bounds {
        if end > at {
            cutter.push(Bytes::copy_from_slice(&input[at..end]), &mut out);
            at = end;
        }
    }
    (joined(out), cutter.take_held())
}

fn joined(cuts: Vec<Cut>) -> Vec<Cut> {
    let mut out: Vec<Cut> = Vec::new();
    for cut in cuts {
        match (out.last_mut(), cut) {
            (Some(Cut::Body(last)), Cut::Body(more))
            | (Some(Cut::Opaque(last)), Cut::Opaque(more)) => {
                let mut both = BytesMut::from(&last[..]);
                both.extend_from_slice(&more);
                *last = both.freeze();
            }
            (_, cut) => out.push(cut),
        }
    }
    out
}

fn head(text: &str) -> Cut {
    Cut::Head(Bytes::copy_from_slice(text.as_bytes()))
}

fn body(text: &str) -> Cut {
    Cut::Body(Bytes::copy_from_slice(text.as_bytes()))
}

fn opaque(text: &[u8]) -> Cut {
    Cut::Opaque(Bytes::copy_from_slice(text))
}

#[test]
fn keep_alive_requests_are_cut_at_their_content_length() {
    let input =
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
    assert_eq!(
        cuts(input.as_bytes(), &[]),
        [
            head("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
            body("hello"),
            Cut::End,
            head("GET /b HTTP/1.1\r\n\r\n"),
            Cut::End,
        ]
    );
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
    let chunked = "4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\n";
    let input = format!(
        "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}GET / HTTP/1.1\r\n\r\n"
    );
    for split in [
        vec![],
        vec![1, 30, 47, 50, 60, 70],
        (0..input.len()).collect(),
    ] {
        assert_eq!(
            cuts(input.as_bytes(), &split),
            [
                head("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                body(chunked),
                Cut::End,
                head("GET / HTTP/1.1\r\n\r\n"),
                Cut::End,
            ],
            "split at {split:?}"
        );
    }
}

#[test]
fn what_cannot_be_framed_for_sure_turns_the_rest_opaque() {
    let cases: [&[u8]; 7] = [
        b"\x16\x03\x01 a TLS hello, not HTTP\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi",
    ];
    for input in cases {
        assert_eq!(
            cuts(input, &[]),
            [opaque(input)],
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn a_bad_chunk_size_makes_the_body_opaque_from_there() {
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nGET / HTTP/1.1\r\n\r\n";
    let got = cuts(input, &[]);
    assert_eq!(got[1], body("3\r\nabc\r\n"));
    assert_eq!(got[2], opaque(b"zz\r\nGET / HTTP/1.1\r\n\r\n"));
    let missing_crlf = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY";
    assert!(matches!(
        cuts(missing_crlf, &[]).last(),
        Some(Cut::Opaque(_))
    ));
    let overflow = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff0\r\n";
    assert!(matches!(cuts(overflow, &[]).last(), Some(Cut::Opaque(_))));
}

#[test]
fn an_upgrade_or_connect_request_ends_the_framing_after_it() {
    let input =
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello";
    let got = cuts(input, &[]);
    assert_eq!(got[1..], [Cut::End, opaque(b"\x81\x05hello")]);
    let connect = b"CONNECT db:5432 HTTP/1.1\r\n\r\nbinary";
    assert_eq!(cuts(connect, &[])[1..], [Cut::End, opaque(b"binary")]);
}

#[test]
fn a_head_longer_than_the_limit_is_opaque_and_not_held_beyond_it() {
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    while input.len() <= MAX_HEAD {
        input.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let mut cutter = RequestCutter::default();
    let mut out = Vec::new();
    for byte in &input {
        cutter.push(Bytes::copy_from_slice(&[*byte]), &mut out);
    }
    assert!(
        matches!(out.first(), Some(Cut::Opaque(_))),
        "given up before the end"
    );
    assert!(cutter.take_held().is_empty(), "nothing held once opaque");
    assert_eq!(joined(out), [opaque(&input)]);
}

fn attrs() -> HttpError {
    HttpError {
        status: 503,
        body: "down".to_owned(),
    }
}

fn filter(faults: &mut HttpFaults, toxicity: f64, input: &[u8]) -> Filtered {
    let mut out = Filtered::default();
    let mut rng = SmallRng::seed_from_u64(1);
    faults.filter(
        Bytes::copy_from_slice(input),
        &attrs(),
        toxicity,
        &mut rng,
        &mut out,
    );
    out
}

#[test]
fn every_request_is_answered_at_toxicity_one_and_none_forwarded() {
    let mut faults = HttpFaults::default();
    let input = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\n\r\n";
    let out = filter(&mut faults, 1.0, input);
    assert!(out.forward.is_empty(), "{:?}", out.forward);
    assert_eq!(out.answers.len(), 2);
    assert_eq!(
        out.answers[0],
        Bytes::from_static(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 4\r\nx-blastwall-toxic: http_error\r\n\r\ndown"
        )
    );
    assert!(!out.close);
}

#[test]
fn at_toxicity_zero_every_byte_goes_through_in_order() {
    let mut faults = HttpFaults::default();
    let input = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\n\r\n";
    let out = filter(&mut faults, 0.0, input);
    assert_eq!(out.forward.concat(), input);
    assert!(out.answers.is_empty());
}

#[test]
fn an_answer_waits_for_the_whole_request_body() {
    let mut faults = HttpFaults::default();
    let first = filter(
        &mut faults,
        1.0,
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab",
    );
    assert!(first.answers.is_empty(), "the body is not over");
    let rest = filter(&mut faults, 1.0, b"cd");
    assert_eq!(rest.answers.len(), 1);
}

#[test]
fn garbage_inside_an_answered_body_closes_the_connection() {
    let mut faults = HttpFaults::default();
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n";
    let out = filter(&mut faults, 1.0, input);
    assert!(out.close && out.forward.is_empty() && out.answers.is_empty());
}

#[test]
fn what_is_not_http_passes_through_untouched() {
    let mut faults = HttpFaults::default();
    let out = filter(&mut faults, 1.0, b"\x00\x01 binary protocol\n\n");
    assert_eq!(out.forward.concat(), b"\x00\x01 binary protocol\n\n");
    assert!(out.answers.is_empty() && !out.close);
}

#[test]
fn a_toxic_removed_mid_head_hands_the_head_on_and_mid_answered_body_closes() {
    let mut faults = HttpFaults::default();
    let out = filter(&mut faults, 1.0, b"GET / HTT");
    assert!(out.forward.is_empty());
    assert_eq!(
        faults.release(),
        Release::Forward(Bytes::from_static(b"GET / HTT"))
    );
    let mut faults = HttpFaults::default();
    filter(
        &mut faults,
        1.0,
        b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab",
    );
    assert_eq!(faults.release(), Release::Close);
}

/// Every byte comes out once and in order (held ones last), and the cuts do not depend
/// on where the reads ended.
fn once_in_order(input: &[u8], splits: &[usize]) -> Result<(), TestCaseError> {
    let (whole, held) = cuts_and_held(input, &[]);
    let split = cuts_and_held(input, splits);
    prop_assert_eq!((&whole, &held), (&split.0, &split.1));
    let mut out = Vec::new();
    for cut in whole {
        match cut {
            Cut::Head(bytes) | Cut::Body(bytes) | Cut::Opaque(bytes) => {
                out.extend_from_slice(&bytes)
            }
            Cut::End => {}
        }
    }
    out.extend_from_slice(&held);
    prop_assert_eq!(out, input);
    Ok(())
}

/// A request with a body framed one of the three ways, as a client would send it.
fn request() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let body = proptest::collection::vec(any::<u8>(), 0..40);
    let chunks = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 0..4);
    prop_oneof![
        Just((b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), false)),
        body.prop_map(|body| {
            let mut out =
                format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend(body);
            (out, true)
        }),
        chunks.prop_map(|chunks| {
            let mut out = b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n".to_vec();
            for chunk in chunks {
                out.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
                out.extend(chunk);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
            (out, true)
        }),
    ]
}

proptest! {
    #[test]
    fn any_bytes_cut_anywhere_come_out_once_in_order_and_cut_alike(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        splits in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        once_in_order(&input, &splits)?;
    }

    #[test]
    fn requests_with_a_byte_gone_wrong_still_come_out_once_in_order(
        requests in proptest::collection::vec(request(), 1..5),
        at in any::<usize>(),
        byte in any::<u8>(),
        splits in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut input: Vec<u8> = requests.iter().flat_map(|(bytes, _)| bytes.clone()).collect();
        let len = input.len();
        input[at % len] = byte;
        once_in_order(&input, &splits)?;
    }

    #[test]
    fn pipelined_requests_are_each_found_whatever_the_reads(
        requests in proptest::collection::vec(request(), 1..6),
        splits in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let input: Vec<u8> = requests.iter().flat_map(|(bytes, _)| bytes.clone()).collect();
        let got = cuts(&input, &splits);
        let heads = got.iter().filter(|cut| matches!(cut, Cut::Head(_))).count();
        let ends = got.iter().filter(|cut| matches!(cut, Cut::End)).count();
        prop_assert_eq!((heads, ends), (requests.len(), requests.len()));
        prop_assert!(!got.iter().any(|cut| matches!(cut, Cut::Opaque(_))));
    }

    #[test]
    fn the_toxic_answers_or_forwards_each_request_whole(
        requests in proptest::collection::vec(request(), 1..6),
        toxicity in 0.0f64..=1.0,
        seed in any::<u64>(),
    ) {
        let input: Vec<u8> = requests.iter().flat_map(|(bytes, _)| bytes.clone()).collect();
        let mut faults = HttpFaults::default();
        let mut out = Filtered::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        faults.filter(Bytes::from(input), &attrs(), toxicity, &mut rng, &mut out);
        // What was forwarded is whole requests: cutting it again finds only requests.
        let forwarded = out.forward.concat();
        let again = cuts(&forwarded, &[]);
        let heads = again.iter().filter(|cut| matches!(cut, Cut::Head(_))).count();
        prop_assert_eq!(heads + out.answers.len(), requests.len());
        prop_assert!(!out.close);
    }
}
