//! One test suite for both stores: SQLite (embedded) and PostgreSQL (a real
//! server), covering dedup, lanes and leases, transitions, merges, send
//! history, told state, queue statistics, history queries, GC, migrations and
//! summaries.

use crate::peer;
use crate::support::peers::{Postgres, PostgresOpts};
use checkit::bridge::payload::{self, Status};
use checkit::bridge::store::{
    HistoryEvent, HistoryQuery, Ingested, Lane, Mode, NewDelivery, NewNotification, Outcome, PostgresStore, Retention,
    RowState, SqliteStore, Store, Transition,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;

fn t0() -> DateTime<Utc> {
    crate::bridge_support::start_time()
}

fn new_notification(group: &str, status: &str, at: DateTime<Utc>, contacts: &[&str]) -> NewNotification {
    let body = crate::bridge_support::notification("team", group, &[("DiskFull", "warning", status)]);
    let notification = payload::parse(body.as_bytes(), at).expect("test fixture");
    NewNotification {
        received_at: at,
        dedup_key: Some(checkit::bridge::dedup::key(&notification).expect("a parsed notification")),
        dedup_since: at - Duration::minutes(10),
        deliveries: contacts
            .iter()
            .map(|contact| NewDelivery {
                contact: contact.to_string(),
                channel: "webhook".into(),
                due_at: at,
                delayed: false,
                fingerprints: None,
            })
            .collect(),
        notification: payload::Encoded::new(notification).expect("encodes"),
        message: None,
    }
}

fn lane(contact: &str) -> Lane {
    Lane { contact: contact.into(), channel: "webhook".into() }
}

fn event(row_id: i64, notification_id: i64, contact: &str, outcome: Outcome, at: DateTime<Utc>) -> HistoryEvent {
    HistoryEvent {
        at,
        outbox_id: row_id,
        notification_id,
        contact: contact.into(),
        channel: "webhook".into(),
        kind: Mode::Notification,
        outcome,
        attempt: 1,
        alerts: vec![checkit::bridge::store::AlertRef {
            alertname: "DiskFull".into(),
            fingerprint: "f".into(),
            status: Status::Firing,
        }],
        provider_response: Some("200 OK".into()),
        error: None,
        duration_ms: Some(12),
    }
}

/// The suite every store must pass.
async fn store_suite(store: Store) {
    // Dedup: the same notification within the window is a duplicate.
    let first = new_notification("g1", "firing", t0(), &["alice", "bob"]);
    let accepted = store.ingest(first.clone()).await.expect("store operation");
    let Ingested::Accepted { notification_id, deliveries } = accepted else { panic!("{accepted:?}") };
    assert_eq!(deliveries, 2);
    let mut again = first.clone();
    again.received_at = t0() + Duration::minutes(1);
    again.dedup_since = again.received_at - Duration::minutes(10);
    assert_eq!(store.ingest(again.clone()).await.expect("store operation"), Ingested::Duplicate);
    again.received_at = t0() + Duration::minutes(11);
    again.dedup_since = again.received_at - Duration::minutes(10);
    again.deliveries.clear();
    assert!(matches!(store.ingest(again).await.expect("store operation"), Ingested::Accepted { deliveries: 0, .. }));
    let stored = store.notifications(vec![notification_id, 999_999]).await.expect("store operation");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].notification, first.notification.decode().expect("decodes"));

    // Lanes: each due lane is leased once until released.
    let wall = Utc::now();
    let lease = wall + Duration::minutes(2);
    assert_eq!(
        store.claim_lane("early", t0() - Duration::seconds(1), wall, lease).await.expect("store operation"),
        None
    );
    let a = store.claim_lane("w1", t0(), wall, lease).await.expect("store operation").expect("a due lane");
    let b = store.claim_lane("w2", t0(), wall, lease).await.expect("store operation").expect("a due lane");
    assert_ne!(a, b);
    assert_eq!(store.claim_lane("w3", t0(), wall, lease).await.expect("store operation"), None);
    assert_eq!(store.next_due(wall).await.expect("store operation"), None, "every due lane is leased");
    let expired = wall + Duration::minutes(3);
    assert!(
        store.claim_lane("w4", t0(), expired, expired + Duration::minutes(2)).await.expect("store operation").is_some()
    );

    // Transitions: hold alice's row, with a history entry.
    let alice = lane("alice");
    let rows = store.due_rows(&alice, t0(), 10).await.expect("store operation");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].state, rows[0].mode, rows[0].attempts), (RowState::Pending, Mode::Notification, 0));
    let mut hold = Transition::of(&rows[0], RowState::Held, t0() + Duration::hours(8));
    hold.event = Some(event(rows[0].id, notification_id, "alice", Outcome::Held, t0()));
    store.apply(vec![hold], &alice, t0()).await.expect("store operation");
    assert!(store.due_rows(&alice, t0(), 10).await.expect("store operation").is_empty());
    let held = store.lane_rows(&alice, RowState::Held).await.expect("store operation");
    assert_eq!(held[0].due_at, t0() + Duration::hours(8));
    for owner in ["w1", "w2", "w4"] {
        store.release_lane(&alice, owner).await.expect("store operation");
        store.release_lane(&lane("bob"), owner).await.expect("store operation");
    }
    assert_eq!(store.next_due(Utc::now()).await.expect("store operation"), Some(t0()), "bob's lane is still due");

    // A second held row, then a merge into one catch-up.
    let second = new_notification("g2", "firing", t0() + Duration::minutes(20), &["alice"]);
    store.ingest(second).await.expect("store operation");
    let pending = store.due_rows(&alice, t0() + Duration::minutes(20), 10).await.expect("store operation");
    store
        .apply(vec![Transition::of(&pending[0], RowState::Held, t0() + Duration::hours(8))], &alice, t0())
        .await
        .expect("test fixture");
    let held = store.lane_rows(&alice, RowState::Held).await.expect("store operation");
    assert_eq!(held.len(), 2);
    let leader = held[0].id;
    store.merge(leader, held.iter().map(|row| row.id).collect(), Mode::CatchUp, t0()).await.expect("store operation");
    let members = store.members(leader).await.expect("store operation");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].state, RowState::Merged);
    let due = store.due_rows(&alice, t0() + Duration::hours(8), 10).await.expect("store operation");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].mode, due[0].state), (leader, Mode::CatchUp, RowState::Pending));

    // Sending records the send time and what the contact was told.
    let sent_at = t0() + Duration::hours(8);
    let mut sent = Transition::of(&due[0], RowState::Sent, sent_at);
    sent.attempts = 1;
    sent.first_attempt_at = Some(sent_at);
    sent.sent_at = Some(sent_at);
    sent.told_firing = vec![("fp-a".into(), Some(t0())), ("fp-b".into(), None)];
    sent.event = Some(event(due[0].id, notification_id, "alice", Outcome::Sent, sent_at));
    store.apply(vec![sent], &alice, sent_at).await.expect("store operation");
    assert_eq!(store.recent_sends("alice", Some("webhook"), t0()).await.expect("store operation"), [sent_at]);
    assert_eq!(store.recent_sends("alice", None, t0()).await.expect("store operation"), [sent_at]);
    assert!(store.recent_sends("alice", Some("sms"), t0()).await.expect("store operation").is_empty());
    assert!(store.recent_sends("alice", None, sent_at).await.expect("store operation").is_empty(), "strictly after");
    let told = store.told("alice", vec!["fp-a".into(), "fp-c".into()]).await.expect("store operation");
    assert_eq!(told, HashSet::from(["fp-a".to_string()]));
    let mut resolved = Transition::of(&due[0], RowState::Sent, sent_at);
    resolved.told_resolved = vec!["fp-a".into()];
    store.apply(vec![resolved], &alice, sent_at).await.expect("store operation");
    assert!(store.told("alice", vec!["fp-a".into()]).await.expect("store operation").is_empty());
    // What one notification told is recorded from its stored text.
    let parsed = first.notification.decode().expect("decodes");
    let told_fingerprint = parsed.alerts[0].fingerprint.clone();
    let text = store
        .read_notification(notification_id, |_, source| {
            let mut text = String::new();
            source.read_to_string(&mut text).map(|_| text).expect("readable")
        })
        .await
        .expect("store operation");
    assert_eq!(text.as_deref(), Some(first.notification.json()));
    assert!(store.read_notification(999_999, |_, _| ()).await.expect("store operation").is_none());
    let mut told_whole = Transition::of(&due[0], RowState::Sent, sent_at);
    told_whole.told_notification = Some(notification_id);
    store.apply(vec![told_whole], &alice, sent_at).await.expect("store operation");
    let told = store.told("alice", vec![told_fingerprint.clone()]).await.expect("store operation");
    assert_eq!(told, HashSet::from([told_fingerprint.clone()]), "the firing alert of the notification");
    let Ingested::Accepted { notification_id: resolution, .. } = store
        .ingest(new_notification("g1", "resolved", t0() + Duration::minutes(20), &[]))
        .await
        .expect("store operation")
    else {
        panic!("a resolution is a new notification");
    };
    let mut told_resolution = Transition::of(&due[0], RowState::Sent, sent_at);
    told_resolution.told_notification = Some(resolution);
    store.apply(vec![told_resolution], &alice, sent_at).await.expect("store operation");
    assert!(store.told("alice", vec![told_fingerprint]).await.expect("store operation").is_empty());

    // The latest alert state wins, whatever order notifications arrive in.
    let fingerprint = first.notification.decode().expect("decodes").alerts[0].fingerprint.clone();
    store.ingest(new_notification("g3", "resolved", t0() + Duration::minutes(30), &[])).await.expect("store operation");
    let states = store.alert_states(vec![fingerprint.clone(), "unknown".into()]).await.expect("store operation");
    assert_eq!(states.len(), 1);
    assert_eq!(states[&fingerprint].status, Status::Resolved);

    // Queue statistics count unfinished rows by state.
    let stats = store.queue_stats().await.expect("store operation");
    assert_eq!((stats.pending, stats.held, stats.limited), (1, 0, 0), "bob's row");
    assert_eq!(stats.oldest_pending, Some(t0()));

    // History: filters, order and paging.
    let page = store.history(HistoryQuery { limit: 10, ..HistoryQuery::default() }).await.expect("store operation");
    assert_eq!(page.total, 2);
    assert_eq!(page.items[0].event.outcome, Outcome::Sent, "newest first");
    let held_only = HistoryQuery { outcome: Some(Outcome::Held), limit: 10, ..HistoryQuery::default() };
    assert_eq!(store.history(held_only).await.expect("store operation").total, 1);
    let by_name = HistoryQuery { alertname: Some("DiskFull".into()), limit: 1, offset: 1, ..HistoryQuery::default() };
    let by_name = store.history(by_name).await.expect("store operation");
    assert_eq!((by_name.total, by_name.items.len()), (2, 1));
    let other = HistoryQuery { contact: Some("bob".into()), limit: 10, ..HistoryQuery::default() };
    assert_eq!(store.history(other).await.expect("store operation").total, 0);
    let window = HistoryQuery {
        since: Some(t0() + Duration::hours(1)),
        until: Some(t0() + Duration::hours(9)),
        ascending: true,
        limit: 10,
        ..HistoryQuery::default()
    };
    let window = store.history(window).await.expect("store operation");
    assert_eq!(window.items[0].event, event(leader, notification_id, "alice", Outcome::Sent, sent_at));

    // GC removes finished rows, history and old state, never pending rows.
    let later = t0() + Duration::days(60);
    store
        .gc(Retention { history_before: later, dedup_before: later, sends_before: later })
        .await
        .expect("store operation");
    assert_eq!(
        store.history(HistoryQuery { limit: 10, ..HistoryQuery::default() }).await.expect("store operation").total,
        0
    );
    assert!(store.recent_sends("alice", None, t0()).await.expect("store operation").is_empty());
    assert_eq!(store.queue_stats().await.expect("store operation").pending, 1, "bob's pending row survives");
    assert_eq!(store.due_rows(&lane("bob"), t0(), 10).await.expect("store operation").len(), 1);
    assert_eq!(store.notifications(vec![notification_id]).await.expect("store operation").len(), 1, "still referenced");
}

