//! Checks store benchmark (not a test): disk per check per day and write rate.
//!
//! Writes one simulated day of results for N checks at a 15 s interval
//! (5,760 results a check; 2% failures, durations 1–200 ms) into a fresh
//! SQLite checks store, with every check writing concurrently (as the
//! scheduler does) so the writer's group commit is exercised. Prints results
//! stored per second, the file size after a checkpoint, and bytes per check
//! per day (raw rows + hourly/daily roll-ups + failures).
//!
//! ```text
//! cargo bench --bench checks_store
//! cargo bench --bench checks_store -- --checks 1000 --hours 24
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use checkit::checks::store::{CheckStore, NewResult};
use chrono::{Duration, TimeZone, Utc};
use std::time::Instant;

#[path = "support/args.rs"]
mod args;
use args::arg;

#[tokio::main]
async fn main() {
    let checks = arg("--checks", 200);
    let hours = arg("--hours", 24);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checks.db");
    let store = CheckStore::open(&path).await.unwrap();
    let names: Vec<String> = (0..checks).map(|index| format!("check-{index:05}")).collect();
    let saved = store.register(names.clone()).await.unwrap();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let per_check = hours * 3600 / 15;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for name in names {
        let store = store.clone();
        let id = saved[&name].id;
        tasks.push(tokio::spawn(async move {
            for step in 0..per_check {
                let success = (step * 7 + id) % 50 != 0;
                let result = NewResult {
                    check_id: id,
                    at: start + Duration::seconds(step * 15) + Duration::milliseconds(id % 15_000),
                    duration_us: Some(1_000 + ((step * 7919 + id * 104_729) % 199_000) as u64),
                    success,
                    failure: (!success).then(|| ("connect".to_string(), "refused".to_string())),
                    maintenance: false,
                };
                store.record(result, None).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = began.elapsed().as_secs_f64();
    let total = checks * per_check;
    drop(store);
    // Fold the WAL into the main file so the size is the steady-state size.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let pages: i64 = connection.query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
    let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
    let bytes = pages * page_size;
    let per_check_day = bytes as f64 / checks as f64 * 24.0 / hours as f64;
    println!("checks: {checks}, simulated hours: {hours}, results: {total}");
    println!("write: {:.0} results/s ({elapsed:.1} s)", total as f64 / elapsed);
    println!("file: {:.1} MiB; per check per day: {:.0} KiB", bytes as f64 / 1048576.0, per_check_day / 1024.0);
    println!(
        "10,000 checks at 15 s with 48 h raw retention: ~{:.1} GiB",
        per_check_day * 2.0 * 10_000.0 / 1073741824.0
    );
}
