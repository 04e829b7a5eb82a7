//! The one storage layer: every part in one SQLite file (or one PostgreSQL
//! database), per-part stores of older configs still honoured, and replicas
//! on PostgreSQL splitting the checks.

use crate::bridge_peers::Checkit;
use crate::bridge_support::Recorder;
use crate::peer;
use crate::support::app::start_app;
use crate::support::free_port;
use crate::support::peers::{Postgres, PostgresOpts};
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const MODULES: &str = "modules:\n  tcp_connect: {prober: tcp, timeout: 2s}\n";

fn all_parts(extra: &str) -> String {
    format!(
        "{MODULES}checks:\n- {{name: self, module: tcp_connect, target: '127.0.0.1:9', interval: 1h}}\n\
         bridge:\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{contacts: [ops]}}]\n\
         heartbeats:\n  checks:\n  - {{name: backup, uuid: 0b5a0c5e-3c55-4a39-9d2b-0f0e1e6f6a51, period: 10m, grace: 5m}}\n{extra}"
    )
}

/// The areas migrated in an SQLite file, with their versions.
fn areas(path: &std::path::Path) -> Vec<(String, i64)> {
    let connection = rusqlite::Connection::open(path).expect("open the store");
    let mut statement = connection
        .prepare("SELECT area, MAX(version) FROM storage_migrations GROUP BY area ORDER BY area")
        .expect("storage_migrations exists");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn db_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".db"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_part_keeps_its_state_in_one_sqlite_file_next_to_the_config() {
    let app = start_app(&all_parts("")).await;
    let dir = app.config_path.parent().expect("dir").to_path_buf();
    assert_eq!(db_files(&dir), ["checkit.db"], "one file for the bridge, the checks and the heartbeats");
    let found = areas(&dir.join("checkit.db"));
    let names: Vec<&str> = found.iter().map(|(area, _)| area.as_str()).collect();
    assert_eq!(names, ["bridge", "checks", "heartbeats"], "{found:?}");
    app.app.shutdown().await;
}

#[tokio::test]
async fn the_deprecated_per_part_stores_still_work_and_win_for_their_part() {
    let extra = "storage: {sqlite: {path: shared.db}}\n";
    let yaml = all_parts(extra)
        .replace("bridge:\n", "bridge:\n  store: {sqlite: {path: bridge.db}}\n")
        .replace("heartbeats:\n", "heartbeats:\n  store: {sqlite: {path: heartbeats.db}}\n")
        .replace(MODULES, &format!("{MODULES}check_options: {{store: {{sqlite: {{path: checks.db}}}}}}\n"));
    let app = start_app(&yaml).await;
    let dir = app.config_path.parent().expect("dir").to_path_buf();
    assert_eq!(db_files(&dir), ["bridge.db", "checks.db", "heartbeats.db"], "shared.db is used by nobody");
    assert_eq!(areas(&dir.join("bridge.db")).first().map(|(area, _)| area.as_str()), Some("bridge"));
    assert_eq!(areas(&dir.join("checks.db")).first().map(|(area, _)| area.as_str()), Some("checks"));
    app.app.shutdown().await;
}

#[tokio::test]
async fn a_file_of_an_older_checkit_is_taken_as_migrated_not_migrated_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old-checks.db");
    {
        // What a checkit that kept one file per part left behind: its tables
        // and one `schema_migrations` for them.
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection
            .execute_batch(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);
                 CREATE TABLE checks (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, paused INTEGER,
                     paused_at INTEGER, health TEXT NOT NULL DEFAULT 'unknown', health_since INTEGER);
                 CREATE TABLE rollups (check_id INTEGER NOT NULL);
                 CREATE TABLE incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, check_id INTEGER NOT NULL,
                     started_at INTEGER NOT NULL, ended_at INTEGER, phase TEXT NOT NULL, reason TEXT NOT NULL,
                     notified_at INTEGER);
                 INSERT INTO checks (name, paused) VALUES ('kept', 1);",
            )
            .expect("old schema");
    }
    let store = checkit::checks::store::CheckStore::open(&path).await.expect("opens without re-creating tables");
    let saved = store.saved().await.expect("read");
    assert_eq!(saved["kept"].paused, Some(true), "the old rows are there");
    assert!(areas(&path).iter().any(|(area, version)| area == "checks" && *version >= 1), "{:?}", areas(&path));
}

