//! PostgreSQL: `initdb` plus `postgres` as the `postgres` account, SCRAM
//! password auth for a test user, TLS with the test certificates.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::START_TIMEOUT;
use crate::support::{
    ChildGuard, Leaf, TestCerts, chown_tree, free_port, loopback, make_dir, os_user, require_path, run_to_completion,
    running_as_root, shared_temp_dir, write_file,
};

/// How to start [`Postgres`].
#[derive(Clone, Debug)]
pub struct PostgresOpts {
    /// Login role created for the test (SCRAM password).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Database owned by `user`.
    pub database: String,
    /// Reject TCP connections without TLS (`hostnossl ... reject`).
    pub require_tls: bool,
    /// Certificate the server presents.
    pub leaf: Leaf,
}

impl Default for PostgresOpts {
    fn default() -> Self {
        PostgresOpts {
            user: "checkit".into(),
            password: "checkit-pg-secret".into(),
            database: "checkit".into(),
            require_tls: false,
            leaf: Leaf::Valid,
        }
    }
}

/// A running PostgreSQL server on `addr`.
pub struct Postgres {
    /// `127.0.0.1:<port>` (TCP, TLS available).
    pub addr: SocketAddr,
    /// Test role.
    pub user: String,
    /// Test role's password.
    pub password: String,
    /// Test database.
    pub database: String,
    /// Directory of the Unix socket (`local all all trust`).
    pub socket_dir: PathBuf,
    /// Certificates; the server presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Runs `initdb`, starts the server and creates the test role and database.
    pub async fn start(opts: PostgresOpts) -> Option<Postgres> {
        let bin = require_path(find_bin_dir(), "/usr/lib/postgresql/*/bin/postgres", "postgresql")?;
        let dir = shared_temp_dir("postgres");
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        let tls = dir.path().join("tls");
        make_dir(&data, 0o700);
        make_dir(&socket_dir, 0o755);
        make_dir(&tls, 0o700);
        let certs = TestCerts::generate();
        let leaf = certs.leaf(opts.leaf);
        // PostgreSQL refuses a key readable by others or owned by someone else.
        write_file(&tls.join("server.crt"), &leaf.cert_pem, 0o644);
        write_file(&tls.join("server.key"), &leaf.key_pem, 0o600);
        write_file(&tls.join("ca.crt"), &certs.ca.cert_pem, 0o644);
        let account = if running_as_root() {
            let (uid, gid) = os_user("postgres").expect("the postgresql package creates user postgres");
            for path in [&data, &socket_dir, &tls] {
                chown_tree(path, uid, gid);
            }
            Some((uid, gid))
        } else {
            None
        };

        let initdb_log = dir.path().join("initdb.log");
        let mut initdb = as_account(Command::new(bin.join("initdb")), account);
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"]).args([
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        run_to_completion("initdb", initdb, &initdb_log, START_TIMEOUT).await;

        let hba = if opts.require_tls {
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"
        } else {
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        };
        write_file(&data.join("pg_hba.conf"), hba, 0o644);
        if let Some((uid, gid)) = account {
            chown_tree(&data.join("pg_hba.conf"), uid, gid);
        }

        let port = free_port();
        let mut postgres = as_account(Command::new(bin.join("postgres")), account);
        postgres.arg("-D").arg(&data);
        for (key, value) in [
            ("listen_addresses", "127.0.0.1".to_owned()),
            ("port", port.to_string()),
            ("unix_socket_directories", socket_dir.display().to_string()),
            ("ssl", "on".to_owned()),
            ("ssl_cert_file", tls.join("server.crt").display().to_string()),
            ("ssl_key_file", tls.join("server.key").display().to_string()),
            ("ssl_ca_file", tls.join("ca.crt").display().to_string()),
            ("fsync", "off".to_owned()),
            ("shared_buffers", "16MB".to_owned()),
            ("max_connections", "50".to_owned()),
        ] {
            postgres.arg("-c").arg(format!("{key}={value}"));
        }
        let output = dir.path().join("postgres.log");
        // SIGINT is PostgreSQL's "fast shutdown".
        let mut guard = ChildGuard::spawn("postgres", postgres, &output).with_stop_signal("INT");

        let superuser_config = superuser_config(&socket_dir, port);
        guard
            .wait_until(START_TIMEOUT, "accepting connections", || {
                let config = superuser_config.clone();
                async move { config.connect(tokio_postgres::NoTls).await.is_ok() }
            })
            .await;

        let pg = Postgres {
            addr: loopback(port),
            user: opts.user,
            password: opts.password,
            database: opts.database,
            socket_dir,
            certs,
            guard,
            _dir: dir,
        };
        let client = pg.superuser().await;
        // Separate statements: CREATE DATABASE refuses to run in a batch.
        let role = format!("CREATE ROLE \"{}\" LOGIN PASSWORD '{}'", pg.user, pg.password.replace('\'', "''"));
        let database = format!("CREATE DATABASE \"{}\" OWNER \"{}\"", pg.database, pg.user);
        for statement in [role, database] {
            if let Err(err) = client.batch_execute(&statement).await {
                pg.guard.fail(&format!("{statement}: {err}"));
            }
        }
        Some(pg)
    }

    /// A superuser client over the Unix socket (for fixtures and `pg_stat_*`).
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, connection) = superuser_config(&self.socket_dir, self.addr.port())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| self.guard.fail(&format!("superuser connect: {err}")));
        tokio::spawn(connection);
        client
    }

    /// `postgres://user:password@127.0.0.1:port/database`.
    pub fn url(&self) -> String {
        format!("postgres://{}:{}@{}/{}", self.user, self.password, self.addr, self.database)
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}

fn superuser_config(socket_dir: &Path, port: u16) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config.host_path(socket_dir).port(port).user("postgres").dbname("postgres");
    config.connect_timeout(std::time::Duration::from_secs(2));
    config
}

fn as_account(mut command: Command, account: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = account {
        command.uid(uid).gid(gid);
        // Keep PostgreSQL tools from looking at root's home and locale.
        command.env("HOME", "/tmp").env("LC_ALL", "C.UTF-8");
    }
    command
}

/// The newest `/usr/lib/postgresql/<version>/bin` directory.
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
