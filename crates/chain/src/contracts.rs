//! Bindings to the platform's own contracts, generated at compile time from the
//! committed artifacts in `contracts/artifacts` (ABI and bytecode from one solc
//! run, checked by `contracts/build --check` in CI), so the Rust side can never
//! call an ABI that differs from the bytecode it deploys.
//!
//! Each contract is a module (`IdentityRegistry`, `Compliance`,
//! `SecurityToken`) with its calls (`mintCall`, ...), events, errors and
//! `BYTECODE`. The `*_init_code` functions append the ABI-encoded constructor
//! arguments to the bytecode: the input of a deployment transaction.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{SolCall, SolConstructor, SolError};
use rwa_domain::chain::{BlockTag, CallRequest, ChainError, ChainPort, ChainResult};

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(all_derives)]
    IdentityRegistry,
    "../../contracts/artifacts/IdentityRegistry.json"
);

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(all_derives)]
    Compliance,
    "../../contracts/artifacts/Compliance.json"
);

alloy::sol!(
    #[allow(missing_docs)]
    #[sol(all_derives)]
    SecurityToken,
    "../../contracts/artifacts/SecurityToken.json"
);

/// `keccak256` of a role name, as the contracts define their `bytes32` roles.
pub fn role(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

/// The `AccessControl` roles of the platform's contracts (contracts/README.md).
pub mod roles {
    use alloy::primitives::B256;

    /// Grants and revokes every other role.
    pub const DEFAULT_ADMIN: B256 = B256::ZERO;
    /// Registry: register, update and remove identities.
    pub const REGISTRAR: &str = "REGISTRAR_ROLE";
    /// Token: mint and burn.
    pub const SUPPLY: &str = "SUPPLY_ROLE";
    /// Token: `agentTransfer`, `batchAgentTransfer`.
    pub const TRANSFER_MANAGER: &str = "TRANSFER_MANAGER_ROLE";
    /// Token: wallet and partial freezes.
    pub const FREEZE: &str = "FREEZE_ROLE";
    /// Token: pause and unpause.
    pub const PAUSER: &str = "PAUSER_ROLE";
    /// Token: forced transfers and wallet recovery.
    pub const RECOVERY: &str = "RECOVERY_ROLE";
}

/// Compliance rules of one token, as its constructor takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComplianceParams {
    /// ISO 3166 numeric codes receivers must be in (empty: every country).
    pub allow_countries: Vec<u16>,
    /// ISO 3166 numeric codes receivers must not be in.
    pub block_countries: Vec<u16>,
    /// Maximum balance per investor, in the token's base units (0: none).
    pub max_balance_per_investor: U256,
    /// Maximum number of investors holding the token (0: none).
    pub max_holders: U256,
    /// Lockup after each mint, per wallet, in seconds (0: none).
    pub lockup_seconds: u64,
}

fn init_code(bytecode: &Bytes, constructor_args: Vec<u8>) -> Bytes {
    let mut code = Vec::with_capacity(bytecode.len() + constructor_args.len());
    code.extend_from_slice(bytecode);
    code.extend_from_slice(&constructor_args);
    code.into()
}

/// Deployment input of an organization's identity registry.
pub fn identity_registry_init_code(admin: Address) -> Bytes {
    init_code(
        &IdentityRegistry::BYTECODE,
        IdentityRegistry::constructorCall { admin }.abi_encode(),
    )
}

/// Deployment input of a token's compliance contract.
pub fn compliance_init_code(owner: Address, registry: Address, rules: &ComplianceParams) -> Bytes {
    init_code(
        &Compliance::BYTECODE,
        Compliance::constructorCall {
            owner_: owner,
            registry,
            allowCountries: rules.allow_countries.clone(),
            blockCountries: rules.block_countries.clone(),
            maxBalance: rules.max_balance_per_investor,
            maxHolders_: rules.max_holders,
            lockup: rules.lockup_seconds,
        }
        .abi_encode(),
    )
}

/// Deployment input of a security token.
pub fn security_token_init_code(
    name: &str,
    symbol: &str,
    decimals: u8,
    registry: Address,
    compliance: Address,
    admin: Address,
) -> Bytes {
    init_code(
        &SecurityToken::BYTECODE,
        SecurityToken::constructorCall {
            name_: name.to_owned(),
            symbol_: symbol.to_owned(),
            decimals_: decimals,
            registry,
            compliance_: compliance,
            admin,
        }
        .abi_encode(),
    )
}

