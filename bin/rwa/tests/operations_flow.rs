//! Issuer operations end to end, in process: the real store (SQLite or
//! PostgreSQL, per `RWA_TEST_DATABASE`), the transaction manager, the token
//! deployment, identity and operations flows, and a real chain (the
//! embedded devnet and anvil), driven step by step. Every outcome is read
//! back from the token contract. A transfer's settlement through a reorg
//! is driven the same way (with the indexer, whose balances it is checked
//! against).

use std::sync::Arc;
use std::time::Duration;

use alloy::sol_types::SolCall;
use chrono::{DateTime, Utc};
use rwa_chain::ChainControl;
use rwa_chain::contracts::{self, SecurityToken};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_chain::txm::{TxManager, TxManagerConfig};
use rwa_domain::amount::Amount;
use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, BlockTag, ChainPort, U256};
use rwa_domain::idempotency::{Claim, Completion, IdempotencyKey, IdempotencyStore};
use rwa_domain::identity::RegistrationStatus;
use rwa_domain::investor::{InvestorDraft, InvestorRepository, KycDecision, NewInvestor};
use rwa_domain::operation::{
    Created, HoldingsView, MintGate, NewOperation, Operation, OperationKind, OperationRepository,
    OperationStatus,
};
use rwa_domain::org::OrgName;
use rwa_domain::pii::PiiKeys;
use rwa_domain::ports::OrgRepository;
use rwa_domain::token::{ComplianceDraft, NewToken, Token, TokenDraft, TokenRepository};
use rwa_domain::transfer::{
    PartyRef, Resolved, Transfer, TransferRepository, TransferRequest, TransferStatus,
};
use rwa_domain::tx::{Lane, Signer};
use rwa_domain::{Actor, ApiKeyId, InvestorId, OrgId, Role};
use rwa_flows::compliance::ComplianceFlow;
use rwa_flows::deployment::{Progress as Deploy, TokenDeployer};
use rwa_flows::identity::{IdentitySync, SyncProgress};
use rwa_flows::operations::{OperationsFlow, Progress};
use rwa_flows::settlement::{Progress as Settled, SettlementFlow};
use rwa_flows::submit::Submitter;
use rwa_indexer::follower::{Follower, FollowerConfig};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::{DEV_KEY_0, DEV_KEY_1, DEV_KEY_2};
use rwa_testkit::{Anvil, TestDatabase};

trait Chain: ChainPort + ChainControl {}
impl<T: ChainPort + ChainControl> Chain for T {}

struct Rig {
    chain: Arc<dyn Chain>,
    store: Arc<Store>,
    txm: Arc<TxManager>,
    deployer: TokenDeployer,
    identity: IdentitySync,
    ops: OperationsFlow,
    _db: TestDatabase,
    _anvil: Option<Anvil>,
}

fn key(hex: &str) -> Arc<dyn Signer> {
    Arc::new(LocalSigner::from_hex(hex).unwrap())
}

/// A key per lane class, as `RWA_SIGNER_{LANE}_KEY` configures.
fn lanes() -> Vec<(Lane, Arc<dyn Signer>)> {
    vec![
        (Lane::Deploy, key(DEV_KEY_0)),
        (Lane::Mint, key(DEV_KEY_1)),
        (Lane::Settlement, key(DEV_KEY_1)),
        (Lane::Admin, key(DEV_KEY_2)),
    ]
}

