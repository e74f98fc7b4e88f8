//! Any bytes as the start of an HTTP/1 request head: the checks never panic, a complete head
//! never claims more bytes than it was given, and a head they accept is one hyper's parser
//! (httparse, through `http`) would also take apart into a request.
#![no_main]

use blastwall_proxy::listener::checks::{Head, HeadLimits, check_head};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 8192,
    max_headers: 32,
    max_request_body: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(Head::Complete { len, .. }) = check_head(data, &LIMITS) {
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
});
