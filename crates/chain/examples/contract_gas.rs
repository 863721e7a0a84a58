//! Gas used by each operation of the platform's contracts, measured from the
//! receipts of real transactions on the devnet (persistence on, Prague, the
//! committed artifacts). Run by `bench/contract-gas.sh`; figures recorded in
//! docs/benchmarks.md.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use rwa_chain::contracts::{
    self, Compliance, ComplianceParams, IdentityRegistry, SecurityToken, roles,
};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_domain::chain::{BlockTag, ChainPort, Receipt};

const BATCH: usize = 100;

struct Bench {
    chain: std::sync::Arc<Devnet>,
    admin: PrivateKeySigner,
}

impl Bench {
    async fn send(&self, to: TxKind, input: Bytes) -> Receipt {
        let nonce = self
            .chain
            .nonce(self.admin.address(), BlockTag::Pending)
            .await
            .unwrap();
        let mut tx = TxEip1559 {
            chain_id: 31337,
            nonce,
            gas_limit: 25_000_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value: U256::ZERO,
            input,
            access_list: Default::default(),
        };
        let sig = self.admin.sign_transaction_sync(&mut tx).unwrap();
        let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
        let hash = self.chain.send_raw_transaction(raw.into()).await.unwrap();
        let receipt = self.chain.receipt(hash).await.unwrap().expect("automined");
        assert!(receipt.success, "transaction succeeded");
        receipt
    }

    async fn deploy(&self, code: Bytes) -> (Address, u64) {
        let r = self.send(TxKind::Create, code).await;
        (r.contract_address.unwrap(), r.gas_used)
    }

    async fn call<C: SolCall>(&self, to: Address, call: C) -> u64 {
        self.send(TxKind::Call(to), call.abi_encode().into())
            .await
            .gas_used
    }
}

fn wallet(i: usize) -> Address {
    Address::left_padding_from(&(0x1000 + i as u64).to_be_bytes())
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let admin = PrivateKeySigner::random();
    let chain = Devnet::open(DevnetConfig {
        db_path: Some(dir.path().join("devnet.db")),
        block_interval: None,
        automine: true,
        genesis_accounts: vec![(admin.address(), U256::from(10u64).pow(U256::from(21u64)))],
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let b = Bench { chain, admin };
    let me = b.admin.address();
    let mut rows: Vec<(String, u64)> = Vec::new();

    let (registry, g) = b.deploy(contracts::identity_registry_init_code(me)).await;
    rows.push(("identity registry deploy (once per organization)".into(), g));
    let rules = ComplianceParams {
        allow_countries: vec![250, 276, 442],
        block_countries: vec![408],
        max_balance_per_investor: U256::from(10u64).pow(U256::from(24u64)),
        max_holders: U256::from(500u64),
        lockup_seconds: 0,
    };
    let (compliance, g_compliance) = b
        .deploy(contracts::compliance_init_code(me, registry, &rules))
        .await;
    let (token, g_token) = b
        .deploy(contracts::security_token_init_code(
            "Bench Fund",
            "BENCH",
            6,
            registry,
            compliance,
            me,
        ))
        .await;
    let g_bind = b
        .call(compliance, Compliance::bindTokenCall { token_: token })
        .await;
    let mut g_grants = 0;
    for role in [
        roles::SUPPLY,
        roles::TRANSFER_MANAGER,
        roles::FREEZE,
        roles::PAUSER,
        roles::RECOVERY,
    ] {
        g_grants += b
            .call(
                token,
                SecurityToken::grantRoleCall {
                    role: contracts::role(role),
                    account: me,
                },
            )
            .await;
    }
    rows.push((
        "compliance deploy (3 allowed, 1 blocked country)".into(),
        g_compliance,
    ));
    rows.push(("token deploy".into(), g_token));
    rows.push(("bindToken".into(), g_bind));
    rows.push(("5 role grants".into(), g_grants));
    rows.push((
        "deploy suite per token (compliance + token + bind + grants)".into(),
        g_compliance + g_token + g_bind + g_grants,
    ));

    let sender = wallet(0);
    let one = b
        .call(
            registry,
            IdentityRegistry::registerIdentityCall {
                wallet: sender,
                investorId: B256::repeat_byte(1),
                country: 250,
                expiresAt: 4_000_000_000,
            },
        )
        .await;
    rows.push(("registerIdentity".into(), one));
    let receivers: Vec<Address> = (1..=BATCH).map(wallet).collect();
    let batch_register = b
        .call(
            registry,
            IdentityRegistry::batchRegisterIdentityCall {
                wallets: receivers.clone(),
                investorIds: (1..=BATCH)
                    .map(|i| B256::left_padding_from(&(i as u64 + 100).to_be_bytes()))
                    .collect(),
                countries: vec![276; BATCH],
                expiries: vec![4_000_000_000; BATCH],
            },
        )
        .await;
    rows.push((
        format!("batchRegisterIdentity of {BATCH}, per identity"),
        batch_register / BATCH as u64,
    ));

    let first_mint = b
        .call(
            token,
            SecurityToken::mintCall {
                to: sender,
                amount: U256::from(1_000_000u64),
            },
        )
        .await;
    let next_mint = b
        .call(
            token,
            SecurityToken::mintCall {
                to: sender,
                amount: U256::from(1_000_000u64),
            },
        )
        .await;
    rows.push(("mint to a new holder".into(), first_mint));
    rows.push(("mint to an existing holder".into(), next_mint));

    let agent_new = b
        .call(
            token,
            SecurityToken::agentTransferCall {
                from: sender,
                to: receivers[0],
                amount: U256::from(10u64),
            },
        )
        .await;
    let agent_existing = b
        .call(
            token,
            SecurityToken::agentTransferCall {
                from: sender,
                to: receivers[0],
                amount: U256::from(10u64),
            },
        )
        .await;
    rows.push(("agentTransfer to a new holder".into(), agent_new));
    rows.push(("agentTransfer to an existing holder".into(), agent_existing));
    let batch = b
        .call(
            token,
            SecurityToken::batchAgentTransferCall {
                froms: vec![sender; BATCH],
                tos: receivers.clone(),
                amounts: vec![U256::from(7u64); BATCH],
            },
        )
        .await;
    rows.push((
        format!("batchAgentTransfer of {BATCH} (99 new holders)"),
        batch,
    ));
    rows.push((
        format!("batchAgentTransfer of {BATCH}, per transfer"),
        batch / BATCH as u64,
    ));
    let view = SecurityToken::canTransferCall {
        from: sender,
        to: receivers[5],
        amount: U256::from(1u64),
    };
    let estimate = b
        .chain
        .estimate_gas(&rwa_domain::chain::CallRequest {
            from: Some(me),
            to: Some(token),
            input: view.abi_encode().into(),
            value: U256::ZERO,
            gas: None,
        })
        .await
        .unwrap();
    rows.push(("canTransfer (eth_call, estimated)".into(), estimate));

    println!("| operation | gas |");
    println!("|---|---|");
    for (what, gas) in rows {
        println!("| {what} | {gas} |");
    }
    b.chain.shutdown().await;
}
