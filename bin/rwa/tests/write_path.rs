//! The write path under a crash: `rwa serve` is SIGKILLed during a burst of
//! concurrent `POST /v1/tokens` (the deployment queue is not served, so only
//! the API writes). Afterwards every acknowledged token is stored, every
//! committed audit entry is chained exactly once, a request acknowledged
//! before another was sent is chained before it, and `rwa audit verify`
//! passes. Runs on the backend `RWA_TEST_DATABASE` names.
//!
//! On PostgreSQL the test holds the audit chain's head row locked for the
//! whole burst: writes must still be acknowledged (no request waits for the
//! chain), and the crash then certainly leaves committed entries unstamped
//! for `rwa audit verify` to chain.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, eventually};
use reqwest::{Client, StatusCode};
use rwa_domain::page::PageRequest;
use rwa_domain::ports::AuditTrail;
use rwa_domain::token::TokenRepository;
use rwa_domain::{OrgId, TokenId};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

const CLIENTS: usize = 16;
const ACKS_BEFORE_KILL: usize = 300;

/// One acknowledged request: when it was sent and when its 202 arrived.
struct Ack {
    id: Uuid,
    sent: Duration,
    acked: Duration,
}

fn body(symbol: &str) -> Value {
    json!({ "name": format!("{symbol} Fund"), "symbol": symbol, "decimals": 6 })
}

/// Posts tokens until the server is gone, recording each 202.
async fn client_loop(s: Arc<ServerUrl>, c: usize, epoch: Instant, acks: Arc<Mutex<Vec<Ack>>>) {
    let client = Client::new();
    for i in 0.. {
        let sent = epoch.elapsed();
        let response = client
            .post(format!("{}/v1/tokens", s.base))
            .bearer_auth(&s.key)
            .json(&body(&format!("B{c}X{i}")))
            .send()
            .await;
        let Ok(response) = response else { return };
        if response.status() != StatusCode::ACCEPTED {
            // Not acknowledged (an overloaded pool answers 503): not counted.
            continue;
        }
        let Ok(created) = response.json::<Value>().await else {
            return;
        };
        let id = created["id"].as_str().and_then(|s| s.parse().ok());
        acks.lock().unwrap().push(Ack {
            id: id.expect("a 202 names its token"),
            sent,
            acked: epoch.elapsed(),
        });
    }
}

struct ServerUrl {
    base: String,
    key: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_burst_of_writes_loses_no_acknowledged_request() {
    let db = TestDatabase::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let config = data_dir.path().join("held.toml");
    std::fs::write(&config, "[jobs.queues.token-deployment]\nconcurrency = 0\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let mut s = Server::start_in(&db.url, data_dir, &[], &["--config", &config], None);
    let (org, admin) = s.create_org("Burst");
    let org = OrgId::from_uuid(org.parse().unwrap());

    let held_head = match db.backend {
        rwa_testkit::TestBackend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql("BEGIN; SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                .execute(&mut c)
                .await
                .unwrap();
            Some(c)
        }
        rwa_testkit::TestBackend::Sqlite => None,
    };

    let target = Arc::new(ServerUrl {
        base: s.url(""),
        key: admin,
    });
    let acks = Arc::new(Mutex::new(Vec::new()));
    let epoch = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client_loop(target.clone(), c, epoch, acks.clone())))
        .collect();
    let enough = eventually(Duration::from_secs(180), async || {
        acks.lock().unwrap().len() >= ACKS_BEFORE_KILL
    })
    .await;
    assert!(enough, "the burst never reached {ACKS_BEFORE_KILL} writes");
    s.child.kill().expect("SIGKILL");
    s.child.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    if let Some(mut c) = held_head {
        let unstamped: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE seq IS NULL")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(unstamped >= acks.len() as i64, "{unstamped} unstamped");
        sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
    }

    // The chain verifies; `audit verify` first stamps what the killed server
    // committed but had not stamped.
    let verify = s.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    assert_eq!(
        store.stamp_pending().await.unwrap(),
        0,
        "nothing left pending"
    );
    let tokens = all_tokens(&store, org).await;
    let created = token_entries(&store, org).await;

    println!(
        "{} acknowledged, {} committed, {} chained",
        acks.len(),
        tokens.len(),
        created.len()
    );
    // No acknowledged request was lost.
    for ack in &acks {
        assert!(
            tokens.contains(&ack.id),
            "acknowledged token {} lost",
            ack.id
        );
    }
    // Every committed token (acknowledged or not) has exactly one chained
    // entry, and no entry names a token that was not committed.
    assert_eq!(created.len(), tokens.len(), "one entry per committed token");
    for id in &tokens {
        assert!(created.contains_key(id), "token {id} has no audit entry");
    }
    // Commit order: acknowledged before the other was sent, chained before it.
    let seq = |a: &Ack| created[&a.id];
    for a in &acks {
        for b in &acks {
            if a.acked < b.sent {
                assert!(seq(a) < seq(b), "{} acked before {} was sent", a.id, b.id);
            }
        }
    }
    store.close().await;
}

async fn all_tokens(store: &Store, org: OrgId) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = TokenRepository::list(store, org, PageRequest { limit: 500, after })
            .await
            .unwrap();
        out.extend(page.items.iter().map(|t| t.id.as_uuid()));
        match page.items.last() {
            Some(t) if page.next_cursor.is_some() => after = Some(t.id.as_uuid()),
            _ => return out,
        }
    }
}

/// The chained `token.created` entries of `org`: token id → audit seq. A
/// token chained twice fails here.
async fn token_entries(store: &Store, org: OrgId) -> HashMap<Uuid, i64> {
    let mut out = HashMap::new();
    let mut after = None;
    loop {
        let page = AuditTrail::list(
            store,
            org,
            &Default::default(),
            PageRequest { limit: 500, after },
        )
        .await
        .unwrap();
        for e in &page.items {
            if e.action == "token.created" {
                let id: TokenId = e.target.trim_start_matches("token:").parse().unwrap();
                let again = out.insert(id.as_uuid(), e.seq);
                assert!(again.is_none(), "token {id} chained twice");
            }
        }
        match page.items.last() {
            Some(e) if page.next_cursor.is_some() => after = Some(e.id.as_uuid()),
            _ => return out,
        }
    }
}
