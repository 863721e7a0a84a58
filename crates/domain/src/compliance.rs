//! Transfer compliance: the token's versioned [`RuleSet`], the [`Snapshot`]
//! of everything the rules read (taken from the database and the index, and
//! stored with each transfer), and [`evaluate`], which runs every rule and
//! returns one [`Verdict`] each — never stopping at the first failure, so a
//! refusal names all its reasons.
//!
//! Pure and deterministic: the same snapshot under the same rule set gives
//! the same verdicts, which is how a stored refusal is re-checked later.
//! The rules the token's compliance contract also enforces are written to
//! agree with it (see `contracts/README.md`: reason codes 1–14); the others
//! (sanctions, investors per country, velocity, structuring) are off-chain
//! only.

use std::collections::BTreeMap;
use std::fmt;

use alloy_primitives::{Address, U256};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::InvestorId;
use crate::amount::Amount;
use crate::country::Country;
use crate::investor::KycStatus;
use crate::sanctions::ScreeningStatus;
use crate::token::ComplianceRules;

/// Counts and volumes per investor over a rolling day and a rolling 30-day
/// month (absent: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Velocity {
    /// Transfers sent per rolling 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_count: Option<u64>,
    /// Base units sent per rolling 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_volume: Option<Amount>,
    /// Transfers sent per rolling 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_count: Option<u64>,
    /// Base units sent per rolling 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_volume: Option<Amount>,
}

/// Structuring: `count` transfers by one investor within `window_seconds`,
/// each at least `lower_percent` % of `threshold` and below it (amounts
/// split to stay under a reporting threshold).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Structuring {
    /// The reporting threshold, base units.
    pub threshold: Amount,
    /// Lower edge of the watched band, percent of the threshold (1–99).
    pub lower_percent: u8,
    /// The window, seconds.
    pub window_seconds: u64,
    /// Transfers in the band within the window that amount to structuring.
    pub count: u64,
}

impl Structuring {
    /// Whether `amount` lies in the watched band.
    pub fn in_band(&self, amount: U256) -> bool {
        let t = self.threshold.get();
        let lower = t * U256::from(self.lower_percent) / U256::from(100u8);
        amount >= lower && amount < t
    }
}

/// One version of a token's transfer rules. The first five are enforced by
/// the token's compliance contract too; the rest only here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// Receivers must be in one of these (empty: any country).
    #[serde(default)]
    pub country_allow: Vec<Country>,
    /// Receivers must not be in these.
    #[serde(default)]
    pub country_block: Vec<Country>,
    /// Per-investor maximum over all their wallets, base units.
    #[serde(default)]
    pub max_balance_per_investor: Option<Amount>,
    /// Investors holding the token at once.
    #[serde(default)]
    pub max_holders: Option<u64>,
    /// Seconds a wallet cannot send after each mint to it.
    #[serde(default)]
    pub lockup_seconds: u64,
    /// Investors of a country that may hold the token at once.
    #[serde(default)]
    pub max_investors_per_country: BTreeMap<Country, u64>,
    /// Velocity limits per sending investor.
    #[serde(default)]
    pub velocity: Velocity,
    /// The structuring pattern refused.
    #[serde(default)]
    pub structuring: Option<Structuring>,
}

impl From<&ComplianceRules> for RuleSet {
    /// The rules a token was deployed with: the contract's part only.
    fn from(r: &ComplianceRules) -> Self {
        RuleSet {
            country_allow: r.country_allow.clone(),
            country_block: r.country_block.clone(),
            max_balance_per_investor: r.max_balance_per_investor,
            max_holders: r.max_holders,
            lockup_seconds: r.lockup_seconds,
            ..RuleSet::default()
        }
    }
}

impl RuleSet {
    /// Whether every rule equals `other`'s (country lists as sets).
    pub fn same(&self, other: &RuleSet) -> bool {
        self.same_onchain(other)
            && self.max_investors_per_country == other.max_investors_per_country
            && self.velocity == other.velocity
            && self.structuring == other.structuring
    }