/// A client of the test database, as the test's own observer.
async fn database(pg: &Postgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Starts `count` checkit processes on one config (and database) in `dir`.
async fn replicas(dir: &Path, yaml: &str, count: usize) -> Vec<Checkit> {
    let config = dir.join("checkit.yml");
    std::fs::write(&config, yaml).expect("write config");
    let mut started = Vec::new();
    for index in 0..count {
        started.push(Checkit::start(&config, &dir.join(format!("replica-{index}.log")), free_port()).await);
    }
    started
}

fn storage_url_file(pg: &Postgres, dir: &Path) -> String {
    let url = dir.join("pg-url");
    std::fs::write(&url, pg.url()).expect("write url");
    url.display().to_string()
}

fn storage_block(pg: &Postgres, dir: &Path) -> String {
    format!("storage: {{postgres: {{url_file: {}}}}}\n", storage_url_file(pg, dir))
}

/// Waits (bounded) until `count` replicas of `role` are alive in the database.
async fn wait_for_replicas(client: &tokio_postgres::Client, role: &str, count: i64) {
    for _ in 0..300 {
        let alive: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM storage_replicas WHERE role = $1 AND alive_until >= \
                 CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[&role],
            )
            .await
            .map_or(0, |row| row.get(0));
        if alive >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} {role} replicas did not join");
}

/// Every stored run: check name → start times (ms), oldest first.
async fn runs(client: &tokio_postgres::Client) -> BTreeMap<String, Vec<i64>> {
    let rows = client
        .query("SELECT c.name, r.at FROM results r JOIN checks c ON c.id = r.check_id ORDER BY r.at", &[])
        .await
        .expect("read results");
    let mut runs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in rows {
        runs.entry(row.get(0)).or_default().push(row.get(1));
    }
    runs
}

const INTERVAL_MS: i64 = 2_000;
const CHECKS: usize = 8;

/// Starts two replicas sharing `pg` that run `CHECKS` TCP checks every
/// `interval` against a loopback listener; returns once both have joined.
async fn check_replicas(pg: &Postgres, dir: &Path, interval: &str) -> (tokio_postgres::Client, Vec<Checkit>) {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = target.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = target.accept().await {
            drop(stream);
        }
    });
    let checks: String = (0..CHECKS)
        .map(|index| format!("- {{name: c{index}, module: tcp_connect, target: '{address}', interval: {interval}}}\n"))
        .collect();
    let yaml = format!("{MODULES}{}checks:\n{checks}", storage_block(pg, dir));
    let client = database(pg).await;
    let started = replicas(dir, &yaml, 2).await;
    wait_for_replicas(&client, "checks", 2).await;
    (client, started)
}

#[tokio::test]
async fn two_replicas_on_postgres_run_each_check_once_per_interval_and_take_over_after_kill_9() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let (client, mut started) = check_replicas(&pg, dir.path(), "2s").await;
    // Let both replicas see each other (a refresh a second) before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = Utc::now().timestamp_millis();
    // The counted windows end at most 6.5 intervals after `from`.
    tokio::time::sleep(Duration::from_millis(u64::try_from(7 * INTERVAL_MS).unwrap_or(0))).await;
    let interval = Duration::from_millis(u64::try_from(INTERVAL_MS).unwrap_or(0));
    let all = runs(&client).await;
    for index in 0..CHECKS {
        let name = format!("c{index}");
        let offset = checkit::checks::schedule::offset(&name, interval).num_milliseconds();
        // Five whole slots, each counted from half an interval before it
        // (a run starts a few milliseconds after its slot).
        let first = from + (offset - from).rem_euclid(INTERVAL_MS) + INTERVAL_MS;
        let window = (first - INTERVAL_MS / 2)..(first + 5 * INTERVAL_MS - INTERVAL_MS / 2);
        let counted = all.get(&name).map_or(0, |ats| ats.iter().filter(|at| window.contains(at)).count());
        assert_eq!(counted, 5, "{name} runs once per interval across both replicas: {:?}", all.get(&name));
    }
    // Both replicas ran some of the checks: the work is split, not one idle.
    let http = reqwest::Client::new();
    for replica in &started {
        let metrics = http.get(replica.url("/metrics")).send().await.expect("metrics").text().await.expect("body");
        let ran: f64 = metrics
            .lines()
            .filter(|line| line.starts_with("checkit_checks_runs_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(ran > 0.0, "a replica ran no check: {metrics}");
    }
    let per_replica: Vec<String> = started.iter().map(|replica| replica.guard.diagnostics()).collect();

    started[0].guard.kill();
    let killed_at = Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(u64::try_from(3 * INTERVAL_MS).unwrap_or(0))).await;
    let after = runs(&client).await;
    for index in 0..CHECKS {
        let name = format!("c{index}");
        let next = after.get(&name).and_then(|ats| ats.iter().find(|at| **at > killed_at)).copied();
        let delay = next.map(|at| at - killed_at);
        assert!(
            delay.is_some_and(|delay| delay <= 2 * INTERVAL_MS),
            "{name} ran within two intervals of the kill (took {delay:?} ms): {per_replica:?}"
        );
        eprintln!("{name}: first run after kill -9 of a replica: {delay:?} ms");
    }
    drop(started);
}

