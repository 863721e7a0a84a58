//! Investors: the people and entities an organization onboards before they
//! may hold its tokens. This module validates onboarding requests (every
//! problem reported at once, each naming its field), holds the KYC state
//! machine, checks wallet addresses (EIP-55), and normalises names the way
//! search and sanctions screening compare them.
//!
//! Personal data (name, e-mail, external reference) is plain text here; it is
//! sealed before it is stored (see [`crate::pii`]) and never goes on-chain:
//! the identity registry only learns a wallet, the investor id, a numeric
//! country and the KYC expiry.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use async_trait::async_trait;

use crate::chain::Address;
use crate::country::Country;
use crate::page::{Page, PageRequest};
use crate::{Actor, InvestorId, OrgId, RepoResult, ValidationError};

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted e-mail address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest accepted external reference.
pub const MAX_EXTERNAL_REF_CHARS: usize = 100;
/// Longest accepted KYC decision reason.
pub const MAX_REASON_CHARS: usize = 500;

/// A person or a legal entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvestorKind {
    /// A natural person.
    Individual,
    /// A company, fund or other legal entity.
    Entity,
}

impl InvestorKind {
    /// The API's and the database's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvestorKind::Individual => "individual",
            InvestorKind::Entity => "entity",
        }
    }
}

impl FromStr for InvestorKind {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        match s {
            "individual" => Ok(InvestorKind::Individual),
            "entity" => Ok(InvestorKind::Entity),
            _ => Err(ValidationError::new("type", "must be individual or entity")),
        }
    }
}

/// An onboarding request as received.
#[derive(Clone, Debug, Deserialize)]
pub struct InvestorDraft {
    /// Legal name.
    pub name: String,
    /// Contact e-mail.
    pub email: String,
    /// ISO 3166-1 alpha-2 country of residence or incorporation.
    pub country: String,
    /// `individual` or `entity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the investor is accredited (qualified).
    pub accredited: bool,
    /// When the accreditation lapses, if it does.
    #[serde(default)]
    pub accreditation_expires_at: Option<DateTime<Utc>>,
    /// The organization's own reference (a CRM id, a KYC provider's applicant id).
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// Accreditation (qualified-investor status) and when it ends or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accreditation {
    /// Whether the investor is accredited (and, with an expiry, until then).
    pub accredited: bool,
    /// When the accreditation ends, or ended (kept for the record when the
    /// investor is no longer accredited).
    pub expires_at: Option<DateTime<Utc>>,
}