    /// Whether the parts the contract enforces equal `other`'s.
    pub fn same_onchain(&self, other: &RuleSet) -> bool {
        let sorted = |v: &[Country]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        sorted(&self.country_allow) == sorted(&other.country_allow)
            && sorted(&self.country_block) == sorted(&other.country_block)
            && self.max_balance_per_investor == other.max_balance_per_investor
            && self.max_holders == other.max_holders
            && self.lockup_seconds == other.lockup_seconds
    }
}

/// One side of a transfer as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The wallet.
    pub wallet: Address,
    /// Its investor (none: a wallet the organization does not know).
    pub investor_id: Option<InvestorId>,
    /// The investor's KYC status.
    pub kyc_status: Option<KycStatus>,
    /// When the investor's approval lapses.
    pub kyc_expires_at: Option<DateTime<Utc>>,
    /// The investor's country.
    pub country: Option<Country>,
    /// The wallet registered in the identity registry on-chain.
    pub registered: bool,
    /// The whole wallet frozen (index).
    pub wallet_frozen: bool,
    /// The investor's latest screening (none: never screened).
    pub screening: Option<ScreeningStatus>,
    /// The investor's balance over all their wallets (index), plus what
    /// approved transfers not yet indexed bring in.
    pub investor_balance: Amount,
    /// Whether the investor counts as a holder (index, or an approved
    /// transfer on its way to them).
    pub holder: bool,
}

/// The sender's recent transfers, for velocity and structuring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Transfers sent by the investor in the last 24 hours.
    pub day_count: u64,
    /// Their total.
    pub day_volume: Amount,
    /// Transfers sent in the last 30 days.
    pub month_count: u64,
    /// Their total.
    pub month_volume: Amount,
    /// Transfers sent within the structuring window whose amounts lie in
    /// its band.
    pub in_band: u64,
}

/// Everything the rules read, as of `taken_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken (database time); time-based rules compare with it.
    pub taken_at: DateTime<Utc>,
    /// The last indexed block its balances come from.
    pub indexed_block: u64,
    /// The amount to move, base units.
    pub amount: Amount,
    /// The sender.
    pub from: Party,
    /// The receiver.
    pub to: Party,
    /// The sending wallet's indexed balance.
    pub sender_balance: Amount,
    /// Its frozen part.
    pub sender_frozen: Amount,
    /// Reserved by the sender's transfers approved but not yet indexed.
    pub sender_reserved: Amount,
    /// End of the sending wallet's lockup (its latest mint's).
    pub sender_unlock_at: Option<DateTime<Utc>>,
    /// The token is paused (index).
    pub paused: bool,
    /// Investors holding the token.
    pub holder_count: u64,
    /// Investors of the receiver's country holding the token.
    pub country_holder_count: u64,
    /// The sender's recent transfers.
    pub activity: Activity,
}

/// A rule's name, as shown in verdicts and refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Sender's KYC approved and not expired.
    SenderKyc,
    /// Receiver's KYC approved and not expired.
    ReceiverKyc,
    /// Sending wallet registered on-chain.
    SenderRegistered,
    /// Receiving wallet registered on-chain.
    ReceiverRegistered,
    /// Sending wallet not frozen.
    SenderNotFrozen,
    /// Receiving wallet not frozen.
    ReceiverNotFrozen,
    /// Enough unfrozen, unreserved balance.
    UnfrozenBalance,
    /// Token not paused.
    NotPaused,
    /// Receiver's country allowed.
    CountryAllowed,
    /// Receiver's country not blocked.
    CountryNotBlocked,
    /// Receiver stays within the maximum balance.
    MaxBalancePerInvestor,
    /// A new holder stays within the maximum holders.
    MaxHolders,
    /// Sender's lockup over.
    Lockup,
    /// Neither investor a sanctions hit or uncleared possible match.
    Sanctions,
    /// A new holder stays within its country's cap.
    MaxInvestorsPerCountry,
    /// Sender within its daily and monthly count and volume.
    Velocity,
    /// Not the latest of a structuring pattern.
    Structuring,
}

