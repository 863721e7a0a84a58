//! The devnet as a chain: value is conserved over thousands of random
//! transfers, transactions are validated like a node does, future nonces wait
//! for the gap, the test hooks rewind exactly, calls reach every block, and
//! headers carry the state root anvil computes for the same state, and
//! blocks and accepted transactions are counted.

use std::sync::Arc;

use alloy::consensus::proofs::{state_root_unhashed, storage_root_unhashed};
use alloy::consensus::{SignableTransaction, TrieAccount, TxEip1559, TxEnvelope};
use alloy::eips::BlockNumberOrTag;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{TxKind, address};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rwa_chain::ChainControl;
use rwa_chain::devnet::{Devnet, DevnetConfig, EVM_VERSION};
use rwa_domain::chain::{Address, B256, BlockTag, Bytes, CallRequest, ChainError, ChainPort, U256};
use rwa_testkit::Anvil;

const GWEI: u128 = 1_000_000_000;

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

async fn devnet(accounts: &[PrivateKeySigner], automine: bool) -> Arc<Devnet> {
    Devnet::open(DevnetConfig {
        block_interval: None,
        automine,
        genesis_accounts: accounts
            .iter()
            .map(|k| (k.address(), ether(1_000)))
            .collect(),
        genesis_timestamp: Some(1_700_000_000),
        ..DevnetConfig::default()
    })
    .await
    .unwrap()
}

struct Tx {
    chain_id: u64,
    nonce: u64,
    to: TxKind,
    value: U256,
    gas: u64,
    max_fee: u128,
    tip: u128,
    input: Bytes,
}

impl Tx {
    fn new(nonce: u64, to: Address, value: u64) -> Tx {
        Tx {
            chain_id: 31337,
            nonce,
            to: TxKind::Call(to),
            value: U256::from(value),
            gas: 21_000,
            max_fee: 10 * GWEI,
            tip: GWEI,
            input: Bytes::new(),
        }
    }

    /// A contract creation running `init`.
    fn create(nonce: u64, init: Bytes) -> Tx {
        Tx {
            to: TxKind::Create,
            gas: 200_000,
            input: init,
            ..Tx::new(nonce, Address::ZERO, 0)
        }
    }

    fn sign(&self, key: &PrivateKeySigner) -> Bytes {
        let mut body = TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas,
            max_fee_per_gas: self.max_fee,
            max_priority_fee_per_gas: self.tip,
            to: self.to,
            value: self.value,
            input: self.input.clone(),
            ..TxEip1559::default()
        };
        let signature = key.sign_transaction_sync(&mut body).unwrap();
        let envelope: TxEnvelope = body.into_signed(signature).into();
        envelope.encoded_2718().into()
    }
}

#[tokio::test]
async fn two_thousand_random_transfers_conserve_value() {
    let mut rng = StdRng::seed_from_u64(7);
    let keys: Vec<PrivateKeySigner> = (0..20).map(|_| PrivateKeySigner::random()).collect();
    let strangers: Vec<Address> = (0..10).map(|i| Address::repeat_byte(0x10 + i)).collect();
    let chain = devnet(&keys, false).await;
    let mut nonces = vec![0u64; keys.len()];
    let mut hashes = Vec::new();
    for i in 0..2_000 {
        let from = rng.random_range(0..keys.len());
        let to = if rng.random_bool(0.7) {
            keys[rng.random_range(0..keys.len())].address()
        } else {
            strangers[rng.random_range(0..strangers.len())]
        };
        let mut tx = Tx::new(nonces[from], to, rng.random_range(1..1_000_000_000_000_000));
        tx.tip = rng.random_range(0..3 * GWEI);
        nonces[from] += 1;
        hashes.push(
            chain
                .send_raw_transaction(tx.sign(&keys[from]))
                .await
                .unwrap(),
        );
        if i % 250 == 249 {
            chain.mine(1).await.unwrap();
        }
    }
    chain.mine(1).await.unwrap();

    let mut burnt = U256::ZERO;
    for hash in &hashes {
        let receipt = chain.receipt(*hash).await.unwrap().expect("mined");
        assert!(receipt.success);
        let header = chain
            .header(BlockTag::Number(receipt.block_number))
            .await
            .unwrap()
            .unwrap();
        burnt += U256::from(receipt.gas_used) * U256::from(header.base_fee_per_gas.unwrap());
    }
    let mut total = chain.balance(Address::ZERO).await.unwrap(); // the coinbase: tips
    for k in &keys {
        total += chain.balance(k.address()).await.unwrap();
    }
    for s in &strangers {
        total += chain.balance(*s).await.unwrap();
    }
    assert!(chain.balance(Address::ZERO).await.unwrap() > U256::ZERO);
    assert_eq!(total + burnt, ether(1_000) * U256::from(keys.len()));
    for (k, n) in keys.iter().zip(&nonces) {
        assert_eq!(
            chain.nonce(k.address(), BlockTag::Latest).await.unwrap(),
            *n
        );
    }
}

