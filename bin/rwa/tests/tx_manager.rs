//! The transaction manager end to end: the real store (SQLite or PostgreSQL, per
//! `RWA_TEST_DATABASE`) and a real anvil node, driven step by step.

use std::sync::Arc;
use std::time::Duration;

use rwa_chain::ChainControl;
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_chain::txm::{FeePolicy, TxManager, TxManagerConfig};
use rwa_domain::chain::{Address, BlockTag, Bytes, ChainPort, U256};
use rwa_domain::tx::{Lane, ManagedTx, Signer, TxRequest, TxState, TxStore};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::{DEV_KEY_0, DEV_KEY_1, DEV_KEY_2};
use rwa_testkit::{Anvil, TestDatabase};

struct Rig {
    chain: Arc<RpcChain>,
    store: Arc<Store>,
    _db: TestDatabase,
    _anvil: Anvil,
}

async fn rig() -> Rig {
    let anvil = Anvil::start(&[]);
    let chain = Arc::new(RpcChain::new(RpcConfig::new(anvil.url())).unwrap());
    let db = TestDatabase::create().await;
    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    Rig {
        chain,
        store: Arc::new(store),
        _db: db,
        _anvil: anvil,
    }
}

fn signer(key: &str) -> Arc<dyn Signer> {
    Arc::new(LocalSigner::from_hex(key).unwrap())
}

async fn manager(
    rig: &Rig,
    lanes: Vec<(Lane, Arc<dyn Signer>)>,
    config: TxManagerConfig,
) -> TxManager {
    TxManager::new(rig.chain.clone(), rig.store.clone(), lanes, config)
        .await
        .unwrap()
}

fn transfer(key: &str, lane: Lane, to: Address, wei: u64) -> TxRequest {
    TxRequest {
        key: key.to_owned(),
        lane,
        to: Some(to),
        value: U256::from(wei),
        input: Bytes::new(),
        gas_limit: 21_000,
    }
}

fn instant_replacement() -> TxManagerConfig {
    TxManagerConfig {
        confirmations: 2,
        replace_after: Duration::ZERO,
        ..TxManagerConfig::default()
    }
}

/// Steps the manager and mines one block per step until `done` or 60 steps.
async fn drive(
    m: &TxManager,
    chain: &RpcChain,
    id: rwa_domain::tx::TxId,
    done: TxState,
) -> ManagedTx {
    for _ in 0..60 {
        m.tick().await;
        let tx = m.get(id).await.unwrap();
        if tx.state == done {
            return tx;
        }
        chain.mine(1).await.unwrap();
    }
    panic!(
        "transaction {id} never reached {done:?}: {:?}",
        m.get(id).await.unwrap()
    );
}

#[tokio::test]
async fn transactions_settle_once_at_depth_with_contiguous_nonces() {
    let rig = rig().await;
    let m = manager(
        &rig,
        vec![
            (Lane::Mint, signer(DEV_KEY_0)),
            (Lane::Deploy, signer(DEV_KEY_0)),
        ],
        TxManagerConfig::default(),
    )
    .await;
    let to = Address::repeat_byte(0x51);
    let mut ids = Vec::new();
    for i in 0..5 {
        let lane = if i % 2 == 0 { Lane::Mint } else { Lane::Deploy };
        let tx = m
            .submit(&transfer(&format!("pay-{i}"), lane, to, 1_000 + i))
            .await
            .unwrap();
        assert_eq!(
            tx.state,
            TxState::Pending,
            "nothing is sent before it is stored"
        );
        ids.push(tx.id);
    }
    let again = m
        .submit(&transfer("pay-0", Lane::Mint, to, 1))
        .await
        .unwrap();
    assert_eq!(again.id, ids[0], "a repeated key is the same transaction");

    let mut settled = Vec::new();
    for id in &ids {
        settled.push(drive(&m, &rig.chain, *id, TxState::Settled).await);
    }
    let nonces: Vec<u64> = settled.iter().map(|t| t.nonce).collect();
    assert_eq!(
        nonces,
        (nonces[0]..nonces[0] + 5).collect::<Vec<_>>(),
        "lanes sharing a key share one sequence"
    );
    for tx in &settled {
        let inclusion = tx.inclusion.as_ref().expect("mined");
        let head = rig.chain.block_number(BlockTag::Latest).await.unwrap();
        assert!(
            head + 1 - inclusion.block_number >= 2,
            "settled at depth >= confirmations"
        );
        assert_eq!(tx.attempts.len(), 1);
    }
    let expected: u64 = (0..5).map(|i| 1_000 + i).sum();
    assert_eq!(
        rig.chain.balance(to).await.unwrap(),
        U256::from(expected),
        "each transfer applied once"
    );
    assert!(
        m.status()
            .iter()
            .all(|s| s.open == 0 && s.last_error.is_none() && s.refused.is_none())
    );
}