impl Rule {
    /// Every rule, in evaluation order.
    pub const ALL: [Rule; 17] = [
        Rule::SenderKyc,
        Rule::ReceiverKyc,
        Rule::SenderRegistered,
        Rule::ReceiverRegistered,
        Rule::SenderNotFrozen,
        Rule::ReceiverNotFrozen,
        Rule::UnfrozenBalance,
        Rule::NotPaused,
        Rule::CountryAllowed,
        Rule::CountryNotBlocked,
        Rule::MaxBalancePerInvestor,
        Rule::MaxHolders,
        Rule::Lockup,
        Rule::Sanctions,
        Rule::MaxInvestorsPerCountry,
        Rule::Velocity,
        Rule::Structuring,
    ];

    /// The name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::SenderKyc => "sender_kyc",
            Rule::ReceiverKyc => "receiver_kyc",
            Rule::SenderRegistered => "sender_wallet_registered",
            Rule::ReceiverRegistered => "receiver_wallet_registered",
            Rule::SenderNotFrozen => "sender_not_frozen",
            Rule::ReceiverNotFrozen => "receiver_not_frozen",
            Rule::UnfrozenBalance => "unfrozen_balance",
            Rule::NotPaused => "token_not_paused",
            Rule::CountryAllowed => "country_allowed",
            Rule::CountryNotBlocked => "country_not_blocked",
            Rule::MaxBalancePerInvestor => "max_balance_per_investor",
            Rule::MaxHolders => "max_holders",
            Rule::Lockup => "lockup",
            Rule::Sanctions => "sanctions",
            Rule::MaxInvestorsPerCountry => "max_investors_per_country",
            Rule::Velocity => "velocity",
            Rule::Structuring => "structuring",
        }
    }

    /// The on-chain reason code the contract answers for the same rule
    /// (`None`: off-chain only, or several codes).
    pub const fn reason_code(self) -> Option<u8> {
        match self {
            Rule::NotPaused => Some(1),
            Rule::SenderNotFrozen => Some(2),
            Rule::ReceiverNotFrozen => Some(3),
            Rule::UnfrozenBalance => Some(4),
            Rule::Lockup => Some(9),
            Rule::CountryAllowed => Some(10),
            Rule::CountryNotBlocked => Some(11),
            Rule::MaxBalancePerInvestor => Some(12),
            Rule::MaxHolders => Some(13),
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The rule's name.
    pub rule: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it compared.
    pub detail: String,
}

/// Whether every verdict passed.
pub fn all_passed(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| v.passed)
}

/// Runs every rule of `rules` over `s`, in [`Rule::ALL`]'s order.
pub fn evaluate(rules: &RuleSet, s: &Snapshot) -> Vec<Verdict> {
    Rule::ALL
        .into_iter()
        .map(|rule| {
            let (passed, detail) = check(rule, rules, s);
            Verdict {
                rule: rule.as_str().to_owned(),
                passed,
                detail,
            }
        })
        .collect()
}

