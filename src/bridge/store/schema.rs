//! The bridge's versioned migrations, written once in SQLite's dialect and
//! adapted for PostgreSQL by the storage layer. Times are milliseconds since
//! the epoch in both, so every query is shared.
//!
//! Migrations only ever get appended; an applied version is never edited.

use crate::storage::Area;

/// `(version, SQL)` in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX notifications_received ON notifications (received_at);
CREATE TABLE dedup (
    key TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    starts_at INTEGER,
    received_at INTEGER NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL,
    contact TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    delayed INTEGER NOT NULL,
    fingerprints TEXT,
    attempts INTEGER NOT NULL,
    first_attempt_at INTEGER,
    merged_into INTEGER,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX outbox_lane ON outbox (contact, channel, state, due_at);
CREATE INDEX outbox_state ON outbox (state, created_at);
CREATE INDEX outbox_merged ON outbox (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX outbox_notification ON outbox (notification_id);
CREATE TABLE lanes (
    contact TEXT NOT NULL,
    channel TEXT NOT NULL,
    next_due_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER,
    PRIMARY KEY (contact, channel)
);
CREATE INDEX lanes_due ON lanes (next_due_at);
CREATE TABLE sends (
    contact TEXT NOT NULL,
    channel TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE INDEX sends_lane ON sends (contact, channel, sent_at);
CREATE INDEX sends_contact ON sends (contact, sent_at);
CREATE TABLE told (
    contact TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at INTEGER,
    told_at INTEGER NOT NULL,
    PRIMARY KEY (contact, fingerprint)
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    outbox_id INTEGER NOT NULL,
    notification_id INTEGER NOT NULL,
    contact TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    alerts TEXT NOT NULL,
    alertnames TEXT NOT NULL,
    provider_response TEXT,
    error TEXT,
    duration_ms INTEGER
);
CREATE INDEX deliveries_at ON deliveries (at);
CREATE INDEX deliveries_contact ON deliveries (contact, at);
CREATE INDEX deliveries_outcome ON deliveries (outcome, at);
",
    ),
    (
        2,
        "
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    sender TEXT NOT NULL,
    idempotency_key TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    severity TEXT NOT NULL,
    recipients TEXT NOT NULL,
    channels TEXT NOT NULL
);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_sender ON messages (sender, created_at);
CREATE INDEX messages_idempotency ON messages (sender, idempotency_key);
",
    ),
    (
        3,
        "
CREATE TABLE acknowledgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    contact TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    fingerprints TEXT NOT NULL,
    matchers TEXT NOT NULL,
    silences TEXT NOT NULL,
    silenced_until INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX acknowledgements_group ON acknowledgements (group_key, resolved_at);
CREATE INDEX acknowledgements_created ON acknowledgements (created_at);
",
    ),
];

/// The bridge's area of the storage layer.
pub(crate) static AREA: Area = Area { name: "bridge", migrations: MIGRATIONS, legacy_table: "outbox" };
