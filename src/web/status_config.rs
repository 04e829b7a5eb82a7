//! `status_pages:` — which checks a status page shows, grouped, and whether
//! it needs a login.

use crate::bridge::matcher::Matchers;
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One status page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPage {
    /// The page's URL name: `/status/<slug>`.
    pub slug: String,
    /// Heading and window title.
    pub title: String,
    /// A sentence under the title.
    #[serde(default)]
    pub description: String,
    /// Served without a login (with its badges, `summary.json` and feed).
    #[serde(default)]
    pub public: bool,
    /// An SVG or PNG file shown next to the title, read at load and served
    /// from `/status/<slug>/logo` (nothing is fetched from elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_file: Option<String>,
    /// Links in the page footer.
    #[serde(default)]
    pub footer_links: Vec<Link>,
    /// The groups of checks, in order.
    pub groups: Vec<Group>,
}

/// A footer link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Text.
    pub title: String,
    /// `https://…`, `http://…`, `mailto:…` or a path on this server.
    pub url: String,
}

/// A group of checks: named ones, and those whose labels match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Heading.
    pub name: String,
    /// Checks by name, in this order.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Label matchers (`team="web"`, `env=~"prod|staging"`); matching checks
    /// follow the named ones, by name.
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub selector: Matchers,
}

impl Group {
    /// The member check names, given every check's name and labels.
    pub fn members<'a>(&self, checks: &'a [(String, BTreeMap<String, String>)]) -> Vec<&'a str> {
        let mut members: Vec<&str> = Vec::new();
        for name in &self.checks {
            if let Some((found, _)) = checks.iter().find(|(check, _)| check == name) {
                members.push(found);
            }
        }
        if !self.selector.is_empty() {
            let mut matched: Vec<&str> = checks
                .iter()
                .filter(|(name, labels)| {
                    let mut labels = labels.clone();
                    labels.insert("check".into(), name.clone());
                    self.selector.matches(&labels)
                })
                .map(|(name, _)| name.as_str())
                .filter(|name| !members.contains(name))
                .collect();
            matched.sort_unstable();
            members.extend(matched);
        }
        members
    }
}

/// Decodes `status_pages:` and records every problem; group check names
/// are checked against `check_names`, the configured checks (`None` when
/// they did not load: that is reported where checks load).
pub fn from_yaml(
    value: Option<crate::config::yaml::Value>,
    check_names: Option<&HashSet<&str>>,
    problems: &mut Problems,
) -> Vec<StatusPage> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Vec::new();
    };
    match crate::config::yaml::from_value::<Vec<StatusPage>>(value, "status_pages") {
        Ok(pages) => {
            validate(&pages, "status_pages", check_names, problems);
            pages
        }
        Err(problem) => {
            problems.0.push(problem);
            Vec::new()
        }
    }
}

/// True for a slug made of lowercase letters, digits and inner dashes.
fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 64
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

/// Records every problem of `pages` below `path`; `check_names` are the
/// configured checks (a group may not name one that does not exist).
pub fn validate(pages: &[StatusPage], path: &str, check_names: Option<&HashSet<&str>>, problems: &mut Problems) {
    let mut slugs = HashSet::new();
    for (index, page) in pages.iter().enumerate() {
        let at = format!("{path}[{index}]");
        if !valid_slug(&page.slug) {
            problems.push(format!("{at}.slug"), "must be lowercase letters, digits and dashes (at most 64)");
        } else if !slugs.insert(page.slug.as_str()) {
            problems.push(format!("{at}.slug"), format!("{:?} is used by another status page", page.slug));
        }
        if page.title.trim().is_empty() {
            problems.push(format!("{at}.title"), "must not be empty");
        }
        if let Some(logo) = &page.logo_file {
            let lower = logo.to_ascii_lowercase();
            if !(lower.ends_with(".svg") || lower.ends_with(".png")) {
                problems.push(format!("{at}.logo_file"), "must be an .svg or .png file");
            } else if let Err(err) = std::fs::metadata(logo) {
                problems.push(format!("{at}.logo_file"), format!("cannot read {logo:?}: {err}"));
            }
        }
        for (link_index, link) in page.footer_links.iter().enumerate() {
            let url = &link.url;
            let allowed = ["https://", "http://", "mailto:", "/"].iter().any(|prefix| url.starts_with(prefix));
            if !allowed || url.starts_with("//") {
                problems.push(
                    format!("{at}.footer_links[{link_index}].url"),
                    "must start with https://, http://, mailto: or / (a path here)",
                );
            }
            if link.title.trim().is_empty() {
                problems.push(format!("{at}.footer_links[{link_index}].title"), "must not be empty");
            }
        }
        if page.groups.is_empty() {
            problems.push(format!("{at}.groups"), "a status page needs at least one group");
        }
        for (group_index, group) in page.groups.iter().enumerate() {
            let group_at = format!("{at}.groups[{group_index}]");
            if group.name.trim().is_empty() {
                problems.push(format!("{group_at}.name"), "must not be empty");
            }
            if group.checks.is_empty() && group.selector.is_empty() {
                problems.push(group_at.clone(), "set checks, selector or both");
            }
            for (check_index, name) in group.checks.iter().enumerate() {
                if check_names.is_some_and(|names| !names.contains(name.as_str())) {
                    problems.push(format!("{group_at}.checks[{check_index}]"), format!("no check is called {name:?}"));
                }
            }
        }
    }
}

