//! What operators add to the checks' history: incident notes (a title and
//! Markdown updates, each with a status) and planned maintenance windows,
//! stored in the checks store beside the results they explain.
//!
//! Incidents themselves still come only from state changes; a note never
//! opens or closes one. Planned windows are applied by the scheduler exactly
//! like configured one-off windows (see `run_once`).

use super::state::Incident;
use super::store::{CheckStore, INCIDENT_COLUMNS, read_incident};
use crate::storage::{SqlValue, StoreError, column, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// The longest incident or maintenance title, in characters.
pub const TITLE_MAX: usize = 200;
/// The longest update, in bytes of Markdown.
pub const BODY_MAX: usize = 20_000;
/// The longest planned window.
pub const PLANNED_MAX: chrono::Duration = chrono::Duration::days(31);

/// Where an incident stands, as an operator's update says; the variants
/// are in the order an incident usually goes through them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString, strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum UpdateStatus {
    /// Looking for the cause.
    Investigating,
    /// The cause is known.
    Identified,
    /// A fix is in; watching.
    Monitoring,
    /// Over.
    Resolved,
}

impl UpdateStatus {
    /// The stored and shown word.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One update of an incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Update {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Its status.
    pub status: UpdateStatus,
    /// Markdown.
    pub body: String,
    /// The web-config user who wrote it (none when the UI is open).
    pub author: Option<String>,
}

/// An incident's note: the operator's title and updates, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Note {
    /// Replaces the derived title when set.
    pub title: Option<String>,
    /// Updates, oldest first.
    pub updates: Vec<Update>,
}

impl Note {
    /// The incident's status: the latest update's, or else derived from
    /// whether it is still open.
    pub fn status(&self, incident: &Incident) -> UpdateStatus {
        match self.updates.last() {
            Some(update) => update.status,
            None if incident.ended_at.is_some() => UpdateStatus::Resolved,
            None => UpdateStatus::Investigating,
        }
    }
}

/// A maintenance window opened from the UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    /// Store id.
    pub id: i64,
    /// What is being done.
    pub title: String,
    /// Start.
    pub start: DateTime<Utc>,
    /// End, exclusive.
    pub end: DateTime<Utc>,
    /// The checks it covers; empty is every check.
    pub checks: Vec<String>,
    /// Who opened it.
    pub created_by: Option<String>,
}

impl Planned {
    /// Whether check `name` is in this window at `at`.
    pub fn covers(&self, name: &str, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end && (self.checks.is_empty() || self.checks.iter().any(|check| check == name))
    }
}

/// Why a note or window was refused; the text is shown to the operator.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    /// A field is out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// No such incident or window.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a title: trimmed, not empty, at most [`TITLE_MAX`] characters.
pub fn clean_title(title: &str) -> Result<String, AnnotationError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(AnnotationError::Invalid("the title must not be empty".into()));
    }
    if title.chars().count() > TITLE_MAX {
        return Err(AnnotationError::Invalid(format!("the title must be at most {TITLE_MAX} characters")));
    }
    Ok(title.to_string())
}

/// A planned window from a `planned_maintenance` row.
fn read_planned(row: &[SqlValue]) -> Planned {
    let get = |index: usize| column(row, index);
    Planned {
        id: get(0).int(),
        title: get(1).string(),
        start: from_ms(get(2).int()),
        end: from_ms(get(3).int()),
        checks: serde_json::from_str(&get(4).string()).unwrap_or_default(),
        created_by: get(5).opt_string(),
    }
}

impl CheckStore {
    /// Incident `id` with its check's store id.
    pub async fn incident_by_id(&self, id: i64) -> Result<Option<(i64, Incident)>, StoreError> {
        let rows = self
            .storage()
            .select(format!("SELECT {INCIDENT_COLUMNS}, check_id FROM incidents WHERE id = $1"), vec![id.into()])
            .await?;
        Ok(rows.first().map(|row| (column(row, 6).int(), read_incident(row))))
    }

    /// The notes of incidents `ids` (incidents without a note are left out).
    /// Two queries whatever the count, over the ids' range: notes are few
    /// (people write them), and a status page asks for fifty incidents'.
    pub async fn notes(&self, ids: Vec<i64>) -> Result<HashMap<i64, Note>, StoreError> {
        let (Some(first), Some(last)) = (ids.iter().min().copied(), ids.iter().max().copied()) else {
            return Ok(HashMap::new());
        };
        let wanted: std::collections::HashSet<i64> = ids.into_iter().collect();
        let range = || vec![first.into(), last.into()];
        let titles = self
            .storage()
            .select("SELECT incident_id, title FROM incident_notes WHERE incident_id BETWEEN $1 AND $2", range())
            .await?;
        let updates = self
            .storage()
            .select(
                "SELECT incident_id, at, status, body, author FROM incident_updates \
                 WHERE incident_id BETWEEN $1 AND $2 ORDER BY incident_id, at, id",
                range(),
            )
            .await?;
        let mut notes: HashMap<i64, Note> = HashMap::new();
        for row in &titles {
            let get = |index: usize| column(row, index);
            if wanted.contains(&get(0).int()) {
                notes.entry(get(0).int()).or_default().title = get(1).opt_string();
            }
        }
        for row in &updates {
            let get = |index: usize| column(row, index);
            if wanted.contains(&get(0).int()) {
                notes.entry(get(0).int()).or_default().updates.push(Update {
                    at: from_ms(get(1).int()),
                    status: get(2).string().parse().unwrap_or(UpdateStatus::Investigating),
                    body: get(3).string(),
                    author: get(4).opt_string(),
                });
            }
        }
        Ok(notes)
    }

