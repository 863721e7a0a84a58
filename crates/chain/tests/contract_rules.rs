//! The security-token contracts' rules, exercised from Rust against the real
//! bytecode (the committed artifacts) on the embedded devnet: every reason code
//! of `canTransfer` and the same code in the revert of every transfer path,
//! roles, supply, freezes, forced transfers, recovery, the compliance counters
//! and the identity registry. Time-dependent rules move the chain's clock with
//! `set_next_block_timestamp`, never by sleeping.

use std::sync::Arc;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolError, SolEvent};
use rwa_chain::ChainControl;
use rwa_chain::contracts::{
    self, Compliance, ComplianceParams, IdentityRegistry, ReasonCode, SecurityToken, roles,
};
use rwa_chain::devnet::{Devnet, DevnetConfig};
use rwa_domain::chain::{BlockTag, CallRequest, ChainError, ChainPort, Receipt};

const FR: u16 = 250;
const DE: u16 = 276;
const JP: u16 = 392;
const KP: u16 = 408;
/// Far in the future (2096), for identities that should not expire.
const FAR: u64 = 4_000_000_000;
const MAX_BALANCE: u64 = 1_000;
const MAX_HOLDERS: u64 = 3;
const LOCKUP: u64 = 3_600;

/// Every account of a suite: the platform's role holders and some investors.
struct Keys {
    admin: PrivateKeySigner,
    supply: PrivateKeySigner,
    agent: PrivateKeySigner,
    freezer: PrivateKeySigner,
    pauser: PrivateKeySigner,
    recovery: PrivateKeySigner,
    /// Investor 1, France, two wallets.
    alice: PrivateKeySigner,
    alice2: PrivateKeySigner,
    /// Investor 2, Germany.
    bob: PrivateKeySigner,
    /// Investor 3, Japan.
    carol: PrivateKeySigner,
    /// Investor 4, France (registered later by the tests that need it).
    dave: PrivateKeySigner,
    /// Investor 5, North Korea (blocked).
    eve: PrivateKeySigner,
    /// Never registered.
    frank: PrivateKeySigner,
}

struct Suite {
    chain: Arc<Devnet>,
    k: Keys,
    registry: Address,
    compliance: Address,
    token: Address,
}

fn investor(n: u8) -> B256 {
    B256::repeat_byte(n)
}

impl Suite {
    async fn new() -> Suite {
        let k = Keys {
            admin: PrivateKeySigner::random(),
            supply: PrivateKeySigner::random(),
            agent: PrivateKeySigner::random(),
            freezer: PrivateKeySigner::random(),
            pauser: PrivateKeySigner::random(),
            recovery: PrivateKeySigner::random(),
            alice: PrivateKeySigner::random(),
            alice2: PrivateKeySigner::random(),
            bob: PrivateKeySigner::random(),
            carol: PrivateKeySigner::random(),
            dave: PrivateKeySigner::random(),
            eve: PrivateKeySigner::random(),
            frank: PrivateKeySigner::random(),
        };
        let ether = U256::from(10u64).pow(U256::from(18u64));
        let funded = [
            &k.admin,
            &k.supply,
            &k.agent,
            &k.freezer,
            &k.pauser,
            &k.recovery,
            &k.alice,
            &k.alice2,
            &k.bob,
            &k.carol,
            &k.dave,
            &k.eve,
            &k.frank,
        ]
        .iter()
        .map(|s| (s.address(), ether * U256::from(100u64)))
        .collect();
        let chain = Devnet::open(DevnetConfig {
            block_interval: None,
            automine: true,
            genesis_accounts: funded,
            genesis_timestamp: Some(1_800_000_000),
            ..DevnetConfig::default()
        })
        .await
        .unwrap();
        let mut suite = Suite {
            chain,
            k,
            registry: Address::ZERO,
            compliance: Address::ZERO,
            token: Address::ZERO,
        };
        let admin = suite.k.admin.address();
        suite.registry = suite
            .deploy(contracts::identity_registry_init_code(admin))
            .await;
        suite.compliance = suite
            .deploy(contracts::compliance_init_code(
                admin,
                suite.registry,
                &ComplianceParams {
                    allow_countries: vec![],
                    block_countries: vec![KP],
                    max_balance_per_investor: U256::from(MAX_BALANCE),
                    max_holders: U256::from(MAX_HOLDERS),
                    lockup_seconds: LOCKUP,
                },
            ))
            .await;
        suite.token = suite
            .deploy(contracts::security_token_init_code(
                "Test Fund",
                "TST",
                0,
                suite.registry,
                suite.compliance,
                admin,
            ))
            .await;
        let (compliance, token) = (suite.compliance, suite.token);
        suite
            .ok(
                &suite.k.admin,
                compliance,
                Compliance::bindTokenCall { token_: token },
            )
            .await;
        for (role, who) in [
            (roles::SUPPLY, suite.k.supply.address()),
            (roles::TRANSFER_MANAGER, suite.k.agent.address()),
            (roles::FREEZE, suite.k.freezer.address()),
            (roles::PAUSER, suite.k.pauser.address()),
            (roles::RECOVERY, suite.k.recovery.address()),
        ] {
            suite
                .ok(
                    &suite.k.admin,
                    token,
                    SecurityToken::grantRoleCall {
                        role: contracts::role(role),
                        account: who,
                    },
                )
                .await;
        }
        for (wallet, id, country) in [
            (suite.k.alice.address(), 1, FR),
            (suite.k.alice2.address(), 1, FR),
            (suite.k.bob.address(), 2, DE),
            (suite.k.carol.address(), 3, JP),
            (suite.k.eve.address(), 5, KP),
        ] {
            suite.register(wallet, id, country, FAR).await;
        }
        suite
    }

