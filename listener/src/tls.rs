//! TLS with rustls, used when the URL asks for it (`sslmode=require` or `prefer`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;

/// How the server's certificate is checked when the connection uses TLS.
///
/// TLS itself is chosen by the URL: `sslmode=disable` (no TLS), `prefer` (TLS when the server
/// offers it; tokio-postgres' default) or `require` (TLS or fail).
///
/// ```
/// use column_notify_listener::{Listener, TlsVerification};
///
/// let builder = Listener::builder("postgres://app@db.example.com/app?sslmode=require")
///     .channel("appointments_canceled_changed")
///     .tls(TlsVerification::RootCertificates("/etc/ssl/certs/db-ca.pem".into()));
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVerification {
    /// Verify the certificate and host name against the Mozilla root certificates
    /// (the `webpki-roots` set). The default.
    #[default]
    WebPkiRoots,
    /// Verify the certificate and host name against the CA certificates of this PEM file.
    RootCertificates(PathBuf),
    /// Encrypt without checking who the server is, as libpq does for `sslmode=require`
    /// without a root certificate. This protects against eavesdropping only, not against an
    /// impostor server.
    NoVerification,
}

pub(crate) fn connector(verification: &TlsVerification) -> Result<MakeRustlsConnect, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?;
    let config = match verification {
        TlsVerification::WebPkiRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerification::RootCertificates(path) => {
            let mut roots = RootCertStore::empty();
            let unreadable = |error: &dyn std::fmt::Display| {
                Error::Tls(format!("cannot read {}: {error}", path.display()))
            };
            for certificate in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                let certificate = certificate.map_err(|e| unreadable(&e))?;
                roots.add(certificate).map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(Error::Tls(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerification::NoVerification => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Accepts any certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verification_builds() {
        assert!(connector(&TlsVerification::WebPkiRoots).is_ok());
        assert!(connector(&TlsVerification::NoVerification).is_ok());
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let path = PathBuf::from("/nonexistent/ca.pem");
        let Err(error) = connector(&TlsVerification::RootCertificates(path)) else {
            panic!("a missing file must be an error");
        };
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
