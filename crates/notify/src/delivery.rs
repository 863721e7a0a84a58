//! The webhook outboxes (and the organizations' e-mail and WhatsApp
//! channels, see `channel.rs`, and the event stream, see `stream.rs`) as a
//! running part of `rwa serve` (roles `worker` and `all`): one process at a
//! time holds the delivery lease and runs one task per enabled endpoint, so
//! an endpoint that is slow, down or failing holds up only itself.
//!
//! An endpoint's task reads the organization's numbered events after its
//! cursor, sends the ones it selects in `seq` order, and records the
//! attempts together with the new cursor in one transaction; the cursor
//! moves by compare-and-set, so a replay that moved it back meanwhile
//! wins. A crash between a send and its record sends that event again: at
//! least once, and receivers de-duplicate by `Rwa-Event-Id`. A failed event
//! stops the endpoint's outbox (order is kept) and is tried again after an
//! exponential backoff with jitter; an endpoint failing for longer than the
//! configured period is turned off, which appends `webhook.disabled`.
//!
//! The tasks wake when this process numbers events (the store's signal) and
//! poll for events numbered by other processes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rwa_domain::OrgId;
use rwa_domain::notification::{Channel, ChannelOutbox};
use rwa_domain::ports::EventLog;
use rwa_domain::webhook::{Attempt, Outcome, Target, WebhookOutbox, backoff};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::channel::{ChannelRunner, Courier};
use crate::mail::Mailer;
use crate::stream::EventStream;
use crate::webhook::{Sent, WebhookSender};
use crate::whatsapp::WhatsApp;

/// How deliveries behave.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// An attempt's limit (`RWA_WEBHOOK_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Loopback and private targets allowed (`RWA_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// Failing for longer than this turns an endpoint off
    /// (`RWA_WEBHOOK_DISABLE_AFTER_SECS`).
    pub disable_after: Duration,
    /// The first retry's wait; doubled per attempt.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_cap: Duration,
    /// Events read per step.
    pub batch: u32,
    /// How long one step may send before it records what it did.
    pub step_budget: Duration,
    /// How often to look for events numbered by other processes, and for
    /// the lease while another process holds it.
    pub poll: Duration,
    /// How often the list of enabled endpoints is read.
    pub rescan: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            allow_private: false,
            disable_after: Duration::from_secs(3 * 24 * 3600),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(3600),
            batch: 200,
            step_budget: Duration::from_secs(2),
            poll: Duration::from_millis(250),
            rescan: Duration::from_secs(1),
        }
    }
}

/// How an outbox step ended.
enum Step {
    /// Nothing after the cursor.
    Idle,
    /// Every attempted event went through.
    Moved,
    /// A failure, or the cursor moved under it: read the endpoint again.
    Stopped,
}

/// The deliveries of every endpoint.
pub struct Deliveries {
    outbox: Arc<dyn WebhookOutbox>,
    events: Arc<dyn EventLog>,
    sender: WebhookSender,
    settings: DeliverySettings,
    numbered: watch::Receiver<u64>,
    /// The highest numbered `seq` seen, followed by one poller for every
    /// task of this process (see [`Deliveries::follow_head`]).
    head: watch::Sender<i64>,
    channels: Vec<Arc<ChannelRunner>>,
    /// The event stream to RabbitMQ, when configured.
    stream: Option<Arc<EventStream>>,
}

