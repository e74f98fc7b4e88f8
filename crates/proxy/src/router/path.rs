//! The request path, normalized before any route sees it.
//!
//! Why: routes match paths by text, and many texts name one resource. Without this, a
//! client could reach `/m/x` as `/%6d/x`, `/a/../m/x`, `/./m/x` or `//m/x`, which an
//! endpoint (or the framework behind it) resolves to `/m/x`, while no `/m/` route, with
//! its limits, its rate limit or its kill switch, matched. So the path is normalized once,
//! as the request arrives (HTTP/1.1 and HTTP/2 alike), and the normalized path is also what
//! goes upstream, as Envoy's `normalize_path` and `merge_slashes` do: the proxy and the
//! endpoint then agree on which resource a request names.
//!
//! What is normalized (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded
//! (`%6d` is `m`, `%2E` is `.`); dot segments are removed as §5.2.4 `remove_dot_segments`
//! does (a `..` above the root stays at the root); empty segments (`//`) are merged. What
//! is not: encoded reserved characters, and the query. An encoded slash (`%2F`) is the one
//! the listener decides about (`escaped_slashes`): many frameworks decode it, so `/m%2Fx`
//! would reach `/m/x` past a `/m/` route, yet decoding it splits a segment the client may
//! have meant as one. So by default it is refused; `decode` makes it a `/` before every
//! other rule (as Envoy's `UNESCAPE_AND_FORWARD`), and `keep` leaves it, for endpoints that
//! keep `%2F` apart from `/`. A `%` that does not start an
//! escape (`%zz`, `%%32e`) makes the path malformed (RFC 3986 has no bare `%`), and the
//! request is refused: decoding around it could make a new escape (`%%32e` holds `%2e`
//! once `%32` is decoded) that the endpoint would decode into a dot segment the proxy never
//! saw. For the same reason a backslash (literal or `%5C`), which some servers read as a
//! `/`, and a dot segment with parameters (`/..;/`, which servlet containers read as `..`)
//! are refused.
//!
//! Cost: a path with no `%` and no `/` followed by `/` or `.`, which is nearly every path,
//! is one scan over its bytes and no allocation.

use http::Uri;
use http::uri::PathAndQuery;

use crate::config::EscapedSlashes;

/// A path with a `%` that does not start an escape of two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MalformedPath(pub &'static str);

/// Normalizes `uri`'s path in place; a path already normal is left untouched (the check is
/// one scan, with no allocation).
pub(crate) fn normalize(
    uri: &mut Uri,
    escaped_slashes: EscapedSlashes,
) -> Result<(), MalformedPath> {
    let Some(path) = normalized(uri.path(), escaped_slashes)? else {
        return Ok(());
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return Err(MalformedPath("the normalized path is not a valid path"));
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path_and_query);
    // NOTE: only the path changed, from one valid path to another, so the parts still
    // make a URI; should they not, the default (`/`) is safer than the unnormalized path.
    *uri = Uri::from_parts(parts).unwrap_or_default();
    Ok(())
}

