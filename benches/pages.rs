//! Status page, check page and badge benchmark (not a test).
//!
//! Seeds a checks store with 200 checks and one year of hourly and daily
//! roll-ups (about 0.3% of hours failing, each such hour an incident), starts
//! the real app on loopback with one public status page showing all 200
//! checks in four groups, lets every check run once, then requests each page
//! and badge many times over one keep-alive connection and prints, per route,
//! the time to the last body byte (p50/p99; on loopback this is the server's
//! time plus well under 0.1 ms of client work) and the body size.
//!
//! ```text
//! cargo bench --bench pages
//! cargo bench --bench pages -- --checks 200 --requests 300
//! ```
//!
//! Targets (issue 10): status page under 20 ms and under 150 KB, badges under 2 ms.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use checkit::app::{App, ConfigSource, Options};
use checkit::checks::store::CheckStore;
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use std::time::{Duration, Instant};

#[path = "support/args.rs"]
mod args;
use args::arg;

/// One year of hourly roll-ups per check (240 runs an hour, ~0.3% of hours
/// with 40 failures), the daily roll-ups summed from them, and an incident
/// for each failing hour: written with SQL, as a year of scheduling would
/// take a year.
const SEED: &str = "
WITH RECURSIVE hours(h) AS (SELECT 1 UNION ALL SELECT h + 1 FROM hours WHERE h < 8760)
INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, duration_sum_us,
                     duration_min_us, duration_max_us, b2, b3, b4)
SELECT checks.id, 0, ?1 - h * 3600000, 240,
       CASE WHEN abs((checks.id * 7919 + h * 104729) % 1000) < 3 THEN 200 ELSE 240 END,
       0, 240 * (15000 + (h % 7) * 2000), 4000, 180000, 80, 140, 20
FROM checks, hours;
INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, duration_sum_us,
                     duration_min_us, duration_max_us, b2, b3, b4)
SELECT check_id, 1, (start / 86400000) * 86400000, SUM(runs), SUM(successes), 0, SUM(duration_sum_us),
       MIN(duration_min_us), MAX(duration_max_us), SUM(b2), SUM(b3), SUM(b4)
FROM rollups WHERE period = 0 GROUP BY check_id, start / 86400000;
INSERT INTO incidents (check_id, started_at, ended_at, phase, reason)
SELECT check_id, start + 300000, start + 1800000, 'connect', 'refused' FROM rollups
WHERE period = 0 AND successes < runs;
";

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    bytes: usize,
}

async fn measure(client: &reqwest::Client, url: &str, requests: usize) -> Figures {
    for _ in 0..requests.min(20) {
        let response = client.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        response.bytes().await.unwrap();
    }
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    for _ in 0..requests {
        let began = Instant::now();
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        times.push(began.elapsed());
        bytes = body.len();
    }
    times.sort();
    let at = |share: f64| {
        let index = ((times.len() as f64 * share).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1000.0
    };
    Figures { p50_ms: at(0.50), p99_ms: at(0.99), bytes }
}

#[tokio::main]
async fn main() {
    let checks = arg("--checks", 200);
    let requests = usize::try_from(arg("--requests", 300)).unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("checks.db");
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = target.accept().await {
            drop(stream);
        }
    });

    let names: Vec<String> = (0..checks).map(|index| format!("check-{index:03}")).collect();
    {
        let store = CheckStore::open(&store_path).await.unwrap();
        store.register(names.clone()).await.unwrap();
    }
    let began = Instant::now();
    let now_hour = chrono::Utc::now().timestamp() / 3600 * 3_600_000;
    let seed_path = store_path.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let mut connection = rusqlite::Connection::open(&seed_path).unwrap();
        connection.busy_timeout(Duration::from_secs(30)).unwrap();
        let transaction = connection.transaction().unwrap();
        for statement in SEED.split(";\n").map(str::trim).filter(|statement| !statement.is_empty()) {
            if statement.contains("?1") {
                transaction.execute(statement, [now_hour]).unwrap();
            } else {
                transaction.execute(statement, []).unwrap();
            }
        }
        transaction.commit().unwrap();
        let count = |sql: &str| connection.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        (count("SELECT COUNT(*) FROM rollups"), count("SELECT COUNT(*) FROM incidents"))
    })
    .await
    .unwrap();
    println!(
        "seeded {checks} checks: {} roll-ups, {} incidents in {:.1} s",
        rows.0,
        rows.1,
        began.elapsed().as_secs_f64()
    );

    let mut yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         check_options:\n  store: {{sqlite: {{path: '{}'}}}}\n  defaults: {{interval: 10s, notify: false}}\n\
         checks:\n",
        store_path.display()
    );
    for (index, name) in names.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{name: {name}, module: tcp_connect, target: '{target_addr}', labels: {{team: t{}}}}}\n",
            index % 4
        ));
    }
    yaml.push_str("status_pages:\n  - slug: all\n    title: Everything\n    public: true\n    groups:\n");
    for team in 0..4 {
        yaml.push_str(&format!("      - {{name: Team {team}, selector: ['team=\"t{team}\"']}}\n"));
    }
    let config_path = dir.path().join("checkit.yml");
    std::fs::write(&config_path, yaml).unwrap();
    let config = Config::load(&config_path).unwrap();
    let app = App::new(config, ConfigSource::File(config_path), Options::default(), Web::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    app.serve(listener, app.router(), &Default::default());
    // Every check runs once (10 s interval) before anything is measured.
    tokio::time::sleep(Duration::from_secs(11)).await;
    app.checks().unwrap().refresh_uptime().await.unwrap();

    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let base = format!("http://{addr}");
    let routes = [
        ("status page", "/status/all".to_string(), requests),
        ("status summary.json", "/status/all/summary.json".to_string(), requests),
        ("status feed.atom", "/status/all/feed.atom".to_string(), requests),
        ("check page 24h", "/checks/check-007".to_string(), requests),
        ("check page 30d", "/checks/check-007?window=30d".to_string(), requests),
        ("badge status.svg", "/badge/check-007/status.svg".to_string(), requests * 4),
        ("badge uptime/1y.svg", "/badge/check-007/uptime/1y.svg".to_string(), requests * 4),
        ("badge response-time/30d.shields", "/badge/check-007/response-time/30d.shields".to_string(), requests * 4),
    ];
    println!("{:<34} {:>9} {:>9} {:>10}", "route", "p50 ms", "p99 ms", "bytes");
    for (name, path, count) in routes {
        let figures = measure(&client, &format!("{base}{path}"), count).await;
        println!("{name:<34} {:>9.2} {:>9.2} {:>10}", figures.p50_ms, figures.p99_ms, figures.bytes);
    }
    app.shutdown().await;
}
