//! A topology's Blastwall config made ready to run: `"{service:NAME}"` becomes the address
//! of the mock named NAME, known only once it listens on a port the system picked, and an
//! admin API the config leaves at its default address gets a free port instead.
//!
//! Why the admin: its default is a fixed port (9901), which a second topology, or the
//! operator's own Blastwall, may hold; the proxy then starts without one (a default that
//! cannot bind is not fatal) and verify could neither make fault rules nor read events. A
//! `listen` the config writes, `"off"` included, is kept.
//!
//! Only string values are filled, as the spec check reads them: a comment that mentions the
//! syntax is not a placeholder. The spec check already refuses a name no service has; this
//! refuses it again, because a config reaching the proxy with a placeholder left in it would
//! fail with an error about an address, far from the cause. The text is changed only where a
//! placeholder is, and the admin's `listen` is added at the end or on the line after the
//! `[admin]` header, so the file the proxy runs keeps the spec's layout, comments and (up
//! to that one line) its line numbers: an error points at the line the spec's author wrote.
//! An `[admin]` written inline or with dotted keys and no `listen` keeps the default.

use std::net::SocketAddr;
use std::ops::Range;

use blastwall_chaos::spec::BlastwallConfig;
use toml::de::{DeTable, DeValue};

const OPEN: &str = "{service:";
/// Where a topology's admin API listens unless its config says.
const FREE_ADMIN_LISTEN: &str = "listen = \"127.0.0.1:0\"";

/// The TOML config `text` with every placeholder in its string values replaced by its
/// service's address, or an error naming the first unknown service (and the known ones).
pub(super) fn fill_placeholders(
    text: &str,
    services: &[(&str, SocketAddr)],
) -> anyhow::Result<String> {
    let document = parse(text)?;
    let mut spans = Vec::new();
    for (_, value) in document.get_ref() {
        string_spans(value, &mut spans);
    }
    spans.sort_by_key(|span| span.start);
    let mut filled = String::with_capacity(text.len());
    let mut from = 0;
    for span in spans {
        filled.push_str(&text[from..span.start]);
        filled.push_str(&fill(&text[span.clone()], services)?);
        from = span.end;
    }
    filled.push_str(&text[from..]);
    Ok(filled)
}

/// The TOML config `text` with its admin API on a free loopback port, unless it says where.
pub(super) fn with_free_admin(text: &str) -> anyhow::Result<String> {
    let document = parse(text)?;
    let admin = document
        .get_ref()
        .iter()
        .find(|(key, _)| key.get_ref().as_ref() == "admin");
    let Some((key, admin)) = admin else {
        let newline = if text.ends_with('\n') || text.is_empty() {
            ""
        } else {
            "\n"
        };
        return Ok(format!("{text}{newline}[admin]\n{FREE_ADMIN_LISTEN}\n"));
    };
    let DeValue::Table(table) = admin.get_ref() else {
        return Ok(text.to_owned());
    };
    if table
        .iter()
        .any(|(key, _)| key.get_ref().as_ref() == "listen")
    {
        return Ok(text.to_owned());
    }
    let line_start = text[..key.span().start].rfind('\n').map_or(0, |at| at + 1);
    if !text[line_start..].trim_start().starts_with('[') {
        // Inline (`admin = { … }`) or dotted keys: no line of its own to add `listen` to.
        return Ok(text.to_owned());
    }
    let line_end = text[key.span().end..]
        .find('\n')
        .map_or(text.len(), |at| key.span().end + at);
    let mut with = text.to_owned();
    with.insert_str(line_end, &format!("\n{FREE_ADMIN_LISTEN}"));
    Ok(with)
}

fn parse(text: &str) -> anyhow::Result<toml::Spanned<DeTable<'_>>> {
    DeTable::parse(text)
        .map_err(|error| anyhow::anyhow!("the topology's Blastwall config is not TOML: {error}"))
}

/// Where each string value is in the text, quotes included.
fn string_spans(value: &toml::Spanned<DeValue<'_>>, out: &mut Vec<Range<usize>>) {
    match value.get_ref() {
        DeValue::String(_) => out.push(value.span()),
        DeValue::Array(values) => values.iter().for_each(|value| string_spans(value, out)),
        DeValue::Table(table) => table.iter().for_each(|(_, value)| string_spans(value, out)),
        _ => {}
    }
}

/// `text` with every placeholder replaced by its service's address.
fn fill(text: &str, services: &[(&str, SocketAddr)]) -> anyhow::Result<String> {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        filled.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some((name, tail)) = after.split_once('}') else {
            anyhow::bail!(
                "the Blastwall config has an unclosed placeholder {:?}",
                &rest[start..]
            );
        };
        let Some((_, addr)) = services.iter().find(|(known, _)| *known == name) else {
            let known: Vec<&str> = services.iter().map(|(known, _)| *known).collect();
            anyhow::bail!(
                "the Blastwall config names {:?}, but no service is named {name:?} (services: {})",
                BlastwallConfig::placeholder(name),
                known.join(", ")
            );
        };
        filled.push_str(&addr.to_string());
        rest = tail;
    }
    filled.push_str(rest);
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn every_placeholder_becomes_its_services_address() {
        let text = "a = \"{service:one}\"\nb = [\"{service:two}\", \"{service:one}\"]";
        let filled =
            fill_placeholders(text, &[("one", addr(1)), ("two", addr(2))]).expect("known names");
        assert_eq!(
            filled,
            "a = \"127.0.0.1:1\"\nb = [\"127.0.0.1:2\", \"127.0.0.1:1\"]"
        );
    }

    #[test]
    fn an_unknown_service_is_named_with_the_known_ones() {
        let error = fill_placeholders(r#"a = "{service:three}""#, &[("one", addr(1))])
            .expect_err("unknown name")
            .to_string();
        assert!(error.contains("\"three\""), "{error}");
        assert!(error.contains("services: one"), "{error}");
    }

    #[test]
    fn only_string_values_are_filled_the_rest_of_the_text_kept() {
        let text = "# endpoints are \"{service:NAME}\"\n[cluster.c]\nendpoints = [{ address = \"{service:one}\" }]\n";
        let filled = fill_placeholders(text, &[("one", addr(1))]).expect("known names");
        assert_eq!(
            filled,
            "# endpoints are \"{service:NAME}\"\n[cluster.c]\nendpoints = [{ address = \"127.0.0.1:1\" }]\n"
        );
    }

    #[test]
    fn the_admin_gets_a_free_port_unless_the_config_says_where() {
        let listen = |text: &str| {
            let config: toml::Table = with_free_admin(text)
                .expect("a config")
                .parse()
                .expect("TOML");
            config["admin"]
                .get("listen")
                .and_then(|listen| listen.as_str())
                .map(str::to_owned)
        };
        assert_eq!(listen("").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(listen("a = 1").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(
            listen("[admin] # the API\ntoken = \"t\"\n[proxy]\n").as_deref(),
            Some("127.0.0.1:0")
        );
        assert_eq!(listen("[admin]\nlisten = \"off\"").as_deref(), Some("off"));
        assert_eq!(
            listen("admin = { token = \"t\" }").as_deref(),
            None,
            "an inline table is kept as written"
        );
    }

    #[test]
    fn an_unclosed_placeholder_is_refused() {
        assert!(fill_placeholders(r#"a = "{service:one""#, &[("one", addr(1))]).is_err());
    }
}
