//! The storage contract, run unchanged on SQLite and PostgreSQL
//! (`RWA_TEST_DATABASE=sqlite|postgres`).

use std::future::Future;

use futures_util::future::maybe_done;
use std::sync::Arc;
use std::time::Duration;

use rwa_domain::api_key::{KeyDigest, NewApiKey};
use rwa_domain::investor::{InvestorDraft, InvestorFilter, KycStatus, NewInvestor};
use rwa_domain::org::OrgName;
use rwa_domain::page::PageRequest;
use rwa_domain::pii::PiiKeys;
use rwa_domain::ports::{ApiKeyRepository, AuditTrail, DatabaseProbe, EventLog, OrgRepository};
use rwa_domain::token::{NewToken, TokenDraft};
use rwa_domain::{Actor, ApiKeyId, OrgId, RepoError, Role};
use rwa_store::{GroupCommitStats, Store, StoreOptions};
use rwa_testkit::TestDatabase;

const SECRET: &[u8] = b"conformance-secret-of-at-least-32-bytes";

async fn store() -> (Arc<Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 4;
    opts.pii = Some(Arc::new(PiiKeys::new(SECRET, None)));
    let store = Store::connect(&opts).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrating twice is a no-op");
    (Arc::new(store), db)
}

async fn org_with_admin(store: &Store, name: &str) -> (OrgId, NewApiKey) {
    let (key, _secret) = NewApiKey::generate(Role::Admin, Some("first".into()));
    let org = store
        .system_create_with_key(&OrgName::parse(name).unwrap(), &key, &Actor::CLI)
        .await
        .expect("create org");
    (org.id, key)
}

