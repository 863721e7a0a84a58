//! The index's storage contract (`IndexStore`, `WatchedContracts`), run
//! unchanged on SQLite and PostgreSQL (`RWA_TEST_DATABASE=sqlite|postgres`):
//! batches are written whole and once, holdings follow their events, a
//! rewind undoes exactly the blocks above the ancestor, holders are
//! answered at any indexed block. Kept apart from `conformance.rs` for
//! size; the same helpers, written for this file's needs.

use std::sync::Arc;

use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, B256, U256};
use rwa_domain::onchain::{
    BlockRef, EventKind, Heights, IndexBatch, IndexStore, NewWatchedContract, OnchainEvent, Scope,
    SourceProgress, Standard, WatchedContracts,
};
use rwa_domain::org::OrgName;
use rwa_domain::ports::OrgRepository;
use rwa_domain::{Actor, OrgId, RepoError, Role};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;

const CHAIN: u64 = 31337;

async fn store() -> (Arc<Store>, TestDatabase) {
    let db = TestDatabase::create().await;
    let store = Store::connect(&StoreOptions::new(&db.url))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (Arc::new(store), db)
}

async fn org(store: &Store) -> OrgId {
    let (key, _) = NewApiKey::generate(Role::Admin, None);
    store
        .system_create_with_key(&OrgName::parse("Index").unwrap(), &key, &Actor::CLI)
        .await
        .unwrap()
        .id
}

/// Block `n` of fork `fork`.
fn block(n: u64, fork: u8) -> BlockRef {
    let hash = |n: u64, fork: u8| {
        let mut h = [fork; 32];
        h[..8].copy_from_slice(&n.to_be_bytes());
        B256::from(h)
    };
    BlockRef {
        number: n,
        hash: hash(n, fork),
        parent_hash: hash(n.saturating_sub(1), fork),
    }
}

fn wallet(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn transfer(contract: Address, b: BlockRef, log: u64, from: u8, to: u8, v: u64) -> OnchainEvent {
    OnchainEvent {
        chain_id: CHAIN,
        block_number: b.number,
        block_hash: b.hash,
        tx_hash: B256::repeat_byte(log as u8),
        log_index: log,
        contract,
        kind: EventKind::Erc20Transfer {
            from: if from == 0 {
                Address::ZERO
            } else {
                wallet(from)
            },
            to: wallet(to),
            value: U256::from(v),
        },
    }
}

fn live(after: u64, b: BlockRef, events: Vec<OnchainEvent>) -> IndexBatch {
    IndexBatch {
        scope: Scope::Following,
        after,
        to: b,
        window: vec![b],
        events,
        heights: Heights {
            head: b.number,
            safe: 0,
            finalized: 0,
        },
    }
}

async fn balances(store: &Store, contract: Address, at: u64) -> Vec<(Address, u64)> {
    store
        .holders_at(CHAIN, contract, at, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.wallet, h.balance.to::<u64>()))
        .collect()
}

fn watch_of(contract: Address) -> NewWatchedContract {
    NewWatchedContract {
        address: contract,
        standard: Standard::Erc20,
        start_block: 1,
        name: Some("fixture".into()),
    }
}

/// A watched contract followed from block 1, with the index started at 0.
async fn followed(store: &Store) -> Address {
    followed_by(store).await.1
}

async fn followed_by(store: &Store) -> (OrgId, Address) {
    let org = org(store).await;
    let contract = Address::repeat_byte(0xc0);
    store.watch(org, CHAIN, &watch_of(contract)).await.unwrap();
    store
        .system_start_index(CHAIN, block(0, 1), Heights::default())
        .await
        .unwrap();
    store
        .system_track_source(CHAIN, contract, None)
        .await
        .unwrap();
    (org, contract)
}

#[tokio::test]
async fn batches_are_written_once_and_holdings_follow_their_events() {
    let (store, _db) = store().await;
    let c = followed(&store).await;
    let sources = store.system_index_sources(CHAIN).await.unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].progress, SourceProgress::Following);

    let b1 = block(1, 1);
    let first = live(
        0,
        b1,
        vec![transfer(c, b1, 0, 0, 1, 100), transfer(c, b1, 1, 1, 2, 30)],
    );
    let applied = store.system_apply_index(CHAIN, &first).await.unwrap();
    assert!(applied.fresh);
    assert_eq!(applied.events, 2);
    // The same range again: refused as stale, nothing changes.
    let again = store.system_apply_index(CHAIN, &first).await.unwrap();
    assert!(!again.fresh);
    assert_eq!(
        balances(&store, c, 1).await,
        vec![(wallet(1), 70), (wallet(2), 30)]
    );

    let b2 = block(2, 1);
    store
        .system_apply_index(CHAIN, &live(1, b2, vec![transfer(c, b2, 0, 2, 3, 30)]))
        .await
        .unwrap();
    // Holders now, and at the earlier block.
    assert_eq!(
        balances(&store, c, 2).await,
        vec![(wallet(1), 70), (wallet(3), 30)]
    );
    assert_eq!(
        balances(&store, c, 1).await,
        vec![(wallet(1), 70), (wallet(2), 30)]
    );
    assert_eq!(
        store.supply_at(CHAIN, c, None, 2).await.unwrap(),
        U256::from(100u64)
    );
    let state = store.system_index_state(CHAIN).await.unwrap().unwrap();
    assert_eq!((state.cursor, state.cursor_hash), (2, b2.hash));
    assert_eq!(state.window.len(), 3, "blocks 0..=2 above finality 0");
    let history = store.transfers(CHAIN, c, None, 10).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].block_number, 2, "newest first");
}

