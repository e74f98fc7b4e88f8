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

use http::{Method, StatusCode};
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
            let id = made.get("id").and_then(Value::as_str).ok_or_else(|| {
                format!(
                    "POST /admin/faults: the answer has no rule id, so verify cannot delete the rule: it lives until its ttl ({} ms)",
                    ttl.as_millis()
                )
            })?;
            usable_id(id, ttl)?;
            Ok(Injected::Fault(id.to_owned()))
        }
        Cause::Toxic { proxy, toxic } => {
            let api = levers.toxiproxy.ok_or("a toxic needs a Toxiproxy API")?;
            let mut toxic = toxic.clone();
            let given = toxic.get("name").and_then(Value::as_str).map(str::to_owned);
            let injected = Injected::Toxic {
                proxy: proxy.clone(),
                name: given
                    .clone()
                    .unwrap_or_else(|| format!("blastwall-verify-{experiment}")),
            };
            if given.is_none() {
                // A verify killed outright left its own toxic behind (Toxiproxy has no
                // ttl): gone first, best effort, or this run's would be refused (409).
                let _ = injected.remove(levers).await;
                if let Injected::Toxic { name, .. } = &injected {
                    toxic.insert("name".into(), Value::String(name.clone()));
                }
            }
            let path = format!("/proxies/{}/toxics", path_segment(proxy));
            match api
                .call(Method::POST, &path, Some(&Value::Object(toxic)))
                .await
            {
                Ok(_) => Ok(injected),
                // No answer (timed out, cut off): Toxiproxy may have made the toxic all the
                // same, and a toxic has no ttl; it is deleted by its name, best effort.
                Err(error) if error.status.is_none() => {
                    let _ = injected.remove(levers).await;
                    Err(error.into())
                }
                Err(error) => Err(error.into()),
            }
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
            if let Err(error) = levers.services.set_behaviour(service, behaviour).await {
                // The mock may have taken it all the same (an answer that did not come):
                // its own behaviour back, best effort.
                let _ = levers.services.restore_behaviour(service).await;
                return Err(error);
            }
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
                    // Gone already: its ttl ran out, or someone cleared the rules. The status
                    // says so, not the error's words (its URL's port may hold "404" too).
                    Err(error) if error.status == Some(StatusCode::NOT_FOUND) => Ok(()),
                    other => other.map(drop).map_err(String::from),
                }
            }
            Injected::Toxic { proxy, name } => {
                let api = levers.toxiproxy.ok_or("a toxic needs a Toxiproxy API")?;
                let path = format!(
                    "/proxies/{}/toxics/{}",
                    path_segment(proxy),
                    path_segment(name)
                );
                api.call(Method::DELETE, &path, None)
                    .await
                    .map(drop)
                    .map_err(String::from)
            }
            Injected::Killed(name) => levers.services.restart(name).await,
            Injected::Stopped(name) => levers.services.resume(name).await,
            Injected::Behaviour(name) => levers.services.restore_behaviour(name).await,
        }
    }
}

/// The longest rule id taken from an answer (Blastwall's are `f1`, `f2`, …).
const MAX_ID: usize = 128;

/// Whether the rule id an answer gave can be deleted by its own path, and only it: a few
/// unreserved characters, not `.` or `..` (which a server or a proxy in front of it may
/// resolve to the rules' collection, whose DELETE clears every rule, not just verify's).
fn usable_id(id: &str, ttl: Duration) -> Result<(), String> {
    let unreserved =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
    if !id.is_empty()
        && id.len() <= MAX_ID
        && id.bytes().all(unreserved)
        && id.bytes().any(|byte| byte != b'.')
    {
        return Ok(());
    }
    let shown: String = id.chars().take(40).collect();
    Err(format!(
        "POST /admin/faults: the answer's rule id {shown:?}{} is not one verify can delete by its path (1 to {MAX_ID} letters, digits, `-`, `_`, `.`, `~`): the rule lives until its ttl ({} ms)",
        if shown.len() < id.len() { "…" } else { "" },
        ttl.as_millis()
    ))
}