/// The overall state of a page, Statuspage's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// Every check is up.
    Operational,
    /// Every check is up, but some just failed (not yet down).
    Degraded,
    /// Some checks are down.
    PartialOutage,
    /// Every check that runs is down.
    MajorOutage,
    /// Nothing is down and some checks are in maintenance.
    Maintenance,
    /// No check has a result yet.
    Unknown,
}

impl Overall {
    /// The banner text.
    pub fn text(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Degraded => "Degraded performance",
            Overall::PartialOutage => "Partial outage",
            Overall::MajorOutage => "Major outage",
            Overall::Maintenance => "Under maintenance",
            Overall::Unknown => "Status unknown",
        }
    }

    /// The class and JSON name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The overall state from each check's (state, failing now) pair, where
    /// state is `up`, `down`, `maintenance`, `paused` or `unknown`. Paused
    /// checks do not count.
    pub fn of<'a>(checks: impl IntoIterator<Item = (&'a str, bool)>) -> Overall {
        let (mut counted, mut down, mut up, mut maintenance, mut failing) = (0, 0, 0, 0, 0);
        for (state, failing_now) in checks {
            match state {
                "paused" => continue,
                "down" => down += 1,
                "up" => {
                    up += 1;
                    if failing_now {
                        failing += 1;
                    }
                }
                "maintenance" => maintenance += 1,
                _ => {}
            }
            counted += 1;
        }
        match () {
            () if down > 0 && down + maintenance >= counted && up == 0 => Overall::MajorOutage,
            () if down > 0 => Overall::PartialOutage,
            () if maintenance > 0 => Overall::Maintenance,
            () if failing > 0 => Overall::Degraded,
            () if up > 0 => Overall::Operational,
            () => Overall::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(yaml: &str) -> Vec<StatusPage> {
        let value = crate::config::yaml::parse_value(yaml).unwrap();
        crate::config::yaml::from_value(value, "status_pages").unwrap()
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let pages = page(
            r#"
- slug: Bad Slug
  title: ""
  logo_file: /nope/logo.gif
  footer_links: [{title: Docs, url: "javascript:alert(1)"}]
  groups:
    - {name: Web, checks: [www, ghost]}
    - {name: Empty}
- slug: ok
  title: Fine
  groups: []
- slug: ok
  title: Again
  groups: [{name: A, selector: ['team="web"']}]
"#,
        );
        let mut problems = Problems::default();
        validate(&pages, "status_pages", Some(&HashSet::from(["www"])), &mut problems);
        let found: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        for expected in [
            "status_pages[0].slug: must be lowercase",
            "status_pages[0].title: must not be empty",
            "status_pages[0].logo_file: must be an .svg or .png file",
            "status_pages[0].footer_links[0].url: must start with",
            "status_pages[0].groups[0].checks[1]: no check is called \"ghost\"",
            "status_pages[0].groups[1]: set checks, selector or both",
            "status_pages[1].groups: a status page needs at least one group",
            "status_pages[2].slug: \"ok\" is used by another status page",
        ] {
            assert!(found.iter().any(|problem| problem.starts_with(expected)), "{expected} not in {found:#?}");
        }
        assert_eq!(found.len(), 8, "{found:#?}");
    }

    #[test]
    fn groups_take_named_checks_then_matching_ones() {
        let pages = page(r#"[{slug: s, title: S, groups: [{name: G, checks: [db], selector: ['team="web"']}]}]"#);
        let labels = |team: &str| BTreeMap::from([("team".to_string(), team.to_string())]);
        let checks = vec![
            ("www".to_string(), labels("web")),
            ("api".to_string(), labels("web")),
            ("db".to_string(), labels("data")),
            ("mail".to_string(), labels("ops")),
        ];
        assert_eq!(pages[0].groups[0].members(&checks), vec!["db", "api", "www"]);
    }

    #[test]
    fn the_banner_follows_the_worst_state() {
        assert_eq!(Overall::of([("up", false), ("up", false)]), Overall::Operational);
        assert_eq!(Overall::of([("up", true), ("up", false)]), Overall::Degraded);
        assert_eq!(Overall::of([("up", false), ("down", false)]), Overall::PartialOutage);
        assert_eq!(Overall::of([("down", false), ("down", false), ("paused", false)]), Overall::MajorOutage);
        assert_eq!(Overall::of([("up", false), ("maintenance", false)]), Overall::Maintenance);
        assert_eq!(Overall::of([("unknown", false)]), Overall::Unknown);
        assert_eq!(Overall::of([]), Overall::Unknown);
    }
}