#[tokio::test]
async fn a_rewind_undoes_exactly_the_blocks_above_the_ancestor() {
    let (store, _db) = store().await;
    let c = followed(&store).await;
    let b1 = block(1, 1);
    let b2 = block(2, 1);
    store
        .system_apply_index(CHAIN, &live(0, b1, vec![transfer(c, b1, 0, 0, 1, 100)]))
        .await
        .unwrap();
    store
        .system_apply_index(CHAIN, &live(1, b2, vec![transfer(c, b2, 0, 1, 2, 40)]))
        .await
        .unwrap();
    let removed = store.system_rewind_index(CHAIN, b1).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(balances(&store, c, 2).await, vec![(wallet(1), 100)]);
    let state = store.system_index_state(CHAIN).await.unwrap().unwrap();
    assert_eq!(state.cursor, 1);
    assert_eq!(state.reorgs, 1);
    assert_eq!(state.last_reorg_depth, Some(1));
    assert_eq!(state.window.last().unwrap().number, 1);
    // The other fork's block 2, with another amount.
    let b2b = block(2, 2);
    store
        .system_apply_index(CHAIN, &live(1, b2b, vec![transfer(c, b2b, 0, 1, 2, 55)]))
        .await
        .unwrap();
    assert_eq!(
        balances(&store, c, 2).await,
        vec![(wallet(1), 45), (wallet(2), 55)]
    );
}

#[tokio::test]
async fn a_contract_behind_catches_up_alone_then_follows() {
    let (store, _db) = store().await;
    let c = followed(&store).await;
    for n in 1..=3 {
        store
            .system_apply_index(CHAIN, &live(n - 1, block(n, 1), Vec::new()))
            .await
            .unwrap();
    }
    let late = Address::repeat_byte(0xd0);
    store
        .system_track_source(CHAIN, late, Some(0))
        .await
        .unwrap();
    let catch_up = |after: u64, to: u64, events| IndexBatch {
        scope: Scope::CatchUp(vec![late]),
        after,
        to: block(to, 1),
        window: Vec::new(),
        events,
        heights: Heights::default(),
    };
    let b2 = block(2, 1);
    // Events of another contract in a catch-up batch are not its to write.
    let applied = store
        .system_apply_index(
            CHAIN,
            &catch_up(
                0,
                2,
                vec![transfer(late, b2, 0, 0, 9, 5), transfer(c, b2, 1, 0, 9, 5)],
            ),
        )
        .await
        .unwrap();
    assert_eq!(applied.events, 1);
    assert!(
        !store
            .system_apply_index(CHAIN, &catch_up(0, 2, Vec::new()))
            .await
            .unwrap()
            .fresh
    );
    store
        .system_apply_index(CHAIN, &catch_up(2, 3, Vec::new()))
        .await
        .unwrap();
    let progress = |s: &[rwa_domain::onchain::Source]| {
        s.iter().find(|s| s.address == late).map(|s| s.progress)
    };
    let sources = store.system_index_sources(CHAIN).await.unwrap();
    // Tracked, not watched: not a source of its own, but its progress moved.
    assert_eq!(progress(&sources), None);
    assert_eq!(balances(&store, late, 3).await, vec![(wallet(9), 5)]);
    assert_eq!(balances(&store, c, 3).await, Vec::new());
}

#[tokio::test]
async fn unwatching_forgets_what_was_indexed_and_a_second_watch_is_refused() {
    let (store, _db) = store().await;
    let (org, c) = followed_by(&store).await;
    let b1 = block(1, 1);
    store
        .system_apply_index(CHAIN, &live(0, b1, vec![transfer(c, b1, 0, 0, 1, 100)]))
        .await
        .unwrap();
    assert!(matches!(
        store.watch(org, CHAIN, &watch_of(c)).await,
        Err(RepoError::Conflict(_))
    ));
    let watched = store.watched(org).await.unwrap();
    assert_eq!(watched.len(), 1);
    assert_eq!(watched[0].name.as_deref(), Some("fixture"));
    let one = store.watched_one(org, watched[0].id).await.unwrap();
    assert_eq!(one.address, c);
    assert!(matches!(
        store.watched_one(OrgId::new(), watched[0].id).await,
        Err(RepoError::NotFound)
    ));

    store.unwatch(org, watched[0].id).await.unwrap();
    assert!(store.system_index_sources(CHAIN).await.unwrap().is_empty());
    assert_eq!(balances(&store, c, 1).await, Vec::new());
    assert!(
        store
            .transfers(CHAIN, c, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Watched again: untracked, so it catches up afresh, never counted twice.
    store.watch(org, CHAIN, &watch_of(c)).await.unwrap();
    let sources = store.system_index_sources(CHAIN).await.unwrap();
    assert_eq!(sources[0].progress, SourceProgress::Untracked);
}
