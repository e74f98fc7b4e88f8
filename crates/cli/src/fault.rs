//! `blastwall fault add|list|delete|clear`: fault rules on a running proxy, through its
//! admin API (`/admin/faults`), as a script or a person at a terminal would use them.
//!
//! Nothing here decides what a fault means: `add` turns its flags into the same JSON body a
//! `curl` would send, and the proxy checks it with the config's own code, so the words of an
//! error are the proxy's. Where the admin API is: `--admin`, else the `[admin] listen` of
//! `--config`, else the default `127.0.0.1:9901`; the token: `--token`, else
//! `BLASTWALL_ADMIN_TOKEN`, else the config's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{ArgGroup, Args, Subcommand};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

/// The admin address when neither `--admin` nor `--config` says.
const DEFAULT_ADMIN: &str = "127.0.0.1:9901";
/// The environment variable a token may come from.
const TOKEN_ENV: &str = "BLASTWALL_ADMIN_TOKEN";
/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `blastwall fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    #[command(subcommand)]
    action: FaultCommand,
    /// The proxy's admin API: `host:port` or a URL. Default: the `[admin] listen` of
    /// `--config`, else 127.0.0.1:9901.
    #[arg(long, global = true, value_name = "URL")]
    admin: Option<String>,
    /// The admin token (mutations need it when the proxy has one). Default: the
    /// environment's BLASTWALL_ADMIN_TOKEN, else the config's.
    #[arg(long, global = true)]
    token: Option<String>,
    /// The proxy's config file, to read its admin address and token from.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// Put a fault on a route (or every route of a cluster) for a while.
    Add(Box<AddArgs>),
    /// Every fault rule in force, runtime and config ones.
    List,
    /// Delete a runtime fault rule by its id.
    Delete {
        /// The rule's id (`f1`…), as `add` and `list` show it.
        id: String,
    },
    /// The kill switch: remove every runtime rule and silence the config's until the next
    /// reload (or `blastwall fault resume`).
    Clear,
    /// Let the config's rules apply again after `clear`.
    Resume,
}

/// Flags of `blastwall fault add`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["delay", "abort", "down"])))]
struct AddArgs {
    /// The route whose requests it faults.
    #[arg(long, conflicts_with = "cluster", required_unless_present = "cluster")]
    route: Option<String>,
    /// Every route whose cluster this is.
    #[arg(long)]
    cluster: Option<String>,
    /// Hold each request this long before its attempts (e.g. 2s); with `--at attempt`,
    /// each attempt within its per-try timeout.
    #[arg(long)]
    delay: Option<String>,
    /// Answer with this status instead of sending the request (400 to 599).
    #[arg(long, value_name = "STATUS")]
    abort: Option<u16>,
    /// The share of matching requests faulted, 0 to 100. Default 100.
    #[arg(long)]
    percent: Option<f64>,
    /// Only requests with this header (`name` or `name=value`) from a trusted client.
    #[arg(long)]
    header: Option<String>,
    /// Fault only the first N requests, then the rule is spent.
    #[arg(long, value_name = "N")]
    first: Option<u64>,
    /// Where it is done: `request` (once, before the attempts; the default) or `attempt`
    /// (in each attempt, retries and hedges included).
    #[arg(long, value_name = "request|attempt")]
    at: Option<String>,
    /// Only the attempts that pick this endpoint of the target's cluster: `ip:port`, or
    /// `random` (picked as the rule is made; `add` prints it).
    #[arg(long, value_name = "ADDR|random")]
    endpoint: Option<String>,
    /// Take `--endpoint` down: its attempts fail as refused connections, and its health
    /// checks fail, until the rule ends.
    #[arg(long)]
    down: bool,
    /// How long it lasts (its `ttl`; required: a fault made at run time always ends).
    #[arg(long = "for", value_name = "TTL")]
    ttl: String,
    /// Wait this long before it applies.
    #[arg(long)]
    after: Option<String>,
}

impl AddArgs {
    /// The JSON body of `POST /admin/faults`.
    fn body(&self) -> Value {
        let mut body = Map::new();
        let mut put = |key: &str, value: Value| {
            body.insert(key.to_owned(), value);
        };
        if let Some(route) = &self.route {
            put("route", json!(route));
        }
        if let Some(cluster) = &self.cluster {
            put("cluster", json!(cluster));
        }
        if let Some(delay) = &self.delay {
            put("delay", json!(delay));
        }
        if let Some(status) = self.abort {
            put("abort", json!({ "status": status }));
        }
        if let Some(percent) = self.percent {
            put("percent", json!(percent));
        }
        if let Some(header) = &self.header {
            put("header", json!(header));
        }
        if let Some(first) = self.first {
            put("first", json!(first));
        }
        if let Some(at) = &self.at {
            put("at", json!(at));
        }
        if let Some(endpoint) = &self.endpoint {
            put("endpoint", json!(endpoint));
        }
        if self.down {
            put("down", json!(true));
        }
        if let Some(after) = &self.after {
            put("after", json!(after));
        }
        put("ttl", json!(self.ttl));
        Value::Object(body)
    }
}

/// Runs the subcommand against the proxy's admin API.
pub async fn run(args: FaultArgs) -> anyhow::Result<()> {
    let admin = Admin::locate(&args)?;
    match &args.action {
        FaultCommand::Add(add) => {
            let rule = admin
                .call(Method::POST, "/admin/faults", Some(add.body()))
                .await?;
            let endpoint = match rule["endpoint"].as_str() {
                Some(address) if rule["endpoint_random"] == true => {
                    format!(" (endpoint {address}, picked at random)")
                }
                Some(address) => format!(" (endpoint {address})"),
                None => String::new(),
            };
            println!(
                "{}: {} on {}{endpoint}, until {}",
                text(&rule["id"]),
                text(&rule["action"]),
                target(&rule["target"]),
                text(&rule["expires_at"]),
            );
        }
        FaultCommand::List => {
            let list = admin.call(Method::GET, "/admin/faults", None).await?;
            print_list(&list);
        }
        FaultCommand::Delete { id } => {
            let path = format!("/admin/faults/{}", percent_encode(id));
            admin.call(Method::DELETE, &path, None).await?;
            println!("{id}: deleted");
        }
        FaultCommand::Clear => {
            let cleared = admin.call(Method::DELETE, "/admin/faults", None).await?;
            println!(
                "{} runtime rule(s) removed; the config's fault rules are silenced until the next reload or `blastwall fault resume`",
                cleared["removed"]
            );
        }
        FaultCommand::Resume => {
            admin
                .call(Method::POST, "/admin/faults/resume", None)
                .await?;
            println!("the config's fault rules apply again");
        }
    }
    Ok(())
}

/// `GET /admin/faults` as a table.
fn print_list(list: &Value) {
    let faults = list["faults"].as_array().map_or(&[][..], Vec::as_slice);
    if list["silenced"] == true {
        println!("(kill switch on: the config's rules are silenced)");
    }
    if faults.is_empty() {
        println!("no fault rules");
        return;
    }
    println!(
        "{:<20} {:<8} {:<24} {:<16} {:>8} {:>8} {:>10}",
        "ID", "ORIGIN", "TARGET", "ACTION", "PERCENT", "FAULTED", "EXPIRES IN"
    );
    for rule in faults {
        let expires = match rule["expires_in_ms"].as_u64() {
            Some(ms) => format!("{:.0}s", Duration::from_millis(ms).as_secs_f64()),
            None => "-".into(),
        };
        let id = format!(
            "{}{}",
            text(&rule["id"]),
            if rule["active"] == true { "" } else { " (off)" }
        );
        let action = match (rule["endpoint"].as_str(), rule["at"].as_str()) {
            (Some(endpoint), _) => format!("{} on {endpoint}", text(&rule["action"])),
            (None, Some("attempt")) => format!("{} per attempt", text(&rule["action"])),
            _ => text(&rule["action"]).to_owned(),
        };
        println!(
            "{id:<20} {:<8} {:<24} {action:<16} {:>8} {:>8} {expires:>10}",
            text(&rule["origin"]),
            target(&rule["target"]),
            rule["percent"].to_string(),
            rule["faulted"].to_string(),
        );
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

/// `route "checkout"` from `{"route": "checkout"}`.
fn target(value: &Value) -> String {
    value
        .as_object()
        .and_then(|target| target.iter().next())
        .map_or_else(
            || "-".into(),
            |(kind, name)| format!("{kind} {}", text(name)),
        )
}

/// `/`, `%`, `?` and `#` escaped, so an id is one path segment.
fn percent_encode(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '/' | '%' | '?' | '#' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Where the admin API is and the token for it.
struct Admin {
    base: String,
    token: Option<String>,
}

impl Admin {
    fn locate(args: &FaultArgs) -> anyhow::Result<Self> {
        let config = match &args.config {
            None => None,
            Some(path) => Some(
                blastwall_proxy::Config::load(path)
                    .map_err(|errors| anyhow::anyhow!("{errors}"))
                    .with_context(|| format!("cannot read the config {}", path.display()))?,
            ),
        };
        let address = match (&args.admin, &config) {
            (Some(admin), _) => admin.clone(),
            (None, Some(config)) => match config.admin.listen {
                Some(addr) if addr.port() == 0 => bail!(
                    "{}: [admin] listen is {addr}, any free port: give the address the proxy printed (`admin listening on ...`) with --admin",
                    args.config
                        .as_deref()
                        .unwrap_or_else(|| "".as_ref())
                        .display()
                ),
                Some(addr) => addr.to_string(),
                None => bail!(
                    "{}: [admin] listen is \"off\", so the proxy has no admin API to talk to",
                    args.config
                        .as_deref()
                        .unwrap_or_else(|| "".as_ref())
                        .display()
                ),
            },
            (None, None) => DEFAULT_ADMIN.to_owned(),
        };
        let base = if address.starts_with("http://") {
            address.trim_end_matches('/').to_owned()
        } else if address.starts_with("https://") {
            bail!("--admin {address}: the admin API speaks plain HTTP (keep it on loopback)");
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        base.parse::<http::Uri>()
            .with_context(|| format!("--admin {address:?} is not a host:port or a URL"))?;
        let from_env = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|token| !token.is_empty());
        let token = args.token.clone().or(from_env).or_else(|| {
            let token = config.as_ref()?.admin.token.as_ref()?;
            String::from_utf8(token.as_bytes().to_vec()).ok()
        });
        Ok(Self { base, token })
    }

    /// One call: its JSON answer, or an error that says what went wrong and where.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if method != Method::GET {
            // NOTE: the admin API refuses a mutation without a JSON content type (CSRF).
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = body.map_or_else(Bytes::new, |body| Bytes::from(body.to_string()));
        let request = request.body(Full::new(body))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = match tokio::time::timeout(CALL_TIMEOUT, client.request(request)).await {
            Err(_) => bail!(
                "the admin API at {} did not answer within {CALL_TIMEOUT:?}",
                self.base
            ),
            Ok(Err(error)) => bail!(
                "cannot reach a proxy's admin API at {}: {}\n(is `blastwall run` up? give its admin address with --admin, or its config with --config)",
                self.base,
                root_cause(&error)
            ),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("the answer of {method} {url} was cut"))?
            .to_bytes();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let value: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!("{method} {url} answered {status} without JSON: is this a blastwall admin API?")
        })?;
        if !status.is_success() {
            let message = value["error"].as_str().unwrap_or("(no message)");
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    " (give the admin token with --token or BLASTWALL_ADMIN_TOKEN)"
                }
                _ => "",
            };
            bail!("{status}: {message}{hint}");
        }
        Ok(value)
    }
}

/// The innermost cause of a client error (e.g. "Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
