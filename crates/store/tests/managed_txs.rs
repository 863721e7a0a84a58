//! The transaction manager's storage contract, on SQLite and PostgreSQL
//! (`RWA_TEST_DATABASE=sqlite|postgres`): nonce allocation, idempotency keys,
//! attempts and state moves.

use std::collections::BTreeSet;
use std::sync::Arc;

use rwa_domain::RepoError;
use rwa_domain::chain::{Address, B256, Bytes, U256};
use rwa_domain::tx::{Lane, TxAttempt, TxInclusion, TxRequest, TxState, TxStore};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;

const CHAIN: u64 = 31337;

async fn store() -> (Arc<Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 8;
    let store = Store::connect(&opts).await.expect("connect");
    store.migrate().await.expect("migrate");
    (Arc::new(store), db)
}

fn request(key: &str) -> TxRequest {
    TxRequest {
        key: key.to_owned(),
        lane: Lane::Mint,
        to: Some(Address::repeat_byte(0x11)),
        value: U256::from(10u64).pow(U256::from(30u64)),
        input: Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
        gas_limit: 120_000,
    }
}

fn attempt(byte: u8, fee: u128) -> TxAttempt {
    TxAttempt {
        hash: B256::repeat_byte(byte),
        max_fee_per_gas: fee,
        max_priority_fee_per_gas: fee / 10,
        raw: Bytes::from(vec![0x02, byte]),
        created_at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn nonces_are_allocated_in_order_from_the_chain_floor_and_keys_are_idempotent() {
    let (store, _db) = store().await;
    let alice = Address::repeat_byte(0xa1);
    let bob = Address::repeat_byte(0xb0);

    let first = store
        .create(&request("op-1"), CHAIN, alice, 5)
        .await
        .unwrap();
    assert_eq!(first.nonce, 5, "the chain's pending nonce is the floor");
    assert_eq!(first.state, TxState::Pending);
    assert_eq!(
        first.request,
        request("op-1"),
        "the request reads back byte for byte"
    );
    let second = store
        .create(&request("op-2"), CHAIN, alice, 0)
        .await
        .unwrap();
    assert_eq!(second.nonce, 6);

    let again = store
        .create(&request("op-1"), CHAIN, alice, 0)
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "same key, same transaction");
    assert_eq!(
        store.next_nonce(CHAIN, alice).await.unwrap(),
        7,
        "a repeated key uses no nonce"
    );

    let other = store.create(&request("op-3"), CHAIN, bob, 0).await.unwrap();
    assert_eq!(other.nonce, 0, "each sender has its own sequence");
    let jumped = store
        .create(&request("op-4"), CHAIN, alice, 20)
        .await
        .unwrap();
    assert_eq!(
        jumped.nonce, 20,
        "a floor above ours wins (key used elsewhere)"
    );
    assert_eq!(store.raise_next_nonce(CHAIN, alice, 3).await.unwrap(), 21);
    assert_eq!(store.raise_next_nonce(CHAIN, alice, 30).await.unwrap(), 30);
    assert_eq!(store.next_nonce(CHAIN, alice).await.unwrap(), 30);

    assert_eq!(
        store.find_by_key("op-3").await.unwrap().unwrap().id,
        other.id
    );
    assert!(store.find_by_key("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_requests_get_distinct_contiguous_nonces_and_one_row_per_key() {
    let (store, _db) = store().await;
    let from = Address::repeat_byte(0xcc);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        // Every key is asked for twice at once.
        let key = format!("op-{}", i / 2);
        tasks.push(tokio::spawn(async move {
            store.create(&request(&key), CHAIN, from, 0).await.unwrap()
        }));
    }
    let mut by_key = std::collections::BTreeMap::new();
    for t in tasks {
        let tx = t.await.unwrap();
        let prior = by_key.insert(tx.request.key.clone(), (tx.id, tx.nonce));
        if let Some(prior) = prior {
            assert_eq!(
                prior,
                (tx.id, tx.nonce),
                "both callers of a key see one transaction"
            );
        }
    }
    let nonces: BTreeSet<u64> = by_key.values().map(|(_, n)| *n).collect();
    assert_eq!(
        nonces,
        (0..12).collect::<BTreeSet<u64>>(),
        "12 keys, nonces 0..12, no gap"
    );
    let open = store.open_for(CHAIN, from).await.unwrap();
    assert_eq!(
        open.iter().map(|t| t.nonce).collect::<Vec<_>>(),
        (0..12).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn attempts_and_inclusion_move_the_state_and_terminal_states_stick() {
    let (store, _db) = store().await;
    let from = Address::repeat_byte(0xdd);
    let tx = store
        .create(&request("deploy"), CHAIN, from, 0)
        .await
        .unwrap();

    let tx1 = store.add_attempt(tx.id, &attempt(1, 1_000)).await.unwrap();
    assert_eq!(tx1.state, TxState::Submitted);
    let tx2 = store.add_attempt(tx.id, &attempt(2, 1_100)).await.unwrap();
    let hashes: Vec<B256> = tx2.attempts.iter().map(|a| a.hash).collect();
    assert_eq!(
        hashes,
        vec![B256::repeat_byte(1), B256::repeat_byte(2)],
        "oldest first"
    );
    assert_eq!(tx2.attempts[1].raw, Bytes::from(vec![0x02, 2]));
    assert_eq!(tx2.attempts[1].max_fee_per_gas, 1_100);

    let inclusion = TxInclusion {
        hash: B256::repeat_byte(2),
        block_number: 42,
        block_hash: B256::repeat_byte(0x42),
        gas_used: 21_000,
        effective_gas_price: 7,
        contract_address: Some(Address::repeat_byte(0xee)),
    };
    let mined = store.set_inclusion(tx.id, Some(&inclusion)).await.unwrap();
    assert_eq!(mined.state, TxState::Confirmed);
    assert_eq!(mined.inclusion.as_ref(), Some(&inclusion));

    let reorged = store.set_inclusion(tx.id, None).await.unwrap();
    assert_eq!(reorged.state, TxState::Submitted, "a reorg sends it back");
    assert_eq!(reorged.inclusion, None);
    store.set_inclusion(tx.id, Some(&inclusion)).await.unwrap();

    let open = store.open_for(CHAIN, from).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0].attempts.len(),
        2,
        "open transactions carry their attempts"
    );

    let settled = store.finish(tx.id, TxState::Settled, None).await.unwrap();
    assert_eq!(settled.state, TxState::Settled);
    assert_eq!(
        store
            .finish(tx.id, TxState::Settled, None)
            .await
            .unwrap()
            .state,
        TxState::Settled,
        "finishing twice the same way is a no-op"
    );
    assert!(matches!(
        store.finish(tx.id, TxState::Failed, Some("late")).await,
        Err(RepoError::Conflict(_))
    ));
    assert!(matches!(
        store.add_attempt(tx.id, &attempt(3, 2_000)).await,
        Err(RepoError::Conflict(_))
    ));
    assert!(matches!(
        store.set_inclusion(tx.id, None).await,
        Err(RepoError::Conflict(_))
    ));
    assert!(store.open_for(CHAIN, from).await.unwrap().is_empty());

    let failed = store
        .create(&request("revert"), CHAIN, from, 0)
        .await
        .unwrap();
    let failed = store
        .finish(failed.id, TxState::Failed, Some("TransferNotAllowed(9)"))
        .await
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("TransferNotAllowed(9)"));
    assert!(matches!(
        store.finish(failed.id, TxState::Submitted, None).await,
        Err(RepoError::Conflict(_))
    ));
}

#[tokio::test]
async fn fillers_take_only_allocated_nonces_that_no_row_holds() {
    let (store, _db) = store().await;
    let alice = Address::repeat_byte(0xa2);
    let held = store
        .create(&request("held"), CHAIN, alice, 3)
        .await
        .unwrap();
    assert_eq!(held.nonce, 3);
    store.raise_next_nonce(CHAIN, alice, 6).await.unwrap();

    // 4 and 5 were allocated (raised past) and no row holds them.
    let filler = store
        .create_filler(&request("gap:4"), CHAIN, alice, 4)
        .await
        .unwrap();
    assert_eq!((filler.nonce, filler.state), (4, TxState::Pending));
    let again = store
        .create_filler(&request("gap:4"), CHAIN, alice, 4)
        .await
        .unwrap();
    assert_eq!(again.id, filler.id, "the key is idempotent");

    let taken = store
        .create_filler(&request("gap:3"), CHAIN, alice, 3)
        .await
        .unwrap_err();
    assert!(matches!(taken, RepoError::Conflict(_)), "{taken:?}");
    let future = store
        .create_filler(&request("gap:6"), CHAIN, alice, 6)
        .await
        .unwrap_err();
    assert!(matches!(future, RepoError::Conflict(_)), "{future:?}");
    assert_eq!(
        store.next_nonce(CHAIN, alice).await.unwrap(),
        6,
        "filling never moves the allocation"
    );
    let next = store
        .create(&request("next"), CHAIN, alice, 0)
        .await
        .unwrap();
    assert_eq!(next.nonce, 6);
}