fn check(rule: Rule, r: &RuleSet, s: &Snapshot) -> (bool, String) {
    let amount = s.amount.get();
    let same_investor = s.from.investor_id.is_some() && s.from.investor_id == s.to.investor_id;
    match rule {
        Rule::SenderKyc => kyc(&s.from, "sender", s.taken_at),
        Rule::ReceiverKyc => kyc(&s.to, "receiver", s.taken_at),
        Rule::SenderRegistered => registered(&s.from, "sending"),
        Rule::ReceiverRegistered => registered(&s.to, "receiving"),
        Rule::SenderNotFrozen => frozen(&s.from, "sending"),
        Rule::ReceiverNotFrozen => frozen(&s.to, "receiving"),
        Rule::UnfrozenBalance => {
            let available = s
                .sender_balance
                .get()
                .saturating_sub(s.sender_frozen.get())
                .saturating_sub(s.sender_reserved.get());
            (
                amount <= available,
                format!(
                    "available {available} (balance {}, frozen {}, reserved by approved transfers {}), amount {amount}",
                    s.sender_balance, s.sender_frozen, s.sender_reserved
                ),
            )
        }
        Rule::NotPaused => (
            !s.paused,
            if s.paused {
                "the token is paused"
            } else {
                "the token is not paused"
            }
            .to_owned(),
        ),
        Rule::CountryAllowed => match (r.country_allow.is_empty(), s.to.country) {
            (true, _) => (true, "no country allow-list".to_owned()),
            (false, Some(c)) if r.country_allow.contains(&c) => {
                (true, format!("the receiver's country {c} is allowed"))
            }
            (false, Some(c)) => (
                false,
                format!("the receiver's country {c} is not on the allow-list"),
            ),
            (false, None) => (false, "the receiver has no known country".to_owned()),
        },
        Rule::CountryNotBlocked => match s.to.country {
            Some(c) if r.country_block.contains(&c) => {
                (false, format!("the receiver's country {c} is blocked"))
            }
            Some(c) => (true, format!("the receiver's country {c} is not blocked")),
            None => (true, "the receiver has no known country".to_owned()),
        },
        Rule::MaxBalancePerInvestor => match r.max_balance_per_investor {
            None => (true, "no maximum balance".to_owned()),
            Some(_) if same_investor => (true, "between wallets of one investor".to_owned()),
            Some(max) => {
                let after = s.to.investor_balance.get().saturating_add(amount);
                (
                    after <= max.get(),
                    format!("the receiver would hold {after}, maximum {max}"),
                )
            }
        },
        Rule::MaxHolders => match r.max_holders {
            None => (true, "no maximum of holders".to_owned()),
            Some(_) if same_investor || s.to.holder || amount.is_zero() => {
                (true, "the receiver is not a new holder".to_owned())
            }
            Some(max) => {
                let sender_leaves = s.from.investor_balance.get() == amount;
                let ok = sender_leaves || s.holder_count < max;
                (
                    ok,
                    format!(
                        "{} holders, maximum {max}, the receiver would be new{}",
                        s.holder_count,
                        if sender_leaves {
                            " and the sender leaves"
                        } else {
                            ""
                        }
                    ),
                )
            }
        },
        // Without a lockup the contract still records each mint's block
        // time as the wallet's unlock time, which has passed at any later
        // block: it is no lockup, even when the node's clock runs ahead of
        // ours. (With one, the end is compared with our clock.)
        Rule::Lockup if r.lockup_seconds == 0 => (true, "no lockup".to_owned()),
        Rule::Lockup => match s.sender_unlock_at {
            Some(until) if until > s.taken_at => (
                false,
                format!("the sending wallet is locked up until {until}"),
            ),
            _ => (true, "no lockup running".to_owned()),
        },
        Rule::Sanctions => {
            let mut problems = Vec::new();
            for (who, p) in [("sender", &s.from), ("receiver", &s.to)] {
                match p.screening {
                    Some(ScreeningStatus::Clear) => {}
                    Some(ScreeningStatus::Hit) => {
                        problems.push(format!("the {who} is a sanctions hit"))
                    }
                    Some(ScreeningStatus::PossibleMatch) => {
                        problems.push(format!("the {who} has an uncleared possible match"))
                    }
                    None => problems.push(format!("the {who} was never screened")),
                }
            }
            if problems.is_empty() {
                (true, "both investors screened clear".to_owned())
            } else {
                (false, problems.join("; "))
            }
        }
        Rule::MaxInvestorsPerCountry => {
            let cap =
                s.to.country
                    .and_then(|c| r.max_investors_per_country.get(&c).map(|n| (c, *n)));
            match cap {
                None => (true, "no cap for the receiver's country".to_owned()),
                Some(_) if same_investor || s.to.holder || amount.is_zero() => {
                    (true, "the receiver is not a new holder".to_owned())
                }
                Some((c, max)) => (
                    s.country_holder_count < max,
                    format!(
                        "{} investors of {c} hold the token, cap {max}",
                        s.country_holder_count
                    ),
                ),
            }
        }
        Rule::Velocity => velocity(&r.velocity, &s.activity, amount),
        Rule::Structuring => match &r.structuring {
            None => (true, "no structuring rule".to_owned()),
            Some(st) if !st.in_band(amount) => (
                true,
                format!(
                    "the amount is outside the watched band below {}",
                    st.threshold
                ),
            ),
            Some(st) => {
                let n = s.activity.in_band + 1;
                (
                    n < st.count,
                    format!(
                        "{n} transfers within {} s between {} % of {} and it (pattern: {})",
                        st.window_seconds, st.lower_percent, st.threshold, st.count
                    ),
                )
            }
        },
    }
}

