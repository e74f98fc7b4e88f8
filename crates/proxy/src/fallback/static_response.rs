//! The static fallback: a fixed response from the config, built at load, cloned per use.

use http::Response;

use crate::config::fallback::StaticResponse;
use crate::forward::{self, ProxyBody};

/// The configured response. Headers and body are shared buffers: nothing is copied but the
/// header map.
pub(super) fn response(config: &StaticResponse) -> Response<ProxyBody> {
    let mut response = Response::new(forward::full(config.body.clone()));
    *response.status_mut() = config.status;
    response.headers_mut().clone_from(&config.headers);
    response
}
