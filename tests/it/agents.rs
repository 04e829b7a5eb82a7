//! Remote agents as real `checkit agent` processes, each in its own network
//! namespace joined to the host (where the central checkit and the target
//! run) by a veth pair, so a test cuts an agent's link (`ip link set down`)
//! or blocks the target from one namespace (`ip route add blackhole`).
//!
//! Needs root (CI has it); skipped otherwise, except under `CI=true`, where
//! it fails. Namespaces and links carry a per-run name and go on drop, also
//! when a test fails.

use crate::support::peers::{SmtpOpts, SmtpServer};
use crate::support::{ChildGuard, free_port};
use rusqlite::{Connection, OpenFlags};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NETS: AtomicU32 = AtomicU32::new(0);
const TOKEN_BYTES: &str = "0123456789abcdef0123456789abcdef";

/// Whether the tests may create namespaces; under CI they must.
fn privileged() -> bool {
    let root =
        Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let has_ip = Path::new("/usr/sbin/ip").exists() || Path::new("/sbin/ip").exists();
    if root && has_ip {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "network-namespace tests need root and iproute2 under CI");
    eprintln!("skipped: network-namespace tests need root and iproute2");
    false
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

/// The host plus one namespace per agent, and a target address of the host
/// that every agent reaches through its veth.
struct Net {
    id: String,
    unit: u32,
    agents: usize,
}

impl Net {
    fn new(agents: usize) -> Net {
        let serial = NETS.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let net = Net { id: format!("ck{}x{serial}", pid % 100_000), unit: (pid * 7 + serial * 31) % 250 + 1, agents };
        for index in 0..agents {
            let ns = net.ns(index);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let (host, inside) = (net.host_link(index), format!("{}a{index}", net.id));
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inside, "netns", &ns]);
            ip(&["addr", "add", &format!("{}/24", net.central_ip(index)), "dev", &host]);
            ip(&["link", "set", &host, "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.agent_ip(index)), "dev", &inside]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "route", "add", "default", "via", &net.central_ip(index)]);
        }
        // The target's address is one more host address (on the last link;
        // the kernel has no dummy links here): every namespace reaches it
        // through its own veth and default route, as a host address.
        ip(&["addr", "add", &format!("{}/32", net.target_ip()), "dev", &net.host_link(agents - 1)]);
        net
    }

    fn ns(&self, index: usize) -> String {
        format!("{}n{index}", self.id)
    }

    fn host_link(&self, index: usize) -> String {
        format!("{}h{index}", self.id)
    }

    /// The host's end of agent `index`'s link: where the central instance listens for it.
    fn central_ip(&self, index: usize) -> String {
        format!("10.{}.{}.1", 200 + index, self.unit)
    }

    fn agent_ip(&self, index: usize) -> String {
        format!("10.{}.{}.2", 200 + index, self.unit)
    }

    fn target_ip(&self) -> String {
        format!("10.210.{}.1", self.unit)
    }

    fn cut(&self, index: usize) {
        ip(&["link", "set", &self.host_link(index), "down"]);
    }

    fn restore(&self, index: usize) {
        ip(&["link", "set", &self.host_link(index), "up"]);
    }

    fn block_target(&self, index: usize) {
        ip(&["-n", &self.ns(index), "route", "add", "blackhole", &format!("{}/32", self.target_ip())]);
    }

    fn unblock_target(&self, index: usize) {
        ip(&["-n", &self.ns(index), "route", "del", "blackhole", &format!("{}/32", self.target_ip())]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for index in 0..self.agents {
            // Deleting the namespace deletes its veth end and so the pair.
            let _ = Command::new("ip").args(["netns", "del", &self.ns(index)]).output();
        }
    }
}

/// A TCP target on the dummy address that accepts (and drops) connections.
struct Target {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    async fn start(net: &Net) -> Target {
        let listener = tokio::net::TcpListener::bind((net.target_ip().as_str(), 0)).await.expect("bind target");
        let addr = listener.local_addr().expect("target addr");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        Target { addr, task }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Central {
    process: ChildGuard,
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    listens: Vec<String>,
}

impl Central {
    fn spawn(dir: &Path, yaml: &str, listens: Vec<String>, port: u16) -> Central {
        let config = dir.join("central.yml");
        std::fs::write(&config, yaml).expect("write central config");
        let process = ChildGuard::spawn("central", Self::command(&config, port, &listens), &dir.join("central.log"));
        Central { process, dir: dir.to_path_buf(), config, port, listens }
    }

    fn command(config: &Path, port: u16, listens: &[String]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_checkit"));
        command.arg("--config.file").arg(config);
        command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        for address in listens {
            command.arg(format!("--web.listen-address={address}:{port}"));
        }
        command
    }

    fn restart(&mut self) {
        let command = Self::command(&self.config, self.port, &self.listens);
        self.process = ChildGuard::spawn("central", command, &self.dir.join("central.log"));
    }

    async fn wait_ready(&mut self) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        self.process.wait_for_port(addr, Duration::from_secs(30)).await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn store(&self) -> PathBuf {
        self.dir.join("checks.db")
    }

    /// Results stored from `location`.
    fn count(&self, location: &str) -> u64 {
        let Ok(connection) = Connection::open_with_flags(self.store(), OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return 0;
        };
        let _ = connection.busy_timeout(Duration::from_secs(5));
        let rows: i64 = connection
            .query_row("SELECT COUNT(*) FROM location_results WHERE location = ?1", [location], |row| row.get(0))
            .unwrap_or(0);
        u64::try_from(rows).unwrap_or(0)
    }

    /// Hourly roll-up runs of every check (only agent checks exist in these tests).
    fn rollup_runs(&self) -> u64 {
        let Ok(connection) = Connection::open_with_flags(self.store(), OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return 0;
        };
        let runs: i64 = connection
            .query_row("SELECT COALESCE(SUM(runs + maintenance_runs), 0) FROM rollups WHERE period = 0", [], |row| {
                row.get(0)
            })
            .unwrap_or(0);
        u64::try_from(runs).unwrap_or(0)
    }

    /// Every stored (check, agent time) of `location`.
    fn keys(&self, location: &str) -> Vec<(String, i64)> {
        let connection =
            Connection::open_with_flags(self.store(), OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open central store");
        let mut statement = connection
            .prepare(
                "SELECT c.name, r.agent_at FROM location_results r JOIN checks c ON c.id = r.check_id \
                 WHERE r.location = ?1 ORDER BY 1, 2",
            )
            .expect("prepare");
        statement
            .query_map([location], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

struct AgentProcess {
    process: ChildGuard,
    queue: PathBuf,
}

fn spawn_agent(net: &Net, index: usize, dir: &Path, central_port: u16, extra: &[String]) -> AgentProcess {
    let queue = dir.join(format!("agent{index}.db"));
    let token = dir.join(format!("token{index}"));
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &net.ns(index), env!("CARGO_BIN_EXE_checkit"), "agent"]);
    command.arg(format!("--central.url=http://{}:{central_port}/", net.central_ip(index)));
    command.arg(format!("--token.file={}", token.display()));
    command.arg(format!("--location=loc{index}"));
    command.arg(format!("--queue.path={}", queue.display()));
    command.arg("--refresh-interval=5s");
    command.args(extra);
    let process = ChildGuard::spawn(&format!("agent{index}"), command, &dir.join(format!("agent{index}.log")));
    AgentProcess { process, queue }
}

/// Every (check, agent time) waiting in an agent's queue file.
fn queued(queue: &Path) -> Vec<(String, i64)> {
    let Ok(connection) = Connection::open_with_flags(queue, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let _ = connection.busy_timeout(Duration::from_secs(5));
    let Ok(mut statement) = connection.prepare("SELECT check_name, at FROM queue ORDER BY seq") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn write_tokens(dir: &Path, agents: usize) {
    for index in 0..agents {
        std::fs::write(dir.join(format!("token{index}")), format!("{TOKEN_BYTES}{index}\n")).expect("token");
    }
}

fn agents_yaml(agents: usize) -> String {
    let mut yaml = String::from("agents:\n");
    for index in 0..agents {
        yaml.push_str(&format!(
            "  - {{name: agent{index}, location: loc{index}, token_file: token{index}, stale_after: 20s}}\n"
        ));
    }
    yaml
}

async fn poll<F: FnMut() -> bool>(timeout: Duration, what: &str, mut ready: F) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "not {what} after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One agent's namespace, a target, and a central process with `checks`
/// tcp checks every `interval` at the agent's location, ready.
async fn one_agent(checks: usize, interval: &str) -> (Net, Target, tempfile::TempDir, u16, Central) {
    let net = Net::new(1);
    let target = Target::start(&net).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_tokens(dir.path(), 1);
    let mut yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 1s}}\n{}check_options: {{store: {{sqlite: {{path: checks.db}}}}}}\nchecks:\n",
        agents_yaml(1)
    );
    for index in 0..checks {
        yaml.push_str(&format!(
            "  - {{name: c{index}, module: tcp_connect, target: '{}', interval: {interval}, locations: [loc0]}}\n",
            target.addr
        ));
    }
    let port = free_port();
    let mut central = Central::spawn(dir.path(), &yaml, vec![net.central_ip(0)], port);
    central.wait_ready().await;
    (net, target, dir, port, central)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_queues_every_result_and_delivers_each_exactly_once_across_kills() {
    if !privileged() {
        return;
    }
    let (net, _target, dir, port, mut central) = one_agent(100, "5s").await;
    let mut agent = spawn_agent(&net, 0, dir.path(), port, &[]);
    poll(Duration::from_secs(30), "100 results stored", || central.count("loc0") >= 100).await;

    // Cut the link for 70 s; kill -9 the agent 35 s in and start it again
    // (the central instance unreachable: it runs its saved assignment).
    net.cut(0);
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored_at_cut = central.count("loc0");
    tokio::time::sleep(Duration::from_secs(32)).await;
    let before_kill = queued(&agent.queue);
    assert!(before_kill.len() >= 500, "30 s of 100 checks every 5 s are queued: {}", before_kill.len());
    agent.process.kill();
    let after_kill = queued(&agent.queue);
    assert!(
        before_kill.iter().all(|row| after_kill.contains(row)),
        "kill -9 lost queued results ({} before, {} after)",
        before_kill.len(),
        after_kill.len()
    );
    agent = spawn_agent(&net, 0, dir.path(), port, &[]);
    poll(Duration::from_secs(30), "the restarted agent queueing from its saved assignment", || {
        queued(&agent.queue).len() >= after_kill.len() + 100
    })
    .await;
    let remaining = Duration::from_secs(70).saturating_sub(cut_at.elapsed());
    tokio::time::sleep(remaining).await;
    assert_eq!(central.count("loc0"), stored_at_cut, "nothing arrives through a cut link");
    let outage = queued(&agent.queue);
    assert!(outage.len() >= 1000, "70 s of 100 checks every 5 s, minus the restart: {}", outage.len());
    net.restore(0);

    // After the link returns every queued result arrives; kill -9 of the
    // central instance meanwhile loses no acknowledged batch.
    poll(Duration::from_secs(60), "the queue drained", || queued(&agent.queue).len() < 200).await;
    // Rows queued now and gone once the central instance is dead were
    // acknowledged by it: every one must be in its store.
    // On a quiet machine the queue may be empty here: wait for rows, then for
    // one of them to be acknowledged (both bounded), rather than a fixed time.
    poll(Duration::from_secs(30), "a result queued after the drain", || !queued(&agent.queue).is_empty()).await;
    let before_central_kill = queued(&agent.queue);
    poll(Duration::from_secs(30), "a batch acknowledged", || {
        let now = queued(&agent.queue);
        before_central_kill.iter().any(|row| !now.contains(row))
    })
    .await;
    central.process.kill();
    let after_central_kill = queued(&agent.queue);
    let stored = central.keys("loc0");
    let acknowledged: Vec<_> = before_central_kill.iter().filter(|row| !after_central_kill.contains(row)).collect();
    assert!(!acknowledged.is_empty(), "no batch was acknowledged before the kill");
    for row in acknowledged {
        assert!(stored.binary_search(row).is_ok(), "acknowledged {row:?} lost by kill -9 of the central instance");
    }
    central.restart();
    central.wait_ready().await;
    poll(Duration::from_secs(60), "the queue drained after the central restart", || queued(&agent.queue).len() < 150)
        .await;
    agent.process.stop();
    // A graceful stop leaves at most the results of the last second queued; restart to push them.
    let leftover = queued(&agent.queue);
    let mut agent = spawn_agent(&net, 0, dir.path(), port, &[]);
    poll(Duration::from_secs(30), "the leftover pushed", || {
        let keys = central.keys("loc0");
        leftover.iter().all(|row| keys.binary_search(row).is_ok())
    })
    .await;
    agent.process.stop();
    let stored = central.keys("loc0");
    for row in &outage {
        assert!(stored.binary_search(row).is_ok(), "result {row:?} queued during the outage never arrived");
    }
    // Exactly once: every stored result was counted once in the roll-ups,
    // and the queue holds nothing the central instance lacks.
    assert_eq!(central.rollup_runs(), stored.len() as u64, "a result was applied twice (or lost from the roll-ups)");
    let mut per_check = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for (check, at) in &stored {
        per_check.entry(check.clone()).or_default().push(*at);
    }
    assert_eq!(per_check.len(), 100);
    for (check, times) in per_check {
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= 4_000, "{check}: two results {} ms apart", pair[1] - pair[0]);
        }
    }
}

fn quorum_yaml(target: SocketAddr, smtp: &SmtpServer) -> String {
    format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 1s}}\n{}\
         check_options: {{store: {{sqlite: {{path: checks.db}}}}}}\n\
         checks:\n  - {{name: site, module: tcp_connect, target: '{target}', interval: 1s, failures_before_down: 2, \
         locations: [loc0, loc1, loc2], down_when: {{failing: 2, of: 3}}, labels: {{team: ops}}}}\n\
         bridge:\n  store: {{sqlite: {{path: bridge.db}}}}\n  \
         contacts: {{alice: {{email: alice@example.com}}, bob: {{email: bob@example.com}}}}\n  \
         routes: [{{matchers: ['alertname=\"CheckDown\"'], contacts: [alice]}}, \
         {{matchers: ['alertname=\"AgentSilent\"'], contacts: [bob]}}]\n  \
         channels:\n    email: {{smarthost: localhost, port: {}, from: checkit@checkit.test, tls: none}}\n",
        agents_yaml(3),
        smtp.addr.port()
    )
}

/// The incidents of check `site`, from the checks API.
async fn site_incidents(client: &reqwest::Client, central: &Central) -> Vec<serde_json::Value> {
    let response = client.get(central.url("/api/v1/checks/site/incidents")).send().await.expect("GET incidents");
    let body: serde_json::Value = response.json().await.expect("incidents json");
    body["incidents"].as_array().expect("incidents").clone()
}

async fn check_json(client: &reqwest::Client, central: &Central, name: &str) -> serde_json::Value {
    let response = client.get(central.url(&format!("/api/v1/checks/{name}"))).send().await.expect("GET check");
    response.json::<serde_json::Value>().await.expect("check json")["check"].clone()
}

async fn location_state(client: &reqwest::Client, central: &Central, location: &str) -> Option<String> {
    let body = client.get(central.url("/metrics")).send().await.ok()?.text().await.ok()?;
    body.lines()
        .find(|line| {
            line.starts_with("checkit_check_location_state{")
                && line.contains(&format!("location=\"{location}\""))
                && line.ends_with(" 1.0")
        })
        .and_then(|line| line.split("state=\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_pages_only_when_two_locations_see_the_target_down() {
    if !privileged() {
        return;
    }
    let Some(smtp) = SmtpServer::start(SmtpOpts::default()).await else { return };
    let net = Net::new(3);
    let target = Target::start(&net).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_tokens(dir.path(), 3);
    let port = free_port();
    let listens = (0..3).map(|index| net.central_ip(index)).collect();
    let mut central = Central::spawn(dir.path(), &quorum_yaml(target.addr, &smtp), listens, port);
    central.wait_ready().await;
    let agents: Vec<AgentProcess> = (0..3).map(|index| spawn_agent(&net, index, dir.path(), port, &[])).collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while check_json(&client, &central, "site").await["state"] != "up" {
        assert!(Instant::now() < deadline, "site never up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    net.block_target(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while location_state(&client, &central, "loc0").await.as_deref() != Some("down") {
        assert!(Instant::now() < deadline, "loc0 never down");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // One location down of three: the check stays up for a while and nobody is paged.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let site = check_json(&client, &central, "site").await;
    assert_eq!(site["state"], "up", "{site}");
    assert!(smtp.messages().is_empty(), "paged with only one location down");

    net.block_target(1);
    let mails = smtp.wait_for_messages(1, Duration::from_secs(30)).await;
    assert!(mails[0].data.contains("site is down"), "{}", mails[0].data);
    assert_eq!(check_json(&client, &central, "site").await["state"], "down");

    // Back from both: one resolved message.
    net.unblock_target(0);
    net.unblock_target(1);
    let mails = smtp.wait_for_messages(2, Duration::from_secs(30)).await;
    assert!(mails[1].data.contains("site is up again"), "{}", mails[1].data);

    // Two links cut for 10 s: both agents see the target fail (it is behind
    // the link too) and queue it; the results arrive after the outage is
    // over, enter history, and page nobody.
    net.cut(0);
    net.cut(1);
    let cut_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    net.restore(0);
    net.restore(1);
    let restored_at = chrono::Utc::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let site = check_json(&client, &central, "site").await;
        let fresh = |location: &str| {
            site["locations"][location]["last_at"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| at > restored_at + chrono::Duration::seconds(2))
        };
        if fresh("loc0") && fresh("loc1") {
            break;
        }
        assert!(Instant::now() < deadline, "the cut agents never caught up: {site}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to_alice =
        smtp.messages().iter().filter(|mail| mail.rcpt_tos.iter().any(|to| to == "alice@example.com")).count();
    assert_eq!(to_alice, 2, "an outage already over when its results arrived was announced");
    let results: serde_json::Value = client
        .get(central.url(&format!("/api/v1/checks/site/results?from={}&limit=1000", cut_at.timestamp())))
        .send()
        .await
        .expect("GET results")
        .json()
        .await
        .expect("results json");
    let late_failures = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|result| result["location"] == "loc0" && result["success"] == false)
        .count();
    assert!(late_failures >= 5, "the outage's results are in history: {results}");

    // A silent agent counts as unknown: stop two agents and block the
    // target from the third one's namespace too; nothing pages.
    let mut agents = agents;
    agents[0].process.kill();
    agents[1].process.kill();
    let deadline = Instant::now() + Duration::from_secs(40);
    while location_state(&client, &central, "loc0").await.as_deref() != Some("unknown") {
        assert!(Instant::now() < deadline, "a silent agent's location never unknown");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    net.block_target(2);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(check_json(&client, &central, "site").await["state"], "up", "one failing location of three");
    let to = |rcpt: &str| -> Vec<String> {
        smtp.messages()
            .into_iter()
            .filter(|mail| mail.rcpt_tos.iter().any(|to| to == rcpt))
            .map(|mail| mail.data)
            .collect()
    };
    assert_eq!(to("alice@example.com").len(), 2, "no page from one failing and two unknown locations");
    // The silent agents are alerts of their own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while to("bob@example.com").is_empty() {
        assert!(Instant::now() < deadline, "no AgentSilent mail");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let silent = to("bob@example.com").join("\n");
    assert!(silent.contains("AgentSilent") && silent.contains("has not reported"), "{silent}");
    drop(central);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_and_foreign_checks_are_refused_and_clock_skew_is_corrected() {
    if !privileged() {
        return;
    }
    let net = Net::new(2);
    let target = Target::start(&net).await;
    let dir = tempfile::tempdir().expect("temp dir");
    write_tokens(dir.path(), 2);
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 1s}}\n{}check_options: {{store: {{sqlite: {{path: checks.db}}}}}}\n\
         checks:\n  - {{name: mine, module: tcp_connect, target: '{}', interval: 2s, locations: [loc0]}}\n  \
         - {{name: theirs, module: tcp_connect, target: '{}', interval: 2s, locations: [loc1]}}\n",
        agents_yaml(2),
        target.addr,
        target.addr
    );
    let port = free_port();
    let listens = (0..2).map(|index| net.central_ip(index)).collect();
    let mut central = Central::spawn(dir.path(), &yaml, listens, port);
    central.wait_ready().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("client");
    let batch = |check: &str| {
        serde_json::json!({"batch_id": "b1", "sent_at": chrono::Utc::now(), "results": [
            {"check": check, "at": chrono::Utc::now(), "duration_seconds": 0.01, "success": true}]})
    };
    let response = client
        .post(central.url("/api/v1/agent/results"))
        .bearer_auth("not-a-token")
        .json(&batch("mine"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 401);
    let response = client
        .post(central.url("/api/v1/agent/results"))
        .bearer_auth(format!("{TOKEN_BYTES}0"))
        .json(&batch("theirs"))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    let body = response.text().await.expect("body");
    assert!(body.contains("checks not assigned to location \\\"loc0\\\": theirs"), "{body}");
    let response = client.get(central.url("/api/v1/agent/checks")).send().await.expect("GET");
    assert_eq!(response.status(), 401);
    // An agent whose token file holds another token is refused.
    let wrong_dir = dir.path().join("wrong");
    std::fs::create_dir(&wrong_dir).expect("dir");
    std::fs::write(wrong_dir.join("token1"), "wrong-token-wrong-token\n").expect("token");
    let wrong = spawn_agent(&net, 1, &wrong_dir, port, &[]);

    // An agent 90 s ahead: its results land at the central receive time
    // minus their age, never in the future.
    let mut ahead = spawn_agent(&net, 0, dir.path(), port, &["--test.clock-offset-seconds=90".into()]);
    poll(Duration::from_secs(30), "skewed results stored", || central.count("loc0") >= 5).await;
    ahead.process.stop();
    let connection =
        Connection::open_with_flags(central.store(), OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open central store");
    let mut statement =
        connection.prepare("SELECT agent_at, at FROM location_results WHERE location = 'loc0'").expect("prepare");
    let rows: Vec<(i64, i64)> =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).expect("query").filter_map(Result::ok).collect();
    let now = chrono::Utc::now().timestamp_millis();
    for (agent_at, at) in &rows {
        assert!(*at <= now, "a result in the central future");
        let corrected_by = agent_at - at;
        assert!((88_000..=92_000).contains(&corrected_by), "corrected by {corrected_by} ms, not ~90 s: {rows:?}");
    }
    let mut times: Vec<i64> = rows.iter().map(|(_, at)| *at).collect();
    times.sort_unstable();
    assert!(times.windows(2).all(|pair| pair[1] - pair[0] >= 1_500), "history stays one result per 2 s: {times:?}");
    let wrong_log = std::fs::read_to_string(&wrong.process.output).unwrap_or_default();
    assert!(wrong_log.contains("401"), "the wrong token was not refused:\n{wrong_log}");
    assert_eq!(central.count("loc1"), 0, "nothing stored from the wrong token");
    assert!(wrong_log.contains("Cannot fetch the assignment"), "{wrong_log}");
    assert!(queued(&wrong.queue).is_empty(), "an agent never assigned anything runs nothing");
}

/// Pushes one batch as agent `index` of a central process's `agents:`.
async fn push(
    client: &reqwest::Client,
    central: &Central,
    index: usize,
    batch_id: &str,
    runs: &[(i64, bool)],
) -> serde_json::Value {
    push_to(client, &central.url(""), index, batch_id, runs).await
}

/// Pushes one batch as agent `index` to the central instance at `base`;
/// `runs` are (seconds ago, success) of check `site`.
async fn push_to(
    client: &reqwest::Client,
    base: &str,
    index: usize,
    batch_id: &str,
    runs: &[(i64, bool)],
) -> serde_json::Value {
    let now = chrono::Utc::now();
    let results: Vec<serde_json::Value> = runs
        .iter()
        .map(|(seconds_ago, success)| {
            let mut result = serde_json::json!({"check": "site", "at": now - chrono::Duration::seconds(*seconds_ago),
                "duration_seconds": 0.01, "success": success});
            if !success {
                result["phase"] = "connect".into();
                result["reason"] = "refused".into();
            }
            result
        })
        .collect();
    let response = client
        .post(format!("{base}/api/v1/agent/results"))
        .bearer_auth(format!("{TOKEN_BYTES}{index}"))
        .json(&serde_json::json!({"batch_id": batch_id, "sent_at": now, "results": results}))
        .send()
        .await
        .expect("POST batch");
    assert_eq!(response.status(), 200);
    response.json().await.expect("batch answer")
}

/// A central instance with the 2-of-3 quorum check `site` (target
/// 127.0.0.1:9, three agents' tokens) paging to a real SMTP peer, and a
/// client; `None` when the peer is missing outside CI.
async fn quorum_central() -> Option<(SmtpServer, tempfile::TempDir, Central, reqwest::Client)> {
    let smtp = SmtpServer::start(SmtpOpts::default()).await?;
    let dir = tempfile::tempdir().expect("temp dir");
    write_tokens(dir.path(), 3);
    let port = free_port();
    let target: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let mut central = Central::spawn(dir.path(), &quorum_yaml(target, &smtp), Vec::new(), port);
    central.wait_ready().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("client");
    Some((smtp, dir, central, client))
}

/// No namespaces needed: the pushes come from the test itself, on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_outage_already_over_when_its_results_arrive_is_history_not_a_page() {
    let Some((smtp, _dir, mut central, client)) = quorum_central().await else { return };
    // loc2 up, loc0 down (two failures), each in its own batch.
    push(&client, &central, 2, "b2", &[(30, true), (29, true)]).await;
    push(&client, &central, 0, "b0", &[(30, false), (29, false)]).await;
    assert_eq!(check_json(&client, &central, "site").await["state"], "unknown", "one down, one up, one unknown");
    // loc1's late batch: down (the quorum is reached), then up again.
    let answer = push(&client, &central, 1, "b1", &[(25, false), (24, false), (23, true), (22, true)]).await;
    assert_eq!(answer["stored"], 4);
    let again = push(&client, &central, 1, "b1", &[(25, false), (24, false), (23, true), (22, true)]).await;
    assert_eq!(again["duplicate"], true, "a batch sent twice is stored once");
    let site = check_json(&client, &central, "site").await;
    assert_eq!(site["state"], "up", "{site}");
    let incidents = site_incidents(&client, &central).await;
    assert_eq!(incidents.len(), 1, "the outage is in history: {incidents:?}");
    assert!(incidents[0]["ended_at"].is_string() && incidents[0]["notified_at"].is_null(), "{incidents:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.messages().is_empty(), "an outage already over was announced");
    // A quorum that only late results show waits for fresh ones: one
    // location's fresh failure is not enough (the other's is 30 s old), the
    // second location's fresh failure pages.
    push(&client, &central, 1, "b1-2", &[(10, false), (9, false)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.messages().is_empty(), "a down only late results show was announced before a fresh result");
    push(&client, &central, 1, "b1-3", &[(0, false)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.messages().is_empty(), "paged with one location down by a fresh result");
    push(&client, &central, 0, "b0-2", &[(0, false)]).await;
    let mails = smtp.wait_for_messages(1, Duration::from_secs(30)).await;
    assert!(mails[0].data.contains("site is down"), "{}", mails[0].data);
    central.process.stop();
}

/// The 2-of-3 namespace test's race, without namespaces: two agents back
/// from a cut deliver their backlog, one of them in two batches whose second
/// holds only young failures (measured just before its link came back). The
/// quorum goes down in history; nobody is paged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_ending_in_young_failures_pages_nobody() {
    let Some((smtp, _dir, mut central, client)) = quorum_central().await else { return };
    for index in 0..3 {
        push(&client, &central, index, &format!("up{index}"), &[(20, true)]).await;
    }
    assert_eq!(check_json(&client, &central, "site").await["state"], "up");
    let cut: Vec<(i64, bool)> = (3..=12).rev().map(|seconds_ago| (seconds_ago, false)).collect();
    push(&client, &central, 0, "cut0", &cut).await;
    push(&client, &central, 1, "cut1", &cut).await;
    let tail = push(&client, &central, 1, "cut1-tail", &[(2, false), (1, false)]).await;
    assert_eq!(tail["stored"], 2);
    let site = check_json(&client, &central, "site").await;
    assert_eq!(site["state"], "down", "two locations down in history: {site}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.messages().is_empty(), "a backlog's failures paged");
    // The links are back: fresh successes end the untold outage quietly.
    push(&client, &central, 0, "back0", &[(0, true)]).await;
    push(&client, &central, 1, "back1", &[(0, true)]).await;
    assert_eq!(check_json(&client, &central, "site").await["state"], "up");
    let incidents = site_incidents(&client, &central).await;
    assert_eq!(incidents.len(), 1, "the outage is in history: {incidents:?}");
    assert!(incidents[0]["notified_at"].is_null(), "{incidents:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.messages().is_empty(), "an outage only a backlog showed was announced");
    central.process.stop();
}

/// A window planned from the UI covers what agents push as it covers
/// checkit's own runs: their results are stored as maintenance results, and
/// the quorum's outage during the window pages nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_window_covers_the_results_agents_push() {
    let Some((smtp, _dir, mut central, client)) = quorum_central().await else { return };
    for index in 0..3 {
        push(&client, &central, index, &format!("up{index}"), &[(20, true)]).await;
    }
    assert_eq!(check_json(&client, &central, "site").await["state"], "up");
    crate::web_ui::plan_window_over_every_check(&client, &central.url("/ui/maintenance"), "Network work").await;
    // Two of three locations see the target down, well inside the window.
    push(&client, &central, 0, "down0", &[(1, false), (0, false)]).await;
    push(&client, &central, 1, "down1", &[(1, false), (0, false)]).await;
    let csv = client
        .get(central.url("/api/v1/checks/site/results?format=csv"))
        .send()
        .await
        .expect("GET csv")
        .text()
        .await
        .expect("csv");
    for location in ["loc0", "loc1"] {
        let marked = csv.lines().filter(|line| line.ends_with(&format!(",false,true,connect,refused,{location}")));
        assert_eq!(marked.count(), 2, "{location}'s failures are not maintenance results:\n{csv}");
    }
    assert!(
        csv.lines().filter(|line| line.contains(",true,false,,,loc")).count() == 3,
        "the results before the window are ordinary:\n{csv}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.messages().is_empty(), "an outage inside a planned window paged");
    central.process.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_its_oldest_results_with_a_metric_and_a_log_line() {
    if !privileged() {
        return;
    }
    let (net, _target, dir, port, central) = one_agent(20, "1s").await;
    let metrics_port = free_port();
    let metrics = format!("{}:{metrics_port}", net.agent_ip(0));
    let mut agent = spawn_agent(
        &net,
        0,
        dir.path(),
        port,
        &["--queue.max-size=50".into(), format!("--metrics.listen-address={metrics}")],
    );
    poll(Duration::from_secs(30), "results stored", || central.count("loc0") >= 20).await;
    net.cut(0);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let rows = queued(&agent.queue);
    assert!(rows.len() <= 50, "the size bound holds: {}", rows.len());
    let newest = rows.iter().map(|(_, at)| *at).max().unwrap_or_default();
    let oldest = rows.iter().map(|(_, at)| *at).min().unwrap_or_default();
    assert!(newest - oldest < 4_000, "the oldest went first: {oldest}..{newest}");
    let log = std::fs::read_to_string(&agent.process.output).unwrap_or_default();
    assert!(log.contains("Queue bound reached; dropped the oldest results.") && log.contains("reason=size"), "{log}");
    net.restore(0);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("client");
    let mut dropped = 0.0;
    for _ in 0..50 {
        if let Ok(response) = client.get(format!("http://{metrics}/metrics")).send().await {
            let body = response.text().await.unwrap_or_default();
            dropped = body
                .lines()
                .find(|line| line.starts_with("checkit_agent_queue_dropped_total{reason=\"size\"}"))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dropped >= 50.0, "checkit_agent_queue_dropped_total{{reason=\"size\"}} = {dropped}");
    agent.process.stop();
}

/// The check page of a check run by agents, in Chromium: loc0 up, loc1 down
/// (two failures of three), loc2 without results.
#[tokio::test]
async fn check_page_shows_each_location_in_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tokens(dir.path(), 3);
    let mut yaml =
        String::from("modules:\n  tcp_connect: {prober: tcp, timeout: 1s}\nui:\n  operators: [olivia]\nagents:\n");
    for index in 0..3 {
        yaml.push_str(&format!(
            "  - {{name: agent{index}, location: loc{index}, token_file: '{}', stale_after: 1h}}\n",
            dir.path().join(format!("token{index}")).display()
        ));
    }
    yaml.push_str(
        "checks:\n  - {name: site, module: tcp_connect, target: '127.0.0.1:9', interval: 10s, notify: false, \
         locations: [loc0, loc1, loc2], down_when: {failing: 2, of: 3}}\n",
    );
    let app = crate::support::app::start_app_with(
        &yaml,
        checkit::app::Options::default(),
        crate::web_ui::web_config(dir.path()),
    )
    .await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build().expect("client");
    push_to(&client, &app.url(""), 0, "b0", &[(30, true), (20, true), (10, true)]).await;
    push_to(&client, &app.url(""), 1, "b1", &[(30, true), (20, false), (10, false)]).await;
    // /metrics: the per-check last-run families, per location (loc2 has no result yet).
    let metrics = client
        .get(app.url("/metrics"))
        .basic_auth("olivia", Some("pw"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    let value = |family: &str, location: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(&format!("{family}{{")) && line.contains(&format!("location=\"{location}\"")))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(value("checkit_check_location_last_success", "loc0"), Some(1.0), "{metrics}");
    assert_eq!(value("checkit_check_location_last_success", "loc1"), Some(0.0), "{metrics}");
    assert_eq!(value("checkit_check_location_last_duration_seconds", "loc1"), Some(0.01), "{metrics}");
    let started = value("checkit_check_location_last_run_timestamp_seconds", "loc0").unwrap_or_default();
    assert!((chrono::Utc::now().timestamp() as f64 - started - 10.0).abs() < 5.0, "{metrics}");
    assert_eq!(value("checkit_check_location_last_success", "loc2"), None, "{metrics}");
    // Both CSV exports name the location that measured each result.
    for (path, failed) in [
        ("/checks/site/results.csv", ",false,false,\"connect\",\"refused\",\"loc1\""),
        ("/api/v1/checks/site/results?format=csv", ",false,false,connect,refused,loc1"),
    ] {
        let response = client.get(app.url(path)).basic_auth("olivia", Some("pw")).send().await.expect("GET csv");
        assert_eq!(response.status(), 200, "{path}");
        let csv = response.text().await.expect("csv");
        assert!(csv.starts_with("at,duration_seconds,success,maintenance,phase,reason,location\n"), "{csv}");
        assert_eq!(csv.lines().filter(|line| line.ends_with(failed)).count(), 2, "{path}: {csv}");
    }
    let screenshots = crate::web_browser::screenshot_dir("locations");
    crate::web_browser::run_script("locations.mjs", &app.url(""), "olivia", "pw", &screenshots, &[]).await;
    for name in ["check-locations.png", "check-locations-dark-phone.png"] {
        assert!(screenshots.join(name).is_file(), "{name} written");
    }
}
