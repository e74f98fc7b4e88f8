//! Any bytes as what an HTTP/1.1 endpoint answers: the head parser and the chunked decoder
//! never panic, never take more bytes than they were given, and take the same answer
//! whether the bytes come at once or split in two.
#![no_main]

use blastwall_proxy::fuzzing::upstream::{Decoded, Decoder, Framing, take_head};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// The body's bytes as decoded, and whether it ended, feeding `pieces` in turn.
fn decode(pieces: &[&[u8]]) -> Option<(Vec<u8>, bool)> {
    let mut decoder = Decoder::new();
    let mut buffer = BytesMut::new();
    let mut data = Vec::new();
    for piece in pieces {
        buffer.extend_from_slice(piece);
        loop {
            let before = buffer.len();
            match decoder.decode(&mut buffer).ok()? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::Trailers(_) => {}
                Decoded::End => return Some((data, true)),
                Decoded::NeedMore => break,
            }
            assert!(buffer.len() <= before);
        }
    }
    Some((data, false))
}

fuzz_target!(|data: &[u8]| {
    let head_request = data.first().is_some_and(|byte| byte & 1 == 1);
    let mut buffer = BytesMut::from(data);
    let Ok(Some(head)) = take_head(&mut buffer, head_request) else {
        return;
    };
    assert!(buffer.len() < data.len());
    if head.framing == Framing::Chunked {
        let body = buffer.to_vec();
        let whole = decode(&[&body]);
        let cut = body.len() / 2;
        let split = decode(&[&body[..cut], &body[cut..]]);
        if let (Some(whole), Some(split)) = (whole, split) {
            assert_eq!(whole, split);
        }
    }
});
