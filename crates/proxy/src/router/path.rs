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
//! is not: encoded reserved characters (`%2F` stays `%2F`: decoded, it would split a
//! segment that the client meant as one), an invalid escape (left as it is, it names no
//! other path), and the query.
//!
//! Cost: a path with no `%` and no `/` followed by `/` or `.`, which is nearly every path,
//! is one scan over its bytes and no allocation.

use http::Uri;
use http::uri::PathAndQuery;

/// Normalizes `uri`'s path in place; a path already normal is left untouched (the check is
/// one scan, with no allocation).
pub fn normalize(uri: &mut Uri) {
    let Some(path) = normalized(uri.path()) else {
        return;
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path_and_query);
    // NOTE: only the path changed, from one valid path to another, so the parts still
    // make a URI; should they not, the default (`/`) is safer than the unnormalized path.
    *uri = Uri::from_parts(parts).unwrap_or_default();
}

/// `path` normalized, or `None` when it already is.
pub fn normalized(path: &str) -> Option<String> {
    if !path.starts_with('/') || !needs_a_look(path.as_bytes()) {
        // `*` (OPTIONS) and authority-form targets have no path to normalize.
        return None;
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
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
    (out != path).then_some(out)
}

/// Whether `path` may not be normal: it has an escape, or a `/` followed by `/` or `.`.
fn needs_a_look(path: &[u8]) -> bool {
    let mut after_slash = false;
    for &byte in path {
        if byte == b'%' || (after_slash && (byte == b'/' || byte == b'.')) {
            return true;
        }
        after_slash = byte == b'/';
    }
    false
}

/// `path` with its percent-encoded unreserved characters decoded.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && let Some(decoded) = bytes
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            && (decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~'))
        {
            out.push(char::from(decoded));
            at += 3;
            continue;
        }
        // A path is ASCII (`Uri` takes no other bytes), so each byte is a char.
        out.push(char::from(bytes[at]));
        at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_left_alone() {
        for path in ["/", "/m/x", "/m/x/", "/a.b/c", "/a/b.", "/~user", "*"] {
            assert_eq!(normalized(path), None, "{path}");
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
            let normal = normalized(path).unwrap_or_else(|| path.to_owned());
            assert_eq!(normal, expected, "{path}");
        }
    }

    #[test]
    fn encoded_reserved_characters_and_bad_escapes_stay_as_they_are() {
        assert_eq!(normalized("/m%2Fx"), None);
        assert_eq!(normalized("/a%2F..%2Fm"), None);
        assert_eq!(normalized("/a/%zz/%4"), None);
        assert_eq!(normalized("/a/%2f/../b").as_deref(), Some("/a/b"));
    }

    #[test]
    fn a_normalized_uri_keeps_its_query_and_authority() {
        let mut uri: Uri = "http://h.example/a/../%6d/x?q=/../y".parse().unwrap();
        normalize(&mut uri);
        assert_eq!(uri, "http://h.example/m/x?q=/../y");
        let mut origin: Uri = "//m/x?z"
            .parse()
            .unwrap_or_else(|_| "/m/x?z".parse().unwrap());
        normalize(&mut origin);
        assert_eq!(origin.path(), "/m/x");
    }
}
