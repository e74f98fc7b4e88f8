//! TLS for a listener: the certificate and key from PEM files, and ALPN offering HTTP/2 and
//! HTTP/1.1.
//!
//! Everything that can be wrong with the files (missing, unreadable, no certificate, no key,
//! a key that does not belong to the certificate) is found when the config is loaded, and
//! each error names the file at fault, so `blastwall check` and startup refuse the same
//! configs with the same words. The crypto provider is passed explicitly (ring) rather than
//! installed process-wide.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsConfig;

/// ALPN protocols offered, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate chain.
    Certificate,
    /// The private key.
    Key,
}

/// Why a certificate and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    #[error("cannot read the {what} file \"{}\": {reason}", path.display())]
    Unreadable {
        /// Which file.
        what: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("the certificate file \"{}\" holds no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")", path.display())]
    NoCertificate {
        /// Its path.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("the private key file \"{}\" holds no PEM private key (expected PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey {
        /// Its path.
        path: PathBuf,
    },
    /// rustls refused the pair: a key that is not the certificate's, or of an unsupported kind.
    #[error("the private key \"{}\" cannot be used with the certificate \"{}\": {reason}", key.display(), cert.display())]
    Unusable {
        /// The certificate path.
        cert: PathBuf,
        /// The key path.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

impl TlsError {
    /// The file the error is about, to point at the right line of the config.
    pub fn file(&self) -> TlsFile {
        match self {
            TlsError::Unreadable { what, .. } => *what,
            TlsError::NoCertificate { .. } => TlsFile::Certificate,
            TlsError::NoKey { .. } | TlsError::Unusable { .. } => TlsFile::Key,
        }
    }
}

impl std::fmt::Display for TlsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsFile::Certificate => "certificate",
            TlsFile::Key => "private key",
        })
    }
}

/// Reads the certificate chain and key and builds the server side of TLS, with ALPN.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let unreadable = |what: TlsFile, path: &PathBuf, error: pem::Error| TlsError::Unreadable {
        what,
        path: path.clone(),
        reason: pem_error(error),
    };
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|error| unreadable(TlsFile::Certificate, &config.cert, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(TlsFile::Certificate, &config.cert, error))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: config.cert.clone(),
        });
    }
    let key = match PrivateKeyDer::from_pem_file(&config.key) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: config.key.clone(),
            });
        }
        Err(error) => return Err(unreadable(TlsFile::Key, &config.key, error)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |error: rustls::Error| TlsError::Unusable {
        cert: config.cert.clone(),
        key: config.key.clone(),
        reason: error.to_string(),
    };
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(unusable)?;
    server.alpn_protocols = ALPN.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(server))
}

fn pem_error(error: pem::Error) -> String {
    match error {
        pem::Error::Io(error) => error.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}
