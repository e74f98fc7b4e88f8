//! The proxies of one server, by name, and what the API does to them: Toxiproxy's
//! semantics (create, populate, update with missing fields kept, reset) over [`Proxy`].
//!
//! One async lock guards the set, as Toxiproxy's mutex does: starting or stopping a proxy
//! happens under it, so two requests never bind or free the same proxy at once.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::error::ApiError;
use super::proxy::Proxy;
use super::toxic::Toxic;

/// Where a proxy listens when the body names no address: loopback, a port the system picks.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The proxies, by name.
#[derive(Debug, Default)]
pub struct Collection {
    proxies: Mutex<BTreeMap<String, Proxy>>,
}

/// The fields of a proxy in a create, populate or update body.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyInput {
    /// Its name.
    pub name: String,
    /// Where to listen.
    pub listen: String,
    /// Where to connect.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
}

impl ProxyInput {
    /// Reads a body, with `defaults` for absent fields; `at` names the entry in a populate.
    pub fn parse(body: &Value, defaults: ProxyInput, at: Option<usize>) -> Result<Self, ApiError> {
        let object = body
            .as_object()
            .ok_or_else(|| ApiError::bad_body(format!("expected a JSON object, got {body}")))?;
        let text = |key: &str, default: String| -> Result<String, ApiError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::String(text)) => Ok(text.clone()),
                Some(other) => Err(ApiError::bad_body(format!(
                    "{key}: expected a string, got {other}"
                ))),
            }
        };
        let enabled = match object.get("enabled") {
            None | Some(Value::Null) => defaults.enabled,
            Some(Value::Bool(enabled)) => *enabled,
            Some(other) => {
                return Err(ApiError::bad_body(format!(
                    "enabled: expected true or false, got {other}"
                )));
            }
        };
        let input = Self {
            name: text("name", defaults.name)?,
            listen: text("listen", defaults.listen)?,
            upstream: text("upstream", defaults.upstream)?,
            enabled,
        };
        let suffix = at
            .map(|i| format!(" at proxy {}", i + 1))
            .unwrap_or_default();
        if input.name.is_empty() {
            return Err(ApiError::missing_field(&format!("name{suffix}")));
        }
        if input.name.contains('/') {
            return Err(ApiError::slash_in_name("proxy", &input.name));
        }
        if input.upstream.is_empty() {
            return Err(ApiError::missing_field(&format!("upstream{suffix}")));
        }
        Ok(input)
    }

    /// The entries of a populate body (a JSON array of proxies), as `POST /populate` and
    /// `--config` read them.
    pub fn parse_all(body: &Value) -> Result<Vec<Self>, ApiError> {
        match body {
            Value::Array(entries) => entries
                .iter()
                .enumerate()
                .map(|(i, entry)| Self::parse(entry, Self::new_defaults(), Some(i)))
                .collect(),
            other => Err(ApiError::bad_body(format!(
                "expected an array of proxies, got {other}"
            ))),
        }
    }

    /// The defaults of a new proxy: enabled, on loopback.
    pub fn new_defaults() -> Self {
        Self {
            name: String::new(),
            listen: DEFAULT_LISTEN.to_owned(),
            upstream: String::new(),
            enabled: true,
        }
    }
}

impl Collection {
    /// Every proxy, keyed by name.
    pub async fn index(&self) -> Value {
        let proxies = self.proxies.lock().await;
        Value::Object(
            proxies
                .iter()
                .map(|(name, proxy)| (name.clone(), proxy.to_json()))
                .collect::<Map<_, _>>(),
        )
    }

    /// Creates a proxy; 409 if the name is taken.
    pub async fn create(&self, input: ProxyInput) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&input.name) {
            return Err(ApiError::proxy_exists());
        }
        let mut proxy = Proxy::new(
            input.name.clone(),
            listen_or_default(input.listen),
            input.upstream,
        );
        if input.enabled {
            proxy.start().await?;
        }
        let json = proxy.to_json();
        proxies.insert(input.name, proxy);
        Ok(json)
    }

    /// Creates or replaces each proxy in turn; a proxy whose address and upstream are
    /// unchanged is kept as it is (toxics and connections). On an error, the proxies
    /// done so far are returned with it.
    pub async fn populate(&self, inputs: Vec<ProxyInput>) -> (Vec<Value>, Option<ApiError>) {
        let mut proxies = self.proxies.lock().await;
        let mut done = Vec::with_capacity(inputs.len());
        for input in inputs {
            let listen = listen_or_default(input.listen);
            if let Some(existing) = proxies.get(&input.name)
                && existing.listen == listen
                && existing.upstream == input.upstream
            {
                done.push(existing.to_json());
                continue;
            }
            if let Some(mut old) = proxies.remove(&input.name) {
                old.stop().await;
            }
            let mut proxy = Proxy::new(input.name.clone(), listen, input.upstream);
            if input.enabled
                && let Err(err) = proxy.start().await
            {
                return (done, Some(err));
            }
            done.push(proxy.to_json());
            proxies.insert(input.name, proxy);
        }
        (done, None)
    }

    /// `GET /metrics`: every proxy's counters in Prometheus' text format.
    pub async fn metrics(&self) -> String {
        let proxies = self.proxies.lock().await;
        super::metrics::render(proxies.values())
    }

    /// A proxy's JSON.
    pub async fn show(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(Proxy::to_json)
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// Updates a proxy from a body whose absent fields keep their values: a new address
    /// or upstream restarts it (closing its connections), `enabled` starts or stops it.
    pub async fn update(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let current = ProxyInput {
            name: proxy.name.clone(),
            listen: proxy.listen.clone(),
            upstream: proxy.upstream.clone(),
            enabled: proxy.enabled(),
        };
        let input = ProxyInput::parse(body, current.clone(), None)?;
        if input.listen != current.listen || input.upstream != current.upstream {
            proxy.stop().await;
            proxy.listen = input.listen;
            proxy.upstream = input.upstream;
        }
        if input.enabled {
            proxy.start().await?;
        } else {
            proxy.stop().await;
        }
        Ok(proxy.to_json())
    }

    /// Stops and forgets a proxy.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// Enables every proxy and removes every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.start().await?;
            proxy.clear_toxics();
        }
        Ok(())
    }

    /// Stops every proxy (the server is shutting down).
    pub async fn stop_all(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }

    /// Runs `action` on a proxy, 404 if there is none by that name.
    pub async fn with_proxy<T>(
        &self,
        name: &str,
        action: impl FnOnce(&mut Proxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        action(proxy)
    }

    /// Adds a toxic from a create body.
    pub async fn add_toxic(&self, proxy: &str, body: &Value) -> Result<Value, ApiError> {
        self.with_proxy(proxy, |proxy| {
            let toxic = Toxic::from_create(body)?;
            proxy.add_toxic(toxic).map(Toxic::to_json)
        })
        .await
    }

    /// Updates a toxic from a body whose absent fields keep their values.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        self.with_proxy(proxy, |proxy| {
            let toxic = proxy.toxic(name).ok_or_else(ApiError::toxic_not_found)?;
            let updated = toxic.updated(body)?;
            proxy.replace_toxic(updated).map(Toxic::to_json)
        })
        .await
    }
}

fn listen_or_default(listen: String) -> String {
    if listen.is_empty() {
        DEFAULT_LISTEN.to_owned()
    } else {
        listen
    }
}
