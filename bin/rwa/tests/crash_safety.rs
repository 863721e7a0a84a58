//! SIGKILL at random points while `rwa serve` deploys 20 tokens and mints 200
//! times on a real node (anvil, one block a second), restarting after each
//! kill. Afterwards: every token has exactly one contract, every mint is
//! applied exactly once (balances on-chain), and every sender's nonces are
//! contiguous and all on-chain — no transaction lost, none sent twice.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Server, eventually};
use rand::{Rng, SeedableRng};
use reqwest::Client;
use rwa_chain::contracts::{self, SecurityToken};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_domain::chain::{Address, B256, BlockTag, ChainPort, U256};
use rwa_domain::token::{TokenRepository, TokenStatus};
use rwa_domain::{OrgId, TokenId};
use rwa_jobs::{JobState, NewJob};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::DEV_KEY_0;
use rwa_testkit::{Anvil, TestDatabase};
use serde_json::{Value, json};

const TOKENS: usize = 20;
const MINTS: usize = 200;
const WALLETS: usize = 5;
const KILLS: usize = 6;

fn wallet(i: usize) -> Address {
    Address::repeat_byte(0xa0 + i as u8)
}

fn env(anvil: &Anvil) -> Vec<(&'static str, String)> {
    vec![
        ("RWA_CHAIN_RPC_URL", anvil.url()),
        ("RWA_SIGNER_KEY", DEV_KEY_0.to_owned()),
        ("RWA_CHAIN_CONFIRMATIONS", "2".to_owned()),
        ("RWA_JOBS_LEASE_MS", "1000".to_owned()),
        ("RWA_JOBS_MAINTENANCE_INTERVAL_MS", "200".to_owned()),
    ]
}

fn start(db: &TestDatabase, data_dir: tempfile::TempDir, env: &[(&str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_in(&db.url, data_dir, &env, &[], None)
}

/// SIGKILLs the server and hands back its data dir for the restart.
fn kill(mut s: Server) -> tempfile::TempDir {
    s.child.kill().expect("SIGKILL");
    s.child.wait().unwrap();
    std::mem::replace(&mut s.data_dir, tempfile::tempdir().unwrap())
}

async fn balance_of(chain: &RpcChain, token: Address, holder: Address) -> U256 {
    let call = SecurityToken::balanceOfCall { account: holder };
    contracts::view(chain, token, &call, BlockTag::Latest)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_every_deployment_and_mint_lands_exactly_once() {
    let anvil = Anvil::start(&["--block-time", "1"]);
    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let db = TestDatabase::create().await;
    let env = env(&anvil);
    let mut server = start(&db, tempfile::tempdir().unwrap(), &env);
    let (org, admin) = server.create_org("Crash Capital");
    let org: OrgId = org.parse().unwrap();
    let client = Client::new();
    let store = Arc::new(Store::connect(&StoreOptions::new(&db.url)).await.unwrap());
    let queue = store.job_queue();

    let mut tokens: Vec<TokenId> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut mints = Vec::new();
    let mut expected: BTreeMap<(TokenId, Address), U256> = BTreeMap::new();
    for i in 0..TOKENS {
        // Kill while tokens are still being issued, too.
        if i == TOKENS / 2 {
            server = start(&db, kill(server), &env);
        }
        let r = client
            .post(server.url("/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": format!("Fund {i}"), "symbol": format!("F{i}"), "decimals": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: Value = r.json().await.unwrap();
        let id: TokenId = body["id"].as_str().unwrap().parse().unwrap();
        tokens.push(id);
    }
    for i in 0..MINTS {
        let token = tokens[i % TOKENS];
        let holder = wallet(rng.random_range(0..WALLETS));
        let amount = U256::from(1_000 + i);
        *expected.entry((token, holder)).or_default() += amount;
        mints.push(
            NewJob::new(
                "settlement",
                "test.mint",
                json!({
                    "token_id": token.to_string(),
                    "wallet": format!("{holder:#x}"),
                    "investor_id": format!("{:#x}", B256::left_padding_from(holder.as_slice())),
                    "amount": amount.to_string(),
                    "key": format!("test-mint:{i}"),
                }),
            )
            .for_org(org.as_uuid())
            .max_attempts(50),
        );
    }
    let mint_jobs: Vec<_> = queue
        .enqueue_many(&mints)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();

    let mut killed_mid_work = 0;
    for _ in 0..KILLS {
        let pause = Duration::from_millis(rng.random_range(200..1_200));
        tokio::time::sleep(pause).await;
        let counts = queue.counts().await.unwrap();
        let completed: i64 = counts
            .iter()
            .filter(|c| c.queue == "settlement" && c.state == JobState::Completed)
            .map(|c| c.count)
            .sum();
        if (completed as usize) < MINTS {
            killed_mid_work += 1;
        }
        server = start(&db, kill(server), &env);
    }
    assert!(
        killed_mid_work >= 3,
        "the kills landed while work was in flight"
    );

    let done = eventually(Duration::from_secs(240), async || {
        let mut finished = 0;
        for id in &mint_jobs {
            match queue.get(*id).await.unwrap().state {
                JobState::Completed => finished += 1,
                JobState::Discarded | JobState::Cancelled => {
                    panic!("mint job gave up: {:?}", queue.get(*id).await.unwrap())
                }
                _ => {}
            }
        }
        finished == MINTS
    })
    .await;
    assert!(
        done,
        "every mint completed:\n{}",
        server.log_lines().join("\n")
    );

    // Exactly one contract per token, at the address the token reports.
    for id in &tokens {
        let token = store.system_get(*id).await.unwrap();
        assert_eq!(token.status, TokenStatus::Deployed, "{token:?}");
        let d = token.deployment.unwrap();
        let receipt = chain.receipt(d.deploy_tx_hash).await.unwrap().unwrap();
        assert_eq!(receipt.contract_address, Some(d.address));
    }
    // Every mint applied exactly once.
    for ((token, holder), amount) in &expected {
        let address = store
            .system_get(*token)
            .await
            .unwrap()
            .deployment
            .unwrap()
            .address;
        assert_eq!(
            balance_of(&chain, address, *holder).await,
            *amount,
            "balance of {holder} on token {token}"
        );
    }
    // One sender, nonces 0..n all settled and all on-chain: nothing sent twice,
    // no contract created outside the record.
    let sender = rwa_chain::signer::LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let sender = rwa_domain::tx::Signer::address(&sender);
    let records = rwa_domain::tx::TxStore::open_for(store.as_ref(), 31337, sender)
        .await
        .unwrap();
    assert!(records.is_empty(), "nothing left open: {records:?}");
    let next = rwa_domain::tx::TxStore::next_nonce(store.as_ref(), 31337, sender)
        .await
        .unwrap();
    let on_chain = chain.nonce(sender, BlockTag::Latest).await.unwrap();
    assert_eq!(
        on_chain, next,
        "every allocated nonce is on-chain, and no other"
    );
    let expected_txs = 1 + TOKENS * 8 + WALLETS + MINTS;
    assert_eq!(
        next as usize, expected_txs,
        "one transaction per step: the registry once, 8 per deployment, a registration per wallet, a mint per job"
    );
    store.close().await;
}
