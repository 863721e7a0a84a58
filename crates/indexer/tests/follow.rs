//! The follower against real chains (the embedded devnet and anvil) and the
//! real store (SQLite or PostgreSQL, per `RWA_TEST_DATABASE`): contracts the
//! test deploys (ERC-20, ERC-721, ERC-1155 fixtures), reorgs made by the
//! chain itself (`reorg`, `rollback`, snapshots), and after each scenario
//! every indexed holding compared with the chain's `balanceOf`/`ownerOf` at
//! the indexed block (`verify`). A lagging node is anvil behind the test
//! kit's JSON-RPC proxy serving a stale head.

use std::sync::Arc;

use alloy::sol_types::SolCall;
use rwa_chain::ChainControl;
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, BlockTag, Bytes, ChainPort, Receipt, U256};
use rwa_domain::health::{HealthCheck, HealthStatus};
use rwa_domain::onchain::{
    IndexStore, NewWatchedContract, Standard, VerifyTarget, WatchedContracts,
};
use rwa_domain::org::OrgName;
use rwa_domain::ports::OrgRepository;
use rwa_domain::tx::{Signer, UnsignedTx};
use rwa_domain::{Actor, OrgId, Role};
use rwa_indexer::follower::{Follower, FollowerConfig, Progress};
use rwa_indexer::service::IndexerHealth;
use rwa_indexer::verify::verify;
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::DEV_KEY_0;
use rwa_testkit::{Anvil, RpcProxy, TestDatabase};

alloy::sol!(
    #[allow(missing_docs)]
    TestErc20,
    "../../contracts/artifacts/TestErc20.json"
);
alloy::sol!(
    #[allow(missing_docs)]
    TestErc721,
    "../../contracts/artifacts/TestErc721.json"
);
alloy::sol!(
    #[allow(missing_docs)]
    TestErc1155,
    "../../contracts/artifacts/TestErc1155.json"
);

trait Chain: ChainPort + ChainControl {}
impl<T: ChainPort + ChainControl> Chain for T {}

struct Rig {
    chain: Arc<dyn Chain>,
    store: Arc<Store>,
    key: LocalSigner,
    org: OrgId,
    chain_id: u64,
    _db: TestDatabase,
    _anvil: Option<Anvil>,
}

