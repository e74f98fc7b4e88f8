//! Causing a failure and taking it away: each [`Cause`] of the spec done the way a person
//! would do it by hand (a fault rule through the admin API, a toxic through Toxiproxy's, a
//! signal to a process `verify` started, a mock's new behaviour), and undone the same way.
//!
//! Nothing is left behind: a fault rule carries a `ttl` a little longer than the failure,
//! so even a `verify` killed with SIGKILL leaves a rule that soon expires; every other cause
//! is undone by [`Injected::remove`], which the runner calls on every path out of an
//! experiment (the hold's end, Ctrl-C, an error). A toxic has no TTL in Toxiproxy's API:
//! only a `verify` killed outright leaves one, named `blastwall-verify-…` to find it.

use std::future::Future;
use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::api::Api;
use crate::mock::Behaviour;
use crate::spec::Cause;

/// How much longer than the failure a fault rule lives, should `verify` die before it
/// deletes it.
pub const TTL_SLACK: Duration = Duration::from_secs(10);

/// The processes a topology started, as the causes that act on them need.
pub trait Services: Send + Sync {
    /// SIGKILL service `name`.
    fn kill(&self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Start killed service `name` again on its address, with its own behaviour.
    fn restart(&self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// SIGSTOP service `name`.
    fn stop(&self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// SIGCONT service `name`.
    fn resume(&self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Give mock `name` a new behaviour.
    fn set_behaviour(
        &self,
        name: &str,
        behaviour: &Behaviour,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Give mock `name` its own behaviour back.
    fn restore_behaviour(&self, name: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// A running system's: it has no processes of verify's (the spec's check refuses causes
/// that need them, so these are never called).
#[derive(Debug, Clone, Copy)]
pub struct NoServices;

const NO_SERVICES: &str = "a running system has no services verify started";

impl Services for NoServices {
    async fn kill(&self, _: &str) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
    async fn restart(&self, _: &str) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
    async fn stop(&self, _: &str) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
    async fn resume(&self, _: &str) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
    async fn set_behaviour(&self, _: &str, _: &Behaviour) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
    async fn restore_behaviour(&self, _: &str) -> Result<(), String> {
        Err(NO_SERVICES.into())
    }
}

/// Where causes are sent.
#[derive(Debug)]
pub struct Levers<'a, S> {
    /// The Blastwall admin API.
    pub admin: Option<&'a Api>,
    /// A Toxiproxy API.
    pub toxiproxy: Option<&'a Api>,
    /// The started services.
    pub services: &'a S,
}

/// A failure in force, and what undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// A runtime fault rule, by id.
    Fault(String),
    /// A toxic on a Toxiproxy proxy.
    Toxic {
        /// The proxy.
        proxy: String,
        /// The toxic's name.
        name: String,
    },
    /// A killed service.
    Killed(String),
    /// A stopped service.
    Stopped(String),
    /// A mock with another behaviour.
    Behaviour(String),
}

/// Causes `cause` for `duration`; `experiment` names what it leaves behind.
pub async fn inject<S: Services>(
    cause: &Cause,
    duration: Duration,
    experiment: &str,
    levers: &Levers<'_, S>,
) -> Result<Injected, String> {
    match cause {
        Cause::Fault(rule) => {
            let admin = levers
                .admin
                .ok_or("a fault rule needs the proxy's admin API")?;
            let mut rule = rule.clone();
            let ttl = duration + TTL_SLACK;
            rule.insert(
                "ttl".into(),
                Value::String(format!("{}ms", ttl.as_millis())),
            );
            let made = admin
                .call(Method::POST, "/admin/faults", Some(&Value::Object(rule)))
                .await?;
            let id = made
                .get("id")
                .and_then(Value::as_str)
                .ok_or("POST /admin/faults: the answer has no rule id")?;
            Ok(Injected::Fault(id.to_owned()))
        }
        Cause::Toxic { proxy, toxic } => {
            let api = levers.toxiproxy.ok_or("a toxic needs a Toxiproxy API")?;
            let mut toxic = toxic.clone();
            let name = match toxic.get("name").and_then(Value::as_str) {
                Some(name) => name.to_owned(),
                None => {
                    let name = format!("blastwall-verify-{experiment}");
                    toxic.insert("name".into(), Value::String(name.clone()));
                    name
                }
            };
            let path = format!("/proxies/{}/toxics", path_segment(proxy));
            api.call(Method::POST, &path, Some(&Value::Object(toxic)))
                .await?;
            Ok(Injected::Toxic {
                proxy: proxy.clone(),
                name,
            })
        }
        Cause::Kill(name) => {
            levers.services.kill(name).await?;
            Ok(Injected::Killed(name.clone()))
        }
        Cause::Stop(name) => {
            levers.services.stop(name).await?;
            Ok(Injected::Stopped(name.clone()))
        }
        Cause::Behaviour { service, behaviour } => {
            levers.services.set_behaviour(service, behaviour).await?;
            Ok(Injected::Behaviour(service.clone()))
        }
    }
}

impl Injected {
    /// Takes the failure away.
    pub async fn remove<S: Services>(&self, levers: &Levers<'_, S>) -> Result<(), String> {
        match self {
            Injected::Fault(id) => {
                let admin = levers
                    .admin
                    .ok_or("a fault rule needs the proxy's admin API")?;
                let path = format!("/admin/faults/{}", path_segment(id));
                match admin.call(Method::DELETE, &path, None).await {
                    // Gone already: its ttl ran out, or someone cleared the rules.
                    Err(error) if error.contains("404") => Ok(()),
                    other => other.map(drop),
                }
            }
            Injected::Toxic { proxy, name } => {
                let api = levers.toxiproxy.ok_or("a toxic needs a Toxiproxy API")?;
                let path = format!(
                    "/proxies/{}/toxics/{}",
                    path_segment(proxy),
                    path_segment(name)
                );
                api.call(Method::DELETE, &path, None).await.map(drop)
            }
            Injected::Killed(name) => levers.services.restart(name).await,
            Injected::Stopped(name) => levers.services.resume(name).await,
            Injected::Behaviour(name) => levers.services.restore_behaviour(name).await,
        }
    }
}

/// `text` as one path segment: everything but unreserved characters percent-encoded, so a
/// name from a spec or an answer cannot reach another path.
fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn a_name_cannot_leave_its_path_segment() {
        assert_eq!(path_segment("f12"), "f12");
        assert_eq!(path_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }
}
