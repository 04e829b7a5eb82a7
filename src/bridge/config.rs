//! The `bridge:` section: intake, storage, delivery tuning, people and routes.
//!
//! ```yaml
//! bridge:
//!   auth: {bearer: {token_file: /etc/checkit/webhook.token}}
//!   contacts:
//!     alice: {email: alice@example.com, sms: "+4915112345678", quiet_hours: {...}}
//!   groups: {oncall: [alice, bob]}
//!   routes:
//!     - matchers: ['severity=~"critical|page"']
//!       groups: [oncall]
//!       channels: [sms]
//!       continue: true
//!     - contacts: [alice]
//! ```

use super::channels::{ChannelKind, ChannelsConfig};
use super::matcher::Matchers;
use super::quiet::QuietHours;
use super::ratelimit::RateLimit;
use super::render::TemplatesConfig;
use crate::config::Problems;
use crate::config::types::{ByteSize, GoDuration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Looks a channel kind up by its label value (`"sms"`).
pub fn channel_kind(name: &str) -> Option<ChannelKind> {
    ChannelKind::all().iter().copied().find(|kind| kind.as_str() == name)
}

/// The `bridge:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Serve the bridge on its own address (`:9096`, `127.0.0.1:9096`)
    /// instead of the exporter's listener.
    pub listen_address: Option<String>,
    /// Credentials Alertmanager must present; none configured means open.
    pub auth: Auth,
    /// Largest webhook body accepted (base-2 units); larger gets 413.
    pub max_body_size: ByteSize,
    /// Deprecated: where notifications, the outbox and history live when not
    /// in the top-level `storage:`; unset uses `storage:`.
    pub store: Option<StoreConfig>,
    /// How long an identical notification (HA peer, retry) is ignored.
    /// Keep it below the shortest `repeat_interval`; `0s` disables dedup.
    pub dedup_window: GoDuration,
    /// How long a message keeps being retried after its first attempt
    /// before it is dead-lettered.
    pub max_age: GoDuration,
    /// Delivery workers per process.
    pub workers: usize,
    /// Pending messages beyond which webhooks are refused with 503.
    pub max_queue: u64,
    /// Backoff between delivery attempts.
    pub retry: RetryConfig,
    /// Upper bound of one delivery attempt.
    pub delivery_timeout: GoDuration,
    /// How long history and notifications are kept.
    pub retention: GoDuration,
    /// Per-channel budgets applied to each contact, e.g. `sms: ["10/h", "30/d"]`.
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// People, by name.
    pub contacts: BTreeMap<String, Contact>,
    /// Named lists of contacts.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Which alerts go to whom; see [`Route`].
    pub routes: Vec<Route>,
    /// Provider settings (SMTP, SMS gateway, bot tokens…).
    pub channels: ChannelsConfig,
    /// Per-channel template overrides.
    pub templates: TemplatesConfig,
    /// The message API's tokens.
    pub messages: super::messages::MessagesConfig,
    /// Acknowledge links and Alertmanager silences; unset = no links.
    pub acknowledgement: Option<super::ack::AckConfig>,
    /// Regular reports to contacts and groups, by name.
    pub reports: BTreeMap<String, super::report::ReportConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_address: None,
            auth: Auth::default(),
            max_body_size: ByteSize(4 << 20),
            store: None,
            dedup_window: GoDuration(Duration::from_secs(600)),
            max_age: GoDuration(Duration::from_secs(24 * 3600)),
            workers: 4,
            max_queue: 100_000,
            retry: RetryConfig::default(),
            delivery_timeout: GoDuration(Duration::from_secs(30)),
            retention: GoDuration(Duration::from_secs(30 * 24 * 3600)),
            rate_limits: BTreeMap::new(),
            contacts: BTreeMap::new(),
            groups: BTreeMap::new(),
            routes: Vec::new(),
            channels: ChannelsConfig::default(),
            templates: TemplatesConfig::default(),
            messages: super::messages::MessagesConfig::default(),
            acknowledgement: None,
            reports: BTreeMap::new(),
        }
    }
}

/// Inbound credentials. When both are set, either is accepted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `Authorization: Bearer <token>` (any scheme name is accepted, as
    /// Alertmanager's `authorization.type` may be anything).
    #[serde(default)]
    pub bearer: Option<BearerAuth>,
    /// `Authorization: Basic …`.
    #[serde(default)]
    pub basic: Option<BasicAuth>,
}

/// Bearer token read from a file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerAuth {
    /// File holding the token.
    pub token_file: String,
}

/// Basic credentials; the password is read from a file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// Expected user name.
    pub username: String,
    /// File holding the password.
    pub password_file: String,
}

