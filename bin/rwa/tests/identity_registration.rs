//! Investors' wallets in the organization's identity registry, end to end in
//! process: the real store (SQLite or PostgreSQL, per `RWA_TEST_DATABASE`),
//! the transaction manager, the identity flow, and a real chain (the
//! embedded devnet and anvil), driven step by step. What the registry holds
//! is read back from the chain through its `identity(wallet)` view.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rwa_chain::ChainControl;
use rwa_chain::contracts::{self, IdentityRegistry};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_chain::txm::{TxManager, TxManagerConfig};
use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, B256, BlockTag, ChainPort, U256};
use rwa_domain::identity::{IdentityRepository, RegistrationStatus, investor_hash};
use rwa_domain::investor::{
    Investor, InvestorDraft, InvestorPatch, InvestorRepository, KycDecision, KycStatus, NewInvestor,
};
use rwa_domain::org::OrgName;
use rwa_domain::pii::PiiKeys;
use rwa_domain::ports::{EventLog, OrgRepository};
use rwa_domain::token::TokenRepository;
use rwa_domain::tx::{Lane, Signer, TxRequest};
use rwa_domain::{Actor, InvestorId, OrgId, Role};
use rwa_flows::identity::{IdentitySync, SyncProgress};
use rwa_flows::submit::Submitter;
use rwa_store::{Store, StoreOptions};
use rwa_testkit::anvil::{DEV_KEY_0, DEV_KEY_2};
use rwa_testkit::{Anvil, TestDatabase};

trait Chain: ChainPort + ChainControl {}
impl<T: ChainPort + ChainControl> Chain for T {}

struct Rig {
    chain: Arc<dyn Chain>,
    store: Arc<Store>,
    txm: Arc<TxManager>,
    sync: IdentitySync,
    _db: TestDatabase,
    _anvil: Option<Anvil>,
}

fn key(hex: &str) -> Arc<dyn Signer> {
    Arc::new(LocalSigner::from_hex(hex).unwrap())
}

/// The admin lane (registrations) has its own key, as in production.
fn lanes() -> Vec<(Lane, Arc<dyn Signer>)> {
    vec![
        (Lane::Deploy, key(DEV_KEY_0)),
        (Lane::Mint, key(DEV_KEY_0)),
        (Lane::Settlement, key(DEV_KEY_0)),
        (Lane::Admin, key(DEV_KEY_2)),
    ]
}

async fn devnet() -> (Arc<dyn Chain>, Option<Anvil>) {
    let ether = U256::from(10u64).pow(U256::from(18u64));
    let funded = [DEV_KEY_0, DEV_KEY_2]
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
        b"identity-test-secret-0123456789abcdef",
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
        chain: port,
    };
    let sync = IdentitySync::new(sub, store.clone(), store.clone());
    Rig {
        chain,
        store,
        txm,
        sync,
        _db: db,
        _anvil: anvil,
    }
}

async fn org(store: &Store) -> OrgId {
    let (key, _) = NewApiKey::generate(Role::Admin, None);
    store
        .system_create_with_key(&OrgName::parse("Acme").unwrap(), &key, &Actor::CLI)
        .await
        .unwrap()
        .id
}

async fn onboard(rig: &Rig, org: OrgId, name: &str, country: &str) -> InvestorId {
    let draft = InvestorDraft {
        name: name.into(),
        email: format!("{}@example.com", name.to_lowercase().replace(' ', ".")),
        country: country.into(),
        kind: "individual".into(),
        accredited: true,
        accreditation_expires_at: None,
        external_ref: None,
    };
    let new = NewInvestor::parse(&draft, Utc::now()).unwrap();
    InvestorRepository::create(rig.store.as_ref(), org, &new, &Actor::CLI)
        .await
        .unwrap()
        .id
}

fn wallet(n: u8) -> Address {
    Address::repeat_byte(n)
}

async fn investor(rig: &Rig, org: OrgId, id: InvestorId) -> Investor {
    InvestorRepository::get(rig.store.as_ref(), org, id)
        .await
        .unwrap()
}

async fn approve(rig: &Rig, org: OrgId, id: InvestorId, until: DateTime<Utc>) -> Investor {
    rig.store
        .decide_kyc(
            org,
            id,
            KycDecision::Approve { expires_at: until },
            "documents verified",
            &Actor::CLI,
        )
        .await
        .unwrap()
}

/// A whole second: the registry keeps unix seconds.
fn in_days(days: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() + days * 86_400, 0).unwrap()
}