#[tokio::test]
async fn a_killed_replica_s_lanes_pass_to_the_other_within_seconds_not_a_lease() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let recorder = Recorder::start().await;
    // Each delivery is held 4 s: the replica delivering holds its lane meanwhile.
    recorder.delay_answers(Duration::from_secs(4));
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "{}bridge:\n  workers: 1\n  contacts: {{ops: {{webhook: '{}'}}}}\n  routes: [{{contacts: [ops]}}]\n",
        storage_block(&pg, dir.path()),
        recorder.url("/ops")
    );
    let client = database(&pg).await;
    let mut started = replicas(dir.path(), &yaml, 2).await;
    wait_for_replicas(&client, "bridge", 2).await;
    const MESSAGES: usize = 3;
    let http = reqwest::Client::new();
    for index in 0..MESSAGES {
        let body = crate::bridge_support::notification(
            "team",
            &format!("g{index}"),
            &[(&format!("Alert{index}"), "warning", "firing")],
        );
        let response = http.post(started[0].url("/webhook")).body(body).send().await.expect("post");
        assert_eq!(response.status(), 200);
    }
    recorder.wait_for(1).await;
    // The replica whose lease it is (its name ends with its pid and a key).
    let owner: String = client
        .query_one("SELECT lease_owner FROM lanes WHERE lease_owner IS NOT NULL", &[])
        .await
        .expect("a leased lane")
        .get(0);
    let holder = started
        .iter()
        .position(|replica| owner.contains(&format!("-{}-", replica.guard.pid())))
        .unwrap_or_else(|| panic!("{owner} is none of the replicas"));
    let before = recorder.count();
    started[holder].guard.kill();
    let killed = std::time::Instant::now();
    // The survivor sends the interrupted message again (at least once) and the rest.
    let mut took = None;
    while killed.elapsed() < Duration::from_secs(90) {
        if recorder.count() > before {
            took = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = took.expect("the other replica delivered the held messages");
    assert!(took < Duration::from_secs(5), "the lane passed on after {took:?}, not within seconds");
    let delivered = || -> std::collections::BTreeSet<String> {
        recorder
            .requests()
            .iter()
            .filter_map(|request| {
                (0..MESSAGES).map(|index| format!("Alert{index}")).find(|name| request.body.contains(name.as_str()))
            })
            .collect()
    };
    crate::bridge_support::eventually("every message delivered", || (delivered().len() == MESSAGES).then_some(()))
        .await;
    eprintln!("lane takeover after kill -9: {took:?}");
    drop(started);
}

/// What the checks store must do on either backend: roll-ups equal to the raw
/// results, failures outliving raw retention, incidents, API pauses.
async fn check_store_suite(store: checkit::checks::store::CheckStore) {
    use checkit::checks::rollup::Period;
    use checkit::checks::state::Incident;
    use checkit::checks::store::{NewChange, NewResult};
    use chrono::TimeZone;
    let saved = store.register(vec!["a".into(), "b".into()]).await.expect("register");
    let id = saved["a"].id;
    assert_ne!(id, saved["b"].id);
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 22, 0, 0).unwrap();
    for step in 0..240i64 {
        let success = step % 7 != 0;
        let result = NewResult {
            check_id: id,
            at: start + chrono::Duration::seconds(step * 60),
            duration_us: Some(1_000 + (step as u64 % 13) * 10_000),
            success,
            failure: (!success).then(|| ("connect".into(), "refused".into())),
            maintenance: step % 50 == 49,
        };
        store.record(result, None).await.expect("record");
    }
    let end = start + chrono::Duration::hours(4);
    let raw = store.raw_rollup(id, start, end).await.expect("raw");
    assert_eq!(raw, store.rollup(id, Period::Hour, start, end).await.expect("hourly"));
    assert_eq!(raw, store.rollup(id, Period::Day, start, end).await.expect("daily"));
    assert_eq!((raw.runs, raw.maintenance_runs), (236, 4));
    assert_eq!(store.rollups_by_check(Period::Hour, start, end).await.expect("all")[&id], raw);
    assert_eq!(store.count_results(id, start, end).await.expect("count"), 240);
    let days = store.day_counts(start, end).await.expect("day counts");
    let first_day = store.rollup(id, Period::Day, start, start + chrono::Duration::hours(2)).await.expect("day");
    let midnight = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    assert_eq!(days[&id].len(), 2, "the evening's day and the next, oldest first");
    assert_eq!(days[&id][0], checkit::checks::store::DayCount::of(midnight, &first_day));
    assert_eq!(days[&id].iter().map(|count| count.runs).sum::<u64>(), raw.runs);
    assert!(!days.contains_key(&saved["b"].id), "a check without runs has no days");

    let down_at = end + chrono::Duration::minutes(1);
    let incident = Incident {
        id: None,
        started_at: down_at,
        ended_at: None,
        phase: "connect".into(),
        reason: "refused".into(),
        notified_at: None,
    };
    let failed = NewResult {
        check_id: id,
        at: down_at,
        duration_us: Some(5),
        success: false,
        failure: Some(("connect".into(), "refused".into())),
        maintenance: false,
    };
    let opened = store.record(failed, Some(NewChange::Down(incident))).await.expect("down").expect("incident id");
    store.mark_notified(opened, down_at).await.expect("notified");
    store.set_paused(vec![id], true, down_at).await.expect("pause");
    let again = store.saved_one("a").await.expect("saved").expect("known");
    assert_eq!((again.paused, again.incident.as_ref().and_then(|incident| incident.id)), (Some(true), Some(opened)));
    assert_eq!(again.incident.and_then(|incident| incident.notified_at), Some(down_at));
    assert_eq!(store.pauses().await.expect("pauses").get(&id), Some(&true));

    store.expire(id, end, start).await.expect("expire");
    assert_eq!(store.raw_rollup(id, start, end).await.expect("raw").runs, 0);
    assert_eq!(store.rollup(id, Period::Hour, start, end).await.expect("hourly"), raw, "roll-ups outlive raw rows");
    let failures = store.results(id, start, end, 1000).await.expect("results");
    assert!(!failures.is_empty() && failures.iter().all(|result| !result.success), "failures are kept");
    let incidents = store.incidents(id, start, end + chrono::Duration::hours(1), 10).await.expect("incidents");
    assert_eq!(incidents.len(), 1);

    // What the status pages read, and operators' notes and planned windows.
    let series = store.series(vec![id], Period::Hour, start, end).await.expect("series");
    assert_eq!(series[&id].len(), 4);
    assert_eq!(series[&id].iter().map(|(_, rollup)| rollup.runs).sum::<u64>(), raw.runs);
    let all = store.incidents_of_all(start, end + chrono::Duration::hours(1), 10).await.expect("incidents of all");
    assert_eq!(all.iter().map(|(check, incident)| (*check, incident.id)).collect::<Vec<_>>(), [(id, Some(opened))]);
    assert_eq!(store.incident_by_id(opened).await.expect("by id").map(|(check, _)| check), Some(id));
    use checkit::checks::annotations::{Planned, Update, UpdateStatus};
    let update = Update { at: down_at, status: UpdateStatus::Identified, body: "**db** full".into(), author: None };
    store.annotate(opened, Some("DB down".into()), Some(update.clone())).await.expect("annotate");
    assert!(store.annotate(opened + 1000, None, None).await.is_err(), "no such incident");
    let notes = store.notes(vec![opened - 1, opened, opened + 1]).await.expect("notes");
    assert_eq!(notes.len(), 1, "only incidents with notes: {notes:?}");
    assert_eq!((notes[&opened].title.as_deref(), &notes[&opened].updates[..]), (Some("DB down"), &[update][..]));
    let planned = Planned {
        id: 0,
        title: "upgrade".into(),
        start: end,
        end: end + chrono::Duration::hours(1),
        checks: vec!["a".into()],
        created_by: Some("olivia".into()),
    };
    let planned_id = store.add_planned(planned.clone(), start).await.expect("plan");
    assert_eq!(store.planned(start).await.expect("planned"), [Planned { id: planned_id, ..planned }]);
    assert!(store.end_planned(planned_id, start).await.expect("cancel"), "a window not started is cancelled");
    let cancelled = store.planned(start).await.expect("planned");
    assert_eq!(cancelled.iter().map(|planned| (planned.start, planned.end)).collect::<Vec<_>>(), [(end, end)]);
    let later = end + chrono::Duration::hours(2);
    assert!(!store.end_planned(planned_id, later).await.expect("again"), "an ended window stays ended");
}

