//! Test certificates: one CA and leaves for every TLS outcome a prober must
//! tell apart, written as PEM files into a temp dir.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Which leaf a TLS server presents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Leaf {
    /// CA-signed, for `localhost` and 127.0.0.1, valid for 90 days.
    #[default]
    Valid,
    /// CA-signed for `localhost`, but expired yesterday.
    Expired,
    /// Self-signed for `localhost`: not chained to the test CA.
    Untrusted,
    /// CA-signed and valid, but only for `wrong.example.test`.
    WrongHost,
}

/// A certificate (and its key) as PEM strings and files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// File holding `cert_pem`.
    pub cert_path: PathBuf,
    /// File holding `key_pem` (mode 0644: peers run as several users).
    pub key_path: PathBuf,
    /// Certificate then key in one file (the layout some servers want).
    pub combined_path: PathBuf,
    /// The certificate's `notAfter`.
    pub not_after: SystemTime,
}

/// A test CA with its leaves. Every call generates fresh keys.
pub struct TestCerts {
    dir: tempfile::TempDir,
    /// The CA certificate: trust `ca.cert_path` to accept `valid`/`expired`.
    pub ca: CertFiles,
    /// See [`Leaf::Valid`].
    pub valid: CertFiles,
    /// See [`Leaf::Expired`].
    pub expired: CertFiles,
    /// See [`Leaf::Untrusted`].
    pub untrusted: CertFiles,
    /// See [`Leaf::WrongHost`].
    pub wrong_host: CertFiles,
    /// A CA-signed client certificate (CN `checkit-client`) for mutual TLS.
    pub client: CertFiles,
}

impl TestCerts {
    /// Generates the CA and all leaves into a fresh temp dir.
    pub fn generate() -> TestCerts {
        let dir = super::shared_temp_dir("certs");
        let now = SystemTime::now();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "checkit test CA");
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut ca_params, now - DAY, now + 365 * DAY);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign ca");
        let ca = write(dir.path(), "ca", ca_cert.pem(), ca_key.serialize_pem(), now + 365 * DAY);
        let issuer = Issuer::new(ca_params, ca_key);

        let localhost = || {
            vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ]
        };
        let valid = leaf(dir.path(), "valid", localhost(), now - DAY, now + 90 * DAY, Some(&issuer));
        let expired = leaf(dir.path(), "expired", localhost(), now - 30 * DAY, now - DAY, Some(&issuer));
        let untrusted = leaf(dir.path(), "untrusted", localhost(), now - DAY, now + 90 * DAY, None);
        let wrong_host = leaf(
            dir.path(),
            "wrong-host",
            vec![SanType::DnsName("wrong.example.test".try_into().expect("dns name"))],
            now - DAY,
            now + 90 * DAY,
            Some(&issuer),
        );

        let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        client_params.distinguished_name.push(DnType::CommonName, "checkit-client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.use_authority_key_identifier_extension = true;
        set_validity(&mut client_params, now - DAY, now + 90 * DAY);
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = client_params.signed_by(&client_key, &issuer).expect("sign client");
        let client = write(dir.path(), "client", client_cert.pem(), client_key.serialize_pem(), now + 90 * DAY);

        TestCerts { dir, ca, valid, expired, untrusted, wrong_host, client }
    }

    /// The directory holding every PEM file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The files for `leaf`.
    pub fn leaf(&self, leaf: Leaf) -> &CertFiles {
        match leaf {
            Leaf::Valid => &self.valid,
            Leaf::Expired => &self.expired,
            Leaf::Untrusted => &self.untrusted,
            Leaf::WrongHost => &self.wrong_host,
        }
    }

    /// A rustls client config that trusts only the test CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(parse_certs(&self.ca.cert_pem).remove(0)).expect("add test CA");
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A rustls server config presenting `leaf`.
    pub fn server_config(&self, leaf: Leaf) -> Arc<rustls::ServerConfig> {
        let files = self.leaf(leaf);
        let key = rustls_pemfile::private_key(&mut files.key_pem.as_bytes()).expect("parse key").expect("a key");
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(parse_certs(&files.cert_pem), key)
            .expect("server cert");
        Arc::new(config)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<_, _>>().expect("parse certificate")
}

fn leaf(
    dir: &Path,
    name: &str,
    names: Vec<SanType>,
    not_before: SystemTime,
    not_after: SystemTime,
    issuer: Option<&Issuer<'static, KeyPair>>,
) -> CertFiles {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = names;
    params.distinguished_name.push(DnType::CommonName, format!("checkit {name}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, not_before, not_after);
    let key = KeyPair::generate().expect("leaf key");
    let cert = match issuer {
        Some(issuer) => {
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&key, issuer).expect("sign leaf")
        }
        None => params.self_signed(&key).expect("self-sign leaf"),
    };
    write(dir, name, cert.pem(), key.serialize_pem(), not_after)
}

fn set_validity(params: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) {
    // rcgen speaks `time`; go through the Unix epoch to avoid that dependency.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let since_epoch = |at: SystemTime| at.duration_since(UNIX_EPOCH).expect("after epoch");
    // Whole seconds: X.509 times have no fractions.
    let whole = |at: SystemTime| Duration::from_secs(since_epoch(at).as_secs());
    params.not_before = epoch + whole(not_before);
    params.not_after = epoch + whole(not_after);
}

fn write(dir: &Path, name: &str, cert_pem: String, key_pem: String, not_after: SystemTime) -> CertFiles {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    let combined_path = dir.join(format!("{name}.pem"));
    super::write_file(&cert_path, &cert_pem, 0o644);
    super::write_file(&key_path, &key_pem, 0o644);
    super::write_file(&combined_path, format!("{cert_pem}{key_pem}"), 0o644);
    let not_after =
        UNIX_EPOCH + Duration::from_secs(not_after.duration_since(UNIX_EPOCH).expect("after epoch").as_secs());
    CertFiles { cert_pem, key_pem, cert_path, key_path, combined_path, not_after }
}