/// Steps the flow, the senders and the chain until the sync is over.
async fn sync(rig: &Rig, org: OrgId) {
    for _ in 0..60 {
        if rig.sync.step(org).await.unwrap() == SyncProgress::Idle {
            return;
        }
        rig.txm.tick().await;
        rig.chain.mine(1).await.unwrap();
    }
    panic!("the identity sync never finished");
}

async fn registry(rig: &Rig, org: OrgId) -> Address {
    rig.store
        .system_identity_registry(org, rig.txm.chain_id())
        .await
        .unwrap()
        .expect("the registry is recorded")
}

/// `identity(wallet)` as the registry answers it.
async fn on_chain(rig: &Rig, org: OrgId, w: Address) -> (B256, u16, u64) {
    let r = contracts::view(
        rig.chain.as_ref(),
        registry(rig, org).await,
        &IdentityRegistry::identityCall { wallet: w },
        BlockTag::Latest,
    )
    .await
    .unwrap();
    (r.investorId, r.country, r.expiresAt)
}

fn status_of(i: &Investor, w: Address) -> Option<RegistrationStatus> {
    i.registrations
        .iter()
        .find(|r| r.address == w)
        .map(|r| r.status)
}

async fn lifecycle(rig: Rig) {
    let org = org(&rig.store).await;
    let ana = onboard(&rig, org, "Ana Lima", "FR").await;
    for w in [wallet(1), wallet(2)] {
        rig.store
            .add_wallet(org, ana, w, &Actor::CLI)
            .await
            .unwrap();
    }
    // Pending KYC: nothing for the registry, and no registry yet.
    assert!(investor(&rig, org, ana).await.registrations.is_empty());
    assert_eq!(
        rig.store
            .system_identity_registry(org, rig.txm.chain_id())
            .await
            .unwrap(),
        None
    );

    // Approval: both wallets in one batch, the registry deployed first.
    let until = in_days(365);
    let approved = approve(&rig, org, ana, until).await;
    assert_eq!(
        status_of(&approved, wallet(1)),
        Some(RegistrationStatus::Pending)
    );
    let formed = rig.store.system_form_batches(org, 200).await.unwrap();
    assert_eq!(formed.len(), 1, "one batch for both wallets: {formed:?}");
    assert_eq!(formed[0].items.len(), 2);
    // The batch is stored before its transaction exists (a crash here):
    // the next step submits it once.
    sync(&rig, org).await;
    let ana_hash = investor_hash(ana);
    for w in [wallet(1), wallet(2)] {
        assert_eq!(
            on_chain(&rig, org, w).await,
            (ana_hash, 250, until.timestamp() as u64)
        );
    }
    let shown = investor(&rig, org, ana).await;
    assert_eq!(
        status_of(&shown, wallet(1)),
        Some(RegistrationStatus::Registered)
    );
    let admin = rig.txm.address(Lane::Admin).unwrap();
    assert_eq!(
        rig.chain.nonce(admin, BlockTag::Latest).await.unwrap(),
        1,
        "two wallets, one transaction"
    );

    // A wallet added to an approved investor is registered.
    rig.store
        .add_wallet(org, ana, wallet(3), &Actor::CLI)
        .await
        .unwrap();
    sync(&rig, org).await;
    assert_eq!(on_chain(&rig, org, wallet(3)).await.0, ana_hash);

    // A country change is an update, in place.
    let patch = InvestorPatch {
        country: Some(rwa_domain::country::Country::parse("DE", "country").unwrap()),
        ..InvestorPatch::default()
    };
    rig.store
        .update(org, ana, &patch, &Actor::CLI)
        .await
        .unwrap();
    sync(&rig, org).await;
    for w in [wallet(1), wallet(2), wallet(3)] {
        assert_eq!(on_chain(&rig, org, w).await.1, 276, "updated to Germany");
    }

    // A removed wallet leaves the registry, and shows as removed.
    rig.store
        .remove_wallet(org, ana, wallet(2), &Actor::CLI)
        .await
        .unwrap();
    sync(&rig, org).await;
    assert_eq!(on_chain(&rig, org, wallet(2)).await.0, B256::ZERO);
    let shown = investor(&rig, org, ana).await;
    assert_eq!(
        status_of(&shown, wallet(2)),
        Some(RegistrationStatus::Removed)
    );
    assert_eq!(shown.wallets.len(), 2);

    // A rejection removes every wallet; a new approval brings them back.
    rig.store
        .decide_kyc(
            org,
            ana,
            KycDecision::Reject,
            "documents revoked",
            &Actor::CLI,
        )
        .await
        .unwrap();
    sync(&rig, org).await;
    for w in [wallet(1), wallet(3)] {
        assert_eq!(on_chain(&rig, org, w).await.0, B256::ZERO);
    }
    let renewed = in_days(30);
    approve(&rig, org, ana, renewed).await;
    sync(&rig, org).await;
    assert_eq!(
        on_chain(&rig, org, wallet(1)).await,
        (ana_hash, 276, renewed.timestamp() as u64)
    );

    // A wallet moved to another investor: removed, then registered for them.
    let ben = onboard(&rig, org, "Ben Okafor", "NG").await;
    approve(&rig, org, ben, in_days(90)).await;
    rig.store
        .remove_wallet(org, ana, wallet(3), &Actor::CLI)
        .await
        .unwrap();
    rig.store
        .add_wallet(org, ben, wallet(3), &Actor::CLI)
        .await
        .unwrap();
    sync(&rig, org).await;
    assert_eq!(
        on_chain(&rig, org, wallet(3)).await.0,
        investor_hash(ben),
        "the wallet now belongs to Ben on-chain"
    );
    assert_eq!(
        status_of(&investor(&rig, org, ben).await, wallet(3)),
        Some(RegistrationStatus::Registered)
    );

    // KYC expiry: the sweep expires the approval and the wallet leaves.
    let soon = DateTime::from_timestamp(Utc::now().timestamp() + 2, 0).unwrap();
    approve(&rig, org, ben, soon).await;
    sync(&rig, org).await;
    assert_eq!(
        on_chain(&rig, org, wallet(3)).await.2,
        soon.timestamp() as u64
    );
    wait_for_sweep(&rig, |r| r.kyc_expired >= 1).await;
    let expired = investor(&rig, org, ben).await;
    assert_eq!(expired.kyc_status, KycStatus::Expired);
    sync(&rig, org).await;
    assert_eq!(on_chain(&rig, org, wallet(3)).await.0, B256::ZERO);

    let kinds: Vec<String> = EventLog::list(rig.store.as_ref(), org, 0, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"investor.kyc_expired".to_owned()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"investor.updated".to_owned()), "{kinds:?}");
}

