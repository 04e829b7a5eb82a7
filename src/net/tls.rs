//! TLS clients shared by the probers and the bridge: prometheus/common's
//! `tls_config`, and a rustls client that remembers the chain the server
//! presented (even when verification fails), so a prober can describe a
//! certificate it refused.

use crate::config::Problems;
use crate::config::types::Secret;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};

/// A TLS protocol version as prometheus/common names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0 (not offered by rustls: treated as 1.2).
    #[serde(rename = "TLS10")]
    Tls10,
    /// TLS 1.1 (not offered by rustls: treated as 1.2).
    #[serde(rename = "TLS11")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "TLS12")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLS13")]
    Tls13,
}

/// `tls_config` (prometheus/common `TLSConfig`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Inline CA certificates (PEM).
    pub ca: Option<String>,
    /// CA certificates file (PEM).
    pub ca_file: Option<String>,
    /// Inline client certificate (PEM).
    pub cert: Option<String>,
    /// Client certificate file (PEM).
    pub cert_file: Option<String>,
    /// Inline client key (PEM).
    pub key: Option<Secret>,
    /// Client key file (PEM).
    pub key_file: Option<String>,
    /// Name to verify and send as SNI; defaults to the target host.
    pub server_name: Option<String>,
    /// Accept any certificate (metrics still describe it).
    pub insecure_skip_verify: bool,
    /// Lowest version offered.
    pub min_version: Option<TlsVersion>,
    /// Highest version offered.
    pub max_version: Option<TlsVersion>,
}

impl TlsConfig {
    /// Checks files and exclusive keys, recording every problem.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        for (inline, file, name) in [
            (self.ca.is_some(), &self.ca_file, "ca"),
            (self.cert.is_some(), &self.cert_file, "cert"),
            (self.key.is_some(), &self.key_file, "key"),
        ] {
            if inline && file.is_some() {
                problems.push(
                    format!("{path}.{name}"),
                    format!("at most one of {name} and {name}_file must be configured"),
                );
            }
            if let Some(file) = file {
                if let Err(err) = std::fs::metadata(file) {
                    problems.push(format!("{path}.{name}_file"), format!("unable to read {name} file {file:?}: {err}"));
                }
            }
        }
        let has_cert = self.cert.is_some() || self.cert_file.is_some();
        let has_key = self.key.is_some() || self.key_file.is_some();
        if has_cert != has_key {
            problems.push(path.to_string(), "client cert and key must both be configured");
        }
        if let (Some(min), Some(max)) = (self.min_version, self.max_version) {
            if rank(min) > rank(max) {
                problems.push(format!("{path}.min_version"), "min_version must not be greater than max_version");
            }
        }
    }

    fn ca_certificates(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let mut certs = Vec::new();
        if let Some(pem) = &self.ca {
            certs.extend(parse_certs(pem.as_bytes()).map_err(|err| format!("invalid ca: {err}"))?);
        }
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read(file).map_err(|err| format!("unable to read CA file {file:?}: {err}"))?;
            certs.extend(parse_certs(&pem).map_err(|err| format!("invalid CA file {file:?}: {err}"))?);
        }
        Ok(certs)
    }

    fn client_identity(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        let cert_pem = match (&self.cert, &self.cert_file) {
            (Some(pem), _) => pem.clone().into_bytes(),
            (None, Some(file)) => {
                std::fs::read(file).map_err(|err| format!("unable to read cert file {file:?}: {err}"))?
            }
            (None, None) => return Ok(None),
        };
        let key_pem = match (&self.key, &self.key_file) {
            (Some(pem), _) => pem.expose().as_bytes().to_vec(),
            (None, Some(file)) => {
                std::fs::read(file).map_err(|err| format!("unable to read key file {file:?}: {err}"))?
            }
            (None, None) => return Err("client cert without key".into()),
        };
        let certs = parse_certs(&cert_pem)?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|err| format!("invalid key: {err}"))?
            .ok_or_else(|| "no private key found".to_string())?;
        Ok(Some((certs, key)))
    }
}

fn rank(version: TlsVersion) -> u8 {
    match version {
        TlsVersion::Tls10 => 0,
        TlsVersion::Tls11 => 1,
        TlsVersion::Tls12 => 2,
        TlsVersion::Tls13 => 3,
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|err| err.to_string())?;
    if certs.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The system's trust anchors, loaded once: reading them costs milliseconds.
fn system_roots() -> &'static (Arc<RootCertStore>, Vec<CertificateDer<'static>>) {
    static ROOTS: OnceLock<(Arc<RootCertStore>, Vec<CertificateDer<'static>>)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs().certs;
        let (added, _) = store.add_parsable_certificates(native.iter().cloned());
        if added == 0 {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        (Arc::new(store), native)
    })
}

/// Records the chain the server presented, then verifies it (or not).
#[derive(Debug)]
struct CapturingVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    insecure: bool,
    check_name: bool,
    presented: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut presented) = self.presented.lock() {
            *presented =
                std::iter::once(end_entity).chain(intermediates).map(|cert| cert.clone().into_owned()).collect();
        }
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the chain before the name, so this error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            result => result,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client config for one probe, plus what it learns during the handshake.
pub struct Client {
    /// The rustls config (hand it to any library that takes one).
    pub config: Arc<ClientConfig>,
    verifier: Arc<CapturingVerifier>,
    extra_roots: Vec<CertificateDer<'static>>,
}

impl Client {
    /// Builds a client from `tls_config`, offering `alpn` protocols.
    pub fn new(tls: &TlsConfig, alpn: &[&[u8]]) -> Result<Client, String> {
        Client::build(tls, alpn, true)
    }

