//! Token deployment end to end, in process: the real store (SQLite or
//! PostgreSQL, per `RWA_TEST_DATABASE`), the transaction manager, and a real
//! chain — the embedded devnet and anvil — driven step by step. What the
//! contracts hold afterwards is read back from the chain.

use std::sync::Arc;

use alloy::sol_types::SolCall;
use rwa_chain::ChainControl;
use rwa_chain::contracts::{self, Compliance, IdentityRegistry, SecurityToken, roles};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_chain::rpc::{RpcChain, RpcConfig};
use rwa_chain::signer::LocalSigner;
use rwa_chain::txm::{TxManager, TxManagerConfig};
use rwa_domain::api_key::NewApiKey;
use rwa_domain::chain::{Address, BlockTag, Bytes, ChainPort, U256};
use rwa_domain::org::OrgName;
use rwa_domain::ports::{EventLog, OrgRepository};
use rwa_domain::token::{
    ComplianceDraft, NewToken, Token, TokenDraft, TokenRepository, TokenStatus,
};
use rwa_domain::tx::{Lane, Signer, TxRequest, TxState, TxStore};
use rwa_domain::{Actor, OrgId, Role};
use rwa_flows::deployment::{BIND_TOKEN_GAS, GRANT_ROLE_GAS, Progress, TOKEN_ROLES, TokenDeployer};
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
    _db: TestDatabase,
    _anvil: Option<Anvil>,
}

fn key(hex: &str) -> Arc<dyn Signer> {
    Arc::new(LocalSigner::from_hex(hex).unwrap())
}

/// One key for every lane (the default configuration).
fn one_key() -> Vec<(Lane, Arc<dyn Signer>)> {
    Lane::ALL.iter().map(|l| (*l, key(DEV_KEY_0))).collect()
}

