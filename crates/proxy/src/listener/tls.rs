//! TLS for a listener: the identity the config built at load ([`crate::config::tls`]), with
//! ALPN offering HTTP/2 and HTTP/1.1.
//!
//! The files were read and checked when the config loaded, so serving TLS cannot fail here:
//! what is left is the listener's own part, the protocols it speaks.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// ALPN protocols offered, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor for a listener's TLS identity, offering the protocols it serves. Built when
/// a listener is bound or reconfigured, never per connection.
pub(crate) fn acceptor(config: &TlsConfig) -> TlsAcceptor {
    let mut server = (*config.server).clone();
    server.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    TlsAcceptor::from(Arc::new(server))
}