    /// Like [`Client::new`], but verifies only the chain, not the server name
    /// (libpq's `verify-ca`, MySQL's `VERIFY_CA`).
    pub fn new_without_name_check(tls: &TlsConfig, alpn: &[&[u8]]) -> Result<Client, String> {
        Client::build(tls, alpn, false)
    }

    fn build(tls: &TlsConfig, alpn: &[&[u8]], check_name: bool) -> Result<Client, String> {
        let extra_roots = tls.ca_certificates()?;
        let roots = if extra_roots.is_empty() {
            system_roots().0.clone()
        } else {
            let mut store = RootCertStore::empty();
            for cert in &extra_roots {
                store.add(cert.clone()).map_err(|err| format!("invalid CA certificate: {err}"))?;
            }
            Arc::new(store)
        };
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|err| format!("cannot build certificate verifier: {err}"))?;
        let verifier = Arc::new(CapturingVerifier {
            inner,
            insecure: tls.insecure_skip_verify,
            check_name,
            presented: Mutex::new(Vec::new()),
        });
        let min = tls.min_version.map(rank).unwrap_or(2);
        let max = tls.max_version.map(rank).unwrap_or(3);
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if min <= 2 && max >= 2 {
            versions.push(&rustls::version::TLS12);
        }
        if max >= 3 {
            versions.push(&rustls::version::TLS13);
        }
        if versions.is_empty() {
            return Err("no TLS version between min_version and max_version is supported (TLS 1.2 and 1.3 are)".into());
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|err| format!("cannot configure TLS versions: {err}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match tls.client_identity()? {
            Some((certs, key)) => {
                builder.with_client_auth_cert(certs, key).map_err(|err| format!("invalid client certificate: {err}"))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
        Ok(Client { config: Arc::new(config), verifier, extra_roots })
    }

    /// The certificates the server presented in the last handshake.
    pub fn presented(&self) -> Vec<CertificateDer<'static>> {
        self.verifier.presented.lock().map(|certs| certs.clone()).unwrap_or_default()
    }

    /// Verifies the chain presented in the last handshake against the
    /// configured roots and `server_name`, now, even when
    /// `insecure_skip_verify` let the handshake through.
    pub fn verify_presented(&self, server_name: &ServerName<'_>) -> Result<(), rustls::Error> {
        let presented = self.presented();
        let (leaf, intermediates) = presented.split_first().ok_or(rustls::Error::NoCertificatesPresented)?;
        self.verifier.inner.verify_server_cert(leaf, intermediates, server_name, &[], UnixTime::now()).map(|_| ())
    }

    /// Describes a finished handshake.
    pub fn info(&self, connection: &rustls::ClientConnection) -> TlsInfo {
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
            Some(rustls::ProtocolVersion::TLSv1_1) => "TLS 1.1",
            Some(rustls::ProtocolVersion::TLSv1_0) => "TLS 1.0",
            _ => "unknown",
        };
        let cipher = connection.negotiated_cipher_suite().map(|suite| cipher_name(suite.suite())).unwrap_or_default();
        let presented = match connection.peer_certificates() {
            Some(certs) if !certs.is_empty() => certs.iter().map(|cert| cert.clone().into_owned()).collect(),
            _ => self.presented(),
        };
        let verified_chain_expiry =
            if self.verifier.insecure { None } else { Some(self.verified_chain_expiry(&presented)) };
        TlsInfo {
            version,
            cipher,
            presented,
            verified_chain_expiry,
            alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// Go reports, per verified chain, the earliest NotAfter including the root
    /// from the trust store; rustls does not expose the chain, so the root is
    /// found by matching the last presented certificate's issuer.
    fn verified_chain_expiry(&self, presented: &[CertificateDer<'static>]) -> f64 {
        let mut expiry = presented.iter().filter_map(|cert| parse_not_after(cert)).fold(f64::INFINITY, f64::min);
        if let Some(last) = presented.last() {
            let roots: &[CertificateDer<'static>] =
                if self.extra_roots.is_empty() { &system_roots().1 } else { &self.extra_roots };
            if let Some(root_expiry) = find_issuer_expiry(last, roots) {
                expiry = expiry.min(root_expiry);
            }
        }
        if expiry.is_finite() { expiry } else { GO_ZERO_TIME }
    }
}

/// Go's zero `time.Time` as a Unix timestamp, which blackbox reports for
/// `probe_ssl_last_chain_expiry_timestamp_seconds` when nothing was verified.
pub const GO_ZERO_TIME: f64 = -62_135_596_800.0;

/// The certificate's NotAfter as a Unix timestamp.
pub fn parse_not_after(cert: &CertificateDer<'_>) -> Option<f64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp() as f64)
}

fn find_issuer_expiry(cert: &CertificateDer<'_>, roots: &[CertificateDer<'static>]) -> Option<f64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if parsed.issuer().as_raw() == parsed.subject().as_raw() {
        return None;
    }
    roots.iter().find_map(|root| {
        let (_, root) = x509_parser::parse_x509_certificate(root.as_ref()).ok()?;
        (root.subject().as_raw() == parsed.issuer().as_raw()).then(|| root.validity().not_after.timestamp() as f64)
    })
}

fn cipher_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    // rustls spells TLS 1.3 suites `TLS13_…`; IANA (and Go) say `TLS_…`.
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// What a finished handshake looked like.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLS 1.2`, `TLS 1.3`…
    pub version: &'static str,
    /// IANA cipher suite name.
    pub cipher: String,
    /// The chain as presented, leaf first.
    pub presented: Vec<CertificateDer<'static>>,
    /// Earliest expiry of the verified chain; `None` when verification was skipped.
    pub verified_chain_expiry: Option<f64>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_are_iana() {
        assert_eq!(cipher_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256), "TLS_AES_128_GCM_SHA256");
        assert_eq!(
            cipher_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
    }
}