    async fn send_raw(&self, from: &PrivateKeySigner, to: TxKind, input: Bytes) -> Receipt {
        let nonce = self
            .chain
            .nonce(from.address(), BlockTag::Pending)
            .await
            .unwrap();
        let mut tx = TxEip1559 {
            chain_id: 31337,
            nonce,
            gas_limit: 8_000_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value: U256::ZERO,
            input,
            access_list: Default::default(),
        };
        let sig = from.sign_transaction_sync(&mut tx).unwrap();
        let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
        let hash = self.chain.send_raw_transaction(raw.into()).await.unwrap();
        self.chain.receipt(hash).await.unwrap().expect("automined")
    }

    async fn deploy(&self, init_code: Bytes) -> Address {
        let receipt = self
            .send_raw(&self.k.admin, TxKind::Create, init_code)
            .await;
        assert!(receipt.success, "deployment succeeded");
        receipt.contract_address.unwrap()
    }

    /// Sends a call that must succeed; returns its receipt.
    async fn ok<C: SolCall>(&self, from: &PrivateKeySigner, to: Address, call: C) -> Receipt {
        let input: Bytes = call.abi_encode().into();
        if let Err(e) = self.simulate(from, to, input.clone()).await {
            panic!("{} from {} failed: {e}", C::SIGNATURE, from.address());
        }
        let receipt = self.send_raw(from, TxKind::Call(to), input).await;
        assert!(receipt.success, "{} mined with status 1", C::SIGNATURE);
        receipt
    }

    async fn simulate(
        &self,
        from: &PrivateKeySigner,
        to: Address,
        input: Bytes,
    ) -> Result<Bytes, ChainError> {
        self.chain
            .call(
                &CallRequest {
                    from: Some(from.address()),
                    to: Some(to),
                    input,
                    value: U256::ZERO,
                    gas: Some(8_000_000),
                },
                BlockTag::Latest,
            )
            .await
    }

    /// Sends a call that must revert: its revert data (from the same call
    /// simulated on the state it is mined on) and a mined status 0.
    async fn refused<C: SolCall>(&self, from: &PrivateKeySigner, to: Address, call: C) -> Bytes {
        let input: Bytes = call.abi_encode().into();
        let data = match self.simulate(from, to, input.clone()).await {
            Err(ChainError::Reverted { data, .. }) => data,
            other => panic!("{} was expected to revert: {other:?}", C::SIGNATURE),
        };
        let receipt = self.send_raw(from, TxKind::Call(to), input).await;
        assert!(!receipt.success, "{} mined with status 0", C::SIGNATURE);
        data
    }

    /// The reason code a reverted call carries.
    async fn code<C: SolCall>(&self, from: &PrivateKeySigner, to: Address, call: C) -> ReasonCode {
        let data = self.refused(from, to, call).await;
        ReasonCode::from_revert(&data).unwrap_or_else(|| panic!("not TransferNotAllowed: {data}"))
    }

    async fn view<C: SolCall>(&self, to: Address, call: C) -> C::Return {
        let out = self
            .simulate(&self.k.admin, to, call.abi_encode().into())
            .await
            .unwrap();
        C::abi_decode_returns(&out).unwrap()
    }

    async fn can(&self, from: Address, to: Address, amount: u64) -> ReasonCode {
        let r = self
            .view(
                self.token,
                SecurityToken::canTransferCall {
                    from,
                    to,
                    amount: U256::from(amount),
                },
            )
            .await;
        let code = ReasonCode::from_u8(r.reason).unwrap();
        assert_eq!(r.ok, code == ReasonCode::Ok);
        code
    }