async fn devnet() -> (Arc<dyn Chain>, Option<Anvil>) {
    let key = LocalSigner::from_hex(DEV_KEY_0).unwrap();
    let ether = U256::from(10u64).pow(U256::from(18u64));
    let devnet = Devnet::open(DevnetConfig {
        block_interval: None,
        genesis_accounts: vec![(key.address(), ether * U256::from(1_000u64))],
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    (devnet, None)
}

fn anvil() -> (Arc<dyn Chain>, Option<Anvil>) {
    let anvil = Anvil::start(&["--no-mining"]);
    let chain = Arc::new(RpcChain::new(RpcConfig::new(anvil.url())).unwrap());
    (chain, Some(anvil))
}

async fn rig((chain, anvil): (Arc<dyn Chain>, Option<Anvil>)) -> Rig {
    let db = TestDatabase::create().await;
    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    let (admin, _) = NewApiKey::generate(Role::Admin, None);
    let org = store
        .system_create_with_key(&OrgName::parse("Indexer").unwrap(), &admin, &Actor::CLI)
        .await
        .unwrap()
        .id;
    let chain_id = chain.chain_id().await.unwrap();
    Rig {
        chain,
        store: Arc::new(store),
        key: LocalSigner::from_hex(DEV_KEY_0).unwrap(),
        org,
        chain_id,
        _db: db,
        _anvil: anvil,
    }
}

fn wallet(n: u8) -> Address {
    Address::repeat_byte(n)
}

impl Rig {
    fn follower(&self) -> Follower {
        let port: Arc<dyn ChainPort> = self.chain.clone();
        Follower::new(
            port,
            self.store.clone(),
            self.chain_id,
            FollowerConfig::default(),
        )
    }

    /// A signed transaction from the test key, with the next pending nonce.
    async fn signed(&self, to: Option<Address>, input: Vec<u8>) -> Bytes {
        let nonce = self
            .chain
            .nonce(self.key.address(), BlockTag::Pending)
            .await
            .unwrap();
        self.signed_at(nonce, to, input).await
    }

    async fn signed_at(&self, nonce: u64, to: Option<Address>, input: Vec<u8>) -> Bytes {
        let fees = self.chain.suggested_fees(1_000_000).await.unwrap();
        let tx = UnsignedTx {
            chain_id: self.chain_id,
            nonce,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit: 5_000_000,
            to,
            value: U256::ZERO,
            input: input.into(),
        };
        self.key.sign(&tx).await.unwrap().raw
    }

    /// Sends and mines one transaction; its receipt (which must succeed).
    async fn send(&self, to: Option<Address>, input: Vec<u8>) -> Receipt {
        let raw = self.signed(to, input).await;
        let hash = self.chain.send_raw_transaction(raw).await.unwrap();
        self.chain.mine(1).await.unwrap();
        let receipt = self.chain.receipt(hash).await.unwrap().expect("mined");
        assert!(receipt.success, "fixture transaction reverted");
        receipt
    }

    /// Deploys a fixture and watches it from its block.
    async fn deploy(&self, code: &Bytes, standard: Standard) -> Address {
        let r = self.send(None, code.to_vec()).await;
        let address = r.contract_address.unwrap();
        self.store
            .watch(
                self.org,
                self.chain_id,
                &NewWatchedContract {
                    address,
                    standard,
                    start_block: r.block_number,
                    name: None,
                },
            )
            .await
            .unwrap();
        address
    }

    /// Steps `follower` until it has nothing left to do.
    async fn index_with(&self, follower: &Follower) -> Vec<Progress> {
        let mut seen = Vec::new();
        for _ in 0..500 {
            let p = follower.step().await.unwrap();
            let done = matches!(p, Progress::Idle | Progress::Halted(_));
            seen.push(p);
            if done {
                return seen;
            }
        }
        panic!("the follower never reached the head: {seen:?}");
    }

    async fn index(&self) -> Vec<Progress> {
        self.index_with(&self.follower()).await
    }

    async fn cursor(&self) -> u64 {
        self.store
            .system_index_state(self.chain_id)
            .await
            .unwrap()
            .unwrap()
            .cursor
    }

    /// The index of `contract` compared with the chain at `at` (the cursor
    /// when `None`).
    async fn report(
        &self,
        contract: Address,
        standard: Standard,
        at: Option<u64>,
    ) -> rwa_domain::onchain::VerifyReport {
        let at = match at {
            Some(at) => at,
            None => self.cursor().await,
        };
        let port: Arc<dyn ChainPort> = self.chain.clone();
        let target = VerifyTarget {
            contract,
            standard,
            from_block: 0,
            at_block: Some(at),
            platform_token: false,
        };
        verify(port, self.store.as_ref(), self.chain_id, &target, at)
            .await
            .unwrap()
    }

    /// The index of `contract` agrees with the chain at `at`.
    async fn verified(&self, contract: Address, standard: Standard, at: Option<u64>) {
        let report = self.report(contract, standard, at).await;
        assert!(
            report.differences.is_empty(),
            "index differs from the chain: {:?}",
            report.differences
        );
        assert!(report.checked > 0, "verify compared nothing");
    }

    async fn balance(&self, contract: Address, who: Address) -> u64 {
        let holders = self
            .store
            .holders_at(self.chain_id, contract, u64::MAX, None, 100)
            .await
            .unwrap();
        holders
            .iter()
            .find(|h| h.wallet == who)
            .map_or(0, |h| h.balance.to::<u64>())
    }
}

fn mint20(to: Address, amount: u64) -> Vec<u8> {
    TestErc20::mintCall {
        to,
        amount: U256::from(amount),
    }
    .abi_encode()
}

fn transfer20(to: Address, amount: u64) -> Vec<u8> {
    TestErc20::transferCall {
        to,
        value: U256::from(amount),
    }
    .abi_encode()
}

async fn reorgs_are_undone_and_indexed_again(chain: (Arc<dyn Chain>, Option<Anvil>)) {
    let rig = rig(chain).await;
    let me = rig.key.address();
    let token = rig.deploy(&TestErc20::BYTECODE, Standard::Erc20).await;
    rig.send(Some(token), mint20(me, 1_000)).await;
    rig.index().await;
    assert_eq!(rig.balance(token, me).await, 1_000);

    // A one-block reorg that changes an amount: the transfer of 30 is
    // replaced by one of 50 with the same nonce.
    let nonce = rig.chain.nonce(me, BlockTag::Pending).await.unwrap();
    rig.send(Some(token), transfer20(wallet(2), 30)).await;
    rig.index().await;
    assert_eq!(rig.balance(token, wallet(2)).await, 30);
    let replacement = rig
        .signed_at(nonce, Some(token), transfer20(wallet(2), 50))
        .await;
    rig.chain.reorg(1, vec![replacement]).await.unwrap();
    // Before the follower steps, the index is stale and verify says where.
    let stale = rig.report(token, Standard::Erc20, None).await;
    assert!(
        stale
            .differences
            .iter()
            .any(|d| d.contains("indexed balance 30, chain 50")),
        "{:?}",
        stale.differences
    );
    let steps = rig.index().await;
    assert!(
        steps
            .iter()
            .any(|p| matches!(p, Progress::Rewound { depth: 1, .. })),
        "{steps:?}"
    );
    assert_eq!(rig.balance(token, wallet(2)).await, 50);
    rig.verified(token, Standard::Erc20, None).await;

    // A reorg that removes an event: the new block holds nothing.
    rig.send(Some(token), transfer20(wallet(3), 7)).await;
    rig.index().await;
    assert_eq!(rig.balance(token, wallet(3)).await, 7);
    rig.chain.reorg(1, Vec::new()).await.unwrap();
    rig.index().await;
    assert_eq!(rig.balance(token, wallet(3)).await, 0);
    rig.verified(token, Standard::Erc20, None).await;

    // Three reorgs in quick succession: each replaces a block the follower
    // indexed, and the next block arrives before the follower steps again.
    for (n, amount) in [(4u8, 11u64), (5, 12), (6, 13)] {
        let nonce = rig.chain.nonce(me, BlockTag::Pending).await.unwrap();
        rig.send(Some(token), transfer20(wallet(n), amount)).await;
        rig.index().await;
        assert_eq!(rig.balance(token, wallet(n)).await, amount);
        let other = rig
            .signed_at(nonce, Some(token), transfer20(wallet(n + 10), amount))
            .await;
        rig.chain.reorg(1, vec![other]).await.unwrap();
    }
    rig.index().await;
    for n in [4u8, 5, 6] {
        assert_eq!(rig.balance(token, wallet(n)).await, 0);
        assert!(rig.balance(token, wallet(n + 10)).await > 0);
    }
    rig.verified(token, Standard::Erc20, None).await;

    // A reorg while the indexer is stopped: a new follower (a restart)
    // re-checks the stored tip against the chain before anything else.
    rig.send(Some(token), transfer20(wallet(7), 3)).await;
    rig.send(Some(token), transfer20(wallet(8), 4)).await;
    rig.index().await;
    rig.chain.reorg(2, Vec::new()).await.unwrap();
    rig.chain.mine(1).await.unwrap();
    let restarted = rig.follower();
    let steps = rig.index_with(&restarted).await;
    assert!(
        matches!(steps[0], Progress::Rewound { depth: 2, .. }),
        "the first step after a restart rewinds: {steps:?}"
    );
    assert_eq!(rig.balance(token, wallet(7)).await, 0);
    rig.verified(token, Standard::Erc20, None).await;
    let state = rig
        .store
        .system_index_state(rig.chain_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.reorgs, 6);
}

#[tokio::test]
async fn devnet_reorgs_are_undone_and_indexed_again() {
    reorgs_are_undone_and_indexed_again(devnet().await).await;
}

#[tokio::test]
async fn anvil_reorgs_are_undone_and_indexed_again() {
    reorgs_are_undone_and_indexed_again(anvil()).await;
}

async fn a_reorg_below_finality_halts(chain: (Arc<dyn Chain>, Option<Anvil>)) {
    let rig = rig(chain).await;
    let me = rig.key.address();
    let token = rig.deploy(&TestErc20::BYTECODE, Standard::Erc20).await;
    rig.send(Some(token), mint20(me, 5)).await;
    rig.chain.mine(80).await.unwrap();
    rig.index().await;
    let state = rig
        .store
        .system_index_state(rig.chain_id)
        .await
        .unwrap()
        .unwrap();
    assert!(state.finalized > 0, "the chain has a finalized block");
    let health = IndexerHealth::new(rig.store.clone(), rig.chain_id, 128);
    assert_eq!(health.check().await.status, HealthStatus::Healthy);

    // Replace more blocks than the finality depth.
    let depth = rig.cursor().await - state.finalized + 3;
    rig.chain.reorg(depth, Vec::new()).await.unwrap();
    let steps = rig.index().await;
    assert!(
        matches!(steps.last(), Some(Progress::Halted(_))),
        "{steps:?}"
    );
    let report = health.check().await;
    assert_eq!(report.status, HealthStatus::Unhealthy);
    assert_eq!(report.details["halted"], true);
    // It stays halted: nothing continues silently.
    assert!(matches!(
        rig.follower().step().await.unwrap(),
        Progress::Halted(_)
    ));
}

#[tokio::test]
async fn devnet_a_reorg_below_finality_halts() {
    a_reorg_below_finality_halts(devnet().await).await;
}

#[tokio::test]
async fn anvil_a_reorg_below_finality_halts() {
    a_reorg_below_finality_halts(anvil()).await;
}

async fn nfts_and_multi_tokens_are_indexed_per_id(chain: (Arc<dyn Chain>, Option<Anvil>)) {
    let rig = rig(chain).await;
    let me = rig.key.address();
    let nft = rig.deploy(&TestErc721::BYTECODE, Standard::Erc721).await;
    let multi = rig.deploy(&TestErc1155::BYTECODE, Standard::Erc1155).await;
    let id = |n: u64| U256::from(n);
    for n in [1u64, 2, 3] {
        rig.send(
            Some(nft),
            TestErc721::mintCall { to: me, id: id(n) }.abi_encode(),
        )
        .await;
    }
    let before_moves = rig.chain.block_number(BlockTag::Latest).await.unwrap();
    rig.send(
        Some(nft),
        TestErc721::transferFromCall {
            from: me,
            to: wallet(2),
            tokenId: id(2),
        }
        .abi_encode(),
    )
    .await;
    rig.send(Some(nft), TestErc721::burnCall { id: id(3) }.abi_encode())
        .await;
    rig.send(
        Some(multi),
        TestErc1155::mintCall {
            to: me,
            id: id(7),
            value: U256::from(100u64),
        }
        .abi_encode(),
    )
    .await;
    rig.send(
        Some(multi),
        TestErc1155::mintBatchCall {
            to: me,
            ids: vec![id(8), id(9)],
            values: vec![U256::from(20u64), U256::from(30u64)],
        }
        .abi_encode(),
    )
    .await;
    rig.send(
        Some(multi),
        TestErc1155::safeBatchTransferFromCall {
            from: me,
            to: wallet(3),
            ids: vec![id(7), id(9)],
            values: vec![U256::from(40u64), U256::from(5u64)],
            data: Bytes::new(),
        }
        .abi_encode(),
    )
    .await;
    rig.index().await;

    let holders = rig
        .store
        .holders_at(rig.chain_id, nft, u64::MAX, None, 100)
        .await
        .unwrap();
    let owned: Vec<(u64, Address)> = holders
        .iter()
        .map(|h| (h.token_id.unwrap().to::<u64>(), h.wallet))
        .collect();
    assert_eq!(owned, vec![(1, me), (2, wallet(2))], "id 3 burned");
    let multi_holders = rig
        .store
        .holders_at(rig.chain_id, multi, u64::MAX, None, 100)
        .await
        .unwrap();
    let of = |id: u64, w: Address| {
        multi_holders
            .iter()
            .find(|h| h.token_id == Some(U256::from(id)) && h.wallet == w)
            .map_or(0, |h| h.balance.to::<u64>())
    };
    assert_eq!((of(7, me), of(7, wallet(3))), (60, 40));
    assert_eq!((of(8, me), of(9, me), of(9, wallet(3))), (20, 25, 5));
    rig.verified(nft, Standard::Erc721, None).await;
    rig.verified(multi, Standard::Erc1155, None).await;

    // Holders at a past block: before any NFT moved, all three were mine.
    let past = rig
        .store
        .holders_at(rig.chain_id, nft, before_moves, None, 100)
        .await
        .unwrap();
    assert_eq!(past.len(), 3);
    assert!(past.iter().all(|h| h.wallet == me));
    rig.verified(nft, Standard::Erc721, Some(before_moves))
        .await;
}

#[tokio::test]
async fn devnet_nfts_and_multi_tokens_are_indexed_per_id() {
    nfts_and_multi_tokens_are_indexed_per_id(devnet().await).await;
}

#[tokio::test]
async fn anvil_nfts_and_multi_tokens_are_indexed_per_id() {
    nfts_and_multi_tokens_are_indexed_per_id(anvil()).await;
}

/// A contract registered after the indexer passed its blocks catches up
/// alone (ranged fetches), then follows; two followers stepping on one
/// store at once count nothing twice.
#[tokio::test]
async fn a_late_contract_catches_up_and_two_followers_count_once() {
    let rig = rig(devnet().await).await;
    let me = rig.key.address();
    let r = rig.send(None, TestErc20::BYTECODE.to_vec()).await;
    let token = r.contract_address.unwrap();
    rig.send(Some(token), mint20(me, 10_000)).await;
    let recipients: Vec<Address> = (1..=40u8).map(wallet).collect();
    for _ in 0..5 {
        rig.send(
            Some(token),
            TestErc20::scatterCall {
                to: recipients.clone(),
                amount: U256::from(3u64),
            }
            .abi_encode(),
        )
        .await;
    }
    rig.chain.mine(70).await.unwrap();
    rig.index().await;
    // Registered now, from its deployment block, far below the cursor.
    rig.store
        .watch(
            rig.org,
            rig.chain_id,
            &NewWatchedContract {
                address: token,
                standard: Standard::Erc20,
                start_block: r.block_number,
                name: Some("late".into()),
            },
        )
        .await
        .unwrap();
    rig.send(Some(token), transfer20(wallet(99), 1)).await;
    let (a, b) = (rig.follower(), rig.follower());
    let (left, right) = tokio::join!(rig.index_with(&a), rig.index_with(&b));
    assert!(!left.is_empty() && !right.is_empty());
    assert_eq!(rig.balance(token, wallet(1)).await, 15);
    assert_eq!(rig.balance(token, wallet(99)).await, 1);
    rig.verified(token, Standard::Erc20, None).await;
}

async fn rollbacks_and_reverts_are_undone(chain: (Arc<dyn Chain>, Option<Anvil>)) {
    let rig = rig(chain).await;
    let me = rig.key.address();
    let token = rig.deploy(&TestErc20::BYTECODE, Standard::Erc20).await;
    rig.send(Some(token), mint20(me, 100)).await;
    rig.index().await;

    // Two transfers indexed, then the chain reverted to a snapshot taken
    // before them: the node's head is one of our blocks, below our tip, so
    // the follower waits; once the node builds past our tip on its new
    // branch, the reverted blocks are undone.
    let snapshot = rig.chain.snapshot().await.unwrap();
    rig.send(Some(token), transfer20(wallet(2), 10)).await;
    rig.send(Some(token), transfer20(wallet(3), 20)).await;
    rig.index().await;
    assert_eq!(rig.balance(token, wallet(3)).await, 20);
    assert!(rig.chain.revert(snapshot).await.unwrap());
    assert_eq!(rig.follower().step().await.unwrap(), Progress::Lagging);
    rig.send(Some(token), transfer20(wallet(4), 5)).await;
    rig.chain.mine(2).await.unwrap();
    let steps = rig.index().await;
    assert!(
        steps
            .iter()
            .any(|p| matches!(p, Progress::Rewound { depth: 2, .. })),
        "{steps:?}"
    );
    assert_eq!(rig.balance(token, wallet(3)).await, 0);
    assert_eq!(rig.balance(token, wallet(4)).await, 5);
    rig.verified(token, Standard::Erc20, None).await;

    // A rollback of the newest block, then new blocks past it.
    rig.send(Some(token), transfer20(wallet(5), 1)).await;
    rig.index().await;
    rig.chain.rollback(1).await.unwrap();
    assert_eq!(rig.follower().step().await.unwrap(), Progress::Lagging);
    rig.chain.mine(2).await.unwrap();
    let steps = rig.index().await;
    assert!(
        steps
            .iter()
            .any(|p| matches!(p, Progress::Rewound { depth: 1, .. })),
        "{steps:?}"
    );
    rig.verified(token, Standard::Erc20, None).await;
}

#[tokio::test]
async fn devnet_rollbacks_and_reverts_are_undone() {
    rollbacks_and_reverts_are_undone(devnet().await).await;
}

#[tokio::test]
async fn anvil_rollbacks_and_reverts_are_undone() {
    rollbacks_and_reverts_are_undone(anvil()).await;
}

/// A lagging node: a JSON-RPC proxy in front of anvil serving a stale
/// head (below our tip) while still answering our tip's block by number. It
/// is waited for, nothing is rewound; once it catches up, indexing goes on.
#[tokio::test]
async fn a_lagging_node_is_waited_for_not_rewound() {
    let rig = rig(anvil()).await;
    let me = rig.key.address();
    let token = rig.deploy(&TestErc20::BYTECODE, Standard::Erc20).await;
    rig.send(Some(token), mint20(me, 100)).await;
    rig.send(Some(token), transfer20(wallet(2), 10)).await;
    rig.index().await;
    let tip = rig.cursor().await;
    let proxy = RpcProxy::start(&rig._anvil.as_ref().unwrap().url()).await;
    let node: Arc<dyn ChainPort> = Arc::new(RpcChain::new(RpcConfig::new(proxy.url())).unwrap());
    let follower = Follower::new(
        node,
        rig.store.clone(),
        rig.chain_id,
        FollowerConfig::default(),
    );
    proxy.serve_stale_head(Some(tip - 2));
    rig.send(Some(token), transfer20(wallet(3), 7)).await;
    for _ in 0..3 {
        assert_eq!(follower.step().await.unwrap(), Progress::Lagging);
    }
    let state = rig
        .store
        .system_index_state(rig.chain_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.cursor, state.reorgs), (tip, 0), "nothing rewound");
    assert_eq!(rig.balance(token, wallet(2)).await, 10);
    proxy.serve_stale_head(None);
    rig.index_with(&follower).await;
    assert_eq!(rig.balance(token, wallet(3)).await, 7);
    rig.verified(token, Standard::Erc20, None).await;
}