#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_higher_fees_and_mined_once() {
    let rig = rig().await;
    let m = manager(
        &rig,
        vec![(Lane::Settlement, signer(DEV_KEY_1))],
        instant_replacement(),
    )
    .await;
    let to = Address::repeat_byte(0x52);
    rig.chain.set_automine(false).await.unwrap();
    let tx = m
        .submit(&transfer("stuck", Lane::Settlement, to, 7))
        .await
        .unwrap();
    m.tick().await;
    let first = m.get(tx.id).await.unwrap();
    assert_eq!(first.state, TxState::Submitted);
    let first_fee = first.attempts[0].max_fee_per_gas;

    // The next blocks cost more than the first attempt offers: it cannot be mined.
    let base = (first_fee * 13 / 10).to_string();
    rig.chain
        .request::<serde_json::Value>("anvil_setNextBlockBaseFeePerGas", serde_json::json!([base]))
        .await
        .unwrap();
    rig.chain.mine(1).await.unwrap();
    assert!(
        rig.chain
            .receipt(first.attempts[0].hash)
            .await
            .unwrap()
            .is_none(),
        "underpriced: not mined"
    );

    let settled = drive(&m, &rig.chain, tx.id, TxState::Settled).await;
    assert!(
        settled.attempts.len() >= 2,
        "replaced at least once: {:?}",
        settled.attempts
    );
    for pair in settled.attempts.windows(2) {
        assert!(
            pair[1].max_fee_per_gas * 10 >= pair[0].max_fee_per_gas * 11,
            "each replacement pays >= 10% more"
        );
        assert!(pair[1].max_priority_fee_per_gas * 10 >= pair[0].max_priority_fee_per_gas * 11);
    }
    let mined = settled.inclusion.as_ref().unwrap().hash;
    assert!(
        settled.attempts.iter().any(|a| a.hash == mined),
        "the mined hash is one of ours"
    );
    assert_eq!(
        rig.chain.balance(to).await.unwrap(),
        U256::from(7u64),
        "one logical transaction, one effect"
    );
    assert_eq!(
        rig.chain
            .nonce(settled.from, BlockTag::Latest)
            .await
            .unwrap(),
        settled.nonce + 1,
        "every attempt shared one nonce"
    );
}

#[tokio::test]
async fn the_fee_cap_is_reported_instead_of_stalling_silently() {
    let rig = rig().await;
    let suggested = rig.chain.suggested_fees(1_000_000).await.unwrap();
    let config = TxManagerConfig {
        fees: FeePolicy {
            max_fee_cap: suggested.max_fee_per_gas,
            ..FeePolicy::default()
        },
        ..instant_replacement()
    };
    let m = manager(&rig, vec![(Lane::Admin, signer(DEV_KEY_2))], config).await;
    rig.chain.set_automine(false).await.unwrap();
    let tx = m
        .submit(&transfer(
            "capped",
            Lane::Admin,
            Address::repeat_byte(0x53),
            1,
        ))
        .await
        .unwrap();
    m.tick().await;
    let base = (m.get(tx.id).await.unwrap().attempts[0].max_fee_per_gas * 2).to_string();
    rig.chain
        .request::<serde_json::Value>("anvil_setNextBlockBaseFeePerGas", serde_json::json!([base]))
        .await
        .unwrap();
    rig.chain.mine(1).await.unwrap();
    m.tick().await;
    let status = m.status();
    assert!(
        status[0].fee_cap_reached,
        "the cap shows in the lane status: {status:?}"
    );
    let tx = m.get(tx.id).await.unwrap();
    assert_eq!(tx.attempts.len(), 1, "no attempt above the cap was made");
    assert_eq!(tx.state, TxState::Submitted);
}

