//! The figures of a report: per check from the checks' hourly roll-ups,
//! incidents and last probe; per contact from the bridge's history.

use crate::bridge::report::{CheckLine, DeliveryCounts, Desk, ExpiryLine, IncidentLine, Period, Report, ReportConfig};
use crate::bridge::store::StoreError;
use crate::checks::Checks;
use crate::checks::rollup::{Period as Bucket, Rollup};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Most incidents listed per check.
const INCIDENTS_PER_CHECK: u32 = 100;
/// Checks listed as the slowest.
const SLOWEST: usize = 5;
/// Certificates and domains expiring within this are listed.
const EXPIRY_HORIZON: chrono::Duration = chrono::Duration::days(30);
/// The last probe's families that carry an expiry (Unix seconds).
const EXPIRY_FAMILIES: [(&str, &str); 2] =
    [("probe_ssl_earliest_cert_expiry", "certificate"), ("probe_domain_expiration_timestamp_seconds", "domain")];

/// What is the same for every contact of one report and period.
#[derive(Debug, Clone, Default)]
pub(super) struct Sections {
    checks: Vec<CheckLine>,
    incidents: Vec<IncidentLine>,
    expiring: Vec<ExpiryLine>,
    runs: u64,
    successes: u64,
}

/// `99.95%`, or `no data`.
fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "no data".into(), |ratio| format!("{:.2}%", ratio * 100.0))
}

/// `123 ms`, `1.25 s`, or `no data`.
fn seconds_text(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) if seconds < 1.0 => format!("{:.0} ms", seconds * 1000.0),
        Some(seconds) => format!("{seconds:.2} s"),
        None => "no data".into(),
    }
}

/// Trend of uptime (compared as shown, to two decimals): name and mark.
fn trend(current: Option<f64>, previous: Option<f64>) -> (&'static str, &'static str) {
    match (current, previous) {
        (Some(current), Some(previous)) => {
            let (current, previous) = ((current * 10_000.0).round(), (previous * 10_000.0).round());
            if current > previous {
                ("up", "↑")
            } else if current < previous {
                ("down", "↓")
            } else {
                ("same", "=")
            }
        }
        _ => ("", ""),
    }
}

fn zone(config: &ReportConfig) -> Tz {
    config.zone().unwrap_or(chrono_tz::UTC)
}

/// The certificates and domains a probe's families say expire before `now + 30d`.
pub(super) fn expiring(
    check: &str,
    registry: &crate::probe::metrics::Registry,
    now: DateTime<Utc>,
    zone: Tz,
) -> Vec<ExpiryLine> {
    EXPIRY_FAMILIES
        .iter()
        .filter_map(|(family, what)| {
            let seconds = registry.get(family, &[]).filter(|seconds| seconds.is_finite() && *seconds > 0.0)?;
            let expires_at = DateTime::<Utc>::from_timestamp(seconds as i64, 0)?;
            (expires_at - now <= EXPIRY_HORIZON).then(|| ExpiryLine {
                check: check.to_string(),
                what: (*what).to_string(),
                expires_at,
                expires_text: expires_at.with_timezone(&zone).format("%a %-d %b %Y").to_string(),
                days_left: (expires_at - now).num_days(),
            })
        })
        .collect()
}

