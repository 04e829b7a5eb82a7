//! The bridge's tables on PostgreSQL, for several replicas sharing one state.
//!
//! Replicas never deliver the same row twice: a worker leases a whole lane
//! with `FOR UPDATE SKIP LOCKED`, and the dedup key insert is atomic, so the
//! same notification arriving at two replicas is committed once.

use super::{
    AlertState, Dialect, Ingested, Lane, LaneClaim, NewNotification, QueueStats, Retention, StoreError,
    StoredNotification, Transition, alertnames, encode, encode_fingerprints, from_ms, schema, sql, to_ms,
};
use crate::bridge::payload::Status;
use crate::storage::lease::{self, dead_sql};
use crate::storage::postgres::{Param, Pooled, Postgres};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

/// The bridge's PostgreSQL store; cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(super) db: Postgres,
}

/// A lane is free when nobody leased it, its lease ran out, or the replica
/// holding it is known dead (its session ended or its presence row went stale):
/// a killed replica's lanes pass on at once, not after the lease.
static CLAIM_LANE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE lanes SET lease_owner = $1, lease_until = $2 WHERE (contact, channel) = \
         (SELECT contact, channel FROM lanes WHERE next_due_at <= $3 \
         AND (lease_until IS NULL OR lease_until < $4 OR {}) ORDER BY next_due_at LIMIT 1 \
         FOR UPDATE SKIP LOCKED) RETURNING contact, channel",
        dead_sql("lanes.lease_owner")
    )
});

static NEXT_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT MIN(next_due_at) FROM lanes WHERE lease_until IS NULL OR lease_until < $1 OR {}",
        dead_sql("lanes.lease_owner")
    )
});

impl PostgresStore {
    /// Connects with `url` (a URL or `key=value` string) and migrates.
    pub async fn open(url: &str, max_connections: usize) -> Result<PostgresStore, StoreError> {
        Self::open_with_tls(url, max_connections, None).await
    }

