//! The outbox worker pool: leases a lane (contact, channel), decides what to
//! do with its due rows, delivers, and records every step.
//!
//! Per row, in order:
//! 1. **Delay**: a row from a route with `delay` keeps only alerts that still
//!    fire (and resolutions of alerts the contact was told about); if nothing
//!    is left it is skipped.
//! 2. **Quiet hours**: unless an alert matches the contact's bypass matchers,
//!    the row is held until the quiet hours end. When they end, every held
//!    row of the lane is merged into one catch-up.
//! 3. **Rate limits** (per channel for each contact, and per contact over all
//!    channels): over budget, the row waits until budget returns; then every
//!    waiting row of the lane is merged into one overflow summary.
//! 4. **Delivery**, bounded by `delivery_timeout`. Retryable failures back
//!    off exponentially with jitter, never sooner than the provider's
//!    `Retry-After`; permanent failures, and retries past `max_age` after the
//!    first attempt, are dead-lettered.
//!
//! At-least-once: a row is marked sent only after the provider accepted it,
//! so a crash between the two sends it again after restart.

use super::Runtime;
use super::Shared;
use super::channels::{ChannelKind, DeliveryError, Reason};
use super::config::{Contact, channel_kind};
use super::plan::{self, Content};
use super::quiet::QuietHours;
use super::store::Outcome;
use super::store::{HistoryEvent, Lane, Mode, OutboxRow, RowState, StoreError, Transition};
use chrono::{DateTime, Utc};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Due rows handled per lane lease.
const ROWS_PER_LEASE: u32 = 50;
/// Idle workers re-check the store this often (other replicas add work too).
const POLL: Duration = Duration::from_secs(1);
/// Send history kept for rate-limit decisions.
pub(super) const SEND_WINDOW: chrono::Duration = chrono::Duration::days(32);

/// How long a lane lease lasts (wall clock): several delivery timeouts.
fn lease_length(delivery_timeout: Duration) -> chrono::Duration {
    chrono::Duration::from_std(delivery_timeout.saturating_mul(4).max(Duration::from_secs(60)))
        .unwrap_or(chrono::Duration::minutes(2))
}

/// One worker: claims lanes until shutdown.
pub(super) async fn run_worker(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let runtime = shared.runtime();
        let delivery_timeout = runtime.config.delivery_timeout.get();
        let lease_now = Utc::now();
        let lease_until = lease_now + lease_length(delivery_timeout);
        let owner = shared.member.owner();
        let claimed = shared.store.claim_lane(&owner, shared.clock.now(), lease_now, lease_until).await;
        let mut failed = false;
        match claimed {
            Ok(Some(lane)) => {
                let mut worker = LaneWorker {
                    shared: &shared,
                    runtime: &runtime,
                    lane: &lane,
                    owner: &owner,
                    lease_until,
                    shutdown: &shutdown,
                    deferred: Vec::new(),
                    limited_until: None,
                };
                if let Err(err) = worker.process().await {
                    tracing::warn!(error = %err, contact = %lane.contact, channel = %lane.channel, "Cannot process a delivery lane.");
                }
                release(&shared, &lane).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "Cannot claim a delivery lane.");
                failed = true;
            }
        }
        let next_due = if failed { None } else { shared.store.next_due(Utc::now()).await.ok().flatten() };
        let due = match next_due {
            Some(next_due) => shared.clock.sleep_until(next_due),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            _ = &mut wake => {}
            _ = due => {}
            _ = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn release(shared: &Shared, lane: &Lane) {
    for attempt in 1..=3 {
        match shared.store.release_lane(lane, &shared.member.owner()).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, attempt, "Cannot release a delivery lane.");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Everything one lane lease needs.
struct LaneWorker<'a> {
    shared: &'a Shared,
    runtime: &'a Runtime,
    lane: &'a Lane,
    /// The replica name the lease was taken under.
    owner: &'a str,
    lease_until: DateTime<Utc>,
    shutdown: &'a watch::Receiver<bool>,
    /// Holds, limits and skips, written together.
    deferred: Vec<Transition>,
    /// Once over budget, the lane stays so for this lease.
    limited_until: Option<DateTime<Utc>>,
}

/// Where a lane's messages go.
struct Target<'a> {
    contact: &'a Contact,
    kind: ChannelKind,
    address: &'a str,
}

