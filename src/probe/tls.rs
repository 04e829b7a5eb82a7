//! TLS for every prober: prometheus/common's `tls_config`, a rustls client
//! that remembers the chain the server presented (even when verification
//! fails), and the `probe_ssl_*` / `probe_tls_*` families.

use super::metrics::Registry;
use super::{Phase, ProbeCtx, ProbeError, Reason};
use crate::config::Problems;
use crate::config::types::Secret;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Inline CA certificates (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// CA certificates file (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Inline client certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// Client certificate file (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// Inline client key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// Client key file (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Name to verify and send as SNI; defaults to the target host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Accept any certificate (metrics still describe it).
    pub insecure_skip_verify: bool,
    /// Lowest version offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    /// Highest version offered.
    #[serde(skip_serializing_if = "Option::is_none")]
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

fn parse_not_after(cert: &CertificateDer<'_>) -> Option<f64> {
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

/// Which TLS families a prober emits besides the common ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Families {
    /// `probe_tls_cipher_info` (blackbox: HTTP only).
    pub cipher: bool,
    /// `probe_ssl_last_chain_expiry_timestamp_seconds` (blackbox: not gRPC).
    pub last_chain_expiry: bool,
}

impl TlsInfo {
    /// Records the `probe_ssl_*` and `probe_tls_*` families.
    pub fn record(&self, registry: &mut Registry, families: Families) {
        let earliest = self.presented.iter().filter_map(|cert| parse_not_after(cert)).fold(f64::INFINITY, f64::min);
        registry.set(
            "probe_ssl_earliest_cert_expiry",
            "Returns last SSL chain expiry in unixtime",
            if earliest.is_finite() { earliest } else { 0.0 },
        );
        if families.last_chain_expiry {
            registry.set(
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                "Returns last SSL chain expiry in timestamp",
                self.verified_chain_expiry.unwrap_or(GO_ZERO_TIME),
            );
        }
        if let Some(leaf) = self.presented.first().and_then(|cert| describe(cert)) {
            registry.set_with(
                "probe_ssl_last_chain_info",
                "Contains SSL leaf certificate information",
                &[
                    ("fingerprint_sha256", &leaf.fingerprint_sha256),
                    ("subject", &leaf.subject),
                    ("issuer", &leaf.issuer),
                    ("subjectalternative", &leaf.subject_alternative),
                    ("serialnumber", &leaf.serial),
                ],
                1.0,
            );
        }
        registry.set_with(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            &[("version", self.version)],
            1.0,
        );
        if families.cipher {
            registry.set_with(
                "probe_tls_cipher_info",
                "Returns the TLS cipher negotiated during handshake",
                &[("cipher", &self.cipher)],
                1.0,
            );
        }
    }
}

/// The leaf certificate as blackbox labels it.
#[derive(Debug, Clone, PartialEq)]
pub struct CertDescription {
    /// Lowercase hex SHA-256 of the DER.
    pub fingerprint_sha256: String,
    /// Subject as Go's `pkix.Name.String()`.
    pub subject: String,
    /// Issuer as Go's `pkix.Name.String()`.
    pub issuer: String,
    /// DNS SANs joined by `,`.
    pub subject_alternative: String,
    /// Serial number in lowercase hex without leading zeros.
    pub serial: String,
}

/// Describes a certificate for `probe_ssl_last_chain_info`.
pub fn describe(cert: &CertificateDer<'_>) -> Option<CertDescription> {
    use sha2::Digest;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let sans = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let serial = hex::encode(parsed.raw_serial());
    let serial = serial.trim_start_matches('0');
    Some(CertDescription {
        fingerprint_sha256: hex::encode(sha2::Sha256::digest(cert.as_ref())),
        subject: go_name(parsed.subject()),
        issuer: go_name(parsed.issuer()),
        subject_alternative: sans,
        serial: if serial.is_empty() { "0".into() } else { serial.to_string() },
    })
}

/// Formats a distinguished name as Go's `pkix.Name.String()`: known attributes
/// in Go's fixed order (reversed, so `CN=…,O=…,C=…`), values of one type joined
/// by `+`, unknown attributes first as `oid=#<DER hex>`.
fn go_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    // Go's ToRDNSequence order, before String() reverses it.
    const ORDER: [&str; 7] = ["2.5.4.6", "2.5.4.8", "2.5.4.7", "2.5.4.9", "2.5.4.17", "2.5.4.10", "2.5.4.11"];
    const SHORT: [(&str, &str); 9] = [
        ("2.5.4.6", "C"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.3", "CN"),
        ("2.5.4.5", "SERIALNUMBER"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.17", "POSTALCODE"),
    ];
    let mut attributes: Vec<(String, String, Vec<u8>)> = Vec::new();
    for rdn in name.iter_rdn() {
        for attribute in rdn.iter() {
            let oid = attribute.attr_type().to_id_string();
            let value = attribute.as_str().map(str::to_string).unwrap_or_default();
            attributes.push((oid, value, attribute.attr_value().data.to_vec()));
        }
    }
    let short = |oid: &str| SHORT.iter().find(|(id, _)| *id == oid).map(|(_, name)| *name);
    let mut rdns: Vec<String> = Vec::new();
    for oid in ORDER {
        let values: Vec<String> = attributes
            .iter()
            .filter(|(id, _, _)| id == oid)
            .map(|(_, value, _)| format!("{}={}", short(oid).unwrap_or(oid), escape_rdn_value(value)))
            .collect();
        if !values.is_empty() {
            rdns.push(values.join("+"));
        }
    }
    for (oid, label) in [("2.5.4.3", "CN"), ("2.5.4.5", "SERIALNUMBER")] {
        if let Some((_, value, _)) = attributes.iter().rev().find(|(id, _, _)| id == oid) {
            if !value.is_empty() {
                rdns.push(format!("{label}={}", escape_rdn_value(value)));
            }
        }
    }
    for (oid, value, raw) in &attributes {
        if short(oid).is_none() {
            rdns.push(format!("{oid}=#{}", hex::encode(go_der_string(value, raw))));
        }
    }
    rdns.reverse();
    rdns.join(",")
}

/// Go re-marshals an unknown attribute's string value as PrintableString when
/// every byte allows it, else as UTF8String.
fn go_der_string(value: &str, raw: &[u8]) -> Vec<u8> {
    let body = if value.is_empty() { raw } else { value.as_bytes() };
    let printable = body.iter().all(|&b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    let mut der = vec![if printable { 0x13 } else { 0x0c }];
    let len = body.len();
    if len < 0x80 {
        der.push(len as u8);
    } else if len < 0x100 {
        der.extend([0x81, len as u8]);
    } else {
        der.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    der.extend_from_slice(body);
    der
}

fn escape_rdn_value(value: &str) -> String {
    let count = value.chars().count();
    let mut out = String::with_capacity(value.len());
    for (index, c) in value.chars().enumerate() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => index == 0 || index == count - 1,
            '#' => index == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Classifies a failed handshake.
pub fn classify(err: &std::io::Error) -> Reason {
    let rustls_error = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert_error)) => match cert_error {
            CertificateError::Expired | CertificateError::NotValidYet => Reason::TlsExpired,
            CertificateError::ExpiredContext { .. } | CertificateError::NotValidYetContext { .. } => Reason::TlsExpired,
            _ => Reason::TlsUntrusted,
        },
        Some(_) => Reason::Tls,
        None if err.kind() == std::io::ErrorKind::TimedOut => Reason::Timeout,
        None => Reason::Tls,
    }
}

/// Parses a server name for SNI and verification.
pub fn server_name(name: &str) -> Result<ServerName<'static>, ProbeError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|err| ProbeError::new(Phase::Tls, Reason::Config, format!("invalid TLS server name {name:?}: {err}")))
}

/// Performs a client handshake over `stream` within the probe deadline.
/// `default_server_name` is used when `tls_config.server_name` is unset.
pub async fn connect<S>(
    ctx: &mut ProbeCtx<'_>,
    tls: &TlsConfig,
    default_server_name: &str,
    alpn: &[&[u8]],
    stream: S,
) -> Result<(TlsStream<S>, TlsInfo), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client = Client::new(tls, alpn).map_err(|err| ProbeError::new(Phase::Tls, Reason::Config, err))?;
    let name = server_name(tls.server_name.as_deref().unwrap_or(default_server_name))?;
    let connector = tokio_rustls::TlsConnector::from(client.config.clone());
    let handshake = ctx.within(Phase::Tls, connector.connect(name, stream)).await?;
    match handshake {
        Ok(stream) => {
            let info = client.info(stream.get_ref().1);
            ctx.log.info(format!("TLS handshake done version={:?} cipher={}", info.version, info.cipher));
            Ok((stream, info))
        }
        Err(err) => {
            let reason = classify(&err);
            ctx.log.error(format!("TLS handshake failed err={err}"));
            Err(ProbeError::new(Phase::Tls, reason, err))
        }
    }
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

    #[test]
    fn rdn_values_escape_like_go() {
        assert_eq!(escape_rdn_value("Acme, Inc"), "Acme\\, Inc");
        assert_eq!(escape_rdn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_rdn_value("#1"), "\\#1");
    }
}
