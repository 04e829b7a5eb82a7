//! Dovecot: IMAP (STARTTLS), IMAPS, POP3 (STLS) and POP3S for one
//! passwd-file user whose Maildir INBOX holds a known number of messages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::START_TIMEOUT;
use crate::support::{
    ChildGuard, Leaf, TestCerts, chown_tree, free_ports, loopback, make_dir, os_user, require_binary, running_as_root,
    shared_temp_dir, write_file,
};

/// How to start [`Dovecot`].
#[derive(Clone, Debug)]
pub struct DovecotOpts {
    /// Login user (mechanisms PLAIN and LOGIN; IMAP `LOGIN`, POP3 `USER`/`PASS`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Messages pre-filled in INBOX, subjects `Test message 1` … `N`.
    pub messages: usize,
    /// Certificate the server presents.
    pub leaf: Leaf,
}

impl Default for DovecotOpts {
    fn default() -> Self {
        DovecotOpts { user: "checkit".into(), password: "checkit-mail-secret".into(), messages: 3, leaf: Leaf::Valid }
    }
}

/// A running Dovecot. Plaintext login is allowed on the plain ports (Dovecot
/// treats loopback as secure), so tests may log in with or without TLS.
pub struct Dovecot {
    /// IMAP, STARTTLS capable.
    pub imap_addr: SocketAddr,
    /// IMAP over implicit TLS.
    pub imaps_addr: SocketAddr,
    /// POP3, STLS capable.
    pub pop3_addr: SocketAddr,
    /// POP3 over implicit TLS.
    pub pop3s_addr: SocketAddr,
    /// Login user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Certificates; the server presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    /// The user's Maildir.
    pub maildir: PathBuf,
    mail_owner: Option<(u32, u32)>,
    delivered: AtomicU32,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// A prober block (imap or pop3) that logs in as the test user, trusting
    /// the test CA, with `extra` YAML lines appended.
    pub fn login_block(&self, password_file: &tempfile::NamedTempFile, extra: &str) -> String {
        format!(
            "tls_config:\n  ca_file: {ca}\nusername: {user}\npassword_file: {pw}\n{extra}",
            ca = self.certs.ca.cert_path.display(),
            user = self.user,
            pw = password_file.path().display(),
        )
    }

    /// Writes the config and Maildir, starts Dovecot and waits for all ports.
    pub async fn start(opts: DovecotOpts) -> Option<Dovecot> {
        let dovecot = require_binary("dovecot", "dovecot-imapd")?;
        // The protocol binaries come from separate packages.
        for (binary, package) in [("imap", "dovecot-imapd"), ("pop3", "dovecot-pop3d")] {
            let path = format!("/usr/lib/dovecot/{binary}");
            require_binary(&path, package)?;
        }
        let dir = shared_temp_dir("dovecot");
        let certs = TestCerts::generate();
        let leaf = certs.leaf(opts.leaf);
        for sub in ["run", "state"] {
            make_dir(&dir.path().join(sub), 0o755);
        }
        let home = dir.path().join("home").join(&opts.user);
        let maildir = home.join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            make_dir(&maildir.join(sub), 0o700);
        }
        // Mail processes may not run as root; use `nobody` when we are root.
        let mail_owner = if running_as_root() { Some(os_user("nobody").expect("user nobody exists")) } else { None };
        let users = dir.path().join("users");
        write_file(&users, format!("{}:{{PLAIN}}{}::::::\n", opts.user, opts.password), 0o644);

        let ports = free_ports(4);
        let owner = match mail_owner {
            Some((uid, gid)) => format!("uid={uid} gid={gid}"),
            None => String::new(),
        };
        // Unprivileged, every Dovecot process runs as the invoking user.
        let accounts = if running_as_root() {
            ["dovecot", "dovecot", "dovenull"].map(str::to_owned)
        } else {
            let me = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
            [me.clone(), me.clone(), me]
        };
        let root = dir.path().display();
        let config = format!(
            r#"base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
disable_plaintext_auth = no
auth_mechanisms = plain login
# Answer failed logins at once; the default 2 s delay only slows tests.
auth_failure_delay = 0
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
  default_fields = {owner} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
# No per-IP penalty after failed logins: it would delay every later login
# from 127.0.0.1 by seconds (mode 0 is Dovecot's documented off switch).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
"#,
            cert = leaf.cert_path.display(),
            key = leaf.key_path.display(),
            internal_user = accounts[0],
            internal_group = accounts[1],
            login_user = accounts[2],
            users = users.display(),
            imap = ports[0],
            imaps = ports[1],
            pop3 = ports[2],
            pop3s = ports[3],
        );
        let config_path = dir.path().join("dovecot.conf");
        write_file(&config_path, config, 0o644);

        let mut command = Command::new(dovecot);
        command.arg("-F").arg("-c").arg(&config_path);
        let guard = ChildGuard::spawn("dovecot", command, &dir.path().join("dovecot.out"))
            .with_log(dir.path().join("dovecot.log"));
        let mut server = Dovecot {
            imap_addr: loopback(ports[0]),
            imaps_addr: loopback(ports[1]),
            pop3_addr: loopback(ports[2]),
            pop3s_addr: loopback(ports[3]),
            user: opts.user,
            password: opts.password,
            certs,
            maildir,
            mail_owner,
            delivered: AtomicU32::new(0),
            guard,
            _dir: dir,
        };
        for number in 1..=opts.messages {
            server.deliver(&format!("Test message {number}"), &format!("This is test message {number}.\r\n"));
        }
        if let Some((uid, gid)) = mail_owner {
            chown_tree(&home, uid, gid);
        }
        for addr in [server.imap_addr, server.imaps_addr, server.pop3_addr, server.pop3s_addr] {
            server.guard.wait_for_port(addr, START_TIMEOUT).await;
        }
        Some(server)
    }

    /// Drops a message into INBOX (Maildir `new/`); Dovecot sees it on the
    /// next SELECT/STAT.
    pub fn deliver(&self, subject: &str, body: &str) {
        let number = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        let message = format!(
            "From: sender@checkit.test\r\nTo: {user}@checkit.test\r\nSubject: {subject}\r\n\
             Message-ID: <{number}@checkit.test>\r\nDate: Tue, 02 Jan 2024 03:04:05 +0000\r\n\r\n{body}",
            user = self.user,
        );
        let name = format!("1704164645.M{number}P1.checkit");
        let tmp = self.maildir.join("tmp").join(&name);
        write_file(&tmp, message, 0o600);
        if let Some((uid, gid)) = self.mail_owner {
            chown_tree(&tmp, uid, gid);
        }
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).expect("deliver to Maildir");
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}
