//! TLS for every prober: the shared client of [`crate::net::tls`] driven
//! within the probe deadline, handshake failures as probe reasons, and the
//! `probe_ssl_*` / `probe_tls_*` families.

use super::metrics::Registry;
use super::{Phase, ProbeCtx, ProbeError, Reason};
use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

pub use crate::net::tls::{Client, GO_ZERO_TIME, TlsConfig, TlsInfo, TlsVersion, parse_not_after};

/// Which TLS families a prober emits besides the common ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Families {
    /// `probe_tls_cipher_info` (blackbox: HTTP only).
    pub cipher: bool,
    /// `probe_ssl_last_chain_expiry_timestamp_seconds` (blackbox: not gRPC).
    pub last_chain_expiry: bool,
}

/// Records the `probe_ssl_*` and `probe_tls_*` families of a handshake.
pub fn record(info: &TlsInfo, registry: &mut Registry, families: Families) {
    let earliest = info.presented.iter().filter_map(|cert| parse_not_after(cert)).fold(f64::INFINITY, f64::min);
    registry.set(
        "probe_ssl_earliest_cert_expiry",
        "Returns last SSL chain expiry in unixtime",
        if earliest.is_finite() { earliest } else { 0.0 },
    );
    if families.last_chain_expiry {
        registry.set(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Returns last SSL chain expiry in timestamp",
            info.verified_chain_expiry.unwrap_or(GO_ZERO_TIME),
        );
    }
    if let Some(leaf) = info.presented.first().and_then(|cert| describe(cert)) {
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
        &[("version", info.version)],
        1.0,
    );
    if families.cipher {
        registry.set_with(
            "probe_tls_cipher_info",
            "Returns the TLS cipher negotiated during handshake",
            &[("cipher", &info.cipher)],
            1.0,
        );
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
    fn rdn_values_escape_like_go() {
        assert_eq!(escape_rdn_value("Acme, Inc"), "Acme\\, Inc");
        assert_eq!(escape_rdn_value(" x "), "\\ x\\ ");
        assert_eq!(escape_rdn_value("#1"), "\\#1");
    }
}
