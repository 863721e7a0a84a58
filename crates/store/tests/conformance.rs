//! The storage contract, run unchanged on SQLite and PostgreSQL
//! (`RWA_TEST_DATABASE=sqlite|postgres`).

use std::sync::Arc;

use rwa_domain::api_key::{KeyDigest, NewApiKey};
use rwa_domain::org::OrgName;
use rwa_domain::page::PageRequest;
use rwa_domain::ports::{ApiKeyRepository, AuditTrail, DatabaseProbe, OrgRepository};
use rwa_domain::{Actor, ApiKeyId, OrgId, RepoError, Role};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;

async fn store() -> (Arc<Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 4;
    let store = Store::connect(&opts).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrating twice is a no-op");
    (Arc::new(store), db)
}

async fn org_with_admin(store: &Store, name: &str) -> (OrgId, NewApiKey) {
    let (key, _secret) = NewApiKey::generate(Role::Admin, Some("first".into()));
    let org = store
        .system_create_with_key(&OrgName::parse(name).unwrap(), &key, &Actor::Cli)
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
        store.revoke(org_b, key_a.id, &Actor::Cli).await,
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
        store.create(OrgId::new(), &orphan, &Actor::Cli).await,
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
        ids.push(store.create(org, &key, &Actor::Cli).await.unwrap().id);
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
    store.create(org, &key, &Actor::Cli).await.unwrap();

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

    let first = store.revoke(org, key.id, &Actor::Cli).await.unwrap();
    let again = store.revoke(org, key.id, &Actor::Cli).await.unwrap();
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
            store.create(other, &key, &Actor::Cli).await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let verified = store.system_verify().await.unwrap();
    assert_eq!(verified.first_broken, None);
    assert_eq!(verified.entries, 2 + 12 * 3);

    let entries = AuditTrail::list(&*store, org, PageRequest::default())
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
