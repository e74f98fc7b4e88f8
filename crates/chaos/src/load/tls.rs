//! HTTPS for the load generator: the client's TLS settings, checked before the run.
//!
//! A load test's target is usually a test deployment with a certificate of its own, so the
//! client trusts what it is told to: the CA certificates of `--ca` (PEM), or, with
//! `--insecure`, any certificate (the handshake's signatures are still checked, so the TLS
//! work the server does is the real one). The system's roots are not read (**not built
//! yet**): a public endpoint needs its CA given with `--ca`.
//!
//! ALPN offers `h2` only when HTTP/2 is asked for; the protocol the server picks decides how
//! each connection speaks.

use std::path::Path;
use std::sync::Arc;

use thiserror::Error;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};

/// How the client trusts the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// The CA certificates in this PEM file.
    CaFile(&'a Path),
    /// Any certificate (`--insecure`, for self-signed test certificates).
    Anything,
}

/// Why the TLS settings could not be made.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// rustls refused the settings.
    #[error("TLS settings: {0}")]
    Settings(#[from] rustls::Error),
}

/// What each connection needs to start TLS: the connector and the name to verify.
#[derive(Clone)]
pub struct TlsSettings {
    pub(super) connector: TlsConnector,
    pub(super) server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        out.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Settings for connections to `host`, trusting as told, offering HTTP/2 by ALPN
    /// when `http2`.
    pub fn new(host: &str, trust: Trust<'_>, http2: bool) -> Result<Self, TlsError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let mut config = match trust {
            Trust::CaFile(path) => builder
                .with_root_certificates(roots(path)?)
                .with_no_client_auth(),
            Trust::Anything => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider.signature_verification_algorithms,
                )))
                .with_no_client_auth(),
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|_| TlsError::ServerName(host.to_owned()))?
            .to_owned();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let failed = |reason: String| TlsError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|error| failed(error.to_string()))? {
        let cert = cert.map_err(|error| failed(error.to_string()))?;
        roots.add(cert).map_err(|error| failed(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed("no PEM certificate in it".to_owned()));
    }
    Ok(roots)
}

/// Accepts any certificate, still checking the handshake's signatures against it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
