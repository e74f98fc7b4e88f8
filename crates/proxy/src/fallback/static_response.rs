//! The static fallback: a fixed response from the config, built at load, cloned per use.

use http::Response;

use crate::body;
use crate::body::ProxyBody;
use crate::config::fallback::StaticResponse;

/// The configured response. Headers and body are shared buffers: nothing is copied but the
/// header map.
pub(super) fn response(config: &StaticResponse) -> Response<ProxyBody> {
    let mut response = Response::new(body::full(config.body.clone()));
    *response.status_mut() = config.status;
    response.headers_mut().clone_from(&config.headers);
    response
}