/// `text` as one path segment: everything but unreserved characters percent-encoded, so a
/// name from a spec or an answer cannot reach another path; `.` and `..` are encoded too, as
/// a server (or a proxy in front of it) resolves those as relative steps.
fn path_segment(text: &str) -> String {
    if text.bytes().all(|byte| byte == b'.') {
        return text.bytes().map(|_| "%2E").collect();
    }
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
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// An admin API on a raw socket that answers every request with `answer` (a whole HTTP
    /// response) and keeps each request's first line.
    async fn canned(answer: &'static str) -> (Api, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let lines = lines.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match socket.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let length = head
                        .lines()
                        .filter_map(|line| line.split_once(':'))
                        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    let _ = socket.read_exact(&mut body).await;
                    let first = head.lines().next().unwrap_or("").to_owned();
                    lines.lock().expect("lock").push(first);
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        let api = Api::new(format!("http://{addr}").parse().expect("uri"), None);
        (api, seen)
    }

    fn levers(admin: &Api) -> Levers<'_, NoServices> {
        Levers {
            admin: Some(admin),
            toxiproxy: None,
            services: &NoServices,
        }
    }

    fn abort_rule() -> Cause {
        let rule = serde_json::json!({"route": "x", "abort": 500});
        let Value::Object(rule) = rule else {
            unreachable!("a JSON object")
        };
        Cause::Fault(rule)
    }

    #[tokio::test]
    async fn a_delete_refused_with_404_in_its_words_is_not_taken_for_a_rule_gone() {
        let (admin, seen) = canned(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 28\r\nconnection: close\r\n\r\n{\"error\":\"storage 404 lost\"}",
        )
        .await;
        let removed = Injected::Fault("f1".into()).remove(&levers(&admin)).await;
        let error = removed.expect_err("a 500 is not a removal");
        assert!(error.contains("500"), "{error}");
        assert_eq!(
            *seen.lock().expect("lock"),
            ["DELETE /admin/faults/f1 HTTP/1.1"]
        );
    }

    #[tokio::test]
    async fn a_delete_answered_404_is_a_rule_gone_already() {
        let (admin, _) =
            canned("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
        let removed = Injected::Fault("f1".into()).remove(&levers(&admin)).await;
        assert_eq!(removed, Ok(()));
    }

    #[tokio::test]
    async fn a_rule_made_with_a_hostile_id_is_refused_naming_its_ttl() {
        let (admin, _) = canned(
            "HTTP/1.1 201 Created\r\ncontent-length: 16\r\nconnection: close\r\n\r\n{\"id\":\"../../x\"}",
        )
        .await;
        let made = inject(&abort_rule(), Duration::from_secs(2), "x", &levers(&admin)).await;
        let error = made.expect_err("a hostile id is not an injected fault");
        assert!(error.contains("12000 ms"), "{error}");
    }

    #[tokio::test]
    async fn a_rule_made_without_an_id_says_it_lives_until_its_ttl() {
        let (admin, _) =
            canned("HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
        let made = inject(&abort_rule(), Duration::from_secs(2), "x", &levers(&admin)).await;
        let error = made.expect_err("no id");
        assert!(
            error.contains("no rule id") && error.contains("ttl"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_toxic_whose_post_got_no_answer_is_deleted_all_the_same() {
        // Every connection is cut without an answer: the POST fails with no status. (The
        // first DELETE clears what a verify killed outright may have left of its own.)
        let (toxiproxy, seen) = canned("").await;
        let levers = Levers {
            admin: None,
            toxiproxy: Some(&toxiproxy),
            services: &NoServices,
        };
        let cause = Cause::Toxic {
            proxy: "shop".into(),
            toxic: serde_json::Map::new(),
        };
        let made = inject(&cause, Duration::from_secs(2), "x", &levers).await;
        assert!(made.is_err());
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                "DELETE /proxies/shop/toxics/blastwall-verify-x HTTP/1.1",
                "POST /proxies/shop/toxics HTTP/1.1",
                "DELETE /proxies/shop/toxics/blastwall-verify-x HTTP/1.1"
            ]
        );
    }

    #[test]
    fn only_ids_that_name_one_rule_by_their_path_are_usable() {
        let ttl = Duration::from_secs(12);
        assert_eq!(usable_id("f12", ttl), Ok(()));
        assert_eq!(usable_id("a.b-c_d~", ttl), Ok(()));
        for hostile in ["", ".", "..", "../../x", "%2e%2e", "a/b", "f1?x=1", "é"] {
            assert!(usable_id(hostile, ttl).is_err(), "{hostile:?}");
        }
        let long = "A".repeat(10 * 1024);
        let error = usable_id(&long, ttl).expect_err("10 KB");
        assert!(
            error.len() < 400,
            "the error quotes a little of it: {error}"
        );
    }

    #[test]
    fn a_name_cannot_leave_its_path_segment() {
        assert_eq!(path_segment("f12"), "f12");
        assert_eq!(path_segment("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("."), "%2E");
        assert_eq!(path_segment("a..b"), "a..b");
    }
}
