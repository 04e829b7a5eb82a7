//! The one storage layer: every part in one SQLite file (or one PostgreSQL
//! database), per-part stores of older configs still honoured, and replicas
//! on PostgreSQL splitting the checks.

use crate::support::app::start_app;

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