/// Gathers the checks' part of a report.
pub(super) async fn checks(
    checks: Option<&Checks>,
    config: &ReportConfig,
    period: &Period,
    now: DateTime<Utc>,
) -> Result<Sections, StoreError> {
    let mut sections = Sections::default();
    let Some(checks) = checks else {
        return Ok(sections);
    };
    let zone = zone(config);
    let mut views = checks.views();
    views.sort_by(|(_, a), (_, b)| a.check.name.cmp(&b.check.name));
    let store = checks.store();
    let period_end = period.to.min(now);
    for (id, view) in views {
        let check = &view.check;
        if !config.selects(&check.name, &check.labels) {
            continue;
        }
        let current: Rollup = store.rollup(id, Bucket::Hour, period.from, period.to).await?;
        let previous: Rollup = store.rollup(id, Bucket::Hour, period.previous_from, period.from).await?;
        let mut incidents = store.incidents(id, period.from, period.to, INCIDENTS_PER_CHECK).await?;
        incidents.reverse();
        let expiring = match &view.last {
            Some(last) => expiring(&check.name, &last.registry, now, zone),
            None => Vec::new(),
        };
        let uptime = current.uptime();
        let problem = uptime.is_some_and(|uptime| uptime < 1.0) || !incidents.is_empty() || !expiring.is_empty();
        if config.only_problems && !problem {
            continue;
        }
        let (trend_name, trend_mark) = trend(uptime, previous.uptime());
        let p95 = current.p95_seconds();
        sections.runs += current.runs;
        sections.successes += current.successes;
        sections.checks.push(CheckLine {
            name: check.name.clone(),
            uptime: uptime.map(|uptime| uptime * 100.0),
            uptime_text: percent(uptime),
            previous: previous.uptime().map(|uptime| uptime * 100.0),
            previous_text: percent(previous.uptime()),
            trend: trend_name.into(),
            trend_mark: trend_mark.into(),
            runs: current.runs,
            incidents: incidents.len() as u64,
            p95_seconds: p95,
            p95_text: seconds_text(p95),
        });
        for incident in incidents {
            let end = incident.ended_at.unwrap_or(period_end);
            let seconds = (end - incident.started_at).num_seconds().max(0);
            sections.incidents.push(IncidentLine {
                check: check.name.clone(),
                started_at: incident.started_at,
                started_text: incident.started_at.with_timezone(&zone).format("%a %-d %b %H:%M").to_string(),
                duration_text: crate::bridge::render::human_duration(seconds as f64),
                duration_seconds: seconds,
                ongoing: incident.ended_at.is_none_or(|ended| ended > period.to),
                reason: format!("{}: {}", incident.phase, incident.reason),
            });
        }
        sections.expiring.extend(expiring);
    }
    sections.incidents.sort_by_key(|incident| incident.started_at);
    sections.expiring.sort_by_key(|expiry| expiry.expires_at);
    Ok(sections)
}

/// The report for `contact`: the shared sections plus what was delivered to them.
pub(super) async fn report(
    desk: &Desk,
    name: &str,
    config: &ReportConfig,
    period: &Period,
    sections: &Sections,
    contact: &str,
    late: bool,
) -> Result<Report, StoreError> {
    let deliveries: DeliveryCounts = desk.delivery_counts(contact, period.from, period.to).await?;
    let zone = zone(config);
    let last_day = period.to - chrono::Duration::seconds(1);
    let day = |time: DateTime<Utc>| time.with_timezone(&zone).format("%a %-d %b %Y").to_string();
    let range_text = if config.every == crate::bridge::report::Every::Daily {
        day(period.from)
    } else {
        format!("{} – {}", day(period.from), day(last_day))
    };
    let mut slowest: Vec<CheckLine> =
        sections.checks.iter().filter(|line| line.p95_seconds.is_some()).cloned().collect();
    slowest.sort_by(|a, b| b.p95_seconds.partial_cmp(&a.p95_seconds).unwrap_or(std::cmp::Ordering::Equal));
    slowest.truncate(SLOWEST);
    let overall = (sections.runs > 0).then(|| sections.successes as f64 / sections.runs as f64);
    Ok(Report {
        name: name.to_string(),
        every: config.every.as_str().to_string(),
        period: period.label.clone(),
        from: period.from,
        to: period.to,
        range_text,
        timezone: config.timezone.clone(),
        late,
        only_problems: config.only_problems,
        uptime_text: percent(overall),
        checks: sections.checks.clone(),
        incidents: sections.incidents.clone(),
        slowest,
        expiring: sections.expiring.clone(),
        deliveries,
    })
}

/// True when an `only_problems` report has nothing to say.
pub(super) fn is_clean(report: &Report) -> bool {
    report.checks.is_empty() && report.incidents.is_empty() && report.expiring.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_within_thirty_days_is_listed_with_days_left() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T08:00:00Z").unwrap().with_timezone(&Utc);
        let mut registry = crate::probe::metrics::Registry::new();
        registry.set("probe_ssl_earliest_cert_expiry", "", (now + chrono::Duration::days(12)).timestamp() as f64);
        registry.set(
            "probe_domain_expiration_timestamp_seconds",
            "",
            (now + chrono::Duration::days(90)).timestamp() as f64,
        );
        let found = expiring("web", &registry, now, chrono_tz::Europe::Berlin);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].what.as_str(), found[0].days_left), ("certificate", 12));
        assert_eq!(found[0].expires_text, "Sat 19 Dec 2026");
    }

    #[test]
    fn figures_are_formatted_as_people_read_them() {
        assert_eq!(percent(Some(0.99954)), "99.95%");
        assert_eq!(percent(None), "no data");
        assert_eq!(seconds_text(Some(0.1234)), "123 ms");
        assert_eq!(seconds_text(Some(1.254)), "1.25 s");
        assert_eq!(trend(Some(0.99), Some(1.0)), ("down", "↓"));
        assert_eq!(trend(Some(1.0), Some(1.0)), ("same", "="));
        assert_eq!(trend(Some(1.0), None), ("", ""));
    }
}
