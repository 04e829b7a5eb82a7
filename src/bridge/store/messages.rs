//! The searchable record of messages from the message API: a `messages` row
//! per message (its ID is the notification's), written by `ingest` in the
//! notification's transaction, and the search over them with each message's
//! outbox rows and delivery history.
//!
//! The SQL is shared by both backends through [`Store::select`].

use super::{HISTORY_COLUMNS, HistoryEntry, NewMessage, SqlParam, SqlValue, Store, StoreError, column, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// `|a|b|`: the stored form of a name list, searched with `|a|`.
pub(crate) fn joined(names: &[String]) -> String {
    format!("|{}|", names.join("|"))
}

fn split(text: &str) -> Vec<String> {
    text.split('|').filter(|name| !name.is_empty()).map(str::to_string).collect()
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MessageSort {
    /// By creation time.
    #[default]
    Time,
    /// By sender (token name), then time.
    Sender,
    /// By severity name, then time.
    Severity,
}

/// Filters, order and page of a message search.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only messages of this token.
    pub sender: Option<String>,
    /// Only messages that reached this contact.
    pub recipient: Option<String>,
    /// Only messages whose subject or body contains this (case-insensitive).
    pub text: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only messages with a delivery step of this outcome.
    pub outcome: Option<super::Outcome>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// The order.
    pub sort: MessageSort,
    /// Oldest (or A) first instead of newest (or Z) first.
    pub ascending: bool,
    /// Page size.
    pub limit: u32,
    /// Messages to skip.
    pub offset: u64,
}

/// Where one (contact, channel) copy of a message is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageCopy {
    /// Contact name.
    pub contact: String,
    /// Channel.
    pub channel: String,
    /// Outbox state (`pending`, `held`, `limited`, `sent`, `dead`, `merged`, `skipped`).
    pub state: String,
}

/// One message as search returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRecord {
    /// The message (and notification) ID.
    pub id: i64,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// What was sent, as the sender gave it.
    #[serde(flatten)]
    pub message: NewMessage,
    /// Its copies in the outbox.
    pub copies: Vec<MessageCopy>,
    /// Every delivery step of its copies (including the catch-up or summary
    /// a copy was folded into), oldest first.
    pub deliveries: Vec<HistoryEntry>,
}

/// One page of messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagePage {
    /// Messages matching the filters, over all pages.
    pub total: u64,
    /// This page.
    pub items: Vec<MessageRecord>,
}

const MESSAGE_COLUMNS: &str = "id, created_at, sender, idempotency_key, subject, body, severity, recipients, channels";

