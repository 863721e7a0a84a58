//! Backfill benchmark (docs/benchmarks.md, `bench/indexer.sh`): a local
//! anvil is given N ERC-20 `Transfer` events over a few thousand blocks
//! (the `TestErc20` fixture's `scatter`, `per_tx` recipients per
//! transaction, one transaction per block, recipients rotating over 5,000
//! wallets), then the follower indexes the contract cold into a fresh
//! database (`RWA_TEST_DATABASE=sqlite|postgres`): events/s, blocks/s, this
//! process's CPU time and peak RSS, and `verify` at the end. A second pass
//! fetches the same logs without writing them, to tell the node's share
//! from the database's.
//!
//! Usage: cargo run --release -p rwa-indexer --example backfill_bench -- [events] [per_tx]

use std::sync::Arc;
use std::time::Instant;

use alloy::sol_types::SolCall;
use rwa_chain::ChainControl;
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, BlockTag, ChainPort, U256};
use rwa_domain::onchain::{
    IndexStore, NewWatchedContract, Standard, VerifyTarget, WatchedContracts,
};
use rwa_domain::org::OrgName;
use rwa_domain::ports::OrgRepository;
use rwa_domain::tx::{Signer, UnsignedTx};
use rwa_domain::{Actor, Role};
use rwa_indexer::fetch::{RangeConfig, RangeFetcher};
use rwa_indexer::follower::{Follower, FollowerConfig, Progress};
use rwa_indexer::verify::verify;
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::DEV_KEY_0;
use rwa_testkit::{Anvil, TestDatabase};

alloy::sol!(
    #[allow(missing_docs)]
    TestErc20,
    "../../contracts/artifacts/TestErc20.json"
);

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The receipt of an automined transaction (the node may answer it a
/// moment after the hash).
async fn receipt(chain: &RpcChain, hash: rwa_domain::chain::B256) -> rwa_domain::chain::Receipt {
    loop {
        if let Some(r) = chain.receipt(hash).await.unwrap() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let per_tx: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    // Old states pruned: anvil keeps a copy of the state per block otherwise,
    // and slows down as it grows (gigabytes over a few thousand blocks).
    let anvil = Anvil::start(&["--gas-limit", "60000000", "--prune-history", "256"]);
    let chain = Arc::new(RpcChain::new(RpcConfig::new(anvil.url())).unwrap());
    let port: Arc<dyn ChainPort> = chain.clone();
    let chain_id = chain.chain_id().await.unwrap();
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();

    // The chain: the fixture, a mint, then the transfers (not timed).
    let generating = Instant::now();
    let mut nonce = chain.nonce(key.address(), BlockTag::Pending).await.unwrap();
    let fees = chain.suggested_fees(1_000_000_000).await.unwrap();
    let mut send = async |to: Option<Address>, input: Vec<u8>, gas: u64| {
        let tx = UnsignedTx {
            chain_id,
            nonce,
            max_fee_per_gas: fees.max_fee_per_gas * 4,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit: gas,
            to,
            value: U256::ZERO,
            input: input.into(),
        };
        nonce += 1;
        let signed = key.sign(&tx).await.unwrap();
        chain.send_raw_transaction(signed.raw).await.unwrap()
    };
    let deploy = send(None, TestErc20::BYTECODE.to_vec(), 3_000_000).await;
    let token = receipt(&chain, deploy)
        .await
        .contract_address
        .expect("deployed");
    let start_block = chain.block_number(BlockTag::Latest).await.unwrap();
    send(
        Some(token),
        TestErc20::mintCall {
            to: key.address(),
            amount: U256::from(10u64).pow(U256::from(30u64)),
        }
        .abi_encode(),
        200_000,
    )
    .await;
    let wallets = 5_000u64;
    let txs = events.div_ceil(per_tx);
    let mut last = None;
    for i in 0..txs {
        let to: Vec<Address> = (0..per_tx)
            .map(|j| {
                let n = (i * per_tx + j) % wallets + 1;
                let mut a = [0u8; 20];
                a[12..].copy_from_slice(&n.to_be_bytes());
                Address::from(a)
            })
            .collect();
        let input = TestErc20::scatterCall {
            to,
            amount: U256::from(1u64 + i % 7),
        }
        .abi_encode();
        last = Some(send(Some(token), input, 40_000 * per_tx + 100_000).await);
    }
    let last = receipt(&chain, last.unwrap()).await;
    assert!(last.success, "the last scatter reverted");
    // Blocks above it, so the transfers are below the finalized block.
    chain.mine(80).await.unwrap();
    let head = chain.block_number(BlockTag::Latest).await.unwrap();
    println!(
        "chain: {} transfers in {} blocks ({}..={}), generated in {:.1} s",
        txs * per_tx,
        last.block_number - start_block,
        start_block,
        last.block_number,
        generating.elapsed().as_secs_f64()
    );

    // Cold: a fresh database, the contract registered, the follower run
    // until it is idle at the head.
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 4;
    let store = Arc::new(Store::connect(&opts).await.unwrap());
    store.migrate().await.unwrap();
    let (admin, _) = NewApiKey::generate(Role::Admin, None);
    let org = store
        .system_create_with_key(&OrgName::parse("Bench").unwrap(), &admin, &Actor::CLI)
        .await
        .unwrap()
        .id;
    store
        .watch(
            org,
            chain_id,
            &NewWatchedContract {
                address: token,
                standard: Standard::Erc20,
                start_block,
                name: None,
            },
        )
        .await
        .unwrap();
    let follower = Follower::new(
        port.clone(),
        store.clone(),
        chain_id,
        FollowerConfig::default(),
    );
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut indexed = 0;
    loop {
        match follower.step().await.unwrap() {
            Progress::Indexed { events, .. } => indexed += events,
            Progress::Idle => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let state = store.system_index_state(chain_id).await.unwrap().unwrap();
    let blocks = state.cursor - start_block;
    println!(
        "backend={} events={indexed} blocks={blocks} wall={wall:.2}s events_per_s={:.0} \
         blocks_per_s={:.0} cpu={cpu:.2}s cpu_per_event_us={:.1} peak_rss_mib={:.1}",
        db.backend_name(),
        indexed as f64 / wall,
        blocks as f64 / wall,
        cpu * 1e6 / indexed.max(1) as f64,
        peak_rss_mib()
    );

    // The node alone: the same logs fetched, nothing written.
    let t1 = Instant::now();
    let mut fetcher = RangeFetcher::new(
        port.clone(),
        vec![token],
        start_block,
        state.cursor,
        RangeConfig::default().initial,
        RangeConfig::default(),
    );
    let mut fetched = 0;
    while let Some(range) = fetcher.next().await {
        fetched += range.unwrap().logs.len();
    }
    let fetch_wall = t1.elapsed().as_secs_f64();
    println!(
        "node only: {fetched} logs in {fetch_wall:.2}s = {:.0} logs/s (eth_getLogs, pipelined, nothing written)",
        fetched as f64 / fetch_wall
    );

    let target = VerifyTarget {
        contract: token,
        standard: Standard::Erc20,
        from_block: start_block,
        at_block: Some(state.cursor),
        platform_token: false,
    };
    let t2 = Instant::now();
    let report = verify(port, store.as_ref(), chain_id, &target, state.cursor)
        .await
        .unwrap();
    println!(
        "verify: {} holdings checked, {} differences, in {:.1} s (head {head})",
        report.checked,
        report.differences.len(),
        t2.elapsed().as_secs_f64()
    );
    drop(anvil);
}
