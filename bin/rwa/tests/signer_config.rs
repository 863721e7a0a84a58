//! Signers from configuration, through the running service against a real
//! node: a keystore as the default signer and a per-lane key, each ending up
//! with its roles on a deployed token; a wrong keystore password stops the
//! start-up with a line that names the file and the problem.

mod common;

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use common::{Server, eventually};
use reqwest::Client;
use rwa_chain::contracts::{self, SecurityToken, roles};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_domain::chain::{Address, BlockTag};
use rwa_testkit::anvil::{DEV_KEY_1, DEV_KEY_2};
use rwa_testkit::{Anvil, TestDatabase};
use serde_json::{Value, json};

/// Writes `key` as a v3 keystore under `dir` and returns its path.
fn keystore(dir: &std::path::Path, key: &str, password: &str) -> std::path::PathBuf {
    let signer: PrivateKeySigner = key.parse().unwrap();
    PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand08::thread_rng(),
        signer.to_bytes(),
        password,
        Some("signer.json"),
    )
    .unwrap();
    dir.join("signer.json")
}

fn address(key: &str) -> Address {
    key.parse::<PrivateKeySigner>().unwrap().address()
}

async fn has_role(
    chain: &RpcChain,
    token: Address,
    role: alloy::primitives::B256,
    who: Address,
) -> bool {
    let call = SecurityToken::hasRoleCall { role, account: who };
    contracts::view(chain, token, &call, BlockTag::Latest)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_keystore_signs_for_the_lanes_and_a_lane_key_overrides_it() {
    let anvil = Anvil::start(&["--block-time", "1"]);
    let keys = tempfile::tempdir().unwrap();
    let path = keystore(keys.path(), DEV_KEY_1, "s3cret-pass");
    let path = path.to_str().unwrap();
    let rpc = anvil.url();
    let s = Server::start(&[
        ("RWA_CHAIN_RPC_URL", rpc.as_str()),
        ("RWA_SIGNER_KEYSTORE", path),
        ("RWA_SIGNER_PASSWORD", "s3cret-pass"),
        ("RWA_SIGNER_MINT_KEY", DEV_KEY_2),
    ])
    .await;
    let (_org, admin) = s.create_org("Keystore Capital");
    let client = Client::new();
    let created: Value = client
        .post(s.url("/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Keystore Fund", "symbol": "KSF", "decimals": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/v1/tokens/{}", created["id"].as_str().unwrap());
    let mut token = Value::Null;
    let deployed = eventually(Duration::from_secs(60), async || {
        token = client
            .get(s.url(&path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["status"] == "deployed"
    })
    .await;
    assert!(deployed, "{token}\n{}", s.log_lines().join("\n"));

    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let at: Address = token["address"].as_str().unwrap().parse().unwrap();
    let keystore_signer = address(DEV_KEY_1);
    let mint_signer = address(DEV_KEY_2);
    assert!(has_role(&chain, at, contracts::roles::DEFAULT_ADMIN, keystore_signer).await);
    assert!(has_role(&chain, at, contracts::role(roles::PAUSER), keystore_signer).await);
    assert!(has_role(&chain, at, contracts::role(roles::SUPPLY), mint_signer).await);
    assert!(
        !has_role(&chain, at, contracts::role(roles::SUPPLY), keystore_signer).await,
        "the mint lane's own key holds the supply role, not the default signer"
    );
}

#[tokio::test]
async fn a_wrong_keystore_password_stops_the_start_with_a_clear_line() {
    let keys = tempfile::tempdir().unwrap();
    let path = keystore(keys.path(), DEV_KEY_1, "right");
    let db = TestDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    let out = common::base_command(&[
        ("RWA_DATABASE_URL".into(), db.url.clone()),
        ("RWA_SIGNER_KEYSTORE".into(), path.display().to_string()),
        ("RWA_SIGNER_PASSWORD".into(), "wrong".into()),
    ])
    .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
    .arg(data.path())
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RWA_SIGNER_KEYSTORE")
            && stderr.contains("wrong password")
            && stderr.contains("signer.json"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\"wrong\""),
        "the password is never printed"
    );
}