/// Calldata of `grantRole(role, account)`; the function is the same on the
/// registry and the token (OpenZeppelin `AccessControl`).
pub fn grant_role_input(role: B256, account: Address) -> Bytes {
    SecurityToken::grantRoleCall { role, account }
        .abi_encode()
        .into()
}

/// Why a transfer is refused: the code `canTransfer` returns and
/// `TransferNotAllowed(uint8)` carries (contracts/README.md, never renumbered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReasonCode {
    /// Allowed.
    Ok = 0,
    /// Token paused.
    Paused = 1,
    /// Sender wallet frozen.
    SenderFrozen = 2,
    /// Receiver wallet frozen.
    ReceiverFrozen = 3,
    /// Amount above balance minus frozen tokens.
    InsufficientUnfrozenBalance = 4,
    /// Sender not in the identity registry.
    SenderNotVerified = 5,
    /// Receiver not in the identity registry.
    ReceiverNotVerified = 6,
    /// Sender's verification expired.
    SenderVerificationExpired = 7,
    /// Receiver's verification expired.
    ReceiverVerificationExpired = 8,
    /// Sender wallet still locked up after its latest mint.
    LockupActive = 9,
    /// Receiver's country not on the allow-list.
    CountryNotAllowed = 10,
    /// Receiver's country on the block-list.
    CountryBlocked = 11,
    /// Receiving investor's total would exceed the maximum.
    MaxBalanceExceeded = 12,
    /// A new investor would exceed the maximum number of holders.
    MaxHoldersExceeded = 13,
    /// Receiver is the zero address.
    InvalidReceiver = 14,
}

impl ReasonCode {
    /// Every code, in numeric order.
    pub const ALL: [ReasonCode; 15] = [
        ReasonCode::Ok,
        ReasonCode::Paused,
        ReasonCode::SenderFrozen,
        ReasonCode::ReceiverFrozen,
        ReasonCode::InsufficientUnfrozenBalance,
        ReasonCode::SenderNotVerified,
        ReasonCode::ReceiverNotVerified,
        ReasonCode::SenderVerificationExpired,
        ReasonCode::ReceiverVerificationExpired,
        ReasonCode::LockupActive,
        ReasonCode::CountryNotAllowed,
        ReasonCode::CountryBlocked,
        ReasonCode::MaxBalanceExceeded,
        ReasonCode::MaxHoldersExceeded,
        ReasonCode::InvalidReceiver,
    ];

    /// The code for a number, if it is one.
    pub fn from_u8(code: u8) -> Option<ReasonCode> {
        Self::ALL.get(code as usize).copied()
    }