fn kyc(p: &Party, who: &str, now: DateTime<Utc>) -> (bool, String) {
    match (p.investor_id, p.kyc_status) {
        (None, _) | (_, None) => (false, format!("the {who} wallet belongs to no investor")),
        (Some(_), Some(KycStatus::Approved)) => match p.kyc_expires_at {
            Some(e) if e <= now => (false, format!("the {who}'s KYC approval expired at {e}")),
            _ => (true, format!("the {who}'s KYC is approved")),
        },
        (Some(_), Some(status)) => (false, format!("the {who}'s KYC status is {status}")),
    }
}

fn registered(p: &Party, which: &str) -> (bool, String) {
    if p.registered {
        (
            true,
            format!("the {which} wallet {} is registered", p.wallet),
        )
    } else {
        (
            false,
            format!("the {which} wallet {} is not registered on-chain", p.wallet),
        )
    }
}

fn frozen(p: &Party, which: &str) -> (bool, String) {
    if p.wallet_frozen {
        (false, format!("the {which} wallet {} is frozen", p.wallet))
    } else {
        (true, format!("the {which} wallet is not frozen"))
    }
}

fn velocity(v: &Velocity, a: &Activity, amount: U256) -> (bool, String) {
    let mut over = Vec::new();
    let mut count = |limit: Option<u64>, done: u64, what: &str| {
        if let Some(max) = limit
            && done + 1 > max
        {
            over.push(format!("{} transfers {what}, limit {max}", done + 1));
        }
    };
    count(v.daily_count, a.day_count, "in 24 hours");
    count(v.monthly_count, a.month_count, "in 30 days");
    let mut volume = |limit: Option<Amount>, done: Amount, what: &str| {
        if let Some(max) = limit {
            let total = done.get().saturating_add(amount);
            if total > max.get() {
                over.push(format!("{total} sent {what}, limit {max}"));
            }
        }
    };
    volume(v.daily_volume, a.day_volume, "in 24 hours");
    volume(v.monthly_volume, a.month_volume, "in 30 days");
    if over.is_empty() {
        (
            true,
            format!(
                "{} transfers and {} in 24 hours, {} and {} in 30 days, before this one",
                a.day_count, a.day_volume, a.month_count, a.month_volume
            ),
        )
    } else {
        (false, over.join("; "))
    }
}

// ---- the external risk engine ----

/// What the external risk engine is asked about a transfer that passed
/// every rule (the JSON body of its request; docs/compliance-engine.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRequest {
    /// The transfer.
    pub transfer_id: uuid::Uuid,
    /// Its organization.
    pub org_id: crate::OrgId,
    /// The token.
    pub token_id: crate::TokenId,
    /// The sending wallet.
    pub from_wallet: Address,
    /// The receiving wallet.
    pub to_wallet: Address,
    /// The sender's investor.
    pub from_investor_id: Option<InvestorId>,
    /// The receiver's investor.
    pub to_investor_id: Option<InvestorId>,
    /// The sender's country.
    pub from_country: Option<Country>,
    /// The receiver's country.
    pub to_country: Option<Country>,
    /// Base units.
    pub amount: Amount,
}

/// The engine's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskDecision {
    /// Go ahead.
    Approve,
    /// A compliance officer decides.
    Review,
    /// Refuse.
    Reject,
}

/// The engine's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskAssessment {
    /// Its decision.
    pub decision: RiskDecision,
    /// Its risk score, as the engine scales it.
    pub score: f64,
    /// Why, if it says.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What asking the engine gave.
#[derive(Clone, Debug, PartialEq)]
pub enum RiskOutcome {
    /// An answer.
    Assessed(RiskAssessment),
    /// No answer (unreachable, timed out, a malformed answer, the breaker
    /// open): never an approval.
    Unavailable(String),
}