/// `value` as a `LIKE` pattern matching it anywhere, with `\` escaping.
fn contains_pattern(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The search as SQL: the count, the page, and their parameters.
fn search_sql(query: &MessageQuery) -> (String, String, Vec<SqlParam>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<SqlParam> = Vec::new();
    let mut add = |condition: &dyn Fn(usize) -> String, param: SqlParam| {
        params.push(param);
        conditions.push(condition(params.len()));
    };
    if let Some(sender) = &query.sender {
        add(&|n| format!("sender = ${n}"), SqlParam::Text(sender.clone()));
    }
    if let Some(recipient) = &query.recipient {
        add(
            &|n| format!("recipients LIKE ${n} ESCAPE '\\'"),
            SqlParam::Text(contains_pattern(&format!("|{recipient}|"))),
        );
    }
    if let Some(text) = &query.text {
        add(
            &|n| format!("(LOWER(subject) LIKE ${n} ESCAPE '\\' OR LOWER(body) LIKE ${n} ESCAPE '\\')"),
            SqlParam::Text(contains_pattern(&text.to_lowercase())),
        );
    }
    if let Some(severity) = &query.severity {
        add(&|n| format!("severity = ${n}"), SqlParam::Text(severity.clone()));
    }
    if let Some(outcome) = query.outcome {
        add(
            &|n| {
                format!(
                    "EXISTS (SELECT 1 FROM deliveries WHERE deliveries.outcome = ${n} AND \
                     (deliveries.notification_id = messages.id OR deliveries.outbox_id IN \
                     (SELECT merged_into FROM outbox WHERE outbox.notification_id = messages.id \
                     AND merged_into IS NOT NULL)))"
                )
            },
            SqlParam::Text(outcome.as_str().to_string()),
        );
    }
    if let Some(since) = query.since {
        add(&|n| format!("created_at >= ${n}"), SqlParam::Int(to_ms(since)));
    }
    if let Some(until) = query.until {
        add(&|n| format!("created_at < ${n}"), SqlParam::Int(to_ms(until)));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    let order = if query.ascending { "ASC" } else { "DESC" };
    let key = match query.sort {
        MessageSort::Time => String::new(),
        MessageSort::Sender => format!("sender {order}, "),
        MessageSort::Severity => format!("severity {order}, "),
    };
    let count = format!("SELECT COUNT(*) FROM messages{filter}");
    let page = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages{filter} ORDER BY {key}created_at {order}, id {order} \
         LIMIT {} OFFSET {}",
        query.limit, query.offset
    );
    (count, page, params)
}

/// `(?, ?, …)`-style placeholders `$first..` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// One page of messages, each with its copies and delivery steps.
    pub async fn messages(&self, query: MessageQuery) -> Result<MessagePage, StoreError> {
        let (count, page, params) = search_sql(&query);
        let total =
            self.select(count, params.clone()).await?.first().map(|row| column(row, 0).int()).unwrap_or_default();
        let mut items: Vec<MessageRecord> = self
            .select(page, params)
            .await?
            .iter()
            .map(|row| MessageRecord {
                id: column(row, 0).int(),
                created_at: from_ms(column(row, 1).int()),
                message: NewMessage {
                    sender: column(row, 2).string(),
                    idempotency_key: column(row, 3).opt_string(),
                    subject: column(row, 4).string(),
                    body: column(row, 5).string(),
                    severity: column(row, 6).string(),
                    recipients: split(&column(row, 7).string()),
                    channels: split(&column(row, 8).string()),
                },
                copies: Vec::new(),
                deliveries: Vec::new(),
            })
            .collect();
        if items.is_empty() {
            return Ok(MessagePage { total: u64::try_from(total).unwrap_or(0), items });
        }
        let ids: Vec<SqlParam> = items.iter().map(|item| SqlParam::Int(item.id)).collect();
        let list = placeholders(1, ids.len());
        // Copies, and the catch-up or summary each was folded into.
        let copies = self
            .select(
                format!(
                    "SELECT notification_id, contact, channel, state, merged_into FROM outbox \
                     WHERE notification_id IN ({list}) ORDER BY id"
                ),
                ids.clone(),
            )
            .await?;
        let mut leaders: HashMap<i64, i64> = HashMap::new();
        let mut by_message: HashMap<i64, Vec<MessageCopy>> = HashMap::new();
        for row in &copies {
            let message = column(row, 0).int();
            if let Some(SqlValue::Int(leader)) = row.get(4) {
                leaders.insert(*leader, message);
            }
            by_message.entry(message).or_default().push(MessageCopy {
                contact: column(row, 1).string(),
                channel: column(row, 2).string(),
                state: column(row, 3).string(),
            });
        }
        let mut params = ids;
        let mut condition = format!("notification_id IN ({list})");
        if !leaders.is_empty() {
            let first = params.len() + 1;
            params.extend(leaders.keys().map(|leader| SqlParam::Int(*leader)));
            condition = format!("{condition} OR outbox_id IN ({})", placeholders(first, leaders.len()));
        }
        let history = self
            .select(format!("SELECT {HISTORY_COLUMNS} FROM deliveries WHERE {condition} ORDER BY at, id"), params)
            .await?;
        let mut steps: HashMap<i64, Vec<HistoryEntry>> = HashMap::new();
        for row in history {
            let entry = HistoryEntry::read(&row)?;
            let mut owners = vec![entry.event.notification_id];
            if let Some(message) = leaders.get(&entry.event.outbox_id) {
                owners.push(*message);
            }
            owners.dedup();
            for owner in owners {
                steps.entry(owner).or_default().push(entry.clone());
            }
        }
        for item in &mut items {
            item.copies = by_message.remove(&item.id).unwrap_or_default();
            item.deliveries = steps.remove(&item.id).unwrap_or_default();
        }
        Ok(MessagePage { total: u64::try_from(total).unwrap_or(0), items })
    }

    /// The ID of `sender`'s message with `idempotency_key`, if it is kept.
    pub async fn message_by_key(&self, sender: &str, idempotency_key: &str) -> Result<Option<i64>, StoreError> {
        let rows = self
            .select(
                "SELECT id FROM messages WHERE sender = $1 AND idempotency_key = $2".to_string(),
                vec![SqlParam::Text(sender.to_string()), SqlParam::Text(idempotency_key.to_string())],
            )
            .await?;
        Ok(rows.first().map(|row| column(row, 0).int()))
    }

    /// When `sender`'s messages since `since` were accepted, oldest first
    /// (for a token's rate limit).
    pub async fn message_times(&self, sender: &str, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows = self
            .select(
                "SELECT created_at FROM messages WHERE sender = $1 AND created_at >= $2 ORDER BY created_at"
                    .to_string(),
                vec![SqlParam::Text(sender.to_string()), SqlParam::Int(to_ms(since))],
            )
            .await?;
        Ok(rows.iter().map(|row| from_ms(column(row, 0).int())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn search_binds_every_filter_and_orders_by_the_sort_key() {
        let query = MessageQuery {
            sender: Some("ci".into()),
            recipient: Some("alice".into()),
            text: Some("Disk".into()),
            sort: MessageSort::Severity,
            ascending: true,
            limit: 10,
            offset: 20,
            ..MessageQuery::default()
        };
        let (count, page, params) = search_sql(&query);
        assert!(count.contains("sender = $1 AND recipients LIKE $2"));
        assert!(page.ends_with("ORDER BY severity ASC, created_at ASC, id ASC LIMIT 10 OFFSET 20"));
        assert_eq!(params.len(), 3);
        assert!(matches!(&params[2], SqlParam::Text(text) if text == "%disk%"));
    }

    #[test]
    fn names_round_trip() {
        let names = vec!["alice".to_string(), "bob".to_string()];
        assert_eq!(joined(&names), "|alice|bob|");
        assert_eq!(split(&joined(&names)), names);
        assert!(split(&joined(&[])).is_empty());
    }
}
