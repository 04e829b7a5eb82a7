//! Catch-ups and overflow summaries without loading what they summarise.
//!
//! A summary may stand for tens of thousands of held rows (a storm to a
//! rate-limited contact). Loading every notification behind it grew the
//! process with the storm (issue 13, defect 17), so the store answers for
//! them instead: exact counts by aggregation over the alerts of the merged
//! rows, and only the alerts a message lists (at most the display limit per
//! list) as rows. The same queries run on SQLite and PostgreSQL; only the
//! JSON functions that unpack a stored notification differ.

use super::{Lane, Mode, RowState, SqlParam, SqlValue, Store, StoreError, from_ms, to_ms};
use crate::bridge::payload::{Alert, LabelSet};
use chrono::{DateTime, Utc};

/// Which SQL dialect unpacks the stored JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `alias(key, value)`: the alerts of notification `n`, `key` ordering them.
    fn alerts(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json_each(CAST(n.payload AS TEXT) -> 'alerts') a",
            Dialect::Postgres => "jsonb_array_elements(n.payload::jsonb -> 'alerts') WITH ORDINALITY AS a(value, key)",
        }
    }

    /// The stored notification `n.payload` as JSON text: SQLite keeps it as
    /// a BLOB of that text (written in place), which its JSON functions
    /// would take for binary JSON.
    fn payload(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST(n.payload AS TEXT)",
            Dialect::Postgres => "n.payload",
        }
    }

    /// A text field of the alert object `a.value`.
    fn field(self, name: &str) -> String {
        format!("(a.value ->> '{name}')")
    }

    /// The alert object `a.value` as JSON text.
    fn alert_text(self) -> &'static str {
        match self {
            Dialect::Sqlite => "a.value",
            Dialect::Postgres => "a.value::text",
        }
    }

    /// `f(value)`: the elements of the JSON string array `column`.
    fn strings(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each({column}) f"),
            Dialect::Postgres => format!("jsonb_array_elements_text({column}::jsonb) AS f(value)"),
        }
    }

    /// `x(key, value)`: the entries of the string map `field` of the JSON text `column`.
    fn entries(self, column: &str, field: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_each({column} -> '{field}') x"),
            Dialect::Postgres => format!("jsonb_each_text({column}::jsonb -> '{field}') AS x(key, value)"),
        }
    }

    /// A text field of the JSON text `column`.
    fn text(self, column: &str, field: &str) -> String {
        match self {
            Dialect::Sqlite => format!("({column} ->> '{field}')"),
            Dialect::Postgres => format!("({column}::jsonb ->> '{field}')"),
        }
    }

    /// The common table expressions every summary query starts with; `$1`
    /// is the leader's row ID.
    ///
    /// - `parts`: the leader and the rows merged into it;
    /// - `items`: every routed alert of their notifications, in message
    ///   order (rows oldest first, alerts in payload order);
    /// - `latest`: one row per fingerprint: its latest version, whether it
    ///   fired in any part, its place of first appearance, and its current
    ///   status (the stored latest state, else the latest version's own), as
    ///   [`crate::bridge::plan::collect`] gathers them in memory.
    fn with(self) -> String {
        let alerts = self.alerts();
        let fingerprint = self.field("fingerprint");
        let status = self.field("status");
        let alert = self.alert_text();
        let subset = self.strings("p.fingerprints");
        // A row routed only some alerts keeps them through a join (hashed or
        // indexed by the engine), not a scan of its list per alert.
        format!(
            "WITH parts AS MATERIALIZED (\
               SELECT o.id AS row_id, o.created_at, o.notification_id, o.fingerprints FROM outbox o \
               WHERE o.id = $1 OR o.merged_into = $1), \
             subset AS MATERIALIZED (\
               SELECT p.row_id, f.value AS fingerprint FROM parts p CROSS JOIN {subset} \
               WHERE p.fingerprints IS NOT NULL), \
             items AS (\
               SELECT p.created_at, p.row_id, a.key AS position, {fingerprint} AS fingerprint, \
               {status} AS status, {alert} AS alert \
               FROM parts p JOIN notifications n ON n.id = p.notification_id CROSS JOIN {alerts} \
               LEFT JOIN subset s ON s.row_id = p.row_id AND s.fingerprint = {fingerprint} \
               WHERE p.fingerprints IS NULL OR s.row_id IS NOT NULL), \
             sequenced AS (\
               SELECT fingerprint, status, alert, \
               ROW_NUMBER() OVER (ORDER BY created_at, row_id, position) AS seq FROM items), \
             ranked AS (\
               SELECT fingerprint, status, alert, seq, \
               MIN(seq) OVER (PARTITION BY fingerprint) AS first_seq, \
               MAX(seq) OVER (PARTITION BY fingerprint) AS last_seq, \
               MAX(CASE WHEN status = 'firing' THEN 1 ELSE 0 END) OVER (PARTITION BY fingerprint) AS fired \
               FROM sequenced), \
             latest AS (\
               SELECT r.fingerprint, r.alert, r.fired, r.first_seq, s.starts_at, \
               COALESCE(s.status, r.status) AS current \
               FROM ranked r LEFT JOIN alerts s ON s.fingerprint = r.fingerprint WHERE r.seq = r.last_seq) "
        )
    }

    /// Exact sizes: alerts, fired meanwhile, resolved now, firing now.
    fn counts_sql(self) -> String {
        format!(
            "{}SELECT COUNT(*), COALESCE(SUM(fired), 0), \
             COALESCE(SUM(CASE WHEN current = 'resolved' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN current = 'firing' THEN 1 ELSE 0 END), 0) FROM latest",
            self.with()
        )
    }

    /// The alerts some list of the message shows: the first `$2` of all, of
    /// those that fired, of those resolved now and of those firing now; in
    /// message order.
    fn listed_sql(self) -> String {
        format!(
            "{}SELECT alert, fired FROM (\
               SELECT alert, fired, current, first_seq, \
               ROW_NUMBER() OVER (ORDER BY first_seq) AS n_all, \
               ROW_NUMBER() OVER (PARTITION BY fired ORDER BY first_seq) AS n_fired, \
               ROW_NUMBER() OVER (PARTITION BY current ORDER BY first_seq) AS n_current FROM latest) listed \
             WHERE n_all <= $2 OR (fired = 1 AND n_fired <= $2) OR n_current <= $2 ORDER BY first_seq",
            self.with()
        )
    }

    /// Label (or annotation, by `field`) pairs every alert shares.
    fn common_sql(self, field: &str) -> String {
        format!(
            "{}SELECT x.key, x.value FROM latest l CROSS JOIN {} GROUP BY x.key, x.value \
             HAVING COUNT(*) = (SELECT COUNT(*) FROM latest)",
            self.with(),
            self.entries("l.alert", field)
        )
    }

    /// `groupLabels` pairs every notification shares.
    fn group_labels_sql(self) -> String {
        format!(
            "WITH parts AS (SELECT o.notification_id FROM outbox o WHERE o.id = $1 OR o.merged_into = $1) \
             SELECT x.key, x.value FROM parts p JOIN notifications n ON n.id = p.notification_id \
             CROSS JOIN {} GROUP BY x.key, x.value \
             HAVING COUNT(*) = (SELECT COUNT(*) FROM parts p JOIN notifications n ON n.id = p.notification_id)",
            self.entries(self.payload(), "groupLabels")
        )
    }

    /// Receiver, arrival and Alertmanager link of the first (`ASC`) or
    /// latest (`DESC`) notification.
    fn edge_sql(self, order: &str) -> String {
        format!(
            "SELECT n.receiver, n.received_at, {} FROM outbox o JOIN notifications n ON n.id = o.notification_id \
             WHERE o.id = $1 OR o.merged_into = $1 ORDER BY o.created_at {order}, o.id {order} LIMIT 1",
            self.text(self.payload(), "externalURL")
        )
    }

    /// Records that a sent summary told `$2` at `$3` of its alerts firing
    /// now (with their start); binds the leader, contact and time.
    pub(crate) fn told_firing_sql(self) -> String {
        format!(
            "{}INSERT INTO told (contact, fingerprint, starts_at, told_at) \
             SELECT CAST($2 AS TEXT), fingerprint, starts_at, CAST($3 AS BIGINT) FROM latest \
             WHERE current = 'firing' ON CONFLICT (contact, fingerprint) DO UPDATE \
             SET starts_at = excluded.starts_at, told_at = excluded.told_at",
            self.with()
        )
    }

    /// Forgets, for `$2`, the summary's alerts resolved now; binds the
    /// leader and contact.
    pub(crate) fn told_resolved_sql(self) -> String {
        format!(
            "{}DELETE FROM told WHERE contact = CAST($2 AS TEXT) AND fingerprint IN \
             (SELECT fingerprint FROM latest WHERE current = 'resolved')",
            self.with()
        )
    }
}

