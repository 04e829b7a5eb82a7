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
use super::payload::{AlertList, Status};
use super::store::NewDelivery;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
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
    ///
    /// Its alerts are read one at a time (a webhook's may be 100,000, in
    /// their stored form): once to match them, remembering only their
    /// places, and once more for their fingerprints only when some contact
    /// gets part of them.
    pub fn route<L: AlertList>(
        &self,
        notification: &L,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<NewDelivery>, L::Error> {
        struct Pending {
            contact: String,
            channel: ChannelKind,
            /// Places of the alerts routed here, ascending.
            alerts: Vec<usize>,
            delay: Duration,
        }
        let receiver = &notification.head().receiver;
        let mut pending: Vec<Pending> = Vec::new();
        let mut any_firing = false;
        let mut place = 0;
        notification.each_alert(&mut |alert| {
            any_firing |= alert.status == Status::Firing;
            for resolved in &self.routes {
                let route = &resolved.route;
                if !route.receivers.is_empty() && !route.receivers.contains(receiver) {
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
                                alerts: Vec::new(),
                                delay,
                            });
                            pending.len() - 1
                        }
                    };
                    let entry = &mut pending[index];
                    if entry.alerts.last() != Some(&place) {
                        entry.alerts.push(place);
                    }
                }
                if !route.continue_matching {
                    break;
                }
            }
            place += 1;
        })?;
        let subsets = self.subsets(notification, &pending.iter().map(|p| p.alerts.as_slice()).collect::<Vec<_>>())?;
        Ok(pending
            .into_iter()
            .zip(subsets)
            .map(|(p, fingerprints)| {
                let delayed = !p.delay.is_zero();
                // Only firing news waits: a resolution goes out at once (to
                // those who were told it fired).
                let due_at = if delayed && any_firing {
                    received_at + chrono::Duration::from_std(p.delay).unwrap_or_default()
                } else {
                    received_at
                };
                NewDelivery {
                    contact: p.contact,
                    channel: p.channel.as_str().to_string(),
                    due_at,
                    delayed,
                    fingerprints,
                }
            })
            .collect())
    }

    /// For each list of alert places: the distinct fingerprints at those
    /// places, in order, or `None` when they are every fingerprint of the
    /// notification.
    fn subsets<L: AlertList>(
        &self,
        notification: &L,
        places: &[&[usize]],
    ) -> Result<Vec<Option<Vec<String>>>, L::Error> {
        let count = notification.alert_count();
        let mut subsets: Vec<Option<Vec<String>>> = vec![None; places.len()];
        if places.iter().all(|places| places.len() >= count) {
            return Ok(subsets);
        }
        let mut all = HashSet::new();
        // Per list: the fingerprints found, those seen, and the next place.
        let mut found: Vec<(Vec<String>, HashSet<String>, usize)> =
            places.iter().map(|_| (Vec::new(), HashSet::new(), 0)).collect();
        let mut place = 0;
        notification.each_alert(&mut |alert| {
            if !all.contains(&alert.fingerprint) {
                all.insert(alert.fingerprint.clone());
            }
            for (list, (fingerprints, seen, next)) in places.iter().zip(&mut found) {
                if list.get(*next) == Some(&place) {
                    *next += 1;
                    if seen.insert(alert.fingerprint.clone()) {
                        fingerprints.push(alert.fingerprint.clone());
                    }
                }
            }
            place += 1;
        })?;
        for (subset, (fingerprints, _, _)) in subsets.iter_mut().zip(found) {
            if fingerprints.len() != all.len() {
                *subset = Some(fingerprints);
            }
        }
        Ok(subsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::{Encoded, Notification, parse};
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

    /// Routes [`notification`] as parsed and in its stored form, asserts
    /// both give the same deliveries, and returns them.
    fn route_both_forms(routing: &Routing) -> Vec<NewDelivery> {
        let now = Utc::now();
        let deliveries = routing.route(&notification(), now).unwrap();
        let stored = Encoded::new(notification()).unwrap();
        assert_eq!(routing.route(&stored, now).unwrap(), deliveries, "the stored form routes the same");
        deliveries
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
        assert_eq!(summary(&route_both_forms(&routing)), ["alice/sms:c", "carol/log:w"]);
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
        assert_eq!(
            summary(&route_both_forms(&routing)),
            ["alice/email:c", "alice/sms:c", "bob/email:all", "carol/log:all"]
        );
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
        assert_eq!(summary(&routing.route(&notification(), Utc::now()).unwrap()), ["carol/log:all"]);
    }

    #[test]
    fn unmatched_alerts_reach_nobody() {
        let routing = routing(&format!(
            "{PEOPLE}routes:
  - matchers: ['severity=\"page\"']
    contacts: [alice]
"
        ));
        assert!(routing.route(&notification(), Utc::now()).unwrap().is_empty());
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
        let deliveries = routing.route(&notification(), now).unwrap();
        assert_eq!(deliveries[0].due_at, now + chrono::Duration::minutes(5));
        assert!(deliveries[0].delayed);
        let mut resolved = notification();
        for alert in &mut resolved.alerts {
            alert.status = Status::Resolved;
        }
        let deliveries = routing.route(&resolved, now).unwrap();
        assert_eq!(deliveries[0].due_at, now, "resolutions are not delayed");
        assert!(deliveries[0].delayed, "but are checked against what was told");
    }
}
