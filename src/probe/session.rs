//! The families of a prober that runs a session in phases (the database and
//! line-based probers): `probe_<proto>_duration_seconds{phase}`, every phase
//! seeded, and `probe_<proto>_ssl`.

use super::tls::{self, TlsInfo};
use super::{Phase, ProbeCtx};
use std::time::Duration;

/// A phased session's duration family and TLS gauge.
#[derive(Debug, Clone, Copy)]
pub struct PhaseFamilies {
    /// `probe_<proto>_duration_seconds{phase}`.
    pub duration: &'static str,
    /// Its HELP text.
    pub duration_help: &'static str,
    /// `probe_<proto>_ssl`: 1 when the session ended up encrypted.
    pub ssl: &'static str,
    /// Its HELP text.
    pub ssl_help: &'static str,
    /// The phases seeded at 0, in protocol order.
    pub phases: &'static [Phase],
}

impl PhaseFamilies {
    /// Creates every phase sample at 0 so the series exist even when the
    /// deadline strikes early, and the TLS gauge at 0.
    pub fn seed(&self, ctx: &mut ProbeCtx<'_>) {
        let phases: Vec<&str> = self.phases.iter().map(|phase| phase.as_str()).collect();
        ctx.registry.seed_phases(self.duration, self.duration_help, &phases);
        ctx.registry.set(self.ssl, self.ssl_help, 0.0);
    }

    /// Adds `elapsed` to `phase`.
    pub fn add(&self, ctx: &mut ProbeCtx<'_>, phase: Phase, elapsed: Duration) {
        ctx.registry.add_phase(self.duration, self.duration_help, phase.as_str(), elapsed.as_secs_f64());
    }

    /// Records a finished handshake: the `probe_ssl_*` / `probe_tls_*`
    /// families (the cipher too) and `probe_<proto>_ssl 1`.
    pub fn tls_done(&self, ctx: &mut ProbeCtx<'_>, info: &TlsInfo) {
        tls::record(info, &mut ctx.registry, tls::Families { cipher: true, last_chain_expiry: true });
        ctx.registry.set(self.ssl, self.ssl_help, 1.0);
    }
}
