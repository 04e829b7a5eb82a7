//! `--web.config.file`: TLS and basic auth in exporter-toolkit's format, so
//! the file operators already have for blackbox_exporter works unchanged.

use crate::config::types::Secret;
use crate::config::{Problem, Problems, paths, yaml};
use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// The web config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve HTTPS.
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP options.
    pub http_server_config: Option<HttpServerConfig>,
    /// user → bcrypt hash.
    pub basic_auth_users: BTreeMap<String, Secret>,
}

/// exporter-toolkit's `tls_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerConfig {
    /// Server certificate (PEM file).
    pub cert_file: Option<String>,
    /// Server key (PEM file).
    pub key_file: Option<String>,
    /// Inline certificate.
    pub cert: Option<String>,
    /// Inline key.
    pub key: Option<Secret>,
    /// `NoClientCert` (default), `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    pub client_auth_type: Option<String>,
    /// CA for client certificates.
    pub client_ca_file: Option<String>,
    /// Lowest TLS version (`TLS12`, `TLS13`).
    pub min_version: Option<String>,
    /// Highest TLS version.
    pub max_version: Option<String>,
    /// Accepted for compatibility; rustls picks its own safe suites.
    pub cipher_suites: Vec<String>,
    /// Accepted for compatibility.
    pub curve_preferences: Vec<String>,
    /// Accepted for compatibility.
    pub prefer_server_cipher_suites: Option<bool>,
    /// Accepted for compatibility; not enforced.
    pub client_allowed_sans: Vec<String>,
}

/// exporter-toolkit's `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Allow HTTP/2 (default true).
    pub http2: Option<bool>,
    /// Extra response headers.
    pub headers: BTreeMap<String, String>,
}

/// The loaded web config: an optional TLS acceptor config and basic-auth users.
#[derive(Clone)]
pub struct Web {
    /// rustls server config when TLS is on.
    pub tls: Option<Arc<ServerConfig>>,
    users: Arc<BTreeMap<String, String>>,
    /// Verified (user, password) pairs: bcrypt is slow by design, and a scrape
    /// every few seconds must not pay for it each time.
    verified: Arc<Mutex<HashSet<(String, String)>>>,
    /// Bounds the bcrypt comparisons running at once.
    verifying: Arc<tokio::sync::Semaphore>,
    /// bcrypt comparisons run so far, with the cost of each one's hash: what
    /// makes an unknown user as slow as a wrong password, checked by a test
    /// without timing anything.
    comparisons: Arc<Mutex<Vec<u32>>>,
    /// Extra response headers.
    pub headers: Arc<BTreeMap<String, String>>,
}

impl Default for Web {
    /// No TLS, no users: everything is allowed.
    fn default() -> Self {
        Web {
            tls: None,
            users: Arc::default(),
            verified: Arc::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(verify_slots())),
            comparisons: Arc::default(),
            headers: Arc::default(),
        }
    }
}