#[tokio::test]
async fn transactions_are_validated_like_a_node() {
    assert_eq!(EVM_VERSION, "prague");
    let key = PrivateKeySigner::random();
    let pauper = PrivateKeySigner::random();
    let chain = devnet(std::slice::from_ref(&key), false).await;
    let to = Address::repeat_byte(9);

    let first = Tx::new(0, to, 1).sign(&key);
    chain.send_raw_transaction(first.clone()).await.unwrap();
    assert_eq!(
        chain.send_raw_transaction(first).await,
        Err(ChainError::AlreadyKnown)
    );
    let mut same_nonce = Tx::new(0, to, 2);
    same_nonce.max_fee = 10 * GWEI + GWEI / 2; // +5 %: under the +10 % bump
    same_nonce.tip = GWEI + GWEI / 20;
    assert_eq!(
        chain.send_raw_transaction(same_nonce.sign(&key)).await,
        Err(ChainError::ReplacementUnderpriced)
    );
    let mut bumped = Tx::new(0, to, 3);
    bumped.max_fee = 11 * GWEI;
    bumped.tip = GWEI + GWEI / 10;
    chain.send_raw_transaction(bumped.sign(&key)).await.unwrap();
    chain.mine(1).await.unwrap();
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(3u64));

    let stale = chain
        .send_raw_transaction(Tx::new(0, to, 1).sign(&key))
        .await;
    assert!(
        matches!(stale, Err(ChainError::NonceTooLow(_))),
        "{stale:?}"
    );
    let mut cheap = Tx::new(1, to, 1);
    cheap.max_fee = 1;
    cheap.tip = 1;
    let cheap = chain.send_raw_transaction(cheap.sign(&key)).await;
    assert!(
        matches!(cheap, Err(ChainError::FeeCapTooLow(_))),
        "{cheap:?}"
    );
    let broke = chain
        .send_raw_transaction(Tx::new(0, to, 1).sign(&pauper))
        .await;
    assert!(
        matches!(broke, Err(ChainError::InsufficientFunds(_))),
        "{broke:?}"
    );
    let mut other_chain = Tx::new(1, to, 1);
    other_chain.chain_id = 1;
    let other_chain = chain.send_raw_transaction(other_chain.sign(&key)).await;
    assert!(
        matches!(other_chain, Err(ChainError::InvalidTransaction(_))),
        "{other_chain:?}"
    );
    let garbage = chain
        .send_raw_transaction(Bytes::from_static(&[2, 0xc0, 1, 2]))
        .await;
    assert!(
        matches!(garbage, Err(ChainError::InvalidTransaction(_))),
        "{garbage:?}"
    );
    let mut starved = Tx::new(1, to, 1);
    starved.gas = 20_000;
    let starved = chain.send_raw_transaction(starved.sign(&key)).await;
    assert!(
        matches!(starved, Err(ChainError::GasLimit(_))),
        "{starved:?}"
    );
    // 100 non-zero calldata bytes: 22,600 gas by the old schedule, but the
    // EIP-7623 floor (Prague) asks 25,000.
    let mut below_floor = Tx::new(1, to, 1);
    below_floor.input = Bytes::from(vec![1u8; 100]);
    below_floor.gas = 22_600;
    let below_floor = chain.send_raw_transaction(below_floor.sign(&key)).await;
    assert!(
        matches!(below_floor, Err(ChainError::GasLimit(_))),
        "{below_floor:?}"
    );
    // None of the rejected transactions touched the chain.
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Pending).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn future_nonces_are_queued_until_the_gap_fills() {
    let key = PrivateKeySigner::random();
    let chain = devnet(std::slice::from_ref(&key), true).await;
    let to = Address::repeat_byte(7);
    let h2 = chain
        .send_raw_transaction(Tx::new(2, to, 1).sign(&key))
        .await
        .unwrap();
    let h1 = chain
        .send_raw_transaction(Tx::new(1, to, 1).sign(&key))
        .await
        .unwrap();
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 0);
    assert!(chain.receipt(h1).await.unwrap().is_none());
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Pending).await.unwrap(),
        0
    );
    let h0 = chain
        .send_raw_transaction(Tx::new(0, to, 1).sign(&key))
        .await
        .unwrap();
    for h in [h0, h1, h2] {
        assert_eq!(chain.receipt(h).await.unwrap().unwrap().block_number, 1);
    }
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        3
    );
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(3u64));
}