/// A key per lane class, as `RWA_SIGNER_{LANE}_KEY` configures.
fn lane_keys() -> Vec<(Lane, Arc<dyn Signer>)> {
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

async fn rig(
    (chain, anvil): (Arc<dyn Chain>, Option<Anvil>),
    lanes: Vec<(Lane, Arc<dyn Signer>)>,
) -> Rig {
    let db = TestDatabase::create().await;
    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let port: Arc<dyn ChainPort> = chain.clone();
    let txm = Arc::new(
        TxManager::new(
            port.clone(),
            store.clone(),
            lanes,
            TxManagerConfig {
                confirmations: 2,
                ..TxManagerConfig::default()
            },
        )
        .await
        .unwrap(),
    );
    let deployer = TokenDeployer::new(txm.clone(), store.clone(), port, store.clone());
    Rig {
        chain,
        store,
        txm,
        deployer,
        _db: db,
        _anvil: anvil,
    }
}

async fn org(store: &Store, name: &str) -> OrgId {
    let (key, _) = NewApiKey::generate(Role::Admin, None);
    store
        .system_create_with_key(&OrgName::parse(name).unwrap(), &key, &Actor::CLI)
        .await
        .unwrap()
        .id
}

fn draft(symbol: &str) -> TokenDraft {
    TokenDraft {
        name: format!("{symbol} Fund"),
        symbol: symbol.into(),
        decimals: 6,
        compliance: Some(ComplianceDraft {
            country_allow: vec!["FR".into(), "DE".into()],
            country_block: vec!["KP".into()],
            max_balance_per_investor: Some("5000000000".into()),
            max_holders: Some(150),
            lockup_seconds: Some(86_400),
        }),
    }
}

async fn issue(rig: &Rig, org: OrgId, symbol: &str) -> Token {
    let token = NewToken::parse(&draft(symbol)).unwrap();
    TokenRepository::create(rig.store.as_ref(), org, &token, &Actor::CLI)
        .await
        .unwrap()
}

/// Steps the deployment, the senders and the chain until the token is final.
async fn deploy(rig: &Rig, token: &Token) -> Token {
    for _ in 0..40 {
        match rig.deployer.step(token.id).await.unwrap() {
            Progress::Deployed(t) | Progress::Failed(t) | Progress::Finished(t) => return t,
            Progress::Waiting { .. } => {}
        }
        rig.txm.tick().await;
        rig.chain.mine(1).await.unwrap();
    }
    panic!("token {} never finished deploying", token.id);
}

async fn call<C: SolCall>(chain: &dyn Chain, to: Address, call: C) -> C::Return {
    contracts::view(chain, to, &call, BlockTag::Latest)
        .await
        .unwrap()
}

/// Everything a deployed token must hold on-chain.
async fn assert_on_chain(rig: &Rig, token: &Token) {
    let d = token.deployment.as_ref().expect("deployed");
    let chain = rig.chain.as_ref();
    let at = d.address;
    assert_eq!(
        call(chain, at, SecurityToken::nameCall {}).await,
        token.name
    );
    assert_eq!(
        call(chain, at, SecurityToken::symbolCall {}).await,
        token.symbol
    );
    assert_eq!(call(chain, at, SecurityToken::decimalsCall {}).await, 6);
    assert_eq!(
        call(chain, at, SecurityToken::identityRegistryCall {}).await,
        d.identity_registry
    );
    assert_eq!(
        call(chain, at, SecurityToken::complianceCall {}).await,
        d.compliance
    );
    assert_eq!(
        call(chain, d.compliance, Compliance::tokenCall {}).await,
        at
    );
    assert_eq!(
        call(chain, d.compliance, Compliance::maxHoldersCall {}).await,
        U256::from(150)
    );
    for (role, lane) in TOKEN_ROLES {
        let account = rig.txm.address(lane).unwrap();
        assert!(
            call(
                chain,
                at,
                SecurityToken::hasRoleCall {
                    role: contracts::role(role),
                    account
                }
            )
            .await,
            "{role} granted to the {lane} lane"
        );
    }
    let registrar = rig.txm.address(Lane::Admin).unwrap();
    assert!(
        call(
            chain,
            d.identity_registry,
            IdentityRegistry::hasRoleCall {
                role: contracts::role(roles::REGISTRAR),
                account: registrar
            }
        )
        .await,
        "the admin lane registers investors"
    );
    let receipt = chain.receipt(d.deploy_tx_hash).await.unwrap().unwrap();
    assert_eq!(receipt.contract_address, Some(at));
    assert_eq!(receipt.block_number, d.block_number);

    // The fixed gas limits of calls to contracts not yet mined keep a margin
    // of at least two over what they use.
    let used = async |key: String| {
        let tx = rig.store.find_by_key(&key).await.unwrap().expect(&key);
        tx.inclusion.expect("mined").gas_used
    };
    let bind = used(format!("token:{}:bind-compliance", token.id)).await;
    assert!(bind * 2 <= BIND_TOKEN_GAS, "bindToken used {bind}");
    for (role, lane) in TOKEN_ROLES {
        let account = rig.txm.address(lane).unwrap();
        let grant = used(format!("token:{}:grant:{role}:{account:#x}", token.id)).await;
        assert!(grant * 2 <= GRANT_ROLE_GAS, "grantRole {role} used {grant}");
    }
}

async fn two_tokens_share_the_organizations_registry(rig: Rig) {
    let org = org(&rig.store, "Acme").await;
    let first = issue(&rig, org, "ACME").await;
    assert_eq!(first.status, TokenStatus::PendingDeployment);
    let second = issue(&rig, org, "ACME2").await;
    let first = deploy(&rig, &first).await;
    let second = deploy(&rig, &second).await;
    assert_eq!(first.status, TokenStatus::Deployed, "{first:?}");
    assert_eq!(second.status, TokenStatus::Deployed, "{second:?}");
    let (a, b) = (
        first.deployment.clone().unwrap(),
        second.deployment.clone().unwrap(),
    );
    assert_eq!(
        a.identity_registry, b.identity_registry,
        "one registry per organization"
    );
    assert_ne!(a.address, b.address);
    assert_ne!(
        a.compliance, b.compliance,
        "one compliance contract per token"
    );
    assert_on_chain(&rig, &first).await;
    assert_on_chain(&rig, &second).await;

    let events = EventLog::list(rig.store.as_ref(), org, 0, 10, None)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["token.deployed", "token.deployed"]);
    assert_eq!(events[1].seq, events[0].seq + 1);
    assert_eq!(events[0].data["token"]["id"], first.id.to_string());

    // A step after the end changes nothing and emits nothing.
    assert!(matches!(
        rig.deployer.step(first.id).await.unwrap(),
        Progress::Finished(_)
    ));
    assert_eq!(
        EventLog::list(rig.store.as_ref(), org, 0, 10, None)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn tokens_deploy_on_the_devnet() {
    two_tokens_share_the_organizations_registry(rig(devnet().await, one_key()).await).await;
}

#[tokio::test]
async fn tokens_deploy_on_anvil() {
    two_tokens_share_the_organizations_registry(rig(anvil(), one_key()).await).await;
}

#[tokio::test]
async fn each_lane_gets_its_roles_when_lanes_have_their_own_keys() {
    let rig = rig(devnet().await, lane_keys()).await;
    let org = org(&rig.store, "Acme").await;
    let token = issue(&rig, org, "ACME").await;
    let token = deploy(&rig, &token).await;
    assert_eq!(token.status, TokenStatus::Deployed, "{token:?}");
    assert_on_chain(&rig, &token).await;
}

#[tokio::test]
async fn a_reorg_that_drops_the_deployment_rebroadcasts_it_and_it_settles_once() {
    let rig = rig(devnet().await, one_key()).await;
    let org = org(&rig.store, "Acme").await;
    let token = issue(&rig, org, "ACME").await;
    // Submit everything and mine it once: confirmed, not settled.
    assert!(matches!(
        rig.deployer.step(token.id).await.unwrap(),
        Progress::Waiting { .. }
    ));
    rig.txm.tick().await;
    rig.chain.mine(1).await.unwrap();
    rig.txm.tick().await;
    let deployer = rig.txm.address(Lane::Deploy).unwrap();
    let open = rig.store.open_for(31337, deployer).await.unwrap();
    assert!(!open.is_empty());
    assert!(
        open.iter().all(|t| t.state == TxState::Confirmed),
        "{open:?}"
    );
    let mined_in = open[0].inclusion.as_ref().unwrap().block_number;

    // The block with the whole deployment is replaced by an empty one.
    let head = rig.chain.block_number(BlockTag::Latest).await.unwrap();
    rig.chain
        .reorg(head - mined_in + 1, Vec::new())
        .await
        .unwrap();
    rig.txm.tick().await;
    let after = rig.store.open_for(31337, deployer).await.unwrap();
    assert!(
        after.iter().all(|t| t.state == TxState::Submitted),
        "back to submitted after the reorg: {after:?}"
    );

    let token = deploy(&rig, &token).await;
    assert_eq!(token.status, TokenStatus::Deployed, "{token:?}");
    assert_on_chain(&rig, &token).await;
    let nonce = rig.chain.nonce(deployer, BlockTag::Latest).await.unwrap();
    assert_eq!(
        nonce as usize,
        open.len(),
        "every transaction mined exactly once, nothing else sent"
    );
}

#[tokio::test]
async fn a_failed_transaction_fails_the_token_with_its_reason() {
    let rig = rig(devnet().await, one_key()).await;
    let org = org(&rig.store, "Acme").await;
    let token = issue(&rig, org, "ACME").await;
    // The binding step's key is taken by a transaction that reverts (init
    // code that is the INVALID opcode), as a binding that reverts would be.
    rig.txm
        .submit(&TxRequest {
            key: format!("token:{}:bind-compliance", token.id),
            lane: Lane::Deploy,
            to: None,
            value: U256::ZERO,
            input: Bytes::from(vec![0xfe]),
            gas_limit: 100_000,
        })
        .await
        .unwrap();
    let token = deploy(&rig, &token).await;
    assert_eq!(token.status, TokenStatus::Failed, "{token:?}");
    let reason = token.failure_reason.clone().unwrap();
    assert!(reason.contains("compliance binding"), "{reason}");
    let events = EventLog::list(rig.store.as_ref(), org, 0, 10, None)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "token.failed");

    // The symbol is free again for a new attempt.
    let retry = issue(&rig, org, "ACME").await;
    assert_eq!(retry.status, TokenStatus::PendingDeployment);
}
