//! Versions of a token's transfer rules and the organization's defaults.
//!
//! Every `PUT /v1/tokens/{id}/compliance` stores a new [`RuleSetVersion`].
//! Its off-chain rules (investors per country, velocity, structuring) take
//! effect at once. Its on-chain rules (country lists, max balance, max
//! holders, lockup) are what the token's compliance contract enforces, so
//! they change only through a four-eyes `rule_set_change` operation carrying
//! a [`RuleChange`], and take effect for transfers once it settles: until
//! then the rules read the on-chain part last applied. [`RuleSet::effective`]
//! puts the three together with the organization's [`ComplianceDefaults`],
//! which fill what a token's version leaves unset.
//!
//! One on-chain change per token is on its way at a time: a new version
//! whose on-chain part differs from the one waiting is refused until that
//! operation settles, fails or is rejected, so the contract never ends up
//! with a mixture of two versions.

use std::collections::BTreeMap;

use alloy_primitives::U256;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::amount::Amount;
use crate::compliance::{RuleSet, Structuring, Velocity};
use crate::country::Country;
use crate::operation::{OperationId, OperationStatus};
use crate::page::{Page, PageRequest};
use crate::token::{ComplianceDraft, ComplianceRules};
use crate::{Actor, OrgId, RepoResult, TokenId, ValidationError};

/// The version a token's deployed rules are.
pub const FIRST_VERSION: u32 = 1;
/// Largest count a rule takes (investors per country, transfers per day or
/// month, holders): far above any real token, and exact in every JSON
/// parser.
pub const MAX_COUNT: i64 = 1_000_000_000;
/// Longest structuring window: a year, the longest history the rules read.
pub const MAX_WINDOW_SECONDS: i64 = 366 * 24 * 3600;

/// Velocity limits as received.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityDraft {
    /// Transfers per rolling day.
    #[serde(default)]
    pub daily_count: Option<i64>,
    /// Base units per rolling day.
    #[serde(default)]
    pub daily_volume: Option<String>,
    /// Transfers per rolling 30 days.
    #[serde(default)]
    pub monthly_count: Option<i64>,
    /// Base units per rolling 30 days.
    #[serde(default)]
    pub monthly_volume: Option<String>,
}

/// A structuring rule as received.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuringDraft {
    /// The reporting threshold, base units.
    pub threshold: String,
    /// Lower edge of the band, percent of the threshold.
    pub lower_percent: i64,
    /// The window, seconds.
    pub window_seconds: i64,
    /// Transfers in the band within the window that are refused.
    pub count: i64,
}

/// The off-chain rules as received (a token's or the organization's).
#[derive(Clone, Debug, Default)]
pub struct OffchainDraft {
    /// Most investors per country holding the token.
    pub max_investors_per_country: BTreeMap<String, i64>,
    /// Velocity limits.
    pub velocity: Option<VelocityDraft>,
    /// The structuring rule.
    pub structuring: Option<StructuringDraft>,
}

/// The off-chain rules, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Offchain {
    max_investors_per_country: BTreeMap<Country, u64>,
    velocity: Velocity,
    structuring: Option<Structuring>,
}

fn count(
    raw: Option<i64>,
    field: String,
    min: i64,
    errors: &mut Vec<ValidationError>,
) -> Option<u64> {
    match raw {
        None => None,
        Some(n) if (min..=MAX_COUNT).contains(&n) => Some(n as u64),
        Some(_) => {
            errors.push(ValidationError::new(
                field,
                format!("must be between {min} and {MAX_COUNT}"),
            ));
            None
        }
    }
}

