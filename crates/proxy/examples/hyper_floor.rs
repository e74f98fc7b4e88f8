//! The floor under any proxy built on hyper: the least a hyper HTTP/1 server and client can
//! do to forward a request, measured beside Blastwall, nginx and HAProxy by
//! `bench/side_by_side.py --floor`.
//!
//! No routing, no pool (each downstream connection owns one upstream connection), no header
//! work, no timeouts, no metrics: a request goes to the upstream as it came and the response
//! comes back as it came, on tokio's current-thread runtime. Not a proxy anyone should run
//! (it forwards hop-by-hop headers and has no limits); it answers one question: what
//! CPU per request do hyper's server and client cost on their own?
//!
//! `cargo run --release -p blastwall-proxy --example hyper_floor -- LISTEN UPSTREAM`
//! prints `listening on ADDR` once it accepts.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio::task::LocalSet::new().block_on(&runtime, serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (downstream, _) = listener.accept().await?;
        downstream.set_nodelay(true)?;
        tokio::task::spawn_local(async move {
            let sender: Rc<RefCell<Option<SendRequest<Incoming>>>> = Rc::default();
            let service = service_fn(move |request: Request<Incoming>| {
                let sender = sender.clone();
                async move { forward(&sender, upstream, request).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(downstream), service)
                .await;
        });
    }
}

async fn forward(
    sender: &RefCell<Option<SendRequest<Incoming>>>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, Error> {
    // The server side asks for the next request only after this response's body is done,
    // so the one upstream connection is never wanted twice at once.
    let kept = sender.borrow_mut().take();
    let mut connection = match kept {
        Some(connection) if !connection.is_closed() => connection,
        _ => {
            let stream = TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (connection, driver) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(driver);
            connection
        }
    };
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    *sender.borrow_mut() = Some(connection);
    Ok(response)
}
