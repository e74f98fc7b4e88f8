//! `GET /metrics`: what the proxies counted ([`super::stats`]), in Prometheus' text format
//! (version 0.0.4), rendered at scrape time.
//!
//! The byte counters have the names and labels of Toxiproxy's own (`-proxy-metrics`:
//! `toxiproxy_proxy_received_bytes_total` and `_sent_bytes_total`, by `direction`,
//! `proxy`, `listener`, `upstream`), so dashboards made for it read them; connections and
//! toxics applied are Blastwall's, under the same prefix. Unlike Toxiproxy's, the endpoint
//! is always on: it costs nothing until scraped.
//!
//! A toxic is counted as applied once per connection its draw chose (its toxicity and
//! `first_connections`; again after an update, which draws anew), and `http_error` once
//! per request it answered.

use std::fmt::Write;

use super::proxy::Proxy;
use super::toxic::{Stream, TYPES};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

const STREAMS: [Stream; 2] = [Stream::Upstream, Stream::Downstream];

/// The exposition of these proxies' counters.
pub fn render<'a>(proxies: impl Iterator<Item = &'a Proxy> + Clone) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "toxiproxy_proxy_received_bytes_total",
        "counter",
        "Bytes read by the proxy, by the stream they travel (upstream: from the clients).",
    );
    for proxy in proxies.clone() {
        for stream in STREAMS {
            let labels = byte_labels(proxy, stream);
            let value = proxy.stats().received_total(stream);
            sample(
                &mut out,
                "toxiproxy_proxy_received_bytes_total",
                &labels,
                value,
            );
        }
    }
    family(
        &mut out,
        "toxiproxy_proxy_sent_bytes_total",
        "counter",
        "Bytes written by the proxy, by stream, after the toxics (answers of http_error included).",
    );
    for proxy in proxies.clone() {
        for stream in STREAMS {
            let labels = byte_labels(proxy, stream);
            let value = proxy.stats().sent_total(stream);
            sample(&mut out, "toxiproxy_proxy_sent_bytes_total", &labels, value);
        }
    }
    connections(&mut out, proxies.clone());
    family(
        &mut out,
        "toxiproxy_toxic_applied_total",
        "counter",
        "Connections a toxic's draw chose, by type and stream; for http_error, requests answered.",
    );
    for proxy in proxies {
        for (index, kind) in TYPES.iter().enumerate() {
            for stream in STREAMS {
                let labels = format!(
                    "proxy=\"{}\",type=\"{kind}\",stream=\"{}\"",
                    escape(&proxy.name),
                    stream.as_str()
                );
                let value = proxy.stats().applied_total(index, stream);
                sample(&mut out, "toxiproxy_toxic_applied_total", &labels, value);
            }
        }
    }
    out
}

fn connections<'a>(out: &mut String, proxies: impl Iterator<Item = &'a Proxy> + Clone) {
    family(
        out,
        "toxiproxy_proxy_connections_accepted_total",
        "counter",
        "Client connections the proxy accepted.",
    );
    for proxy in proxies.clone() {
        let labels = format!("proxy=\"{}\"", escape(&proxy.name));
        let value = proxy.stats().accepted_total();
        sample(
            out,
            "toxiproxy_proxy_connections_accepted_total",
            &labels,
            value,
        );
    }
    family(
        out,
        "toxiproxy_proxy_connections_open",
        "gauge",
        "Client connections open now.",
    );
    for proxy in proxies {
        let labels = format!("proxy=\"{}\"", escape(&proxy.name));
        let value = proxy.stats().open_now();
        sample(out, "toxiproxy_proxy_connections_open", &labels, value);
    }
}

fn byte_labels(proxy: &Proxy, stream: Stream) -> String {
    format!(
        "direction=\"{}\",proxy=\"{}\",listener=\"{}\",upstream=\"{}\"",
        stream.as_str(),
        escape(&proxy.name),
        escape(&proxy.listen),
        escape(&proxy.upstream)
    )
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_what_the_text_format_needs() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_and_each_proxy_its_samples() {
        let proxy = Proxy::new("db \"main\"".into(), "127.0.0.1:1".into(), "x:2".into());
        proxy.stats().received(Stream::Upstream, 5);
        proxy.stats().applied(7, Stream::Upstream, 2);
        let text = render([&proxy].into_iter());
        assert!(text.contains(
            "toxiproxy_proxy_received_bytes_total{direction=\"upstream\",proxy=\"db \\\"main\\\"\",listener=\"127.0.0.1:1\",upstream=\"x:2\"} 5\n"
        ), "{text}");
        assert!(text.contains(
            "toxiproxy_toxic_applied_total{proxy=\"db \\\"main\\\"\",type=\"http_error\",stream=\"upstream\"} 2\n"
        ), "{text}");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("a sample");
            value.parse::<u64>().expect("a number");
        }
        assert_eq!(text.matches("# TYPE").count(), 5);
    }
}
