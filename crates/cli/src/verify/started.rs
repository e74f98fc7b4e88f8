//! A topology `verify` started, as the experiments reach it: its addresses, the route each
//! request kind takes, and its processes as [`Services`] the causes act on.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use blastwall_chaos::experiment::inject::Services;
use blastwall_chaos::mock::Behaviour;
use blastwall_chaos::spec::{self, Spec};
use http::Uri;
use tokio::sync::Mutex;

use crate::topology::Topology;

/// A started topology; its children stop with it.
#[derive(Debug)]
pub struct Started {
    /// Locked by a cause while it acts: one at a time, as the experiments run one at a time.
    topology: Mutex<Topology>,
    traffic: SocketAddr,
    admin: Uri,
    token: Option<String>,
}

impl Started {
    /// Starts `topology`, the children's logs (and the config the proxy runs) in `logs`.
    pub async fn start(topology: &spec::Topology, logs: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the blastwall binary to start")?;
        let topology = Topology::start(topology, &exe, logs).await?;
        let admin = topology.admin_addr().context(
            "the topology's Blastwall config turns its admin API off ([admin] listen = \"off\"): verify reads events and makes fault rules through it",
        )?;
        let admin = format!("http://{admin}")
            .parse()
            .context("the admin address as a URL")?;
        let token = topology
            .config()
            .admin
            .token
            .as_ref()
            .and_then(|token| String::from_utf8(token.as_bytes().to_vec()).ok());
        Ok(Self {
            traffic: topology.traffic_addr(),
            admin,
            token,
            topology: Mutex::new(topology),
        })
    }

    /// Where traffic goes.
    pub fn traffic(&self) -> SocketAddr {
        self.traffic
    }

    /// The proxy's admin API.
    pub fn admin(&self) -> &Uri {
        &self.admin
    }

    /// The admin token of the topology's config, if it has one.
    pub fn admin_token(&self) -> Option<String> {
        self.token.clone()
    }

    /// The route each of the spec's request kinds takes, as the proxy matches it.
    pub async fn routes(&self, spec: &Spec) -> Vec<Option<String>> {
        let kinds: Vec<_> = spec
            .load
            .requests
            .iter()
            // As the load sends them: `Host: localhost`, which a route may match on.
            .map(|kind| {
                (
                    kind.method.clone(),
                    format!("http://localhost{}", kind.path),
                )
            })
            .collect();
        let topology = self.topology.lock().await;
        topology
            .routes_of(&kinds)
            .into_iter()
            .map(|route| route.map(str::to_owned))
            .collect()
    }

    /// Stops every process and waits for each to exit.
    pub async fn stop(self) {
        if let Err(error) = self.topology.into_inner().shutdown().await {
            eprintln!("warning: stopping the topology: {error:#}");
        }
    }
}

fn sentence(error: &anyhow::Error) -> String {
    format!("{error:#}")
}

impl Services for Started {
    async fn kill(&self, name: &str) -> Result<(), String> {
        self.topology
            .lock()
            .await
            .kill(name)
            .await
            .map_err(|e| sentence(&e))
    }

    async fn restart(&self, name: &str) -> Result<(), String> {
        self.topology
            .lock()
            .await
            .restart(name)
            .await
            .map_err(|e| sentence(&e))
    }

    async fn stop(&self, name: &str) -> Result<(), String> {
        self.topology
            .lock()
            .await
            .stop(name)
            .map_err(|e| sentence(&e))
    }

    async fn resume(&self, name: &str) -> Result<(), String> {
        self.topology
            .lock()
            .await
            .resume(name)
            .map_err(|e| sentence(&e))
    }

    async fn set_behaviour(&self, name: &str, behaviour: &Behaviour) -> Result<(), String> {
        let mut topology = self.topology.lock().await;
        topology
            .set_behaviour(name, behaviour)
            .await
            .map_err(|e| sentence(&e))
    }

    async fn restore_behaviour(&self, name: &str) -> Result<(), String> {
        let mut topology = self.topology.lock().await;
        topology
            .restore_behaviour(name)
            .await
            .map_err(|e| sentence(&e))
    }
}
