//! The `rdap` prober: a domain's expiry (and registration and last change)
//! from its registry's RDAP service (RFC 9083), found through an RFC 9224
//! bootstrap file that is bundled in the binary.
//!
//! Registries rate-limit RDAP and the data changes rarely, so answers are
//! cached process-wide per (server, domain): successes for `cache_ttl`,
//! failures for `failure_cache_ttl`. Scrapes in between are answered from the
//! cache and say how old the answer is.
//!
//! The target is a domain name, never connected to, so it is not resolved and
//! the `probe_ip_*` families are absent; the target policy's host patterns
//! still apply to it. The RDAP server is not the target: it comes from the
//! operator's config or bootstrap file (the target only selects among those
//! and becomes a validated path segment), so its address is not checked
//! against the target policy, like a proxy would not be.

use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::GoDuration;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The `rdap:` block of a module.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Query this RDAP base URL for every domain instead of using the bootstrap.
    pub server_url: Option<String>,
    /// An RFC 9224 bootstrap file (IANA's `dns.json`) replacing the bundled one.
    pub bootstrap_file: Option<String>,
    /// How long a successful answer is reused; 0 disables caching.
    pub cache_ttl: GoDuration,
    /// How long a failed lookup is reused (at least what `Retry-After` asks).
    pub failure_cache_ttl: GoDuration,
    /// Fail when the registry publishes no expiration date.
    pub fail_if_no_expiration: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_url: None,
            bootstrap_file: None,
            cache_ttl: GoDuration(Duration::from_secs(6 * 3600)),
            failure_cache_ttl: GoDuration(Duration::from_secs(300)),
            fail_if_no_expiration: true,
        }
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if let Some(server_url) = &self.server_url {
            match url::Url::parse(server_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                Ok(_) => problems.push(format!("{path}.server_url"), "server_url must be an http or https URL"),
                Err(err) => problems.push(format!("{path}.server_url"), format!("invalid server_url: {err}")),
            }
            if self.bootstrap_file.is_some() {
                problems.push(
                    format!("{path}.bootstrap_file"),
                    "at most one of server_url and bootstrap_file must be configured",
                );
            }
        }
        if let Some(file) = &self.bootstrap_file {
            if let Err(err) =
                std::fs::read(file).map_err(|err| err.to_string()).and_then(|bytes| Bootstrap::parse(&bytes))
            {
                problems.push(format!("{path}.bootstrap_file"), format!("unusable bootstrap file {file:?}: {err}"));
            }
        }
    }
}

const HELP_DURATION: &str = "Duration of the RDAP lookup by phase (of the lookup that produced the answer)";
const HELP_STATUS: &str = "HTTP status code of the RDAP response, 0 when there was none";
const HELP_CACHE_AGE: &str = "Seconds since the RDAP answer was fetched, 0 when this probe fetched it";
const HELP_EXPIRATION: &str = "Expiration date of the domain registration (RDAP event expiration) in unixtime";
const HELP_REGISTRATION: &str = "Registration date of the domain (RDAP event registration) in unixtime";
const HELP_LAST_CHANGED: &str = "Last change of the domain registration (RDAP event last changed) in unixtime";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    ctx.registry.seed_phases("probe_rdap_duration_seconds", HELP_DURATION, &["request", "transfer"]);
    ctx.registry.set("probe_rdap_status_code", HELP_STATUS, 0.0);

    // A copy of the reference, so the environment stays usable while `ctx` is borrowed mutably.
    let shared = ctx.env;
    let env = &shared.rdap;
    let domain = parse_domain(ctx.target)
        .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, format!("invalid target: {err}")))?;
    ctx.policy.check_host(&domain).map_err(|why| ProbeError::new(Phase::Resolve, Reason::Denied, why))?;
    let base = match &config.server_url {
        Some(url) => url.clone(),
        None => {
            let bootstrap = match &config.bootstrap_file {
                Some(file) => env.load_bootstrap_file(file),
                None => env.bundled_bootstrap(),
            }
            .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, err))?;
            bootstrap.server_for(&domain).ok_or_else(|| {
                ProbeError::new(Phase::Resolve, Reason::Config, format!("no RDAP server known for {domain:?}"))
            })?
        }
    };
    let url = format!("{}/domain/{domain}", base.trim_end_matches('/'));
    let key = (base, domain);

    let now = Instant::now();
    let (answer, age) = match env.cache.lock().ok().and_then(|cache| cache.get(&key, now)) {
        Some((answer, fetched_at)) => {
            ctx.log.info(format!("Using cached RDAP answer url={url} age_seconds={}", (now - fetched_at).as_secs()));
            (answer, now - fetched_at)
        }
        None => {
            ctx.log.info(format!("Querying RDAP url={url}"));
            let answer = fetch(ctx, &url).await;
            let ttl = match &answer.result {
                Ok(_) => config.cache_ttl.get(),
                Err(_) => config.failure_cache_ttl.get().max(answer.retry_after.unwrap_or_default()),
            };
            if let Ok(mut cache) = env.cache.lock() {
                cache.insert(key, answer.clone(), Instant::now(), ttl);
            }
            (answer, Duration::ZERO)
        }
    };

    ctx.registry.add_phase("probe_rdap_duration_seconds", HELP_DURATION, "request", answer.request_seconds);
    ctx.registry.add_phase("probe_rdap_duration_seconds", HELP_DURATION, "transfer", answer.transfer_seconds);
    ctx.registry.set("probe_rdap_status_code", HELP_STATUS, f64::from(answer.status_code));
    ctx.registry.set("probe_rdap_cache_age_seconds", HELP_CACHE_AGE, age.as_secs_f64());
    let dates = answer.result?;
    for (name, help, value) in [
        ("probe_domain_expiration_timestamp_seconds", HELP_EXPIRATION, dates.expiration),
        ("probe_domain_registration_timestamp_seconds", HELP_REGISTRATION, dates.registration),
        ("probe_domain_last_changed_timestamp_seconds", HELP_LAST_CHANGED, dates.last_changed),
    ] {
        if let Some(value) = value {
            ctx.registry.set(name, help, value);
        }
    }
    if dates.expiration.is_none() && config.fail_if_no_expiration {
        ctx.log.error("The RDAP answer has no expiration event");
        return Err(ProbeError::new(Phase::Check, Reason::Query, "no expiration event in the RDAP answer"));
    }
    Ok(())
}

