//! Any bytes as the start of an HTTP/1 request head, as the listener's server reads them:
//! the checks and the head parser never panic, a complete head never claims more bytes than
//! it was given or than the limit, and a head cut in half is not whole.
#![no_main]

use blastwall_proxy::fuzzing::{Head, HeadLimits, check_head};
use blastwall_proxy::fuzzing::take_head;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 8192,
    max_headers: 32,
    max_request_body: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let verdict = check_head(data, &LIMITS);
    if let Ok(Head::Complete { len, .. }) = verdict {
        assert!(len <= data.len());
        assert!(len <= LIMITS.max_header_bytes);
        // Splitting the same head anywhere gives Partial or the same verdict at the end.
        let cut = data.len() / 2;
        if cut < len {
            assert!(!matches!(
                check_head(&data[..cut], &LIMITS),
                Ok(Head::Complete { .. })
            ));
        }
    }
    // Taking the head into a request agrees with the checks on where it ends.
    let mut buffer = BytesMut::from(data);
    match take_head(&mut buffer, &LIMITS) {
        Ok(Some(_)) => match verdict {
            Ok(Head::Complete { len, .. }) => assert_eq!(buffer.len(), data.len() - len),
            other => panic!("taken, but the checks said {other:?}"),
        },
        Ok(None) => assert!(matches!(verdict, Ok(Head::Partial))),
        Err(_) => {}
    }
});
