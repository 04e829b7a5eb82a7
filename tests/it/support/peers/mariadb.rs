//! MariaDB: `mariadb-install-db` into a temp datadir, then `mariadbd` with
//! real grant tables, a password user and TLS with the test certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use super::START_TIMEOUT;
use crate::support::{
    ChildGuard, Leaf, TestCerts, free_port, loopback, require_binary, run_to_completion, shared_temp_dir, write_file,
};

/// How to start [`MariaDb`].
#[derive(Clone, Debug)]
pub struct MariaDbOpts {
    /// Test user (`'<user>'@'%'`, all privileges on `database`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// Test database.
    pub database: String,
    /// Create the user with `REQUIRE SSL`.
    pub require_tls: bool,
    /// Certificate the server presents.
    pub leaf: Leaf,
}

impl Default for MariaDbOpts {
    fn default() -> Self {
        MariaDbOpts {
            user: "checkit".into(),
            password: "checkit-mysql-secret".into(),
            database: "checkit".into(),
            require_tls: false,
            leaf: Leaf::Valid,
        }
    }
}

/// A running MariaDB server on `addr`.
pub struct MariaDb {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// Test user.
    pub user: String,
    /// Test user's password.
    pub password: String,
    /// Test database.
    pub database: String,
    /// Unix socket (root has an empty password there).
    pub socket: PathBuf,
    /// Certificates; the server presents `certs.leaf(opts.leaf)`.
    pub certs: TestCerts,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl MariaDb {
    /// Initialises a datadir, starts the server and waits until the test user
    /// can log in.
    pub async fn start(opts: MariaDbOpts) -> Option<MariaDb> {
        let install_db = require_binary("mariadb-install-db", "mariadb-server")?;
        let mariadbd = require_binary("mariadbd", "mariadb-server")?;
        let dir = shared_temp_dir("mariadb");
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        let certs = TestCerts::generate();
        let leaf = certs.leaf(opts.leaf);

        let mut install = Command::new(install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db", "--skip-name-resolve"]);
        run_to_completion("mariadb-install-db", install, &dir.path().join("install.log"), START_TIMEOUT).await;

        let quote = |text: &str| text.replace('\\', "\\\\").replace('\'', "\\'");
        let init = format!(
            "CREATE DATABASE IF NOT EXISTS `{database}`;\n\
             CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'{require};\n\
             GRANT ALL ON `{database}`.* TO '{user}'@'%';\n",
            database = opts.database,
            user = quote(&opts.user),
            password = quote(&opts.password),
            require = if opts.require_tls { " REQUIRE SSL" } else { "" },
        );
        let init_file = dir.path().join("init.sql");
        write_file(&init_file, init, 0o644);

        let port = free_port();
        let mut command = Command::new(mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--user=root")
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg(format!("--init-file={}", init_file.display()))
            .arg(format!("--ssl-cert={}", leaf.cert_path.display()))
            .arg(format!("--ssl-key={}", leaf.key_path.display()))
            .arg(format!("--ssl-ca={}", certs.ca.cert_path.display()))
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=16M"])
            .args(["--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"]);
        let mut guard = ChildGuard::spawn("mariadbd", command, &dir.path().join("mariadbd.log"));

        let addr = loopback(port);
        // TLS works whether or not the user requires it.
        let ca = Some(certs.ca.cert_path.clone());
        let login = login_opts(addr, &opts.user, &opts.password, &opts.database, ca);
        guard.wait_for_port(addr, START_TIMEOUT).await;
        guard
            .wait_until(START_TIMEOUT, "accepting the test user", || {
                let login = login.clone();
                async move {
                    match mysql_async::Conn::new(login).await {
                        Ok(conn) => {
                            let _ = conn.disconnect().await;
                            true
                        }
                        Err(_) => false,
                    }
                }
            })
            .await;
        Some(MariaDb {
            addr,
            user: opts.user,
            password: opts.password,
            database: opts.database,
            socket,
            certs,
            guard,
            _dir: dir,
        })
    }

    /// Connection options for the test user; with `tls`, verified against
    /// the test CA.
    pub fn opts(&self, tls: bool) -> mysql_async::Opts {
        let ca = tls.then_some(self.certs.ca.cert_path.clone());
        login_opts(self.addr, &self.user, &self.password, &self.database, ca)
    }

    /// `mysql://user:password@127.0.0.1:port/database`.
    pub fn url(&self) -> String {
        format!("mysql://{}:{}@{}/{}", self.user, self.password, self.addr, self.database)
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}

fn login_opts(addr: SocketAddr, user: &str, password: &str, database: &str, ca: Option<PathBuf>) -> mysql_async::Opts {
    let mut builder = mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(password))
        .db_name(Some(database))
        .prefer_socket(false);
    if let Some(ca) = ca {
        builder = builder.ssl_opts(mysql_async::SslOpts::default().with_root_certs(vec![ca.into()]));
    }
    builder.into()
}