    /// Sets (or, with `None`, clears) incident `id`'s title and, when given,
    /// appends an update, in one transaction. Incidents are never deleted
    /// while notes are written (expiry only drops results), so checking the
    /// incident first is enough.
    pub async fn annotate(
        &self,
        id: i64,
        title: Option<String>,
        update: Option<Update>,
    ) -> Result<(), AnnotationError> {
        let exists = self.storage().select("SELECT id FROM incidents WHERE id = $1", vec![id.into()]).await?;
        if exists.is_empty() {
            return Err(AnnotationError::NotFound("incident"));
        }
        let mut statements = vec![match title {
            Some(title) => (
                "INSERT INTO incident_notes (incident_id, title) VALUES ($1, $2) \
                 ON CONFLICT (incident_id) DO UPDATE SET title = excluded.title"
                    .into(),
                vec![id.into(), title.into()],
            ),
            None => ("DELETE FROM incident_notes WHERE incident_id = $1".into(), vec![id.into()]),
        }];
        if let Some(update) = update {
            statements.push((
                "INSERT INTO incident_updates (incident_id, at, status, body, author) VALUES ($1, $2, $3, $4, $5)"
                    .into(),
                vec![
                    id.into(),
                    to_ms(update.at).into(),
                    update.status.as_str().into(),
                    update.body.into(),
                    update.author.into(),
                ],
            ));
        }
        self.storage().transaction(statements).await?;
        Ok(())
    }

    /// Planned windows that end after `after`, by start.
    pub async fn planned(&self, after: DateTime<Utc>) -> Result<Vec<Planned>, StoreError> {
        let rows = self
            .storage()
            .select(
                "SELECT id, title, starts_at, ends_at, checks, created_by FROM planned_maintenance \
                 WHERE ends_at > $1 ORDER BY starts_at, id",
                vec![to_ms(after).into()],
            )
            .await?;
        Ok(rows.iter().map(|row| read_planned(row)).collect())
    }

    /// Stores a planned window; returns its id.
    pub async fn add_planned(&self, planned: Planned, now: DateTime<Utc>) -> Result<i64, StoreError> {
        let done = self
            .storage()
            .transaction(vec![(
                "INSERT INTO planned_maintenance (title, starts_at, ends_at, checks, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
                    .into(),
                vec![
                    planned.title.into(),
                    to_ms(planned.start).into(),
                    to_ms(planned.end).into(),
                    serde_json::to_string(&planned.checks).unwrap_or_else(|_| "[]".into()).into(),
                    planned.created_by.into(),
                    to_ms(now).into(),
                ],
            )])
            .await?;
        done.first()
            .and_then(|done| done.rows.first())
            .and_then(|row| row.first())
            .and_then(SqlValue::opt_int)
            .ok_or_else(|| StoreError::Unavailable("the new window's id was not returned".into()))
    }

    /// Ends planned window `id` at `at` (a window not started yet is
    /// cancelled: it ends where it starts). False when there is none open.
    pub async fn end_planned(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = self
            .storage()
            .transaction(vec![(
                "UPDATE planned_maintenance SET ends_at = CASE WHEN starts_at > $2 THEN starts_at ELSE $2 END \
                 WHERE id = $1 AND ends_at > $2"
                    .into(),
                vec![id.into(), to_ms(at).into()],
            )])
            .await?;
        Ok(done.first().is_some_and(|done| done.changed > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn planned_windows_cover_their_checks_half_open() {
        let start = Utc.with_ymd_and_hms(2026, 12, 6, 22, 0, 0).unwrap();
        let mut planned = Planned {
            id: 1,
            title: "db upgrade".into(),
            start,
            end: start + chrono::Duration::hours(1),
            checks: vec!["db".into()],
            created_by: None,
        };
        assert!(planned.covers("db", start));
        assert!(!planned.covers("db", planned.end));
        assert!(!planned.covers("www", start));
        planned.checks.clear();
        assert!(planned.covers("www", start), "an empty list covers every check");
    }

    #[test]
    fn a_note_status_is_its_latest_update_or_derived() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 22, 0, 0).unwrap();
        let mut incident = Incident {
            id: Some(1),
            started_at: at,
            ended_at: None,
            phase: "connect".into(),
            reason: "refused".into(),
            notified_at: None,
        };
        let mut note = Note::default();
        assert_eq!(note.status(&incident), UpdateStatus::Investigating);
        incident.ended_at = Some(at);
        assert_eq!(note.status(&incident), UpdateStatus::Resolved);
        note.updates.push(Update { at, status: UpdateStatus::Monitoring, body: String::new(), author: None });
        assert_eq!(note.status(&incident), UpdateStatus::Monitoring);
        assert!(clean_title("  ").is_err() && clean_title(&"x".repeat(TITLE_MAX + 1)).is_err());
        assert_eq!(clean_title(" DB down ").unwrap(), "DB down");
    }
}