/// `path` normalized, or `None` when it already is.
pub(crate) fn normalized(
    path: &str,
    escaped_slashes: EscapedSlashes,
) -> Result<Option<String>, MalformedPath> {
    if !path.starts_with('/') || !needs_a_look(path.as_bytes()) {
        // `*` (OPTIONS) and authority-form targets have no path to normalize.
        return Ok(None);
    }
    let decoded = decode_unreserved(path, escaped_slashes)?;
    if decoded.contains('\\')
        || decoded
            .as_bytes()
            .windows(3)
            .any(|escape| escape.eq_ignore_ascii_case(b"%5c"))
    {
        return Err(MalformedPath(
            "a backslash in the path, which some servers read as a slash",
        ));
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            dot if dot.starts_with(".;") || dot.starts_with("..;") => {
                return Err(MalformedPath(
                    "a dot segment with parameters (`..;`), which servlet containers read as a dot segment",
                ));
            }
            segment => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok((out != path).then_some(out))
}

/// Whether `path` may not be normal: it has an escape, or a `/` followed by `/` or `.`.
// NOTE: without branches or an early return, which lets the loop be vectorized: nearly
// every path is normal, so the whole path is read anyway.
fn needs_a_look(path: &[u8]) -> bool {
    let (mut found, mut previous) = (false, 0u8);
    for &byte in path {
        found |= (byte == b'%')
            | (byte == b'\\')
            | ((previous == b'/') & ((byte == b'/') | (byte == b'.')));
        previous = byte;
    }
    found
}

/// `path` with its percent-encoded unreserved characters decoded, and the others kept but
/// for an encoded slash, which is refused, decoded or kept as `escaped_slashes` says.
fn decode_unreserved(path: &str, escaped_slashes: EscapedSlashes) -> Result<String, MalformedPath> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes
                .get(at + 1..at + 3)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or(MalformedPath("a % in the path does not start an escape"))?;
            let decoded = (hex_value(hex[0]) << 4) | hex_value(hex[1]);
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(decoded));
            } else if decoded == b'/' && escaped_slashes != EscapedSlashes::Keep {
                if escaped_slashes == EscapedSlashes::Reject {
                    return Err(MalformedPath(
                        "an encoded slash (%2F) in the path, which some servers decode to a slash; this listener refuses it (escaped_slashes)",
                    ));
                }
                out.push('/');
            } else {
                out.push_str(&path[at..at + 3]);
            }
            at += 3;
            continue;
        }
        // A path is ASCII (`Uri` takes no other bytes), so each byte is a char.
        out.push(char::from(bytes[at]));
        at += 1;
    }
    Ok(out)
}