impl Web {
    /// Loads and checks the file.
    pub fn load(path: &str) -> Result<Web, Vec<Problem>> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| vec![Problem::new("", format!("cannot read web config {path:?}: {err}"))])?;
        let mut value = yaml::parse_value(&text).map_err(|problem| vec![problem])?;
        // Relative certificate and CA files are relative to this file, as in exporter-toolkit.
        paths::resolve_file_paths(&mut value, &paths::base_dir_of(std::path::Path::new(path)));
        let config: WebConfig = yaml::from_value(value, "").map_err(|problem| vec![problem])?;
        let mut problems = Problems::default();
        for (user, hash) in &config.basic_auth_users {
            if !hash.expose().starts_with("$2") {
                problems.push(format!("basic_auth_users.{user}"), "password must be a bcrypt hash");
            }
        }
        if let Some(tls) = &config.tls_server_config {
            for (inline, file, what) in
                [(tls.cert.is_some(), &tls.cert_file, "cert"), (tls.key.is_some(), &tls.key_file, "key")]
            {
                let path = format!("tls_server_config.{what}_file");
                match (inline, file) {
                    (false, None) => problems.push(path, format!("{what}_file is required")),
                    (true, Some(_)) => problems.push(path, format!("at most one of {what} and {what}_file may be set")),
                    (false, Some(file)) => {
                        if let Err(err) = std::fs::metadata(file) {
                            problems.push(path, format!("cannot read {file:?}: {err}"));
                        }
                    }
                    (true, None) => {}
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.0);
        }
        let tls = config.tls_server_config.as_ref().and_then(|tls| match server_config(tls) {
            Ok(config) => Some(Arc::new(config)),
            Err(message) => {
                problems.push("tls_server_config", message);
                None
            }
        });
        if !problems.is_empty() {
            return Err(problems.0);
        }
        Ok(Web {
            tls,
            users: Arc::new(config.basic_auth_users.into_iter().map(|(user, hash)| (user, hash.0)).collect()),
            verified: Arc::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(verify_slots())),
            comparisons: Arc::default(),
            headers: Arc::new(config.http_server_config.map(|http| http.headers).unwrap_or_default()),
        })
    }

    /// True when basic auth is required.
    pub fn auth_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header value.
    ///
    /// bcrypt is slow by design (~50 ms at cost 10), so it runs on the
    /// blocking pool, at most `Web::verifying` at a time, and never on the
    /// async runtime's threads: wrong passwords must not stall other requests.
    /// An unknown user is compared against a real user's hash too, so the
    /// answer takes as long as for a wrong password and does not reveal
    /// which users exist.
    pub async fn authorize(&self, header: Option<&str>) -> Authorization {
        if self.users.is_empty() {
            return Authorization::Allowed;
        }
        let Some((user, password)) = header.and_then(decode_basic) else {
            return Authorization::Denied;
        };
        let key = (user, password);
        if self.verified.lock().map(|cache| cache.contains(&key)).unwrap_or(false) {
            return Authorization::Allowed;
        }
        let (known, hash) = match self.users.get(&key.0) {
            Some(hash) => (true, hash.clone()),
            None => (false, self.dummy_hash().to_string()),
        };
        let Ok(Ok(_permit)) = tokio::time::timeout(VERIFY_QUEUE_WAIT, self.verifying.acquire()).await else {
            return Authorization::Busy;
        };
        if let Ok(mut comparisons) = self.comparisons.lock() {
            // Bounded: only the last few matter to the test that reads them.
            if comparisons.len() >= 64 {
                comparisons.clear();
            }
            comparisons.push(bcrypt_cost(&hash));
        }
        let password = key.1.clone();
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !(known && matches) {
            return Authorization::Denied;
        }
        if let Ok(mut cache) = self.verified.lock() {
            cache.insert(key);
        }
        Authorization::Allowed
    }

    /// The hash an unknown user's password is compared with: the costliest
    /// configured one, so the comparison takes as long as a real one.
    fn dummy_hash(&self) -> &str {
        self.users.values().max_by_key(|hash| bcrypt_cost(hash)).map_or("", String::as_str)
    }
}

/// The outcome of [`Web::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// No auth configured, or valid credentials.
    Allowed,
    /// Missing or wrong credentials: 401.
    Denied,
    /// Too many password checks queued: 503, so a flood of guesses cannot
    /// queue without bound.
    Busy,
}

/// How long a request waits for a bcrypt slot before it gets 503.
const VERIFY_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The cost field of a `$2y$10$…` hash (0 when unreadable).
fn bcrypt_cost(hash: &str) -> u32 {
    hash.split('$').nth(2).and_then(|cost| cost.parse().ok()).unwrap_or(0)
}

/// Password checks that may run at once: half the cores, so guesses cannot
/// take every CPU away from probes.
fn verify_slots() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