impl Accreditation {
    /// The two request fields, judged at `now`: an expiry that has already
    /// passed means the accreditation has lapsed, so the investor is stored
    /// as not accredited, as the expiry sweep would leave it. Every
    /// combination is meaningful; none is refused.
    pub fn at(accredited: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Self {
        Accreditation {
            accredited: accredited && expires_at.is_none_or(|at| at > now),
            expires_at,
        }
    }

    /// Whether it holds at `now`.
    pub fn holds_at(self, now: DateTime<Utc>) -> bool {
        self.accredited && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A validated onboarding request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvestor {
    /// Chosen before storage, so events and jobs can name it.
    pub id: InvestorId,
    /// Legal name, trimmed.
    pub name: String,
    /// E-mail, trimmed, domain in lower case.
    pub email: String,
    /// Country of residence or incorporation.
    pub country: Country,
    /// Person or entity.
    pub kind: InvestorKind,
    /// Accreditation.
    pub accreditation: Accreditation,
    /// The organization's own reference.
    pub external_ref: Option<String>,
}

impl NewInvestor {
    /// Validates a request, reporting every problem at once.
    pub fn parse(draft: &InvestorDraft, now: DateTime<Utc>) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let name = keep(e, parse_name(&draft.name, "name"));
        let email = keep(e, parse_email(&draft.email, "email"));
        let country = keep(e, Country::parse(&draft.country, "country"));
        let kind = keep(e, draft.kind.parse::<InvestorKind>());
        let accreditation = Some(Accreditation::at(
            draft.accredited,
            draft.accreditation_expires_at,
            now,
        ));
        let external_ref = keep(
            e,
            draft
                .external_ref
                .as_deref()
                .map(|r| parse_external_ref(r, "external_ref"))
                .transpose(),
        );
        match (name, email, country, kind, accreditation, external_ref) {
            (
                Some(name),
                Some(email),
                Some(country),
                Some(kind),
                Some(accreditation),
                Some(external_ref),
            ) if errors.is_empty() => Ok(NewInvestor {
                id: InvestorId::new(),
                name,
                email,
                country,
                kind,
                accreditation,
                external_ref,
            }),
            _ => Err(errors),
        }
    }
}

/// The value, or `None` with its error collected.
fn keep<T>(errors: &mut Vec<ValidationError>, r: Result<T, ValidationError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// A legal name: at most [`MAX_NAME_CHARS`] characters as sent, not blank, no
/// control characters; stored without surrounding spaces.
pub fn parse_name(raw: &str, field: &str) -> Result<String, ValidationError> {
    parse_text(raw, field, MAX_NAME_CHARS)
}

/// Free text (a name, a reason): at most `max` characters as sent, not
/// blank, no control characters ([`NAME_PATTERN`]); stored trimmed.
pub fn parse_text(raw: &str, field: &str, max: usize) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {max} characters, not blank"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// An e-mail address, checked for shape only (deliverability is the KYC
/// provider's concern), exactly as [`EMAIL_PATTERN`] states it: a local part
/// of 1 to 64 characters that are not `@`, white space or control
/// characters, then `@` and a domain of at least two dot-separated labels of
/// ASCII letters, digits and hyphens; at most [`MAX_EMAIL_CHARS`] in all.
/// The domain is lower-cased; the local part is kept as given.
pub fn parse_email(raw: &str, field: &str) -> Result<String, ValidationError> {
    let bad = || {
        ValidationError::new(
            field,
            format!(
                "must be an e-mail address such as ana@example.com, at most {MAX_EMAIL_CHARS} characters"
            ),
        )
    };
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err(bad());
    }
    let (local, domain) = raw.split_once('@').ok_or_else(bad)?;
    let local_ok = (1..=64).contains(&local.chars().count())
        && local
            .chars()
            .all(|c| c != '@' && !c.is_whitespace() && !c.is_control());
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !local_ok || !domain_ok {
        return Err(bad());
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// [`parse_email`]'s rule as a regular expression, for the API description.
pub const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$";

/// [`parse_name`]'s rule as a regular expression (with at most
/// [`MAX_NAME_CHARS`] characters).
pub const NAME_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// [`parse_external_ref`]'s rule as a regular expression.
pub const EXTERNAL_REF_PATTERN: &str = "^[A-Za-z0-9._:-]{1,100}$";

/// An organization's own reference: 1 to [`MAX_EXTERNAL_REF_CHARS`] of
/// letters, digits and `. _ : -`.
pub fn parse_external_ref(raw: &str, field: &str) -> Result<String, ValidationError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_EXTERNAL_REF_CHARS
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_EXTERNAL_REF_CHARS} letters, digits, '.', '_', ':' or '-'"),
        ))
    }
}

/// A wallet address: `0x` and 40 hex digits. A mixed-case address carries an
/// EIP-55 checksum and must match it (a typo in one character is caught); an
/// all-lower- or all-upper-case one carries none and is taken as written.
pub fn parse_wallet(raw: &str, field: &str) -> Result<Address, ValidationError> {
    let hex = raw
        .strip_prefix("0x")
        .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ValidationError::new(field, "must be 0x followed by 40 hex digits"))?;
    let address: Address = raw
        .parse()
        .map_err(|_| ValidationError::new(field, "must be 0x followed by 40 hex digits"))?;
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && address.to_checksum(None) != raw {
        return Err(ValidationError::new(
            field,
            format!(
                "fails its EIP-55 checksum (a character is mistyped?); the checksummed form of these digits is {}",
                address.to_checksum(None)
            ),
        ));
    }
    Ok(address)
}

/// A name as search and sanctions screening compare it: accents removed
/// (compatibility decomposition, combining marks dropped), lower case,
/// punctuation as word breaks, words sorted, one space between. "Müller,
/// Hans-Peter" and "hans peter MULLER" normalise alike.
pub fn normalize_name(raw: &str) -> String {
    let folded: String = raw
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let mut words: Vec<&str> = folded.split_whitespace().collect();
    words.sort_unstable();
    words.join(" ")
}

/// Where an investor's KYC stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KycStatus {
    /// No decision yet.
    Pending,
    /// Approved until its expiry.
    Approved,
    /// Refused (or an approval revoked).
    Rejected,
    /// An approval that reached its expiry.
    Expired,
}