/// Lowercases, drops a final dot, converts IDNs to A-labels and insists on
/// a registrable-looking name (two labels at least).
fn parse_domain(target: &str) -> Result<String, String> {
    let trimmed = target.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['/', ':', '?', '#', '@', ' ']) {
        return Err(format!("{target:?} is not a domain name"));
    }
    let domain = match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(domain)) => domain,
        Ok(_) => return Err(format!("{target:?} is an address, not a domain name")),
        Err(err) => return Err(format!("{target:?} is not a domain name: {err}")),
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if labels.len() < 2 || !labels.iter().all(valid_label) || domain.len() > 253 {
        return Err(format!("{target:?} is not a domain name with at least two labels"));
    }
    Ok(domain)
}

/// Dates found in an answer, as Unix timestamps.
#[derive(Debug, Clone, Default, PartialEq)]
struct Dates {
    expiration: Option<f64>,
    registration: Option<f64>,
    last_changed: Option<f64>,
}

/// One lookup's outcome, as cached.
#[derive(Debug, Clone)]
struct Answer {
    status_code: u16,
    request_seconds: f64,
    transfer_seconds: f64,
    retry_after: Option<Duration>,
    result: Result<Dates, ProbeError>,
}

/// RDAP answers are a few kilobytes; this bounds a misbehaving server.
const MAX_BODY_BYTES: usize = 1024 * 1024;

async fn fetch(ctx: &mut ProbeCtx<'_>, url: &str) -> Answer {
    let mut answer = Answer {
        status_code: 0,
        request_seconds: 0.0,
        transfer_seconds: 0.0,
        retry_after: None,
        result: Ok(Dates::default()),
    };
    let shared = ctx.env;
    let client = match shared.rdap.client() {
        Ok(client) => client,
        Err(err) => {
            answer.result = Err(ProbeError::new(Phase::Request, Reason::Config, err));
            return answer;
        }
    };
    let start = Instant::now();
    let request = client
        .get(url)
        .header("accept", "application/rdap+json, application/json;q=0.9")
        .timeout(ctx.remaining())
        .send();
    let response = ctx.within(Phase::Request, request).await;
    answer.request_seconds = start.elapsed().as_secs_f64();
    let mut response = match response {
        Err(timeout) => {
            answer.result = Err(timeout);
            return answer;
        }
        Ok(Err(err)) => {
            ctx.log.error(format!("RDAP request failed err={err}"));
            answer.result = Err(request_error(&err));
            return answer;
        }
        Ok(Ok(response)) => response,
    };
    answer.status_code = response.status().as_u16();
    answer.retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if response.status() != reqwest::StatusCode::OK {
        let detail = if response.status() == reqwest::StatusCode::NOT_FOUND {
            "the registry does not know this domain (HTTP 404)".to_string()
        } else {
            format!("unexpected HTTP status {}", response.status())
        };
        ctx.log.error(format!("RDAP answer status={} url={url}", response.status()));
        answer.result = Err(ProbeError::new(Phase::Request, Reason::Status, detail));
        return answer;
    }

    let start = Instant::now();
    let body = ctx.within(Phase::Transfer, read_body(&mut response)).await;
    answer.transfer_seconds = start.elapsed().as_secs_f64();
    answer.result = match body {
        Err(timeout) => Err(timeout),
        Ok(Err(err)) => Err(err),
        Ok(Ok(body)) => parse_answer(&body).map_err(|err| ProbeError::new(Phase::Transfer, Reason::Body, err)),
    };
    if let Ok(dates) = &answer.result {
        ctx.log.debug(format!("RDAP dates {dates:?}"));
    }
    answer
}