/// Concurrent intake of one notification commits it once; concurrent
/// claims never hand the same lane to two workers.
async fn concurrency_suite(store: Store) {
    let at = t0() + Duration::days(1);
    let same = new_notification("race", "firing", at, &["carol"]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let same = same.clone();
        tasks.push(tokio::spawn(async move { store.ingest(same).await.expect("store operation") }));
    }
    let mut accepted = 0;
    for task in tasks {
        if matches!(task.await.expect("store operation"), Ingested::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    for index in 0..20 {
        let contact = format!("c{index}");
        store
            .ingest(new_notification(&format!("n{index}"), "firing", at, &[contact.as_str()]))
            .await
            .expect("store operation");
    }
    let wall = Utc::now();
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut lanes = Vec::new();
            while let Some(lane) = store
                .claim_lane(&format!("w{worker}"), at, wall, wall + Duration::minutes(5))
                .await
                .expect("store operation")
            {
                lanes.push(lane);
            }
            lanes
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("store operation"));
    }
    let distinct: HashSet<Lane> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "a lane was claimed twice");
    assert!(distinct.len() >= 21, "every due lane was claimed: {}", distinct.len());
}

/// Defect 17: a storm's overflow summary is summed up by the store. The
/// counts are exact, the latest version of each alert wins, a row routed
/// only some alerts counts only those, and the rows read stay bounded by the
/// display limit however many alerts were held back.
async fn summary_suite(store: Store) {
    let storm = lane("storm");
    let at = t0() + Duration::days(2);
    let ingest = |body: String, offset: i64, fingerprints: Option<Vec<String>>| {
        let store = store.clone();
        async move {
            let received_at = at + Duration::seconds(offset);
            let notification = payload::parse(body.as_bytes(), received_at).expect("test fixture");
            let delivery = NewDelivery {
                contact: "storm".into(),
                channel: "webhook".into(),
                due_at: received_at,
                delayed: false,
                fingerprints,
            };
            let new = NewNotification {
                received_at,
                dedup_key: None,
                dedup_since: received_at,
                deliveries: vec![delivery],
                notification: payload::Encoded::new(notification).expect("encodes"),
                message: None,
            };
            store.ingest(new).await.expect("store operation");
        }
    };
    let names: Vec<String> = (0..250).map(|index| format!("Storm{index}")).collect();
    for (index, name) in names.iter().enumerate() {
        let body = crate::bridge_support::notification("team", name, &[(name, "warning", "firing")]);
        ingest(body, i64::try_from(index).expect("small"), None).await;
    }
    // Ten of them resolve; of a two-alert notification only one alert is routed.
    let resolved: Vec<(&str, &str, &str)> =
        names[..10].iter().map(|name| (name.as_str(), "warning", "resolved")).collect();
    ingest(crate::bridge_support::notification("team", "resolved", &resolved), 300, None).await;
    let pair = crate::bridge_support::notification(
        "team",
        "pair",
        &[("Routed", "warning", "firing"), ("NotRouted", "warning", "firing")],
    );
    let routed = payload::parse(pair.as_bytes(), at).expect("test fixture").alerts[0].fingerprint.clone();
    ingest(pair, 301, Some(vec![routed.clone()])).await;

    let due = at + Duration::minutes(10);
    let rows = store.due_rows(&storm, due, 1000).await.expect("store operation");
    assert_eq!(rows.len(), 252);
    let limited = rows.iter().map(|row| Transition::of(row, RowState::Limited, due)).collect();
    store.apply(limited, &storm, due).await.expect("store operation");
    let leader = rows[0].id;
    let mode = store
        .merge_lane(&storm, RowState::Limited, leader, Mode::Overflow, Mode::Notification, due)
        .await
        .expect("store operation");
    assert_eq!(mode, Mode::Overflow);
    assert_eq!(store.member_count(leader).await.expect("store operation"), 251);
    let pending = store.due_rows(&storm, due, 1000).await.expect("store operation");
    assert_eq!(pending.len(), 1, "one summary left in the lane");
    assert_eq!((pending[0].id, pending[0].mode), (leader, Mode::Overflow));

    let summary = store.summary(leader, 10).await.expect("store operation");
    let counts = summary.counts;
    assert_eq!((counts.alerts, counts.fired, counts.resolved, counts.still_firing), (251, 251, 10, 241));
    // The first ten of all, of those that fired and of those resolved are
    // the same ten; the first ten firing now are the next ten.
    let listed: Vec<(&str, Status)> =
        summary.listed.iter().map(|listed| (listed.alert.name(), listed.alert.status)).collect();
    assert_eq!(listed.len(), 20, "rows read are bounded by the display limit: {listed:?}");
    assert_eq!(listed[0], ("Storm0", Status::Resolved), "the latest version of an alert");
    assert_eq!(listed[10], ("Storm10", Status::Firing));
    assert!(summary.listed.iter().all(|listed| listed.fired));
    assert_eq!(summary.receiver, "team");
    assert_eq!(summary.received_at, at + Duration::seconds(301));
    assert_eq!(summary.external_url, "http://alertmanager.example:9093");
    assert_eq!(summary.common_labels.get("severity").map(String::as_str), Some("warning"));
    assert!(!summary.common_labels.contains_key("alertname"));
    assert!(summary.group_labels.is_empty(), "every storm notification has its own group");
    let all = store.summary(leader, 1000).await.expect("store operation");
    assert_eq!(all.listed.len(), 251);
    assert_eq!(all.listed.last().map(|listed| listed.alert.fingerprint.as_str()), Some(routed.as_str()));

    // Sending it tells the contact of every alert as it stands now.
    let fingerprint = |index: usize| all.listed[index].alert.fingerprint.clone();
    let mut told = Transition::of(&pending[0], RowState::Sent, due);
    told.told_firing = vec![(fingerprint(0), None)];
    store.apply(vec![told], &storm, due).await.expect("store operation");
    let mut sent = Transition::of(&pending[0], RowState::Sent, due);
    sent.told_summary = Some(leader);
    store.apply(vec![sent], &storm, due).await.expect("store operation");
    let told = store.told("storm", vec![fingerprint(0), fingerprint(10), fingerprint(249), routed]).await;
    let told = told.expect("store operation");
    assert_eq!(told.len(), 3, "firing ones told, the resolved one forgotten: {told:?}");
    assert!(!told.contains(&fingerprint(0)));
}