/// Exact sizes of a summary's lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SummaryCounts {
    /// Distinct alerts.
    pub alerts: u64,
    /// Alerts seen firing in any merged notification.
    pub fired: u64,
    /// Alerts resolved now.
    pub resolved: u64,
    /// Alerts firing now.
    pub still_firing: u64,
}

/// One alert a summary lists.
#[derive(Debug, Clone)]
pub struct ListedAlert {
    /// Its latest version.
    pub alert: Alert,
    /// Seen firing in any merged notification.
    pub fired: bool,
}

/// What a catch-up or overflow summary says, read without loading its rows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Receiver of the first notification.
    pub receiver: String,
    /// When the latest notification arrived.
    pub received_at: DateTime<Utc>,
    /// Alertmanager link of the latest notification.
    pub external_url: String,
    /// `group_by` labels shared by every notification.
    pub group_labels: LabelSet,
    /// Labels shared by every alert.
    pub common_labels: LabelSet,
    /// Annotations shared by every alert.
    pub common_annotations: LabelSet,
    /// Exact sizes.
    pub counts: SummaryCounts,
    /// The alerts some list shows (at most `limit` per list), in message order.
    pub listed: Vec<ListedAlert>,
}

impl Store {
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Folds every other row of `lane` in `state` into `leader` (taking
    /// along the rows already merged into them), which becomes a pending
    /// message: of `merged` mode when there were others, else of `alone`
    /// mode. Returns that mode. Runs in the store: a storm's thousands of
    /// rows are not read to be merged.
    pub async fn merge_lane(
        &self,
        lane: &Lane,
        state: RowState,
        leader: i64,
        merged: Mode,
        alone: Mode,
        now: DateTime<Utc>,
    ) -> Result<Mode, StoreError> {
        let others_sql = "SELECT id FROM outbox WHERE contact = $2 AND channel = $3 AND state = $4 AND id <> $1";
        let lane_params = || {
            vec![
                SqlParam::Int(leader),
                SqlParam::Text(lane.contact.clone()),
                SqlParam::Text(lane.channel.clone()),
                SqlParam::Text(state.as_str().into()),
            ]
        };
        let others = self.select(format!("SELECT COUNT(*) FROM ({others_sql}) others"), lane_params()).await?;
        // The lane is leased, so no row enters `state` meanwhile: new rows
        // come in pending.
        let mode = if count(others.first().and_then(|row| row.first())) > 0 { merged } else { alone };
        let mut merge_params = lane_params();
        merge_params.push(SqlParam::Int(to_ms(now)));
        self.execute(vec![
            (format!("UPDATE outbox SET merged_into = $1 WHERE merged_into IN ({others_sql})"), lane_params()),
            (
                "UPDATE outbox SET state = 'merged', merged_into = $1, updated_at = $5 \
                 WHERE contact = $2 AND channel = $3 AND state = $4 AND id <> $1"
                    .into(),
                merge_params,
            ),
            (
                "UPDATE outbox SET mode = $2, state = 'pending', updated_at = $3 WHERE id = $1".into(),
                vec![SqlParam::Int(leader), SqlParam::Text(mode.as_str().into()), SqlParam::Int(to_ms(now))],
            ),
        ])
        .await?;
        Ok(mode)
    }

    /// How many rows are merged into `leader`.
    pub async fn member_count(&self, leader: i64) -> Result<u64, StoreError> {
        let rows = self
            .select("SELECT COUNT(*) FROM outbox WHERE merged_into = $1".into(), vec![SqlParam::Int(leader)])
            .await?;
        Ok(count(rows.first().and_then(|row| row.first())))
    }

    /// The summary of `leader` and the rows merged into it, listing at most
    /// `limit` alerts per list.
    pub async fn summary(&self, leader: i64, limit: u32) -> Result<Summary, StoreError> {
        let dialect = self.dialect();
        let by_leader = || vec![SqlParam::Int(leader)];
        let counts = self.select(dialect.counts_sql(), by_leader()).await?;
        let counts = counts.first().map(Vec::as_slice).unwrap_or_default();
        let counts = SummaryCounts {
            alerts: count(counts.first()),
            fired: count(counts.get(1)),
            resolved: count(counts.get(2)),
            still_firing: count(counts.get(3)),
        };
        let mut listed = Vec::new();
        for row in self.select(dialect.listed_sql(), vec![SqlParam::Int(leader), SqlParam::Int(limit.into())]).await? {
            let [alert, fired] = row.as_slice() else {
                return Err(StoreError::Corrupt("summary: unexpected columns".into()));
            };
            let alert: Alert = serde_json::from_str(alert.text().unwrap_or_default())
                .map_err(|err| StoreError::Corrupt(format!("summary alert: {err}")))?;
            listed.push(ListedAlert { alert, fired: fired.int() == 1 });
        }
        let labels = |rows: Vec<Vec<SqlValue>>| -> LabelSet {
            rows.into_iter()
                .filter_map(|row| match row.as_slice() {
                    [key, value] => Some((key.string(), value.string())),
                    _ => None,
                })
                .collect()
        };
        let common_labels = labels(self.select(dialect.common_sql("labels"), by_leader()).await?);
        let common_annotations = labels(self.select(dialect.common_sql("annotations"), by_leader()).await?);
        let group_labels = labels(self.select(dialect.group_labels_sql(), by_leader()).await?);
        let first = self.select(dialect.edge_sql("ASC"), by_leader()).await?;
        let last = self.select(dialect.edge_sql("DESC"), by_leader()).await?;
        let receiver = first.first().and_then(|row| row.first()).map(SqlValue::string).unwrap_or_default();
        let (received_at, external_url) = match last.first().map(Vec::as_slice) {
            Some([_, received_at, external_url]) => (from_ms(received_at.int()), external_url.string()),
            _ => (DateTime::<Utc>::default(), String::new()),
        };
        Ok(Summary {
            receiver,
            received_at,
            external_url,
            group_labels,
            common_labels,
            common_annotations,
            counts,
            listed,
        })
    }
}

fn count(value: Option<&SqlValue>) -> u64 {
    value.and_then(SqlValue::opt_int).and_then(|count| u64::try_from(count).ok()).unwrap_or(0)
}