#[tokio::test]
async fn organizations_are_created_with_their_first_key_and_read_back() {
    let (store, _db) = store().await;
    let (org, key) = org_with_admin(&store, "Acme Fund").await;

    let read = OrgRepository::get(&*store, org).await.unwrap();
    assert_eq!(read.name, "Acme Fund");
    let first = ApiKeyRepository::get(&*store, org, key.id).await.unwrap();
    assert_eq!(first.role, Role::Admin);
    assert_eq!(first.label.as_deref(), Some("first"));
    assert!(matches!(
        OrgRepository::get(&*store, OrgId::new()).await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn keys_are_scoped_to_their_organization() {
    let (store, _db) = store().await;
    let (org_a, key_a) = org_with_admin(&store, "A").await;
    let (org_b, _) = org_with_admin(&store, "B").await;

    assert!(matches!(
        ApiKeyRepository::get(&*store, org_b, key_a.id).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        store.revoke(org_b, key_a.id, &Actor::CLI).await,
        Err(RepoError::NotFound)
    ));
    // Still usable: the foreign revocation did nothing.
    assert!(
        ApiKeyRepository::get(&*store, org_a, key_a.id)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );

    let (orphan, _) = NewApiKey::generate(Role::Operator, None);
    assert!(matches!(
        store.create(OrgId::new(), &orphan, &Actor::CLI).await,
        Err(RepoError::NotFound)
    ));
}

#[tokio::test]
async fn key_lists_page_by_cursor_in_creation_order() {
    let (store, _db) = store().await;
    let (org, first) = org_with_admin(&store, "Pager").await;
    let mut ids = vec![first.id];
    for role in [
        Role::Operator,
        Role::Compliance,
        Role::Auditor,
        Role::Operator,
    ] {
        let (key, _) = NewApiKey::generate(role, None);
        ids.push(store.create(org, &key, &Actor::CLI).await.unwrap().id);
    }

    let mut seen: Vec<ApiKeyId> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::parse(Some(2), cursor.as_deref()).unwrap();
        let got = ApiKeyRepository::list(&*store, org, page).await.unwrap();
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(|k| k.id));
        match got.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every key exactly once, oldest first");
}

#[tokio::test]
async fn revocation_is_recorded_once_and_digest_lookup_finds_keys() {
    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Revoker").await;
    let (key, secret) = NewApiKey::generate(Role::Operator, None);
    store.create(org, &key, &Actor::CLI).await.unwrap();

    let found = store
        .system_find_by_digest(&KeyDigest::of(secret.expose()))
        .await
        .unwrap()
        .expect("found by digest");
    assert_eq!(found.key.id, key.id);
    assert!(found.digest.matches(&key.digest));
    assert!(
        store
            .system_find_by_digest(&KeyDigest::of("rwa_nope"))
            .await
            .unwrap()
            .is_none()
    );

    store.system_touch_last_used(key.id).await.unwrap();
    let touched = ApiKeyRepository::get(&*store, org, key.id).await.unwrap();
    assert!(touched.last_used_at.is_some());

    let first = store.revoke(org, key.id, &Actor::CLI).await.unwrap();
    let again = store.revoke(org, key.id, &Actor::CLI).await.unwrap();
    assert!(first.revoked_at.is_some());
    assert_eq!(
        first.revoked_at, again.revoked_at,
        "a second revocation keeps the first time"
    );
}

#[tokio::test]
async fn every_write_is_audited_in_one_chain_that_detects_tampering() {
    let (store, db) = store().await;
    let (org, _) = org_with_admin(&store, "Audited").await;

    // Concurrent writers from several organizations still build one gap-free chain.
    let mut handles = Vec::new();
    for i in 0..12 {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let (other, _) = org_with_admin(&store, &format!("Org {i}")).await;
            let (key, _) = NewApiKey::generate(Role::Auditor, None);
            store.create(other, &key, &Actor::CLI).await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let verified = store.system_verify().await.unwrap();
    assert_eq!(verified.first_broken, None);
    assert_eq!(verified.entries, 2 + 12 * 3);

    let entries = AuditTrail::list(&*store, org, &Default::default(), PageRequest::default())
        .await
        .unwrap();
    let actions: Vec<&str> = entries.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["org.created", "api_key.created"]);
    assert!(entries.items.iter().all(|e| e.actor == "cli"));

    // Edit one stored entry behind the service's back.
    tamper(
        &db,
        "UPDATE audit_log SET data = '{\"name\":\"Forged\"}' WHERE seq = 1",
    )
    .await;
    let broken = store
        .system_verify()
        .await
        .unwrap()
        .first_broken
        .expect("tampering found");
    assert_eq!(broken.seq, 1);
}

#[tokio::test]
async fn a_truncated_audit_tail_is_detected() {
    let (store, db) = store().await;
    org_with_admin(&store, "Tail").await;
    // Entries are chained after commit; tamper with chained ones.
    store.stamp_pending().await.unwrap();
    tamper(&db, "DELETE FROM audit_log WHERE seq = 2").await;
    let broken = store
        .system_verify()
        .await
        .unwrap()
        .first_broken
        .expect("truncation found");
    assert_eq!(broken.seq, 2);
}

#[tokio::test]
async fn the_probe_pings_and_reports_pools() {
    let (store, db) = store().await;
    store.ping().await.unwrap();
    assert_eq!(store.backend(), db.backend_name());
    let stats = store.pool_stats();
    assert!(!stats.is_empty());
    assert!(stats.iter().all(|s| s.max >= 1 && s.idle <= s.size));
}

async fn tamper(db: &TestDatabase, statement: &'static str) {
    use sqlx::Connection;
    match db.backend {
        rwa_testkit::TestBackend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
        rwa_testkit::TestBackend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        }
    }
}

fn new_token(symbol: &str) -> NewToken {
    NewToken::parse(&TokenDraft {
        name: format!("{symbol} Fund"),
        symbol: symbol.into(),
        decimals: 6,
        compliance: None,
    })
    .expect("valid token")
}

/// Waits for the store's SQLite writer to reach a state (no timing window:
/// the bound only stops a broken build from hanging CI).
async fn until_stats(store: &Store, done: impl Fn(GroupCommitStats) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !done(store.group_commit_stats().expect("sqlite")) {
        assert!(
            std::time::Instant::now() < deadline,
            "writer never got there"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Concurrent writes where some must fail (a symbol already taken): each
/// failing unit gets its own error and leaves nothing behind, and the others
/// commit. On SQLite the writer is held up by another connection's write
/// lock while the units arrive, so they all run in one shared transaction,
/// the failing ones rolled back to their savepoints.
#[tokio::test]
async fn a_unit_that_fails_among_concurrent_writes_fails_alone() {
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    // The test releases the lock it holds; no busy timeout may end the wait.
    opts.busy_timeout = Duration::from_secs(600);
    let store = Arc::new(Store::connect(&opts).await.expect("connect"));
    store.migrate().await.expect("migrate");
    let (org, admin_key) = org_with_admin(&store, "Batch").await;
    for i in 0..5 {
        tokens::Repo::create(&*store, org, &new_token(&format!("TAKEN{i}")), &Actor::CLI)
            .await
            .unwrap();
    }
    let base = store.group_commit_stats();

    let mut blocker = None;
    if db.backend == rwa_testkit::TestBackend::Sqlite {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut c)
            .await
            .unwrap();
        blocker = Some(c);
        // Any write makes the writer begin a batch, which now waits for
        // the lock: every unit submitted after that joins the next batch.
        let plug_store = Arc::clone(&store);
        tokio::spawn(async move {
            tokens::Repo::create(&*plug_store, org, &new_token("PLUG"), &Actor::CLI)
                .await
                .unwrap();
        });
        let started = base.unwrap().started;
        until_stats(&store, |s| s.started > started).await;
    }

    // Every fourth unit fails: a token symbol already taken (refused by
    // its first insert), or a new organization whose first key is one
    // already stored (refused after the organization row was written, which
    // must be undone with it). A unit is handed to the writer on its first poll.
    type Write = std::pin::Pin<Box<dyn Future<Output = Result<String, RepoError>> + Send>>;
    let labels: Vec<String> = (0..20)
        .map(|i| match i % 8 {
            0 => format!("TAKEN{}", i / 8),
            4 => format!("ORG{i}"),
            _ => format!("NEW{i}"),
        })
        .collect();
    let writes: Vec<Write> = labels
        .iter()
        .map(|label| {
            let store = Arc::clone(&store);
            if label.starts_with("ORG") {
                let (name, key) = (OrgName::parse(label).unwrap(), admin_key.clone());
                Box::pin(async move {
                    store
                        .system_create_with_key(&name, &key, &Actor::CLI)
                        .await
                        .map(|o| o.name)
                }) as Write
            } else {
                let token = new_token(label);
                Box::pin(async move {
                    tokens::Repo::create(&*store, org, &token, &Actor::CLI)
                        .await
                        .map(|t| t.symbol)
                })
            }
        })
        .collect();
    // One poll each submits them in order. (On PostgreSQL a poll may
    // already finish a write, when the local server answers within it:
    // `MaybeDone` keeps that answer.)
    let mut writes: Vec<_> = writes.into_iter().map(maybe_done).collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for w in &mut writes {
        let _ = std::pin::Pin::new(w).poll(&mut cx);
    }
    if let Some(mut c) = blocker {
        sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
    }
    futures_util::future::join_all(writes.iter_mut()).await;
    let results: Vec<_> = writes
        .iter_mut()
        .map(|w| std::pin::Pin::new(w).take_output().expect("finished"))
        .collect();

    for (label, result) in labels.iter().zip(&results) {
        match result {
            Ok(stored) => {
                assert!(label.starts_with("NEW"), "{label} should have failed");
                assert_eq!(stored, label);
            }
            Err(RepoError::Conflict(m)) => {
                assert!(!label.starts_with("NEW"), "{label}: {m}");
            }
            Err(e) => panic!("{label}: {e}"),
        }
    }
    let orgs = column(&db, "SELECT name FROM organizations WHERE name LIKE 'ORG%'").await;
    assert_eq!(
        orgs,
        Vec::<String>::new(),
        "a failed unit's earlier write was kept"
    );
    let listed = tokens::Repo::list(
        &*store,
        org,
        PageRequest {
            limit: 100,
            after: None,
        },
    )
    .await
    .unwrap();
    let expected = 5 + 15 + usize::from(base.is_some());
    assert_eq!(listed.items.len(), expected);
    // Only the committed units left audit entries, and the chain holds.
    let verified = store.system_verify().await.unwrap();
    assert_eq!(verified.first_broken, None);
    assert_eq!(verified.entries, 2 + expected as u64);

    if let Some(base) = base {
        let now = store.group_commit_stats().unwrap();
        assert_eq!(now.rolled_back_alone - base.rolled_back_alone, 5);
    }
}

/// Readers of the event log under concurrent writers: paging by "after seq"
/// sees every committed event exactly once, in increasing order.
#[tokio::test]
async fn events_read_in_order_under_concurrent_writers_never_skip_or_repeat() {
    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Events").await;
    const WRITERS: usize = 6;
    const EACH: usize = 15;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let symbol = format!("W{w}N{i}");
                    let token =
                        tokens::Repo::create(&*store, org, &new_token(&symbol), &Actor::CLI)
                            .await
                            .unwrap();
                    tokens::Repo::system_mark_failed(&*store, token.id, "test: no chain")
                        .await
                        .unwrap();
                }
            })
        })
        .collect();

    let mut seen = Vec::new();
    let mut after = 0;
    let read_page = async |after: i64, seen: &mut Vec<(i64, uuid::Uuid)>| {
        let page = EventLog::list(&*store, org, after, 7, None).await.unwrap();
        seen.extend(page.iter().map(|e| (e.seq, e.id.as_uuid())));
        page.last().map_or(after, |e| e.seq)
    };
    while !writers.iter().all(|w| w.is_finished()) {
        after = read_page(after, &mut seen).await;
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    loop {
        let next = read_page(after, &mut seen).await;
        if next == after {
            break;
        }
        after = next;
    }

    assert_eq!(seen.len(), WRITERS * EACH, "every event read once");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "seq strictly increases"
    );
    let ids: std::collections::HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), seen.len(), "no event read twice");
    // Numbers are gap-free from 1: nothing was numbered and then lost.
    assert_eq!(seen.first().map(|e| e.0), Some(1));
    assert_eq!(seen.last().map(|e| e.0), Some((WRITERS * EACH) as i64));
}