    /// The stable name used in API answers and events (`LOCKUP_ACTIVE`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ReasonCode::Ok => "OK",
            ReasonCode::Paused => "PAUSED",
            ReasonCode::SenderFrozen => "SENDER_FROZEN",
            ReasonCode::ReceiverFrozen => "RECEIVER_FROZEN",
            ReasonCode::InsufficientUnfrozenBalance => "INSUFFICIENT_UNFROZEN_BALANCE",
            ReasonCode::SenderNotVerified => "SENDER_NOT_VERIFIED",
            ReasonCode::ReceiverNotVerified => "RECEIVER_NOT_VERIFIED",
            ReasonCode::SenderVerificationExpired => "SENDER_VERIFICATION_EXPIRED",
            ReasonCode::ReceiverVerificationExpired => "RECEIVER_VERIFICATION_EXPIRED",
            ReasonCode::LockupActive => "LOCKUP_ACTIVE",
            ReasonCode::CountryNotAllowed => "COUNTRY_NOT_ALLOWED",
            ReasonCode::CountryBlocked => "COUNTRY_BLOCKED",
            ReasonCode::MaxBalanceExceeded => "MAX_BALANCE_EXCEEDED",
            ReasonCode::MaxHoldersExceeded => "MAX_HOLDERS_EXCEEDED",
            ReasonCode::InvalidReceiver => "INVALID_RECEIVER",
        }
    }

    /// The reason code inside revert data of `TransferNotAllowed(uint8)`, if
    /// that is what the data is.
    pub fn from_revert(data: &[u8]) -> Option<ReasonCode> {
        let error = SecurityToken::TransferNotAllowed::abi_decode(data).ok()?;
        Self::from_u8(error.reason)
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An identity registry's custom error in revert data, for people
/// (`AlreadyRegistered(0x…)`), if that is what the data is.
pub fn registry_error(data: &[u8]) -> Option<String> {
    use IdentityRegistry::IdentityRegistryErrors as E;
    let error = <E as alloy::sol_types::SolInterface>::abi_decode(data).ok()?;
    Some(match error {
        E::AlreadyRegistered(e) => format!("AlreadyRegistered({})", e.wallet),
        E::NotRegistered(e) => format!("NotRegistered({})", e.wallet),
        E::ZeroAddress(_) => "ZeroAddress()".to_owned(),
        E::ZeroInvestorId(_) => "ZeroInvestorId()".to_owned(),
        E::LengthMismatch(_) => "LengthMismatch()".to_owned(),
        other => format!("{other:?}"),
    })
}

/// A security token's custom error in revert data, for people
/// (`TransferNotAllowed(MAX_HOLDERS_EXCEEDED)`), if that is what the data is.
pub fn token_error(data: &[u8]) -> Option<String> {
    use SecurityToken::SecurityTokenErrors as E;
    let error = <E as alloy::sol_types::SolInterface>::abi_decode(data).ok()?;
    Some(match error {
        E::TransferNotAllowed(e) => match ReasonCode::from_u8(e.reason) {
            Some(code) => format!("TransferNotAllowed({code})"),
            None => format!("TransferNotAllowed({})", e.reason),
        },
        E::AmountExceedsUnfrozen(e) => format!(
            "AmountExceedsUnfrozen(wallet {}, amount {}, available {})",
            e.wallet, e.amount, e.unfrozen
        ),
        E::RecoveryNotSameInvestor(e) => {
            format!("RecoveryNotSameInvestor({}, {})", e.lostWallet, e.newWallet)
        }
        E::ERC20InsufficientBalance(e) => format!(
            "ERC20InsufficientBalance(wallet {}, balance {}, needed {})",
            e.sender, e.balance, e.needed
        ),
        other => format!("{other:?}"),
    })
}

/// Any of the platform's contracts' custom errors in revert data, for people.
pub fn describe_error(data: &[u8]) -> Option<String> {
    token_error(data).or_else(|| registry_error(data))
}

/// The address a contract created by `deployer` at `nonce` gets (CREATE).
pub fn create_address(deployer: Address, nonce: u64) -> Address {
    deployer.create(nonce)
}

/// Encodes a call for the transaction manager.
pub fn input<C: SolCall>(call: &C) -> Bytes {
    call.abi_encode().into()
}

/// Calls the view function `call` of the contract at `to`, as of `block`,
/// and decodes what it returns.
pub async fn view<C: SolCall>(
    chain: &dyn ChainPort,
    to: Address,
    call: &C,
    block: BlockTag,
) -> ChainResult<C::Return> {
    let request = CallRequest {
        from: None,
        to: Some(to),
        input: input(call),
        value: U256::ZERO,
        gas: None,
    };
    let out = chain.call(&request, block).await?;
    C::abi_decode_returns(&out)
        .map_err(|e| ChainError::Other(format!("{} returned undecodable data: {e}", C::SIGNATURE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_is_the_committed_artifact() {
        for (name, code) in [
            ("IdentityRegistry", &IdentityRegistry::BYTECODE),
            ("Compliance", &Compliance::BYTECODE),
            ("SecurityToken", &SecurityToken::BYTECODE),
        ] {
            let path = format!(
                "{}/../../contracts/artifacts/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let artifact: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let hex = artifact["bytecode"].as_str().unwrap();
            assert_eq!(code.to_string(), hex, "{name}");
            assert!(code.len() > 1000, "{name} has real bytecode");
        }
    }

    #[test]
    fn reason_codes_round_trip_through_the_revert() {
        for code in ReasonCode::ALL {
            let data = SecurityToken::TransferNotAllowed { reason: code as u8 }.abi_encode();
            assert_eq!(&data[..4], &[0xf8, 0x56, 0x40, 0x2d]);
            assert_eq!(ReasonCode::from_revert(&data), Some(code));
            assert_eq!(ReasonCode::from_u8(code as u8), Some(code));
        }
        assert_eq!(ReasonCode::from_u8(15), None);
        assert_eq!(ReasonCode::from_revert(&[0u8; 4]), None);
    }

    #[test]
    fn init_code_appends_the_encoded_constructor() {
        let admin = Address::repeat_byte(7);
        let code = identity_registry_init_code(admin);
        assert_eq!(code.len(), IdentityRegistry::BYTECODE.len() + 32);
        assert_eq!(&code[code.len() - 20..], admin.as_slice());
        assert_eq!(role(roles::SUPPLY), keccak256("SUPPLY_ROLE"));
    }
}