impl KycStatus {
    /// The API's and the database's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            KycStatus::Pending => "pending",
            KycStatus::Approved => "approved",
            KycStatus::Rejected => "rejected",
            KycStatus::Expired => "expired",
        }
    }

    /// The status after a decision taken at `now`. Every decision applies
    /// from every status: a later decision replaces the current one (an
    /// approval renews an approval or re-approves on new evidence; a
    /// rejection refuses or revokes). An approval whose expiry has already
    /// passed is recorded, and is expired at once.
    pub fn after(self, decision: &KycDecision, now: DateTime<Utc>) -> KycStatus {
        match decision {
            KycDecision::Approve { expires_at } if *expires_at <= now => KycStatus::Expired,
            KycDecision::Approve { .. } => KycStatus::Approved,
            KycDecision::Reject => KycStatus::Rejected,
        }
    }

    /// The status once the approval's `expires_at` has passed at `now`: only
    /// an approval expires.
    pub fn expired(self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<KycStatus> {
        (self == KycStatus::Approved && expires_at <= now).then_some(KycStatus::Expired)
    }

    /// Whether wallets of an investor in this status belong in the identity
    /// registry.
    pub const fn registers_on_chain(self) -> bool {
        matches!(self, KycStatus::Approved)
    }
}

impl fmt::Display for KycStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KycStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        match s {
            "pending" => Ok(KycStatus::Pending),
            "approved" => Ok(KycStatus::Approved),
            "rejected" => Ok(KycStatus::Rejected),
            "expired" => Ok(KycStatus::Expired),
            _ => Err(ValidationError::new(
                "kyc_status",
                "must be pending, approved, rejected or expired",
            )),
        }
    }
}

/// A KYC decision, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KycDecision {
    /// Approved until `expires_at`.
    Approve {
        /// When the approval lapses.
        expires_at: DateTime<Utc>,
    },
    /// Refused, or an approval revoked.
    Reject,
}

/// A KYC decision as received (from a compliance officer or a provider).
#[derive(Clone, Debug, Deserialize)]
pub struct KycDecisionDraft {
    /// `approved` or `rejected`.
    pub decision: String,
    /// Required for an approval, refused with a rejection.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Why; kept in the audit trail.
    pub reason: String,
}

impl KycDecisionDraft {
    /// Validates the decision and its reason, reporting every problem at once.
    pub fn parse(&self) -> Result<(KycDecision, String), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let decision = match (self.decision.as_str(), self.expires_at) {
            ("approved", Some(at)) => Some(KycDecision::Approve { expires_at: at }),
            ("approved", None) => {
                errors.push(ValidationError::new(
                    "expires_at",
                    "is required with an approval",
                ));
                None
            }
            ("rejected", None) => Some(KycDecision::Reject),
            ("rejected", Some(_)) => {
                errors.push(ValidationError::new(
                    "expires_at",
                    "may only be given with an approval",
                ));
                None
            }
            _ => {
                errors.push(ValidationError::new(
                    "decision",
                    "must be approved or rejected",
                ));
                None
            }
        };
        let reason = parse_text(&self.reason, "reason", MAX_REASON_CHARS)
            .map_err(|e| errors.push(e))
            .ok();
        match (decision, reason) {
            (Some(d), Some(r)) if errors.is_empty() => Ok((d, r)),
            _ => Err(errors),
        }
    }
}

/// A change to an investor as received: only the fields present change.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvestorPatchDraft {
    /// New legal name.
    #[serde(default)]
    pub name: Option<String>,
    /// New contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// New ISO 3166-1 alpha-2 country.
    #[serde(default)]
    pub country: Option<String>,
    /// New accreditation status.
    #[serde(default)]
    pub accredited: Option<bool>,
    /// New accreditation expiry; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub accreditation_expires_at: Option<Option<DateTime<Utc>>>,
}

/// A field that may be absent (outer `None`) or `null` (inner `None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A validated change to an investor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvestorPatch {
    /// New legal name.
    pub name: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New country.
    pub country: Option<Country>,
    /// New accreditation status.
    pub accredited: Option<bool>,
    /// New accreditation expiry (`Some(None)` clears it).
    pub accreditation_expires_at: Option<Option<DateTime<Utc>>>,
}

