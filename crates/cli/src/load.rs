//! `blastwall load`: the flags of the load generator, checked and turned into a
//! [`Plan`] for [`blastwall_chaos::load`], which sends the load and measures it.
//!
//! The exit code is for CI: 0 when the run happened and every `--expect` held,
//! [`EXPECTATION_FAILED`] when one did not, [`COULD_NOT_RUN`] when the run could not happen
//! (a bad flag, a URL that does not resolve; clap's own usage errors are 2 as well).

mod progress;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use blastwall_chaos::load::{
    self, Kind, Plan, Protocol, Report, Schedule, Threshold, Timetable, TlsSettings, Trust,
};
use bytes::Bytes;
use clap::Args;
use http::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

/// Flags of `blastwall load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The URL every request goes to (`http://` or `https://host:port/path?query`).
    url: Uri,
    /// Requests per second, sent on a fixed timetable whatever the answers take; or `max`:
    /// each of --connections sends its next request as soon as the last is answered
    /// (closed loop, the most the server answers; it hides stalls, so it is reported apart).
    #[arg(long, value_parser = parse_rate)]
    rate: Rate,
    /// Stop scheduling after this long, like `10s` (default 10s when --requests is absent).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many requests (with --duration, whichever comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Keep-alive connections kept open at most; a request waits for a free one.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: Method,
    /// An extra request header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Request body.
    #[arg(long, default_value = "")]
    body: String,
    /// A request not answered this long after it was due fails as a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    timeout: Duration,
    /// Split traffic by one header's value, with weights, and report each class apart:
    /// `x-blastwall-priority=high:0.5,low:0.5`.
    #[arg(long, value_parser = parse_mix)]
    header_mix: Option<HeaderMix>,
    /// Width of a timeline point in the JSON report.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    timeline_interval: Duration,
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// A bound the run must meet, or the exit code is 3 (repeatable): `p99<300ms`,
    /// `errors<1%`, `rps>900`. Figures: p50, p90, p99, p99.9, max, mean (latency of every
    /// request from its due time), errors (share failed), rps (answers per second);
    /// comparisons `<`, `<=`, `>`, `>=`.
    #[arg(long = "expect", value_name = "FIGURE<BOUND")]
    expectations: Vec<Threshold>,
    /// Send HTTP/2 instead of HTTP/1.1: by prior knowledge (h2c) on http://, offered by
    /// ALPN on https:// (the server's choice decides).
    #[arg(long)]
    http2: bool,
    /// For https://: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// For https://: accept any certificate (self-signed test certificates).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// No live progress line on stderr (it is shown only when stderr is a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The exit code when the run happened and a threshold did not hold.
pub const EXPECTATION_FAILED: u8 = 3;
/// The exit code when the run could not happen.
pub const COULD_NOT_RUN: u8 = 2;

/// The `--rate` flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Requests per second, open loop.
    PerSecond(f64),
    /// As fast as the connections answer, closed loop.
    Max,
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    if text.trim().eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match text.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Rate::PerSecond(rate)),
        Ok(rate) => Err(format!("the rate must be above 0, got {rate}")),
        Err(_) => Err(format!(
            "expected requests per second (like `500`) or `max`, got {text:?}"
        )),
    }
}

/// The `--header-mix` flag: one header, several values with weights.
#[derive(Debug, Clone)]
pub struct HeaderMix {
    name: HeaderName,
    classes: Vec<(HeaderValue, f64)>,
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("expected `name: value`, got {text:?}"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|err| format!("header name: {err}"))?;
    let value =
        HeaderValue::try_from(value.trim()).map_err(|err| format!("header value: {err}"))?;
    Ok((name, value))
}

fn parse_mix(text: &str) -> Result<HeaderMix, String> {
    let (name, classes) = text
        .split_once('=')
        .ok_or_else(|| format!("expected `header=value:weight,...`, got {text:?}"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|err| format!("header name: {err}"))?;
    let mut parsed = Vec::new();
    for class in classes.split(',') {
        let (value, weight) = class
            .rsplit_once(':')
            .ok_or_else(|| format!("expected `value:weight`, got {class:?}"))?;
        let value = HeaderValue::try_from(value.trim())
            .map_err(|err| format!("header value {value:?}: {err}"))?;
        let weight: f64 = weight
            .trim()
            .parse()
            .map_err(|err| format!("weight {weight:?}: {err}"))?;
        if !(weight > 0.0 && weight.is_finite()) {
            return Err(format!("weight of {value:?} must be above 0, got {weight}"));
        }
        parsed.push((value, weight));
    }
    Ok(HeaderMix {
        name,
        classes: parsed,
    })
}

/// Runs the load, prints its report and judges it: the exit code says how it went.
pub async fn run(args: LoadArgs) -> ExitCode {
    match measure(&args).await {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXPECTATION_FAILED),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(COULD_NOT_RUN)
        }
    }
}

