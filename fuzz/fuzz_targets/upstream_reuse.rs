//! Any bytes as what an HTTP/1.1 endpoint sends on one kept connection, answer after
//! answer, through the same head parser, body framing and keep decision the connection
//! runs (`upstream::replay`).
//!
//! Checks that an answer leaves its connection for another request only when its framing
//! ended exactly at the last byte read (a byte past it would be read as the next client's
//! answer), never when its body runs until close; that a length-framed body is exactly its
//! length and a body-less answer has none; and that how the bytes were cut into reads
//! changes nothing but whether the connection is kept (an answer ending exactly where a
//! read ended is kept, the same answer followed by more in the same read is not).
//!
//! Input: byte 0 says, bit by bit, which of up to 8 answers answer a `HEAD`; bytes 1 to 4
//! are two cut points (little-endian u16s, modulo the length) splitting the rest into
//! reads.
#![no_main]

use blastwall_proxy::fuzzing::upstream::{Framing, replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, a0, a1, b0, b1, stream @ ..] = data else {
        return;
    };
    let len = stream.len();
    let mut cuts = [
        usize::from(u16::from_le_bytes([*a0, *a1])) % (len + 1),
        usize::from(u16::from_le_bytes([*b0, *b1])) % (len + 1),
    ];
    cuts.sort_unstable();
    let reads = [
        &stream[..cuts[0]],
        &stream[cuts[0]..cuts[1]],
        &stream[cuts[1]..],
    ];
    let mut reads = reads.into_iter().filter(|read| !read.is_empty());
    let mut offset = 0;
    for answer in 0..8 {
        let head_request = flags >> answer & 1 == 1;
        let Ok(replayed) = replay(&mut reads, head_request) else {
            return;
        };
        assert!(replayed.taken <= replayed.read, "{replayed:?}");
        assert!(offset + replayed.read <= len);
        if replayed.kept {
            assert_eq!(
                replayed.taken, replayed.read,
                "kept with bytes past the framing: {replayed:?}"
            );
            assert_ne!(replayed.framing, Framing::UntilClose);
        }
        match replayed.framing {
            Framing::Length(length) => assert_eq!(replayed.body.len() as u64, length),
            Framing::Empty => assert!(replayed.body.is_empty()),
            Framing::Chunked | Framing::UntilClose => {}
        }
        if head_request {
            assert_eq!(replayed.framing, Framing::Empty);
        }
        // The same bytes in one read: the same answer, ending at the same byte.
        let seen = &stream[offset..offset + replayed.read];
        let once = replay(&mut std::iter::once(seen), head_request)
            .expect("the same bytes in one read are the same answer");
        assert_eq!(once, replayed, "the reads' cuts changed the answer");
        if !replayed.kept {
            return;
        }
        offset += replayed.read;
    }
});
