//! FTP: vsftpd with one virtual user, explicit FTPS (AUTH TLS), optional
//! anonymous login and an optional second instance for implicit FTPS.
//!
//! vsftpd checks passwords only through PAM, and PAM reads service files only
//! from `/etc/pam.d` (it strips any directory from the service name). So each
//! instance installs `/etc/pam.d/checkit-ftp-<pid>-<port>`, which points
//! `pam_userdb` at a Berkeley DB in the temp dir, and removes it on drop.
//! The DB is written with Python's `dbm.ndbm`, which Debian builds on the
//! same Berkeley DB 5.3 that `pam_userdb` reads. (`pam_exec` would avoid the
//! DB, but its helper's exit trips vsftpd's SIGCHLD handler, which hangs.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::START_TIMEOUT;
use crate::support::{
    ChildGuard, Leaf, TestCerts, free_port, loopback, make_dir, os_user, require_binary, run_to_completion,
    running_as_root, shared_temp_dir, unavailable, write_file,
};

const PAM_DIR: &str = "/etc/pam.d";
const PAM_PREFIX: &str = "checkit-ftp-";
/// Passive data ports per instance.
const PASSIVE_PORTS: u16 = 10;

/// How to start [`FtpServer`].
#[derive(Clone, Debug)]
pub struct FtpOpts {
    /// Login user (a vsftpd guest mapped to the `ftp` account).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Allow `anonymous` / `ftp` logins (no password asked).
    pub anonymous: bool,
    /// Start a second vsftpd with implicit TLS on `implicit_tls_addr`.
    pub implicit_tls: bool,
    /// Refuse USER/PASS before AUTH TLS.
    pub require_tls: bool,
    /// Certificate the server presents.
    pub leaf: Leaf,
}

impl Default for FtpOpts {
    fn default() -> Self {
        FtpOpts {
            user: "checkit".into(),
            password: "checkit-ftp-secret".into(),
            anonymous: false,
            implicit_tls: false,
            require_tls: false,
            leaf: Leaf::Valid,
        }
    }
}

/// A running vsftpd (read-only, chrooted, passive mode on 127.0.0.1).
pub struct FtpServer {
    /// Plain control connection; AUTH TLS upgrades it.
    pub addr: SocketAddr,
    /// Implicit-TLS control connection, when `opts.implicit_tls`.
    pub implicit_tls_addr: Option<SocketAddr>,
    /// Login user.
    pub user: String,
    /// Its password.
    pub password: String,
    /// A file in the user's root (and the anonymous root): `hello.txt`.
    pub file_name: String,
    /// Its contents.
    pub file_contents: String,
    /// Certificates; the server presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    guards: Vec<ChildGuard>,
    pam_service: PathBuf,
    dir: tempfile::TempDir,
}

impl FtpServer {
    /// Starts vsftpd (twice with `implicit_tls`) and waits for the banner.
    pub async fn start(opts: FtpOpts) -> Option<FtpServer> {
        let vsftpd = require_binary("vsftpd", "vsftpd")?;
        let python = require_binary("/usr/bin/python3", "python3")?;
        if !running_as_root() {
            return unavailable("the FTP peer needs root (vsftpd authenticates through PAM)");
        }
        if os_user("ftp").is_none() {
            return unavailable("missing user ftp: apt-get install vsftpd");
        }
        remove_stale_pam_services();
        let dir = shared_temp_dir("ftp");
        let root = dir.path().join("root");
        let empty = dir.path().join("empty");
        make_dir(&root, 0o755);
        make_dir(&empty, 0o755);
        let file_name = "hello.txt".to_owned();
        let file_contents = "hello from checkit ftp\n".to_owned();
        write_file(&root.join(&file_name), &file_contents, 0o644);

        let users_db = dir.path().join("users");
        let mut create_db = Command::new(python);
        create_db.args([
            "-c",
            "import dbm.ndbm, sys\n\
             db = dbm.ndbm.open(sys.argv[1], 'c', 0o600)\n\
             db[sys.argv[2].encode()] = sys.argv[3].encode()\n\
             db.close()",
        ]);
        create_db.arg(&users_db).arg(&opts.user).arg(&opts.password);
        run_to_completion("dbm", create_db, &dir.path().join("dbm.log"), START_TIMEOUT).await;

        let certs = TestCerts::generate();
        let port = free_port();
        let service = format!("{PAM_PREFIX}{}-{port}", std::process::id());
        let pam_service = Path::new(PAM_DIR).join(&service);
        write_file(
            &pam_service,
            format!(
                "# checkit test FTP peer {dir}; removed when the test ends.\n\
                 auth required pam_userdb.so db={db}\n\
                 account required pam_permit.so\n\
                 session required pam_permit.so\n",
                dir = dir.path().display(),
                db = users_db.display(),
            ),
            0o644,
        );

        let mut server = FtpServer {
            addr: loopback(port),
            implicit_tls_addr: None,
            user: opts.user.clone(),
            password: opts.password.clone(),
            file_name,
            file_contents,
            certs,
            guards: Vec::new(),
            pam_service,
            dir,
        };
        server.spawn("vsftpd", &vsftpd, port, &service, false, &opts).await;
        if opts.implicit_tls {
            let tls_port = free_port();
            server.spawn("vsftpd-implicit", &vsftpd, tls_port, &service, true, &opts).await;
            server.implicit_tls_addr = Some(loopback(tls_port));
        }
        Some(server)
    }

