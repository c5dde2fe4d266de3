//! rustls behind the TLS plan: the client configuration of a plan (its root certificates,
//! the checks rustls' own verifier cannot be told to make, the client certificate), and the
//! reading of a refused certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{Roots, ServerCheck, TlsPlan};
use crate::conninfo::ConnInfo;
use crate::error::Error;

pub(crate) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

pub(super) fn connector(plan: &TlsPlan) -> Result<Connector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?;
    let builder = match &plan.check {
        ServerCheck::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PartialCheck {
                chain: None,
                provider,
            })),
        ServerCheck::Certificate {
            roots,
            host_name: true,
        } => builder.with_root_certificates(root_store(roots)?),
        ServerCheck::Certificate {
            roots,
            host_name: false,
        } => {
            let chain = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                provider.clone(),
            )
            .build()
            .map_err(|error| Error::Tls(error.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PartialCheck {
                    chain: Some(chain),
                    provider,
                }))
        }
    };
    let config = match &plan.client {
        None => builder.with_no_client_auth(),
        Some((certificate, key)) => {
            let chain = read_certificates(certificate, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
                Error::Tls(format!("cannot read sslkey \"{}\": {error}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| Error::Tls(format!("sslcert and sslkey: {error}")))?
        }
    };
    Ok(Connector::new(config))
}

/// What to change, when `error` is the server's certificate refused.
pub(super) fn certificate_refusal(
    plan: &TlsPlan,
    info: &ConnInfo,
    error: &tokio_postgres::Error,
) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        // tokio-rustls reports rustls' error inside an io::Error, whose source() skips it.
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(cause), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(refusal)) =
                candidate.downcast_ref::<rustls::Error>()
            {
                return Some(refusal_hint(plan, info, refusal));
            }
        }
        source = cause.source();
    }
    None
}

fn refusal_hint(plan: &TlsPlan, info: &ConnInfo, refusal: &CertificateError) -> String {
    let roots = match &plan.check {
        ServerCheck::Certificate {
            roots: Roots::File(path),
            ..
        } => format!("the CA certificates of \"{}\"", path.display()),
        _ => "the Mozilla root certificates (sslrootcert=system)".to_owned(),
    };
    let way_out = match refusal {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "it does not name host \"{}\": connect with a name it holds, or use sslmode=verify-ca to check only who signed it",
                info.first_host()
            )
        }
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "it is not signed by {roots}: set sslrootcert to the CA file that signed it, or use sslmode=require to encrypt without checking"
        ),
        _ => format!("checked against {roots}"),
    };
    format!("the server's certificate was refused ({refusal:?}); {way_out}")
}

fn root_store(roots: &Roots) -> Result<RootCertStore, Error> {
    match roots {
        Roots::WebPki => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        Roots::File(path) => {
            let mut store = RootCertStore::empty();
            for certificate in read_certificates(path, "sslrootcert")? {
                store.add(certificate).map_err(|error| {
                    Error::Tls(format!("sslrootcert \"{}\": {error}", path.display()))
                })?;
            }
            Ok(store)
        }
    }
}

fn read_certificates(path: &Path, parameter: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let unreadable = |error: &dyn std::fmt::Display| {
        Error::Tls(format!(
            "cannot read {parameter} \"{}\": {error}",
            path.display()
        ))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| unreadable(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(&error))?;
    if certificates.is_empty() {
        return Err(Error::Tls(format!(
            "{parameter} \"{}\" holds no certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The checks rustls' own verifier cannot be told to make: the certificate chain without the
/// host name (`verify-ca`), or no certificate at all (`require`). The handshake's signatures
/// are checked either way, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
struct PartialCheck {
    /// The chain's verifier; `None` accepts any certificate.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PartialCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