fn positive(raw: Option<&str>, field: String, errors: &mut Vec<ValidationError>) -> Option<Amount> {
    match Amount::parse(raw?, &field) {
        Ok(a) if a == Amount::ZERO => {
            errors.push(ValidationError::new(field, "must be positive"));
            None
        }
        Ok(a) => Some(a),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

impl OffchainDraft {
    fn parse(&self, prefix: &str, errors: &mut Vec<ValidationError>) -> Offchain {
        let at = |f: &str| format!("{prefix}{f}");
        let mut per_country = BTreeMap::new();
        for (code, n) in &self.max_investors_per_country {
            let field = at(&format!("max_investors_per_country.{code}"));
            match Country::parse(code, &field) {
                Ok(c) => {
                    if let Some(n) = count(Some(*n), field, 0, errors) {
                        per_country.insert(c, n);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let v = self.velocity.clone().unwrap_or_default();
        let velocity = Velocity {
            daily_count: count(v.daily_count, at("velocity.daily_count"), 1, errors),
            daily_volume: positive(
                v.daily_volume.as_deref(),
                at("velocity.daily_volume"),
                errors,
            ),
            monthly_count: count(v.monthly_count, at("velocity.monthly_count"), 1, errors),
            monthly_volume: positive(
                v.monthly_volume.as_deref(),
                at("velocity.monthly_volume"),
                errors,
            ),
        };
        let structuring = self.structuring.as_ref().and_then(|s| {
            let before = errors.len();
            let threshold = positive(Some(&s.threshold), at("structuring.threshold"), errors);
            if !(1..=99).contains(&s.lower_percent) {
                errors.push(ValidationError::new(
                    at("structuring.lower_percent"),
                    "must be between 1 and 99",
                ));
            }
            if !(1..=MAX_WINDOW_SECONDS).contains(&s.window_seconds) {
                errors.push(ValidationError::new(
                    at("structuring.window_seconds"),
                    format!("must be between 1 and {MAX_WINDOW_SECONDS} seconds"),
                ));
            }
            if !(2..=1000).contains(&s.count) {
                errors.push(ValidationError::new(
                    at("structuring.count"),
                    "must be between 2 and 1000",
                ));
            }
            (errors.len() == before).then(|| Structuring {
                threshold: threshold.unwrap_or_default(),
                lower_percent: s.lower_percent as u8,
                window_seconds: s.window_seconds as u64,
                count: s.count as u64,
            })
        });
        Offchain {
            max_investors_per_country: per_country,
            velocity,
            structuring,
        }
    }
}

/// A token's rule set as received by `PUT /v1/tokens/{id}/compliance`.
#[derive(Clone, Debug, Default)]
pub struct RuleSetDraft {
    /// The on-chain part.
    pub onchain: ComplianceDraft,
    /// The off-chain part.
    pub offchain: OffchainDraft,
}

impl RuleSet {
    /// Validates a received rule set; every problem is reported with its
    /// field path (`velocity.daily_count`, `max_investors_per_country.US`).
    pub fn parse(draft: &RuleSetDraft) -> Result<RuleSet, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let onchain = ComplianceRules::parse_at(&draft.onchain, "")
            .map_err(|e| errors.extend(e))
            .ok();
        let off = draft.offchain.parse("", &mut errors);
        match onchain {
            Some(on) if errors.is_empty() => Ok(RuleSet {
                max_investors_per_country: off.max_investors_per_country,
                velocity: off.velocity,
                structuring: off.structuring,
                ..RuleSet::from(&on)
            }),
            _ => Err(errors),
        }
    }

    /// The part the token's compliance contract enforces.
    pub fn onchain(&self) -> ComplianceRules {
        ComplianceRules {
            country_allow: self.country_allow.clone(),
            country_block: self.country_block.clone(),
            max_balance_per_investor: self.max_balance_per_investor,
            max_holders: self.max_holders,
            lockup_seconds: self.lockup_seconds,
        }
    }

    /// The rules transfers are checked against: the on-chain part the
    /// contract enforces (`applied`), this version's off-chain part, and the
    /// organization's defaults for what this version leaves unset (a
    /// country's cap, each velocity limit, the structuring rule).
    pub fn effective(&self, applied: &ComplianceRules, defaults: &ComplianceDefaults) -> RuleSet {
        let mut per_country = defaults.max_investors_per_country.clone();
        per_country.extend(self.max_investors_per_country.clone());
        let (v, d) = (&self.velocity, &defaults.velocity);
        RuleSet {
            max_investors_per_country: per_country,
            velocity: Velocity {
                daily_count: v.daily_count.or(d.daily_count),
                daily_volume: v.daily_volume.or(d.daily_volume),
                monthly_count: v.monthly_count.or(d.monthly_count),
                monthly_volume: v.monthly_volume.or(d.monthly_volume),
            },
            structuring: self.structuring.clone().or(defaults.structuring.clone()),
            ..RuleSet::from(applied)
        }
    }
}

/// The organization's off-chain rules for every token whose version leaves
/// them unset (`PATCH /v1/org` `{compliance_defaults}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComplianceDefaults {
    /// Most investors per country holding a token.
    pub max_investors_per_country: BTreeMap<Country, u64>,
    /// Velocity limits per sending investor.
    pub velocity: Velocity,
    /// The structuring rule.
    pub structuring: Option<Structuring>,
}

impl ComplianceDefaults {
    /// Validates received defaults; field paths start with
    /// `compliance_defaults.`.
    pub fn parse(draft: &OffchainDraft) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let off = draft.parse("compliance_defaults.", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            max_investors_per_country: off.max_investors_per_country,
            velocity: off.velocity,
            structuring: off.structuring,
        })
    }

    /// As a rule set with no on-chain part (how it is stored and shown).
    pub fn as_rule_set(&self) -> RuleSet {
        RuleSet {
            max_investors_per_country: self.max_investors_per_country.clone(),
            velocity: self.velocity.clone(),
            structuring: self.structuring.clone(),
            ..RuleSet::default()
        }
    }

    /// Back from [`ComplianceDefaults::as_rule_set`].
    pub fn from_rule_set(r: RuleSet) -> Self {
        Self {
            max_investors_per_country: r.max_investors_per_country,
            velocity: r.velocity,
            structuring: r.structuring,
        }
    }
}

/// What a `rule_set_change` operation does to the compliance contract: from
/// the on-chain rules it found to those of `version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleChange {
    /// The version whose on-chain part it applies.
    pub version: u32,
    /// The rules the contract enforced when the version was stored.
    pub from: ComplianceRules,
    /// The rules it enforces once the operation settles.
    pub to: ComplianceRules,
}

/// The arguments of the contract's `setRules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesCall {
    /// Countries added to the allow-list.
    pub allow_add: Vec<Country>,
    /// Countries taken off it.
    pub allow_remove: Vec<Country>,
    /// Countries added to the block-list.
    pub block_add: Vec<Country>,
    /// Countries taken off it.
    pub block_remove: Vec<Country>,
    /// Max balance per investor (0: none).
    pub max_balance: U256,
    /// Max holders (0: none).
    pub max_holders: U256,
    /// Lockup seconds.
    pub lockup: u64,
}

