//! Routing: which contacts hear about which alerts, on which channels.
//!
//! Each alert of a notification walks `bridge.routes` in order. A route
//! matches when the notification's receiver is in its `receivers` (or the
//! list is empty) and the alert's labels satisfy all its `matchers`. The first
//! matching route takes the alert; walking stops there unless the route has
//! `continue: true`, exactly like Alertmanager's routing tree flattened to one
//! level. An alert no route matches reaches nobody.
//!
//! The alerts a contact receives over a channel are collected into one outbox
//! row per (notification, contact, channel). A contact reached by several
//! matching routes is told once; the shortest `delay` among them applies.

use super::channels::ChannelKind;
use super::config::Config;
use super::payload::{Notification, Status};
use super::store::NewDelivery;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Routes resolved against contacts and groups, ready to match.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    routes: Vec<ResolvedRoute>,
}

#[derive(Debug, Clone)]
struct ResolvedRoute {
    route: super::config::Route,
    /// (contact, channel) pairs this route notifies.
    targets: Vec<(String, ChannelKind)>,
}

impl Routing {
    /// Resolves the routes of `config`.
    pub fn new(config: &Config) -> Routing {
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let mut targets = Vec::new();
                for name in config.route_contacts(route) {
                    let Some(contact) = config.contacts.get(&name) else {
                        continue;
                    };
                    for kind in contact.channels() {
                        if route.channels.is_empty() || route.channels.contains(&kind) {
                            targets.push((name.clone(), kind));
                        }
                    }
                }
                ResolvedRoute { route: route.clone(), targets }
            })
            .collect();
        Routing { routes }
    }

    /// The outbox rows for `notification` received at `received_at`.
    pub fn route(&self, notification: &Notification, received_at: DateTime<Utc>) -> Vec<NewDelivery> {
        struct Pending<'a> {
            contact: String,
            channel: ChannelKind,
            fingerprints: Vec<String>,
            /// The fingerprints above, for a lookup that stays linear in a
            /// notification of 100,000 alerts (a list search was quadratic).
            seen: std::collections::HashSet<&'a str>,
            delay: Duration,
        }
        let mut pending: Vec<Pending> = Vec::new();
        for alert in &notification.alerts {
            for resolved in &self.routes {
                let route = &resolved.route;
                if !route.receivers.is_empty() && !route.receivers.contains(&notification.receiver) {
                    continue;
                }
                if !route.matchers.matches(&alert.labels) {
                    continue;
                }
                let delay = route.delay.map(|delay| delay.get()).unwrap_or_default();
                for (contact, channel) in &resolved.targets {
                    let index = match pending.iter().position(|p| &p.contact == contact && p.channel == *channel) {
                        Some(index) => {
                            let entry = &mut pending[index];
                            entry.delay = entry.delay.min(delay);
                            index
                        }
                        None => {
                            pending.push(Pending {
                                contact: contact.clone(),
                                channel: *channel,
                                fingerprints: Vec::new(),
                                seen: std::collections::HashSet::new(),
                                delay,
                            });
                            pending.len() - 1
                        }
                    };
                    let entry = &mut pending[index];
                    if entry.seen.insert(alert.fingerprint.as_str()) {
                        entry.fingerprints.push(alert.fingerprint.clone());
                    }
                }
                if !route.continue_matching {
                    break;
                }
            }
        }
        let mut all: Vec<&String> = notification.alerts.iter().map(|a| &a.fingerprint).collect();
        all.sort_unstable();
        all.dedup();
        let any_firing = notification.alerts.iter().any(|a| a.status == Status::Firing);
        pending
            .into_iter()
            .map(|p| {
                let delayed = !p.delay.is_zero();
                // Only firing news waits: a resolution goes out at once (to
                // those who were told it fired).
                let due_at = if delayed && any_firing {
                    received_at + chrono::Duration::from_std(p.delay).unwrap_or_default()
                } else {
                    received_at
                };
                let covers_all = p.fingerprints.len() == all.len();
                NewDelivery {
                    contact: p.contact,
                    channel: p.channel.as_str().to_string(),
                    due_at,
                    delayed,
                    fingerprints: (!covers_all).then_some(p.fingerprints),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::parse;
    use crate::config::yaml::{from_value, parse_value};

    fn routing(yaml: &str) -> Routing {
        let config: Config = from_value(parse_value(yaml).unwrap(), "bridge").unwrap();
        Routing::new(&config)
    }

    fn notification() -> Notification {
        parse(
            br#"{"receiver":"team\\.ops","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"Disk","severity":"critical"},"fingerprint":"c"},
            {"status":"firing","labels":{"alertname":"Disk","severity":"warning"},"fingerprint":"w"}]}"#,
            Utc::now(),
        )
        .unwrap()
    }

    fn summary(deliveries: &[NewDelivery]) -> Vec<String> {
        deliveries
            .iter()
            .map(|d| {
                let fingerprints = d.fingerprints.as_ref().map(|f| f.join("+")).unwrap_or_else(|| "all".into());
                format!("{}/{}:{}", d.contact, d.channel, fingerprints)
            })
            .collect()
    }

    const PEOPLE: &str = "contacts:
  alice: {sms: '+1', email: a@x}
  bob: {email: b@x}
  carol: {log: carol}
groups: {oncall: [alice, bob]}
";

    #[test]
    fn first_match_wins_per_alert() {
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - matchers: ['severity=~\"critical|page\"']
    contacts: [alice]
    channels: [sms]
  - contacts: [carol]
"
        ));
        let deliveries = routing.route(&notification(), Utc::now());
        assert_eq!(summary(&deliveries), ["alice/sms:c", "carol/log:w"]);
    }

    #[test]
    fn continue_keeps_walking_and_contacts_are_told_once() {
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - matchers: ['severity=\"critical\"']
    groups: [oncall]
    continue: true
  - receivers: [team.ops]
    contacts: [bob, carol]
"
        ));
        let deliveries = routing.route(&notification(), Utc::now());
        assert_eq!(summary(&deliveries), ["alice/email:c", "alice/sms:c", "bob/email:all", "carol/log:all"]);
    }

    #[test]
    fn receivers_filter_on_the_unescaped_name() {
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - receivers: [other]
    contacts: [alice]
  - receivers: [team.ops]
    contacts: [carol]
"
        ));
        assert_eq!(summary(&routing.route(&notification(), Utc::now())), ["carol/log:all"]);
    }

    #[test]
    fn unmatched_alerts_reach_nobody() {
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - matchers: ['severity=\"page\"']
    contacts: [alice]
"
        ));
        assert!(routing.route(&notification(), Utc::now()).is_empty());
    }

    #[test]
    fn delay_postpones_firing_news_and_the_shortest_delay_wins() {
        let now = Utc::now();
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - contacts: [carol]
    delay: 10m
    continue: true
  - matchers: ['severity=\"warning\"']
    contacts: [carol, bob]
    delay: 5m
"
        ));
        let deliveries = routing.route(&notification(), now);
        assert_eq!(deliveries[0].due_at, now + chrono::Duration::minutes(5));
        assert!(deliveries[0].delayed);
        let mut resolved = notification();
        for alert in &mut resolved.alerts {
            alert.status = Status::Resolved;
        }
        let deliveries = routing.route(&resolved, now);
        assert_eq!(deliveries[0].due_at, now, "resolutions are not delayed");
        assert!(deliveries[0].delayed, "but are checked against what was told");
    }
}
