//! Real peers: Debian-packaged servers started on 127.0.0.1 in temp dirs.
//!
//! Every `start` returns `None` (after a notice) when the peer's binaries are
//! missing outside CI, panics with the peer's log tail on any other failure,
//! and only returns once the peer really answers. Dropping a peer stops it
//! and deletes its files. Use [`crate::peer!`] to skip in one line:
//! `let pg = peer!(Postgres::start(PostgresOpts::default()).await);`

// Each test module uses a different subset of the re-exports.
#![allow(unused_imports)]

mod dnsmasq;
mod dovecot;
mod ftp;
mod mariadb;
mod nginx;
mod postgres;
mod prometheus;
mod smtp;

pub use dnsmasq::{DNS_ZONE, Dnsmasq, DnsmasqOpts};
pub use dovecot::{Dovecot, DovecotOpts};
pub use ftp::{FtpOpts, FtpServer};
pub use mariadb::{MariaDb, MariaDbOpts};
pub use nginx::{NGINX_BIG_SIZE, NGINX_BODY, NGINX_LAST_MODIFIED_UNIX, Nginx, NginxOpts, nginx_last_modified};
pub use postgres::{Postgres, PostgresOpts};
pub use prometheus::{Alertmanager, BlackboxExporter, Prometheus};
pub use smtp::{ReceivedMail, SmtpFailure, SmtpOpts, SmtpServer, SmtpStage};

/// How long any peer may take to become ready.
pub(crate) const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