/// Sweeps until `done` holds for a sweep's report (the expiry has to pass
/// first); bounded, so a sweep that never expires anything fails the test.
async fn wait_for_sweep(rig: &Rig, done: impl Fn(&rwa_domain::identity::SweepReport) -> bool) {
    for _ in 0..100 {
        let report = rig.store.system_sweep_expiries().await.unwrap();
        if done(&report) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sweep never expired anything");
}

#[tokio::test]
async fn investor_lifecycle_on_the_devnet() {
    lifecycle(rig(devnet().await).await).await;
}

#[tokio::test]
async fn investor_lifecycle_on_anvil() {
    lifecycle(rig(anvil()).await).await;
}

#[tokio::test]
async fn a_refused_wallet_fails_alone_and_the_others_register() {
    let rig = rig(devnet().await).await;
    let org = org(&rig.store).await;
    let ana = onboard(&rig, org, "Ana Lima", "FR").await;
    approve(&rig, org, ana, in_days(365)).await;
    sync(&rig, org).await; // deploys the registry; Ana has no wallet yet
    let registry = registry(&rig, org).await;
    // Wallet 9 is registered behind the platform's back.
    rig.txm
        .submit(&TxRequest {
            key: "outside".into(),
            lane: Lane::Admin,
            to: Some(registry),
            value: U256::ZERO,
            input: contracts::input(&IdentityRegistry::registerIdentityCall {
                wallet: wallet(9),
                investorId: B256::repeat_byte(7),
                country: 250,
                expiresAt: u64::MAX,
            }),
            gas_limit: 200_000,
        })
        .await
        .unwrap();
    for _ in 0..4 {
        rig.txm.tick().await;
        rig.chain.mine(1).await.unwrap();
    }
    for w in [wallet(8), wallet(9)] {
        rig.store
            .add_wallet(org, ana, w, &Actor::CLI)
            .await
            .unwrap();
    }
    sync(&rig, org).await;
    let shown = investor(&rig, org, ana).await;
    assert_eq!(
        status_of(&shown, wallet(8)),
        Some(RegistrationStatus::Registered),
        "{shown:?}"
    );
    let refused = shown
        .registrations
        .iter()
        .find(|r| r.address == wallet(9))
        .unwrap();
    assert_eq!(refused.status, RegistrationStatus::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains("AlreadyRegistered"),
        "{refused:?}"
    );
    assert_eq!(on_chain(&rig, org, wallet(8)).await.0, investor_hash(ana));
}

#[tokio::test]
async fn the_sweep_ends_lapsed_accreditations() {
    let rig = rig(devnet().await).await;
    let org = org(&rig.store).await;
    let draft = InvestorDraft {
        name: "Cleo Park".into(),
        email: "cleo@example.com".into(),
        country: "KR".into(),
        kind: "entity".into(),
        accredited: true,
        accreditation_expires_at: Some(Utc::now() + TimeDelta::seconds(1)),
        external_ref: None,
    };
    let new = NewInvestor::parse(&draft, Utc::now()).unwrap();
    let cleo = InvestorRepository::create(rig.store.as_ref(), org, &new, &Actor::CLI)
        .await
        .unwrap();
    assert!(cleo.accreditation.accredited);
    wait_for_sweep(&rig, |r| r.accreditation_lapsed >= 1).await;
    let cleo = investor(&rig, org, cleo.id).await;
    assert!(!cleo.accreditation.accredited);
    assert!(
        cleo.accreditation.expires_at.is_some(),
        "kept for the record"
    );
    let events = EventLog::list(rig.store.as_ref(), org, 0, 10, None)
        .await
        .unwrap();
    assert_eq!(
        events.last().unwrap().kind,
        "investor.accreditation_expired"
    );
}

/// Pending registrations of `org` not yet in a batch, and whether its sync
/// is on (then a sync job was enqueued when it turned on).
async fn stranded(rig: &Rig, org: OrgId) -> (i64, bool) {
    use sqlx::Connection;
    let url = &rig._db.url;
    let pending = "SELECT COUNT(*) FROM identity_registrations \
                   WHERE org_id = $1 AND status = 'pending' AND batch_id IS NULL";
    let active = "SELECT active FROM flow_syncs WHERE flow = 'identity' AND org_id = $1";
    // The same two reads on whichever backend the test runs.
    macro_rules! read {
        ($conn:ty) => {{
            let mut c = <$conn>::connect(url).await.unwrap();
            let p: i64 = sqlx::query_scalar(pending)
                .bind(org.as_uuid())
                .fetch_one(&mut c)
                .await
                .unwrap();
            let a: Option<bool> = sqlx::query_scalar(active)
                .bind(org.as_uuid())
                .fetch_optional(&mut c)
                .await
                .unwrap();
            (p, a.unwrap_or(false))
        }};
    }
    if url.starts_with("sqlite:") {
        read!(sqlx::SqliteConnection)
    } else {
        read!(sqlx::PgConnection)
    }
}

/// Approvals committing while the flow keeps finishing its sync: after
/// every step, a pending registration outside a batch always has the sync on
/// (so a job runs for it); none is stranded behind a sync that ended.
#[tokio::test]
async fn changes_racing_the_end_of_a_sync_are_never_stranded() {
    let rig = Arc::new(rig(devnet().await).await);
    let org = org(&rig.store).await;
    let first = onboard(&rig, org, "Ana Lima", "FR").await;
    approve(&rig, org, first, in_days(365)).await;
    sync(&rig, org).await; // the registry exists from here on
    let writers = {
        let rig = rig.clone();
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..60u8 {
                let rig = rig.clone();
                tasks.spawn(async move {
                    let id = onboard(&rig, org, &format!("Investor {n}"), "DE").await;
                    rig.store
                        .add_wallet(org, id, wallet(100 + n), &Actor::CLI)
                        .await
                        .unwrap();
                    approve(&rig, org, id, in_days(365)).await;
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        })
    };
    let mut idle_with_work = 0;
    while !writers.is_finished() {
        if rig.sync.step(org).await.unwrap() == SyncProgress::Idle {
            let (pending, active) = stranded(&rig, org).await;
            // Work committed after the step's final check must have turned
            // the sync back on.
            if pending > 0 {
                assert!(active, "{pending} registrations pending with the sync off");
                idle_with_work += 1;
            }
        }
        rig.txm.tick().await;
        rig.chain.mine(1).await.unwrap();
    }
    writers.await.unwrap();
    sync(&rig, org).await;
    assert_eq!(stranded(&rig, org).await, (0, false));
    for n in 0..60u8 {
        assert_ne!(on_chain(&rig, org, wallet(100 + n)).await.0, B256::ZERO);
    }
    // Not an assertion (timing decides it), but worth seeing when it runs.
    eprintln!("steps that ended the sync while new work was committing: {idle_with_work}");
}