impl LaneWorker<'_> {
    async fn process(&mut self) -> Result<(), StoreError> {
        let store = &self.shared.store;
        let now = self.shared.clock.now();
        let rows = store.due_rows(self.lane, now, ROWS_PER_LEASE).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let contact = self.runtime.config.contacts.get(&self.lane.contact);
        let kind = channel_kind(&self.lane.channel);
        let target = contact
            .zip(kind)
            .and_then(|(contact, kind)| contact.address(kind).map(|address| Target { contact, kind, address }));
        let Some(target) = target else {
            return self.bury_unreachable(rows, now).await;
        };
        let quiet = quiet_until(target.contact.quiet_hours.as_ref(), now);
        let mut sendable: Vec<OutboxRow> = Vec::new();

        let held: Vec<&OutboxRow> = rows.iter().filter(|r| r.state == RowState::Held).collect();
        if let Some(leader) = held.first() {
            match quiet {
                // Quiet hours were extended (by a reload): keep holding.
                Some(until) => {
                    for row in &held {
                        self.deferred.push(Transition::of(row, RowState::Held, until));
                    }
                }
                None => {
                    let mode = store
                        .merge_lane(self.lane, RowState::Held, leader.id, Mode::CatchUp, Mode::CatchUp, now)
                        .await?;
                    sendable.push(OutboxRow { state: RowState::Pending, mode, ..(*leader).clone() });
                }
            }
        }
        let limited: Vec<&OutboxRow> = rows.iter().filter(|r| r.state == RowState::Limited).collect();
        if let Some(leader) = limited.first() {
            let mode =
                store.merge_lane(self.lane, RowState::Limited, leader.id, Mode::Overflow, leader.mode, now).await?;
            sendable.push(OutboxRow { state: RowState::Pending, mode, ..(*leader).clone() });
        }
        sendable.extend(rows.into_iter().filter(|r| r.state == RowState::Pending));
        sendable.sort_by_key(|row| (row.created_at, row.id));

        let delivery_timeout = self.runtime.config.delivery_timeout.get();
        let margin = chrono::Duration::from_std(delivery_timeout).unwrap_or_default() + chrono::Duration::seconds(10);
        for row in sendable {
            // A replica that may already count as dead to the others stops
            // before the next row: another one may be taking the lane over.
            let still_ours = self.shared.member.certainly_alive() && self.shared.member.owner() == self.owner;
            if *self.shutdown.borrow() || Utc::now() + margin > self.lease_until || !still_ours {
                break;
            }
            self.process_row(&target, row).await?;
        }
        self.flush().await
    }

    /// Writes the deferred transitions.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let transitions = std::mem::take(&mut self.deferred);
        self.shared.store.apply(transitions, self.lane, self.shared.clock.now()).await
    }

    /// The contact or its address for this channel left the config: nothing
    /// can be delivered, so the rows are dead-lettered, visibly.
    async fn bury_unreachable(&mut self, rows: Vec<OutboxRow>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let reason =
            format!("contact {:?} has no {} address in the current config", self.lane.contact, self.lane.channel);
        tracing::warn!(contact = %self.lane.contact, channel = %self.lane.channel, "Dead-lettering messages for a contact no longer configured.");
        for row in rows {
            let mut transition = Transition::of(&row, RowState::Dead, now);
            transition.last_error = Some(reason.clone());
            transition.event =
                Some(self.event(&row, row.mode, Outcome::Dead, now, Vec::new(), None, Some(reason.clone()), None));
            self.count(Outcome::Dead);
            self.deferred.push(transition);
        }
        self.flush().await
    }

    async fn process_row(&mut self, target: &Target<'_>, row: OutboxRow) -> Result<(), StoreError> {
        let store = &self.shared.store;
        let now = self.shared.clock.now();
        let mut content = self.content(&row).await?;
        // Only a catch-up, a summary or a delayed first attempt asks what
        // its alerts do now; one notification says what it says, so its
        // (maybe 100,000) states are not read.
        let delayed_first = row.delayed && row.attempts == 0 && row.mode == Mode::Notification;
        let states = if row.mode != Mode::Notification || delayed_first {
            store.alert_states(self.fingerprints(&content).await?).await?
        } else {
            HashMap::new()
        };

        if delayed_first {
            let resolved: Vec<String> = content
                .alerts
                .iter()
                .filter(|alert| alert.status == super::payload::Status::Resolved)
                .map(|alert| alert.fingerprint.clone())
                .collect();
            let told =
                if resolved.is_empty() { Default::default() } else { store.told(&self.lane.contact, resolved).await? };
            if !content.keep_still_relevant(&states, &told) {
                self.skip(&row, &content, now, "alerts resolved before the delay ended");
                return Ok(());
            }
        }
        if content.alerts.is_empty() {
            self.skip(&row, &content, now, "no alerts left to tell");
            return Ok(());
        }
        if let Some(quiet_hours) = &target.contact.quiet_hours {
            if let Some(until) = quiet_until(Some(quiet_hours), now) {
                let bypass = self.runtime.bypass.get(&self.lane.contact).map(Vec::as_slice).unwrap_or_default();
                let bypassed = self.any_alert(&content, bypass).await?;
                if !bypassed {
                    let reason = format!("quiet hours until {}", until.to_rfc3339());
                    self.put_off(&row, &content, (RowState::Held, Outcome::Held), until, now, reason);
                    return Ok(());
                }
            }
        }
        // A contact-wide budget is shared by the contact's lanes: check and
        // send under one per-contact lock so that two workers cannot both
        // spend the last unit. (Across PostgreSQL replicas this check stays
        // approximate by at most one message per replica.)
        let _contact_guard = match &target.contact.rate_limit {
            Some(_) => Some(self.shared.contact_lock(&self.lane.contact).lock_owned().await),
            None => None,
        };
        if let Some(until) = self.next_allowed(target, now).await? {
            self.limited_until = Some(until);
            let reason = format!("rate limited until {}", until.to_rfc3339());
            self.put_off(&row, &content, (RowState::Limited, Outcome::RateLimited), until, now, reason);
            return Ok(());
        }
        // Holds and limits decided so far are written before anything goes out.
        self.flush().await?;
        self.deliver(target, row, content, &states, now).await
    }

    /// Gathers the notifications behind `row`: its own, or for a catch-up
    /// or overflow summary with rows merged into it, what the store sums up
    /// of them (a storm's thousands of notifications are not loaded).
    async fn content(&self, row: &OutboxRow) -> Result<Content, StoreError> {
        let store = &self.shared.store;
        if row.mode != Mode::Notification && store.member_count(row.id).await? > 0 {
            let limit = u32::try_from(plan::LIST_LIMIT).unwrap_or(u32::MAX);
            return Ok(Content::summary(store.summary(row.id, limit).await?));
        }
        // One whole notification is read from its text, one alert at a time
        // (a delayed first attempt drops alerts, so it reads them all).
        let delayed_first = row.delayed && row.attempts == 0;
        if row.mode == Mode::Notification && row.fingerprints.is_none() && !delayed_first {
            let id = row.notification_id;
            match store.read_notification(id, move |received_at, text| Content::stored(received_at, text, id)).await? {
                None => return Ok(plan::collect(Vec::new())),
                Some(read) => {
                    if let Some(content) = read.map_err(unreadable)? {
                        return Ok(content);
                    }
                }
            }
        }
        let parts = store
            .notifications(vec![row.notification_id])
            .await?
            .into_iter()
            .map(|stored| (stored, row.fingerprints.clone()))
            .collect();
        Ok(plan::collect(parts))
    }

    /// Fingerprints of every alert of `content`, read again from the store
    /// when it holds only the listed ones.
    async fn fingerprints(&self, content: &Content) -> Result<Vec<String>, StoreError> {
        let Some(id) = content.stored_notification() else {
            return Ok(content.fingerprints());
        };
        let read = self.shared.store.read_notification(id, |_, text| plan::fingerprints_in(text)).await?;
        read.unwrap_or(Ok(Vec::new())).map_err(unreadable)
    }

    /// True when an alert of `content` matches one of `bypass` (quiet
    /// hours), read again from the store when it holds only the listed ones.
    async fn any_alert(&self, content: &Content, bypass: &[super::matcher::Matchers]) -> Result<bool, StoreError> {
        let Some(id) = content.stored_notification() else {
            return Ok(content.any_alert(|labels| bypass.iter().any(|matchers| matchers.matches(labels))));
        };
        let bypass = bypass.to_vec();
        let test = move |labels: &super::payload::LabelSet| bypass.iter().any(|matchers| matchers.matches(labels));
        let read = self.shared.store.read_notification(id, move |_, text| plan::any_alert_in(text, test)).await?;
        read.unwrap_or(Ok(false)).map_err(unreadable)
    }

    /// When the budget of this contact and channel allows the next send.
    async fn next_allowed(&self, target: &Target<'_>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        if let Some(until) = self.limited_until.filter(|until| *until > now) {
            return Ok(Some(until));
        }
        let store = &self.shared.store;
        let window = |limit: &super::ratelimit::RateLimit| {
            now - chrono::Duration::from_std(limit.max_window()).unwrap_or(SEND_WINDOW).min(SEND_WINDOW)
        };
        let mut next: Option<DateTime<Utc>> = None;
        if let Some(limit) = self.runtime.config.rate_limits.get(&self.lane.channel) {
            let sends = store.recent_sends(&self.lane.contact, Some(&self.lane.channel), window(limit)).await?;
            next = next.max(limit.next_allowed(&sends, now));
        }
        if let Some(limit) = &target.contact.rate_limit {
            let sends = store.recent_sends(&self.lane.contact, None, window(limit)).await?;
            next = next.max(limit.next_allowed(&sends, now));
        }
        Ok(next.filter(|next| *next > now))
    }

    fn skip(&mut self, row: &OutboxRow, content: &Content, now: DateTime<Utc>, reason: &str) {
        self.put_off(row, content, (RowState::Skipped, Outcome::Skipped), now, now, reason.to_string());
    }

    /// Moves `row` to `state` until `due_at` without an attempt (held,
    /// limited or skipped), recorded in history as `outcome` with `reason`
    /// and counted.
    fn put_off(
        &mut self,
        row: &OutboxRow,
        content: &Content,
        (state, outcome): (RowState, Outcome),
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: String,
    ) {
        let mut transition = Transition::of(row, state, due_at);
        transition.event =
            Some(self.event(row, row.mode, outcome, now, content.alert_refs(), None, Some(reason), None));
        self.deferred.push(transition);
        self.count(outcome);
    }

    async fn deliver(
        &mut self,
        target: &Target<'_>,
        row: OutboxRow,
        content: Content,
        states: &HashMap<String, super::store::AlertState>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let config = &self.runtime.config;
        let mut view = content.view(row.mode, states, &self.lane.contact, now);
        view.acknowledge_url = super::ack::link_for(self.runtime, &row, &content, &self.lane.contact, now);
        let attempt = row.attempts.saturating_add(1);
        let first_attempt_at = row.first_attempt_at.unwrap_or(now);
        let alerts = content.alert_refs();
        let alerts_logged = alerts.clone();
        let result = match self.runtime.templates.render_at(target.kind, &view, now) {
            Ok(outgoing) => {
                let started = Instant::now();
                let sent = tokio::time::timeout(
                    config.delivery_timeout.get(),
                    self.runtime.channels.deliver(target.kind, target.address, &outgoing),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(DeliveryError {
                        retryable: true,
                        retry_after: None,
                        reason: Reason::Timeout,
                        detail: format!("no answer within {}", config.delivery_timeout),
                    })
                });
                let elapsed = started.elapsed();
                self.shared
                    .metrics
                    .attempt_duration
                    .get_or_create(&super::metrics::ChannelLabels { channel: target.kind.as_str() })
                    .observe(elapsed.as_secs_f64());
                sent.map(|receipt| (receipt, elapsed))
            }
            Err(err) => Err(DeliveryError {
                retryable: false,
                retry_after: None,
                reason: Reason::Template,
                detail: err.to_string(),
            }),
        };
        let done_at = self.shared.clock.now();
        let mut transition = Transition::of(&row, RowState::Sent, done_at);
        transition.attempts = attempt;
        transition.first_attempt_at = Some(first_attempt_at);
        match result {
            Ok((receipt, elapsed)) => {
                transition.sent_at = Some(done_at);
                if content.is_summary() {
                    transition.told_summary = Some(row.id);
                } else if let Some(notification) = content.stored_notification() {
                    transition.told_notification = Some(notification);
                } else {
                    let told = content.into_told(row.mode, states);
                    transition.told_firing = told.firing;
                    transition.told_resolved = told.resolved;
                }
                transition.event = Some(self.event(
                    &row,
                    row.mode,
                    Outcome::Sent,
                    done_at,
                    alerts,
                    Some(receipt.provider_response),
                    None,
                    Some(elapsed),
                ));
                self.count(Outcome::Sent);
                super::activity::sent(&self.lane.contact, &self.lane.channel, &alerts_logged, attempt);
                if row.mode == Mode::Notification && !row.delayed && row.attempts == 0 {
                    let latency = (done_at - row.created_at).to_std().unwrap_or_default();
                    self.shared
                        .metrics
                        .delivery_latency
                        .get_or_create(&super::metrics::ChannelLabels { channel: target.kind.as_str() })
                        .observe(latency.as_secs_f64());
                }
            }
            Err(err) => {
                if let Some(kind) = channel_kind(&self.lane.channel) {
                    self.shared.metrics.delivery_failure(kind.as_str(), err.reason);
                }
                let detail = format!("{}: {}", err.reason, err.detail);
                let wait = plan::backoff(
                    attempt,
                    config.retry.initial_interval.get(),
                    config.retry.max_interval.get(),
                    rand::rng().random_range(0.5..1.5),
                    err.retry_after,
                );
                let next_attempt = done_at + chrono::Duration::from_std(wait).unwrap_or_default();
                let max_age = chrono::Duration::from_std(config.max_age.get()).unwrap_or_default();
                let (state, outcome, error) = if !err.retryable {
                    (RowState::Dead, Outcome::Dead, format!("permanent failure: {detail}"))
                } else if next_attempt - first_attempt_at > max_age {
                    (
                        RowState::Dead,
                        Outcome::Dead,
                        format!("gave up after {attempt} attempts (max_age {}): {detail}", config.max_age),
                    )
                } else {
                    (RowState::Pending, Outcome::Failed, detail)
                };
                if state == RowState::Dead {
                    tracing::warn!(contact = %self.lane.contact, channel = %self.lane.channel, error = %error, "Dead-lettered a message.");
                } else {
                    super::activity::failed(&self.lane.contact, &self.lane.channel, &alerts_logged, attempt, &error);
                }
                transition.state = state;
                transition.due_at = next_attempt;
                transition.last_error = Some(error.clone());
                transition.event = Some(self.event(&row, row.mode, outcome, done_at, alerts, None, Some(error), None));
                self.count(outcome);
            }
        }
        if matches!(transition.state, RowState::Sent | RowState::Dead) {
            let _ = self
                .shared
                .queue_depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |depth| Some(depth.saturating_sub(1)));
        }
        self.shared.store.apply(vec![transition], self.lane, done_at).await
    }

    /// Counts `outcome` on the lane's channel: deliveries, holds and rate limits.
    fn count(&self, outcome: Outcome) {
        let channel = channel_kind(&self.lane.channel).map(ChannelKind::as_str).unwrap_or("unknown");
        let outcome = match outcome {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
            Outcome::Skipped => "skipped",
            Outcome::Held => {
                self.shared.metrics.held.get_or_create(&super::metrics::ChannelLabels { channel }).inc();
                return;
            }
            Outcome::RateLimited => {
                self.shared.metrics.rate_limited.get_or_create(&super::metrics::ChannelLabels { channel }).inc();
                return;
            }
        };
        self.shared.metrics.delivery(channel, outcome);
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        row: &OutboxRow,
        kind: Mode,
        outcome: Outcome,
        at: DateTime<Utc>,
        alerts: Vec<super::store::AlertRef>,
        provider_response: Option<String>,
        error: Option<String>,
        duration: Option<Duration>,
    ) -> HistoryEvent {
        let attempt = match outcome {
            Outcome::Sent | Outcome::Failed | Outcome::Dead => row.attempts.saturating_add(1),
            Outcome::Held | Outcome::RateLimited | Outcome::Skipped => row.attempts,
        };
        HistoryEvent {
            at,
            outbox_id: row.id,
            notification_id: row.notification_id,
            contact: self.lane.contact.clone(),
            channel: self.lane.channel.clone(),
            kind,
            outcome,
            attempt,
            alerts,
            provider_response,
            error,
            duration_ms: duration.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

/// A stored notification whose text does not read as one.
fn unreadable(err: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("stored notification: {err}"))
}

/// The end of the quiet hours `now` falls in, if any.
fn quiet_until(quiet_hours: Option<&QuietHours>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let quiet_hours = quiet_hours?;
    if !quiet_hours.is_quiet(now) {
        return None;
    }
    // A schedule that never ends (every day, all day) still releases daily.
    Some(quiet_hours.quiet_until(now).unwrap_or(now + chrono::Duration::days(1)))
}
