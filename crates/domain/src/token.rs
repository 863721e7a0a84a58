//! Security tokens: what an issuer asks for (`NewToken`, validated at the edge
//! from a [`TokenDraft`]), what the platform keeps ([`Token`]), and the
//! repository port. A token is `pending_deployment` until its deployment job
//! has the registry, compliance and token contracts settled on-chain, then
//! `deployed` (or `failed`, with the reason) — DESIGN §4.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, B256};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::country::Country;
use crate::page::{Page, PageRequest};
use crate::{Actor, OrgId, RepoResult, TokenId, ValidationError};

/// Queue and kind of the deployment job written with each new token.
pub const DEPLOYMENT_QUEUE: &str = "token-deployment";
/// Kind of the deployment job.
pub const DEPLOYMENT_KIND: &str = "deploy-token";

/// The longest lockup accepted, in seconds (100 years): beyond it a request is
/// surely a unit mistake (milliseconds for seconds).
pub const MAX_LOCKUP_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// A token request as received, before validation (field names as in the API).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDraft {
    /// Display name.
    pub name: String,
    /// Ticker.
    pub symbol: String,
    /// Decimals of the ERC-20.
    pub decimals: i64,
    /// Transfer rules enforced on-chain.
    #[serde(default)]
    pub compliance: Option<ComplianceDraft>,
}

/// Compliance rules as received.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceDraft {
    /// Receivers must be in one of these countries (empty: any country).
    #[serde(default)]
    pub country_allow: Vec<String>,
    /// Receivers must not be in these countries.
    #[serde(default)]
    pub country_block: Vec<String>,
    /// Base units one investor may hold over all their wallets (absent: no limit).
    #[serde(default)]
    pub max_balance_per_investor: Option<String>,
    /// Investors that may hold the token at once (absent: no limit).
    #[serde(default)]
    pub max_holders: Option<i64>,
    /// Seconds a wallet cannot send after each mint to it (absent: 0).
    #[serde(default)]
    pub lockup_seconds: Option<i64>,
}

/// A validated token name: trimmed, 1 to 64 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenName(String);

impl TokenName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses a name; the error names the field `name`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        crate::error::display_name(raw, "name", Self::MAX_CHARS).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated ticker: 1 to 11 upper-case ASCII letters or digits, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Symbol(String);

impl Symbol {
    /// Longest accepted ticker.
    pub const MAX_CHARS: usize = 11;