    async fn balance(&self, who: Address) -> u64 {
        self.view(self.token, SecurityToken::balanceOfCall { account: who })
            .await
            .to::<u64>()
    }

    async fn register(&self, wallet: Address, id: u8, country: u16, expires: u64) {
        self.ok(
            &self.k.admin,
            self.registry,
            IdentityRegistry::registerIdentityCall {
                wallet,
                investorId: investor(id),
                country,
                expiresAt: expires,
            },
        )
        .await;
    }

    async fn mint(&self, to: Address, amount: u64) {
        self.ok(
            &self.k.supply,
            self.token,
            SecurityToken::mintCall {
                to,
                amount: U256::from(amount),
            },
        )
        .await;
    }

    async fn now(&self) -> u64 {
        self.chain
            .header(BlockTag::Latest)
            .await
            .unwrap()
            .unwrap()
            .timestamp
    }

    /// Mines an empty block `seconds` after the head.
    async fn advance(&self, seconds: u64) {
        let at = self.now().await + seconds;
        self.chain.set_next_block_timestamp(at).await.unwrap();
        self.chain.mine(1).await.unwrap();
    }

    /// A transfer the rules refuse: `canTransfer` says `code`, and the holder's
    /// `transfer`, the agent's `agentTransfer` and `batchAgentTransfer` each
    /// revert with `TransferNotAllowed(code)`.
    async fn refused_everywhere(
        &self,
        from: &PrivateKeySigner,
        to: Address,
        amount: u64,
        code: ReasonCode,
    ) {
        assert_eq!(
            self.can(from.address(), to, amount).await,
            code,
            "canTransfer"
        );
        let value = U256::from(amount);
        let by_holder = self
            .code(
                from,
                self.token,
                SecurityToken::transferCall { to, amount: value },
            )
            .await;
        assert_eq!(by_holder, code, "transfer");
        let by_agent = self
            .code(
                &self.k.agent,
                self.token,
                SecurityToken::agentTransferCall {
                    from: from.address(),
                    to,
                    amount: value,
                },
            )
            .await;
        assert_eq!(by_agent, code, "agentTransfer");
        let in_batch = self
            .code(
                &self.k.agent,
                self.token,
                SecurityToken::batchAgentTransferCall {
                    froms: vec![from.address()],
                    tos: vec![to],
                    amounts: vec![value],
                },
            )
            .await;
        assert_eq!(in_batch, code, "batchAgentTransfer");
    }
}