/// The token repository, named in full so `store.create` stays the API-key one.
mod tokens {
    pub(crate) use rwa_domain::token::TokenRepository as Repo;
}

fn investor(name: &str, email: &str, country: &str, external_ref: Option<&str>) -> NewInvestor {
    let draft = InvestorDraft {
        name: name.into(),
        email: email.into(),
        country: country.into(),
        kind: "individual".into(),
        accredited: false,
        accreditation_expires_at: None,
        external_ref: external_ref.map(Into::into),
    };
    NewInvestor::parse(&draft, chrono::Utc::now()).expect("valid investor")
}

async fn column(db: &TestDatabase, statement: &'static str) -> Vec<String> {
    use sqlx::Connection;
    match db.backend {
        rwa_testkit::TestBackend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(statement)
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
        rwa_testkit::TestBackend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(statement)
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
    }
}

/// Investors are stored with their personal data sealed: the columns hold
/// ciphertext, reads open it, search matches normalised names and exact
/// references by keyed hash, and an external reference names one investor.
#[tokio::test]
async fn investors_keep_personal_data_sealed_and_are_found_by_keyed_hash() {
    let (store, db) = store().await;
    let (org, _) = org_with_admin(&store, "Onboarding").await;
    let (other_org, _) = org_with_admin(&store, "Other").await;
    let ana = investor("Ana Müller", "ana@example.com", "DE", Some("crm:1"));
    let created = investors::Repo::create(&*store, org, &ana, &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(created.name, "Ana Müller");
    assert_eq!(created.email, "ana@example.com");
    assert_eq!(created.kyc_status, KycStatus::Pending);
    let bo = investor("Bo Chen", "bo@example.org", "SG", None);
    investors::Repo::create(&*store, org, &bo, &Actor::CLI)
        .await
        .unwrap();

    // The same reference again in the organization is a conflict; in
    // another organization it is free.
    let again = investor("Someone Else", "x@example.com", "FR", Some("crm:1"));
    let refused = investors::Repo::create(&*store, org, &again, &Actor::CLI).await;
    assert!(matches!(refused, Err(RepoError::Conflict(m)) if m.contains("external_ref")));
    investors::Repo::create(&*store, other_org, &again, &Actor::CLI)
        .await
        .unwrap();

    // Only ciphertext is stored.
    let sealed = column(&db, "SELECT name_sealed FROM investors").await;
    let emails = column(&db, "SELECT email_sealed FROM investors").await;
    for value in sealed.iter().chain(&emails) {
        assert!(value.starts_with("v1."), "{value}");
        assert!(
            !value.contains("Ana") && !value.contains("example"),
            "{value}"
        );
    }

    let read = investors::Repo::get(&*store, org, ana.id).await.unwrap();
    assert_eq!(read, created);
    assert!(matches!(
        investors::Repo::get(&*store, other_org, ana.id).await,
        Err(RepoError::NotFound)
    ));

    let find = |filter: InvestorFilter| {
        let store = Arc::clone(&store);
        async move {
            investors::Repo::list(&*store, org, &filter, PageRequest::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|i| i.name)
                .collect::<Vec<_>>()
        }
    };
    let q = |q: &str| InvestorFilter {
        q: Some(q.into()),
        ..InvestorFilter::default()
    };
    assert_eq!(find(q("muller, ANA")).await, ["Ana Müller"]);
    assert_eq!(find(q("crm:1")).await, ["Ana Müller"]);
    assert!(find(q("Ana")).await.is_empty(), "exact matches only");
    let in_country = InvestorFilter {
        country: Some(rwa_domain::country::Country::parse("SG", "country").unwrap()),
        ..InvestorFilter::default()
    };
    assert_eq!(find(in_country).await, ["Bo Chen"]);
    let pending = InvestorFilter {
        kyc_status: Some(KycStatus::Pending),
        ..InvestorFilter::default()
    };
    assert_eq!(find(pending).await.len(), 2);
    let approved = InvestorFilter {
        kyc_status: Some(KycStatus::Approved),
        ..InvestorFilter::default()
    };
    assert!(find(approved).await.is_empty());

    // The audit trail and the event log name the investor, never its data.
    let entries = AuditTrail::list(&*store, org, &Default::default(), PageRequest::default())
        .await
        .unwrap();
    let created_entry = entries
        .items
        .iter()
        .find(|e| e.action == "investor.created")
        .expect("audited");
    assert_eq!(created_entry.target, format!("investor:{}", ana.id));
    let events = EventLog::list(&*store, org, 0, 10, None).await.unwrap();
    assert_eq!(events.len(), 2);
    for text in entries
        .items
        .iter()
        .map(|e| e.data.clone())
        .chain(events.iter().map(|e| e.data.to_string()))
    {
        assert!(!text.contains("Ana") && !text.contains("example"), "{text}");
    }

    // Under another secret, the rows do not open (and say why).
    let mut opts = StoreOptions::new(&db.url);
    opts.pii = Some(Arc::new(PiiKeys::new(
        b"another-secret-of-at-least-32-bytes!!",
        None,
    )));
    let foreign = Store::connect(&opts).await.unwrap();
    let e = investors::Repo::get(&foreign, org, ana.id)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not configured"), "{e}");
    // With the previous secret kept for a rotation, they do.
    let mut opts = StoreOptions::new(&db.url);
    opts.pii = Some(Arc::new(PiiKeys::new(
        b"another-secret-of-at-least-32-bytes!!",
        Some(SECRET),
    )));
    let rotating = Store::connect(&opts).await.unwrap();
    assert_eq!(
        investors::Repo::get(&rotating, org, ana.id)
            .await
            .unwrap()
            .email,
        "ana@example.com"
    );
    foreign.close().await;
    rotating.close().await;
}

/// The investor repository, named in full like the token one.
mod investors {
    pub(crate) use rwa_domain::investor::InvestorRepository as Repo;
}

fn pause(token: rwa_domain::TokenId) -> rwa_domain::operation::NewOperation {
    use rwa_domain::operation::{NewOperation, OperationKind};
    NewOperation {
        kind: OperationKind::Pause,
        token_id: Some(token),
        wallet: None,
        counterparty: None,
        investor_id: None,
        amount: None,
        reason: None,
        four_eyes: true,
        new_holder: false,
        rule_change: None,
    }
}

#[tokio::test]
async fn idempotency_keys_claim_replay_refuse_and_lapse() {
    use rwa_domain::idempotency::{
        Claim, Completion, IdempotencyKey, IdempotencyStore, StoredResponse,
    };
    use rwa_domain::operation::{Created, Operation, OperationRepository};
    use rwa_domain::token::TokenRepository;

    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Keys").await;
    let (other, _) = org_with_admin(&store, "Other").await;
    let token = TokenRepository::create(store.as_ref(), org, &new_token("IDEM"), &Actor::CLI)
        .await
        .unwrap();
    let key = IdempotencyKey::parse("order-17").unwrap();
    let lease = Duration::from_secs(30);
    let Claim::Granted(first) = store.claim(org, &key, "fp-a", lease).await.unwrap() else {
        panic!("a new key is granted");
    };
    // In flight: the same request is told to come back, another is refused.
    match store.claim(org, &key, "fp-a", lease).await.unwrap() {
        Claim::InProgress { retry_after_secs } => assert!((1..=30).contains(&retry_after_secs)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.claim(org, &key, "fp-b", lease).await.unwrap(),
        Claim::Mismatch
    );
    // Keys are per organization.
    assert!(matches!(
        store.claim(other, &key, "fp-z", lease).await.unwrap(),
        Claim::Granted(_)
    ));
    // A failed request releases its claim: the retry proceeds.
    store.release(org, &key, first).await.unwrap();
    let Claim::Granted(second) = store.claim(org, &key, "fp-a", lease).await.unwrap() else {
        panic!("a released key is granted again");
    };
    // The change records its response in its own transaction; a retry
    // gets it back.
    let render = |op: &Operation| format!("{{\"id\":\"{}\"}}", op.id);
    let done = Completion {
        key: key.clone(),
        claim: second,
        status: 202,
        render: Arc::new(render),
    };
    let Created::Stored(op) = OperationRepository::create(
        store.as_ref(),
        org,
        &pause(token.id),
        None,
        &Actor::CLI,
        &done,
    )
    .await
    .unwrap() else {
        panic!("a pause is stored");
    };
    assert_eq!(
        store.claim(org, &key, "fp-a", lease).await.unwrap(),
        Claim::Replay(StoredResponse {
            status: 202,
            body: render(&op)
        })
    );
    assert_eq!(
        store.claim(org, &key, "fp-b", lease).await.unwrap(),
        Claim::Mismatch
    );
    // A claim whose holder vanished (its lease over) is taken over, and the
    // vanished holder can no longer complete it.
    let late = IdempotencyKey::parse("order-18").unwrap();
    let Claim::Granted(vanished) = store.claim(org, &late, "fp", Duration::ZERO).await.unwrap()
    else {
        panic!("granted");
    };
    let Claim::Granted(_taker) = store.claim(org, &late, "fp", lease).await.unwrap() else {
        panic!("a lapsed claim is taken over");
    };
    let stale = Completion {
        key: late,
        claim: vanished,
        status: 202,
        render: Arc::new(render),
    };
    let refused = OperationRepository::create(
        store.as_ref(),
        org,
        &pause(token.id),
        None,
        &Actor::CLI,
        &stale,
    )
    .await;
    assert!(
        matches!(refused, Err(RepoError::Conflict(_))),
        "{refused:?}"
    );
    let page = PageRequest::parse(None, None).unwrap();
    let ops = OperationRepository::list(store.as_ref(), org, &Default::default(), page)
        .await
        .unwrap();
    assert_eq!(
        ops.items.len(),
        1,
        "the stale completion rolled its operation back"
    );
    assert_eq!(
        store.system_prune().await.unwrap(),
        0,
        "nothing is a day old"
    );
}

fn fingerprint(agent: &str, ip: &str) -> rwa_domain::session::Fingerprint {
    rwa_domain::session::Fingerprint::of(Some(agent), Some(ip.parse().unwrap()))
}

fn request(id: &str) -> rwa_domain::actor::RequestContext {
    rwa_domain::actor::RequestContext {
        request_id: id.into(),
        ip: Some("10.0.0.7".parse().unwrap()),
    }
}

#[tokio::test]
async fn users_sessions_and_refresh_tokens_rotate_revoke_and_stay_in_their_organization() {
    use rwa_domain::password::PasswordHash;
    use rwa_domain::session::{
        FingerprintMode, NewSession, RefreshSecret, Refreshed, SessionRepository,
    };
    use rwa_domain::user::{Email, NewUser, UserChange, UserRepository};
    use rwa_domain::{SessionId, UserId};

    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Users Fund").await;
    let (other, _) = org_with_admin(&store, "Other Fund").await;
    let new_user = |email: &str, role| NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        role,
        password_hash: PasswordHash::from_stored("$argon2id$v=19$stored".into()),
    };
    let ada = new_user("Ada@Users.example", Role::Operator);
    let created = UserRepository::create(&*store, org, &ada, &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(
        (created.email.as_str(), created.role),
        ("ada@users.example", Role::Operator)
    );
    assert!(
        matches!(
            UserRepository::create(&*store, other, &new_user("ada@users.example", Role::Admin), &Actor::CLI).await,
            Err(RepoError::Conflict(m)) if m.contains("e-mail")
        ),
        "an address is one login across organizations"
    );
    assert!(matches!(
        UserRepository::get(&*store, other, ada.id).await,
        Err(RepoError::NotFound)
    ));
    let found = store
        .auth_find_login(&Email::parse("ADA@users.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user.id, ada.id);
    assert_eq!(found.password_hash.as_str(), "$argon2id$v=19$stored");

    // A session; its first refresh token rotates, then comes back: replay.
    let home = fingerprint("Firefox/1", "10.0.0.7");
    let first = RefreshSecret::generate();
    let session = NewSession {
        id: SessionId::new(),
        user: ada.id,
        org,
        fingerprint: home.clone(),
        refresh: first.digest(),
        lifetime: chrono::TimeDelta::days(1),
    };
    let as_ada = Actor {
        principal: rwa_domain::actor::Principal::User(ada.id),
        request: Some(request("login-1")),
    };
    store.auth_open(&session, &as_ada).await.unwrap();
    let standing = SessionRepository::auth_standing(&*store, org, ada.id, session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(standing.live);
    assert_eq!(
        (standing.role, standing.mode),
        (Role::Operator, FingerprintMode::Lenient)
    );
    assert!(
        SessionRepository::auth_standing(&*store, other, ada.id, session.id)
            .await
            .unwrap()
            .is_none()
    );
    let second = RefreshSecret::generate();
    let rotated = store
        .auth_refresh(&first.digest(), &second.digest(), &home, &request("r-1"))
        .await
        .unwrap();
    assert!(
        matches!(rotated, Refreshed::Rotated { generation: 2, .. }),
        "{rotated:?}"
    );
    let third = RefreshSecret::generate();
    let replay = store
        .auth_refresh(&first.digest(), &third.digest(), &home, &request("r-2"))
        .await
        .unwrap();
    assert!(matches!(replay, Refreshed::Replayed));
    assert!(
        !SessionRepository::auth_standing(&*store, org, ada.id, session.id)
            .await
            .unwrap()
            .unwrap()
            .live
    );
    let after = store
        .auth_refresh(&second.digest(), &third.digest(), &home, &request("r-3"))
        .await
        .unwrap();
    assert!(
        matches!(after, Refreshed::Replayed | Refreshed::Refused),
        "{after:?}"
    );

    // Another session; a changed role revokes it in the same transaction.
    let token = RefreshSecret::generate();
    let again = NewSession {
        id: SessionId::new(),
        refresh: token.digest(),
        ..session.clone()
    };
    store.auth_open(&again, &as_ada).await.unwrap();
    let change = UserChange {
        role: Some(Role::Auditor),
        disabled: None,
        allowed_cidrs: None,
    };
    let changed = UserRepository::update(&*store, org, ada.id, &change, &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(changed.role, Role::Auditor);
    assert!(
        !SessionRepository::auth_standing(&*store, org, ada.id, again.id)
            .await
            .unwrap()
            .unwrap()
            .live
    );
    assert!(matches!(
        store
            .auth_refresh(&token.digest(), &third.digest(), &home, &request("r-4"))
            .await
            .unwrap(),
        Refreshed::Refused
    ));
    assert!(matches!(
        UserRepository::update(&*store, other, ada.id, &change, &Actor::CLI).await,
        Err(RepoError::NotFound)
    ));

    // A session that ended over a day ago goes, tokens and all, at the
    // user's next login.
    let old_token = RefreshSecret::generate();
    let old = NewSession {
        id: SessionId::new(),
        refresh: old_token.digest(),
        lifetime: chrono::TimeDelta::days(-2),
        ..session.clone()
    };
    store.auth_open(&old, &as_ada).await.unwrap();
    assert!(
        SessionRepository::auth_standing(&*store, org, ada.id, old.id)
            .await
            .unwrap()
            .is_some()
    );
    let fresh = NewSession {
        id: SessionId::new(),
        refresh: RefreshSecret::generate().digest(),
        ..session.clone()
    };
    store.auth_open(&fresh, &as_ada).await.unwrap();
    assert!(
        SessionRepository::auth_standing(&*store, org, ada.id, old.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .auth_refresh(&old_token.digest(), &third.digest(), &home, &request("r-5"))
            .await
            .unwrap(),
        Refreshed::Refused
    ));

    // Deleted: gone from lists and logins, inactive for its keys, address free.
    UserRepository::delete(&*store, org, ada.id, &Actor::CLI)
        .await
        .unwrap();
    assert!(
        store
            .auth_find_login(&Email::parse("ada@users.example").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !UserRepository::auth_standing(&*store, org, ada.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert!(
        UserRepository::list(&*store, org, PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    UserRepository::create(
        &*store,
        other,
        &new_user("ada@users.example", Role::Admin),
        &Actor::CLI,
    )
    .await
    .unwrap();

    // Logins, replays and the request they came in are audited.
    let filter = rwa_domain::audit::AuditFilter {
        action: Some("auth.*".into()),
        ..Default::default()
    };
    let entries = AuditTrail::list(&*store, org, &filter, PageRequest::default())
        .await
        .unwrap()
        .items;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "auth.login_succeeded",
            "auth.refresh_replayed",
            "auth.login_succeeded",
            "auth.login_succeeded",
            "auth.login_succeeded"
        ]
    );
    assert_eq!(entries[0].request_id.as_deref(), Some("login-1"));
    assert_eq!(entries[1].request_id.as_deref(), Some("r-2"));
    assert_eq!(entries[1].ip.as_deref(), Some("10.0.0.7"));
    assert!(store.system_verify().await.unwrap().first_broken.is_none());
}

#[tokio::test]
async fn signing_keys_rotate_by_age_or_at_once_and_retire_the_previous() {
    use rwa_domain::session::SessionRepository;
    let (store, _db) = store().await;
    assert!(store.auth_signing_keys().await.unwrap().is_empty());
    let first = store
        .system_rotate_signing_key(Some(chrono::TimeDelta::days(30)))
        .await
        .unwrap();
    let same = store
        .system_rotate_signing_key(Some(chrono::TimeDelta::days(30)))
        .await
        .unwrap();
    assert_eq!(first.kid, same.kid, "young enough: kept");
    let second = store.system_rotate_signing_key(None).await.unwrap();
    assert_ne!(first.kid, second.kid);
    let keys = store.auth_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, second.kid, "newest first");
    assert!(keys[0].retired_at.is_none() && keys[1].retired_at.is_some());
}

#[tokio::test]
async fn failed_logins_count_lock_and_reset_on_success() {
    use rwa_domain::password::PasswordHash;
    use rwa_domain::session::{NewSession, RefreshSecret, SessionRepository};
    use rwa_domain::user::{Email, Lockout, NewUser, UserRepository};
    use rwa_domain::{SessionId, UserId};

    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Lockout Fund").await;
    let user = NewUser {
        id: UserId::new(),
        email: Email::parse("lee@lockout.example").unwrap(),
        role: Role::Auditor,
        password_hash: PasswordHash::from_stored("$argon2id$stored".into()),
    };
    UserRepository::create(&*store, org, &user, &Actor::CLI)
        .await
        .unwrap();
    let lockout = Lockout::from_secs(2, 60, 3600);
    let fail = || store.auth_login_failed(org, user.id, &lockout, "wrong_password", &Actor::CLI);
    assert_eq!(fail().await.unwrap(), None);
    let first = fail().await.unwrap().expect("the second failure locks");
    let second = fail().await.unwrap().expect("and the third, longer");
    assert!(
        second > first + chrono::TimeDelta::seconds(50),
        "{first} then {second}"
    );
    let email = Email::parse("lee@lockout.example").unwrap();
    let found = store.auth_find_login(&email).await.unwrap().unwrap();
    let stored = found.locked_until.expect("locked");
    assert!(
        (stored - second).num_milliseconds().abs() <= 1,
        "{stored} vs {second}"
    );
    assert!(matches!(
        store
            .auth_login_failed(
                OrgId::new(),
                user.id,
                &lockout,
                "wrong_password",
                &Actor::CLI
            )
            .await,
        Err(RepoError::NotFound)
    ));

    // A successful login clears the count and the lock.
    let session = NewSession {
        id: SessionId::new(),
        user: user.id,
        org,
        fingerprint: fingerprint("curl/8", "10.0.0.1"),
        refresh: RefreshSecret::generate().digest(),
        lifetime: chrono::TimeDelta::hours(1),
    };
    store.auth_open(&session, &Actor::CLI).await.unwrap();
    assert_eq!(
        store
            .auth_find_login(&email)
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        None
    );
    assert_eq!(fail().await.unwrap(), None, "counting starts afresh");
}

#[tokio::test]
async fn tiers_allow_lists_and_certificate_subjects_are_kept() {
    use rwa_domain::network::AllowedNetworks;
    use rwa_domain::password::PasswordHash;
    use rwa_domain::session::{NewSession, RefreshSecret, SessionRepository};
    use rwa_domain::user::{Email, NewUser, UserChange, UserRepository};
    use rwa_domain::{SessionId, UserId};

    let (store, _db) = store().await;
    let (org, _) = org_with_admin(&store, "Fenced Fund").await;
    assert_eq!(
        OrgRepository::get(&*store, org).await.unwrap().rate_tier,
        None
    );
    let set = store
        .system_set_rate_tier(org, Some("gold"), &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(set.rate_tier.as_deref(), Some("gold"));
    assert_eq!(
        OrgRepository::get(&*store, org)
            .await
            .unwrap()
            .rate_tier
            .as_deref(),
        Some("gold")
    );
    assert!(matches!(
        store
            .system_set_rate_tier(OrgId::new(), None, &Actor::CLI)
            .await,
        Err(RepoError::NotFound)
    ));

    // A key with an allow-list and a certificate subject, found by it.
    let nets = |r: &[&str]| {
        let raw: Vec<String> = r.iter().map(|s| (*s).to_owned()).collect();
        AllowedNetworks::parse("allowed_cidrs", &raw).unwrap()
    };
    let (mut key, _) = NewApiKey::generate(Role::Auditor, None);
    key.allowed_cidrs = nets(&["10.0.0.0/8", "2001:db8::/32"]);
    key.cert_subject = Some("CN=fund-admin".into());
    let created = ApiKeyRepository::create(&*store, org, &key, &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(created.allowed_cidrs, key.allowed_cidrs);
    let found = store
        .system_find_by_cert_subject("CN=fund-admin")
        .await
        .unwrap()
        .expect("found by subject");
    assert_eq!(found.id, key.id);
    assert!(
        store
            .system_find_by_cert_subject("CN=other")
            .await
            .unwrap()
            .is_none()
    );
    let (mut twin, _) = NewApiKey::generate(Role::Auditor, None);
    twin.cert_subject = Some("CN=fund-admin".into());
    assert!(matches!(
        ApiKeyRepository::create(&*store, org, &twin, &Actor::CLI).await,
        Err(RepoError::Conflict(_))
    ));

    // A user's allow-list: read with its standing and its sessions', and a
    // change of it alone ends no session.
    let user = NewUser {
        id: UserId::new(),
        email: Email::parse("fenced@fenced.example").unwrap(),
        role: Role::Auditor,
        password_hash: PasswordHash::from_stored("$argon2id$stored".into()),
    };
    UserRepository::create(&*store, org, &user, &Actor::CLI)
        .await
        .unwrap();
    let session = NewSession {
        id: SessionId::new(),
        user: user.id,
        org,
        fingerprint: fingerprint("Firefox", "10.1.2.3"),
        refresh: RefreshSecret::generate().digest(),
        lifetime: chrono::TimeDelta::hours(1),
    };
    store.auth_open(&session, &Actor::CLI).await.unwrap();
    let change = UserChange {
        allowed_cidrs: Some(nets(&["10.0.0.0/8"])),
        ..UserChange::default()
    };
    let changed = UserRepository::update(&*store, org, user.id, &change, &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(changed.allowed_cidrs, nets(&["10.0.0.0/8"]));
    let standing = SessionRepository::auth_standing(&*store, org, user.id, session.id)
        .await
        .unwrap()
        .unwrap();
    assert!(standing.live, "an allow-list change ends no session");
    assert_eq!(standing.allowed_cidrs, nets(&["10.0.0.0/8"]));
    let user_standing = UserRepository::auth_standing(&*store, org, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user_standing.allowed_cidrs, nets(&["10.0.0.0/8"]));
}