    /// Parses a ticker; the error names the field `symbol`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw.as_bytes()[0].is_ascii_uppercase()
            && raw
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !ok {
            return Err(ValidationError::new(
                "symbol",
                "must be 1 to 11 upper-case letters or digits, starting with a letter",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The ticker.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Transfer rules of one token, as its compliance contract enforces them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ComplianceRules {
    /// Receivers must be in one of these (empty: any country).
    pub country_allow: Vec<Country>,
    /// Receivers must not be in these.
    pub country_block: Vec<Country>,
    /// Per-investor maximum over all their wallets, base units.
    pub max_balance_per_investor: Option<Amount>,
    /// Maximum number of investors holding the token.
    pub max_holders: Option<u64>,
    /// Lockup after each mint, per wallet.
    pub lockup_seconds: u64,
}

impl ComplianceRules {
    /// Validates received rules; every problem is reported with its field path
    /// (`compliance.country_allow[2]`).
    pub fn parse(draft: &ComplianceDraft) -> Result<Self, Vec<ValidationError>> {
        Self::parse_at(draft, "compliance.")
    }

    /// [`ComplianceRules::parse`] with field paths under `prefix` (empty:
    /// the rules are the whole body).
    pub fn parse_at(draft: &ComplianceDraft, prefix: &str) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let at = |field: &str| format!("{prefix}{field}");
        let country_allow = countries(&draft.country_allow, &at("country_allow"), &mut errors);
        let country_block = countries(&draft.country_block, &at("country_block"), &mut errors);
        let max_balance_per_investor = match draft.max_balance_per_investor.as_deref() {
            None => None,
            Some(raw) => match Amount::parse(raw, &at("max_balance_per_investor")) {
                Ok(a) if a == Amount::ZERO => {
                    errors.push(ValidationError::new(
                        at("max_balance_per_investor"),
                        "must be positive; omit it for no limit",
                    ));
                    None
                }
                Ok(a) => Some(a),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        let max_holders = match draft.max_holders {
            None => None,
            Some(n) if (1..=crate::rule_set::MAX_COUNT).contains(&n) => Some(n as u64),
            Some(_) => {
                errors.push(ValidationError::new(
                    at("max_holders"),
                    format!(
                        "must be between 1 and {}; omit it for no limit",
                        crate::rule_set::MAX_COUNT
                    ),
                ));
                None
            }
        };
        let lockup_seconds = match draft.lockup_seconds {
            None => 0,
            Some(n) if (0..=MAX_LOCKUP_SECONDS as i64).contains(&n) => n as u64,
            Some(_) => {
                errors.push(ValidationError::new(
                    at("lockup_seconds"),
                    format!("must be between 0 and {MAX_LOCKUP_SECONDS} seconds"),
                ));
                0
            }
        };
        if errors.is_empty() {
            Ok(Self {
                country_allow,
                country_block,
                max_balance_per_investor,
                max_holders,
                lockup_seconds,
            })
        } else {
            Err(errors)
        }
    }

    /// The stored form: the same shape the API receives, so it re-validates on read.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("rules serialize")
    }

    /// Reads the stored form back.
    pub fn from_stored(value: &serde_json::Value) -> Result<Self, ValidationError> {
        let draft: ComplianceDraft = serde_json::from_value(value.clone())
            .map_err(|e| ValidationError::new("compliance", e.to_string()))?;
        Self::parse(&draft).map_err(|mut e| e.remove(0))
    }
}

fn countries(raw: &[String], field: &str, errors: &mut Vec<ValidationError>) -> Vec<Country> {
    let mut out: Vec<Country> = Vec::new();
    for (i, code) in raw.iter().enumerate() {
        let path = format!("{field}[{i}]");
        match Country::parse(code, &path) {
            Ok(c) if out.contains(&c) => {
                errors.push(ValidationError::new(path, format!("{c} is listed twice")))
            }
            Ok(c) => out.push(c),
            Err(e) => errors.push(e),
        }
    }
    out
}

/// A validated token request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Id, chosen before storage so the deployment job can name it.
    pub id: TokenId,
    /// Display name.
    pub name: TokenName,
    /// Ticker.
    pub symbol: Symbol,
    /// ERC-20 decimals, 0 to 18.
    pub decimals: u8,
    /// Rules for the compliance contract.
    pub compliance: ComplianceRules,
}

impl NewToken {
    /// Most decimals accepted (ERC-20 convention; more only invites rounding bugs).
    pub const MAX_DECIMALS: i64 = 18;

    /// Validates a request, reporting every problem at once.
    pub fn parse(draft: &TokenDraft) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let name = TokenName::parse(&draft.name)
            .map_err(|e| errors.push(e))
            .ok();
        let symbol = Symbol::parse(&draft.symbol)
            .map_err(|e| errors.push(e))
            .ok();
        let decimals = match u8::try_from(draft.decimals) {
            Ok(d) if i64::from(d) <= Self::MAX_DECIMALS => Some(d),
            _ => {
                errors.push(ValidationError::new(
                    "decimals",
                    format!("must be between 0 and {}", Self::MAX_DECIMALS),
                ));
                None
            }
        };
        let compliance = match &draft.compliance {
            None => Some(ComplianceRules::default()),
            Some(c) => ComplianceRules::parse(c).map_err(|e| errors.extend(e)).ok(),
        };
        match (name, symbol, decimals, compliance) {
            (Some(name), Some(symbol), Some(decimals), Some(compliance)) if errors.is_empty() => {
                Ok(Self {
                    id: TokenId::new(),
                    name,
                    symbol,
                    decimals,
                    compliance,
                })
            }
            _ => Err(errors),
        }
    }
}

/// Where a token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Stored; its deployment job has not finished.
    PendingDeployment,
    /// Its contracts are settled on-chain.
    Deployed,
    /// Deployment gave up; `failure_reason` says why.
    Failed,
}

impl TokenStatus {
    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenStatus::PendingDeployment => "pending_deployment",
            TokenStatus::Deployed => "deployed",
            TokenStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending_deployment" => Ok(TokenStatus::PendingDeployment),
            "deployed" => Ok(TokenStatus::Deployed),
            "failed" => Ok(TokenStatus::Failed),
            _ => Err(ValidationError::new(
                "status",
                "expected pending_deployment, deployed or failed",
            )),
        }
    }
}

/// The on-chain result of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenDeployment {
    /// Chain the contracts live on.
    pub chain_id: u64,
    /// The token contract.
    pub address: Address,
    /// The transaction that created the token contract.
    pub deploy_tx_hash: B256,
    /// The organization's identity registry.
    pub identity_registry: Address,
    /// The token's compliance contract.
    pub compliance: Address,
    /// Block of the token's creation.
    pub block_number: u64,
}

