//! SIGKILL at random points while `rwa serve` deploys 20 tokens and carries
//! 200 mint operations (requested through the API, each under its own
//! idempotency key, retried by the client after a kill as any client would)
//! to a real node (anvil, one block a second), restarting after each kill.
//! Afterwards: every token has exactly one contract, every accepted mint is
//! `settled` and applied exactly once (balances on-chain), and the sender's
//! nonces are contiguous and all on-chain — no transaction lost, none sent
//! twice. The same for 200 transfers checked and settled in batches, and
//! for the indexer's backfill.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Server, eventually};
use rand::{Rng, SeedableRng};
use reqwest::Client;
use rwa_chain::contracts::{self, SecurityToken};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_domain::chain::{Address, BlockTag, ChainPort, U256};
use rwa_domain::operation::{OperationFilter, OperationRepository, OperationStatus};
use rwa_domain::page::PageRequest;
use rwa_domain::token::{TokenRepository, TokenStatus};
use rwa_domain::transfer::{TransferFilter, TransferRepository, TransferStatus};
use rwa_domain::{OrgId, TokenId};
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

/// Sends `request` until the server answers (it may be down or restarting),
/// and answers its status and body.
async fn until_answered(
    client: &Client,
    server: &Server,
    key: &str,
    path: &str,
    idempotency: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    loop {
        let mut r = client.post(server.url(path)).bearer_auth(key).json(body);
        if let Some(k) = idempotency {
            r = r.header("Idempotency-Key", k);
        }
        match r.send().await {
            Ok(r) if r.status().as_u16() == 409 && idempotency.is_some() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                return (status, r.json().await.unwrap_or(Value::Null));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One approved investor per test wallet (`wallet(i)`), named `who i`;
/// their ids.
async fn onboard(client: &Client, server: &Server, admin: &str, who: &str) -> Vec<String> {
    let mut investors = Vec::new();
    for i in 0..WALLETS {
        let body = json!({"name": format!("{who} {i}"), "email": format!("{}{i}@example.com", who.to_lowercase()),
            "country": "FR", "type": "entity", "accredited": true});
        let (status, created) =
            until_answered(client, server, admin, "/v1/investors", None, &body).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let wallets = format!("/v1/investors/{id}/wallets");
        let address = json!({"address": format!("{:#x}", wallet(i))});
        let (status, _) = until_answered(client, server, admin, &wallets, None, &address).await;
        assert_eq!(status, 201);
        let kyc = format!("/v1/investors/{id}/kyc");
        let approve = json!({"decision": "approved", "expires_at": "2099-01-01T00:00:00Z", "reason": "verified"});
        let (status, _) = until_answered(client, server, admin, &kyc, None, &approve).await;
        assert_eq!(status, 200);
        investors.push(id);
    }
    investors
}

/// Whether every investor's wallets are registered on-chain, asked through
/// the API (the server may be restarting: not yet, then).
async fn registered(client: &Client, server: &Server, admin: &str, investors: &[String]) -> bool {
    for id in investors {
        let url = server.url(&format!("/v1/investors/{id}"));
        let Ok(r) = client.get(url).bearer_auth(admin).send().await else {
            return false;
        };
        let i: Value = r.json().await.unwrap_or(Value::Null);
        let registered = i["registrations"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["status"] == "registered"));
        if !registered {
            return false;
        }
    }
    true
}

/// Counts every item of a paged list.
async fn count_pages<T>(
    mut list: impl AsyncFnMut(PageRequest) -> rwa_domain::page::Page<T>,
    id: impl Fn(&T) -> uuid::Uuid,
) -> usize {
    let mut n = 0;
    let mut after = None;
    loop {
        let p = list(PageRequest { limit: 200, after }).await;
        n += p.items.len();
        match p.items.last() {
            Some(last) if p.next_cursor.is_some() => after = Some(id(last)),
            _ => return n,
        }
    }
}

async fn count(store: &Store, org: OrgId, status: Option<OperationStatus>) -> usize {
    let filter = OperationFilter {
        status,
        ..OperationFilter::default()
    };
    let list = async |page| {
        OperationRepository::list(store, org, &filter, page)
            .await
            .unwrap()
    };
    count_pages(list, |o| o.id).await
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

    let mut tokens: Vec<TokenId> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for i in 0..TOKENS {
        // Kill while tokens are still being issued, too.
        if i == TOKENS / 2 {
            server = start(&db, kill(server), &env);
        }
        let body = json!({"name": format!("Fund {i}"), "symbol": format!("F{i}"), "decimals": 0});
        let (status, body) =
            until_answered(&client, &server, &admin, "/v1/tokens", None, &body).await;
        assert_eq!(status, 202, "{body}");
        tokens.push(body["id"].as_str().unwrap().parse().unwrap());
    }
    let investors = onboard(&client, &server, &admin, "Holder").await;
    // Mints need deployed tokens and registered wallets.
    let ready = eventually(Duration::from_secs(240), async || {
        for id in &tokens {
            if store.system_get(*id).await.unwrap().status != TokenStatus::Deployed {
                return false;
            }
        }
        registered(&client, &server, &admin, &investors).await
    })
    .await;
    assert!(
        ready,
        "tokens deployed and wallets registered:\n{}",
        server.log_lines().join("\n")
    );

    let mut expected: BTreeMap<(TokenId, Address), U256> = BTreeMap::new();
    let mut requests = Vec::new();
    for i in 0..MINTS {
        let token = tokens[i % TOKENS];
        let holder = rng.random_range(0..WALLETS);
        let amount = U256::from(1_000 + i);
        *expected.entry((token, wallet(holder))).or_default() += amount;
        requests.push((
            format!("/v1/tokens/{token}/mints"),
            format!("crash-mint-{i}"),
            json!({"to": investors[holder], "amount": amount.to_string()}),
        ));
    }
    // Requests go out in chunks with a kill after each; a request the kill
    // cut off is sent again (same key) after the restart.
    let mut killed_mid_work = 0;
    let chunk = MINTS.div_ceil(KILLS);
    for part in requests.chunks(chunk) {
        for (path, key, body) in part {
            let (status, answer) =
                until_answered(&client, &server, &admin, path, Some(key), body).await;
            assert_eq!(status, 202, "{answer}");
        }
        let pause = Duration::from_millis(rng.random_range(200..1_200));
        tokio::time::sleep(pause).await;
        if count(&store, org, Some(OperationStatus::Settled)).await < MINTS {
            killed_mid_work += 1;
        }
        server = start(&db, kill(server), &env);
    }
    assert!(
        killed_mid_work >= 3,
        "the kills landed while work was in flight"
    );
    // Every request again: each is answered from its key, none twice.
    for (path, key, body) in &requests {
        let (status, answer) =
            until_answered(&client, &server, &admin, path, Some(key), body).await;
        assert_eq!(status, 202, "{answer}");
    }
    assert_eq!(
        count(&store, org, None).await,
        MINTS,
        "one operation per key"
    );

    let done = eventually(Duration::from_secs(240), async || {
        count(&store, org, Some(OperationStatus::Settled)).await == MINTS
    })
    .await;
    assert!(
        done,
        "every mint settled ({} failed):\n{}",
        count(&store, org, Some(OperationStatus::Failed)).await,
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
    // One sender, nonces 0..n all settled and all on-chain: nothing sent
    // twice, no contract created outside the record.
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
    store.close().await;
}

alloy::sol!(
    #[allow(missing_docs)]
    TestErc20,
    "../../contracts/artifacts/TestErc20.json"
);

/// Deploys the ERC-20 fixture from a key the server does not use and sends
/// `txs` transactions of 50 transfers each; the fixture's address, its
/// first block and the last transfer's block.
async fn fixture_with_transfers(chain: &RpcChain, txs: u64) -> (Address, u64, u64) {
    use alloy::sol_types::SolCall;
    use rwa_chain::signer::LocalSigner;
    use rwa_domain::tx::{Signer, UnsignedTx};
    let key = LocalSigner::from_hex(rwa_testkit::anvil::DEV_KEY_1).unwrap();
    let chain_id = chain.chain_id().await.unwrap();
    let fees = chain.suggested_fees(1_000_000_000).await.unwrap();
    let mut nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    let mut send = async |to: Option<Address>, input: Vec<u8>| {
        let tx = UnsignedTx {
            chain_id,
            nonce,
            max_fee_per_gas: fees.max_fee_per_gas * 4,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit: 3_000_000,
            to,
            value: U256::ZERO,
            input: input.into(),
        };
        nonce += 1;
        let raw = key.sign(&tx).await.unwrap().raw;
        let hash = chain.send_raw_transaction(raw).await.unwrap();
        // Automined, though the node may answer the receipt a moment later.
        for _ in 0..500 {
            if let Some(r) = chain.receipt(hash).await.unwrap() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no receipt for {hash}");
    };
    let deployed = send(None, TestErc20::BYTECODE.to_vec()).await;
    let token = deployed.contract_address.unwrap();
    let mint = TestErc20::mintCall {
        to: key.address(),
        amount: U256::from(10u64).pow(U256::from(24u64)),
    };
    send(Some(token), mint.abi_encode()).await;
    let mut last = 0;
    for i in 0..txs {
        let to = (0..50u64)
            .map(|j| Address::with_last_byte(((i * 50 + j) % 251) as u8 + 1))
            .collect();
        let call = TestErc20::scatterCall {
            to,
            amount: U256::from(1 + i % 5),
        };
        let r = send(Some(token), call.abi_encode()).await;
        assert!(r.success);
        last = r.block_number;
    }
    (token, deployed.block_number, last)
}

/// SIGKILL at random points while the indexer backfills a watched contract
/// (10,000 transfers); after the restarts the index agrees with the chain
/// (`rwa indexer verify` reading the node itself): no event lost, none
/// counted twice.
#[tokio::test]
async fn killed_while_indexing_the_index_still_agrees_with_the_chain() {
    let anvil = Anvil::start(&[]);
    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let (token, first, last) = fixture_with_transfers(&chain, 200).await;
    // Above the finalized block: the transfers are backfilled by ranges.
    use rwa_chain::ChainControl;
    chain.mine(80).await.unwrap();
    let db = TestDatabase::create().await;
    let env = env(&anvil);
    let mut server = start(&db, tempfile::tempdir().unwrap(), &env);
    let (_org, admin) = server.create_org("Index Capital");
    let client = Client::new();
    let body = json!({"address": format!("{token:#x}"), "standard": "erc20", "start_block": first});
    let (status, watched) = until_answered(
        &client,
        &server,
        &admin,
        "/v1/watched-contracts",
        None,
        &body,
    )
    .await;
    assert_eq!(status, 201, "{watched}");
    let history = format!(
        "/v1/watched-contracts/{}/transfers?limit=1",
        watched["id"].as_str().unwrap()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1d3);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..800))).await;
        server = start(&db, kill(server), &env);
    }
    let newest = eventually(Duration::from_secs(120), async || {
        let url = server.url(&history);
        let Ok(r) = client.get(url).bearer_auth(&admin).send().await else {
            return false;
        };
        let page: Value = r.json().await.unwrap_or(Value::Null);
        page["items"][0]["block_number"].as_u64() == Some(last)
    })
    .await;
    assert!(
        newest,
        "the last transfer was never indexed: {}\n{}",
        server.detailed_health().await["checks"]["indexer"],
        server.log_lines().join("\n")
    );
    let out = server.cli(&["indexer", "verify", "--contract", &format!("{token:#x}")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["differences"], 0);
    assert!(summary["checked"].as_u64().unwrap() > 200, "{summary}");
}

/// The database goes away in the middle of a backfill (every connection cut
/// by a proxy, as a PostgreSQL restart does) and comes back: the indexer
/// retries, takes its lease again and finishes, and the index agrees with
/// the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_backfill_is_ridden_out() {
    let anvil = Anvil::start(&[]);
    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let (token, first, last) = fixture_with_transfers(&chain, 200).await;
    use rwa_chain::ChainControl;
    chain.mine(80).await.unwrap();
    let db = TestDatabase::create_on(rwa_testkit::TestBackend::Postgres).await;
    let proxy = rwa_testkit::TcpProxy::start(db.server_addr().expect("PostgreSQL")).await;
    let url = db.url_via(&proxy.addr().to_string());
    let mut env = env(&anvil);
    env.push(("RWA_DB_ACQUIRE_TIMEOUT_MS", "1000".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with_url(&url, &env, None);
    let (_org, admin) = server.create_org("Outage Capital");
    let client = Client::new();
    let body = json!({"address": format!("{token:#x}"), "standard": "erc20", "start_block": first});
    let (status, watched) = until_answered(
        &client,
        &server,
        &admin,
        "/v1/watched-contracts",
        None,
        &body,
    )
    .await;
    assert_eq!(status, 201, "{watched}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore().await;
    let history = server.url(&format!(
        "/v1/watched-contracts/{}/transfers?limit=1",
        watched["id"].as_str().unwrap()
    ));
    let newest = eventually(Duration::from_secs(120), async || {
        let Ok(r) = client.get(&history).bearer_auth(&admin).send().await else {
            return false;
        };
        let page: Value = r.json().await.unwrap_or(Value::Null);
        page["items"][0]["block_number"].as_u64() == Some(last)
    })
    .await;
    let logs = server.log_lines();
    assert!(newest, "never finished: {}", logs.join("\n"));
    // The outage reached the indexer: its lease's connection was cut, and
    // it took the lease again.
    assert!(
        logs.iter().any(|l| l.contains("indexer lease lost")),
        "{}",
        logs.join("\n")
    );
    assert!(
        logs.iter()
            .filter(|l| l.contains("indexing chain_id"))
            .count()
            >= 2
    );
    let out = server.cli(&["indexer", "verify", "--contract", &format!("{token:#x}")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const TRANSFERS: usize = 200;

async fn count_transfers(store: &Store, org: OrgId, status: Option<TransferStatus>) -> usize {
    let filter = TransferFilter {
        status,
        ..TransferFilter::default()
    };
    let list = async |page| {
        TransferRepository::list(store, org, &filter, page)
            .await
            .unwrap()
    };
    count_pages(list, |t| t.id).await
}

/// SIGKILL at random points while `rwa serve` checks and settles 200
/// transfers between five investors (requested through the API under
/// their own idempotency keys, retried by the client after a kill),
/// restarting after each kill. Afterwards every accepted transfer is
/// `settled`, the token's `Transfer` logs on the chain are exactly one per
/// transfer with its wallets and amount, and every balance is what the
/// transfers make it: none lost, none moved twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_every_transfer_settles_exactly_once() {
    let anvil = Anvil::start(&["--block-time", "1"]);
    let chain = RpcChain::new(RpcConfig::new(anvil.url())).unwrap();
    let db = TestDatabase::create().await;
    let env = env(&anvil);
    let mut server = start(&db, tempfile::tempdir().unwrap(), &env);
    let (org, admin) = server.create_org("Crash Transfers");
    let org: OrgId = org.parse().unwrap();
    let client = Client::new();
    let store = Arc::new(Store::connect(&StoreOptions::new(&db.url)).await.unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7a5f);

    let body = json!({"name": "Crash Fund", "symbol": "CRF", "decimals": 0});
    let (status, token) = until_answered(&client, &server, &admin, "/v1/tokens", None, &body).await;
    assert_eq!(status, 202, "{token}");
    let token: TokenId = token["id"].as_str().unwrap().parse().unwrap();
    let investors = onboard(&client, &server, &admin, "Trader").await;
    let ready = eventually(Duration::from_secs(240), async || {
        if store.system_get(token).await.unwrap().status != TokenStatus::Deployed {
            return false;
        }
        registered(&client, &server, &admin, &investors).await
    })
    .await;
    assert!(
        ready,
        "token deployed and wallets registered:\n{}",
        server.log_lines().join("\n")
    );
    let address = store
        .system_get(token)
        .await
        .unwrap()
        .deployment
        .unwrap()
        .address;
    let initial = U256::from(1_000_000u64);
    let mints = format!("/v1/tokens/{token}/mints");
    for (i, id) in investors.iter().enumerate() {
        let body = json!({"to": id, "amount": initial.to_string()});
        let key = format!("crash-fund-{i}");
        let (status, answer) =
            until_answered(&client, &server, &admin, &mints, Some(&key), &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    let funded = eventually(Duration::from_secs(240), async || {
        let mut all = true;
        for i in 0..WALLETS {
            all &= balance_of(&chain, address, wallet(i)).await == initial;
        }
        // The index too: transfers are checked against its balances.
        let url = server.url(&format!("/v1/tokens/{token}/holders"));
        let Ok(r) = client.get(url).bearer_auth(&admin).send().await else {
            return false;
        };
        let holders: Value = r.json().await.unwrap_or(Value::Null);
        all && holders["items"]
            .as_array()
            .is_some_and(|h| h.len() == WALLETS)
    })
    .await;
    assert!(
        funded,
        "every wallet funded:\n{}",
        server.log_lines().join("\n")
    );
    let first_block = chain.block_number(BlockTag::Latest).await.unwrap() + 1;

    let mut expected: BTreeMap<Address, U256> =
        (0..WALLETS).map(|i| (wallet(i), initial)).collect();
    let mut moves = Vec::new();
    let mut requests = Vec::new();
    for i in 0..TRANSFERS {
        let from = rng.random_range(0..WALLETS);
        let to = (from + rng.random_range(1..WALLETS)) % WALLETS;
        let amount = U256::from(1 + i);
        *expected.get_mut(&wallet(from)).unwrap() -= amount;
        *expected.get_mut(&wallet(to)).unwrap() += amount;
        moves.push((wallet(from), wallet(to), amount));
        requests.push((
            format!("crash-transfer-{i}"),
            json!({"token_id": token, "from": investors[from], "to": investors[to], "amount": amount.to_string()}),
        ));
    }
    let mut killed_mid_work = 0;
    let chunk = TRANSFERS.div_ceil(KILLS);
    for part in requests.chunks(chunk) {
        for (key, body) in part {
            let (status, answer) =
                until_answered(&client, &server, &admin, "/v1/transfers", Some(key), body).await;
            assert_eq!(status, 202, "{answer}");
        }
        let pause = Duration::from_millis(rng.random_range(200..1_500));
        tokio::time::sleep(pause).await;
        if count_transfers(&store, org, Some(TransferStatus::Settled)).await < TRANSFERS {
            killed_mid_work += 1;
        }
        server = start(&db, kill(server), &env);
    }
    assert!(
        killed_mid_work >= 3,
        "the kills landed while work was in flight"
    );
    for (key, body) in &requests {
        let (status, answer) =
            until_answered(&client, &server, &admin, "/v1/transfers", Some(key), body).await;
        assert_eq!(status, 202, "{answer}");
    }
    assert_eq!(
        count_transfers(&store, org, None).await,
        TRANSFERS,
        "one transfer per key"
    );
    let done = eventually(Duration::from_secs(300), async || {
        count_transfers(&store, org, Some(TransferStatus::Settled)).await == TRANSFERS
    })
    .await;
    assert!(
        done,
        "every transfer settled ({} rejected, {} failed):\n{}",
        count_transfers(&store, org, Some(TransferStatus::Rejected)).await,
        count_transfers(&store, org, Some(TransferStatus::Failed)).await,
        server.log_lines().join("\n")
    );

    // The chain's own record: one Transfer log per transfer, and the
    // balances they add up to.
    use alloy::sol_types::SolEvent;
    let last_block = chain.block_number(BlockTag::Latest).await.unwrap();
    let filter = rwa_domain::chain::LogFilter::blocks(first_block, last_block)
        .address([address])
        .topic(0, [SecurityToken::Transfer::SIGNATURE_HASH]);
    let logs = chain.logs(&filter).await.unwrap();
    let mut seen: Vec<(Address, Address, U256)> = logs
        .iter()
        .map(|l| {
            (
                Address::from_word(l.topics[1]),
                Address::from_word(l.topics[2]),
                U256::from_be_slice(&l.data),
            )
        })
        .collect();
    let mut want = moves.clone();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "exactly one Transfer log per transfer");
    for (holder, amount) in &expected {
        assert_eq!(
            balance_of(&chain, address, *holder).await,
            *amount,
            "balance of {holder}"
        );
    }
    store.close().await;
}