impl Deliveries {
    /// Deliveries from `outbox`, woken by `numbered` (changes whenever this
    /// process numbers events).
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        events: Arc<dyn EventLog>,
        settings: DeliverySettings,
        numbered: watch::Receiver<u64>,
    ) -> Result<Self, String> {
        Ok(Self {
            sender: WebhookSender::new(settings.timeout, settings.allow_private)?,
            outbox,
            events,
            settings,
            numbered,
            head: watch::Sender::new(0),
            channels: Vec::new(),
            stream: None,
        })
    }

    /// Also runs the organizations' e-mail channels, through `mailer`.
    pub fn with_email(self, outbox: Arc<dyn ChannelOutbox>, mailer: Mailer) -> Self {
        self.with_channel(outbox, Arc::new(mailer))
    }

    /// Also runs the organizations' WhatsApp channels, through `whatsapp`.
    pub fn with_whatsapp(self, outbox: Arc<dyn ChannelOutbox>, whatsapp: Arc<WhatsApp>) -> Self {
        self.with_channel(outbox, whatsapp)
    }

    /// Also publishes every event to RabbitMQ through `stream`, under the
    /// same lease (one publisher across processes).
    pub fn with_stream(mut self, stream: Arc<EventStream>) -> Self {
        self.stream = Some(stream);
        self
    }

    fn with_channel(mut self, outbox: Arc<dyn ChannelOutbox>, courier: Arc<dyn Courier>) -> Self {
        self.channels.push(Arc::new(ChannelRunner {
            outbox,
            events: self.events.clone(),
            courier,
        }));
        self
    }

    /// Runs until `stop` turns true: takes the lease (or waits as a
    /// standby), then keeps a task per enabled endpoint.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let head = tokio::spawn(self.clone().follow_head(stop.clone()));
        self.deliver(&mut stop).await;
        let _ = head.await;
    }

    /// Follows the highest numbered `seq`: at once when this process
    /// numbers events, every poll for those numbered by other processes.
    /// One query per poll wakes every task that has something to read,
    /// instead of each task polling for itself.
    async fn follow_head(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut numbered = self.numbered.clone();
        loop {
            match self.events.system_last_numbered().await {
                Ok(last) => {
                    self.head.send_if_modified(|h| {
                        let newer = last > *h;
                        *h = (*h).max(last);
                        newer
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notifications: cannot read the event log's head")
                }
            }
            tokio::select! {
                _ = numbered.changed() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn deliver(self: &Arc<Self>, stop: &mut watch::Receiver<bool>) {
        loop {
            let lease = match self.outbox.system_delivery_lease().await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    if pause(stop, self.settings.poll * 4).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: cannot take the lease");
                    if pause(stop, self.settings.poll * 4).await {
                        return;
                    }
                    continue;
                }
            };
            tracing::info!("webhook deliveries: this process delivers");
            if self.clone().supervise(lease, stop).await {
                return;
            }
        }
    }

    /// Keeps the endpoints' tasks while the lease holds; answers whether to
    /// stop. Tasks are cut on the way out: what they sent and had not
    /// recorded is sent again by the next holder.
    async fn supervise(
        self: Arc<Self>,
        mut lease: Box<dyn rwa_domain::ports::Lease>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut tasks: HashMap<Uuid, JoinHandle<()>> = HashMap::new();
        let mut channels: HashMap<(Channel, OrgId), JoinHandle<()>> = HashMap::new();
        let mut stream: Option<JoinHandle<()>> = None;
        let stopping = loop {
            let alive = tokio::time::timeout(self.settings.rescan * 5, lease.alive()).await;
            if !matches!(alive, Ok(true)) {
                tracing::warn!("webhook deliveries: lease lost; standing by");
                break false;
            }
            tasks.retain(|_, t| !t.is_finished());
            match self.outbox.system_enabled_webhooks().await {
                Ok(ids) => {
                    for id in ids {
                        tasks
                            .entry(id)
                            .or_insert_with(|| tokio::spawn(self.clone().endpoint(id)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook deliveries: cannot list endpoints"),
            }
            metrics::gauge!("rwa_notify_webhook_endpoints_active").set(tasks.len() as f64);
            // The stream's task runs until aborted; one that ended (a panic)
            // is started again rather than leaving the stream silent.
            if let Some(s) = &self.stream
                && stream.as_ref().is_none_or(|t| t.is_finished())
            {
                stream = Some(tokio::spawn(s.clone().run(self.head.subscribe())));
            }
            channels.retain(|_, t| !t.is_finished());
            for runner in &self.channels {
                let channel = runner.courier.channel();
                match runner.outbox.system_channel_orgs(channel).await {
                    Ok(orgs) => {
                        for org in orgs {
                            channels.entry((channel, org)).or_insert_with(|| {
                                tokio::spawn(runner.clone().run(
                                    org,
                                    self.settings.clone(),
                                    self.head.subscribe(),
                                ))
                            });
                        }
                    }
                    Err(e) => tracing::warn!(channel = channel.as_str(), error = %e,
                        "notifications: cannot list organizations"),
                }
            }
            if pause(stop, self.settings.rescan).await {
                break true;
            }
        };
        let all: Vec<JoinHandle<()>> = tasks
            .into_values()
            .chain(channels.into_values())
            .chain(stream)
            .collect();
        for task in &all {
            task.abort();
        }
        // Ended before a next holder of the lease starts its own.
        for task in all {
            let _ = task.await;
        }
        stopping
    }

    /// One endpoint's outbox, until it is turned off or removed.
    async fn endpoint(self: Arc<Self>, id: Uuid) {
        let mut head = self.head.subscribe();
        // The endpoint as last read: kept while its outbox moves as this
        // task moved it, read again every rescan period (a change, a replay,
        // a removal) and after anything else.
        let mut cached: Option<(Target, Instant)> = None;
        loop {
            let mut target = match cached.take() {
                Some((t, read)) if read.elapsed() < self.settings.rescan => (t, read),
                _ => match self.outbox.system_target(id).await {
                    Ok(Some(t)) if t.webhook.enabled => (t, Instant::now()),
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(webhook = %id, error = %e, "webhook deliveries: cannot read the endpoint");
                        tokio::time::sleep(self.settings.poll * 4).await;
                        continue;
                    }
                },
            };
            if !target.0.replays.is_empty() {
                if !self.replay(&target.0).await {
                    tokio::time::sleep(self.settings.poll * 4).await;
                }
                continue;
            }
            if let Some(at) = target.0.webhook.next_attempt_at {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    // Re-read at least every few polls: the endpoint may be
                    // changed, replayed, turned off or removed meanwhile.
                    tokio::time::sleep(wait.min(self.settings.poll * 4)).await;
                    continue;
                }
            }
            match self.step(&mut target.0).await {
                Ok(Step::Moved) => cached = Some(target),
                Ok(Step::Stopped) => {}
                // Idle: woken by a newer event, or after a rescan period to
                // see a change, a replay or a removal.
                Ok(Step::Idle) => {
                    cached = Some(target);
                    tokio::select! {
                        _ = head.changed() => {}
                        () = tokio::time::sleep(self.settings.rescan) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(webhook = %id, error = %e, "webhook deliveries: step failed; will retry");
                    tokio::time::sleep(self.settings.poll * 4).await;
                }
            }
        }
    }

    /// Sends `event` signed with the endpoint's secrets. An endpoint whose
    /// sealed secret cannot be opened fails each attempt with that reason,
    /// so it shows in its deliveries and `last_error`, backs off, and is
    /// turned off (and mailed) like any endpoint that keeps failing.
    async fn send(&self, target: &Target, event: &rwa_domain::event::Event) -> Sent {
        match &target.secrets {
            Ok(secrets) => {
                self.sender
                    .send(&target.webhook.url, target.webhook.id, secrets, event)
                    .await
            }
            Err(reason) => Sent {
                succeeded: false,
                status_code: None,
                latency: Duration::ZERO,
                error: Some(reason.clone()),
                response_snippet: None,
            },
        }
    }

    /// Sends what follows the cursor. When every attempted event went
    /// through, `target` is moved as the database was.
    async fn step(&self, target: &mut Target) -> rwa_domain::RepoResult<Step> {
        let hook = &target.webhook;
        let from = hook.delivered_seq;
        let events = self
            .events
            .system_numbered_after(hook.org_id, from, self.settings.batch)
            .await?;
        if events.is_empty() {
            return Ok(Step::Idle);
        }
        let started = Instant::now();
        let mut through = from;
        let mut attempts = Vec::new();
        let mut failure = None;
        for event in &events {
            if started.elapsed() > self.settings.step_budget {
                break;
            }
            if !hook.events.matches(&event.kind) {
                through = event.seq;
                continue;
            }
            // The head event carries its earlier failed attempts.
            let attempt = if through == from {
                hook.attempts + 1
            } else {
                1
            };
            let sent = self.send(target, event).await;
            count(&sent);
            attempts.push(attempt_of(event, attempt, &sent));
            if sent.succeeded {
                through = event.seq;
            } else {
                failure = Some((attempt, sent.error.unwrap_or_default()));
                break;
            }
        }
        let outcome = match failure {
            None => Outcome::Advanced { through },
            Some((attempt, error)) => {
                let now = Utc::now();
                let since = match hook.failing_since {
                    Some(since) if through == from => since,
                    _ => now,
                };
                let failing_for = (now - since).to_std().unwrap_or_default();
                let disable = failing_for >= self.settings.disable_after;
                let wait = backoff(
                    attempt as u32,
                    self.settings.retry_base,
                    self.settings.retry_cap,
                );
                if disable {
                    tracing::warn!(webhook = %hook.id, url = %rwa_domain::webhook::url_origin(&hook.url),
                        error = %error, "webhook endpoint failing for longer than allowed: turned off");
                }
                Outcome::Failed {
                    through,
                    retry_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                    error,
                    disable,
                }
            }
        };
        let moved = self
            .outbox
            .system_record(hook.id, from, target.version, &attempts, &outcome)
            .await?;
        if !moved {
            tracing::info!(webhook = %hook.id, "webhook outbox moved meanwhile (a replay): reading again");
            return Ok(Step::Stopped);
        }
        match outcome {
            Outcome::Advanced { through } => {
                let hook = &mut target.webhook;
                hook.delivered_seq = through;
                hook.attempts = 0;
                hook.failing_since = None;
                hook.next_attempt_at = None;
                Ok(Step::Moved)
            }
            Outcome::Failed { .. } => Ok(Step::Stopped),
        }
    }

    /// Sends the replays asked for, each once; answers false when one
    /// could not be read or recorded (it stays asked for).
    async fn replay(&self, target: &Target) -> bool {
        let hook = &target.webhook;
        for (replay, seq) in &target.replays {
            let attempt = match self.events.system_numbered(hook.org_id, *seq).await {
                Ok(Some(event)) => {
                    let sent = self.send(target, &event).await;
                    count(&sent);
                    attempt_of(&event, 1, &sent)
                }
                // Events are never deleted; a replay names one that was delivered.
                Ok(None) => {
                    tracing::warn!(webhook = %hook.id, seq, "webhook replay: no such event");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(webhook = %hook.id, error = %e, "webhook replay: cannot read the event");
                    return false;
                }
            };
            if let Err(e) = self
                .outbox
                .system_record_replay(hook.id, *replay, &attempt)
                .await
            {
                tracing::warn!(webhook = %hook.id, error = %e, "webhook replay: cannot record it");
                return false;
            }
        }
        true
    }
}

fn attempt_of(event: &rwa_domain::event::Event, attempt: i32, sent: &Sent) -> Attempt {
    Attempt {
        event_seq: event.seq,
        event_id: event.id.as_uuid(),
        event_type: event.kind.clone(),
        attempt,
        succeeded: sent.succeeded,
        status_code: sent.status_code.map(i32::from),
        latency: sent.latency,
        error: sent.error.clone(),
        response_snippet: sent.response_snippet.clone(),
    }
}

fn count(sent: &Sent) {
    let outcome = if sent.succeeded {
        "delivered"
    } else {
        "failed"
    };
    metrics::counter!("rwa_notify_webhook_attempts_total", "outcome" => outcome).increment(1);
    metrics::histogram!("rwa_notify_webhook_attempt_duration_seconds")
        .record(sent.latency.as_secs_f64());
}

/// Sleeps for `d` unless `stop` turns true first; answers whether to stop.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(d) => *stop.borrow(),
    }
}