/// Decodes `Basic <base64(user:password)>`; the scheme is case-insensitive
/// (RFC 9110 §11.1).
pub fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn read_pem(inline: Option<&str>, file: Option<&str>, what: &str) -> Result<Vec<u8>, String> {
    match (inline, file) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(file)) => std::fs::read(file).map_err(|err| format!("cannot read {what} {file:?}: {err}")),
        (Some(_), Some(_)) => Err(format!("at most one of {what} and {what}_file may be set")),
        (None, None) => Err(format!("{what}_file is required")),
    }
}

fn server_config(tls: &TlsServerConfig) -> Result<ServerConfig, String> {
    let cert_pem = read_pem(tls.cert.as_deref(), tls.cert_file.as_deref(), "cert")?;
    let key_pem = read_pem(tls.key.as_ref().map(Secret::expose), tls.key_file.as_deref(), "key")?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut cert_pem.as_slice()).collect::<Result<_, _>>().map_err(|err| err.to_string())?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|err| err.to_string())?
        .ok_or_else(|| "no private key found".to_string())?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    let min13 = tls.min_version.as_deref() == Some("TLS13");
    let max12 = tls.max_version.as_deref() == Some("TLS12");
    if !min13 {
        versions.push(&rustls::version::TLS12);
    }
    if !max12 {
        versions.push(&rustls::version::TLS13);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|err| err.to_string())?;
    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" | "RequireAnyClientCert" => {
            let ca_file = tls.client_ca_file.as_deref().ok_or("client_ca_file is required for client auth")?;
            let ca_pem = std::fs::read(ca_file).map_err(|err| format!("cannot read client_ca_file: {err}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
                roots.add(cert.map_err(|err| err.to_string())?).map_err(|err| err.to_string())?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if auth_type == "VerifyClientCertIfGiven" { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|err| err.to_string())?)
        }
        other => return Err(format!("invalid client_auth_type {other:?}")),
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|err| format!("invalid certificate or key: {err}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_auth() {
        assert_eq!(decode_basic("Basic dXNlcjpwYXNz"), Some(("user".into(), "pass".into())));
        assert_eq!(decode_basic("Bearer x"), None);
        assert_eq!(decode_basic("BASIC dXNlcjpwYXNz"), Some(("user".into(), "pass".into())));
        assert_eq!(bcrypt_cost("$2y$10$abc"), 10);
    }

    /// Defect 7 (issue 13), checked without a clock: an unknown user's
    /// password goes through the same bcrypt comparison as a wrong password,
    /// against a hash of the costliest configured cost, so both take as long.
    #[tokio::test]
    async fn unknown_users_are_compared_against_a_hash_of_the_same_cost() {
        let cheap = bcrypt::hash("other", 4).expect("hash");
        let costly = bcrypt::hash("s3cret", 6).expect("hash");
        let web = Web {
            users: Arc::new(BTreeMap::from([("cheap".to_string(), cheap), ("prometheus".to_string(), costly)])),
            ..Web::default()
        };
        let basic = |user: &str, password: &str| {
            use base64::Engine;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        };
        let comparisons = || web.comparisons.lock().expect("lock").clone();
        assert_eq!(web.authorize(Some(&basic("prometheus", "wrong"))).await, Authorization::Denied);
        assert_eq!(comparisons(), [6], "a wrong password is one comparison at the user's cost");
        assert_eq!(web.authorize(Some(&basic("nobody", "wrong"))).await, Authorization::Denied);
        assert_eq!(comparisons(), [6, 6], "an unknown user is one comparison at the highest cost");
        assert_eq!(web.authorize(Some(&basic("nobody", "s3cret"))).await, Authorization::Denied);
        assert_eq!(web.authorize(Some(&basic("prometheus", "s3cret"))).await, Authorization::Allowed);
        assert_eq!(comparisons(), [6, 6, 6, 6], "the dummy hash never lets anyone in");
    }
}
