//! What every integration test needs: the real `blastwall` binary as a proxy or as a mock
//! upstream, on 127.0.0.1 with ports the system picks, and an HTTP client.
//!
//! Processes are killed when their handle drops, so a failing test leaves nothing behind.
//! Readiness is a line the process prints, never a fixed wait.

#![allow(dead_code, unreachable_pub)]

pub mod browser;
mod eventually;
pub mod toxiproxy_api;

// Not every suite waits for something.
#[allow(unused_imports)]
pub use self::eventually::{eventually, eventually_blocking};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long a process may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A `blastwall` process, killed on drop.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything it printed on stdout so far, for failure messages.
    pub output: Vec<String>,
}

impl Process {
    /// Starts `blastwall` with `args`, its stdout read line by line.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_stderr(args, Stdio::inherit())
    }

    /// Runs `blastwall` with `args`, its stderr (the log) written to `log`.
    pub fn spawn_logged(args: &[&str], log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).expect("a log file");
        Self::spawn_with_stderr(args, Stdio::from(log))
    }

    fn spawn_with_stderr(args: &[&str], stderr: Stdio) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_blastwall"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("blastwall starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, sender));
        Self {
            child,
            lines,
            output: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `text` and returns it.
    pub fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line containing {text:?} within {READY_WITHIN:?}; output: {:#?}",
                    self.output
                ),
            }
        }
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, `"KILL"`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `within`, and returns whether it exited
    /// successfully.
    pub fn wait_exit(&mut self, within: Duration) -> Option<bool> {
        let mut exited = None;
        eventually_blocking(within, || {
            exited = self.child.try_wait().ok().flatten();
            exited.is_some()
        });
        exited.map(|status| status.success())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn forward_lines(stdout: ChildStdout, sender: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if sender.send(line).is_err() {
            return;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_in(line: &str) -> SocketAddr {
    let start = line.find("http://").expect("line has an address") + "http://".len();
    line[start..].trim().parse().expect("a socket address")
}

/// A `blastwall toxiproxy` server.
pub struct Toxiproxy {
    /// The process.
    pub process: Process,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
}

impl Toxiproxy {
    /// Starts one with its API on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one with extra `blastwall toxiproxy` flags.
    pub fn start_with(flags: &[&str]) -> Self {
        Self::ready(Process::spawn(&Self::args(flags)))
    }

    /// Starts one with extra flags, its log (stderr) written to `log`.
    pub fn start_logged(flags: &[&str], log: &std::path::Path) -> Self {
        Self::ready(Process::spawn_logged(&Self::args(flags), log))
    }

    fn args<'a>(flags: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["toxiproxy", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        args
    }

    fn ready(mut process: Process) -> Self {
        let line = process.wait_for_line("toxiproxy API listening on");
        Self {
            addr: address_in(&line),
            process,
        }
    }

    /// The URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A `blastwall mock` upstream.
pub struct Mock {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its name, as sent in `x-mock-name`.
    pub name: String,
}

impl Mock {
    /// Starts a mock named `name` with extra `blastwall mock` flags.
    pub fn start(name: &str, flags: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", name, flags)
    }

    /// Starts a mock on a given address (to restart one where it was).
    pub fn start_on(listen: &str, name: &str, flags: &[&str]) -> Self {
        let mut args = vec!["mock", "--listen", listen, "--name", name];
        args.extend_from_slice(flags);
        let mut process = Process::spawn(&args);
        let line = process.wait_for_line("listening on");
        Self {
            addr: address_in(&line),
            process,
            name: name.to_owned(),
        }
    }

    /// Replaces its behaviour (JSON, as `PUT /_mock/behaviour` takes it).
    pub async fn set_behaviour(&self, json: &str) {
        let (status, _, body) = send(
            Method::PUT,
            &format!("http://{}/_mock/behaviour", self.addr),
            json,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "behaviour refused: {body}");
    }

    /// Its counters, as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        let (_, _, body) = send(
            Method::GET,
            &format!("http://{}/_mock/stats", self.addr),
            "",
            &[],
        )
        .await;
        serde_json::from_str(&body).expect("stats are JSON")
    }

    /// Requests it has received.
    pub async fn requests(&self) -> u64 {
        self.stats().await["requests"].as_u64().expect("a count")
    }
}

/// A `blastwall run` proxy with a config written to a temporary folder.
pub struct Proxy {
    /// The process.
    pub process: Process,
    /// Listener addresses by name, in config order.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The config file, which a test may rewrite before signalling a reload.
    pub config_path: PathBuf,
    _folder: tempfile::TempDir,
}

impl Proxy {
    /// Starts a proxy with this config text and waits until it is ready.
    pub fn start(config: &str) -> Self {
        Self::start_with(config, &[])
    }

    /// Starts a proxy with extra `blastwall run` flags (like `--no-watch`).
    pub fn start_with(config: &str, flags: &[&str]) -> Self {
        let folder = tempfile::tempdir().expect("temporary folder");
        let config_path = folder.path().join("blastwall.toml");
        std::fs::write(&config_path, with_admin(config)).expect("config written");
        let path = config_path.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["run", "-c", &path, "--log", "warn"];
        args.extend_from_slice(flags);
        let mut process = Process::spawn(&args);
        let mut listeners = Vec::new();
        loop {
            let line = process.wait_for_line("");
            if line.starts_with("blastwall ready") {
                break;
            }
            if let Some(rest) = line.strip_prefix("listener ") {
                let name = rest.split('"').nth(1).unwrap_or_default().to_owned();
                listeners.push((name, address_in(&line)));
            }
        }
        Self {
            process,
            listeners,
            config_path,
            _folder: folder,
        }
    }

    /// Replaces the config file the way editors and deploy tools do: a new file renamed
    /// over the old one, so the proxy never reads half of it.
    pub fn replace_config(&self, config: &str) {
        let fresh = self.config_path.with_extension("toml.new");
        std::fs::write(&fresh, with_admin(config)).expect("config written");
        std::fs::rename(&fresh, &self.config_path).expect("config renamed into place");
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// A URL on the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }
}

/// The access log's whole lines so far, each parsed (a line still being written, without
/// its newline, is left for the next read).
pub fn access_log(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect()
}

/// `config`, with an admin listener on a free port when it names none: without `[admin]`
/// a proxy takes the default port (127.0.0.1:9901), which tests running side by side, or
/// a proxy the developer runs, would race for.
pub fn with_admin(config: &str) -> String {
    if config.contains("[admin]") {
        config.to_owned()
    } else {
        config.to_owned() + &admin_section("")
    }
}

/// A response, read whole.
pub type Answer = (StatusCode, HeaderMap, String);

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request on a fresh client and reads the whole answer.
pub async fn send(method: Method, url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    try_send(method, url, body, headers)
        .await
        .expect("an answer")
}

/// Like [`send`], but a transport failure is returned rather than a panic.
pub async fn try_send(
    method: Method,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, hyper_util::client::legacy::Error> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    let response = client().request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    Ok((
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// GET a URL.
pub async fn get(url: &str) -> Answer {
    send(Method::GET, url, "", &[]).await
}

/// A config with one listener on a free port, one route taking everything, and one cluster
/// `api` with `cluster_keys`, `endpoints` (TOML inline tables, see [`endpoint`]) and then
/// `sections` (sub-tables such as `[cluster.api.health_check]`).
pub fn single_cluster_config(cluster_keys: &str, endpoints: &[String], sections: &str) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[[route]]
cluster = "api"

[cluster.api]
{cluster_keys}
endpoints = [{}]
{sections}
"#,
        endpoints.join(", ")
    )
}

/// An endpoint entry for a mock, with extra inline keys such as `, weight = 3`.
pub fn endpoint(mock: &Mock, extra: &str) -> String {
    format!("{{ address = \"{}\" {extra} }}", mock.addr)
}

/// Where a proxy's admin API listens (from its `admin listening on` line).
pub fn admin_addr(proxy: &Proxy) -> SocketAddr {
    let line = proxy
        .process
        .output
        .iter()
        .find(|line| line.starts_with("admin listening on"))
        .expect("the proxy printed its admin address");
    address_in(line)
}

/// A URL on a proxy's admin API.
pub fn admin_url(proxy: &Proxy, path: &str) -> String {
    format!("http://{}{path}", admin_addr(proxy))
}

/// `[admin]` on a free loopback port, with extra keys.
pub fn admin_section(extra: &str) -> String {
    format!("\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}\n")
}

/// A config with one listener, cluster `api` (round robin over `endpoints`, inline tables,
/// plus `cluster_keys`) and one route `api` to it with `route_keys` (its keys and
/// sub-tables such as `[route.retry]`; top-level sections may follow them too).
pub fn route_config(route_keys: &str, cluster_keys: &str, endpoints: &[String]) -> String {
    format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"

[cluster.api]
balance = "round_robin"
{cluster_keys}
endpoints = [{}]

[[route]]
name = "api"
cluster = "api"
{route_keys}
"#,
        endpoints.join(", ")
    )
}

/// The value of header `name` as an echoing mock (`{"echo": true}`) saw it, from its answer.
pub fn seen_header(echoed: &str, name: &str) -> Option<String> {
    let seen: serde_json::Value = serde_json::from_str(echoed).expect("an echo");
    seen["headers"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].as_str())
        .map(str::to_owned)
}

impl Process {
    /// Runs `blastwall` with `args` under `ulimit {limit}` (like `-n 160`, soft and hard, or
    /// `-Sn 256`, soft only), its stderr (the log) written to `log`.
    pub fn spawn_limited(limit: &str, args: &[&str], log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).expect("a log file");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit $0 && exec \"$@\"")
            .arg(limit)
            .arg(env!("CARGO_BIN_EXE_blastwall"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("sh starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, sender));
        Self {
            child,
            lines,
            output: Vec::new(),
        }
    }
}

/// The address in a `... listening on http://addr` line.
pub fn listening_address(line: &str) -> SocketAddr {
    address_in(line)
}

/// A raw answer: its status, its head (lower-case names, as the proxy writes them) and its
/// body (chunks joined).
pub struct Raw {
    /// The status code.
    pub status: u16,
    /// The head, status line included.
    pub head: String,
    /// The body, chunks joined.
    pub body: String,
}

/// Writes `request` on a fresh connection to `addr` and reads until the proxy closes it:
/// for requests no well-behaved client library sends. The request must say
/// `Connection: close` (or be refused), as the proxy's closing ends the read.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    stream.write_all(request).await.expect("written");
    let mut output = Vec::new();
    // A bound, not a wait: the proxy closes after its answer.
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut output))
        .await
        .expect("the proxy answers and closes in time")
        .expect("read");
    let text = String::from_utf8_lossy(&output).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Raw {
        status,
        head: head.to_owned(),
        body,
    }
}

/// A chunked body's data, for answers read whole.
fn dechunk(mut body: &str) -> String {
    let mut data = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        data.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    data
}

/// A socket that takes little at a time: a small receive buffer, and a small segment size
/// (on loopback's 64 KiB one the proxy's first send buffer would take a large answer whole).
pub fn small_window_socket() -> std::io::Result<tokio::net::TcpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_tcp_mss(536)?;
    socket.set_recv_buffer_size(4096)?;
    socket.set_nonblocking(true)?;
    Ok(tokio::net::TcpSocket::from_std_stream(socket.into()))
}
