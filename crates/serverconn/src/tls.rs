//! The server's TLS configuration, from `control/servercert.pem` (certificate chain and
//! private key in one file, as the qmail-tls patch has it), read on every connection so a
//! renewed certificate applies at once.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Loads `path` into a rustls server configuration (TLS 1.2 and 1.3, ring provider).
pub fn server_config(path: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("unable to read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("no usable private key in {}: {e}", path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "certificate and key in {} do not match: {e}",
                path.display()
            )
        })?;
    Ok(Arc::new(config))
}