impl RiskOutcome {
    /// The outcome as a verdict beside the rules' (`risk_engine`): passed
    /// only on an approval.
    pub fn verdict(&self) -> Verdict {
        let (passed, detail) = match self {
            RiskOutcome::Assessed(a) => (
                a.decision == RiskDecision::Approve,
                format!(
                    "decision {}, score {}{}",
                    serde_json::to_value(a.decision)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    a.score,
                    a.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            ),
            RiskOutcome::Unavailable(why) => {
                (false, format!("unavailable ({why}); sent to manual review"))
            }
        };
        Verdict {
            rule: RISK_ENGINE_RULE.to_owned(),
            passed,
            detail,
        }
    }
}

/// The verdict name of the external risk engine.
pub const RISK_ENGINE_RULE: &str = "risk_engine";

/// The external risk engine, asked after the rules pass.
#[async_trait::async_trait]
pub trait RiskEngine: Send + Sync {
    /// Asks about one transfer; bounded in time by the implementation.
    async fn assess(&self, request: &RiskRequest) -> RiskOutcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(n: u64) -> Amount {
        Amount::new(U256::from(n))
    }

    fn country(c: &str) -> Country {
        Country::parse(c, "c").unwrap()
    }

    fn party(n: u8, c: &str) -> Party {
        Party {
            wallet: Address::repeat_byte(n),
            investor_id: Some(InvestorId::new()),
            kyc_status: Some(KycStatus::Approved),
            kyc_expires_at: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            country: Some(country(c)),
            registered: true,
            wallet_frozen: false,
            screening: Some(ScreeningStatus::Clear),
            investor_balance: Amount::ZERO,
            holder: false,
        }
    }

    fn snapshot() -> Snapshot {
        let mut from = party(1, "FR");
        from.investor_balance = amount(1000);
        from.holder = true;
        Snapshot {
            taken_at: "2026-12-03T10:00:00Z".parse().unwrap(),
            indexed_block: 10,
            amount: amount(100),
            from,
            to: party(2, "US"),
            sender_balance: amount(1000),
            sender_frozen: Amount::ZERO,
            sender_reserved: Amount::ZERO,
            sender_unlock_at: None,
            paused: false,
            holder_count: 1,
            country_holder_count: 0,
            activity: Activity::default(),
        }
    }