impl InvestorPatch {
    /// Validates a change, reporting every problem at once; an empty change
    /// is refused (it would be a request that does nothing).
    pub fn parse(draft: &InvestorPatchDraft) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let name = keep(
            e,
            draft
                .name
                .as_deref()
                .map(|n| parse_name(n, "name"))
                .transpose(),
        );
        let email = keep(
            e,
            draft
                .email
                .as_deref()
                .map(|m| parse_email(m, "email"))
                .transpose(),
        );
        let country = keep(
            e,
            draft
                .country
                .as_deref()
                .map(|c| Country::parse(c, "country"))
                .transpose(),
        );
        let patch = InvestorPatch {
            name: name.flatten(),
            email: email.flatten(),
            country: country.flatten(),
            accredited: draft.accredited,
            accreditation_expires_at: draft.accreditation_expires_at,
        };
        if errors.is_empty() && patch == InvestorPatch::default() {
            errors.push(ValidationError::new(
                "body",
                "must change at least one of name, email, country, accredited, accreditation_expires_at",
            ));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }

    /// The investor's accreditation after this change, judged at `now` (see
    /// [`Accreditation::at`]).
    pub fn accreditation(&self, current: Accreditation, now: DateTime<Utc>) -> Accreditation {
        if self.accredited.is_none() && self.accreditation_expires_at.is_none() {
            return current;
        }
        Accreditation::at(
            self.accredited.unwrap_or(current.accredited),
            self.accreditation_expires_at.unwrap_or(current.expires_at),
            now,
        )
    }

    /// The names of the fields it changes, for the audit trail (never their
    /// values: they are personal data).
    pub fn fields(&self) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if self.name.is_some() {
            fields.push("name");
        }
        if self.email.is_some() {
            fields.push("email");
        }
        if self.country.is_some() {
            fields.push("country");
        }
        if self.accredited.is_some() {
            fields.push("accredited");
        }
        if self.accreditation_expires_at.is_some() {
            fields.push("accreditation_expires_at");
        }
        fields
    }
}

/// A KYC provider's callback body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDecisionDraft {
    /// The investor, by our id...
    #[serde(default)]
    pub investor_id: Option<String>,
    /// ...or by the organization's reference (one of the two).
    #[serde(default)]
    pub external_ref: Option<String>,
    /// `approved` or `rejected`.
    pub decision: String,
    /// Required for an approval.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Why.
    pub reason: String,
    /// The provider's own reference for the check.
    pub provider_ref: String,
}

/// Which investor a provider's decision is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvestorRef {
    /// By id.
    Id(InvestorId),
    /// By the organization's external reference.
    ExternalRef(String),
}

/// A validated provider decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderDecision {
    /// The investor.
    pub investor: InvestorRef,
    /// The decision.
    pub decision: KycDecision,
    /// Why.
    pub reason: String,
    /// The provider's reference, kept in the audit trail.
    pub provider_ref: String,
}

