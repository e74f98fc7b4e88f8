//! Header names and values as written in the config (a match, a route's edits, a static
//! response), into `http`'s types.

use http::{HeaderName, HeaderValue};
use toml::Spanned;

use super::Checker;
use crate::config::HeaderEdits;
use crate::config::file::HeaderEditsSection;

/// A header name and value; either one that cannot be is an error at its place.
pub(super) fn header_pair(
    check: &mut Checker<'_>,
    name: &Spanned<String>,
    value: &Spanned<String>,
) -> Option<(HeaderName, HeaderValue)> {
    let parsed_name = HeaderName::from_bytes(name.get_ref().as_bytes());
    let parsed_value = HeaderValue::from_str(value.get_ref());
    match (parsed_name, parsed_value) {
        (Ok(name), Ok(value)) => Some((name, value)),
        (Err(_), _) => {
            check.error_at(
                name.span(),
                format!("invalid header name \"{}\"", name.get_ref()),
            );
            None
        }
        (_, Err(_)) => {
            check.error_at(
                value.span(),
                "invalid header value: only visible ASCII, spaces and tabs",
            );
            None
        }
    }
}

/// Headers a route adds to and removes from a request or response.
pub(super) fn header_edits(check: &mut Checker<'_>, section: HeaderEditsSection) -> HeaderEdits {
    HeaderEdits {
        add: section
            .add
            .iter()
            .filter_map(|(name, value)| header_pair(check, name, value))
            .collect(),
        remove: section
            .remove
            .iter()
            .filter_map(
                |name| match HeaderName::from_bytes(name.get_ref().as_bytes()) {
                    Ok(name) => Some(name),
                    Err(_) => {
                        check.error_at(
                            name.span(),
                            format!("invalid header name \"{}\"", name.get_ref()),
                        );
                        None
                    }
                },
            )
            .collect(),
    }
}