#[tokio::test]
async fn blocks_chain_and_the_base_fee_follows_eip1559() {
    let keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
    let chain = devnet(&keys, false).await;
    // Blocks below the gas target lower the base fee: empty ones by 1/8.
    chain.mine(1).await.unwrap();
    let b1 = chain.header(BlockTag::Number(1)).await.unwrap().unwrap();
    let g = chain.header(BlockTag::Number(0)).await.unwrap().unwrap();
    assert_eq!(b1.parent_hash, g.hash);
    assert_eq!(g.base_fee_per_gas, Some(GWEI));
    assert_eq!(b1.base_fee_per_gas, Some(GWEI * 7 / 8));
    chain.mine(1).await.unwrap();
    let b2 = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    assert_eq!(b2.base_fee_per_gas, Some(GWEI * 49 / 64));
    assert_eq!(b2.parent_hash, b1.hash);
    assert!(b2.timestamp > b1.timestamp);
    chain.mine(100).await.unwrap();
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 102);
    assert_eq!(chain.block_number(BlockTag::Safe).await.unwrap(), 70);
    assert_eq!(chain.block_number(BlockTag::Finalized).await.unwrap(), 38);
    let history = chain.fee_history(4, &[50.0]).await.unwrap();
    assert_eq!(history.oldest_block, 99);
    assert_eq!(history.base_fee_per_gas.len(), 5);
}