#[tokio::test]
async fn sqlite_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("test fixture");
    let path = dir.path().join("bridge.db");
    store_suite(Store::Sqlite(SqliteStore::open(&path).await.expect("store operation"))).await;
    // Reopening runs no migration twice and clears leases of the dead process.
    let reopened = SqliteStore::open(&path).await.expect("store operation");
    let wall = Utc::now();
    let store = Store::Sqlite(reopened);
    assert!(store.claim_lane("w", t0(), wall, wall + Duration::minutes(1)).await.expect("store operation").is_some());
    let dir = tempfile::tempdir().expect("test fixture");
    concurrency_suite(Store::Sqlite(SqliteStore::open(dir.path().join("race.db")).await.expect("store operation")))
        .await;
    summary_suite(Store::Sqlite(SqliteStore::open(dir.path().join("storm.db")).await.expect("store operation"))).await;
}

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let store = Store::Postgres(PostgresStore::open(&pg.url(), 4).await.expect("store operation"));
    store_suite(store).await;
    // A second replica opening the same database migrates nothing.
    let replica = Store::Postgres(PostgresStore::open(&pg.url(), 4).await.expect("store operation"));
    assert_eq!(replica.queue_stats().await.expect("store operation").pending, 1);
    // The concurrency suite's contacts differ from the first suite's, so
    // its leftovers (bob's pending row) do not matter.
    concurrency_suite(Store::Postgres(PostgresStore::open(&pg.url(), 8).await.expect("store operation"))).await;
    summary_suite(Store::Postgres(PostgresStore::open(&pg.url(), 4).await.expect("store operation"))).await;
}
