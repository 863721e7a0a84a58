//! `checks.chain` of a service pointed at a real JSON-RPC node (anvil).

mod common;

use common::Server;
use rwa_testkit::Anvil;
use serde_json::Value;

#[tokio::test]
async fn the_chain_check_reports_the_node_and_its_breaker() {
    let anvil = Anvil::start(&[]);
    let url = anvil.url();
    let s = Server::start(&[("RWA_CHAIN_RPC_URL", url.as_str())]).await;
    let health: Value = reqwest::get(s.url("/health/detailed"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chain = &health["checks"]["chain"];
    assert_eq!(chain["status"], "healthy", "{health}");
    assert_eq!(chain["chain_id"], 31337);
    assert_eq!(chain["breaker"], "closed");
    assert!(chain["head"].as_u64().is_some() && chain["latency_ms"].as_f64().is_some());

    drop(anvil);
    let health: Value = reqwest::get(s.url("/health/detailed"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["checks"]["chain"]["status"], "unhealthy", "{health}");
    let ready = reqwest::get(s.url("/health/ready")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a node outage degrades, it does not take the API down"
    );
}
