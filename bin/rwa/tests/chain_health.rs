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
    let health = s.detailed_health().await;
    let chain = &health["checks"]["chain"];
    assert_eq!(chain["status"], "healthy", "{health}");
    assert_eq!(chain["chain_id"], 31337);
    assert_eq!(chain["breaker"], "closed");
    assert!(chain["head"].as_u64().is_some() && chain["latency_ms"].as_f64().is_some());

    // No key configured: the development key signs, and anvil never funded
    // it, so the signers check warns after the senders' first step.
    let mut signers = Value::Null;
    let warned = common::eventually(std::time::Duration::from_secs(10), async || {
        let health = s.detailed_health().await;
        signers = health["checks"]["signers"].clone();
        signers["status"] == "degraded"
    })
    .await;
    assert!(warned, "{signers}");
    assert_eq!(signers["senders"][0]["balance_wei"], "0");
    assert_eq!(signers["senders"][0]["lanes"].as_array().unwrap().len(), 4);
    assert!(
        signers["warnings"][0].as_str().unwrap().contains("is low"),
        "{signers}"
    );

    drop(anvil);
    let health = s.detailed_health().await;
    assert_eq!(health["checks"]["chain"]["status"], "unhealthy", "{health}");
    let ready = reqwest::get(s.url("/health/ready")).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a node outage degrades, it does not take the API down"
    );
}

#[tokio::test]
async fn the_embedded_default_serves_a_devnet_that_mines_and_survives_a_restart() {
    use std::time::Duration;

    let mut s = Server::start(&[]).await;
    let first = s.detailed_health().await;
    let chain = &first["checks"]["chain"];
    assert_eq!(chain["status"], "healthy", "{first}");
    assert_eq!(chain["chain_id"], 31337);
    assert!(chain.get("breaker").is_none(), "no node, no breaker");
    let head = chain["head"].as_u64().unwrap();
    let mined = common::eventually(Duration::from_secs(10), async || {
        s.detailed_health().await["checks"]["chain"]["head"]
            .as_u64()
            .unwrap()
            > head
    })
    .await;
    assert!(mined, "a block every second");
    let mut signers = Value::Null;
    let funded = common::eventually(Duration::from_secs(10), async || {
        signers = s.detailed_health().await["checks"]["signers"].clone();
        signers["senders"][0]["balance_wei"] != "0"
    })
    .await;
    assert!(funded, "the dev key is funded at genesis: {signers}");
    assert_eq!(signers["status"], "healthy", "{signers}");
    assert!(s.data_dir.path().join("devnet.db").exists());
    assert!(s.data_dir.path().join("dev-signer.key").exists());

    // Stop it and start again on the same data dir: the chain continues.
    let before = s.detailed_health().await["checks"]["chain"]["head"]
        .as_u64()
        .unwrap();
    let data_dir = s.stop();
    let again = Server::start_in(&s.database_url, data_dir, &[], &[], None);
    let after = again.detailed_health().await["checks"]["chain"]["head"]
        .as_u64()
        .unwrap();
    assert!(
        after >= before,
        "the restarted devnet continues from its head ({before} → {after})"
    );
}

#[tokio::test]
async fn a_websocket_node_url_is_served_like_an_http_one() {
    let anvil = Anvil::start(&[]);
    let url = format!("ws://{}", anvil.addr());
    let s = Server::start(&[("RWA_CHAIN_RPC_URL", url.as_str())]).await;
    let health = s.detailed_health().await;
    let chain = &health["checks"]["chain"];
    assert_eq!(chain["status"], "healthy", "{health}");
    assert_eq!(chain["chain_id"], 31337);
    assert_eq!(chain["breaker"], "closed");
}