#[tokio::test]
async fn reorgs_rollbacks_and_snapshots_rewind_exactly() {
    let key = PrivateKeySigner::random();
    let chain = devnet(std::slice::from_ref(&key), false).await;
    let to = Address::repeat_byte(5);
    let mut mined: Vec<B256> = Vec::new();
    for nonce in 0..4 {
        mined.push(
            chain
                .send_raw_transaction(Tx::new(nonce, to, 10).sign(&key))
                .await
                .unwrap(),
        );
        chain.mine(1).await.unwrap();
    }
    let before: Vec<_> = headers_upto(&chain, 4).await;

    let snapshot = chain.snapshot().await.unwrap();
    chain.mine(3).await.unwrap();
    assert!(chain.revert(snapshot).await.unwrap());
    assert_eq!(headers_upto(&chain, 4).await, before);
    assert!(
        !chain.revert(snapshot).await.unwrap(),
        "a snapshot is used once"
    );

    // Replace the top two blocks; the replacement carries nonce 2 again.
    let replacement = Tx::new(2, to, 1_000).sign(&key);
    chain.reorg(2, vec![replacement]).await.unwrap();
    let after = headers_upto(&chain, 4).await;
    assert_eq!(after[..3], before[..3]);
    assert_ne!(after[3].hash, before[3].hash);
    assert_ne!(after[4].hash, before[4].hash);
    assert_eq!(after[3].parent_hash, after[2].hash);
    assert_eq!(after[4].parent_hash, after[3].hash);
    assert!(chain.receipt(mined[2]).await.unwrap().is_none());
    assert!(chain.receipt(mined[3]).await.unwrap().is_none());
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(1_020u64));
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        3
    );

    chain.rollback(2).await.unwrap();
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 2);
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(20u64));
    assert!(chain.header(BlockTag::Number(3)).await.unwrap().is_none());

    chain.set_next_block_timestamp(1_900_000_000).await.unwrap();
    chain.mine(1).await.unwrap();
    let top = chain.header(BlockTag::Latest).await.unwrap().unwrap();
    assert_eq!(top.timestamp, 1_900_000_000);
    assert!(chain.set_next_block_timestamp(1_800_000_000).await.is_err());
}