#[tokio::test]
async fn every_reason_code_is_reported_by_can_transfer_and_by_every_transfer_path() {
    let s = Suite::new().await;
    let k = &s.k;
    let (alice, bob, carol, eve) = (
        k.alice.address(),
        k.bob.address(),
        k.carol.address(),
        k.eve.address(),
    );
    s.mint(alice, 500).await;
    s.mint(bob, 10).await;
    s.advance(LOCKUP + 1).await;

    // 0: allowed, and each path really moves tokens.
    assert_eq!(s.can(alice, bob, 5).await, ReasonCode::Ok);
    let one = U256::from(1u64);
    s.ok(
        &k.alice,
        s.token,
        SecurityToken::transferCall {
            to: bob,
            amount: one,
        },
    )
    .await;
    s.ok(
        &k.agent,
        s.token,
        SecurityToken::agentTransferCall {
            from: alice,
            to: bob,
            amount: one,
        },
    )
    .await;
    s.ok(
        &k.agent,
        s.token,
        SecurityToken::batchAgentTransferCall {
            froms: vec![alice, alice],
            tos: vec![bob, bob],
            amounts: vec![one, one],
        },
    )
    .await;
    assert_eq!((s.balance(alice).await, s.balance(bob).await), (496, 14));

    // 1: paused.
    s.ok(&k.pauser, s.token, SecurityToken::pauseCall {}).await;
    s.refused_everywhere(&k.alice, bob, 1, ReasonCode::Paused)
        .await;
    s.ok(&k.pauser, s.token, SecurityToken::unpauseCall {})
        .await;

    // 14: the zero address as receiver.
    s.refused_everywhere(&k.alice, Address::ZERO, 1, ReasonCode::InvalidReceiver)
        .await;

    // 2 and 3: frozen wallets.
    let freeze = |wallet, frozen| SecurityToken::setAddressFrozenCall { wallet, frozen };
    s.ok(&k.freezer, s.token, freeze(alice, true)).await;
    s.refused_everywhere(&k.alice, bob, 1, ReasonCode::SenderFrozen)
        .await;
    s.ok(&k.freezer, s.token, freeze(alice, false)).await;
    s.ok(&k.freezer, s.token, freeze(bob, true)).await;
    s.refused_everywhere(&k.alice, bob, 1, ReasonCode::ReceiverFrozen)
        .await;
    s.ok(&k.freezer, s.token, freeze(bob, false)).await;

    // 4: more than the unfrozen balance (496 held, 480 frozen).
    let partial = U256::from(480u64);
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::freezePartialTokensCall {
            wallet: alice,
            amount: partial,
        },
    )
    .await;
    assert_eq!(s.can(alice, bob, 16).await, ReasonCode::Ok);
    s.refused_everywhere(&k.alice, bob, 17, ReasonCode::InsufficientUnfrozenBalance)
        .await;
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::unfreezePartialTokensCall {
            wallet: alice,
            amount: partial,
        },
    )
    .await;

    // 5: a holder whose identity was removed.
    let dave = k.dave.address();
    s.register(dave, 4, FR, FAR).await;
    s.mint(dave, 10).await;
    s.ok(
        &k.admin,
        s.registry,
        IdentityRegistry::removeIdentityCall { wallet: dave },
    )
    .await;
    s.refused_everywhere(&k.dave, bob, 1, ReasonCode::SenderNotVerified)
        .await;
    s.register(dave, 4, FR, FAR).await;

    // 6: an unregistered receiver.
    s.refused_everywhere(
        &k.alice,
        k.frank.address(),
        1,
        ReasonCode::ReceiverNotVerified,
    )
    .await;

    // 7 and 8: expired verifications, by the chain's clock.
    let expires = s.now().await + 100;
    s.ok(
        &k.admin,
        s.registry,
        IdentityRegistry::updateIdentityCall {
            wallet: bob,
            country: DE,
            expiresAt: expires,
        },
    )
    .await;
    assert_eq!(s.can(bob, alice, 1).await, ReasonCode::Ok);
    s.advance(101).await;
    s.refused_everywhere(&k.bob, alice, 1, ReasonCode::SenderVerificationExpired)
        .await;
    s.refused_everywhere(&k.alice, bob, 1, ReasonCode::ReceiverVerificationExpired)
        .await;
    s.ok(
        &k.admin,
        s.registry,
        IdentityRegistry::updateIdentityCall {
            wallet: bob,
            country: DE,
            expiresAt: FAR,
        },
    )
    .await;

    // 9: the lockup after the latest mint to the sender.
    s.mint(bob, 1).await;
    s.refused_everywhere(&k.bob, alice, 1, ReasonCode::LockupActive)
        .await;
    s.advance(LOCKUP - 10).await;
    assert_eq!(s.can(bob, alice, 1).await, ReasonCode::LockupActive);
    s.advance(11).await;
    assert_eq!(s.can(bob, alice, 1).await, ReasonCode::Ok, "unlocked");

    // 10: an allow-list without the receiver's country (set by the owner):
    // Germany only, and dave is in France.
    let allow = |allowed| Compliance::setCountryAllowedCall {
        country: DE,
        allowed,
    };
    s.ok(&k.admin, s.compliance, allow(true)).await;
    s.refused_everywhere(&k.alice, dave, 1, ReasonCode::CountryNotAllowed)
        .await;
    assert_eq!(
        s.can(alice, bob, 1).await,
        ReasonCode::Ok,
        "Germany is allowed"
    );
    s.ok(&k.admin, s.compliance, allow(false)).await;
    assert_eq!(
        s.can(alice, dave, 1).await,
        ReasonCode::Ok,
        "empty list: any country"
    );

    // 11: a blocked country.
    s.refused_everywhere(&k.alice, eve, 1, ReasonCode::CountryBlocked)
        .await;

    // 12: the receiving investor's total over the maximum.
    let bob_now = s.balance(bob).await;
    s.mint(bob, MAX_BALANCE - bob_now - 5).await;
    assert_eq!(s.can(alice, bob, 5).await, ReasonCode::Ok);
    s.refused_everywhere(&k.alice, bob, 6, ReasonCode::MaxBalanceExceeded)
        .await;

    // 13: a fourth investor (alice, bob, dave hold) over max holders 3.
    s.refused_everywhere(&k.alice, carol, 1, ReasonCode::MaxHoldersExceeded)
        .await;
    // ... unless the sender's investor leaves at the same time.
    let dave_all = s.balance(dave).await;
    assert_eq!(
        s.can(dave, carol, dave_all - 1).await,
        ReasonCode::MaxHoldersExceeded
    );
    assert_eq!(s.can(dave, carol, dave_all).await, ReasonCode::Ok);
    s.ok(
        &k.dave,
        s.token,
        SecurityToken::transferCall {
            to: carol,
            amount: U256::from(dave_all),
        },
    )
    .await;
    assert_eq!(s.balance(carol).await, dave_all);

    // Every code 0..=14 was seen above; the contract knows no others.
    assert_eq!(ReasonCode::ALL.len(), 15);
}