fn request_error(err: &reqwest::Error) -> ProbeError {
    let reason = if err.is_timeout() {
        Reason::Timeout
    } else if err.is_connect() {
        // reqwest hides the io::Error kind behind its own error chain.
        let refused = std::error::Error::source(err)
            .into_iter()
            .flat_map(|source| std::iter::successors(Some(source), |source| source.source()))
            .any(|source| {
                source
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            });
        if refused { Reason::Refused } else { Reason::Connect }
    } else {
        Reason::Io
    };
    let phase = if err.is_connect() { Phase::Connect } else { Phase::Request };
    ProbeError::new(phase, reason, err)
}

async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, ProbeError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| ProbeError::new(Phase::Transfer, Reason::Io, err))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(ProbeError::new(Phase::Transfer, Reason::Body, "RDAP answer larger than 1 MiB"));
        }
    }
    Ok(body)
}

/// The part of an RDAP domain object (RFC 9083 §5.3) the prober reads.
#[derive(Deserialize)]
struct DomainObject {
    #[serde(rename = "objectClassName")]
    object_class_name: Option<String>,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "eventAction")]
    action: String,
    #[serde(rename = "eventDate")]
    date: Option<String>,
}

fn parse_answer(body: &[u8]) -> Result<Dates, String> {
    let object: DomainObject =
        serde_json::from_slice(body).map_err(|err| format!("RDAP answer is not a domain object: {err}"))?;
    if let Some(class) = &object.object_class_name {
        if class != "domain" {
            return Err(format!("RDAP answer is a {class:?} object, not a domain"));
        }
    }
    let mut dates = Dates::default();
    for event in &object.events {
        let slot = match event.action.as_str() {
            "expiration" => &mut dates.expiration,
            "registration" => &mut dates.registration,
            "last changed" => &mut dates.last_changed,
            _ => continue,
        };
        let Some(date) = &event.date else { continue };
        // The first event of each kind wins; a date that does not parse is skipped.
        if slot.is_none() {
            *slot = chrono::DateTime::parse_from_rfc3339(date).ok().map(|time| time.timestamp() as f64);
        }
    }
    Ok(dates)
}

/// An RFC 9224 bootstrap: label suffix → base URL.
#[derive(Debug, Default)]
struct Bootstrap {
    servers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct BootstrapFile {
    services: Vec<Vec<Vec<String>>>,
}

impl Bootstrap {
    fn parse(bytes: &[u8]) -> Result<Bootstrap, String> {
        let file: BootstrapFile = serde_json::from_slice(bytes).map_err(|err| format!("invalid JSON: {err}"))?;
        let mut servers = HashMap::new();
        for (index, service) in file.services.iter().enumerate() {
            let [entries, urls, ..] = service.as_slice() else {
                return Err(format!("services[{index}] must hold a list of names and a list of URLs"));
            };
            // RFC 9224 §3: prefer HTTPS when both are listed.
            let url = urls
                .iter()
                .find(|url| url.starts_with("https://"))
                .or_else(|| urls.iter().find(|url| url.starts_with("http://")))
                .ok_or_else(|| format!("services[{index}] lists no http(s) URL"))?;
            for entry in entries {
                servers.insert(entry.trim_end_matches('.').to_ascii_lowercase(), url.clone());
            }
        }
        Ok(Bootstrap { servers })
    }

