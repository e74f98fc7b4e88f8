//! How a route's path condition reads a (normalized) path.
//!
//! Why: [`super::path`] gives every request one spelling, but two readings of that spelling
//! remain that endpoints disagree on, and a route must take the broader one, or a request
//! the endpoint serves as `/m/x` slips past the `/m/` route with its limits:
//!
//! - Segment parameters. Servlet containers (Tomcat, Jetty, Spring) remove `;...` from
//!   each segment before they resolve a path, so `/m;p=1/x` is `/m/x` to them. Routes
//!   therefore match the path with each segment's parameters removed (and a segment left
//!   empty by that, as in `/;p/m/x`, dropped, as those containers merge the slashes); the
//!   path forwarded upstream keeps them, as the client wrote it. A route path cannot hold
//!   a `;` (the config refuses it): it would never match.
//! - Case. An endpoint that ignores case (IIS, some S3-compatible stores) serves `/M/x` as
//!   `/m/x`; a route with `case_sensitive = false` matches ASCII letters in either case.
//!
//! Cost: a prefix or exact path is compared where it stands, without a copy; a path
//! that has no `;` is compared as before. Only a regex needs the path as one string, and
//! only a path with a `;` is copied for it.

use std::borrow::Cow;

use crate::config::PathMatch;

/// A request's path as routes read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutedPath<'a> {
    path: &'a str,
    /// Whether it has a `;`: found once per request, so that a route whose spelling it
    /// does not start with costs no second look.
    parameters: bool,
}

impl<'a> RoutedPath<'a> {
    /// `path` (normalized) as routes read it.
    pub(crate) fn new(path: &'a str) -> Self {
        Self {
            path,
            parameters: path.as_bytes().contains(&b';'),
        }
    }

    /// Whether `condition` takes this path.
    pub(crate) fn matches(&self, condition: &PathMatch, case_sensitive: bool) -> bool {
        match condition {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => {
                if same(self.path.as_bytes(), exact.as_bytes(), case_sensitive) {
                    return true;
                }
                let mut rest = MatchedBytes::new(self.path);
                self.parameters
                    && consume(&mut rest, exact, case_sensitive).is_some()
                    && rest.next().is_none()
            }
            PathMatch::Prefix(prefix) => self.prefix_end(prefix, case_sensitive).is_some(),
            // NOTE: a case-insensitive regex is built so at load.
            PathMatch::Regex(regex) => regex.is_match(&self.without_parameters()),
        }
    }

    /// Where, in the path, the part that matched `prefix` ends: what a rewrite replaces is
    /// `path[..end]`. `None` when `prefix` does not match.
    pub(crate) fn prefix_end(&self, prefix: &str, case_sensitive: bool) -> Option<usize> {
        // The spelling the route was written in, nearly every time: one comparison.
        let head = self.path.as_bytes().get(..prefix.len())?;
        if same(head, prefix.as_bytes(), case_sensitive) {
            return Some(prefix.len());
        }
        if !self.parameters {
            return None;
        }
        consume(&mut MatchedBytes::new(self.path), prefix, case_sensitive)
    }

    /// The path with each segment's parameters removed, borrowed when it has none.
    pub(crate) fn without_parameters(&self) -> Cow<'a, str> {
        if !self.parameters {
            return Cow::Borrowed(self.path);
        }
        // The bytes kept are whole characters: a path is ASCII.
        Cow::Owned(
            MatchedBytes::new(self.path)
                .map(|(_, byte)| char::from(byte))
                .collect(),
        )
    }
}

fn same(bytes: &[u8], wanted: &[u8], case_sensitive: bool) -> bool {
    match case_sensitive {
        true => bytes == wanted,
        false => bytes.eq_ignore_ascii_case(wanted),
    }
}

/// Takes `wanted` from `bytes`; where in the path the last byte taken ends, if all matched.
fn consume(bytes: &mut MatchedBytes<'_>, wanted: &str, case_sensitive: bool) -> Option<usize> {
    let mut end = 0;
    for &want in wanted.as_bytes() {
        let (at, byte) = bytes.next()?;
        if !same(&[byte], &[want], case_sensitive) {
            return None;
        }
        end = at + 1;
    }
    Some(end)
}

/// The bytes of a path a route matches, each with its place in the path: those of each
/// segment's parameters (from a `;` to the next `/`) are left out, and so is a `/` that
/// would follow another `/` (a segment that held only parameters).
struct MatchedBytes<'a> {
    path: &'a [u8],
    at: usize,
    previous: u8,
}

impl<'a> MatchedBytes<'a> {
    fn new(path: &'a str) -> Self {
        Self {
            path: path.as_bytes(),
            at: 0,
            previous: 0,
        }
    }
}

impl Iterator for MatchedBytes<'_> {
    type Item = (usize, u8);

    fn next(&mut self) -> Option<(usize, u8)> {
        loop {
            let at = self.at;
            let byte = *self.path.get(at)?;
            self.at += 1;
            if byte == b';' {
                // The parameters run to the next `/` (which is read next) or the end.
                self.at = self.path[at..]
                    .iter()
                    .position(|&byte| byte == b'/')
                    .map_or(self.path.len(), |slash| at + slash);
                continue;
            }
            if byte == b'/' && self.previous == b'/' {
                continue;
            }
            self.previous = byte;
            return Some((at, byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_left_out_of_the_path_a_route_sees() {
        for (path, seen) in [
            ("/m/x", "/m/x"),
            ("/m;p=1/x", "/m/x"),
            ("/m;a;b=c/x;d", "/m/x"),
            ("/;p/m/x", "/m/x"),
            ("/m/;p", "/m/"),
            ("/;p", "/"),
            ("/m;p/", "/m/"),
        ] {
            assert_eq!(RoutedPath::new(path).without_parameters(), seen, "{path}");
        }
        assert!(matches!(
            RoutedPath::new("/m/x").without_parameters(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_prefix_ends_where_its_last_byte_stands_in_the_path() {
        for (path, prefix, end) in [
            ("/m/x", "/m/", Some(3)),
            ("/m;p=1/x", "/m/", Some(7)),
            ("/m;p=1/x", "/m", Some(2)),
            ("/;p/m/x", "/m/", Some(6)),
            ("/m;p", "/m/", None),
            ("/n;p/x", "/m/", None),
            ("/m", "/m/", None),
        ] {
            assert_eq!(
                RoutedPath::new(path).prefix_end(prefix, true),
                end,
                "{path} {prefix}"
            );
        }
        let upper = RoutedPath::new("/M;P/x");
        assert_eq!(upper.prefix_end("/m/", true), None);
        assert_eq!(upper.prefix_end("/m/", false), Some(5));
        assert_eq!(RoutedPath::new("/M/x").prefix_end("/m/", false), Some(3));
    }

    #[test]
    fn an_exact_path_must_be_all_the_path_holds_but_parameters() {
        let exact = PathMatch::Exact("/health".to_owned());
        let matches = |path, case_sensitive| RoutedPath::new(path).matches(&exact, case_sensitive);
        assert!(matches("/health", true));
        assert!(matches("/health;v=1", true));
        assert!(matches("/;v/health", true));
        assert!(!matches("/health;v=1/", true));
        assert!(!matches("/health/x", true));
        assert!(!matches("/HEALTH", true));
        assert!(matches("/HEALTH;x", false));
    }
}
