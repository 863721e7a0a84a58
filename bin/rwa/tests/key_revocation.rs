//! API keys are cached in each process, and a revocation still reaches every
//! process: a key revoked through one `rwa serve` is refused by another once
//! the revocation's notification arrives. Two processes need PostgreSQL, so
//! this test uses it whatever `RWA_TEST_DATABASE` says.

mod common;

use std::time::{Duration, Instant};

use common::{Server, eventually};
use reqwest::{Client, StatusCode};
use rwa_testkit::{TestBackend, TestDatabase};
use serde_json::Value;

async fn org_status(client: &Client, s: &Server, key: &str) -> StatusCode {
    client
        .get(s.url("/v1/org"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_process_is_refused_by_another() {
    let db = TestDatabase::create_on(TestBackend::Postgres).await;
    let a = Server::start_with_args(&db.url, &[], &["--role", "api"], None);
    let b = Server::start_with_args(&db.url, &[], &["--role", "api"], None);
    let client = Client::new();
    let (org, admin) = a.create_org("Two Process Fund");
    let victim = a.create_key(&org, "auditor");

    // Both processes authenticate it (and so hold it in their caches).
    for s in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(org_status(&client, s, &victim).await, StatusCode::OK);
        }
    }
    let keys: Value = client
        .get(a.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "auditor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoked_at = Instant::now();
    let revoked = client
        .delete(a.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        org_status(&client, &a, &victim).await,
        StatusCode::UNAUTHORIZED,
        "the revoking process refuses it on the very next request"
    );
    // The other process: once the notification has arrived. The bound is
    // generous and only matters when the test fails; the delay itself is
    // measured in docs/benchmarks.md, not asserted.
    let refused = eventually(Duration::from_secs(30), async || {
        org_status(&client, &b, &victim).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the second process still accepts a revoked key");
    eprintln!(
        "revocation reached the second process within {:?}",
        revoked_at.elapsed()
    );
    // And the admin key, untouched, still works on both.
    for s in [&a, &b] {
        assert_eq!(org_status(&client, s, &admin).await, StatusCode::OK);
    }
}
