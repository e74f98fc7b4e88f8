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
//! fail with an error about an address, far from the cause. The filled config is written
//! again from its values, so it loses its comments; it is a file for the proxy and for the
//! curious, the spec's own config stays the one to read.

use std::net::SocketAddr;

use blastwall_chaos::spec::BlastwallConfig;

const OPEN: &str = "{service:";
/// Where a topology's admin API listens unless its config says.
const FREE_ADMIN_LISTEN: &str = "127.0.0.1:0";

/// The TOML config `text` with every placeholder in its string values replaced by its
/// service's address (or an error naming the first unknown service, and the known ones),
/// and the admin API on a free loopback port unless it says where.
pub(super) fn prepare(text: &str, services: &[(&str, SocketAddr)]) -> anyhow::Result<String> {
    let mut config: toml::Table = text
        .parse()
        .map_err(|error| anyhow::anyhow!("the topology's Blastwall config is not TOML: {error}"))?;
    for (_, value) in config.iter_mut() {
        fill_value(value, services)?;
    }
    let admin = config
        .entry("admin")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(admin) = admin {
        admin
            .entry("listen")
            .or_insert_with(|| toml::Value::String(FREE_ADMIN_LISTEN.to_owned()));
    }
    Ok(toml::to_string(&config)?)
}

fn fill_value(value: &mut toml::Value, services: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    match value {
        toml::Value::String(text) => *text = fill(text, services)?,
        toml::Value::Array(values) => {
            for value in values {
                fill_value(value, services)?;
            }
        }
        toml::Value::Table(table) => {
            for (_, value) in table.iter_mut() {
                fill_value(value, services)?;
            }
        }
        _ => {}
    }
    Ok(())
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
        let text = r#"a = "{service:one}" b = ["{service:two}", "{service:one}"]"#;
        let filled = fill(text, &[("one", addr(1)), ("two", addr(2))]).expect("known names");
        assert_eq!(
            filled,
            r#"a = "127.0.0.1:1" b = ["127.0.0.1:2", "127.0.0.1:1"]"#
        );
    }

    #[test]
    fn an_unknown_service_is_named_with_the_known_ones() {
        let error = fill(r#"a = "{service:three}""#, &[("one", addr(1))])
            .expect_err("unknown name")
            .to_string();
        assert!(error.contains("\"three\""), "{error}");
        assert!(error.contains("services: one"), "{error}");
    }

    #[test]
    fn only_string_values_are_filled_not_comments() {
        let text = "# endpoints are \"{service:NAME}\"\n[cluster.c]\nendpoints = [{ address = \"{service:one}\" }]\n";
        let filled = prepare(text, &[("one", addr(1))]).expect("known names");
        let config: toml::Table = filled.parse().expect("TOML");
        assert_eq!(
            config["cluster"]["c"]["endpoints"][0]["address"].as_str(),
            Some("127.0.0.1:1")
        );
    }

    #[test]
    fn the_admin_gets_a_free_port_unless_the_config_says_where() {
        let listen = |text: &str| {
            let config: toml::Table = prepare(text, &[]).expect("a config").parse().expect("TOML");
            config["admin"]["listen"].as_str().map(str::to_owned)
        };
        assert_eq!(listen("").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(
            listen("[admin]\ntoken = \"t\"").as_deref(),
            Some("127.0.0.1:0")
        );
        assert_eq!(listen("[admin]\nlisten = \"off\"").as_deref(), Some("off"));
    }

    #[test]
    fn an_unclosed_placeholder_is_refused() {
        assert!(fill(r#"a = "{service:one"#, &[("one", addr(1))]).is_err());
    }
}
