//! Webhook endpoints' storage contract, on SQLite and PostgreSQL
//! (`RWA_TEST_DATABASE`): secrets sealed at rest and re-sealed after a
//! rotation of the server secret, the previous secret signing only during
//! its overlap, and the outbox's cursor moved by compare-and-set so a
//! replay asked for during a step wins, with the failure state and the
//! turn-off recorded. The event stream's cursor: started after the newest
//! event, over every organization's events, moved by compare-and-set.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rwa_domain::api_key::NewApiKey;
use rwa_domain::event_stream::StreamCursor;
use rwa_domain::org::OrgName;
use rwa_domain::page::PageRequest;
use rwa_domain::pii::PiiKeys;
use rwa_domain::ports::{EventLog, OrgRepository};
use rwa_domain::webhook::{
    Attempt, EventSelector, NewWebhook, Outcome, WebhookChange, WebhookOutbox, WebhookRepository,
};
use rwa_domain::{Actor, OrgId, Role};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;

const SECRET: &[u8] = b"webhook-test-secret-of-at-least-32-bytes";
const NEXT_SECRET: &[u8] = b"webhook-test-next-secret-at-least-32-bytes";

async fn open(db: &TestDatabase, secret: &[u8], previous: Option<&[u8]>) -> Arc<Store> {
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 4;
    opts.pii = Some(Arc::new(PiiKeys::new(secret, previous)));
    let store = Store::connect(&opts).await.expect("connect");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

async fn org(store: &Store) -> OrgId {
    let (key, _) = NewApiKey::generate(Role::Admin, None);
    store
        .system_create_with_key(&OrgName::parse("Hooks").unwrap(), &key, &Actor::CLI)
        .await
        .unwrap()
        .id
}

async fn version(store: &Store, id: uuid::Uuid) -> i64 {
    store.system_target(id).await.unwrap().unwrap().version
}

fn new_hook(secret: &str) -> NewWebhook {
    NewWebhook {
        url: "https://hooks.example.com/rwa".into(),
        events: EventSelector::parse("events", &["*".to_owned()]).unwrap(),
        description: Some("ledger".into()),
        enabled: true,
        secret: secret.into(),
    }
}

fn attempt(seq: i64, ok: bool) -> Attempt {
    Attempt {
        event_seq: seq,
        event_id: uuid::Uuid::now_v7(),
        event_type: "webhook.created".into(),
        attempt: 1,
        succeeded: ok,
        status_code: Some(if ok { 200 } else { 500 }),
        latency: Duration::from_millis(3),
        error: (!ok).then(|| "answered 500".into()),
        response_snippet: None,
    }
}

#[tokio::test]
async fn secrets_are_sealed_rotated_with_an_overlap_and_resealed() {
    let db = TestDatabase::create().await;
    let store = open(&db, SECRET, None).await;
    let org = org(&store).await;
    let hook = WebhookRepository::create(&*store, org, &new_hook("whsec_first"), &Actor::CLI)
        .await
        .unwrap();
    let target = store.system_target(hook.id).await.unwrap().unwrap();
    assert_eq!(target.secrets.unwrap(), ["whsec_first"]);
    assert_eq!(target.webhook.description.as_deref(), Some("ledger"));

    // Rotated with no overlap: only the new secret signs.
    WebhookRepository::rotate_secret(
        &*store,
        org,
        hook.id,
        "whsec_second",
        Duration::ZERO,
        &Actor::CLI,
    )
    .await
    .unwrap();
    let target = store.system_target(hook.id).await.unwrap().unwrap();
    assert_eq!(target.secrets.unwrap(), ["whsec_second"]);
    assert!(target.webhook.previous_secret_expires_at.is_none());
    // With an overlap: the new one first, then the old one.
    let rotated = WebhookRepository::rotate_secret(
        &*store,
        org,
        hook.id,
        "whsec_third",
        Duration::from_secs(3600),
        &Actor::CLI,
    )
    .await
    .unwrap();
    assert!(rotated.previous_secret_expires_at.unwrap() > Utc::now());
    let target = store.system_target(hook.id).await.unwrap().unwrap();
    assert_eq!(target.secrets.unwrap(), ["whsec_third", "whsec_second"]);
    // Rotated again during that overlap (a retry whose answer was lost):
    // the secret receivers held before keeps its overlap.
    let again = WebhookRepository::rotate_secret(
        &*store,
        org,
        hook.id,
        "whsec_fourth",
        Duration::from_secs(7200),
        &Actor::CLI,
    )
    .await
    .unwrap();
    assert_eq!(
        again.previous_secret_expires_at,
        rotated.previous_secret_expires_at
    );
    let target = store.system_target(hook.id).await.unwrap().unwrap();
    assert_eq!(target.secrets.unwrap(), ["whsec_fourth", "whsec_second"]);

    // The server secret changes: rows open under the previous key until
    // re-sealed, then under the new one alone.
    store.close().await;
    let rotated_store = open(&db, NEXT_SECRET, Some(SECRET)).await;
    assert_eq!(rotated_store.reseal_webhook_secrets().await.unwrap(), 1);
    assert_eq!(rotated_store.reseal_webhook_secrets().await.unwrap(), 0);
    rotated_store.close().await;
    let fresh = open(&db, NEXT_SECRET, None).await;
    let target = fresh.system_target(hook.id).await.unwrap().unwrap();
    assert_eq!(target.secrets.unwrap(), ["whsec_fourth", "whsec_second"]);

    // Under a server secret that sealed nothing here (changed without
    // `rwa secrets rotate`), the endpoint is still read, with the reason
    // its deliveries will fail instead of its secrets.
    fresh.close().await;
    let wrong = open(&db, SECRET, None).await;
    let target = wrong.system_target(hook.id).await.unwrap().unwrap();
    let reason = target.secrets.unwrap_err();
    assert!(reason.contains("rwa secrets rotate"), "{reason}");
    assert!(target.webhook.enabled);
}

#[tokio::test]
async fn the_outbox_moves_by_compare_and_set_and_records_failures() {
    let db = TestDatabase::create().await;
    let store = open(&db, SECRET, None).await;
    let org = org(&store).await;
    let hook = WebhookRepository::create(&*store, org, &new_hook("whsec_x"), &Actor::CLI)
        .await
        .unwrap();
    // The endpoint's own `webhook.created` is after its starting point.
    let events = EventLog::list(&*store, org, 0, 10, None).await.unwrap();
    let created = events.last().unwrap().seq;
    assert_eq!(hook.delivered_seq, created - 1);
    assert_eq!(
        store
            .system_numbered_after(org, hook.delivered_seq, 10)
            .await
            .unwrap()[0]
            .seq,
        created
    );

    // A failure: attempts counted, failure kept, cursor unmoved.
    let retry_at = Utc::now() + chrono::Duration::seconds(30);
    let failed = Outcome::Failed {
        through: hook.delivered_seq,
        retry_at,
        error: "answered 500".into(),
        disable: false,
    };
    assert!(
        store
            .system_record(
                hook.id,
                hook.delivered_seq,
                version(&store, hook.id).await,
                &[attempt(created, false)],
                &failed
            )
            .await
            .unwrap()
    );
    let after = WebhookRepository::get(&*store, org, hook.id).await.unwrap();
    assert_eq!(after.attempts, 1);
    assert!(after.failing_since.is_some() && after.next_attempt_at.is_some());
    assert_eq!(after.last_error.as_deref(), Some("answered 500"));
    let since = after.failing_since;
    store
        .system_record(
            hook.id,
            hook.delivered_seq,
            version(&store, hook.id).await,
            &[attempt(created, false)],
            &failed,
        )
        .await
        .unwrap();
    let again = WebhookRepository::get(&*store, org, hook.id).await.unwrap();
    assert_eq!(
        (again.attempts, again.failing_since),
        (2, since),
        "the same failure goes on"
    );

    // Delivered: the cursor moves, the failure clears.
    assert!(
        store
            .system_record(
                hook.id,
                hook.delivered_seq,
                version(&store, hook.id).await,
                &[attempt(created, true)],
                &Outcome::Advanced { through: created }
            )
            .await
            .unwrap()
    );
    let moved = WebhookRepository::get(&*store, org, hook.id).await.unwrap();
    assert_eq!((moved.delivered_seq, moved.attempts), (created, 0));
    assert!(moved.failing_since.is_none() && moved.last_delivered_at.is_some());

    // A replay moves it back while a step was running: the step's record
    // keeps its attempts but does not move the cursor past the replay.
    WebhookRepository::replay_from(&*store, org, hook.id, 1, &Actor::CLI)
        .await
        .unwrap();
    assert!(
        !store
            .system_record(
                hook.id,
                created,
                version(&store, hook.id).await,
                &[attempt(created + 1, true)],
                &Outcome::Advanced {
                    through: created + 1
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(
        WebhookRepository::get(&*store, org, hook.id)
            .await
            .unwrap()
            .delivered_seq,
        0
    );
    let listed = store
        .deliveries(org, hook.id, PageRequest::parse(Some(50), None).unwrap())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4, "every attempt is kept");

    // Failing too long: turned off, with its event.
    let disabled = Outcome::Failed {
        through: 0,
        retry_at,
        error: "answered 500".into(),
        disable: true,
    };
    assert!(
        store
            .system_record(
                hook.id,
                0,
                version(&store, hook.id).await,
                &[attempt(1, false)],
                &disabled
            )
            .await
            .unwrap()
    );
    let off = WebhookRepository::get(&*store, org, hook.id).await.unwrap();
    assert!(!off.enabled && off.disabled_reason.unwrap().contains("answered 500"));
    assert!(store.system_enabled_webhooks().await.unwrap().is_empty());
    let last = EventLog::list(&*store, org, 0, 100, None).await.unwrap();
    assert_eq!(last.last().unwrap().kind, "webhook.disabled");
    assert_eq!(last.last().unwrap().data["webhook_id"], hook.id.to_string());

    // Turned on again: a fresh failure period.
    let on = WebhookRepository::update(
        &*store,
        org,
        hook.id,
        &WebhookChange {
            enabled: Some(true),
            ..WebhookChange::default()
        },
        &Actor::CLI,
    )
    .await
    .unwrap();
    assert!(on.enabled && on.failing_since.is_none() && on.disabled_reason.is_none());
    assert_eq!(on.attempts, 0);

    // Changed by the organization while a step ran: that step's record is
    // refused, so the change applies from the next step on.
    let before = version(&store, hook.id).await;
    let changed = WebhookRepository::update(
        &*store,
        org,
        hook.id,
        &WebhookChange {
            url: Some("https://elsewhere.example.com/rwa".into()),
            ..WebhookChange::default()
        },
        &Actor::CLI,
    )
    .await
    .unwrap();
    assert!(
        !store
            .system_record(
                hook.id,
                changed.delivered_seq,
                before,
                &[],
                &Outcome::Advanced {
                    through: changed.delivered_seq + 1
                }
            )
            .await
            .unwrap()
    );

    // Another organization sees nothing of it.
    let other = {
        let (key, _) = NewApiKey::generate(Role::Admin, None);
        store
            .system_create_with_key(&OrgName::parse("Other").unwrap(), &key, &Actor::CLI)
            .await
            .unwrap()
            .id
    };
    assert!(
        WebhookRepository::get(&*store, other, hook.id)
            .await
            .is_err()
    );
    assert!(OrgRepository::get(&*store, other).await.is_ok());
}

#[tokio::test]
async fn the_event_stream_starts_after_the_newest_event_and_moves_by_compare_and_set() {
    let db = TestDatabase::create().await;
    let store = open(&db, SECRET, None).await;
    let (a, b) = (org(&store).await, org(&store).await);
    WebhookRepository::create(&*store, a, &new_hook("whsec_a"), &Actor::CLI)
        .await
        .unwrap();
    // Listing numbers what is pending, so the head is every event so far.
    EventLog::list(&*store, a, 0, 10, None).await.unwrap();
    let head = store.system_last_numbered().await.unwrap();
    assert!(head > 0);
    let cursor = store.system_stream_open("amqp").await.unwrap();
    assert_eq!(cursor, head, "a new stream starts after the newest event");

    for org in [b, a, b] {
        WebhookRepository::create(&*store, org, &new_hook("whsec_b"), &Actor::CLI)
            .await
            .unwrap();
    }
    EventLog::list(&*store, a, 0, 50, None).await.unwrap();
    EventLog::list(&*store, b, 0, 50, None).await.unwrap();
    let all = store.system_all_numbered_after(cursor, 50).await.unwrap();
    let orgs: Vec<OrgId> = all.iter().map(|e| e.org_id).collect();
    assert_eq!(orgs, vec![b, a, b], "every organization's events, by seq");
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (head + 1..=head + 3).collect::<Vec<_>>());
    assert_eq!(
        store
            .system_all_numbered_after(cursor, 2)
            .await
            .unwrap()
            .len(),
        2
    );

    // Opening again keeps the cursor; it moves only from where it is.
    assert_eq!(store.system_stream_open("amqp").await.unwrap(), cursor);
    assert!(
        store
            .system_stream_advance("amqp", cursor, seqs[1])
            .await
            .unwrap()
    );
    assert!(
        !store
            .system_stream_advance("amqp", cursor, seqs[2])
            .await
            .unwrap(),
        "a publisher holding a stale cursor does not move it"
    );
    assert_eq!(store.system_stream_open("amqp").await.unwrap(), seqs[1]);
    assert_eq!(
        store.system_stream_open("other").await.unwrap(),
        seqs[2],
        "each stream has its own cursor"
    );
}