    /// The base URL for the longest matching label suffix.
    fn server_for(&self, domain: &str) -> Option<String> {
        let mut suffix = domain;
        loop {
            if let Some(url) = self.servers.get(suffix) {
                return Some(url.clone());
            }
            suffix = suffix.split_once('.')?.1;
        }
    }
}

/// A file's (size, mtime), to notice that it changed.
type FileVersion = (u64, Option<SystemTime>);

/// What rdap probes share while the process (or a test) lives: the HTTP
/// client, the bundled and file bootstrap registries, and the answer cache.
/// `app` builds one inside [`super::Env`] and hands it to every probe, so a
/// test gets a cache of its own and nothing hides in process-wide statics.
pub struct Env {
    client: OnceLock<Result<reqwest::Client, String>>,
    bundled: OnceLock<Result<Arc<Bootstrap>, String>>,
    /// Parsed bootstrap files by path.
    files: Mutex<HashMap<String, (FileVersion, Arc<Bootstrap>)>>,
    cache: Mutex<Cache>,
}

impl Default for Env {
    fn default() -> Self {
        // 10 000 domains is far more than anyone probes.
        Env::with_capacity(10_000)
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|cache| cache.entries.len()).unwrap_or_default();
        f.debug_struct("rdap::Env").field("cached", &cached).finish_non_exhaustive()
    }
}

impl Env {
    /// An environment whose cache holds at most `capacity` answers.
    pub fn with_capacity(capacity: usize) -> Self {
        Env {
            client: OnceLock::new(),
            bundled: OnceLock::new(),
            files: Mutex::new(HashMap::new()),
            cache: Mutex::new(Cache::new(capacity)),
        }
    }