#[tokio::test]
async fn the_checks_store_behaves_the_same_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = checkit::checks::store::CheckStore::open(dir.path().join("checks.db")).await.expect("sqlite");
    check_store_suite(sqlite).await;
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let config = checkit::storage::config::StorageConfig {
        sqlite: None,
        postgres: Some(checkit::storage::config::PostgresConfig {
            url_file: Some(storage_url_file(&pg, dir.path())),
            ..Default::default()
        }),
    };
    let storage = checkit::storage::Storage::open(&config).await.expect("postgres");
    check_store_suite(checkit::checks::store::CheckStore::new(storage).await.expect("migrate")).await;
}

#[tokio::test]
async fn heartbeat_pings_and_states_survive_a_reopen_on_sqlite_and_postgres() {
    use checkit::heartbeat::state::{Kind, Record};
    use checkit::heartbeat::store::{Ping, Store};
    use checkit::storage::config::{PostgresConfig, StorageConfig};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut configs = vec![StorageConfig::sqlite(dir.path().join("hb.db").display().to_string())];
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let url_file = Some(storage_url_file(&pg, dir.path()));
    configs.push(StorageConfig { sqlite: None, postgres: Some(PostgresConfig { url_file, ..Default::default() }) });
    for config in configs {
        let open = || async { Store::new(checkit::storage::Storage::open(&config).await.expect("open")).await };
        let store = open().await.expect("migrate");
        let mut record = Record::default();
        for second in 1..=5i64 {
            let at = chrono::DateTime::from_timestamp(1_800_000_000 + second, 0).expect("time");
            record.last_ping = Some(at);
            let ping = Ping {
                at,
                kind: Kind::Success,
                exit_status: Some(0),
                rid: None,
                duration_seconds: Some(1.5),
                source: "uuid",
                method: "POST".into(),
                remote_addr: Some("127.0.0.1".into()),
                user_agent: None,
                body: format!("run {second}"),
                body_truncated: false,
            };
            store.save("backup", Some(ping), &record, 3, at).await.expect("save");
        }
        drop(store);
        let store = open().await.expect("a second migration changes nothing");
        let pings = store.pings("backup", 10).await.expect("pings");
        assert_eq!(pings.iter().map(|ping| ping.body.as_str()).collect::<Vec<_>>(), ["run 5", "run 4", "run 3"]);
        assert_eq!((pings[0].duration_seconds, pings[0].exit_status), (Some(1.5), Some(0)));
        assert_eq!(store.records().await.expect("records")["backup"], record);
    }
}