#[tokio::test]
async fn a_reorg_sends_a_mined_transaction_back_and_it_settles_exactly_once() {
    let rig = rig().await;
    let config = TxManagerConfig {
        confirmations: 3,
        ..TxManagerConfig::default()
    };
    let m = manager(&rig, vec![(Lane::Mint, signer(DEV_KEY_0))], config).await;
    let to = Address::repeat_byte(0x54);
    rig.chain.set_automine(false).await.unwrap();
    let tx = m
        .submit(&transfer("reorged", Lane::Mint, to, 9))
        .await
        .unwrap();
    m.tick().await; // broadcast
    rig.chain.mine(1).await.unwrap();
    m.tick().await; // confirmed
    let confirmed = m.get(tx.id).await.unwrap();
    assert_eq!(confirmed.state, TxState::Confirmed);
    let old_block = confirmed.inclusion.clone().unwrap();

    // Replace the block that holds it with an empty one.
    rig.chain.reorg(1, Vec::new()).await.unwrap();
    let report = m.tick().await;
    let back = m.get(tx.id).await.unwrap();
    let reorged: usize = report.iter().map(|r| r.reorged).sum();
    if reorged == 1 {
        assert_eq!(
            back.state,
            TxState::Submitted,
            "its block is gone: back to submitted"
        );
    } else {
        // The node re-included it at once: confirmed again, in a different block.
        assert_ne!(
            back.inclusion.as_ref().unwrap().block_hash,
            old_block.block_hash
        );
    }
    let settled = drive(&m, &rig.chain, tx.id, TxState::Settled).await;
    assert_ne!(
        settled.inclusion.unwrap().block_hash,
        old_block.block_hash,
        "settled in the canonical block"
    );
    assert_eq!(
        rig.chain.balance(to).await.unwrap(),
        U256::from(9u64),
        "applied exactly once"
    );
}

#[tokio::test]
async fn a_lane_that_cannot_pay_does_not_delay_another_lane() {
    let rig = rig().await;
    let broke: Arc<dyn Signer> = Arc::new(LocalSigner::random());
    let m = manager(
        &rig,
        vec![(Lane::Deploy, broke), (Lane::Settlement, signer(DEV_KEY_1))],
        TxManagerConfig::default(),
    )
    .await;
    let stuck = m
        .submit(&transfer(
            "cannot-pay",
            Lane::Deploy,
            Address::repeat_byte(0x55),
            1,
        ))
        .await
        .unwrap();
    let fine = m
        .submit(&transfer(
            "can-pay",
            Lane::Settlement,
            Address::repeat_byte(0x56),
            1,
        ))
        .await
        .unwrap();
    let settled = drive(&m, &rig.chain, fine.id, TxState::Settled).await;
    assert_eq!(settled.state, TxState::Settled);
    let stuck = m.get(stuck.id).await.unwrap();
    assert_eq!(
        stuck.state,
        TxState::Submitted,
        "stored and retried, never dropped"
    );
    let status = m.status();
    let deploy = status
        .iter()
        .find(|s| s.lanes.contains(&Lane::Deploy))
        .unwrap();
    assert!(deploy.low_balance);
    assert!(
        deploy
            .refused
            .as_deref()
            .is_some_and(|e| e.contains("insufficient funds")),
        "{deploy:?}"
    );
}

#[tokio::test]
async fn a_key_used_outside_rwa_is_reported_and_not_fought() {
    let rig = rig().await;
    let key = LocalSigner::from_hex(DEV_KEY_2).unwrap();
    let m = manager(
        &rig,
        vec![(Lane::Admin, signer(DEV_KEY_2))],
        TxManagerConfig::default(),
    )
    .await;
    let first = m
        .submit(&transfer(
            "ours-1",
            Lane::Admin,
            Address::repeat_byte(0x57),
            1,
        ))
        .await
        .unwrap();
    drive(&m, &rig.chain, first.id, TxState::Settled).await;

    // Someone else sends two transactions with the same key.
    for _ in 0..2 {
        let nonce = rig
            .chain
            .nonce(key.address(), BlockTag::Pending)
            .await
            .unwrap();
        let fees = rig.chain.suggested_fees(1_000_000).await.unwrap();
        let signed = key
            .sign(&rwa_domain::tx::UnsignedTx {
                chain_id: 31337,
                nonce,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                gas_limit: 21_000,
                to: Some(Address::repeat_byte(0x58)),
                value: U256::from(1u64),
                input: Bytes::new(),
            })
            .await
            .unwrap();
        rig.chain.send_raw_transaction(signed.raw).await.unwrap();
    }
    m.tick().await;
    let status = m.status();
    assert!(
        status[0]
            .external_use
            .as_deref()
            .is_some_and(|n| n.contains("outside rwa")),
        "{status:?}"
    );
    let next = m
        .submit(&transfer(
            "ours-2",
            Lane::Admin,
            Address::repeat_byte(0x57),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(
        next.nonce,
        first.nonce + 3,
        "our sequence moved past the outside use"
    );
    drive(&m, &rig.chain, next.id, TxState::Settled).await;
    assert_eq!(
        rig.store.next_nonce(31337, key.address()).await.unwrap(),
        first.nonce + 4
    );
}
