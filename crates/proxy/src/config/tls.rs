//! A listener's TLS identity: the certificate chain and private key, read from their PEM
//! files and checked as a pair when the config loads.
//!
//! Why here and not in the listener: everything that can be wrong with the files (missing,
//! unreadable, no certificate, no key, a key that does not belong to the certificate) is a
//! bad config, found by `blastwall check`, at startup and at a reload alike with the same
//! words, each error naming the file at fault (the validator points at its line). What the
//! config keeps is the identity rustls built ([`TlsConfig::server`]), so the listener never
//! reads the files again and cannot meet an error the check did not. The crypto provider is
//! passed explicitly (ring) rather than installed process-wide; the protocols offered by
//! ALPN are the listener's to add.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// A listener's certificate and key: the files, resolved against the config file's folder,
/// and the identity built from them at load.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The PEM certificate chain.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// The server side of TLS built from the two files, without ALPN.
    pub server: Arc<ServerConfig>,
    /// A digest of what the two files held when they were read.
    pub contents: u64,
}

/// Two identities are the same when they name the same files and the files hold what they
/// held: a reload keeps a listener whose identity is unchanged as it serves, and serves a
/// rotated certificate (new files behind the same names) on the connections that come next.
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert && self.key == other.key && self.contents == other.contents
    }
}

/// The identity built from a certificate chain and key, and a digest of what they held.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The server side of TLS, without ALPN.
    pub server: Arc<ServerConfig>,
    /// A digest of the chain and key as read (see [`TlsConfig::contents`]).
    pub contents: u64,
}

impl Eq for TlsConfig {}

/// Which of the two files an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsFile {
    /// The certificate chain.
    Certificate,
    /// The private key.
    Key,
}

/// Why a certificate and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
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
    pub(crate) fn file(&self) -> TlsFile {
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

/// Reads the certificate chain and key and checks that rustls accepts them as a pair: the
/// server side of TLS, without the protocols (the listener adds what it speaks).
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let unreadable = |what: TlsFile, path: &Path, error: pem::Error| TlsError::Unreadable {
        what,
        path: path.to_owned(),
        reason: pem_error(error),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|error| unreadable(TlsFile::Certificate, cert, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(TlsFile::Certificate, cert, error))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private_key = match PrivateKeyDer::from_pem_file(key) {
        Ok(private_key) => private_key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_owned(),
            });
        }
        Err(error) => return Err(unreadable(TlsFile::Key, key, error)),
    };
    // NOTE: a digest to tell whether a reload found other files, not a check of integrity:
    // whoever can write these files can give the proxy any identity anyway.
    let contents = {
        let mut hasher = std::hash::DefaultHasher::new();
        for der in &certs {
            der.as_ref().hash(&mut hasher);
        }
        private_key.secret_der().hash(&mut hasher);
        hasher.finish()
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |error: rustls::Error| TlsError::Unusable {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: error.to_string(),
    };
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(unusable)?;
    Ok(Identity {
        server: Arc::new(server),
        contents,
    })
}

fn pem_error(error: pem::Error) -> String {
    match error {
        pem::Error::Io(error) => error.to_string(),
        other => format!("not valid PEM ({other:?})"),
    }
}