#[tokio::test]
async fn compliance_counts_investors_not_wallets_and_same_investor_moves_skip_the_limits() {
    let s = Suite::new().await;
    let k = &s.k;
    let (alice, alice2, bob, carol) = (
        k.alice.address(),
        k.alice2.address(),
        k.bob.address(),
        k.carol.address(),
    );
    let holders = async || {
        s.view(s.compliance, Compliance::holderCountCall {})
            .await
            .to::<u64>()
    };
    let investor_balance = async |id: u8| {
        s.view(s.compliance, Compliance::investorBalanceCall(investor(id)))
            .await
            .to::<u64>()
    };
    s.mint(alice, 600).await;
    s.mint(alice2, 400).await;
    assert_eq!(holders().await, 1, "two wallets, one investor");
    assert_eq!(investor_balance(1).await, MAX_BALANCE);
    let over = s
        .code(
            &k.supply,
            s.token,
            SecurityToken::mintCall {
                to: alice2,
                amount: U256::from(1u64),
            },
        )
        .await;
    assert_eq!(
        over,
        ReasonCode::MaxBalanceExceeded,
        "summed over both wallets"
    );

    s.mint(bob, 10).await;
    s.mint(carol, 10).await;
    assert_eq!(holders().await, 3);
    s.advance(LOCKUP + 1).await;
    // At the maximum, a move between one investor's wallets is still fine,
    // and does not change the totals.
    s.ok(
        &k.agent,
        s.token,
        SecurityToken::agentTransferCall {
            from: alice,
            to: alice2,
            amount: U256::from(100u64),
        },
    )
    .await;
    assert_eq!(investor_balance(1).await, MAX_BALANCE);
    assert_eq!(holders().await, 3);
    // Bob leaving entirely frees a holder slot for exactly that transfer.
    s.ok(
        &k.bob,
        s.token,
        SecurityToken::transferCall {
            to: carol,
            amount: U256::from(10u64),
        },
    )
    .await;
    assert_eq!(holders().await, 2);
    assert_eq!(investor_balance(2).await, 0);
    // Burning everything of an investor drops it from the count.
    s.ok(
        &k.supply,
        s.token,
        SecurityToken::burnCall {
            from: carol,
            amount: U256::from(20u64),
        },
    )
    .await;
    assert_eq!(holders().await, 1);
}

#[tokio::test]
async fn every_privileged_function_is_refused_to_accounts_without_the_role() {
    let s = Suite::new().await;
    let k = &s.k;
    let outsider = &k.frank;
    let unauthorized = |data: Bytes| {
        assert_eq!(
            &data[..4],
            &SecurityToken::AccessControlUnauthorizedAccount::SELECTOR[..],
            "AccessControlUnauthorizedAccount"
        );
    };
    let one = U256::from(1u64);
    let (alice, bob) = (k.alice.address(), k.bob.address());
    unauthorized(
        s.refused(
            outsider,
            s.token,
            SecurityToken::mintCall {
                to: alice,
                amount: one,
            },
        )
        .await,
    );
    unauthorized(
        s.refused(
            &k.agent,
            s.token,
            SecurityToken::mintCall {
                to: alice,
                amount: one,
            },
        )
        .await,
    );
    unauthorized(
        s.refused(
            outsider,
            s.token,
            SecurityToken::agentTransferCall {
                from: alice,
                to: bob,
                amount: one,
            },
        )
        .await,
    );
    unauthorized(
        s.refused(outsider, s.token, SecurityToken::pauseCall {})
            .await,
    );
    unauthorized(
        s.refused(
            outsider,
            s.token,
            SecurityToken::setAddressFrozenCall {
                wallet: alice,
                frozen: true,
            },
        )
        .await,
    );
    unauthorized(
        s.refused(
            outsider,
            s.token,
            SecurityToken::forcedTransferCall {
                from: alice,
                to: bob,
                amount: one,
            },
        )
        .await,
    );
    unauthorized(
        s.refused(
            outsider,
            s.token,
            SecurityToken::grantRoleCall {
                role: contracts::role(roles::SUPPLY),
                account: outsider.address(),
            },
        )
        .await,
    );
    unauthorized(
        s.refused(
            outsider,
            s.registry,
            IdentityRegistry::registerIdentityCall {
                wallet: outsider.address(),
                investorId: investor(9),
                country: FR,
                expiresAt: FAR,
            },
        )
        .await,
    );
    // Compliance: rules by its owner only; hooks by its token only; bound once.
    let not_owner = s
        .refused(
            outsider,
            s.compliance,
            Compliance::setMaxHoldersCall {
                maxHolders_: U256::ZERO,
            },
        )
        .await;
    assert_eq!(
        &not_owner[..4],
        &Compliance::OwnableUnauthorizedAccount::SELECTOR[..]
    );
    let not_token = s
        .refused(
            outsider,
            s.compliance,
            Compliance::createdCall {
                to: outsider.address(),
                amount: one,
            },
        )
        .await;
    assert_eq!(&not_token[..], &Compliance::OnlyToken::SELECTOR[..]);
    let rebind = s
        .refused(
            &k.admin,
            s.compliance,
            Compliance::bindTokenCall {
                token_: outsider.address(),
            },
        )
        .await;
    assert_eq!(&rebind[..], &Compliance::TokenAlreadyBound::SELECTOR[..]);
}

