//! What operators add to the checks' history: incident notes (a title and
//! Markdown updates, each with a status) and planned maintenance windows,
//! stored in the checks store beside the results they explain.
//!
//! Incidents themselves still come only from state changes; a note never
//! opens or closes one. Planned windows are applied by the scheduler exactly
//! like configured one-off windows (see `run_once`).

use super::state::Incident;
use super::store::{CheckStore, from_ms, read_incident, to_ms};
use crate::bridge::store::StoreError;
use crate::bridge::store::sqlite::{read, write};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use std::collections::HashMap;

/// The longest incident or maintenance title, in characters.
pub const TITLE_MAX: usize = 200;
/// The longest update, in bytes of Markdown.
pub const BODY_MAX: usize = 20_000;
/// The longest planned window.
pub const PLANNED_MAX: chrono::Duration = chrono::Duration::days(31);

/// Where an incident stands, as an operator's update says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// Every status, in the order an incident usually goes through them.
    pub const ALL: [UpdateStatus; 4] =
        [UpdateStatus::Investigating, UpdateStatus::Identified, UpdateStatus::Monitoring, UpdateStatus::Resolved];

    /// The stored and shown word.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Investigating => "investigating",
            UpdateStatus::Identified => "identified",
            UpdateStatus::Monitoring => "monitoring",
            UpdateStatus::Resolved => "resolved",
        }
    }

    /// Parses a status word.
    pub fn parse(text: &str) -> Option<UpdateStatus> {
        UpdateStatus::ALL.into_iter().find(|status| status.as_str() == text)
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

impl CheckStore {
    /// Incident `id` with its check's store id.
    pub async fn incident_by_id(&self, id: i64) -> Result<Option<(i64, Incident)>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, started_at, ended_at, phase, reason, notified_at, check_id FROM incidents WHERE id = ?1",
            )?;
            Ok(statement.query_row(params![id], |row| Ok((row.get(6)?, read_incident(row)?))).optional()?)
        })
        .await
    }

    /// The notes of incidents `ids` (incidents without a note are left out).
    pub async fn notes(&self, ids: Vec<i64>) -> Result<HashMap<i64, Note>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        read(&self.path, &self.readers, move |connection| {
            let mut notes: HashMap<i64, Note> = HashMap::new();
            let mut title = connection.prepare_cached("SELECT title FROM incident_notes WHERE incident_id = ?1")?;
            let mut updates = connection.prepare_cached(
                "SELECT at, status, body, author FROM incident_updates WHERE incident_id = ?1 ORDER BY at, id",
            )?;
            for id in ids {
                let found: Option<String> = title.query_row(params![id], |row| row.get(0)).optional()?;
                let list = updates
                    .query_map(params![id], |row| {
                        let status: String = row.get(1)?;
                        Ok(Update {
                            at: from_ms(row.get(0)?),
                            status: UpdateStatus::parse(&status).unwrap_or(UpdateStatus::Investigating),
                            body: row.get(2)?,
                            author: row.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                if found.is_some() || !list.is_empty() {
                    notes.insert(id, Note { title: found, updates: list });
                }
            }
            Ok(notes)
        })
        .await
    }

    /// Sets (or, with `None`, clears) incident `id`'s title and, when given,
    /// appends an update, in one transaction.
    pub async fn annotate(
        &self,
        id: i64,
        title: Option<String>,
        update: Option<Update>,
    ) -> Result<(), AnnotationError> {
        let found = write(&self.writer, move |connection| {
            let exists: Option<i64> = connection
                .query_row("SELECT id FROM incidents WHERE id = ?1", params![id], |row| row.get(0))
                .optional()?;
            if exists.is_none() {
                return Ok(false);
            }
            match title {
                Some(title) => connection.execute(
                    "INSERT INTO incident_notes (incident_id, title) VALUES (?1, ?2) \
                     ON CONFLICT (incident_id) DO UPDATE SET title = excluded.title",
                    params![id, title],
                )?,
                None => connection.execute("DELETE FROM incident_notes WHERE incident_id = ?1", params![id])?,
            };
            if let Some(update) = update {
                connection.execute(
                    "INSERT INTO incident_updates (incident_id, at, status, body, author) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, to_ms(update.at), update.status.as_str(), update.body, update.author],
                )?;
            }
            Ok(true)
        })
        .await?;
        if found { Ok(()) } else { Err(AnnotationError::NotFound("incident")) }
    }

    /// Planned windows that end after `after`, by start.
    pub async fn planned(&self, after: DateTime<Utc>) -> Result<Vec<Planned>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, title, start, end, checks, created_by FROM planned_maintenance WHERE end > ?1 ORDER BY start, id",
            )?;
            let rows = statement
                .query_map(params![to_ms(after)], |row| {
                    let checks: String = row.get(4)?;
                    Ok(Planned {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        start: from_ms(row.get(2)?),
                        end: from_ms(row.get(3)?),
                        checks: serde_json::from_str(&checks).unwrap_or_default(),
                        created_by: row.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Stores a planned window; returns its id.
    pub async fn add_planned(&self, planned: Planned, now: DateTime<Utc>) -> Result<i64, StoreError> {
        write(&self.writer, move |connection| {
            connection.execute(
                "INSERT INTO planned_maintenance (title, start, end, checks, created_by, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    planned.title,
                    to_ms(planned.start),
                    to_ms(planned.end),
                    serde_json::to_string(&planned.checks).unwrap_or_else(|_| "[]".into()),
                    planned.created_by,
                    to_ms(now)
                ],
            )?;
            Ok(connection.last_insert_rowid())
        })
        .await
    }

    /// Ends planned window `id` at `at` (a window not started yet is
    /// cancelled: it ends where it starts). False when there is none open.
    pub async fn end_planned(&self, id: i64, at: DateTime<Utc>) -> Result<bool, StoreError> {
        write(&self.writer, move |connection| {
            let changed = connection.execute(
                "UPDATE planned_maintenance SET end = MAX(start, ?2) WHERE id = ?1 AND end > ?2",
                params![id, to_ms(at)],
            )?;
            Ok(changed > 0)
        })
        .await
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
