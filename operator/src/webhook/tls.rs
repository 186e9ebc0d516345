//! HTTPS for the webhook: a self-signed CA plus serving certificate made with `rcgen`, and a
//! rustls server whose certificate can be swapped while it runs (rotation, cert-manager
//! renewals) without dropping the listener.

use std::sync::{Arc, RwLock};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A TLS problem (bad PEM, key the provider cannot use).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a certificate failed.
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// PEM input could not be read.
    #[error("reading {what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the key or configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    /// CA certificate (the webhook configuration's `caBundle`).
    pub ca_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
    /// End of validity of the serving certificate.
    pub not_after: jiff::Timestamp,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Bundle")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Generates a fresh CA and a serving certificate for `dns_names`, both valid from yesterday
/// (clock skew) until midnight UTC `days` from now.
pub fn generate(dns_names: &[String], days: i64) -> Result<Bundle, TlsError> {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let start = today.yesterday().map_err(out_of_range)?;
    let end = today
        .checked_add(jiff::Span::new().days(days))
        .map_err(out_of_range)?;
    let date = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(d.year().into(), d.month() as u8, d.day() as u8)
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ray-history-webhook-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = date(start);
    ca_params.not_after = date(end);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    let common_name = dns_names.first().cloned().unwrap_or_default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = date(start);
    params.not_after = date(end);
    let cert = params.signed_by(&key, &Issuer::new(ca_params, ca_key))?;
    let not_after = end
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(out_of_range)?
        .timestamp();
    Ok(Bundle {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

fn out_of_range(e: jiff::Error) -> TlsError {
    TlsError::Pem {
        what: "validity",
        reason: e.to_string(),
    }
}

/// The serving certificate, replaceable at run time.
#[derive(Debug, Default)]
pub struct Resolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl Resolver {
    /// Loads a PEM certificate chain and key, replacing the current one.
    pub fn load_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let pem = |what, e: rustls::pki_types::pem::Error| TlsError::Pem {
            what,
            reason: e.to_string(),
        };
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem("tls.crt", e))?;
        if certs.is_empty() {
            return Err(TlsError::Pem {
                what: "tls.crt",
                reason: "no certificate".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| pem("tls.key", e))?;
        let key = provider().key_provider.load_private_key(key)?;
        *self.current.write().expect("lock") = Some(Arc::new(CertifiedKey::new(certs, key)));
        Ok(())
    }

    /// Whether a certificate is loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("lock").clone()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// How long a client may take to finish the TLS handshake (the API server takes milliseconds).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` over HTTPS on `listener` with the certificate from `resolver`, until the
/// task is dropped. Handshake or connection errors only end that connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    resolver: Arc<Resolver>,
    handshake_timeout: std::time::Duration,
) -> Result<(), TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            // A client that connects and sends nothing must not hold a task and a socket.
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}