    fn failed(rules: &RuleSet, s: &Snapshot) -> Vec<String> {
        evaluate(rules, s)
            .into_iter()
            .filter(|v| !v.passed)
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn a_clean_transfer_passes_every_rule() {
        let v = evaluate(&RuleSet::default(), &snapshot());
        assert_eq!(v.len(), Rule::ALL.len());
        assert!(all_passed(&v), "{v:#?}");
    }

    #[test]
    fn every_failing_rule_is_reported_together() {
        let mut s = snapshot();
        s.paused = true;
        s.from.wallet_frozen = true;
        s.to.kyc_status = Some(KycStatus::Pending);
        s.to.registered = false;
        s.to.screening = Some(ScreeningStatus::PossibleMatch);
        s.sender_unlock_at = Some("2026-12-04T00:00:00Z".parse().unwrap());
        let rules = RuleSet {
            country_block: vec![country("US")],
            lockup_seconds: 86_400,
            ..RuleSet::default()
        };
        assert_eq!(
            failed(&rules, &s),
            [
                "receiver_kyc",
                "receiver_wallet_registered",
                "sender_not_frozen",
                "token_not_paused",
                "country_not_blocked",
                "lockup",
                "sanctions"
            ]
        );
    }

    #[test]
    fn a_token_without_lockup_ignores_unlock_times() {
        let mut s = snapshot();
        s.sender_unlock_at = Some(s.taken_at + chrono::TimeDelta::seconds(5));
        assert!(
            failed(&RuleSet::default(), &s).is_empty(),
            "a mint's block time ahead of our clock"
        );
        let locked = RuleSet {
            lockup_seconds: 60,
            ..RuleSet::default()
        };
        assert_eq!(failed(&locked, &s), ["lockup"]);
    }

    #[test]
    fn kyc_expiry_and_unknown_wallets_fail() {
        let mut s = snapshot();
        s.from.kyc_expires_at = Some(s.taken_at);
        s.to.investor_id = None;
        s.to.kyc_status = None;
        assert_eq!(
            failed(&RuleSet::default(), &s)[..2],
            ["sender_kyc", "receiver_kyc"]
        );
    }

    #[test]
    fn balance_counts_frozen_and_reserved() {
        let mut s = snapshot();
        s.sender_frozen = amount(500);
        s.sender_reserved = amount(400);
        assert!(failed(&RuleSet::default(), &s).is_empty());
        s.sender_reserved = amount(401);
        assert_eq!(failed(&RuleSet::default(), &s), ["unfrozen_balance"]);
    }

    #[test]
    fn holder_limits_follow_the_contract() {
        let rules = RuleSet {
            max_holders: Some(1),
            max_balance_per_investor: Some(amount(100)),
            ..RuleSet::default()
        };
        let mut s = snapshot();
        assert_eq!(failed(&rules, &s), ["max_holders"]);
        s.amount = amount(1000);
        assert_eq!(
            failed(&rules, &s),
            ["max_balance_per_investor"],
            "the sender leaves"
        );
        s.amount = amount(100);
        s.to.holder = true;
        s.to.investor_balance = amount(1);
        assert_eq!(failed(&rules, &s), ["max_balance_per_investor"]);
        s.to.investor_id = s.from.investor_id;
        assert!(
            failed(&rules, &s).is_empty(),
            "between one investor's wallets"
        );
    }

    #[test]
    fn countries_are_capped_for_new_holders() {
        let rules = RuleSet {
            max_investors_per_country: BTreeMap::from([(country("US"), 2)]),
            country_allow: vec![country("US"), country("FR")],
            ..RuleSet::default()
        };
        let mut s = snapshot();
        s.country_holder_count = 1;
        assert!(failed(&rules, &s).is_empty());
        s.country_holder_count = 2;
        assert_eq!(failed(&rules, &s), ["max_investors_per_country"]);
        s.to.holder = true;
        assert!(failed(&rules, &s).is_empty());
        s.to.country = Some(country("DE"));
        assert_eq!(failed(&rules, &s), ["country_allowed"]);
    }

    #[test]
    fn velocity_counts_this_transfer() {
        let rules = RuleSet {
            velocity: Velocity {
                daily_count: Some(3),
                monthly_volume: Some(amount(1000)),
                ..Velocity::default()
            },
            ..RuleSet::default()
        };
        let mut s = snapshot();
        s.activity.day_count = 2;
        s.activity.month_volume = amount(900);
        assert!(failed(&rules, &s).is_empty());
        s.activity.day_count = 3;
        s.activity.month_volume = amount(901);
        let v = evaluate(&rules, &s);
        let velocity = v.iter().find(|v| v.rule == "velocity").unwrap();
        assert!(!velocity.passed);
        assert!(
            velocity.detail.contains("4 transfers in 24 hours, limit 3"),
            "{}",
            velocity.detail
        );
        assert!(
            velocity.detail.contains("1001 sent in 30 days"),
            "{}",
            velocity.detail
        );
    }

    #[test]
    fn structuring_flags_the_nth_transfer_in_the_band() {
        let rules = RuleSet {
            structuring: Some(Structuring {
                threshold: amount(10_000),
                lower_percent: 90,
                window_seconds: 86_400,
                count: 3,
            }),
            ..RuleSet::default()
        };
        let mut s = snapshot();
        s.sender_balance = amount(100_000);
        s.amount = amount(9_500);
        s.activity.in_band = 1;
        assert!(failed(&rules, &s).is_empty());
        s.activity.in_band = 2;
        assert_eq!(failed(&rules, &s), ["structuring"]);
        s.amount = amount(10_000);
        assert!(
            failed(&rules, &s).is_empty(),
            "at the threshold it is reported, not structured"
        );
        s.amount = amount(8_999);
        assert!(failed(&rules, &s).is_empty(), "below the band");
    }

    #[test]
    fn snapshots_and_rule_sets_round_trip_and_re_evaluate_the_same() {
        let rules = RuleSet {
            max_investors_per_country: BTreeMap::from([(country("US"), 99)]),
            max_holders: Some(1),
            ..RuleSet::default()
        };
        let s = snapshot();
        let stored = serde_json::to_string(&(&rules, &s)).unwrap();
        let (rules2, s2): (RuleSet, Snapshot) = serde_json::from_str(&stored).unwrap();
        assert_eq!((&rules2, &s2), (&rules, &s));
        assert_eq!(evaluate(&rules2, &s2), evaluate(&rules, &s));
        assert!(stored.contains("\"US\":99"), "{stored}");
    }
}
