//! Shared test helpers: ports, binaries, child processes, certificates,
//! misbehaving servers and real peers (see `peers`).
//!
//! Every helper owns its resources and cleans them up on `Drop`, so a test
//! only keeps the returned value alive for as long as it needs the server.

// Each test module uses a different subset of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod certs;
pub mod client;
pub mod db;
pub mod fake;
pub mod grafana;
pub mod httpd;
pub mod module;
pub mod ops;
pub mod peers;
pub mod process;
pub mod tds_fake;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use certs::{Leaf, TestCerts};
pub use client::LineClient;
pub use fake::{FakeServer, ScriptStep, closed_port, hang_server, scripted_line_server, scripted_tls_server};
pub use process::{ChildGuard, run_to_completion};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before returning, so another process may grab it;
/// peers bind it right away, which makes that race rare enough for tests.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Returns `count` distinct free ports (see [`free_port`]).
pub fn free_ports(count: usize) -> Vec<u16> {
    // Hold every listener until all are chosen so no port repeats.
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    listeners.iter().map(|listener| listener.local_addr().expect("local addr").port()).collect()
}

/// `127.0.0.1:<port>`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until something accepts TCP connections on `addr`.
///
/// Returns `false` when `timeout` passes first.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr)).await;
        if matches!(attempt, Ok(Ok(_))) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the test runs in CI, where a missing peer is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Finds a binary by absolute path or by name in `PATH` (plus the sbin
/// directories, which a non-root `PATH` often lacks).
///
/// When it is missing: panics if `CI=true`, otherwise prints a notice to
/// stderr and returns `None` so the test can return early. Use
/// [`require_binary!`] to make that one line.
pub fn require_binary(name: &str, debian_package: &str) -> Option<PathBuf> {
    match find_binary(name) {
        Some(path) => Some(path),
        None => {
            unavailable(&format!("missing {name}: apt-get install {debian_package} (or run tests/install-peers.sh)"))
        }
    }
}

/// Like [`require_binary`] for a file that is not an executable (a module, a
/// glob-resolved path): `found` is what the caller located, if anything.
pub fn require_path(found: Option<PathBuf>, what: &str, debian_package: &str) -> Option<PathBuf> {
    match found {
        Some(path) => Some(path),
        None => {
            unavailable(&format!("missing {what}: apt-get install {debian_package} (or run tests/install-peers.sh)"))
        }
    }
}

/// A peer cannot run here: panics with `notice` under `CI=true`, otherwise
/// prints it and returns `None` so the caller can skip.
pub fn unavailable<T>(notice: &str) -> Option<T> {
    if in_ci() {
        panic!("{notice}");
    }
    eprintln!("skipping test: {notice}");
    None
}

/// Resolves `name` like a shell would, without the skip-or-panic policy.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// `let wrk = require_binary!("wrk", "wrk");` returns from the test (after a
/// notice, or panics under `CI=true`) when the binary is missing.
#[macro_export]
macro_rules! require_binary {
    ($name:expr, $package:expr) => {
        match $crate::support::require_binary($name, $package) {
            Some(path) => path,
            None => return,
        }
    };
}

/// `let pg = peer!(Postgres::start(PostgresOpts::default()).await);` returns
/// from the test when the peer's binaries are missing (see [`require_binary`]).
#[macro_export]
macro_rules! peer {
    ($start:expr) => {
        match $start {
            Some(peer) => peer,
            None => return,
        }
    };
}

/// Creates a temp dir that other local users (the `postgres`, `dovecot` and
/// `nobody` accounts peers run as) may traverse.
pub fn shared_temp_dir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix(&format!("checkit-{prefix}-")).tempdir().expect("create temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// Whether this process runs as root (peers then drop to service accounts).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Looks up a local account's uid and gid in `/etc/passwd`.
pub fn os_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0] != name {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    })
}

/// Writes `contents` to `path` with the given mode.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
}

/// Creates `path` (and parents) with the given mode.
pub fn make_dir(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).unwrap_or_else(|err| panic!("mkdir {}: {err}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
}

/// Recursively changes the owner of `path`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|err| panic!("chown {}: {err}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("dir entry").path(), uid, gid);
        }
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}

/// Asserts that `promtool check metrics` accepts `body` (`what` names it in the failure).
pub fn promtool_check_metrics(promtool: &Path, what: &str, body: &str) {
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), body.as_bytes()).expect("write");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool rejects {what}: {}{}\n{body}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