impl RuleChange {
    /// The `setRules` call taking the contract from `from` to `to`.
    pub fn call(&self) -> RulesCall {
        let minus = |a: &[Country], b: &[Country]| -> Vec<Country> {
            let mut out: Vec<Country> = a.iter().filter(|c| !b.contains(c)).copied().collect();
            out.sort();
            out
        };
        let (f, t) = (&self.from, &self.to);
        RulesCall {
            allow_add: minus(&t.country_allow, &f.country_allow),
            allow_remove: minus(&f.country_allow, &t.country_allow),
            block_add: minus(&t.country_block, &f.country_block),
            block_remove: minus(&f.country_block, &t.country_block),
            max_balance: t
                .max_balance_per_investor
                .map(|a| a.get())
                .unwrap_or_default(),
            max_holders: U256::from(t.max_holders.unwrap_or_default()),
            lockup: t.lockup_seconds,
        }
    }

    /// The stored form.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "from": self.from.to_stored(),
            "to": self.to.to_stored(),
        })
    }

    /// Reads the stored form back.
    pub fn from_stored(value: &serde_json::Value) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("rule_change", "stored rule change does not parse");
        let version = value["version"].as_u64().ok_or_else(bad)? as u32;
        Ok(Self {
            version,
            from: ComplianceRules::from_stored(&value["from"])?,
            to: ComplianceRules::from_stored(&value["to"])?,
        })
    }
}

/// One stored version of a token's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSetVersion {
    /// Id (paging cursor).
    pub id: Uuid,
    /// The token.
    pub token_id: TokenId,
    /// 1 for the deployed rules, then one more per change.
    pub version: u32,
    /// The rules as stored (unset off-chain rules fall back to the
    /// organization's defaults).
    pub rules: RuleSet,
    /// The operation carrying its on-chain part and where it stands (none:
    /// its on-chain part was already in force when it was stored).
    pub operation: Option<(OperationId, OperationStatus)>,
    /// Who stored it.
    pub created_by: String,
    /// Database time.
    pub created_at: DateTime<Utc>,
}

/// The outcome of [`RuleSetRepository::put`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Put {
    /// A new version was stored (with its operation when its on-chain part
    /// changes the contract).
    Created(RuleSetVersion),
    /// The rules equal the latest version's: nothing was stored.
    Unchanged(RuleSetVersion),
}

/// A token's rules now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentRules {
    /// The latest version (its off-chain rules in force).
    pub latest: RuleSetVersion,
    /// The version whose on-chain rules the contract enforces.
    pub onchain_version: u32,
    /// What transfers are checked against ([`RuleSet::effective`]).
    pub in_force: RuleSet,
}

/// Rule-set versions and the organization's defaults.
#[async_trait]
pub trait RuleSetRepository: Send + Sync {
    /// The token's rules now.
    async fn current(&self, org: OrgId, token: TokenId) -> RepoResult<CurrentRules>;

    /// Stores `rules` as the token's next version, under the token's lock,
    /// with its audit entry and `token.rule_set_changed` event; when its
    /// on-chain part differs from what the contract enforces, also a
    /// four-eyes `rule_set_change` operation. A conflict when another
    /// version's different on-chain change is still on its way, or the token
    /// is not deployed.
    async fn put(
        &self,
        org: OrgId,
        token: TokenId,
        rules: &RuleSet,
        actor: &Actor,
    ) -> RepoResult<Put>;

    /// The token's versions, oldest first.
    async fn versions(
        &self,
        org: OrgId,
        token: TokenId,
        page: PageRequest,
    ) -> RepoResult<Page<RuleSetVersion>>;

