use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 1024,
    max_headers: 8,
    max_request_body: 100,
};

fn head(text: &str) -> Result<Head, Rejection> {
    check_head(text.as_bytes(), &LIMITS)
}

fn refused(text: &str) -> (ProxyError, String) {
    let rejection = head(text).expect_err("refused");
    (rejection.error, rejection.reason)
}

#[test]
fn a_plain_head_is_complete_with_its_framing() {
    let text = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(
        head(text),
        Ok(Head::Complete {
            len: text.len() - 5,
            framing: Framing::Length(5)
        })
    );
    let chunked = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert!(matches!(
        head(chunked),
        Ok(Head::Complete {
            framing: Framing::Chunked,
            ..
        })
    ));
    let upgrade = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
    assert!(matches!(
        head(upgrade),
        Ok(Head::Complete {
            framing: Framing::Length(0),
            ..
        })
    ));
    let connect = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
    assert!(matches!(
        head(connect),
        Ok(Head::Complete {
            framing: Framing::Opaque,
            ..
        })
    ));
    assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(Head::Partial));
}

#[test]
fn both_content_length_and_transfer_encoding_are_refused_in_either_order() {
    for text in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    ] {
        let (error, reason) = refused(text);
        assert_eq!(error, ProxyError::BadRequest);
        assert!(
            reason.contains("both Content-Length and Transfer-Encoding"),
            "{reason}"
        );
    }
}

#[test]
fn ambiguous_lengths_and_codings_are_refused() {
    let cases = [
        ("Content-Length: 4\r\nContent-Length: 5", "conflicting"),
        ("Content-Length: 4, 4", "malformed"),
        ("Content-Length: +4", "malformed"),
        ("Content-Length: 0x10", "malformed"),
        ("Content-Length: 99999999999999999999999", "malformed"),
        ("Transfer-Encoding: chunked, gzip", "after chunked"),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            "after chunked",
        ),
        // An empty Transfer-Encoding line is refused wherever it comes, not only first
        // (found by the request_head_differential fuzz target).
        ("Transfer-Encoding: \r\nTransfer-Encoding: chunked", "empty"),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: ,",
            "empty",
        ),
    ];
    for (header, expected) in cases {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n");
        let (error, reason) = refused(&text);
        assert_eq!(error, ProxyError::BadRequest, "{header}");
        assert!(reason.contains(expected), "{header}: {reason}");
    }
    let (_, reason) = refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(reason.contains("HTTP/1.0"), "{reason}");
    let repeated = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(
        head(repeated),
        Ok(Head::Complete {
            len: repeated.len(),
            framing: Framing::Length(4)
        }),
        "repeated equal lengths are one length"
    );
}

#[test]
fn folded_lines_and_space_before_the_colon_are_malformed() {
    for text in [
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\tX: 1\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\nX\r\n\r\n",
    ] {
        let (error, reason) = refused(text);
        assert_eq!(error, ProxyError::BadRequest, "{text:?}");
        assert!(reason.starts_with("malformed request head"), "{reason}");
    }
}

#[test]
fn heads_over_the_limits_are_too_large_even_unfinished() {
    let many: String = (0..9).map(|n| format!("X-{n}: v\r\n")).collect();
    let (error, _) = refused(&format!("GET / HTTP/1.1\r\n{many}\r\n"));
    assert_eq!(error, ProxyError::RequestHeadersTooLarge);
    let exactly: String = (0..7).map(|n| format!("X-{n}: v\r\n")).collect();
    assert!(head(&format!("GET / HTTP/1.1\r\nHost: a\r\n{exactly}\r\n")).is_ok());
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}", "a".repeat(1100));
    assert_eq!(refused(&long).0, ProxyError::RequestHeadersTooLarge);
    let complete = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(1000));
    assert_eq!(refused(&complete).0, ProxyError::RequestHeadersTooLarge);
}

#[test]
fn heads_past_the_stack_array_are_parsed_on_the_heap() {
    let limits = HeadLimits {
        max_headers: 100,
        ..LIMITS
    };
    let many: String = (0..80).map(|n| format!("X-{n}: v\r\n")).collect();
    let text = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert!(check_head(text.as_bytes(), &limits).is_ok());
}

fn parts(request: http::request::Builder) -> Parts {
    request.body(()).expect("a valid request").into_parts().0
}

#[test]
fn host_must_be_single_valid_and_agree_with_the_target() {
    let ok = parts(http::Request::get("/").header("host", "example.com:8080"));
    assert_eq!(check_parts(&ok, &LIMITS), Ok(()));
    let cases = [
        (
            http::Request::get("/")
                .header("host", "a")
                .header("host", "b"),
            "more than one Host",
        ),
        (http::Request::get("/"), "without a Host"),
        (
            http::Request::get("/").header("host", "a b"),
            "invalid Host",
        ),
        (
            http::Request::get("/").header("host", "user@a"),
            "invalid Host",
        ),
        (
            http::Request::get("http://a.example/x").header("host", "b.example"),
            "disagrees",
        ),
        (
            http::Request::get("http://a.example/x")
                .version(Version::HTTP_2)
                .header("host", "b.example"),
            "disagrees",
        ),
    ];
    for (request, expected) in cases {
        let rejection = check_parts(&parts(request), &LIMITS).expect_err(expected);
        assert_eq!(rejection.error, ProxyError::BadRequest);
        assert!(rejection.reason.contains(expected), "{}", rejection.reason);
    }
    let agreeing = parts(http::Request::get("http://A.example/x").header("host", "a.example"));
    assert_eq!(check_parts(&agreeing, &LIMITS), Ok(()));
    let http10 = parts(http::Request::get("/").version(Version::HTTP_10));
    assert_eq!(check_parts(&http10, &LIMITS), Ok(()));
}