pub use crate::storage::config::{PostgresConfig, SqliteConfig, StorageConfig as StoreConfig};

/// Exponential backoff with jitter between attempts of one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Wait before the second attempt.
    pub initial_interval: GoDuration,
    /// Longest wait between attempts.
    pub max_interval: GoDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_interval: GoDuration(Duration::from_secs(1)),
            max_interval: GoDuration(Duration::from_secs(300)),
        }
    }
}

macro_rules! contact {
    ($($(#[$doc:meta])* $variant:ident $module:ident;)*) => {
        /// A person and the ways to reach them.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Contact {
            $(
                #[doc = concat!("The address on `", stringify!($module), "` (see its `Address`).")]
                #[serde(default)]
                pub $module: Option<super::channels::$module::Address>,
            )*
            /// When to hold messages instead of delivering them.
            #[serde(default)]
            pub quiet_hours: Option<QuietHours>,
            /// Budget over all of this contact's channels together, e.g. `["20/h"]`.
            #[serde(default)]
            pub rate_limit: Option<RateLimit>,
        }

        impl Contact {
            /// The address for `kind`, if this contact has one.
            pub fn address(&self, kind: ChannelKind) -> Option<&str> {
                match kind {
                    $(ChannelKind::$variant => self.$module.as_ref().map(super::channels::AddressText::text),)*
                }
            }
        }
    };
}
super::channels::for_each_channel!(contact);

impl Contact {
    /// The channels this contact can be reached on.
    pub fn channels(&self) -> impl Iterator<Item = ChannelKind> + '_ {
        ChannelKind::all().iter().copied().filter(|kind| self.address(*kind).is_some())
    }

    /// The quiet-hours bypass matchers; an alert matching any of them is
    /// delivered at once. Expressions that do not parse are left out
    /// (validation reports them).
    pub fn bypass(&self) -> Vec<Matchers> {
        self.quiet_hours
            .iter()
            .flat_map(|quiet_hours| quiet_hours.bypass_expressions())
            .filter_map(|expression| Matchers::parse(expression).ok())
            .collect()
    }
}

/// A routing rule. Each alert of a notification walks the routes in order;
/// the first route whose `receivers` and `matchers` match takes it, and
/// walking stops there unless the route says `continue: true`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// Name shown in logs and history.
    pub name: Option<String>,
    /// Alertmanager receiver names (unescaped) this route accepts; empty = any.
    pub receivers: Vec<String>,
    /// Label matchers on the alert, all must match; empty = any.
    pub matchers: Matchers,
    /// Contacts to notify.
    pub contacts: Vec<String>,
    /// Groups whose members to notify.
    pub groups: Vec<String>,
    /// Restrict to these channels of each contact; empty = all of them.
    pub channels: Vec<ChannelKind>,
    /// Keep walking the routes after this one matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Notify only if the alert still fires after this long.
    pub delay: Option<GoDuration>,
}