async fn devnet() -> (Arc<dyn Chain>, Option<Anvil>) {
    let ether = U256::from(10u64).pow(U256::from(18u64));
    let funded = [DEV_KEY_0, DEV_KEY_1, DEV_KEY_2]
        .iter()
        .map(|k| (key(k).address(), ether * U256::from(1_000u64)))
        .collect();
    let devnet = Devnet::open(DevnetConfig {
        block_interval: None,
        genesis_accounts: funded,
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
    let mut opts = StoreOptions::new(&db.url);
    opts.pii = Some(Arc::new(PiiKeys::new(
        b"operations-test-secret-0123456789abcdef",
        None,
    )));
    let store = Store::connect(&opts).await.unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let port: Arc<dyn ChainPort> = chain.clone();
    let txm = Arc::new(
        TxManager::new(
            port.clone(),
            store.clone(),
            lanes(),
            TxManagerConfig {
                confirmations: 2,
                ..TxManagerConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let sub = Submitter {
        txm: txm.clone(),
        txs: store.clone(),
        chain: port.clone(),
    };
    Rig {
        deployer: TokenDeployer::new(txm.clone(), store.clone(), port.clone(), store.clone()),
        identity: IdentitySync::new(sub.clone(), store.clone(), store.clone()),
        ops: OperationsFlow::new(sub, store.clone(), store.clone()),
        chain,
        store,
        txm,
        _db: db,
        _anvil: anvil,
    }
}

/// The two admins of the four-eyes rule.
fn alice() -> Actor {
    Actor::api_key(ApiKeyId::new())
}

async fn org(store: &Store) -> OrgId {
    let (key, _) = NewApiKey::generate(Role::Admin, None);
    store
        .system_create_with_key(&OrgName::parse("Acme").unwrap(), &key, &Actor::CLI)
        .await
        .unwrap()
        .id
}

/// Steps the senders and the chain once.
async fn tick(rig: &Rig) {
    rig.txm.tick().await;
    rig.chain.mine(1).await.unwrap();
}

async fn deploy(rig: &Rig, org: OrgId, max_holders: Option<i64>) -> Token {
    let draft = TokenDraft {
        name: "Acme Fund".into(),
        symbol: "ACME".into(),
        decimals: 0,
        compliance: Some(ComplianceDraft {
            country_allow: vec![],
            country_block: vec!["KP".into()],
            max_balance_per_investor: Some("1000000".into()),
            max_holders,
            lockup_seconds: Some(0),
        }),
    };
    let token = NewToken::parse(&draft).unwrap();
    let token = TokenRepository::create(rig.store.as_ref(), org, &token, &Actor::CLI)
        .await
        .unwrap();
    for _ in 0..40 {
        if let Deploy::Deployed(t) = rig.deployer.step(token.id).await.unwrap() {
            return t;
        }
        tick(rig).await;
    }
    panic!("the token never deployed");
}

/// Onboards and approves an investor with `wallets`, and registers them.
async fn investor(rig: &Rig, org: OrgId, name: &str, wallets: &[Address]) -> InvestorId {
    let draft = InvestorDraft {
        name: name.into(),
        email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        country: "FR".into(),
        kind: "individual".into(),
        accredited: true,
        accreditation_expires_at: None,
        external_ref: None,
    };
    let new = NewInvestor::parse(&draft, Utc::now()).unwrap();
    let id = InvestorRepository::create(rig.store.as_ref(), org, &new, &Actor::CLI)
        .await
        .unwrap()
        .id;
    for w in wallets {
        rig.store
            .add_wallet(org, id, *w, &Actor::CLI)
            .await
            .unwrap();
    }
    let until = DateTime::from_timestamp(Utc::now().timestamp() + 365 * 86_400, 0).unwrap();
    rig.store
        .decide_kyc(
            org,
            id,
            KycDecision::Approve { expires_at: until },
            "verified",
            &Actor::CLI,
        )
        .await
        .unwrap();
    id
}

async fn register(rig: &Rig, org: OrgId) {
    for _ in 0..60 {
        if rig.identity.step(org).await.unwrap() == SyncProgress::Idle {
            return;
        }
        tick(rig).await;
    }
    panic!("the identity sync never finished");
}

fn render(op: &Operation) -> String {
    format!("{{\"id\":\"{}\"}}", op.id)
}

/// Requests an operation as the API does: claims a fresh idempotency key,
/// checks a mint against the index (empty here: every mint not indexed
/// counts as on its way), stores it.
async fn request(rig: &Rig, org: OrgId, token: &Token, op: NewOperation, by: &Actor) -> Created {
    let key = IdempotencyKey::parse(&uuid::Uuid::now_v7().to_string()).unwrap();
    let Claim::Granted(claim) = rig
        .store
        .claim(org, &key, "fp", Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("a fresh key is granted");
    };
    let gate = match (op.kind, op.investor_id) {
        (OperationKind::Mint, Some(investor)) => Some(MintGate {
            investor: InvestorRepository::get(rig.store.as_ref(), org, investor)
                .await
                .unwrap(),
            rules: token.compliance.clone(),
            holding: HoldingsView::holding(
                rig.store.as_ref(),
                token.deployment.as_ref().unwrap(),
                investor,
            )
            .await
            .unwrap(),
            now: Utc::now(),
        }),
        _ => None,
    };
    let done = Completion {
        key,
        claim,
        status: 202,
        render: Arc::new(render),
    };
    OperationRepository::create(rig.store.as_ref(), org, &op, gate.as_ref(), by, &done)
        .await
        .unwrap()
}

async fn stored(rig: &Rig, org: OrgId, token: &Token, op: NewOperation, by: &Actor) -> Operation {
    match request(rig, org, token, op, by).await {
        Created::Stored(op) => *op,
        Created::Refused(f) => panic!("refused: {f:?}"),
    }
}

fn op(kind: OperationKind, token: &Token, wallet: Address, amount: Option<u64>) -> NewOperation {
    NewOperation {
        kind,
        token_id: Some(token.id),
        wallet: Some(wallet),
        counterparty: None,
        investor_id: None,
        amount: amount.map(|a| Amount::new(U256::from(a))),
        reason: None,
        four_eyes: kind.always_four_eyes(),
        new_holder: false,
        rule_change: None,
    }
}

fn mint(token: &Token, investor: InvestorId, wallet: Address, amount: u64) -> NewOperation {
    NewOperation {
        investor_id: Some(investor),
        ..op(OperationKind::Mint, token, wallet, Some(amount))
    }
}

/// Steps the operations flow until it is idle.
async fn settle(rig: &Rig, org: OrgId) {
    for _ in 0..80 {
        if rig.ops.step(org).await.unwrap() == Progress::Idle {
            return;
        }
        tick(rig).await;
    }
    panic!("the operations never settled");
}

async fn view<C: SolCall>(rig: &Rig, to: Address, call: C) -> C::Return {
    contracts::view(rig.chain.as_ref(), to, &call, BlockTag::Latest)
        .await
        .unwrap()
}

async fn balance(rig: &Rig, token: &Token, w: Address) -> u64 {
    let at = token.deployment.as_ref().unwrap().address;
    view(rig, at, SecurityToken::balanceOfCall { account: w })
        .await
        .to::<u64>()
}

async fn frozen(rig: &Rig, token: &Token, w: Address) -> u64 {
    let at = token.deployment.as_ref().unwrap().address;
    view(rig, at, SecurityToken::frozenTokensCall(w))
        .await
        .to::<u64>()
}

async fn status(rig: &Rig, org: OrgId, id: uuid::Uuid) -> Operation {
    OperationRepository::get(rig.store.as_ref(), org, id)
        .await
        .unwrap()
}

fn w(n: u8) -> Address {
    Address::repeat_byte(n)
}

async fn every_operation_settles_on_chain(rig: Rig) {
    let org = org(&rig.store).await;
    let token = deploy(&rig, org, Some(10)).await;
    let at = token.deployment.as_ref().unwrap().address;
    let ana = investor(&rig, org, "Ana Lima", &[w(1), w(2)]).await;
    let ben = investor(&rig, org, "Ben Okafor", &[w(3)]).await;
    register(&rig, org).await;
    let (alice, bob) = (alice(), Actor::api_key(ApiKeyId::new()));

    // Mints, then a partial freeze and unfreeze.
    let m1 = stored(&rig, org, &token, mint(&token, ana, w(1), 1_000), &alice).await;
    assert_eq!(m1.status, OperationStatus::Pending);
    stored(&rig, org, &token, mint(&token, ben, w(3), 500), &alice).await;
    settle(&rig, org).await;
    let m1 = status(&rig, org, m1.id).await;
    assert_eq!(m1.status, OperationStatus::Settled, "{m1:?}");
    assert!(m1.transactions[0].tx_hash.is_some() && m1.transactions[0].block_number.is_some());
    assert_eq!(balance(&rig, &token, w(1)).await, 1_000);
    assert_eq!(balance(&rig, &token, w(3)).await, 500);
    stored(
        &rig,
        org,
        &token,
        op(OperationKind::Freeze, &token, w(1), Some(300)),
        &alice,
    )
    .await;
    settle(&rig, org).await;
    assert_eq!(frozen(&rig, &token, w(1)).await, 300);
    stored(
        &rig,
        org,
        &token,
        op(OperationKind::Unfreeze, &token, w(1), Some(100)),
        &alice,
    )
    .await;
    settle(&rig, org).await;
    assert_eq!(frozen(&rig, &token, w(1)).await, 200);

    // A burn waits for a second actor; the requester cannot approve it.
    let burn = stored(
        &rig,
        org,
        &token,
        op(OperationKind::Burn, &token, w(3), Some(100)),
        &alice,
    )
    .await;
    assert_eq!(burn.status, OperationStatus::AwaitingApproval);
    settle(&rig, org).await;
    assert_eq!(
        balance(&rig, &token, w(3)).await,
        500,
        "nothing sent before approval"
    );
    assert!(rig.store.approve(org, burn.id, &alice).await.is_err());
    let approved = rig.store.approve(org, burn.id, &bob).await.unwrap();
    assert_eq!(approved.approved_by, Some(bob.to_string()));
    settle(&rig, org).await;
    assert_eq!(balance(&rig, &token, w(3)).await, 400);

    // A forced transfer moves tokens regardless of the freeze.
    let forced = NewOperation {
        counterparty: Some(w(3)),
        reason: Some("court order 17".into()),
        ..op(OperationKind::ForcedTransfer, &token, w(1), Some(900))
    };
    let forced = stored(&rig, org, &token, forced, &alice).await;
    rig.store.approve(org, forced.id, &bob).await.unwrap();
    settle(&rig, org).await;
    assert_eq!(
        status(&rig, org, forced.id).await.status,
        OperationStatus::Settled
    );
    assert_eq!(balance(&rig, &token, w(1)).await, 100);
    assert_eq!(
        frozen(&rig, &token, w(1)).await,
        100,
        "frozen tokens released as needed"
    );
    assert_eq!(balance(&rig, &token, w(3)).await, 1_300);

    // Pause and unpause.
    let pause = NewOperation {
        wallet: None,
        ..op(OperationKind::Pause, &token, w(0), None)
    };
    let pause = stored(&rig, org, &token, pause, &bob).await;
    rig.store.approve(org, pause.id, &alice).await.unwrap();
    settle(&rig, org).await;
    assert!(view(&rig, at, SecurityToken::pausedCall {}).await);
    let unpause = NewOperation {
        wallet: None,
        ..op(OperationKind::Unpause, &token, w(0), None)
    };
    stored(&rig, org, &token, unpause, &bob).await;
    settle(&rig, org).await;
    assert!(!view(&rig, at, SecurityToken::pausedCall {}).await);

    // Recovery: the new wallet is registered for Ana, then balance and
    // freeze move to it.
    stored(
        &rig,
        org,
        &token,
        op(OperationKind::Freeze, &token, w(1), None),
        &alice,
    )
    .await;
    settle(&rig, org).await;
    rig.store
        .add_wallet(org, ana, w(9), &Actor::CLI)
        .await
        .unwrap();
    let recovery = NewOperation {
        kind: OperationKind::Recovery,
        token_id: None,
        wallet: Some(w(1)),
        counterparty: Some(w(9)),
        investor_id: Some(ana),
        amount: None,
        reason: None,
        four_eyes: true,
        new_holder: false,
        rule_change: None,
    };
    let recovery = stored(&rig, org, &token, recovery, &alice).await;
    rig.store.approve(org, recovery.id, &bob).await.unwrap();
    for _ in 0..40 {
        register(&rig, org).await;
        if rig.ops.step(org).await.unwrap() == Progress::Idle {
            break;
        }
        tick(&rig).await;
    }
    let recovered = status(&rig, org, recovery.id).await;
    assert_eq!(recovered.status, OperationStatus::Settled, "{recovered:?}");
    assert_eq!(
        recovered.transactions.len(),
        1,
        "one token, one transaction"
    );
    assert_eq!(balance(&rig, &token, w(9)).await, 100);
    assert_eq!(frozen(&rig, &token, w(9)).await, 100);
    assert!(view(&rig, at, SecurityToken::isFrozenCall(w(9))).await);
    assert_eq!(balance(&rig, &token, w(1)).await, 0);
    // The lost wallet left Ana, and then the registry.
    register(&rig, org).await;
    let ana_now = InvestorRepository::get(rig.store.as_ref(), org, ana)
        .await
        .unwrap();
    assert!(!ana_now.wallets.iter().any(|x| x.address == w(1)));
    assert!(
        ana_now
            .registrations
            .iter()
            .any(|r| r.address == w(1) && r.status == RegistrationStatus::Removed),
        "{:?}",
        ana_now.registrations
    );
    assert!(
        ana_now
            .registrations
            .iter()
            .any(|r| r.address == w(9) && r.status == RegistrationStatus::Registered)
    );

    // A rejection ends an operation; nothing is sent.
    let burn = stored(
        &rig,
        org,
        &token,
        op(OperationKind::Burn, &token, w(3), Some(1)),
        &alice,
    )
    .await;
    let rejected = rig
        .store
        .reject(org, burn.id, "not agreed", &bob)
        .await
        .unwrap();
    assert_eq!(rejected.status, OperationStatus::Rejected);
    assert!(rig.store.approve(org, burn.id, &bob).await.is_err());
    settle(&rig, org).await;
    assert_eq!(balance(&rig, &token, w(3)).await, 1_300);
}

/// Mints refused before anything is stored name the rule.
async fn mints_are_checked_before_they_are_accepted(rig: Rig) {
    let org = org(&rig.store).await;
    let token = deploy(&rig, org, Some(2)).await;
    let ana = investor(&rig, org, "Ana Lima", &[w(1)]).await;
    let ben = investor(&rig, org, "Ben Okafor", &[w(2)]).await;
    let cleo = investor(&rig, org, "Cleo Park", &[w(3)]).await;
    register(&rig, org).await;
    let by = alice();
    let refused = |c: Created| match c {
        Created::Refused(f) => f.rule,
        Created::Stored(op) => panic!("stored {op:?}"),
    };
    // Not approved.
    rig.store
        .decide_kyc(
            org,
            cleo,
            KycDecision::Reject,
            "documents revoked",
            &Actor::CLI,
        )
        .await
        .unwrap();
    assert_eq!(
        refused(request(&rig, org, &token, mint(&token, cleo, w(3), 1), &by).await),
        "kyc_approved"
    );
    // A wallet not registered yet.
    rig.store
        .add_wallet(org, ana, w(4), &Actor::CLI)
        .await
        .unwrap();
    assert_eq!(
        refused(request(&rig, org, &token, mint(&token, ana, w(4), 1), &by).await),
        "wallet_registered"
    );
    // Beyond the per-investor maximum, counting mints on their way.
    stored(&rig, org, &token, mint(&token, ana, w(1), 600_000), &by).await;
    assert_eq!(
        refused(request(&rig, org, &token, mint(&token, ana, w(1), 400_001), &by).await),
        "max_balance_per_investor"
    );
    // Two holders at most: Ana (on her way) and Ben; a third is refused.
    stored(&rig, org, &token, mint(&token, ben, w(2), 1), &by).await;
    let dan = investor(&rig, org, "Dan Eze", &[w(5)]).await;
    register(&rig, org).await;
    assert_eq!(
        refused(request(&rig, org, &token, mint(&token, dan, w(5), 1), &by).await),
        "max_holders"
    );
    settle(&rig, org).await;
    // Settled now, the chain's own counts say the same.
    assert_eq!(
        refused(request(&rig, org, &token, mint(&token, dan, w(5), 1), &by).await),
        "max_holders"
    );
    let page = rwa_domain::page::PageRequest::parse(None, None).unwrap();
    let list = OperationRepository::list(rig.store.as_ref(), org, &Default::default(), page)
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2, "refused mints store nothing");
}

/// 200 mints of one token go out in a few batches; one made invalid
/// before sending fails alone with its reason, the others settle.
async fn mints_are_batched_and_a_bad_one_fails_alone(rig: Rig) {
    let org = org(&rig.store).await;
    let token = deploy(&rig, org, None).await;
    let mut wallets = Vec::new();
    let mut investors = Vec::new();
    for i in 0..200u32 {
        let mut bytes = [0u8; 20];
        bytes[16..].copy_from_slice(&(i + 1000).to_be_bytes());
        let wallet = Address::from(bytes);
        investors.push(investor(&rig, org, &format!("Holder {i}"), &[wallet]).await);
        wallets.push(wallet);
    }
    register(&rig, org).await;
    let by = alice();
    let mut ids = Vec::new();
    for (i, (investor, wallet)) in investors.iter().zip(&wallets).enumerate() {
        ids.push(
            stored(
                &rig,
                org,
                &token,
                mint(&token, *investor, *wallet, 10 + i as u64),
                &by,
            )
            .await
            .id,
        );
    }
    // Wallet 57 is frozen on-chain (outside the product) before the
    // batches are sent.
    let at = token.deployment.as_ref().unwrap().address;
    let input = contracts::input(&SecurityToken::setAddressFrozenCall {
        wallet: wallets[57],
        frozen: true,
    });
    let request = rwa_domain::tx::TxRequest {
        key: "test:freeze-57".into(),
        lane: Lane::Admin,
        to: Some(at),
        value: U256::ZERO,
        input,
        gas_limit: 100_000,
    };
    rig.txm.submit(&request).await.unwrap();
    for _ in 0..4 {
        tick(&rig).await;
    }
    settle(&rig, org).await;
    let mut hashes = std::collections::BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        let op = status(&rig, org, *id).await;
        if i == 57 {
            assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
            let why = op.error.clone().unwrap_or_default();
            assert!(why.contains("RECEIVER_FROZEN"), "decoded reason: {why}");
            assert_eq!(balance(&rig, &token, wallets[i]).await, 0);
        } else {
            assert_eq!(op.status, OperationStatus::Settled, "{op:?}");
            assert_eq!(balance(&rig, &token, wallets[i]).await, 10 + i as u64);
            hashes.insert(op.transactions[0].tx_hash.unwrap());
        }
    }
    // 5 batches of 40; the one holding the frozen wallet is split, its 39
    // others going alone.
    assert!(hashes.len() <= 4 + 39, "{} transactions", hashes.len());
    assert!(hashes.len() >= 5);
}

/// A mint whose block is reorged out goes back to `submitted`, is sent
/// again and applied once.
async fn a_reorged_mint_is_applied_once(rig: Rig) {
    let org = org(&rig.store).await;
    let token = deploy(&rig, org, None).await;
    let ana = investor(&rig, org, "Ana Lima", &[w(1)]).await;
    register(&rig, org).await;
    let m = stored(&rig, org, &token, mint(&token, ana, w(1), 77), &alice()).await;
    // Submitted, then mined once: confirmed.
    for _ in 0..6 {
        rig.ops.step(org).await.unwrap();
        if status(&rig, org, m.id).await.status == OperationStatus::Confirmed {
            break;
        }
        tick(&rig).await;
    }
    assert_eq!(
        status(&rig, org, m.id).await.status,
        OperationStatus::Confirmed
    );
    // The block holding it and the one above.
    rig.chain.rollback(2).await.unwrap();
    rig.txm.tick().await;
    rig.ops.step(org).await.unwrap();
    let back = status(&rig, org, m.id).await;
    assert_eq!(back.status, OperationStatus::Submitted, "{back:?}");
    settle(&rig, org).await;
    assert_eq!(
        status(&rig, org, m.id).await.status,
        OperationStatus::Settled
    );
    assert_eq!(balance(&rig, &token, w(1)).await, 77, "applied once");
}

#[tokio::test]
async fn every_operation_settles_on_the_devnet() {
    every_operation_settles_on_chain(rig(devnet().await).await).await;
}

#[tokio::test]
async fn every_operation_settles_on_anvil() {
    every_operation_settles_on_chain(rig(anvil()).await).await;
}

#[tokio::test]
async fn mints_are_checked_on_the_devnet() {
    mints_are_checked_before_they_are_accepted(rig(devnet().await).await).await;
}

#[tokio::test]
async fn mints_are_batched_on_the_devnet() {
    mints_are_batched_and_a_bad_one_fails_alone(rig(devnet().await).await).await;
}

#[tokio::test]
async fn mints_are_batched_on_anvil() {
    mints_are_batched_and_a_bad_one_fails_alone(rig(anvil()).await).await;
}

#[tokio::test]
async fn a_reorged_mint_is_applied_once_on_the_devnet() {
    a_reorged_mint_is_applied_once(rig(devnet().await).await).await;
}

/// Steps the indexer until it is at the head.
async fn index(rig: &Rig) {
    let chain_id = rig.chain.chain_id().await.unwrap();
    let port: Arc<dyn ChainPort> = rig.chain.clone();
    let follower = Follower::new(port, rig.store.clone(), chain_id, FollowerConfig::default());
    for _ in 0..200 {
        if follower.step().await.unwrap() == rwa_indexer::follower::Progress::Idle {
            return;
        }
    }
    panic!("the indexer never reached the head");
}

fn render_transfer(t: &Transfer) -> String {
    format!("{{\"id\":\"{}\"}}", t.id)
}

/// Requests a transfer as the API does, under a fresh idempotency key.
async fn transfer(rig: &Rig, org: OrgId, request: &TransferRequest) -> Transfer {
    let key = IdempotencyKey::parse(&uuid::Uuid::now_v7().to_string()).unwrap();
    let Claim::Granted(claim) = rig
        .store
        .claim(org, &key, "fp", Duration::from_secs(30))
        .await
        .unwrap()
    else {
        panic!("a fresh key is granted");
    };
    let done = Completion {
        key,
        claim,
        status: 202,
        render: Arc::new(render_transfer),
    };
    match TransferRepository::create(rig.store.as_ref(), org, request, &alice(), &done)
        .await
        .unwrap()
    {
        Resolved::Done(t) => t,
        Resolved::Refused(e) => panic!("refused: {e:?}"),
    }
}

async fn transfer_status(rig: &Rig, org: OrgId, id: uuid::Uuid) -> TransferStatus {
    TransferRepository::get(rig.store.as_ref(), org, id)
        .await
        .unwrap()
        .status
}

/// A settled transfer's block reorged out: the transfer goes back to
/// `submitted`, its batch's transaction is sent again, and it moves tokens
/// once.
async fn a_reorged_transfer_moves_tokens_once(rig: Rig) {
    let org = org(&rig.store).await;
    let token = deploy(&rig, org, None).await;
    let ana = investor(&rig, org, "Ana Lima", &[w(1)]).await;
    let ben = investor(&rig, org, "Ben Ode", &[w(2)]).await;
    register(&rig, org).await;
    stored(&rig, org, &token, mint(&token, ana, w(1), 100), &alice()).await;
    settle(&rig, org).await;
    index(&rig).await;
    let request = TransferRequest {
        token_id: token.id,
        from: PartyRef::Investor(ana),
        to: PartyRef::Investor(ben),
        amount: Amount::new(U256::from(10u64)),
    };
    let t = transfer(&rig, org, &request).await;
    let compliance = ComplianceFlow::new(rig.store.clone(), None);
    let checked = compliance.step(t.id).await.unwrap();
    assert_eq!(checked.status, TransferStatus::Approved, "{checked:?}");
    let port: Arc<dyn ChainPort> = rig.chain.clone();
    let sub = Submitter {
        txm: rig.txm.clone(),
        txs: rig.store.clone(),
        chain: port.clone(),
    };
    let settlement = SettlementFlow::new(sub, port, rig.store.clone(), rig.store.clone());
    for _ in 0..6 {
        settlement.step(org).await.unwrap();
        if transfer_status(&rig, org, t.id).await == TransferStatus::Confirmed {
            break;
        }
        tick(&rig).await;
    }
    assert_eq!(
        transfer_status(&rig, org, t.id).await,
        TransferStatus::Confirmed
    );
    // The block holding it and the one above.
    rig.chain.rollback(2).await.unwrap();
    rig.txm.tick().await;
    settlement.step(org).await.unwrap();
    assert_eq!(
        transfer_status(&rig, org, t.id).await,
        TransferStatus::Submitted
    );
    for _ in 0..40 {
        if settlement.step(org).await.unwrap() == Settled::Idle {
            break;
        }
        tick(&rig).await;
    }
    assert_eq!(
        transfer_status(&rig, org, t.id).await,
        TransferStatus::Settled
    );
    assert_eq!(balance(&rig, &token, w(2)).await, 10, "moved once");
    assert_eq!(balance(&rig, &token, w(1)).await, 90);
}

#[tokio::test]
async fn a_reorged_transfer_moves_tokens_once_on_the_devnet() {
    a_reorged_transfer_moves_tokens_once(rig(devnet().await).await).await;
}

#[tokio::test]
async fn a_reorged_transfer_moves_tokens_once_on_anvil() {
    a_reorged_transfer_moves_tokens_once(rig(anvil()).await).await;
}