    async fn spawn(&mut self, name: &str, vsftpd: &Path, port: u16, service: &str, implicit: bool, opts: &FtpOpts) {
        let dir = self.dir.path();
        let leaf = self.certs.leaf(opts.leaf);
        let passive = passive_range();
        let yes_no = |flag: bool| if flag { "YES" } else { "NO" };
        let config = format!(
            "listen=YES\n\
             listen_ipv6=NO\n\
             listen_address=127.0.0.1\n\
             listen_port={port}\n\
             background=NO\n\
             seccomp_sandbox=NO\n\
             secure_chroot_dir={empty}\n\
             pam_service_name={service}\n\
             anonymous_enable={anonymous}\n\
             anon_root={root}\n\
             no_anon_password=YES\n\
             local_enable=YES\n\
             guest_enable=YES\n\
             guest_username=ftp\n\
             local_root={root}\n\
             chroot_local_user=YES\n\
             allow_writeable_chroot=YES\n\
             write_enable=NO\n\
             delay_failed_login=0\n\
             pasv_enable=YES\n\
             pasv_address=127.0.0.1\n\
             pasv_min_port={pasv_min}\n\
             pasv_max_port={pasv_max}\n\
             ssl_enable=YES\n\
             implicit_ssl={implicit}\n\
             allow_anon_ssl=YES\n\
             force_local_logins_ssl={require_tls}\n\
             force_local_data_ssl=NO\n\
             require_ssl_reuse=NO\n\
             ssl_ciphers=HIGH\n\
             rsa_cert_file={cert}\n\
             rsa_private_key_file={key}\n\
             vsftpd_log_file={dir}/{name}.log\n\
             xferlog_enable=YES\n\
             log_ftp_protocol=YES\n",
            empty = dir.join("empty").display(),
            anonymous = yes_no(opts.anonymous),
            root = dir.join("root").display(),
            pasv_min = passive,
            pasv_max = passive + PASSIVE_PORTS - 1,
            implicit = yes_no(implicit),
            require_tls = yes_no(opts.require_tls),
            cert = leaf.cert_path.display(),
            key = leaf.key_path.display(),
            dir = dir.display(),
        );
        let config_path = dir.join(format!("{name}.conf"));
        // vsftpd refuses a config file that is not owned by root.
        write_file(&config_path, config, 0o600);
        let mut command = Command::new(vsftpd);
        command.arg(&config_path);
        let mut guard = ChildGuard::spawn(name, command, &dir.join(format!("{name}.out")))
            .with_log(dir.join(format!("{name}.log")));
        guard.wait_for_port(loopback(port), START_TIMEOUT).await;
        self.guards.push(guard);
    }

    /// Process diagnostics (log tails).
    pub fn diagnostics(&self) -> String {
        self.guards.iter().map(ChildGuard::diagnostics).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        for guard in &mut self.guards {
            guard.stop();
        }
        let _ = std::fs::remove_file(&self.pam_service);
    }
}

/// The first port of [`PASSIVE_PORTS`] consecutive free ports. They are
/// sought below Linux's default ephemeral range (32768–60999): a run of ten
/// free ports inside it is rare while other tests or a benchmark hold
/// thousands of outgoing connections.
fn passive_range() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // A per-call starting point, so parallel tests try different ranges.
    let seed = u32::from(free_port()).wrapping_mul(2_654_435_761) ^ std::process::id();
    for attempt in 0..200u32 {
        let offset = seed.wrapping_add(attempt.wrapping_mul(7_919)) % SPAN;
        let Ok(first) = u16::try_from(LOW + offset) else { continue };
        let all_free =
            (first..first + PASSIVE_PORTS).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return first;
        }
    }
    panic!("no {PASSIVE_PORTS} consecutive free ports for FTP passive mode");
}

/// Deletes PAM services left behind by killed test runs (their DB is gone).
fn remove_stale_pam_services() {
    let Ok(entries) = std::fs::read_dir(PAM_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PAM_PREFIX) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let db = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix("db="))
            .map(|db| PathBuf::from(format!("{db}.db")));
        if db.is_none_or(|db| !db.exists()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