    /// Like [`PostgresStore::open`], speaking TLS with `tls` when the server
    /// (and the URL's `sslmode`) allows it; `sslmode=require` insists on it.
    pub async fn open_with_tls(
        url: &str,
        max_connections: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<PostgresStore, StoreError> {
        PostgresStore::new(Postgres::open(url, max_connections, tls).await?).await
    }

    /// The bridge's tables in `db`, migrated (under an advisory lock, so that
    /// replicas starting together do not race).
    pub async fn new(db: Postgres) -> Result<PostgresStore, StoreError> {
        db.migrate(&schema::AREA).await?;
        // Lane claims ask which lease owners are dead.
        db.migrate(&lease::AREA).await?;
        Ok(PostgresStore { db })
    }

    async fn pooled(&self) -> Result<Pooled, StoreError> {
        self.db.pooled().await
    }

    pub(super) async fn ingest(&self, new: NewNotification) -> Result<Ingested, StoreError> {
        let received_at = to_ms(new.received_at);
        // A fixed lock order (alerts, then lanes, each sorted) avoids deadlocks
        // between concurrent intakes. The states are read from the stored
        // text, one alert at a time.
        let mut alerts: Vec<(String, Status, Option<i64>)> = Vec::with_capacity(new.notification.len());
        encode::for_each_alert(new.notification.json(), |alert| {
            alerts.push((alert.fingerprint, alert.status, alert.starts_at.map(to_ms)));
            Ok(())
        })?;
        alerts.sort_by(|a, b| a.0.cmp(&b.0));
        let (notification, payload) = new.notification.into_parts();
        let mut deliveries: Vec<_> = new.deliveries.iter().collect();
        deliveries.sort_by(|a, b| (&a.contact, &a.channel).cmp(&(&b.contact, &b.channel)));
        let mut pooled = self.pooled().await?;
        Pooled::in_transaction(&mut pooled, async |pooled| {
            if let Some(key) = &new.dedup_key {
                let dedup_since = to_ms(new.dedup_since);
                let fresh = pooled.query_opt(sql::DEDUP, &[key, &received_at, &dedup_since]).await?;
                if fresh.is_none() {
                    return Ok(Ingested::Duplicate);
                }
            }
            let row = pooled
                .query_opt(
                    sql::INSERT_NOTIFICATION,
                    &[
                        &received_at,
                        &notification.receiver,
                        &notification.group_key,
                        &notification.status.as_str(),
                        &payload,
                    ],
                )
                .await?
                .ok_or_else(|| StoreError::Unavailable("insert returned no id".into()))?;
            let notification_id: i64 = row.try_get(0)?;
            if let Some(message) = &new.message {
                pooled
                    .execute(
                        sql::INSERT_MESSAGE,
                        &[
                            &notification_id,
                            &received_at,
                            &message.sender,
                            &message.idempotency_key,
                            &message.subject,
                            &message.body,
                            &message.severity,
                            &super::messages::joined(&message.recipients),
                            &super::messages::joined(&message.channels),
                        ],
                    )
                    .await?;
            }
            for (fingerprint, status, starts_at) in &alerts {
                pooled.execute(sql::UPSERT_ALERT, &[fingerprint, &status.as_str(), starts_at, &received_at]).await?;
            }
            for delivery in deliveries {
                let due_at = to_ms(delivery.due_at);
                pooled
                    .execute(
                        sql::INSERT_OUTBOX,
                        &[
                            &notification_id,
                            &delivery.contact,
                            &delivery.channel,
                            &received_at,
                            &due_at,
                            &i64::from(delivery.delayed),
                            &encode_fingerprints(&delivery.fingerprints),
                        ],
                    )
                    .await?;
                pooled.execute(sql::UPSERT_LANE, &[&delivery.contact, &delivery.channel, &due_at]).await?;
            }
            Ok(Ingested::Accepted { notification_id, deliveries: new.deliveries.len() })
        })
        .await
    }

    pub(super) async fn claim_lane(&self, claim: LaneClaim) -> Result<Option<Lane>, StoreError> {
        let mut pooled = self.pooled().await?;
        let params: [Param<'_>; 4] = [&claim.owner, &claim.lease_until, &claim.due_by, &claim.lease_now];
        let row = pooled.query_opt(&CLAIM_LANE, &params).await?;
        row.map(|row| Ok(Lane { contact: row.try_get(0)?, channel: row.try_get(1)? })).transpose()
    }

    pub(super) async fn release_lane(&self, lane: &Lane, owner: &str) -> Result<(), StoreError> {
        let mut pooled = self.pooled().await?;
        pooled.execute(sql::RELEASE_LANE, &[&lane.contact, &lane.channel, &owner]).await?;
        Ok(())
    }

    pub(super) async fn next_due(&self, lease_now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut pooled = self.pooled().await?;
        let row = pooled.query_opt(&NEXT_DUE, &[&to_ms(lease_now)]).await?;
        let next: Option<i64> = match row {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        Ok(next.map(from_ms))
    }

    pub(super) async fn apply(&self, transitions: Vec<Transition>, lane: &Lane, now: i64) -> Result<(), StoreError> {
        let mut pooled = self.pooled().await?;
        Pooled::in_transaction(&mut pooled, async |pooled| {
            for transition in &transitions {
                apply_one(pooled, transition, lane, now).await?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn notifications(&self, ids: Vec<i64>) -> Result<Vec<StoredNotification>, StoreError> {
        let mut pooled = self.pooled().await?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = pooled.query_opt(sql::NOTIFICATION, &[&id]).await? {
                let payload: String = row.try_get(2)?;
                found.push(StoredNotification {
                    id: row.try_get(0)?,
                    received_at: from_ms(row.try_get(1)?),
                    notification: serde_json::from_str(&payload)
                        .map_err(|err| StoreError::Corrupt(format!("notification {id}: {err}")))?,
                });
            }
        }
        Ok(found)
    }

    pub(super) async fn read_notification<T: Send + 'static>(
        &self,
        id: i64,
        read: impl FnOnce(DateTime<Utc>, &mut dyn encode::Source) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        let mut pooled = self.pooled().await?;
        let Some(row) = pooled.query_opt(sql::NOTIFICATION, &[&id]).await? else {
            return Ok(None);
        };
        let received_at: i64 = row.try_get(1)?;
        let text: &str = row.try_get(2)?;
        Ok(Some(read(from_ms(received_at), &mut std::io::Cursor::new(text.as_bytes()))))
    }

    pub(super) async fn alert_states(
        &self,
        fingerprints: Vec<String>,
    ) -> Result<HashMap<String, AlertState>, StoreError> {
        let mut pooled = self.pooled().await?;
        let mut states = HashMap::new();
        for fingerprint in fingerprints {
            if let Some(row) = pooled.query_opt(sql::ALERT_STATE, &[&fingerprint]).await? {
                let status: String = row.try_get(0)?;
                let starts_at: Option<i64> = row.try_get(1)?;
                let status = if status == "resolved" { Status::Resolved } else { Status::Firing };
                states.insert(fingerprint, AlertState { status, starts_at: starts_at.map(from_ms) });
            }
        }
        Ok(states)
    }

    pub(super) async fn told(&self, contact: &str, fingerprints: Vec<String>) -> Result<HashSet<String>, StoreError> {
        let mut pooled = self.pooled().await?;
        let mut told = HashSet::new();
        for fingerprint in fingerprints {
            if pooled.query_opt(sql::TOLD, &[&contact, &fingerprint]).await?.is_some() {
                told.insert(fingerprint);
            }
        }
        Ok(told)
    }

    pub(super) async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let mut pooled = self.pooled().await?;
        let mut stats = QueueStats::default();
        for row in pooled.query(sql::QUEUE_STATS, &[]).await? {
            let state: String = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let oldest: Option<i64> = row.try_get(2)?;
            stats.add_row(&state, count, oldest);
        }
        Ok(stats)
    }

    pub(super) async fn gc(&self, retention: Retention) -> Result<(), StoreError> {
        let mut pooled = self.pooled().await?;
        for (statement, cut) in sql::GC {
            match cut {
                Some(cut) => pooled.execute(statement, &[&retention.cut(cut)]).await?,
                None => pooled.execute(statement, &[]).await?,
            };
        }
        Ok(())
    }
}

async fn apply_one(pooled: &mut Pooled, transition: &Transition, lane: &Lane, now: i64) -> Result<(), StoreError> {
    pooled
        .execute(
            sql::APPLY,
            &[
                &transition.row_id,
                &transition.state.as_str(),
                &to_ms(transition.due_at),
                &i64::from(transition.attempts),
                &transition.first_attempt_at.map(to_ms),
                &transition.last_error,
                &now,
            ],
        )
        .await?;
    if let Some(event) = &transition.event {
        let alerts = serde_json::to_string(&event.alerts)
            .map_err(|err| StoreError::Corrupt(format!("cannot encode alerts: {err}")))?;
        pooled
            .execute(
                sql::INSERT_EVENT,
                &[
                    &to_ms(event.at),
                    &event.outbox_id,
                    &event.notification_id,
                    &event.contact,
                    &event.channel,
                    &event.kind.as_str(),
                    &event.outcome.as_str(),
                    &i64::from(event.attempt),
                    &alerts,
                    &alertnames(&event.alerts),
                    &event.provider_response,
                    &event.error,
                    &event.duration_ms,
                ],
            )
            .await?;
    }
    if let Some(sent_at) = transition.sent_at {
        pooled.execute(sql::INSERT_SEND, &[&lane.contact, &lane.channel, &to_ms(sent_at)]).await?;
    }
    for (fingerprint, starts_at) in &transition.told_firing {
        pooled.execute(sql::TOLD_FIRING, &[&lane.contact, fingerprint, &starts_at.map(to_ms), &now]).await?;
    }
    for fingerprint in &transition.told_resolved {
        pooled.execute(sql::TOLD_RESOLVED, &[&lane.contact, fingerprint]).await?;
    }
    if let Some(id) = transition.told_notification {
        // Read first, then written: a statement per alert cannot wait inside the read.
        let mut firing: Vec<(String, Option<i64>)> = Vec::new();
        let mut resolved: Vec<String> = Vec::new();
        if let Some(row) = pooled.query_opt(sql::NOTIFICATION, &[&id]).await? {
            encode::told_by(
                row.try_get::<_, &str>(2)?.as_bytes(),
                |fingerprint, starts_at| {
                    firing.push((fingerprint.to_string(), starts_at));
                    Ok(())
                },
                |fingerprint| {
                    resolved.push(fingerprint.to_string());
                    Ok(())
                },
            )?;
        }
        for (fingerprint, starts_at) in &firing {
            pooled.execute(sql::TOLD_FIRING, &[&lane.contact, fingerprint, starts_at, &now]).await?;
        }
        for fingerprint in &resolved {
            pooled.execute(sql::TOLD_RESOLVED, &[&lane.contact, fingerprint]).await?;
        }
    }
    if let Some(leader) = transition.told_summary {
        pooled.execute(&Dialect::Postgres.told_firing_sql(), &[&leader, &lane.contact, &now]).await?;
        pooled.execute(&Dialect::Postgres.told_resolved_sql(), &[&leader, &lane.contact]).await?;
    }
    Ok(())
}