    /// The HTTP client, built on first use.
    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("checkit/", env!("CARGO_PKG_VERSION")))
                    .redirect(reqwest::redirect::Policy::limited(5))
                    .build()
                    .map_err(|err| format!("cannot build HTTP client: {err}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The bootstrap subset compiled into the binary, parsed on first use.
    fn bundled_bootstrap(&self) -> Result<Arc<Bootstrap>, String> {
        self.bundled.get_or_init(|| Bootstrap::parse(include_bytes!("rdap_bootstrap.json")).map(Arc::new)).clone()
    }

    /// Parses a bootstrap file once per version of it (path, size, mtime).
    fn load_bootstrap_file(&self, path: &str) -> Result<Arc<Bootstrap>, String> {
        let metadata = std::fs::metadata(path).map_err(|err| format!("cannot read bootstrap file {path:?}: {err}"))?;
        let version = (metadata.len(), metadata.modified().ok());
        if let Some((seen, bootstrap)) = self.files.lock().ok().and_then(|files| files.get(path).cloned()) {
            if seen == version {
                return Ok(bootstrap);
            }
        }
        let bytes = std::fs::read(path).map_err(|err| format!("cannot read bootstrap file {path:?}: {err}"))?;
        let bootstrap = Arc::new(Bootstrap::parse(&bytes).map_err(|err| format!("bootstrap file {path:?}: {err}"))?);
        if let Ok(mut files) = self.files.lock() {
            files.insert(path.to_string(), (version, bootstrap.clone()));
        }
        Ok(bootstrap)
    }
}

/// The cache key: (RDAP base URL, domain).
type Key = (String, String);

/// Answers by key, each valid until its own expiry. Bounded: when full, the
/// expired entries go first, then the oldest.
struct Cache {
    entries: HashMap<Key, CacheEntry>,
    capacity: usize,
}

struct CacheEntry {
    answer: Answer,
    fetched_at: Instant,
    valid_until: Instant,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Cache { entries: HashMap::new(), capacity }
    }

    /// A fresh answer and when it was fetched.
    fn get(&self, key: &Key, now: Instant) -> Option<(Answer, Instant)> {
        let entry = self.entries.get(key)?;
        (now < entry.valid_until).then(|| (entry.answer.clone(), entry.fetched_at))
    }

    fn insert(&mut self, key: Key, answer: Answer, now: Instant, ttl: Duration) {
        if ttl.is_zero() {
            self.entries.remove(&key);
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, entry| now < entry.valid_until);
            if self.entries.len() >= self.capacity {
                let oldest = self.entries.iter().min_by_key(|(_, entry)| entry.fetched_at).map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, CacheEntry { answer, fetched_at: now, valid_until: now + ttl });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(parse_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(parse_domain("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert!(parse_domain("com").is_err());
        assert!(parse_domain("127.0.0.1").is_err());
        assert!(parse_domain("example.com/../x").is_err());
        assert!(parse_domain("https://example.com").is_err());
        assert!(parse_domain("").is_err());
    }

    #[test]
    fn bundled_bootstrap_finds_servers_by_longest_suffix() {
        let bootstrap = Env::default().bundled_bootstrap().unwrap();
        assert_eq!(bootstrap.server_for("example.com").unwrap(), "https://rdap.verisign.com/com/v1/");
        assert_eq!(bootstrap.server_for("www.example.co.uk").unwrap(), "https://rdap.nominet.uk/uk/");
        assert_eq!(bootstrap.server_for("example.dev").unwrap(), "https://pubapi.registry.google/rdap/");
        assert!(bootstrap.server_for("example.de").is_none());

        let custom = Bootstrap::parse(
            br#"{"services": [[["uk"], ["https://uk.example/"]], [["co.uk"], ["http://co.example/", "https://co.example/"]]]}"#,
        )
        .unwrap();
        assert_eq!(custom.server_for("a.co.uk").unwrap(), "https://co.example/");
        assert_eq!(custom.server_for("a.org.uk").unwrap(), "https://uk.example/");
        assert!(Bootstrap::parse(br#"{"services": [[["x"]]]}"#).is_err());
        assert!(Bootstrap::parse(b"not json").is_err());
    }

    #[test]
    fn events_become_timestamps() {
        let body = br#"{
            "objectClassName": "domain",
            "ldhName": "EXAMPLE.COM",
            "events": [
                {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
                {"eventAction": "expiration", "eventDate": "2026-08-13T04:00:00Z"},
                {"eventAction": "last changed", "eventDate": "2024-08-14T07:01:34.123+02:00"},
                {"eventAction": "last update of RDAP database", "eventDate": "2025-01-01T00:00:00Z"}
            ]
        }"#;
        assert_eq!(
            parse_answer(body).unwrap(),
            Dates {
                expiration: Some(1_786_593_600.0),
                registration: Some(808_372_800.0),
                last_changed: Some(1_723_611_694.0),
            }
        );
        assert_eq!(parse_answer(br#"{"objectClassName": "domain"}"#).unwrap(), Dates::default());
        assert!(parse_answer(br#"{"objectClassName": "entity", "events": []}"#).is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    fn answer(status_code: u16) -> Answer {
        Answer {
            status_code,
            request_seconds: 0.0,
            transfer_seconds: 0.0,
            retry_after: None,
            result: Ok(Dates::default()),
        }
    }

    #[test]
    fn cache_entries_expire_by_their_own_ttl() {
        let mut cache = Cache::new(2);
        let start = Instant::now();
        let key = |name: &str| ("https://rdap.example/".to_string(), name.to_string());
        cache.insert(key("a.com"), answer(200), start, Duration::from_secs(60));
        cache.insert(key("b.com"), answer(404), start, Duration::from_secs(10));
        assert_eq!(cache.get(&key("a.com"), start + Duration::from_secs(59)).unwrap().0.status_code, 200);
        assert!(cache.get(&key("a.com"), start + Duration::from_secs(60)).is_none());
        assert!(cache.get(&key("b.com"), start + Duration::from_secs(9)).is_some());
        assert!(cache.get(&key("b.com"), start + Duration::from_secs(10)).is_none());
        assert!(cache.get(&key("c.com"), start).is_none());

        // Full: the expired b.com makes room first, then the oldest goes.
        cache.insert(key("c.com"), answer(200), start + Duration::from_secs(20), Duration::from_secs(60));
        assert!(cache.get(&key("a.com"), start + Duration::from_secs(20)).is_some());
        cache.insert(key("d.com"), answer(200), start + Duration::from_secs(30), Duration::from_secs(60));
        assert!(cache.get(&key("a.com"), start + Duration::from_secs(30)).is_none());
        assert!(cache.get(&key("c.com"), start + Duration::from_secs(30)).is_some());
        assert!(cache.get(&key("d.com"), start + Duration::from_secs(30)).is_some());

        // A zero TTL means "do not cache".
        cache.insert(key("d.com"), answer(200), start + Duration::from_secs(31), Duration::ZERO);
        assert!(cache.get(&key("d.com"), start + Duration::from_secs(31)).is_none());
    }

    #[test]
    fn config_problems_are_all_reported() {
        let config = Config {
            server_url: Some("ftp://x".into()),
            bootstrap_file: Some("/nonexistent/dns.json".into()),
            ..Config::default()
        };
        let mut problems = Problems::default();
        config.validate("modules.r.rdap", &mut problems);
        let paths = problems.paths();
        assert_eq!(
            paths,
            ["modules.r.rdap.server_url", "modules.r.rdap.bootstrap_file", "modules.r.rdap.bootstrap_file"]
        );
    }
}
