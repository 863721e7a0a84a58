//! Devnet throughput, in-process, persistence on: plain value transfers and
//! ERC-20 transfers executed per second, and blocks per second at 500
//! transactions per block. Transactions are signed before the clock starts;
//! the timed part is validation, pooling, execution, block building and the
//! SQLite commit of every block.
//!
//! Run: `bench/devnet.sh` (or `cargo run -p rwa-chain --example devnet_bench
//! [transactions]`).

use std::time::Instant;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, TxKind, U256, hex};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;
use rwa_chain::ChainControl;
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_domain::chain::{BlockTag, CallRequest, ChainPort};

const PER_BLOCK: usize = 500;
const GWEI: u128 = 1_000_000_000;
const TOKEN: &str = include_str!("../../../bench/devnet/BenchToken.bin");

fn sign(
    key: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    gas: u64,
    input: Bytes,
    value: u64,
) -> Bytes {
    let mut body = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 100 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::from(value),
        input,
        ..TxEip1559::default()
    };
    let signature = key.sign_transaction_sync(&mut body).expect("signs");
    let envelope: TxEnvelope = body.into_signed(signature).into();
    envelope.encoded_2718().into()
}

/// Sends `txs` and mines a block every [`PER_BLOCK`]; returns (seconds,
/// seconds spent mining, blocks).
async fn run(chain: &Devnet, txs: Vec<Bytes>) -> (f64, f64, usize) {
    let start = Instant::now();
    let mut mining = 0.0;
    let mut blocks = 0;
    for chunk in txs.chunks(PER_BLOCK) {
        for raw in chunk {
            chain
                .send_raw_transaction(raw.clone())
                .await
                .expect("accepted");
        }
        let m = Instant::now();
        chain.mine(1).await.expect("mined");
        mining += m.elapsed().as_secs_f64();
        blocks += 1;
    }
    (start.elapsed().as_secs_f64(), mining, blocks)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a transaction count"));
    let senders: Vec<PrivateKeySigner> = (0..50).map(|_| PrivateKeySigner::random()).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let chain = Devnet::open(DevnetConfig {
        db_path: Some(dir.path().join("devnet.db")),
        block_interval: None,
        automine: false,
        genesis_accounts: senders
            .iter()
            .map(|k| (k.address(), U256::from(10u64).pow(U256::from(24u64))))
            .collect(),
        ..DevnetConfig::default()
    })
    .await
    .expect("devnet");

    // Plain transfers, round-robin over the senders to fresh receivers.
    let mut nonces = vec![0u64; senders.len()];
    let transfers: Vec<Bytes> = (0..n)
        .map(|i| {
            let s = i % senders.len();
            nonces[s] += 1;
            let to = Address::from_word(U256::from(1_000_000 + i).into());
            sign(
                &senders[s],
                nonces[s] - 1,
                TxKind::Call(to),
                21_000,
                Bytes::new(),
                1,
            )
        })
        .collect();
    let (secs, mining, blocks) = run(&chain, transfers).await;
    println!(
        "value transfers: {n} in {secs:.2} s = {:.0} tx/s; {blocks} blocks of {PER_BLOCK}, mining+commit {:.1} ms/block = {:.1} blocks/s",
        n as f64 / secs,
        mining * 1000.0 / blocks as f64,
        blocks as f64 / mining
    );

    // ERC-20: deploy from sender 0, fund every sender, then transfers.
    let deployer = &senders[0];
    let mut init = hex::decode(TOKEN.trim()).expect("bytecode hex");
    init.extend(U256::from(10u64).pow(U256::from(30u64)).abi_encode());
    let deploy = sign(
        deployer,
        nonces[0],
        TxKind::Create,
        2_000_000,
        init.into(),
        0,
    );
    nonces[0] += 1;
    let hash = chain.send_raw_transaction(deploy).await.expect("deploy");
    chain.mine(1).await.expect("mined");
    let token = chain
        .receipt(hash)
        .await
        .expect("receipt")
        .and_then(|r| r.contract_address)
        .expect("deployed");
    let transfer_call = |to: Address, amount: u64| -> Bytes {
        let mut data = hex::decode("a9059cbb").expect("selector");
        data.extend((to, U256::from(amount)).abi_encode_params());
        data.into()
    };
    let mut funding = Vec::new();
    for k in &senders[1..] {
        funding.push(sign(
            deployer,
            nonces[0],
            TxKind::Call(token),
            100_000,
            transfer_call(k.address(), 1_000_000_000),
            0,
        ));
        nonces[0] += 1;
    }
    run(&chain, funding).await;
    let erc20: Vec<Bytes> = (0..n)
        .map(|i| {
            let s = i % senders.len();
            nonces[s] += 1;
            let to = Address::from_word(U256::from(2_000_000 + i).into());
            sign(
                &senders[s],
                nonces[s] - 1,
                TxKind::Call(token),
                100_000,
                transfer_call(to, 1),
                0,
            )
        })
        .collect();
    let (secs, mining, blocks) = run(&chain, erc20).await;
    // Every transfer executed: the last recipient holds its token.
    let last = Address::from_word(U256::from(2_000_000 + n - 1).into());
    let mut balance_of = hex::decode("70a08231").expect("selector");
    balance_of.extend(last.abi_encode());
    let held = chain
        .call(
            &CallRequest {
                to: Some(token),
                input: balance_of.into(),
                ..CallRequest::default()
            },
            BlockTag::Latest,
        )
        .await
        .expect("balanceOf");
    assert_eq!(U256::abi_decode(&held).expect("uint256"), U256::from(1u64));
    println!(
        "ERC-20 transfers: {n} in {secs:.2} s = {:.0} tx/s; {blocks} blocks of {PER_BLOCK}, mining+commit {:.1} ms/block = {:.1} blocks/s",
        n as f64 / secs,
        mining * 1000.0 / blocks as f64,
        blocks as f64 / mining
    );
    let head = chain.block_number(BlockTag::Latest).await.expect("head");
    let bytes = std::fs::metadata(dir.path().join("devnet.db")).map_or(0, |m| m.len());
    println!(
        "head {head}, devnet.db {:.1} MiB",
        bytes as f64 / (1024.0 * 1024.0)
    );
    chain.shutdown().await;
}
