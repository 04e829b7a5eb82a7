//! `ChildGuard`: a peer process in its own process group, stopped on drop.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a peer gets to exit after the stop signal before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// A running peer process. Dropping it signals its whole process group
/// (servers fork workers), waits up to a few seconds, then kills the group.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    /// Where the process's stdout and stderr go.
    pub output: PathBuf,
    /// Further log files worth showing when the peer misbehaves.
    pub logs: Vec<PathBuf>,
    stop_signal: &'static str,
    /// Set once the diagnostics were part of a panic message.
    reported: std::cell::Cell<bool>,
}

impl ChildGuard {
    /// Spawns `command` in a new process group with stdout and stderr appended
    /// to `output`. `name` labels diagnostics.
    pub fn spawn(name: &str, mut command: Command, output: &Path) -> ChildGuard {
        let log = File::options()
            .create(true)
            .append(true)
            .open(output)
            .unwrap_or_else(|err| panic!("{name}: open {}: {err}", output.display()));
        let log_err = log.try_clone().expect("clone log handle");
        command.stdin(Stdio::null()).stdout(log).stderr(log_err).process_group(0);
        let child = command.spawn().unwrap_or_else(|err| panic!("{name}: spawn {command:?}: {err}"));
        ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            output: output.to_owned(),
            logs: Vec::new(),
            stop_signal: "TERM",
            reported: std::cell::Cell::new(false),
        }
    }

    /// Adds a log file to the diagnostics.
    pub fn with_log(mut self, path: PathBuf) -> ChildGuard {
        self.logs.push(path);
        self
    }

    /// Uses `signal` (a `kill -s` name such as `INT`) for graceful stops.
    pub fn with_stop_signal(mut self, signal: &'static str) -> ChildGuard {
        self.stop_signal = signal;
        self
    }

    /// The leader's process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the leader process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines of the output and every extra log, for panic messages.
    pub fn diagnostics(&self) -> String {
        let mut text =
            format!("--- {} output ({}):\n{}", self.name, self.output.display(), super::log_tail(&self.output, 40));
        for log in &self.logs {
            text.push_str(&format!("\n--- {}:\n{}", log.display(), super::log_tail(log, 40)));
        }
        text
    }

    /// Panics with the diagnostics and `what`; the guard's drop then cleans up.
    pub fn fail(&self, what: &str) -> ! {
        self.reported.set(true);
        panic!("{}: {what}\n{}", self.name, self.diagnostics())
    }

    /// Waits until `ready` returns true, polling every 100 ms; panics with the
    /// logs when the process exits or `timeout` passes.
    pub async fn wait_until<F, Fut>(&mut self, timeout: Duration, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if ready().await {
                return;
            }
            if !self.is_running() {
                let status = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
                self.fail(&format!("exited ({status:?}) before {what}"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!("not {what} after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the peer accepts TCP connections on `addr`.
    pub async fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) {
        self.wait_until(timeout, &format!("listening on {addr}"), || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
    }

    /// Stops the process group gracefully (then forcefully) and reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), self.stop_signal);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Workers may outlive their leader; the group kill reaches them too.
        signal_group(child.id(), "KILL");
        let _ = child.wait();
    }

    /// Kills the process group with SIGKILL at once (a crash, not a stop).
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), "KILL");
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() && !self.reported.get() {
            eprintln!("{}", self.diagnostics());
        }
        self.stop();
    }
}

/// Runs a one-shot command (an `initdb`) to completion in its own process
/// group; panics with its output when it fails or outlives `timeout`.
pub async fn run_to_completion(name: &str, command: Command, output: &Path, timeout: Duration) {
    let mut guard = ChildGuard::spawn(name, command, output);
    let deadline = Instant::now() + timeout;
    loop {
        let status = guard.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
        if let Some(status) = status {
            if !status.success() {
                guard.fail(&format!("failed with {status}"));
            }
            guard.child = None;
            return;
        }
        if Instant::now() >= deadline {
            guard.fail(&format!("still running after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` to process group `pgid` with procps `kill`, which keeps
/// `unsafe` libc calls out of the tests.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