impl Config {
    /// Records every semantic problem of the section below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if let Some(address) = &self.listen_address {
            if parse_listen_address(address).is_none() {
                problems.push(
                    format!("{path}.listen_address"),
                    format!("invalid listen address {address:?}: expected host:port or :port"),
                );
            }
        }
        self.validate_auth(path, problems);
        if self.max_body_size.limit().is_none() {
            problems.push(format!("{path}.max_body_size"), "must be greater than 0");
        }
        self.validate_store(path, problems);
        if self.max_age.get().is_zero() {
            problems.push(format!("{path}.max_age"), "must be greater than 0s");
        }
        if self.workers == 0 || self.workers > 256 {
            problems.push(format!("{path}.workers"), "must be between 1 and 256");
        }
        if self.max_queue == 0 {
            problems.push(format!("{path}.max_queue"), "must be greater than 0");
        }
        if self.retry.initial_interval.get().is_zero() {
            problems.push(format!("{path}.retry.initial_interval"), "must be greater than 0s");
        }
        if self.retry.max_interval < self.retry.initial_interval {
            problems.push(format!("{path}.retry.max_interval"), "must not be shorter than initial_interval");
        }
        if self.delivery_timeout.get().is_zero() {
            problems.push(format!("{path}.delivery_timeout"), "must be greater than 0s");
        }
        if self.retention.get() < Duration::from_secs(3600) {
            problems.push(format!("{path}.retention"), "must be at least 1h");
        }
        for (name, limit) in &self.rate_limits {
            let limit_path = format!("{path}.rate_limits.{name}");
            if channel_kind(name).is_none() {
                problems.push(&limit_path, format!("unknown channel {name:?}"));
            }
            limit.validate(&limit_path, problems);
        }
        for (name, contact) in &self.contacts {
            let contact_path = format!("{path}.contacts.{name}");
            if contact.channels().next().is_none() {
                problems.push(
                    &contact_path,
                    format!(
                        "contact has no channel: set at least one of {}",
                        ChannelKind::all().iter().map(|kind| kind.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            for kind in contact.channels() {
                let address_path = format!("{contact_path}.{}", kind.as_str());
                if let Some(Err(message)) =
                    contact.address(kind).map(|address| super::channels::validate_address(kind, address))
                {
                    problems.push(&address_path, message);
                }
                if !self.channels.is_configured(kind) {
                    problems.push(
                        &address_path,
                        format!("{path}.channels.{} must be configured to use this channel", kind.as_str()),
                    );
                }
            }
            if let Some(quiet_hours) = &contact.quiet_hours {
                let quiet_path = format!("{contact_path}.quiet_hours");
                quiet_hours.validate(&quiet_path, problems);
                for (index, expression) in quiet_hours.bypass_expressions().iter().enumerate() {
                    if let Err(message) = Matchers::parse(expression) {
                        let problem = format!("{quiet_path}.bypass[{index}]");
                        if !problems.0.iter().any(|known| known.path == problem) {
                            problems.push(problem, message);
                        }
                    }
                }
            }
            if let Some(limit) = &contact.rate_limit {
                limit.validate(&format!("{contact_path}.rate_limit"), problems);
            }
        }
        for (name, members) in &self.groups {
            if self.contacts.contains_key(name) {
                problems.push(format!("{path}.groups.{name}"), format!("group {name:?} has the name of a contact"));
            }
            if members.is_empty() {
                problems.push(format!("{path}.groups.{name}"), "group has no members");
            }
            for (index, member) in members.iter().enumerate() {
                if !self.contacts.contains_key(member) {
                    problems.push(format!("{path}.groups.{name}[{index}]"), format!("unknown contact {member:?}"));
                }
            }
        }
        for (index, route) in self.routes.iter().enumerate() {
            self.validate_route(&format!("{path}.routes[{index}]"), route, problems);
        }
        self.channels.validate(&format!("{path}.channels"), problems);
        self.templates.validate(&format!("{path}.templates"), problems);
        self.messages.validate(self, &format!("{path}.messages"), problems);
        if let Some(acknowledgement) = &self.acknowledgement {
            acknowledgement.validate(&format!("{path}.acknowledgement"), problems);
        }
        for (name, report) in &self.reports {
            report.validate(self, &format!("{path}.reports.{name}"), problems);
        }
    }

    fn validate_auth(&self, path: &str, problems: &mut Problems) {
        if let Some(bearer) = &self.auth.bearer {
            let field = format!("{path}.auth.bearer.token_file");
            match crate::config::types::read_secret_file(&bearer.token_file) {
                Ok(token) if token.expose().is_empty() => problems.push(field, "token file is empty"),
                Ok(_) => {}
                Err(err) => problems.push(field, err),
            }
        }
        if let Some(basic) = &self.auth.basic {
            if basic.username.is_empty() {
                problems.push(format!("{path}.auth.basic.username"), "must not be empty");
            }
            if let Err(err) = crate::config::types::read_secret_file(&basic.password_file) {
                problems.push(format!("{path}.auth.basic.password_file"), err);
            }
        }
    }

    fn validate_store(&self, path: &str, problems: &mut Problems) {
        if let Some(store) = &self.store {
            store.validate(&format!("{path}.store"), problems);
        }
    }

    fn validate_route(&self, route_path: &str, route: &Route, problems: &mut Problems) {
        if route.contacts.is_empty() && route.groups.is_empty() {
            problems.push(route_path, "route selects nobody: set contacts or groups");
        }
        for (index, name) in route.contacts.iter().enumerate() {
            if !self.contacts.contains_key(name) {
                problems.push(format!("{route_path}.contacts[{index}]"), format!("unknown contact {name:?}"));
            }
        }
        for (index, name) in route.groups.iter().enumerate() {
            if !self.groups.contains_key(name) {
                problems.push(format!("{route_path}.groups[{index}]"), format!("unknown group {name:?}"));
            }
        }
        let reachable: Vec<ChannelKind> = self
            .route_contacts(route)
            .iter()
            .filter_map(|name| self.contacts.get(name))
            .flat_map(Contact::channels)
            .collect();
        for (index, kind) in route.channels.iter().enumerate() {
            if !reachable.contains(kind) {
                problems.push(
                    format!("{route_path}.channels[{index}]"),
                    format!("no contact of this route has a {} address", kind.as_str()),
                );
            }
        }
    }

    /// The distinct contact names a route selects, directly or through groups.
    pub fn route_contacts(&self, route: &Route) -> Vec<String> {
        let mut names = Vec::new();
        let members = route.groups.iter().filter_map(|group| self.groups.get(group)).flatten();
        for name in route.contacts.iter().chain(members) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

/// Parses `host:port` or Go's `:port` into a socket address string.
pub fn parse_listen_address(address: &str) -> Option<std::net::SocketAddr> {
    let full = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    std::net::ToSocketAddrs::to_socket_addrs(&full).ok().and_then(|mut addresses| addresses.next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::{from_value, parse_value};

    fn load(text: &str) -> Result<Config, String> {
        from_value(parse_value(text).map_err(|p| p.to_string())?, "bridge").map_err(|p| p.to_string())
    }

    fn problems(text: &str) -> Vec<String> {
        let config = load(text).unwrap();
        let mut problems = Problems::default();
        config.validate("bridge", &mut problems);
        problems.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn empty_section_gets_defaults_and_is_valid() {
        let config = load("{}").unwrap();
        assert_eq!(config.workers, 4);
        assert_eq!(config.dedup_window.get(), Duration::from_secs(600));
        assert!(config.store.is_none(), "the bridge uses the top-level storage unless told otherwise");
        assert!(problems("{}").is_empty());
    }

    #[test]
    fn default_log_setup_is_valid() {
        let text = r#"
store: {sqlite: {path: checkit-bridge.db}}
contacts:
  operator: {log: operator}
routes:
  - contacts: [operator]
"#;
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let err = load("contacts: {alice: {emial: a@b}}").unwrap_err();
        assert!(err.contains("bridge.contacts.alice"), "{err}");
        assert!(err.contains("emial"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
listen_address: "no port"
workers: 0
max_queue: 0
store: {sqlite: {path: a.db}, postgres: {url_env: X}}
auth: {bearer: {token_file: /nonexistent/token}}
rate_limits: {pigeon: ["1/h"]}
retry: {initial_interval: 10s, max_interval: 1s}
contacts:
  alice: {}
  bob: {email: bob@example.com}
groups:
  bob: [alice]
  team: [carol]
routes:
  - matchers: ['severity="critical"']
  - contacts: [dave]
    groups: [nobody]
    channels: [sms]
"#;
        let found = problems(text);
        for expected in [
            "bridge.listen_address: invalid listen address",
            "bridge.workers: must be between 1 and 256",
            "bridge.max_queue: must be greater than 0",
            "bridge.store: set exactly one of sqlite and postgres",
            "bridge.auth.bearer.token_file: cannot read secret file",
            "bridge.rate_limits.pigeon: unknown channel",
            "bridge.retry.max_interval: must not be shorter",
            "bridge.contacts.alice: contact has no channel",
            "bridge.groups.bob: group \"bob\" has the name of a contact",
            "bridge.groups.team[0]: unknown contact \"carol\"",
            "bridge.routes[0]: route selects nobody",
            "bridge.routes[1].contacts[0]: unknown contact \"dave\"",
            "bridge.routes[1].groups[0]: unknown group \"nobody\"",
            "bridge.routes[1].channels[0]: no contact of this route has a sms address",
        ] {
            assert!(found.iter().any(|problem| problem.starts_with(expected)), "missing {expected:?} in {found:#?}");
        }
    }

    #[test]
    fn bad_matchers_fail_at_load() {
        let err = load(r#"routes: [{matchers: ['severity=~"("'], contacts: [a]}]"#).unwrap_err();
        assert!(err.contains("bridge.routes[0].matchers"), "{err}");
    }

    #[test]
    fn route_contacts_merge_groups_without_duplicates() {
        let config =
            load("contacts: {a: {log: a}, b: {log: b}}\ngroups: {g: [a, b]}\nroutes: [{contacts: [b], groups: [g]}]")
                .unwrap();
        assert_eq!(config.route_contacts(&config.routes[0]), ["b", "a"]);
    }

    #[test]
    fn secrets_in_contacts_do_not_print() {
        let config = load("contacts: {a: {slack: 'https://hooks.slack.com/services/T/B/secret'}}").unwrap();
        let shown = crate::config::yaml::to_string(&config);
        assert!(!shown.contains("services/T/B/secret"), "{shown}");
        assert_eq!(
            config.contacts["a"].address(ChannelKind::Slack),
            Some("https://hooks.slack.com/services/T/B/secret")
        );
    }
}