#[test]
fn a_declared_body_over_the_limit_is_413() {
    let over = parts(
        http::Request::post("/")
            .header("host", "a")
            .header("content-length", "101"),
    );
    let rejection = check_parts(&over, &LIMITS).expect_err("too large");
    assert_eq!(rejection.error, ProxyError::RequestBodyTooLarge);
    let at = parts(
        http::Request::post("/")
            .header("host", "a")
            .header("content-length", "100"),
    );
    assert_eq!(check_parts(&at, &LIMITS), Ok(()));
}

#[test]
fn parsed_heads_are_held_to_the_limits_too() {
    let mut request = http::Request::get("/").header("host", "a");
    for n in 0..8 {
        request = request.header(format!("x-{n}"), "v");
    }
    assert_eq!(
        check_parts(&parts(request), &LIMITS).map_err(|r| r.error),
        Err(ProxyError::RequestHeadersTooLarge)
    );
    let long = parts(
        http::Request::get("/")
            .header("host", "a")
            .header("x-long", "a".repeat(1000)),
    );
    assert_eq!(
        check_parts(&long, &LIMITS).map_err(|r| r.error),
        Err(ProxyError::RequestHeadersTooLarge)
    );
}

/// What `check_host` accepted before it validated Host by hand.
fn authority_accepts(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value)
        .is_ok_and(|authority| !authority.as_str().contains('@') && !authority.host().is_empty())
}

proptest::proptest! {
    #[test]
    fn host_validation_agrees_with_the_authority_parser(
        value in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(b"a:[]%@/?#1.-".to_vec()),
                proptest::num::u8::ANY,
            ],
            0..24,
        )
    ) {
        proptest::prop_assert_eq!(valid_host(&value), authority_accepts(&value));
    }
}

#[test]
fn host_validation_agrees_with_the_authority_parser_on_every_short_value() {
    let alphabet = b"a:[]%@/?#.~ \"";
    let mut value = Vec::new();
    for length in 0..=5u32 {
        for mut index in 0..alphabet.len().pow(length) {
            value.clear();
            for _ in 0..length {
                value.push(alphabet[index % alphabet.len()]);
                index /= alphabet.len();
            }
            let text = String::from_utf8_lossy(&value);
            assert_eq!(valid_host(&value), authority_accepts(&value), "{text:?}");
        }
    }
}

#[test]
fn a_transfer_coding_besides_chunked_is_not_implemented() {
    for coding in [
        "gzip, chunked",
        "gzip",
        "deflate,chunked",
        "identity, chunked",
        "chunked;q=1",
    ] {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n");
        let (error, reason) = refused(&text);
        assert_eq!(error, ProxyError::UnsupportedTransferCoding, "{coding}");
        assert_eq!(error.status(), http::StatusCode::NOT_IMPLEMENTED);
        assert!(reason.contains("only chunked"), "{coding}: {reason}");
    }
    let split = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(refused(split).0, ProxyError::UnsupportedTransferCoding);
}

#[test]
fn look_alikes_of_the_framing_headers_are_refused() {
    for header in [
        "Content_Length: 5",
        "content_length: 0",
        "Transfer_Encoding: chunked",
        "TRANSFER_encoding: chunked",
    ] {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n");
        let (error, reason) = refused(&text);
        assert_eq!(error, ProxyError::BadRequest, "{header}");
        assert!(reason.contains("look-alike"), "{header}: {reason}");
    }
    let fine = "GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nContent-Length: 0\r\n\r\n";
    assert!(head(fine).is_ok());
    let hyper = parts(
        http::Request::post("/")
            .version(Version::HTTP_2)
            .header("host", "a")
            .header("content_length", "5"),
    );
    let rejection = check_parts(&hyper, &LIMITS).expect_err("a look-alike");
    assert_eq!(rejection.error, ProxyError::BadRequest);
}

#[test]
fn a_parsed_request_with_more_than_one_content_length_is_refused() {
    // An HTTP/1.1 head keeps one line of repeated equal lengths (`h1::take_head`); hyper's
    // HTTP/2 server reads only the first and passes them all on.
    for second in ["5", "6"] {
        let twice = parts(
            http::Request::post("/")
                .version(Version::HTTP_2)
                .header("host", "a")
                .header("content-length", "5")
                .header("content-length", second),
        );
        let rejection = check_parts(&twice, &LIMITS).expect_err(second);
        assert_eq!(rejection.error, ProxyError::BadRequest);
        assert!(
            rejection.reason.contains("Content-Length"),
            "{}",
            rejection.reason
        );
    }
}

#[test]
fn connect_is_not_forwarded_and_the_asterisk_target_is_for_options_only() {
    let connect = parts(
        http::Request::builder()
            .method(Method::CONNECT)
            .uri("a:443")
            .header("host", "a:443"),
    );
    let rejection = check_parts(&connect, &LIMITS).expect_err("CONNECT");
    assert_eq!(rejection.error, ProxyError::UnsupportedMethod);
    assert_eq!(rejection.error.status(), http::StatusCode::NOT_IMPLEMENTED);
    let star = parts(http::Request::get("*").header("host", "a"));
    assert_eq!(
        check_parts(&star, &LIMITS).map_err(|rejection| rejection.error),
        Err(ProxyError::BadRequest)
    );
    let options = parts(
        http::Request::builder()
            .method(Method::OPTIONS)
            .uri("*")
            .header("host", "a"),
    );
    assert_eq!(check_parts(&options, &LIMITS), Ok(()));
}