#[tokio::test]
async fn supply_batches_freezes_and_holder_batch_transfers() {
    let s = Suite::new().await;
    let k = &s.k;
    let (alice, bob, carol) = (k.alice.address(), k.bob.address(), k.carol.address());
    s.ok(
        &k.supply,
        s.token,
        SecurityToken::batchMintCall {
            tos: vec![alice, bob, carol],
            amounts: vec![U256::from(300u64), U256::from(200u64), U256::from(100u64)],
        },
    )
    .await;
    assert_eq!(
        s.view(s.token, SecurityToken::totalSupplyCall {}).await,
        U256::from(600u64)
    );
    let mismatch = s
        .refused(
            &k.supply,
            s.token,
            SecurityToken::batchMintCall {
                tos: vec![alice],
                amounts: vec![],
            },
        )
        .await;
    assert_eq!(&mismatch[..], &SecurityToken::LengthMismatch::SELECTOR[..]);
    // A frozen-receiver mint is refused with the transfer code.
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::batchSetAddressFrozenCall {
            wallets: vec![carol],
            frozen: vec![true],
        },
    )
    .await;
    let frozen_mint = s
        .code(
            &k.supply,
            s.token,
            SecurityToken::mintCall {
                to: carol,
                amount: U256::from(1u64),
            },
        )
        .await;
    assert_eq!(frozen_mint, ReasonCode::ReceiverFrozen);
    // Pause stops transfers, not supply changes.
    s.ok(&k.pauser, s.token, SecurityToken::pauseCall {}).await;
    s.mint(alice, 1).await;
    s.ok(&k.pauser, s.token, SecurityToken::unpauseCall {})
        .await;
    // Burning more than the free balance releases frozen tokens first.
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::freezePartialTokensCall {
            wallet: bob,
            amount: U256::from(150u64),
        },
    )
    .await;
    s.ok(
        &k.supply,
        s.token,
        SecurityToken::batchBurnCall {
            froms: vec![bob],
            amounts: vec![U256::from(120u64)],
        },
    )
    .await;
    assert_eq!(s.balance(bob).await, 80);
    assert_eq!(
        s.view(s.token, SecurityToken::frozenTokensCall(bob)).await,
        U256::from(80u64),
        "70 of the 150 frozen were released for the burn"
    );
    // A holder's batch transfer, after the lockup.
    s.advance(LOCKUP + 1).await;
    s.ok(
        &k.alice,
        s.token,
        SecurityToken::batchTransferCall {
            tos: vec![bob, k.alice2.address()],
            amounts: vec![U256::from(10u64), U256::from(20u64)],
        },
    )
    .await;
    assert_eq!(s.balance(alice).await, 271);
    let blocked = s
        .code(
            &k.alice,
            s.token,
            SecurityToken::batchTransferCall {
                tos: vec![bob, k.eve.address()],
                amounts: vec![U256::from(1u64), U256::from(1u64)],
            },
        )
        .await;
    assert_eq!(
        blocked,
        ReasonCode::CountryBlocked,
        "one refused leg reverts the batch"
    );
    assert_eq!(
        s.balance(alice).await,
        271,
        "nothing of a refused batch moved"
    );
}