/// The value of a hex digit.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `path` normalized by a listener that refuses encoded slashes, as by default.
    fn normal(path: &str) -> Result<Option<String>, MalformedPath> {
        normalized(path, EscapedSlashes::Reject)
    }

    #[test]
    fn normal_paths_are_left_alone() {
        for path in ["/", "/m/x", "/m/x/", "/a.b/c", "/a/b.", "/~user", "*"] {
            assert_eq!(normal(path), Ok(None), "{path}");
        }
    }

    #[test]
    fn escapes_dot_segments_and_duplicate_slashes_are_normalized() {
        for (path, expected) in [
            ("/%6d/x", "/m/x"),
            ("/%6D/x", "/m/x"),
            ("/a/../m/x", "/m/x"),
            ("//m/x", "/m/x"),
            ("/m//x", "/m/x"),
            ("/./m/x", "/m/x"),
            ("/m/./x/.", "/m/x/"),
            ("/%2e%2E/m/x", "/m/x"),
            ("/a/%2e%2e/m/x", "/m/x"),
            ("/../x", "/x"),
            ("/../../..", "/"),
            ("/a/..", "/"),
            ("/m/x/", "/m/x/"),
            ("/%7euser/%41b", "/~user/Ab"),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            let normal = normal(path).unwrap().unwrap_or_else(|| path.to_owned());
            assert_eq!(normal, expected, "{path}");
        }
    }

    #[test]
    fn encoded_reserved_characters_stay_encoded() {
        assert_eq!(normal("/a%20b/%C3%A9"), Ok(None));
        assert_eq!(normal("/a%3Bb/%3F"), Ok(None));
        // `%25` is `%`: decoded it would make a new escape, so it stays.
        assert_eq!(normal("/m%252Fx"), Ok(None));
        let keep = |path| normalized(path, EscapedSlashes::Keep);
        assert_eq!(keep("/m%2Fx"), Ok(None));
        assert_eq!(keep("/a%2F..%2Fm"), Ok(None));
        assert_eq!(keep("/a/%2f/../b"), Ok(Some("/a/b".to_owned())));
    }

    #[test]
    fn an_encoded_slash_is_refused_unless_the_listener_says_otherwise() {
        for path in ["/m%2Fx", "/m%2fx", "/a%2F..%2Fm", "/%2F/m/x", "/a/../m%2Fx"] {
            assert!(normal(path).is_err(), "{path}");
        }
    }

    #[test]
    fn a_decoded_encoded_slash_is_a_slash_to_every_other_rule() {
        let decode = |path| normalized(path, EscapedSlashes::Decode);
        for (path, expected) in [
            ("/m%2Fx", "/m/x"),
            ("/m%2fx", "/m/x"),
            ("/a%2F..%2Fm%2Fx", "/m/x"),
            ("/m%2F%2Fx", "/m/x"),
            ("/%2Fm/./x", "/m/x"),
            ("/m%2F.%2Fx%2F", "/m/x/"),
        ] {
            assert_eq!(decode(path), Ok(Some(expected.to_owned())), "{path}");
        }
        assert!(
            decode("/x%2F..;%2Fm").is_err(),
            "a dot segment with parameters"
        );
        assert!(decode("/m%2F%5Cx").is_err(), "a backslash");
    }

    #[test]
    fn a_percent_that_starts_no_escape_is_malformed() {
        // `%%32e` would become `%2e` once `%32` is decoded: a dot segment for the endpoint.
        for path in ["/a/%%32e%%32e/m/x", "/a/%zz", "/a/%4", "/%", "/a%g0"] {
            assert!(normal(path).is_err(), "{path}");
        }
    }

    #[test]
    fn a_backslash_or_a_dot_segment_with_parameters_is_malformed() {
        for path in [
            "/m\\x",
            "/m%5cx",
            "/m%5Cx",
            "/x/..;/m/x",
            "/x/.;/m/x",
            "/x/%2e%2e;p=1/m/x",
        ] {
            assert!(normal(path).is_err(), "{path}");
        }
        // Parameters on an ordinary segment, and dots inside a name, are left as they are.
        assert_eq!(normal("/m;jsessionid=1/x"), Ok(None));
        assert_eq!(normal("/a/.well-known/x"), Ok(None));
        assert_eq!(normal("/a/..b/x"), Ok(None));
    }

    proptest::proptest! {
        /// Normalizing is idempotent, and a normal path has no dot segment, no empty
        /// segment and no escape of an unreserved character, whatever pieces it was made of.
        #[test]
        fn a_normalized_path_is_normal(pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "/", ".", "..", "%2e", "%2E", "%6d", "%2F", "%2f", "m", "%", "x", "%32", "e",
            ]),
            0..12,
        ), slashes in proptest::sample::select(vec![
            EscapedSlashes::Reject,
            EscapedSlashes::Decode,
            EscapedSlashes::Keep,
        ])) {
            let path = format!("/{}", pieces.concat());
            let Ok(normal) = normalized(&path, slashes) else {
                // A stray `%`, or a refused `%2F`: nothing to check.
                return Ok(());
            };
            let normal = normal.unwrap_or(path);
            proptest::prop_assert_eq!(normalized(&normal, slashes), Ok(None), "{}", normal);
            if slashes != EscapedSlashes::Keep {
                proptest::prop_assert!(!normal.to_ascii_lowercase().contains("%2f"), "{}", normal);
            }
            let segments: Vec<&str> = normal.split('/').skip(1).collect();
            if let Some((_, inner)) = segments.split_last() {
                proptest::prop_assert!(!inner.contains(&""), "{}", normal);
            }
            proptest::prop_assert!(!segments.contains(&".") && !segments.contains(&".."), "{}", normal);
            let lower = normal.to_ascii_lowercase();
            proptest::prop_assert!(!lower.contains("%2e") && !lower.contains("%6d"), "{}", normal);
        }
    }

    #[test]
    fn a_normalized_uri_keeps_its_query_and_authority() {
        let mut uri: Uri = "http://h.example/a/../%6d/x?q=/../y".parse().unwrap();
        normalize(&mut uri, EscapedSlashes::Reject).unwrap();
        assert_eq!(uri, "http://h.example/m/x?q=/../y");
        let mut origin: Uri = "//m/x?z"
            .parse()
            .unwrap_or_else(|_| "/m/x?z".parse().unwrap());
        normalize(&mut origin, EscapedSlashes::Reject).unwrap();
        assert_eq!(origin.path(), "/m/x");
    }
}