/// A stored token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Token {
    /// Id.
    pub id: TokenId,
    /// Owning organization.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Ticker.
    pub symbol: String,
    /// ERC-20 decimals.
    pub decimals: u8,
    /// Rules of its compliance contract.
    pub compliance: ComplianceRules,
    /// Where it stands.
    pub status: TokenStatus,
    /// Set once deployed.
    pub deployment: Option<TokenDeployment>,
    /// Why deployment failed.
    pub failure_reason: Option<String>,
    /// Mints above this many base units wait for a second actor.
    pub four_eyes_mint_threshold: Option<Amount>,
    /// Database time of creation.
    pub created_at: DateTime<Utc>,
    /// Database time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// Tokens. The `system_*` methods serve the deployment job.
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Stores the token `pending_deployment` together with its deployment job
    /// (queue [`DEPLOYMENT_QUEUE`]) and an audit entry, in one transaction.
    async fn create(&self, org: OrgId, token: &NewToken, actor: &Actor) -> RepoResult<Token>;

    /// One token of `org`.
    async fn get(&self, org: OrgId, id: TokenId) -> RepoResult<Token>;

    /// Tokens of `org`, oldest first.
    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<Token>>;

    /// Sets (or with `None` removes) the amount above which a mint of the
    /// token waits for a second actor, with its audit entry and
    /// `token.updated` event.
    async fn set_mint_threshold(
        &self,
        org: OrgId,
        id: TokenId,
        threshold: Option<Amount>,
        actor: &Actor,
    ) -> RepoResult<Token>;

    /// One token, whatever its organization.
    async fn system_get(&self, id: TokenId) -> RepoResult<Token>;

    /// Marks the token deployed and appends `token.deployed`, in one
    /// transaction. A token already deployed is returned unchanged (a job
    /// that ran twice emits one event).
    async fn system_mark_deployed(
        &self,
        id: TokenId,
        deployment: &TokenDeployment,
    ) -> RepoResult<Token>;

    /// Marks a pending token failed and appends `token.failed`. A token that is
    /// no longer pending is returned unchanged.
    async fn system_mark_failed(&self, id: TokenId, reason: &str) -> RepoResult<Token>;

    /// The organization's identity registry on a chain, once recorded.
    async fn system_identity_registry(
        &self,
        org: OrgId,
        chain_id: u64,
    ) -> RepoResult<Option<Address>>;

    /// Records the organization's identity registry on a chain, deployed in
    /// block `deploy_block`; the first record wins and is returned (two
    /// deployments at once share one registry).
    async fn system_record_identity_registry(
        &self,
        org: OrgId,
        chain_id: u64,
        address: Address,
        deploy_block: u64,
    ) -> RepoResult<Address>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> TokenDraft {
        TokenDraft {
            name: " Acme Fund I ".into(),
            symbol: "ACME1".into(),
            decimals: 6,
            compliance: Some(ComplianceDraft {
                country_allow: vec!["FR".into(), "DE".into()],
                country_block: vec!["KP".into()],
                max_balance_per_investor: Some("1000000".into()),
                max_holders: Some(99),
                lockup_seconds: Some(3600),
            }),
        }
    }

    #[test]
    fn a_good_request_parses_and_round_trips_its_rules() {
        let t = NewToken::parse(&draft()).unwrap();
        assert_eq!(t.name.as_str(), "Acme Fund I");
        assert_eq!(t.compliance.country_allow[1].numeric(), 276);
        assert_eq!(t.compliance.max_holders, Some(99));
        let stored = t.compliance.to_stored();
        assert_eq!(stored["country_allow"], serde_json::json!(["FR", "DE"]));
        assert_eq!(stored["max_balance_per_investor"], "1000000");
        assert_eq!(ComplianceRules::from_stored(&stored).unwrap(), t.compliance);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut d = draft();
        d.name = "".into();
        d.symbol = "acme".into();
        d.decimals = 19;
        let c = d.compliance.as_mut().unwrap();
        c.country_allow.push("ZZ".into());
        c.country_block.push("fr".into());
        c.max_balance_per_investor = Some("1.5".into());
        c.max_holders = Some(0);
        c.lockup_seconds = Some(-1);
        let fields: Vec<String> = NewToken::parse(&d)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "symbol",
                "decimals",
                "compliance.country_allow[2]",
                "compliance.country_block[1]",
                "compliance.max_balance_per_investor",
                "compliance.max_holders",
                "compliance.lockup_seconds",
            ]
        );
    }

    #[test]
    fn symbols_are_strict() {
        for ok in ["A", "ACME", "ACME2026ABC"] {
            assert!(Symbol::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1ACME", "ACME-1", "ACME20260001", "acme", "ÀCME"] {
            assert!(Symbol::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_compliance_means_no_rules() {
        let mut d = draft();
        d.compliance = None;
        assert_eq!(
            NewToken::parse(&d).unwrap().compliance,
            ComplianceRules::default()
        );
    }
}