async fn headers_upto(chain: &Devnet, head: u64) -> Vec<rwa_domain::chain::BlockHeader> {
    let mut out = Vec::new();
    for n in 0..=head {
        out.push(chain.header(BlockTag::Number(n)).await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn old_states_are_dropped_from_memory_and_replayed_for_deep_rewinds() {
    let key = PrivateKeySigner::random();
    let chain = devnet(std::slice::from_ref(&key), false).await;
    let to = Address::repeat_byte(3);
    chain
        .send_raw_transaction(Tx::new(0, to, 77).sign(&key))
        .await
        .unwrap();
    chain.mine(1).await.unwrap();
    let after_one = chain.balance(key.address()).await.unwrap();
    chain
        .send_raw_transaction(Tx::new(1, to, 23).sign(&key))
        .await
        .unwrap();
    chain.mine(300).await.unwrap();
    let probe = CallRequest {
        to: Some(to),
        ..CallRequest::default()
    };
    assert_eq!(
        chain.call(&probe, BlockTag::Number(1)).await.unwrap(),
        Bytes::new()
    );
    assert_eq!(
        chain.call(&probe, BlockTag::Number(290)).await.unwrap(),
        Bytes::new()
    );
    // Back to block 1: its state is rebuilt from the per-block changes.
    chain.rollback(300).await.unwrap();
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 1);
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(77u64));
    assert_eq!(chain.balance(key.address()).await.unwrap(), after_one);
    assert_eq!(
        chain.nonce(key.address(), BlockTag::Latest).await.unwrap(),
        1
    );
    assert!(chain.call(&probe, BlockTag::Latest).await.is_ok());
}

#[tokio::test]
async fn blocks_come_by_interval_until_shutdown() {
    let chain = Devnet::open(DevnetConfig {
        block_interval: Some(std::time::Duration::from_millis(20)),
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let mut head = 0;
    for _ in 0..500 {
        head = chain.block_number(BlockTag::Latest).await.unwrap();
        if head >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(head >= 3, "interval blocks arrive (head {head})");
    chain.shutdown().await;
    let stopped = chain.block_number(BlockTag::Latest).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), stopped);
}

#[tokio::test]
async fn a_full_block_leaves_the_rest_of_a_senders_run_for_the_next() {
    let key = PrivateKeySigner::random();
    let chain = Devnet::open(DevnetConfig {
        block_interval: None,
        block_gas_limit: 110_000,
        genesis_accounts: vec![(key.address(), ether(1))],
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let to = Address::repeat_byte(4);
    let mut hashes = Vec::new();
    for nonce in 0..10 {
        let mut tx = Tx::new(nonce, to, 1);
        if nonce == 4 {
            // Does not fit after four transfers; nonce 5 would, but must wait.
            tx.gas = 50_000;
        }
        hashes.push(chain.send_raw_transaction(tx.sign(&key)).await.unwrap());
    }
    chain.mine(3).await.unwrap();
    let mut per_block = [0; 4];
    for h in &hashes {
        let r = chain
            .receipt(*h)
            .await
            .unwrap()
            .expect("every transfer mined");
        per_block[r.block_number as usize] += 1;
    }
    assert_eq!(per_block, [0, 4, 5, 1]);
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(10u64));
}

/// A contract of one storage slot: called with 32 bytes it stores them, called
/// with none it returns the slot. Init code (copy the 24-byte runtime, return
/// it) then runtime:
/// `CALLDATASIZE ISZERO PUSH1 0x0c JUMPI PUSH1 0 CALLDATALOAD PUSH1 0 SSTORE
/// STOP JUMPDEST PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN`.
const SLOT_CONTRACT: &str = "6018600c60003960186000f3\
    3615600c57600035600055005b60005460005260206000f3";

fn word(n: u64) -> Bytes {
    Bytes::from(U256::from(n).to_be_bytes::<32>().to_vec())
}

#[tokio::test]
async fn calls_and_nonces_reach_blocks_older_than_the_kept_states() {
    let key = PrivateKeySigner::random();
    let chain = devnet(std::slice::from_ref(&key), false).await;
    let init: Bytes = alloy::primitives::hex::decode(SLOT_CONTRACT.replace(' ', ""))
        .unwrap()
        .into();
    let deploy = chain
        .send_raw_transaction(Tx::create(0, init).sign(&key))
        .await
        .unwrap();
    chain.mine(1).await.unwrap();
    let contract = chain
        .receipt(deploy)
        .await
        .unwrap()
        .unwrap()
        .contract_address
        .expect("deployed");
    let set = |nonce: u64, value: u64| Tx {
        gas: 60_000,
        input: word(value),
        ..Tx::new(nonce, contract, 0)
    };
    chain
        .send_raw_transaction(set(1, 7).sign(&key))
        .await
        .unwrap();
    chain.mine(1).await.unwrap(); // block 2: slot = 7
    chain.mine(300).await.unwrap();
    chain
        .send_raw_transaction(set(2, 9).sign(&key))
        .await
        .unwrap();
    chain.mine(1).await.unwrap(); // block 303: slot = 9
    chain.mine(5).await.unwrap();
    assert_eq!(chain.block_number(BlockTag::Latest).await.unwrap(), 308);

    let get = CallRequest {
        to: Some(contract),
        ..CallRequest::default()
    };
    let slot_at = |n: u64| {
        let chain = chain.clone();
        let get = get.clone();
        async move { chain.call(&get, BlockTag::Number(n)).await.unwrap() }
    };
    // Block 0: no code yet, so the call returns nothing.
    assert_eq!(slot_at(0).await, Bytes::new());
    assert_eq!(slot_at(1).await, word(0), "deployed, slot never written");
    assert_eq!(slot_at(2).await, word(7), "the value set 306 blocks ago");
    assert_eq!(slot_at(150).await, word(7));
    assert_eq!(slot_at(302).await, word(7));
    assert_eq!(slot_at(303).await, word(9));
    assert_eq!(chain.call(&get, BlockTag::Latest).await.unwrap(), word(9));
    for (block, nonce) in [(0, 0), (1, 1), (2, 2), (302, 2), (303, 3)] {
        assert_eq!(
            chain
                .nonce(key.address(), BlockTag::Number(block))
                .await
                .unwrap(),
            nonce,
            "nonce after block {block}"
        );
    }
    // After a rollback below the kept window the same answers hold.
    chain.rollback(5).await.unwrap();
    assert_eq!(slot_at(2).await, word(7));
    assert_eq!(slot_at(303).await, word(9));
}

/// Deploys [`SLOT_CONTRACT`] and sets its slot to 7, then to 0 again: a
/// transfer, a creation, a storage write and a storage clear.
fn state_changing_transactions(key: &PrivateKeySigner) -> Vec<Bytes> {
    let init: Bytes = alloy::primitives::hex::decode(SLOT_CONTRACT.replace(' ', ""))
        .unwrap()
        .into();
    let contract = key.address().create(1);
    let set = |nonce: u64, value: u64| Tx {
        gas: 60_000,
        input: word(value),
        ..Tx::new(nonce, contract, 0)
    };
    vec![
        Tx::new(0, Address::repeat_byte(0x42), 5).sign(key),
        Tx::create(1, init).sign(key),
        set(2, 7).sign(key),
        set(3, 0).sign(key),
    ]
}

/// The contracts anvil deploys at genesis.
const PREDEPLOYED: [Address; 2] = [
    address!("0x0000F90827F1C53a10cb7A02335B175320002935"),
    address!("0x4e59b44847b379578588920cA78FbF26c0B4956C"),
];

#[tokio::test]
async fn state_roots_match_anvils_for_the_same_genesis_and_transactions() {
    let key = PrivateKeySigner::random();
    let receiver = Address::repeat_byte(0x42);
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.json");
    let genesis_json = serde_json::json!({
        "config": { "chainId": 31337 },
        "alloc": {
            key.address().to_string(): { "balance": format!("{:#x}", ether(1_000)) },
            receiver.to_string(): { "balance": "0x1" },
        },
        "timestamp": "0x0",
        "gasLimit": "0x1c9c380",
        "baseFeePerGas": "0x3b9aca00",
        "difficulty": "0x0",
    });
    std::fs::write(&genesis, genesis_json.to_string()).unwrap();
    let anvil = Anvil::start(&["--init", genesis.to_str().unwrap(), "--accounts", "0"]);
    let node = ProviderBuilder::new().connect_http(anvil.url().parse().unwrap());
    let anvil_root = |n: u64| {
        let node = node.clone();
        async move {
            node.get_block_by_number(BlockNumberOrTag::Number(n))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("anvil has block {n}"))
                .header
                .state_root
        }
    };
    let chain = Devnet::open(DevnetConfig {
        block_interval: None,
        automine: true,
        genesis_accounts: [(key.address(), ether(1_000)), (receiver, U256::from(1u64))]
            .into_iter()
            .chain(PREDEPLOYED.map(|a| (a, U256::from(1u64))))
            .collect(),
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let devnet_root = |n: u64| {
        let chain = chain.clone();
        async move {
            chain
                .state_root(BlockTag::Number(n))
                .await
                .unwrap()
                .unwrap()
        }
    };

    // anvil predeploys two contracts the devnet does not have (the EIP-2935
    // block-hash history and the CREATE2 deployer). Without their code and
    // with one wei each, as in the devnet's genesis, both chains hold the same
    // accounts. (Emptied they would not do: anvil keeps empty accounts in its
    // trie, where EIP-161 and the devnet leave them out.)
    for predeployed in PREDEPLOYED {
        let _: () = node
            .raw_request("anvil_setCode".into(), (predeployed, Bytes::new()))
            .await
            .unwrap();
        let _: () = node
            .raw_request("anvil_setBalance".into(), (predeployed, U256::from(1u64)))
            .await
            .unwrap();
    }
    // The root by the protocol's rules from the accounts anvil reports after
    // block `n`, with the contract's storage trie built from its slot values
    // (zero slots left out). It checks the set of accounts too: it must
    // equal anvil's own root while no slot has gone back to zero.
    let contract = key.address().create(1);
    let accounts = [key.address(), receiver, Address::ZERO, contract]
        .into_iter()
        .chain(PREDEPLOYED)
        .collect::<Vec<_>>();
    let reference_root = |n: u64| {
        let node = node.clone();
        let accounts = accounts.clone();
        async move {
            let mut state = Vec::new();
            for address in accounts {
                let proof = node
                    .get_proof(address, vec![B256::ZERO])
                    .number(n)
                    .await
                    .unwrap();
                let empty = proof.nonce == 0
                    && proof.balance.is_zero()
                    && proof.code_hash == alloy::consensus::constants::KECCAK_EMPTY;
                if empty {
                    continue;
                }
                let storage_root = if address == contract {
                    storage_root_unhashed(
                        proof
                            .storage_proof
                            .iter()
                            .filter(|slot| !slot.value.is_zero())
                            .map(|slot| (slot.key.as_b256(), slot.value)),
                    )
                } else {
                    proof.storage_hash
                };
                let account = TrieAccount {
                    nonce: proof.nonce,
                    balance: proof.balance,
                    storage_root,
                    code_hash: proof.code_hash,
                };
                state.push((address, account));
            }
            state_root_unhashed(state)
        }
    };

    // anvil leaves its genesis header's root empty and its first block keeps
    // the genesis base fee: anvil's block n + 1 is the devnet's block n, with
    // the genesis state and the same base fees from there on.
    let _: String = node.raw_request("evm_mine".into(), ()).await.unwrap();
    assert_ne!(devnet_root(0).await, alloy::consensus::EMPTY_ROOT_HASH);
    assert_eq!(devnet_root(0).await, anvil_root(1).await, "genesis state");
    assert_eq!(reference_root(1).await, anvil_root(1).await);

    // Both automine: one block per transaction.
    for (i, raw) in state_changing_transactions(&key).into_iter().enumerate() {
        let block = i as u64 + 1;
        let hash = chain.send_raw_transaction(raw.clone()).await.unwrap();
        let receipt = chain.receipt(hash).await.unwrap().unwrap();
        assert_eq!(receipt.block_number, block);
        let anvil_receipt = node
            .send_raw_transaction(&raw)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        assert_eq!(
            anvil_receipt.block_number,
            Some(block + 1),
            "anvil mined it"
        );
        assert_eq!(anvil_receipt.gas_used, receipt.gas_used);
        assert_eq!(
            anvil_receipt.effective_gas_price, receipt.effective_gas_price,
            "the same fees, so the same balances"
        );
        assert_eq!(
            devnet_root(block).await,
            reference_root(block + 1).await,
            "state root after transaction {i}"
        );
        if i < 3 {
            assert_eq!(devnet_root(block).await, anvil_root(block + 1).await);
        } else {
            // anvil keeps a slot written back to zero as a leaf holding zero;
            // the protocol deletes it, so here only the reference agrees.
            assert_ne!(devnet_root(block).await, anvil_root(block + 1).await);
        }
        assert_ne!(devnet_root(block).await, devnet_root(block - 1).await);
    }
    chain.shutdown().await;
}

#[tokio::test]
async fn the_state_root_follows_rewinds_and_restarts() {
    let key = PrivateKeySigner::random();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devnet.db");
    let config = DevnetConfig {
        block_interval: None,
        genesis_accounts: vec![(key.address(), ether(1_000))],
        db_path: Some(path),
        ..DevnetConfig::default()
    };
    let chain = Devnet::open(config.clone()).await.unwrap();
    let root = |chain: Arc<Devnet>| async move {
        chain.state_root(BlockTag::Latest).await.unwrap().unwrap()
    };
    let genesis = root(chain.clone()).await;
    chain.mine(1).await.unwrap();
    assert_eq!(
        root(chain.clone()).await,
        genesis,
        "an empty block changes nothing"
    );

    // Each state change moves the root; the roots of one run are the
    // reference for the runs after a rewind and after a restart.
    let txs = state_changing_transactions(&key);
    let mut roots = vec![genesis];
    for raw in &txs {
        chain.send_raw_transaction(raw.clone()).await.unwrap();
        chain.mine(1).await.unwrap();
        let next = root(chain.clone()).await;
        assert!(!roots.contains(&next), "a new state, a new root");
        roots.push(next);
    }

    // Back to just after the transfer, through a rollback (the trie is
    // rebuilt from the head's state): the same transactions give the same roots.
    chain.rollback(3).await.unwrap();
    assert_eq!(root(chain.clone()).await, roots[1]);
    for (i, raw) in txs.iter().enumerate().skip(1) {
        chain.send_raw_transaction(raw.clone()).await.unwrap();
        chain.mine(1).await.unwrap();
        assert_eq!(
            root(chain.clone()).await,
            roots[i + 1],
            "after rollback, tx {i}"
        );
    }

    // A snapshot taken after the creation, reverted.
    chain.rollback(2).await.unwrap();
    let snapshot = chain.snapshot().await.unwrap();
    chain.send_raw_transaction(txs[2].clone()).await.unwrap();
    chain.mine(1).await.unwrap();
    assert_eq!(root(chain.clone()).await, roots[3]);
    assert!(chain.revert(snapshot).await.unwrap());
    assert_eq!(root(chain.clone()).await, roots[2]);

    // Across a restart the stored roots come back and the next block's root
    // is computed from the restored state.
    chain.shutdown().await;
    drop(chain);
    let chain = Devnet::open(config).await.unwrap();
    assert_eq!(root(chain.clone()).await, roots[2]);
    assert_eq!(
        chain.state_root(BlockTag::Number(0)).await.unwrap(),
        Some(genesis)
    );
    for (i, raw) in txs.iter().enumerate().skip(2) {
        chain.send_raw_transaction(raw.clone()).await.unwrap();
        chain.mine(1).await.unwrap();
        assert_eq!(
            root(chain.clone()).await,
            roots[i + 1],
            "after restart, tx {i}"
        );
    }
    chain.shutdown().await;
}

/// The devnet's counters (blocks, transactions) since the last snapshot.
fn devnet_counters(snapshot: Snapshot) -> (u64, u64) {
    let mut blocks = 0;
    let mut transactions = 0;
    for (key, _, _, value) in snapshot.into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        match key.key().name() {
            "rwa_devnet_blocks_total" => blocks = n,
            "rwa_devnet_transactions_total" => transactions = n,
            _ => {}
        }
    }
    (blocks, transactions)
}

#[test]
fn blocks_and_accepted_transactions_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime keeps every devnet call on this thread, where
    // the local recorder is installed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let key = PrivateKeySigner::random();
            let chain = devnet(std::slice::from_ref(&key), false).await;
            let to = Address::repeat_byte(9);
            for nonce in 0..3 {
                chain
                    .send_raw_transaction(Tx::new(nonce, to, 1).sign(&key))
                    .await
                    .unwrap();
            }
            // Rejected ones are not counted: a duplicate and a stale nonce.
            let again = chain
                .send_raw_transaction(Tx::new(2, to, 1).sign(&key))
                .await;
            assert!(matches!(again, Err(ChainError::AlreadyKnown)), "{again:?}");
            chain.mine(1).await.unwrap();
            let stale = chain
                .send_raw_transaction(Tx::new(0, to, 5).sign(&key))
                .await;
            assert!(
                matches!(stale, Err(ChainError::NonceTooLow(_))),
                "{stale:?}"
            );
            assert_eq!(devnet_counters(snapshotter.snapshot()), (1, 3));

            chain
                .send_raw_transaction(Tx::new(3, to, 1).sign(&key))
                .await
                .unwrap();
            chain.mine(2).await.unwrap();
            // A snapshot takes the counts since the one before.
            assert_eq!(devnet_counters(snapshotter.snapshot()), (2, 1));
        });
    });
}