impl ProviderDecisionDraft {
    /// Validates the callback, reporting every problem at once.
    pub fn parse(&self) -> Result<ProviderDecision, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let investor = match (self.investor_id.as_deref(), self.external_ref.as_deref()) {
            (Some(id), None) => keep(
                &mut errors,
                id.parse::<uuid::Uuid>()
                    .map(|u| InvestorRef::Id(InvestorId::from_uuid(u)))
                    .map_err(|_| ValidationError::new("investor_id", "must be a UUID")),
            ),
            (None, Some(r)) => keep(
                &mut errors,
                parse_external_ref(r, "external_ref").map(InvestorRef::ExternalRef),
            ),
            _ => {
                errors.push(ValidationError::new(
                    "investor_id",
                    "exactly one of investor_id and external_ref is required",
                ));
                None
            }
        };
        let decided = KycDecisionDraft {
            decision: self.decision.clone(),
            expires_at: self.expires_at,
            reason: self.reason.clone(),
        }
        .parse()
        .map_err(|mut e| errors.append(&mut e))
        .ok();
        let provider_ref = keep(
            &mut errors,
            parse_external_ref(&self.provider_ref, "provider_ref"),
        );
        match (investor, decided, provider_ref) {
            (Some(investor), Some((decision, reason)), Some(provider_ref)) if errors.is_empty() => {
                Ok(ProviderDecision {
                    investor,
                    decision,
                    reason,
                    provider_ref,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A stored investor, its personal data opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Investor {
    /// Id.
    pub id: InvestorId,
    /// Organization.
    pub org_id: OrgId,
    /// Legal name.
    pub name: String,
    /// Contact e-mail.
    pub email: String,
    /// Country of residence or incorporation.
    pub country: Country,
    /// Person or entity.
    pub kind: InvestorKind,
    /// Accreditation.
    pub accreditation: Accreditation,
    /// The organization's own reference.
    pub external_ref: Option<String>,
    /// Where KYC stands.
    pub kyc_status: KycStatus,
    /// When the current approval lapses.
    pub kyc_expires_at: Option<DateTime<Utc>>,
    /// Its wallets, oldest first.
    pub wallets: Vec<Wallet>,
    /// Where each of its wallets stands in the organization's identity
    /// registry, including wallets removed since (by address).
    pub registrations: Vec<crate::identity::Registration>,
    /// The latest sanctions screening (none before the first).
    pub screening: Option<crate::sanctions::Screening>,
    /// Database time of creation.
    pub created_at: DateTime<Utc>,
    /// Database time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// A wallet of an investor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wallet {
    /// The address.
    pub address: Address,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// Which investors a list returns (every given condition holds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvestorFilter {
    /// In this KYC status.
    pub kyc_status: Option<KycStatus>,
    /// In this country.
    pub country: Option<Country>,
    /// Exactly this name (compared normalised: case, accents, punctuation
    /// and word order do not matter) or exactly this external reference.
    pub q: Option<String>,
}

/// `investor.*` events and audit entries carry no personal data: they name
/// the investor by id.
pub const INVESTOR_CREATED: &str = "investor.created";
/// A wallet was added to an investor.
pub const INVESTOR_WALLET_ADDED: &str = "investor.wallet_added";
/// A wallet was removed from an investor.
pub const INVESTOR_WALLET_REMOVED: &str = "investor.wallet_removed";
/// A KYC approval (or renewal).
pub const INVESTOR_KYC_APPROVED: &str = "investor.kyc_approved";
/// A KYC rejection (or revocation).
pub const INVESTOR_KYC_REJECTED: &str = "investor.kyc_rejected";
/// A KYC approval reached its expiry (or was recorded already expired).
pub const INVESTOR_KYC_EXPIRED: &str = "investor.kyc_expired";
/// Personal data, country or accreditation changed (the event names the
/// fields, not their values).
pub const INVESTOR_UPDATED: &str = "investor.updated";
/// An accreditation reached its expiry: the investor is no longer accredited.
pub const INVESTOR_ACCREDITATION_EXPIRED: &str = "investor.accreditation_expired";

impl KycStatus {
    /// The event (and audit action) of entering this status.
    pub const fn event(self) -> &'static str {
        match self {
            KycStatus::Approved => INVESTOR_KYC_APPROVED,
            KycStatus::Rejected => INVESTOR_KYC_REJECTED,
            KycStatus::Expired => INVESTOR_KYC_EXPIRED,
            KycStatus::Pending => INVESTOR_CREATED,
        }
    }
}

/// Investors of an organization, their personal data sealed at rest.
#[async_trait]
pub trait InvestorRepository: Send + Sync {
    /// Stores a new investor (`kyc_status: pending`) with its audit entry and
    /// its `investor.created` event, in one transaction. An external
    /// reference already used in the organization is a conflict.
    async fn create(
        &self,
        org: OrgId,
        investor: &NewInvestor,
        actor: &Actor,
    ) -> RepoResult<Investor>;

    /// One investor of `org`.
    async fn get(&self, org: OrgId, id: InvestorId) -> RepoResult<Investor>;

    /// The investor of `org` owning `address`, if one does.
    async fn find_by_wallet(&self, org: OrgId, address: Address) -> RepoResult<Option<Investor>>;

    /// Investors of `org` matching `filter`, oldest first.
    async fn list(
        &self,
        org: OrgId,
        filter: &InvestorFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Investor>>;

    /// Adds a wallet to an investor of `org`, with its audit entry and
    /// `investor.wallet_added` event; answers the investor. A wallet that
    /// belongs to an investor of the organization already (this one or
    /// another) is a conflict; an unknown investor is not found.
    async fn add_wallet(
        &self,
        org: OrgId,
        id: InvestorId,
        address: Address,
        actor: &Actor,
    ) -> RepoResult<Investor>;

    /// Records a KYC decision taken at `now` (see [`KycStatus::after`]),
    /// with its audit entry (carrying the reason) and its event, in one
    /// transaction; answers the investor.
    async fn decide_kyc(
        &self,
        org: OrgId,
        id: InvestorId,
        decision: KycDecision,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Investor>;

    /// Changes an investor's personal data, country or accreditation, with
    /// its audit entry and `investor.updated` event; a new country is
    /// planned for the registry; answers the investor.
    async fn update(
        &self,
        org: OrgId,
        id: InvestorId,
        patch: &InvestorPatch,
        actor: &Actor,
    ) -> RepoResult<Investor>;

    /// Records a KYC provider's decision as [`Self::decide_kyc`] does, and
    /// in the same transaction the callback's signature `digest`: a digest
    /// seen before is a conflict and nothing changes.
    async fn decide_kyc_from_provider(
        &self,
        org: OrgId,
        decision: &ProviderDecision,
        digest: &str,
    ) -> RepoResult<Investor>;

    /// Clears the investor's possible sanctions matches (a compliance
    /// officer's judgement, with its reason in the audit trail and an
    /// `investor.screening_cleared` event); a conflict when none awaits
    /// clearance. Hits are not cleared.
    async fn clear_screening(
        &self,
        org: OrgId,
        id: InvestorId,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Investor>;

    /// Removes a wallet of an investor, with its audit entry and
    /// `investor.wallet_removed` event. Not found if the investor has no
    /// such wallet.
    async fn remove_wallet(
        &self,
        org: OrgId,
        id: InvestorId,
        address: Address,
        actor: &Actor,
    ) -> RepoResult<()>;
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    fn draft() -> InvestorDraft {
        InvestorDraft {
            name: "  Ana Müller ".into(),
            email: "Ana.Muller@Example.COM".into(),
            country: "DE".into(),
            kind: "individual".into(),
            accredited: true,
            accreditation_expires_at: Some(now() + TimeDelta::days(365)),
            external_ref: Some("crm:4711".into()),
        }
    }

    fn fields(errors: &[ValidationError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_valid_request_is_normalised() {
        let inv = NewInvestor::parse(&draft(), now()).unwrap();
        assert_eq!(inv.name, "Ana Müller");
        assert_eq!(inv.email, "Ana.Muller@example.com");
        assert_eq!(inv.country.alpha2(), "DE");
        assert_eq!(inv.kind, InvestorKind::Individual);
        assert!(inv.accreditation.holds_at(now()));
        assert!(!inv.accreditation.holds_at(now() + TimeDelta::days(366)));
        assert_eq!(inv.external_ref.as_deref(), Some("crm:4711"));
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let bad = InvestorDraft {
            name: " ".into(),
            email: "ana@localhost".into(),
            country: "de".into(),
            kind: "trust".into(),
            accredited: false,
            accreditation_expires_at: Some(now() + TimeDelta::days(1)),
            external_ref: Some("has space".into()),
        };
        let errors = NewInvestor::parse(&bad, now()).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["name", "email", "country", "type", "external_ref"]
        );
    }

    #[test]
    fn an_accreditation_that_has_ended_is_stored_as_lapsed() {
        let mut d = draft();
        d.accreditation_expires_at = Some(now());
        let lapsed = NewInvestor::parse(&d, now()).unwrap().accreditation;
        assert_eq!(
            lapsed,
            Accreditation {
                accredited: false,
                expires_at: Some(now())
            }
        );
        d.accreditation_expires_at = None;
        let open = NewInvestor::parse(&d, now()).unwrap().accreditation;
        assert!(open.accredited && open.holds_at(now() + TimeDelta::days(10_000)));
        // Not accredited, with the date a past accreditation ended: kept.
        d.accredited = false;
        d.accreditation_expires_at = Some(now() - TimeDelta::days(3));
        let former = NewInvestor::parse(&d, now()).unwrap().accreditation;
        assert!(!former.accredited && former.expires_at.is_some());
    }

    #[test]
    fn emails_are_checked_for_shape() {
        let pattern = regex::Regex::new(EMAIL_PATTERN).unwrap();
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "ü@xn--exmple-cua.de",
        ] {
            assert!(parse_email(ok, "email").is_ok(), "{ok}");
            assert!(pattern.is_match(ok), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@b_c.com",
            "ü@exämple.de",
            " a@b.co",
            "a\u{85}@b.co",
        ] {
            assert!(parse_email(bad, "email").is_err(), "{bad}");
            assert!(!pattern.is_match(bad), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(parse_email(&long, "email").is_err());
    }

    #[test]
    fn names_have_bounds_and_no_control_characters() {
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS), "name").is_ok());
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS + 1), "name").is_err());
        assert!(parse_name("Ana\u{0}", "name").is_err());
    }

    #[test]
    fn wallets_are_checked_against_their_eip55_checksum() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            parse_wallet(good, "address").unwrap().to_checksum(None),
            good
        );
        // Unchecksummed forms are taken as written.
        assert!(parse_wallet(&good.to_lowercase(), "address").is_ok());
        assert!(parse_wallet(&format!("0x{}", &good[2..].to_uppercase()), "address").is_ok());
        // One letter's case flipped: the checksum catches it and names the field.
        let typo = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let e = parse_wallet(typo, "address").unwrap_err();
        assert_eq!(e.field, "address");
        assert!(e.message.contains("EIP-55"), "{}", e.message);
        assert!(e.message.contains(good), "{}", e.message);
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert!(parse_wallet(bad, "address").is_err(), "{bad}");
        }
    }

    #[test]
    fn names_normalise_across_case_accents_punctuation_and_word_order() {
        let a = normalize_name("Müller, Hans-Peter");
        assert_eq!(a, "hans muller peter");
        assert_eq!(normalize_name("hans peter MULLER"), a);
        assert_eq!(normalize_name("  PETER   Hans.Müller "), a);
        assert_eq!(normalize_name("Ｍüｌｌｅｒ"), "muller");
        assert_eq!(normalize_name("!!"), "");
    }

    #[test]
    fn a_later_decision_replaces_the_current_one_and_only_approvals_expire() {
        let approve = KycDecision::Approve {
            expires_at: now() + TimeDelta::days(30),
        };
        for from in [
            KycStatus::Pending,
            KycStatus::Approved,
            KycStatus::Rejected,
            KycStatus::Expired,
        ] {
            assert_eq!(from.after(&approve, now()), KycStatus::Approved);
            assert_eq!(from.after(&KycDecision::Reject, now()), KycStatus::Rejected);
            // An approval whose expiry has passed is recorded, expired.
            let stale = KycDecision::Approve { expires_at: now() };
            assert_eq!(from.after(&stale, now()), KycStatus::Expired);
        }
        let at = now();
        assert_eq!(
            KycStatus::Approved.expired(at, at),
            Some(KycStatus::Expired)
        );
        assert_eq!(
            KycStatus::Approved.expired(at + TimeDelta::seconds(1), at),
            None
        );
        assert_eq!(KycStatus::Rejected.expired(at, at), None);
        assert_eq!(KycStatus::Pending.expired(at, at), None);
        assert!(KycStatus::Approved.registers_on_chain());
        assert!(!KycStatus::Expired.registers_on_chain());
        for s in ["pending", "approved", "rejected", "expired"] {
            assert_eq!(s.parse::<KycStatus>().unwrap().as_str(), s);
        }
    }

    #[test]
    fn kyc_decisions_need_an_expiry_to_approve_and_a_reason_always() {
        let d = |decision: &str, expires_at, reason: &str| KycDecisionDraft {
            decision: decision.into(),
            expires_at,
            reason: reason.into(),
        };
        let year = now() + TimeDelta::days(365);
        let later = Some(year);
        assert_eq!(
            d("approved", later, " documents checked ").parse().unwrap(),
            (
                KycDecision::Approve { expires_at: year },
                "documents checked".to_owned()
            )
        );
        assert_eq!(
            d("rejected", None, "sanctions").parse().unwrap().0,
            KycDecision::Reject
        );
        let errors = d("approved", None, "").parse().unwrap_err();
        assert_eq!(fields(&errors), ["expires_at", "reason"]);
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let errors = d("approved", later, &long).parse().unwrap_err();
        assert_eq!(fields(&errors), ["reason"]);
        assert!(
            d("approved", later, &"x".repeat(MAX_REASON_CHARS))
                .parse()
                .is_ok()
        );
        let errors = d("rejected", later, "x").parse().unwrap_err();
        assert_eq!(fields(&errors), ["expires_at"]);
        let errors = d("maybe", None, "x").parse().unwrap_err();
        assert_eq!(fields(&errors), ["decision"]);
    }
}