    /// The organization's defaults.
    async fn defaults(&self, org: OrgId) -> RepoResult<ComplianceDefaults>;

    /// Replaces the organization's defaults (audited, with an event).
    async fn set_defaults(
        &self,
        org: OrgId,
        defaults: &ComplianceDefaults,
        actor: &Actor,
    ) -> RepoResult<ComplianceDefaults>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(c: &str) -> Country {
        Country::parse(c, "c").unwrap()
    }

    fn fields(errors: Vec<ValidationError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_rule_set_is_validated_naming_every_bad_field() {
        let draft = RuleSetDraft {
            onchain: ComplianceDraft {
                country_allow: vec!["XX".into()],
                max_holders: Some(0),
                ..ComplianceDraft::default()
            },
            offchain: OffchainDraft {
                max_investors_per_country: BTreeMap::from([("ZZ".into(), 3), ("US".into(), -1)]),
                velocity: Some(VelocityDraft {
                    daily_count: Some(0),
                    daily_volume: Some("0".into()),
                    ..VelocityDraft::default()
                }),
                structuring: Some(StructuringDraft {
                    threshold: "10000".into(),
                    lower_percent: 100,
                    window_seconds: 0,
                    count: 1,
                }),
            },
        };
        assert_eq!(
            fields(RuleSet::parse(&draft).unwrap_err()),
            [
                "country_allow[0]",
                "max_holders",
                "max_investors_per_country.US",
                "max_investors_per_country.ZZ",
                "velocity.daily_count",
                "velocity.daily_volume",
                "structuring.lower_percent",
                "structuring.window_seconds",
                "structuring.count",
            ]
        );
        let defaults = OffchainDraft {
            velocity: Some(VelocityDraft {
                monthly_count: Some(0),
                ..VelocityDraft::default()
            }),
            ..OffchainDraft::default()
        };
        assert_eq!(
            fields(ComplianceDefaults::parse(&defaults).unwrap_err()),
            ["compliance_defaults.velocity.monthly_count"]
        );
    }

    #[test]
    fn the_effective_rules_take_the_applied_onchain_part_and_fill_gaps_from_defaults() {
        let version = RuleSet {
            country_block: vec![country("KP")],
            max_investors_per_country: BTreeMap::from([(country("US"), 99)]),
            velocity: Velocity {
                daily_count: Some(5),
                ..Velocity::default()
            },
            ..RuleSet::default()
        };
        let applied = ComplianceRules {
            max_holders: Some(10),
            ..ComplianceRules::default()
        };
        let defaults = ComplianceDefaults {
            max_investors_per_country: BTreeMap::from([(country("US"), 50), (country("CA"), 20)]),
            velocity: Velocity {
                daily_count: Some(1),
                monthly_count: Some(30),
                ..Velocity::default()
            },
            structuring: Some(Structuring {
                threshold: Amount::new(U256::from(10_000u64)),
                lower_percent: 90,
                window_seconds: 86_400,
                count: 3,
            }),
        };
        let e = version.effective(&applied, &defaults);
        // On-chain: what the contract enforces, not the version's block-list.
        assert!(e.country_block.is_empty());
        assert_eq!(e.max_holders, Some(10));
        assert_eq!(
            e.max_investors_per_country,
            BTreeMap::from([(country("US"), 99), (country("CA"), 20)])
        );
        assert_eq!(e.velocity.daily_count, Some(5));
        assert_eq!(e.velocity.monthly_count, Some(30));
        assert_eq!(e.structuring, defaults.structuring);
    }

    #[test]
    fn a_change_calls_set_rules_with_the_differences_of_the_lists() {
        let change = RuleChange {
            version: 2,
            from: ComplianceRules {
                country_allow: vec![country("FR"), country("DE")],
                country_block: vec![country("KP")],
                max_balance_per_investor: Some(Amount::new(U256::from(5u64))),
                ..ComplianceRules::default()
            },
            to: ComplianceRules {
                country_allow: vec![country("DE"), country("US")],
                country_block: vec![country("KP"), country("IR")],
                max_holders: Some(3),
                lockup_seconds: 60,
                ..ComplianceRules::default()
            },
        };
        let call = change.call();
        assert_eq!(call.allow_add, [country("US")]);
        assert_eq!(call.allow_remove, [country("FR")]);
        assert_eq!(call.block_add, [country("IR")]);
        assert!(call.block_remove.is_empty());
        assert_eq!(call.max_balance, U256::ZERO);
        assert_eq!(call.max_holders, U256::from(3u8));
        assert_eq!(call.lockup, 60);
        assert_eq!(
            RuleChange::from_stored(&change.to_stored()).unwrap(),
            change
        );
    }
}