#[tokio::test]
async fn forced_transfers_skip_the_rules_but_not_pause_and_recovery_stays_with_the_investor() {
    let s = Suite::new().await;
    let k = &s.k;
    let (alice, alice2, bob, eve) = (
        k.alice.address(),
        k.alice2.address(),
        k.bob.address(),
        k.eve.address(),
    );
    s.mint(alice, 500).await;
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::freezePartialTokensCall {
            wallet: alice,
            amount: U256::from(450u64),
        },
    )
    .await;
    s.ok(
        &k.freezer,
        s.token,
        SecurityToken::setAddressFrozenCall {
            wallet: alice,
            frozen: true,
        },
    )
    .await;
    // Frozen, locked up, blocked country: a forced transfer still moves it,
    // releasing frozen tokens as needed.
    let forced = |from, to, amount: u64| SecurityToken::forcedTransferCall {
        from,
        to,
        amount: U256::from(amount),
    };
    s.ok(&k.recovery, s.token, forced(alice, eve, 100)).await;
    assert_eq!(s.balance(eve).await, 100);
    assert_eq!(
        s.view(s.token, SecurityToken::frozenTokensCall(alice))
            .await,
        U256::from(400u64)
    );
    // Not while paused; never to an unverified wallet.
    s.ok(&k.pauser, s.token, SecurityToken::pauseCall {}).await;
    assert_eq!(
        s.code(&k.recovery, s.token, forced(alice, bob, 1)).await,
        ReasonCode::Paused
    );
    s.ok(&k.pauser, s.token, SecurityToken::unpauseCall {})
        .await;
    assert_eq!(
        s.code(&k.recovery, s.token, forced(alice, k.frank.address(), 1))
            .await,
        ReasonCode::ReceiverNotVerified
    );

    // Recovery to another investor's wallet is refused.
    let other = s
        .refused(
            &k.recovery,
            s.token,
            SecurityToken::recoveryAddressCall {
                lostWallet: alice,
                newWallet: bob,
            },
        )
        .await;
    assert_eq!(
        &other[..4],
        &SecurityToken::RecoveryNotSameInvestor::SELECTOR[..]
    );
    // To the investor's other wallet: balance, frozen tokens, freeze flag and
    // lockup all move.
    let unlock_before = s.view(s.compliance, Compliance::unlockAtCall(alice)).await;
    let receipt = s
        .ok(
            &k.recovery,
            s.token,
            SecurityToken::recoveryAddressCall {
                lostWallet: alice,
                newWallet: alice2,
            },
        )
        .await;
    assert_eq!(s.balance(alice).await, 0);
    assert_eq!(s.balance(alice2).await, 400);
    assert_eq!(
        s.view(s.token, SecurityToken::frozenTokensCall(alice2))
            .await,
        U256::from(400u64)
    );
    assert!(s.view(s.token, SecurityToken::isFrozenCall(alice2)).await);
    assert!(!s.view(s.token, SecurityToken::isFrozenCall(alice)).await);
    assert_eq!(
        s.view(s.compliance, Compliance::unlockAtCall(alice2)).await,
        unlock_before
    );
    assert!(
        receipt
            .logs
            .iter()
            .any(|l| l.topics[0] == SecurityToken::RecoverySuccess::SIGNATURE_HASH)
    );
}

#[tokio::test]
async fn the_registry_registers_updates_and_removes_with_an_event_each() {
    let s = Suite::new().await;
    let k = &s.k;
    let (w1, w2) = (Address::repeat_byte(0x71), Address::repeat_byte(0x72));
    let batch = s
        .ok(
            &k.admin,
            s.registry,
            IdentityRegistry::batchRegisterIdentityCall {
                wallets: vec![w1, w2],
                investorIds: vec![investor(7), investor(8)],
                countries: vec![FR, DE],
                expiries: vec![FAR, FAR],
            },
        )
        .await;
    let registered: Vec<_> = batch
        .logs
        .iter()
        .filter(|l| l.topics[0] == IdentityRegistry::IdentityRegistered::SIGNATURE_HASH)
        .collect();
    assert_eq!(registered.len(), 2);
    assert_eq!(
        registered[0].topics[1],
        B256::left_padding_from(w1.as_slice())
    );
    assert_eq!(registered[0].topics[2], investor(7));
    assert!(
        s.view(s.registry, IdentityRegistry::isVerifiedCall { wallet: w1 })
            .await
    );

    let again = s
        .refused(
            &k.admin,
            s.registry,
            IdentityRegistry::registerIdentityCall {
                wallet: w1,
                investorId: investor(7),
                country: FR,
                expiresAt: FAR,
            },
        )
        .await;
    assert_eq!(
        &again[..4],
        &IdentityRegistry::AlreadyRegistered::SELECTOR[..]
    );

    let updated = s
        .ok(
            &k.admin,
            s.registry,
            IdentityRegistry::batchUpdateIdentityCall {
                wallets: vec![w1],
                countries: vec![JP],
                expiries: vec![s.now().await + 50],
            },
        )
        .await;
    assert!(
        updated
            .logs
            .iter()
            .any(|l| l.topics[0] == IdentityRegistry::IdentityUpdated::SIGNATURE_HASH)
    );
    assert_eq!(
        s.view(s.registry, IdentityRegistry::countryOfCall { wallet: w1 })
            .await,
        JP
    );
    s.advance(51).await;
    assert!(
        !s.view(s.registry, IdentityRegistry::isVerifiedCall { wallet: w1 })
            .await,
        "expired by the chain's clock"
    );
    assert!(
        s.view(
            s.registry,
            IdentityRegistry::isRegisteredCall { wallet: w1 }
        )
        .await
    );

    let removed = s
        .ok(
            &k.admin,
            s.registry,
            IdentityRegistry::batchRemoveIdentityCall {
                wallets: vec![w1, w2],
            },
        )
        .await;
    assert_eq!(
        removed
            .logs
            .iter()
            .filter(|l| l.topics[0] == IdentityRegistry::IdentityRemoved::SIGNATURE_HASH)
            .count(),
        2
    );
    assert!(
        !s.view(
            s.registry,
            IdentityRegistry::isRegisteredCall { wallet: w2 }
        )
        .await
    );
}

