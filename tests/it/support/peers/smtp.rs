//! SMTP: aiosmtpd (`support/smtpd.py`) with STARTTLS, AUTH, implicit TLS, a
//! message spool and runtime-switchable failure replies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::START_TIMEOUT;
use crate::support::{ChildGuard, Leaf, TestCerts, free_port, loopback, make_dir, require_binary, shared_temp_dir};

/// How to start [`SmtpServer`].
#[derive(Clone, Debug)]
pub struct SmtpOpts {
    /// AUTH PLAIN/LOGIN user (accepted only after STARTTLS on `addr`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Also listen with implicit TLS (SMTPS) on `tls_addr`.
    pub implicit_tls: bool,
    /// Refuse every command but EHLO/STARTTLS/QUIT before STARTTLS.
    pub require_starttls: bool,
    /// Refuse MAIL before AUTH.
    pub auth_required: bool,
    /// Certificate the server presents.
    pub leaf: Leaf,
    /// Name in the greeting and EHLO reply.
    pub hostname: String,
}

impl Default for SmtpOpts {
    fn default() -> Self {
        SmtpOpts {
            user: "checkit".into(),
            password: "checkit-smtp-secret".into(),
            implicit_tls: false,
            require_starttls: false,
            auth_required: false,
            leaf: Leaf::Valid,
            hostname: "smtp.checkit.test".into(),
        }
    }
}

/// SMTP command whose reply can be forced (see [`SmtpServer::set_failure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpStage {
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// The end of `DATA`.
    Data,
}

/// A forced reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpFailure {
    /// `451 4.3.0 Temporary failure (test)`.
    Temporary,
    /// `550 5.7.1 Permanent failure (test)`.
    Permanent,
    /// Any full reply line, such as `452 4.2.2 Mailbox full`.
    Reply(String),
}

/// One message the server accepted.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ReceivedMail {
    /// Envelope sender.
    pub mail_from: String,
    /// Envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The raw message (headers and body), lossily decoded as UTF-8.
    pub data: String,
    /// The client's EHLO/HELO name.
    pub helo: Option<String>,
    /// The AUTH user, when the client authenticated.
    pub auth_user: Option<String>,
    /// Whether the session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
}

/// A running aiosmtpd; can be stopped, killed and restarted on the same ports.
pub struct SmtpServer {
    /// Plain listener offering STARTTLS: `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// Implicit-TLS listener, when `opts.implicit_tls`.
    pub tls_addr: Option<SocketAddr>,
    /// AUTH user.
    pub user: String,
    /// AUTH password.
    pub password: String,
    /// Certificates; the server presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    /// Directory with one `<seq>.json` per accepted message.
    pub spool: PathBuf,
    control: PathBuf,
    args: Vec<String>,
    python: PathBuf,
    output: PathBuf,
    guard: Option<ChildGuard>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts the server and waits until it greets.
    pub async fn start(opts: SmtpOpts) -> Option<SmtpServer> {
        let python = require_binary("/usr/bin/python3", "python3-aiosmtpd")?;
        let has_aiosmtpd =
            Command::new(&python).args(["-c", "import aiosmtpd"]).status().is_ok_and(|status| status.success());
        if !has_aiosmtpd {
            crate::support::require_path(None, "python module aiosmtpd", "python3-aiosmtpd")?;
        }
        let dir = shared_temp_dir("smtp");
        let spool = dir.path().join("spool");
        let control = dir.path().join("control");
        make_dir(&spool, 0o755);
        make_dir(&control, 0o755);
        let certs = TestCerts::generate();
        let leaf = certs.leaf(opts.leaf);
        let port = free_port();
        let tls_port = opts.implicit_tls.then(free_port);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/smtpd.py");
        let mut args: Vec<String> = vec![
            script.into(),
            format!("--port={port}"),
            format!("--cert={}", leaf.cert_path.display()),
            format!("--key={}", leaf.key_path.display()),
            format!("--user={}", opts.user),
            format!("--password={}", opts.password),
            format!("--spool={}", spool.display()),
            format!("--control={}", control.display()),
            format!("--hostname={}", opts.hostname),
        ];
        if let Some(tls_port) = tls_port {
            args.push(format!("--tls-port={tls_port}"));
        }
        if opts.require_starttls {
            args.push("--require-starttls".into());
        }
        if opts.auth_required {
            args.push("--auth-required".into());
        }
        let mut server = SmtpServer {
            addr: loopback(port),
            tls_addr: tls_port.map(loopback),
            user: opts.user,
            password: opts.password,
            certs,
            spool,
            control,
            args,
            python,
            output: dir.path().join("smtpd.log"),
            guard: None,
            _dir: dir,
        };
        server.restart().await;
        Some(server)
    }

    /// Starts the server again (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)) on the same ports, keeping the spool.
    pub async fn restart(&mut self) {
        self.stop();
        let mut command = Command::new(&self.python);
        command.args(&self.args).env("PYTHONUNBUFFERED", "1");
        let mut guard = ChildGuard::spawn("aiosmtpd", command, &self.output);
        guard.wait_for_port(self.addr, START_TIMEOUT).await;
        if let Some(tls_addr) = self.tls_addr {
            guard.wait_for_port(tls_addr, START_TIMEOUT).await;
        }
        self.guard = Some(guard);
    }

    /// Stops the server gracefully (connections drop).
    pub fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.stop();
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Forces the reply to `stage` (`None` restores normal replies). Takes
    /// effect for the next command, even mid-session.
    pub fn set_failure(&self, stage: SmtpStage, failure: Option<SmtpFailure>) {
        let path = self.control.join(match stage {
            SmtpStage::Mail => "mail",
            SmtpStage::Rcpt => "rcpt",
            SmtpStage::Data => "data",
        });
        let reply = match failure {
            None => {
                let _ = std::fs::remove_file(&path);
                return;
            }
            Some(SmtpFailure::Temporary) => "451 4.3.0 Temporary failure (test)".to_owned(),
            Some(SmtpFailure::Permanent) => "550 5.7.1 Permanent failure (test)".to_owned(),
            Some(SmtpFailure::Reply(line)) => line,
        };
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, reply).expect("write control file");
        std::fs::rename(&temp, &path).expect("rename control file");
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .expect("read spool")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("read message");
                serde_json::from_str(&text).expect("parse message record")
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived; returns them all.
    /// Panics after `timeout`.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!("smtp: {} of {count} messages after {timeout:?}", messages.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        crate::support::log_tail(&self.output, 40)
    }
}
