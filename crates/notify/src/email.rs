//! The e-mail channel: one task per organization whose e-mail is on, run
//! by the process holding the delivery lease beside the webhook outboxes.
//! It reads the organization's numbered events after its cursor, mails the
//! ones the preferences select (and every `webhook.disabled`) to the
//! recipients, one message per event in `seq` order, and moves the cursor
//! by compare-and-set. A transient failure (connection, 4xx) stops the
//! channel and is retried with backoff; a permanent one (5xx, refused
//! address) is logged, counted and passed over, since sending the same
//! message again would be refused again.

use std::sync::Arc;

use chrono::Utc;
use rwa_domain::OrgId;
use rwa_domain::notification::{EmailOutbox, EmailTarget};
use rwa_domain::ports::EventLog;
use rwa_domain::webhook::backoff;
use tokio::sync::watch;

use crate::delivery::DeliverySettings;
use crate::mail::Mailer;
use crate::templates::render;

/// What the e-mail tasks share.
pub(crate) struct EmailChannel {
    pub(crate) outbox: Arc<dyn EmailOutbox>,
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) mailer: Mailer,
}

impl EmailChannel {
    /// One organization's e-mail, until it is turned off.
    pub(crate) async fn run(
        self: Arc<Self>,
        org: OrgId,
        settings: DeliverySettings,
        mut head: watch::Receiver<i64>,
    ) {
        loop {
            let target = match self.outbox.system_email_target(org).await {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "e-mail: cannot read the preferences");
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
                    tracing::warn!(org = %org, error = %e, "e-mail: step failed; will retry");
                    tokio::time::sleep(settings.poll * 4).await;
                }
            }
        }
    }

    /// Mails what follows the cursor; answers whether there was anything.
    async fn step(
        &self,
        target: &EmailTarget,
        settings: &DeliverySettings,
    ) -> rwa_domain::RepoResult<bool> {
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
            if !target.email.selects(&event.kind) {
                through = event.seq;
                continue;
            }
            let message = render(event, &target.org_name);
            match self.mailer.send(&target.email.to, &message).await {
                Ok(()) => {
                    metrics::counter!("rwa_notify_emails_total", "outcome" => "sent").increment(1);
                    through = event.seq;
                }
                Err(e) if e.is_transient() => {
                    metrics::counter!("rwa_notify_emails_total", "outcome" => "failed")
                        .increment(1);
                    let attempt = if through == from {
                        target.attempts + 1
                    } else {
                        1
                    };
                    let wait = backoff(attempt as u32, settings.retry_base, settings.retry_cap);
                    tracing::warn!(org = %target.org_id, seq = event.seq, error = %e,
                        "e-mail not sent; will retry");
                    failure = Some((
                        e.to_string(),
                        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    ));
                    break;
                }
                Err(e) => {
                    metrics::counter!("rwa_notify_emails_total", "outcome" => "refused")
                        .increment(1);
                    tracing::error!(org = %target.org_id, seq = event.seq, kind = %event.kind,
                        error = %e, "e-mail refused by the server; passed over");
                    through = event.seq;
                }
            }
        }
        self.outbox
            .system_email_record(
                target.org_id,
                from,
                through,
                failure.as_ref().map(|(e, at)| (e.as_str(), *at)),
            )
            .await?;
        Ok(true)
    }
}