#[tokio::test]
async fn set_rules_changes_a_whole_rule_set_in_one_transaction_by_its_owner_only() {
    let s = Suite::new().await;
    let k = &s.k;
    let (alice, bob, eve) = (k.alice.address(), k.bob.address(), k.eve.address());
    s.mint(alice, 500).await;
    s.advance(LOCKUP + 1).await;
    assert_eq!(s.can(alice, eve, 1).await, ReasonCode::CountryBlocked);
    assert_eq!(
        s.can(alice, bob, 600).await,
        ReasonCode::InsufficientUnfrozenBalance
    );

    // Allow only France and Germany, unblock North Korea, block Japan, lift
    // the balance limit, one holder at most, no lockup: one transaction.
    let change = Compliance::setRulesCall {
        allowAdd: vec![FR, DE],
        allowRemove: vec![],
        blockAdd: vec![JP],
        blockRemove: vec![KP],
        maxBalance: U256::ZERO,
        maxHolders_: U256::from(1u64),
        lockup: 0,
    };
    let not_owner = s.refused(&k.alice, s.compliance, change.clone()).await;
    assert_eq!(
        &not_owner[..4],
        &Compliance::OwnableUnauthorizedAccount::SELECTOR[..]
    );
    let receipt = s.ok(&k.admin, s.compliance, change).await;
    // Two allowed, one unblocked, one blocked, and the three limits changed.
    assert_eq!(receipt.logs.len(), 7, "{:?}", receipt.logs);
    for country in [FR, DE] {
        let allowed = Compliance::countryAllowedCall(country);
        assert!(s.view(s.compliance, allowed).await);
    }
    assert_eq!(
        s.view(s.compliance, Compliance::allowedCountryCountCall {})
            .await,
        U256::from(2u64)
    );
    assert!(
        !s.view(s.compliance, Compliance::countryBlockedCall(KP))
            .await
    );
    assert!(
        s.view(s.compliance, Compliance::countryBlockedCall(JP))
            .await
    );
    assert_eq!(
        s.view(s.compliance, Compliance::maxBalancePerInvestorCall {})
            .await,
        U256::ZERO
    );
    assert_eq!(
        s.view(s.compliance, Compliance::lockupSecondsCall {}).await,
        0
    );
    // North Korea is no longer blocked, but it is not on the allow-list.
    assert_eq!(s.can(alice, eve, 1).await, ReasonCode::CountryNotAllowed);
    // Bob (Germany) would be a second holder.
    assert_eq!(s.can(alice, bob, 1).await, ReasonCode::MaxHoldersExceeded);

    // Removing from the allow-list and setting what is already set.
    s.ok(
        &k.admin,
        s.compliance,
        Compliance::setRulesCall {
            allowAdd: vec![],
            allowRemove: vec![FR, DE],
            blockAdd: vec![],
            blockRemove: vec![],
            maxBalance: U256::ZERO,
            maxHolders_: U256::ZERO,
            lockup: 0,
        },
    )
    .await;
    assert_eq!(
        s.view(s.compliance, Compliance::allowedCountryCountCall {})
            .await,
        U256::ZERO
    );
    assert_eq!(s.can(alice, bob, 1).await, ReasonCode::Ok);
}
