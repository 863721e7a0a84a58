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

#[tokio::test]
async fn a_lane_stuck_on_a_low_fee_does_not_delay_another_lane() {
    let rig = rig().await;
    let lanes = || {
        vec![
            (Lane::Deploy, signer(DEV_KEY_0)),
            (Lane::Settlement, signer(DEV_KEY_1)),
        ]
    };
    // Replacement only after an hour: the deploy lane stays stuck on its low fee.
    let patient = TxManagerConfig {
        replace_after: Duration::from_secs(3600),
        ..TxManagerConfig::default()
    };
    let m = manager(&rig, lanes(), patient).await;
    rig.chain.set_automine(false).await.unwrap();
    let stuck = m
        .submit(&transfer(
            "low-fee",
            Lane::Deploy,
            Address::repeat_byte(0x57),
            3,
        ))
        .await
        .unwrap();
    m.tick_lane(Lane::Deploy).await.unwrap();
    let offered = m.get(stuck.id).await.unwrap().attempts[0].max_fee_per_gas;

    // Blocks now cost four times what the deploy lane offered (and the base
    // fee falls only 12.5% per empty block, so it stays above for ~10 blocks).
    rig.chain
        .request::<serde_json::Value>(
            "anvil_setNextBlockBaseFeePerGas",
            serde_json::json!([(offered * 4).to_string()]),
        )
        .await
        .unwrap();
    rig.chain.mine(1).await.unwrap();

    let fine = m
        .submit(&transfer(
            "priced-right",
            Lane::Settlement,
            Address::repeat_byte(0x58),
            4,
        ))
        .await
        .unwrap();
    let settled = drive(&m, &rig.chain, fine.id, TxState::Settled).await;
    assert_eq!(settled.state, TxState::Settled);
    let stuck_now = m.get(stuck.id).await.unwrap();
    assert_eq!(
        stuck_now.state,
        TxState::Submitted,
        "the deploy lane is still stuck while settlement settled"
    );
    assert_eq!(stuck_now.attempts.len(), 1, "not replaced yet");
    assert_eq!(
        rig.chain.balance(Address::repeat_byte(0x57)).await.unwrap(),
        U256::ZERO
    );

    // The operator's remedy (here: a manager that replaces at once) unsticks
    // it with a bumped fee; it settles once.
    let eager = manager(&rig, lanes(), instant_replacement()).await;
    let recovered = drive(&eager, &rig.chain, stuck.id, TxState::Settled).await;
    assert!(recovered.attempts.len() >= 2, "{:?}", recovered.attempts);
    assert_eq!(
        rig.chain.balance(Address::repeat_byte(0x57)).await.unwrap(),
        U256::from(3u64)
    );
}

#[tokio::test]
async fn a_nonce_gap_is_filled_with_no_op_self_transfers_and_the_lane_moves_on() {
    let rig = rig().await;
    let m = manager(
        &rig,
        vec![(Lane::Mint, signer(DEV_KEY_2))],
        TxManagerConfig::default(),
    )
    .await;
    let from = m.address(Lane::Mint).unwrap();
    let start = rig.chain.nonce(from, BlockTag::Latest).await.unwrap();
    // Two nonces allocated that will never be sent (as after restoring an
    // older database, or an operator abandoning transactions): the node holds
    // every later nonce back until they are used.
    rig.store
        .raise_next_nonce(31337, from, start + 2)
        .await
        .unwrap();
    let to = Address::repeat_byte(0x59);
    let tx = m
        .submit(&transfer("after-the-gap", Lane::Mint, to, 9))
        .await
        .unwrap();
    assert_eq!(tx.nonce, start + 2);

    let settled = drive(&m, &rig.chain, tx.id, TxState::Settled).await;
    assert_eq!(settled.state, TxState::Settled);
    assert_eq!(rig.chain.balance(to).await.unwrap(), U256::from(9u64));
    for nonce in [start, start + 1] {
        let filler = rig
            .store
            .find_by_key(&format!("gap:31337:{from:#x}:{nonce}"))
            .await
            .unwrap()
            .expect("a filler for each missing nonce");
        assert_eq!(filler.nonce, nonce);
        assert_eq!(filler.request.to, Some(from), "a self-transfer");
        assert_eq!(filler.request.value, U256::ZERO);
        assert_eq!(filler.state, TxState::Settled);
    }
    assert_eq!(
        rig.chain.nonce(from, BlockTag::Latest).await.unwrap(),
        start + 3
    );
    assert_eq!(m.status()[0].gaps_filled, 2);
}

#[tokio::test]
async fn one_process_sends_for_a_signer_and_another_takes_over_when_it_dies() {
    let rig = rig().await;
    let second_store = Arc::new(
        Store::connect(&StoreOptions::new(&rig._db.url))
            .await
            .unwrap(),
    );
    let lanes = || vec![(Lane::Settlement, signer(DEV_KEY_1))];
    let first = manager(&rig, lanes(), TxManagerConfig::default()).await;
    let second = TxManager::new(
        rig.chain.clone(),
        second_store.clone(),
        lanes(),
        TxManagerConfig::default(),
    )
    .await
    .unwrap();
    let on_postgres = rig._db.backend_name() == "postgres";

    assert!(
        !first.tick().await[0].standby,
        "the first to step holds the signer"
    );
    let standby = second.tick().await[0].standby;
    if !on_postgres {
        // SQLite serves one process: every manager on it holds.
        assert!(!standby);
        return;
    }
    assert!(standby, "another process holds the signer");
    assert!(second.status()[0].standby);

    // Submitted through the standby process, sent by the holder.
    let tx = second
        .submit(&transfer(
            "via-standby",
            Lane::Settlement,
            Address::repeat_byte(0x5a),
            2,
        ))
        .await
        .unwrap();
    second.tick().await;
    assert_eq!(
        second.get(tx.id).await.unwrap().state,
        TxState::Pending,
        "the standby process sends nothing"
    );
    first.tick().await;
    assert_eq!(first.get(tx.id).await.unwrap().state, TxState::Submitted);

    // The holder goes away (its connections close, as when a process dies).
    drop(first);
    rig.store.close().await;
    let settled = drive(&second, &rig.chain, tx.id, TxState::Settled).await;
    assert_eq!(
        settled.attempts.len(),
        1,
        "the taker-over re-used the stored attempt"
    );
    assert!(!second.status()[0].standby);
    second_store.close().await;
}