/// The rows of the window table on `replica`'s `/ui/maintenance`.
async fn listed_windows(http: &reqwest::Client, replica: &Checkit) -> Vec<String> {
    let page = http.get(replica.url("/ui/maintenance")).send().await.expect("get").text().await.expect("body");
    let table = page.split("<tbody>").nth(1).and_then(|rest| rest.split("</tbody>").next()).unwrap_or_default();
    table.split("<tr data-active=").skip(1).map(|row| row.to_string()).collect()
}

/// Polls `replica`'s maintenance list (bounded: 10 s) until `wanted` says yes.
async fn wait_for_listing(http: &reqwest::Client, replica: &Checkit, wanted: impl Fn(&[String]) -> bool) -> bool {
    for _ in 0..100 {
        if wanted(&listed_windows(http, replica).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn maintenance_planned_on_one_replica_applies_on_the_other_within_seconds() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let (client, started) = check_replicas(&pg, dir.path(), "1s").await;
    let http = reqwest::Client::new();
    let (planner, other) = (&started[0], &started[1]);
    assert!(listed_windows(&http, other).await.is_empty(), "nothing planned yet");

    // Plan a window over every check on the first replica, as an operator would.
    crate::web_ui::plan_window_over_every_check(&http, &planner.url("/ui/maintenance"), "Replica-wide upgrade").await;
    let planned_at = Utc::now().timestamp_millis();

    // The other replica lists it, and every check (each run by one of the
    // two replicas) stores its next runs as maintenance.
    assert!(
        wait_for_listing(&http, other, |rows| rows.iter().any(|row| row.contains("Replica-wide upgrade"))).await,
        "the other replica never listed the window: {:?}",
        listed_windows(&http, other).await
    );
    let mut marked = BTreeMap::new();
    for _ in 0..100 {
        let rows = client
            .query(
                "SELECT c.name, COUNT(*) FROM results r JOIN checks c ON c.id = r.check_id \
                 WHERE r.at > $1 AND (r.flags & 2) <> 0 GROUP BY c.name",
                &[&(planned_at + 1_500)],
            )
            .await
            .expect("read results");
        marked = rows.iter().map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1))).collect();
        if marked.len() == CHECKS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(marked.len(), CHECKS, "every check ran in maintenance on whichever replica runs it: {marked:?}");

    // Ending it on the first replica ends it on the other one too.
    let page = http.get(planner.url("/ui/maintenance")).send().await.expect("get").text().await.expect("body");
    let action = page
        .split("action=\"/ui/maintenance/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("an End now form: {page}"))
        .to_string();
    let token = crate::web_ui::form_token(&page);
    let response = http
        .post(planner.url(&format!("/ui/maintenance/{action}")))
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    assert!(
        wait_for_listing(&http, other, |rows| !rows.iter().any(|row| row.contains("Replica-wide upgrade"))).await,
        "the other replica still lists the ended window: {:?}",
        listed_windows(&http, other).await
    );
    drop(started);
}

/// Posts agent `index`'s batch of check `site` results, `(seconds before
/// `base`, success)`, to `replica`.
async fn push_to(
    http: &reqwest::Client,
    replica: &Checkit,
    index: usize,
    batch_id: &str,
    base: chrono::DateTime<Utc>,
    runs: &[(i64, bool)],
) -> serde_json::Value {
    let results: Vec<serde_json::Value> = runs
        .iter()
        .map(|(seconds, success)| {
            serde_json::json!({"check": "site", "at": base + chrono::Duration::seconds(*seconds),
                "duration_seconds": 0.01, "success": success})
        })
        .collect();
    let response = http
        .post(replica.url("/api/v1/agent/results"))
        .bearer_auth(format!("agent-token-{index}-0123456789abcdef"))
        .json(&serde_json::json!({"batch_id": batch_id, "sent_at": Utc::now(), "results": results}))
        .send()
        .await
        .expect("POST batch");
    assert_eq!(response.status(), 200);
    response.json().await.expect("batch answer")
}

/// (incidents, ended incidents, health) of check `site`.
async fn site_history(client: &tokio_postgres::Client) -> (i64, i64, String) {
    let row = client
        .query_one(
            "SELECT (SELECT COUNT(*) FROM incidents i WHERE i.check_id = c.id), \
             (SELECT COUNT(ended_at) FROM incidents i WHERE i.check_id = c.id), c.health FROM checks c \
             WHERE c.name = 'site'",
            &[],
        )
        .await
        .expect("read site");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn agents_results_reach_any_replica_and_the_check_s_owner_decides_its_quorum_once() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut agents = String::from("agents:\n");
    for index in 0..3 {
        std::fs::write(dir.path().join(format!("token{index}")), format!("agent-token-{index}-0123456789abcdef\n"))
            .expect("token");
        agents.push_str(&format!(
            "- {{name: agent{index}, location: loc{index}, token_file: token{index}, stale_after: 1h}}\n"
        ));
    }
    let yaml = format!(
        "{MODULES}{}{agents}checks:\n- {{name: site, module: tcp_connect, target: '127.0.0.1:9', interval: 1s, \
         failures_before_down: 1, locations: [loc0, loc1, loc2], down_when: {{failing: 2, of: 3}}}}\n",
        storage_block(&pg, dir.path())
    );
    let client = database(&pg).await;
    let started = replicas(dir.path(), &yaml, 2).await;
    wait_for_replicas(&client, "checks", 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().expect("client");
    let base = Utc::now() - chrono::Duration::seconds(60);
    // Every batch to replica 0, then every batch to replica 1: whichever owns
    // `site`, the other one took a whole outage's results.
    for index in 0..3 {
        push_to(&http, &started[0], index, &format!("up{index}"), base, &[(0, true)]).await;
    }
    push_to(&http, &started[0], 0, "a0", base, &[(1, false)]).await;
    push_to(&http, &started[0], 1, "a1", base, &[(1, false)]).await;
    push_to(&http, &started[0], 0, "a0-up", base, &[(2, true)]).await;
    push_to(&http, &started[1], 2, "b2", base, &[(3, false)]).await;
    push_to(&http, &started[1], 1, "b1-up", base, &[(4, true)]).await;
    push_to(&http, &started[1], 2, "b2-up", base, &[(4, true)]).await;
    let mut history = site_history(&client).await;
    for _ in 0..100 {
        if history == (2, 2, "up".to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        history = site_history(&client).await;
    }
    assert_eq!(history, (2, 2, "up".to_string()), "two outages, each stored once, both over");
    // Every replica follows every location, whoever took the batch: the
    // follower reads the stored rows every lease heartbeat, so a busy machine
    // may need a few rounds (bounded) before both agree.
    for replica in &started {
        let mut site = serde_json::Value::Null;
        for _ in 0..100 {
            site = http.get(replica.url("/api/v1/checks/site")).send().await.expect("GET").json().await.expect("json");
            let at = site["check"]["locations"]["loc2"]["last_at"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            let caught_up =
                ["loc0", "loc1", "loc2"].iter().all(|location| site["check"]["locations"][location]["state"] == "up")
                    && at.map(|at| at.timestamp()) == Some((base + chrono::Duration::seconds(4)).timestamp());
            if caught_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let locations = &site["check"]["locations"];
        for location in ["loc0", "loc1", "loc2"] {
            assert_eq!(locations[location]["state"], "up", "{location}: {site}");
        }
        let last = locations["loc2"]["last_at"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
        assert_eq!(last.map(|at| at.timestamp()), Some((base + chrono::Duration::seconds(4)).timestamp()), "{site}");
    }

    // A batch sent twice, to either replica or to both at once, is stored once.
    let first = push_to(&http, &started[0], 0, "twice", base, &[(5, true), (6, true)]).await;
    let again = push_to(&http, &started[1], 0, "twice", base, &[(5, true), (6, true)]).await;
    assert_eq!((first["duplicate"].clone(), first["stored"].clone()), (false.into(), 2.into()));
    assert_eq!(again["duplicate"], true, "{again}");
    let runs = [(7, true), (8, true), (9, true)];
    let (left, right) = tokio::join!(
        push_to(&http, &started[0], 0, "both", base, &runs),
        push_to(&http, &started[1], 0, "both", base, &runs)
    );
    let stored = left["stored"].as_i64().unwrap_or(0) + right["stored"].as_i64().unwrap_or(0);
    assert_eq!(stored, 3, "one of two concurrent twins stored: {left} {right}");
    let rows: i64 = client
        .query_one("SELECT COUNT(*) FROM location_results WHERE location = 'loc0'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 1 + 1 + 1 + 2 + 3, "every loc0 result stored exactly once");
    let batches: i64 = client
        .query_one("SELECT COUNT(*) FROM agent_batches WHERE batch_id IN ('twice', 'both')", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(batches, 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site_history(&client).await.0, 2, "no replica opened another incident");
    drop(started);
}
