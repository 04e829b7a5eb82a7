//! Real peers: Debian-packaged servers started on 127.0.0.1 in temp dirs.
//!
//! Every `start` returns `None` (after a notice) when the peer's binaries are
//! missing outside CI, panics with the peer's log tail on any other failure,
//! and only returns once the peer really answers. Dropping a peer stops it
//! and deletes its files. Use [`crate::peer!`] to skip in one line:
//! `let pg = peer!(Postgres::start(PostgresOpts::default()).await);`

mod mariadb;
mod postgres;
mod smtp;

pub use mariadb::{MariaDb, MariaDbOpts};
pub use postgres::{Postgres, PostgresOpts};
#[allow(unused_imports)] // Re-exported for the tests that read the spool.
pub use smtp::{ReceivedMail, SmtpFailure, SmtpOpts, SmtpServer, SmtpStage};

/// How long any peer may take to become ready.
pub(crate) const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