/// Runs the load and prints its report, thresholds judged.
async fn measure(args: &LoadArgs) -> anyhow::Result<Report> {
    let plan = plan(args).await?;
    let class_names = match &plan.mix {
        Some((name, classes)) => classes
            .iter()
            .map(|(value, _)| format!("{name}={}", String::from_utf8_lossy(value.as_bytes())))
            .collect(),
        None => vec!["all".to_owned()],
    };
    let schedule = plan.schedule;
    let connections = plan.connections;
    let started = move || {
        // NOTE: scripts wait for this line on stderr to time their faults from it.
        match schedule {
            Schedule::Open(timetable) => eprintln!(
                "load started: {} requests at {}/s",
                timetable.total(),
                timetable.rate()
            ),
            Schedule::Closed { .. } => eprintln!(
                "load started: closed loop at the max rate over {connections} connections"
            ),
        }
    };
    let summary = send(plan, started, args.quiet).await;
    let report = Report {
        url: args.url.to_string(),
        method: args.method.to_string(),
        rate: match args.rate {
            Rate::PerSecond(rate) => Some(rate),
            Rate::Max => None,
        },
        mode: match schedule {
            Schedule::Open(_) => "open",
            Schedule::Closed { .. } => "closed",
        },
        requests: match schedule {
            Schedule::Open(timetable) => timetable.total(),
            Schedule::Closed { .. } => summary.total.requests,
        },
        connections,
        timeout_s: args.timeout.as_secs_f64(),
        class_names,
        verdicts: args
            .expectations
            .iter()
            .map(|threshold| threshold.judge(&summary))
            .collect(),
        summary,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(report)
}

/// Sends the load, with the live progress line when stderr is a terminal and not `quiet`.
async fn send(plan: Plan, started: impl FnOnce(), quiet: bool) -> load::Summary {
    if quiet || !std::io::stderr().is_terminal() {
        return load::run(plan, started).await;
    }
    let mut line = progress::ProgressLine::default();
    let summary = load::run_with_progress(plan, started, Duration::from_secs(1), move |now| {
        progress::show(&line.line(now));
    })
    .await;
    progress::clear();
    summary
}

async fn plan(args: &LoadArgs) -> anyhow::Result<Plan> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.timeout.is_zero() {
        bail!("--timeout must be above 0");
    }
    let https = match args.url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => bail!(
            "only http:// and https:// URLs are supported, got {}",
            args.url
        ),
    };
    let authority = args.url.authority().context("the URL has no host")?.clone();
    let tls = tls(args, https, authority.host())?;
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = tokio::net::lookup_host((authority.host(), port))
        .await
        .with_context(|| format!("cannot resolve {}", authority.host()))?
        .next()
        .with_context(|| format!("{} has no address", authority.host()))?;
    let target: Uri = args
        .url
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .parse()
        .context("request target")?;
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::try_from(authority.as_str())?);
    for (name, value) in &args.headers {
        headers.append(name.clone(), value.clone());
    }
    // Without either bound the run would never end: ten seconds is the default.
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (duration, _) => duration,
    };
    Ok(Plan {
        addr,
        kinds: vec![Kind {
            body: Bytes::from(args.body.clone()),
            ..Kind::new(args.method.clone(), target)
        }],
        headers,
        shared_headers: Vec::new(),
        debug: false,
        seed: 0,
        mix: args.header_mix.clone().map(|mix| (mix.name, mix.classes)),
        schedule: match args.rate {
            Rate::PerSecond(rate) => Schedule::Open(Timetable::new(rate, args.requests, duration)),
            Rate::Max => Schedule::Closed {
                requests: args.requests,
                duration,
            },
        },
        connections: args.connections,
        timeout: args.timeout,
        interval: args.timeline_interval,
        protocol: if args.http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        },
        tls,
    })
}

/// The TLS settings of an https:// URL, as --ca or --insecure say to trust its server.
fn tls(args: &LoadArgs, https: bool, host: &str) -> anyhow::Result<Option<TlsSettings>> {
    let trust = match (https, &args.ca, args.insecure) {
        (false, None, false) => return Ok(None),
        (false, _, _) => bail!("--ca and --insecure are for https:// URLs"),
        (true, None, false) => bail!(
            "an https:// URL needs --ca FILE (the CA to trust) or --insecure (any certificate); the system's roots are not read"
        ),
        (true, Some(path), _) => Trust::CaFile(path),
        (true, None, true) => Trust::Anything,
    };
    Ok(Some(TlsSettings::new(host, trust, args.http2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_mix_names_one_header_and_weighted_values() {
        let mix = parse_mix("x-blastwall-priority=high:0.5,low:0.5").expect("valid");
        assert_eq!(mix.name, "x-blastwall-priority");
        assert_eq!(mix.classes.len(), 2);
        assert_eq!(mix.classes[0].0, "high");
        assert!((mix.classes[1].1 - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_mix_value_may_contain_a_colon_since_the_weight_is_after_the_last_one() {
        let mix = parse_mix("x-key=a:b:2").expect("valid");
        assert_eq!(mix.classes[0].0, "a:b");
        assert!((mix.classes[0].1 - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_mix_without_weights_or_with_a_zero_weight_is_refused() {
        assert!(parse_mix("x-p=high,low").is_err());
        assert!(parse_mix("x-p=high:0,low:1").is_err());
        assert!(parse_mix("x-p=high:-1").is_err());
        assert!(parse_mix("high:1").is_err());
    }

    #[test]
    fn a_rate_is_a_positive_number_or_max() {
        assert_eq!(parse_rate("500"), Ok(Rate::PerSecond(500.0)));
        assert_eq!(parse_rate("0.5"), Ok(Rate::PerSecond(0.5)));
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("MAX"), Ok(Rate::Max));
        assert!(parse_rate("0").expect_err("zero").contains("above 0"));
        assert!(parse_rate("-3").expect_err("negative").contains("above 0"));
        assert!(parse_rate("inf").expect_err("infinite").contains("above 0"));
        assert!(parse_rate("fast").expect_err("a word").contains("or `max`"));
    }

    #[test]
    fn headers_are_name_colon_value() {
        let (name, value) = parse_header("X-Test:  a b ").expect("valid");
        assert_eq!(name, "x-test");
        assert_eq!(value, "a b");
        assert!(parse_header("no colon").is_err());
    }
}
