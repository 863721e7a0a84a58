//! The organizations' channels (e-mail, WhatsApp): one task per
//! organization and channel that is on, run by the process holding the
//! delivery lease beside the webhook outboxes. A task reads the
//! organization's numbered events after the channel's cursor, sends the ones
//! the preferences select through its courier, one message per event in
//! `seq` order, and moves the cursor by compare-and-set. A transient failure
//! (connection, timeout, 429, 4xx from SMTP, 5xx from the API, an open
//! breaker) stops the channel and is retried with backoff; a permanent one
//! (a message the server refuses) is logged, counted and passed over, since
//! sending it again would be refused again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use rwa_domain::OrgId;
use rwa_domain::event::Event;
use rwa_domain::notification::{Channel, ChannelOutbox, ChannelTarget};
use rwa_domain::ports::EventLog;
use rwa_domain::webhook::backoff;
use tokio::sync::watch;

use crate::delivery::DeliverySettings;
use crate::mail::Mailer;
use crate::templates::render;
use crate::whatsapp::WhatsApp;

/// Why a message was not sent.
pub(crate) struct NotSent {
    /// Worth trying again later.
    transient: bool,
    message: String,
}

/// Sends one event through one channel.
#[async_trait]
pub(crate) trait Courier: Send + Sync {
    /// The channel.
    fn channel(&self) -> Channel;
    /// Sends `event` as `target`'s preferences say.
    async fn send(&self, target: &ChannelTarget, event: &Event) -> Result<(), NotSent>;
}

#[async_trait]
impl Courier for Mailer {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, target: &ChannelTarget, event: &Event) -> Result<(), NotSent> {
        let Some(email) = &target.settings.email else {
            return Ok(());
        };
        let message = render(event, &target.org_name);
        Mailer::send(self, &email.to, &message)
            .await
            .map_err(|e| NotSent {
                transient: e.is_transient(),
                message: e.to_string(),
            })
    }
}

#[async_trait]
impl Courier for WhatsApp {
    fn channel(&self) -> Channel {
        Channel::WhatsApp
    }

    /// The template's body parameters: the organization, the event type and
    /// the one-line summary the e-mail's subject carries. Each recipient is
    /// one message; the first failure stops the event (it is sent again to
    /// every recipient on retry: at least once).
    async fn send(&self, target: &ChannelTarget, event: &Event) -> Result<(), NotSent> {
        let Some(whatsapp) = &target.settings.whatsapp else {
            return Ok(());
        };
        let summary = render(event, &target.org_name).subject;
        let parameters = [target.org_name.clone(), event.kind.clone(), summary];
        for to in &whatsapp.to {
            self.send_template(to, &whatsapp.template, &whatsapp.language, &parameters)
                .await
                .map_err(|e| NotSent {
                    transient: e.is_transient(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// What the tasks of one channel share.
pub(crate) struct ChannelRunner {
    pub(crate) outbox: Arc<dyn ChannelOutbox>,
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) courier: Arc<dyn Courier>,
}

impl ChannelRunner {
    /// One organization's channel, until it is turned off.
    pub(crate) async fn run(
        self: Arc<Self>,
        org: OrgId,
        settings: DeliverySettings,
        mut head: watch::Receiver<i64>,
    ) {
        let channel = self.courier.channel();
        loop {
            let target = match self.outbox.system_channel_target(org, channel).await {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(org = %org, channel = channel.as_str(), error = %e,
                        "notifications: cannot read the preferences");
                    tokio::time::sleep(settings.poll * 4).await;
                    continue;
                }
            };
            if let Some(at) = target.next_attempt_at {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait.min(settings.poll * 4)).await;
                    continue;
                }
            }
            match self.step(&target, &settings).await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::select! {
                        _ = head.changed() => {}
                        () = tokio::time::sleep(settings.rescan) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(org = %org, channel = channel.as_str(), error = %e,
                        "notifications: step failed; will retry");
                    tokio::time::sleep(settings.poll * 4).await;
                }
            }
        }
    }

    /// Sends what follows the cursor; answers whether there was anything.
    async fn step(
        &self,
        target: &ChannelTarget,
        settings: &DeliverySettings,
    ) -> rwa_domain::RepoResult<bool> {
        let channel = self.courier.channel();
        let from = target.cursor;
        let events = self
            .events
            .system_numbered_after(target.org_id, from, settings.batch)
            .await?;
        if events.is_empty() {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let mut through = from;
        let mut failure = None;
        for event in &events {
            if started.elapsed() > settings.step_budget {
                break;
            }
            if !target.settings.selects(channel, &event.kind) {
                through = event.seq;
                continue;
            }
            let outcome = match self.courier.send(target, event).await {
                Ok(()) => {
                    through = event.seq;
                    "sent"
                }
                Err(e) if e.transient => {
                    let attempt = if through == from {
                        target.attempts + 1
                    } else {
                        1
                    };
                    let wait = backoff(attempt as u32, settings.retry_base, settings.retry_cap);
                    tracing::warn!(org = %target.org_id, channel = channel.as_str(), seq = event.seq,
                        error = %e.message, "notification not sent; will retry");
                    failure = Some((
                        e.message,
                        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    ));
                    "failed"
                }
                Err(e) => {
                    tracing::error!(org = %target.org_id, channel = channel.as_str(), seq = event.seq,
                        kind = %event.kind, error = %e.message, "notification refused; passed over");
                    through = event.seq;
                    "refused"
                }
            };
            metrics::counter!("rwa_notify_messages_total",
                "channel" => channel.as_str(), "outcome" => outcome)
            .increment(1);
            if failure.is_some() {
                break;
            }
        }
        self.outbox
            .system_channel_record(
                target.org_id,
                channel,
                from,
                through,
                failure.as_ref().map(|(e, at)| (e.as_str(), *at)),
            )
            .await?;
        Ok(true)
    }
}
