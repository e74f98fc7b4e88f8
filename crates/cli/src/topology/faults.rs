//! Breaking a started topology the ways a spec's causes say, each the way an operator
//! would by hand: SIGKILL and a start again on the same address (`kill`), SIGSTOP and
//! SIGCONT (`stop`), a new behaviour over the mock's control API (`behaviour`).
//!
//! A killed service starts again on the address it had, so the proxy's config, which names
//! that address, needs no change: the port may still be held by the dead process's
//! connections in TIME_WAIT, which the mock's listener tolerates (tokio sets SO_REUSEADDR on
//! Unix), and the bind is retried briefly should it be refused all the same.
//!
//! The control API is called directly, not through the proxy: the mock refuses a call that
//! carries `Forwarded`, `X-Forwarded-For` or `Via`, and a direct call carries none.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use blastwall_chaos::experiment::api::Api;
use blastwall_chaos::mock::Behaviour;
use http::Method;

use super::{Service, Topology, start_mock};

/// How long a restart keeps trying to bind the service's old address.
const RESTART_WITHIN: Duration = Duration::from_secs(3);
/// The pause between two tries of a restart.
const RESTART_PAUSE: Duration = Duration::from_millis(50);

impl Topology {
    /// SIGKILLs service `name` and waits until it is gone: its connections are reset, its
    /// port refuses.
    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let service = self.service_mut(name)?;
        let child = service
            .child
            .take()
            .with_context(|| format!("service {name:?} is not running (killed already)"))?;
        child.kill().await?;
        Ok(())
    }

    /// Starts killed service `name` again on its own address, with its own behaviour.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let (exe, logs) = (self.exe.clone(), self.logs.clone());
        let service = self.service_mut(name)?;
        if service.child.is_some() {
            bail!("service {name:?} is running: kill it before starting it again");
        }
        let deadline = Instant::now() + RESTART_WITHIN;
        let child = loop {
            match start_mock(&exe, &logs, service).await {
                Ok((child, _)) => break child,
                Err(error) if Instant::now() >= deadline => {
                    return Err(error.context(format!(
                        "cannot start service {name:?} again on {} within {RESTART_WITHIN:?}",
                        service.addr
                    )));
                }
                // The old address may be held for a moment yet.
                Err(_) => tokio::time::sleep(RESTART_PAUSE).await,
            }
        };
        service.child = Some(child);
        Ok(())
    }

    /// SIGSTOPs service `name`: its sockets stay open, nothing answers, connections hang.
    pub fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        self.running_mut(name)?.stop()
    }

    /// SIGCONTs stopped service `name`: it answers again, what waited first.
    pub fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        let child = self.running_mut(name)?;
        if !child.is_stopped() {
            bail!("service {name:?} is not stopped");
        }
        child.resume()
    }

    /// Gives service `name` a new behaviour (`PUT /_mock/behaviour`), until
    /// [`Topology::restore_behaviour`].
    pub async fn set_behaviour(&mut self, name: &str, behaviour: &Behaviour) -> anyhow::Result<()> {
        let stopped = self.running_mut(name)?.is_stopped();
        let addr = addr_of(stopped, name, self.service_addr(name))?;
        put_behaviour(addr, behaviour)
            .await
            .with_context(|| format!("cannot change service {name:?}'s behaviour"))
    }

    /// Gives service `name` its own behaviour again, the one the spec gave it.
    pub async fn restore_behaviour(&mut self, name: &str) -> anyhow::Result<()> {
        let service = self.service_mut(name)?;
        let behaviour = service.behaviour.clone();
        self.set_behaviour(name, &behaviour).await
    }

    fn service_mut(&mut self, name: &str) -> anyhow::Result<&mut Service> {
        let known: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let known = known.join(", ");
        self.services
            .iter_mut()
            .find(|service| service.name == name)
            .with_context(|| format!("no service is named {name:?} (services: {known})"))
    }

    fn running_mut(&mut self, name: &str) -> anyhow::Result<&mut super::Child> {
        self.service_mut(name)?
            .child
            .as_mut()
            .with_context(|| format!("service {name:?} is not running (killed)"))
    }
}

/// The address to call a running service's control API at.
fn addr_of(stopped: bool, name: &str, addr: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    if stopped {
        bail!("service {name:?} is stopped: it cannot take a new behaviour until resumed");
    }
    addr.with_context(|| format!("no service is named {name:?}"))
}

/// `PUT /_mock/behaviour` with `behaviour`, refused unless the mock answers 2xx (a call
/// bounded in time, as every call verify makes: a stopped mock never answers).
async fn put_behaviour(addr: SocketAddr, behaviour: &Behaviour) -> anyhow::Result<()> {
    let body = serde_json::to_value(behaviour).context("cannot write the behaviour as JSON")?;
    let base = format!("http://{addr}")
        .parse()
        .context("the service's address as a URL")?;
    Api::new(base, None)
        .call(Method::PUT, "/_mock/behaviour", Some(&body))
        .await
        .map(drop)
        .map_err(|error| anyhow::anyhow!("{error}"))
}
