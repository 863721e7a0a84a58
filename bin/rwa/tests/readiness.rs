//! Readiness follows the database: a TCP proxy in front of the real PostgreSQL
//! is cut (every connection closed, new ones refused) and restored, and
//! `/health/ready` goes 503 and back to 200 without restarting the app.
//! This test always uses PostgreSQL, whatever `RWA_TEST_DATABASE` says.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use reqwest::StatusCode;
use rwa_testkit::{TcpProxy, TestBackend, TestDatabase};
use serde_json::Value;

async fn ready_status(s: &Server) -> Option<StatusCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    client
        .get(s.url("/health/ready"))
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

// Multi-threaded: the proxy's tasks must keep running while the test thread
// blocks waiting for the server to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_with_the_database_and_recovers_without_restart() {
    let db = TestDatabase::create_on(TestBackend::Postgres).await;
    let target = db.server_addr().expect("a PostgreSQL database");
    let proxy = TcpProxy::start(target).await;
    let url = db.url_via(&proxy.addr().to_string());
    let s = Server::start_with_url(&url, &[("RWA_DB_ACQUIRE_TIMEOUT_MS", "1000")], None);

    assert_eq!(ready_status(&s).await, Some(StatusCode::OK));
    // The indexer reports itself once its first step has started the index.
    let indexing = eventually(Duration::from_secs(15), async || {
        s.detailed_health().await["checks"]["indexer"]["status"] == "healthy"
    })
    .await;
    assert!(
        indexing,
        "the indexer starts: {}",
        s.detailed_health().await
    );
    let detailed = s.detailed_health().await;
    assert_eq!(detailed["status"], "healthy");
    assert_eq!(detailed["checks"]["database"]["status"], "healthy");
    assert!(
        detailed["checks"]["database"]["latency_ms"]
            .as_f64()
            .is_some()
    );
    // Only parts that exist are listed: no slot for a dependency this version
    // does not have.
    let mut listed: Vec<&str> = detailed["checks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        ["chain", "database", "indexer", "queues", "signers"],
        "{detailed}"
    );

    proxy.cut();
    let down = eventually(Duration::from_secs(15), async || {
        ready_status(&s).await == Some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(down, "readiness reports the database outage");
    let detailed = reqwest::get(s.url("/health/detailed")).await.unwrap();
    assert_eq!(detailed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let detailed: Value = detailed.json().await.unwrap();
    assert_eq!(detailed["status"], "unhealthy");
    assert_eq!(detailed["checks"]["database"]["status"], "unhealthy");
    let live = reqwest::get(s.url("/health/live")).await.unwrap();
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "liveness does not depend on the database"
    );

    proxy.restore().await;
    let up = eventually(Duration::from_secs(15), async || {
        ready_status(&s).await == Some(StatusCode::OK)
    })
    .await;
    assert!(
        up,
        "readiness recovers once the database is back, same process"
    );
    let (_, key) = s.create_org("After outage");
    let org = reqwest::Client::new()
        .get(s.url("/v1/org"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), StatusCode::OK, "requests work again");
    drop(db);
}
