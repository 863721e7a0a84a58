//! Investors of the caller's organization: onboard (201, `kyc_status:
//! pending`), read one, list with filters. Admin and operator keys onboard
//! (DESIGN's roles: operators handle investors and wallets); every role reads. Personal data in these bodies is sealed at
//! rest and never logged.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::InvestorId;
use rwa_domain::country::Country;
use rwa_domain::investor::{
    Investor, InvestorDraft, InvestorFilter, InvestorPatch, InvestorPatchDraft, KycDecisionDraft,
    KycStatus, MAX_NAME_CHARS, NewInvestor, parse_wallet,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::schema::CountryCode;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_investor, list_investors))
        .routes(routes!(get_investor, update_investor))
        .routes(routes!(add_wallet))
        .routes(routes!(decide_kyc))
        .routes(routes!(clear_screening))
        .routes(routes!(remove_wallet))
}

/// A wallet of an investor.
#[derive(Serialize, ToSchema)]
pub(crate) struct WalletView {
    /// EIP-55 checksummed.
    address: String,
    added_at: DateTime<Utc>,
}

/// A wallet's entry in the organization's identity registry.
#[derive(Serialize, ToSchema)]
pub(crate) struct RegistrationView {
    /// EIP-55 checksummed.
    address: String,
    /// `pending` (a batch will carry the change), `registered` (its
    /// transaction settled), `failed` (refused on-chain; `error` says why;
    /// tried again when the wallet's entry changes) or `removed`.
    #[schema(pattern = "^(pending|registered|failed|removed)$")]
    status: String,
    /// Why the registry refused the change, when `failed`.
    error: Option<String>,
    updated_at: DateTime<Utc>,
}

/// One sanctions list entry the investor matches.
#[derive(Serialize, ToSchema)]
pub(crate) struct MatchView {
    /// The list.
    list: String,
    /// The entry's reference in it (the SDN `ent_num`).
    reference: String,
    /// The entry's primary name.
    listed_name: String,
    /// The listed name or alias that matched, or the wallet.
    matched: String,
    /// `name`, `alias` or `wallet`.
    #[schema(pattern = "^(name|alias|wallet)$")]
    kind: String,
    /// Similarity of the normalised names (Jaro-Winkler), 1 for exact
    /// matches and wallets.
    score: f64,
    /// An exact match: approval is refused.
    hit: bool,
    /// A possible match a compliance officer cleared.
    cleared: bool,
}

/// The investor's latest sanctions screening.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScreeningView {
    /// `clear`, `possible_match` (approval waits for a clearance) or `hit`
    /// (approval is refused).
    #[schema(pattern = "^(clear|possible_match|hit)$")]
    status: String,
    matches: Vec<MatchView>,
    /// The list versions screened against, by list name.
    lists: std::collections::BTreeMap<String, uuid::Uuid>,
    screened_at: DateTime<Utc>,
}

impl From<rwa_domain::sanctions::Screening> for ScreeningView {
    fn from(s: rwa_domain::sanctions::Screening) -> Self {
        use rwa_domain::sanctions::MatchKind;
        Self {
            status: s.status.as_str().to_owned(),
            matches: s
                .matches
                .into_iter()
                .map(|m| MatchView {
                    list: m.list,
                    reference: m.reference,
                    listed_name: m.listed_name,
                    matched: m.matched,
                    kind: match m.kind {
                        MatchKind::Name => "name",
                        MatchKind::Alias => "alias",
                        MatchKind::Wallet => "wallet",
                    }
                    .to_owned(),
                    score: m.score,
                    hit: m.hit,
                    cleared: m.cleared,
                })
                .collect(),
            lists: s.lists,
            screened_at: s.screened_at,
        }
    }
}

/// Body of `POST /v1/investors/{id}/screening/clear`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearScreening {
    /// Why the possible matches are not this investor; kept in the audit
    /// trail. Not blank, no control characters.
    #[schema(
        max_length = 500,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    reason: String,
}

/// Body of `PATCH /v1/investors/{id}`: the fields present change, the
/// others stay; at least one is required. A new country of an approved
/// investor is carried to the identity registry. Setting `accredited` or
/// `accreditation_expires_at` judges the accreditation again as at
/// onboarding (an expiry already past means not accredited).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(crate) struct UpdateInvestor {
    /// Legal name: not blank, no control characters.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// Contact e-mail.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(
        nullable = false,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    email: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Option<CountryCode>, nullable = false)]
    country: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    accredited: Option<bool>,
    /// When the accreditation ends; `null` removes the end.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    accreditation_expires_at: Option<Option<DateTime<Utc>>>,
}

/// A field that may be absent (`None`) but not `null` (a 422 naming it).
pub(crate) fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A field that may be absent (outer `None`) or `null` (inner `None`).
fn present<'de, D>(d: D) -> Result<Option<Option<DateTime<Utc>>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<DateTime<Utc>>::deserialize(d).map(Some)
}

/// Body of `POST /v1/investors/{id}/kyc`: a decision replaces the current
/// one, whatever it is. `approved` needs `expires_at` (one already past is
/// recorded, and the KYC is `expired` at once); `rejected` takes none. The
/// reason (kept in the audit trail) is not blank, has no control characters
/// and at most 500 characters.
#[derive(Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum KycDecisionBody {
    Approved {
        expires_at: DateTime<Utc>,
        reason: String,
    },
    Rejected {
        reason: String,
    },
}

/// Written by hand: the derived schema of a tagged enum would not say that
/// other properties are refused, and this one does.
impl utoipa::PartialSchema for KycDecisionBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let text = |s: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(s))
        };
        let variant = |decision: &str, expires: bool| {
            let mut o = ObjectBuilder::new()
                .property(
                    "decision",
                    text("The decision.").enum_values(Some([decision])),
                )
                .required("decision")
                .property(
                    "reason",
                    text("Why; kept in the audit trail.")
                        .max_length(Some(rwa_domain::investor::MAX_REASON_CHARS))
                        .pattern(Some(rwa_domain::investor::NAME_PATTERN)),
                )
                .required("reason")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)));
            if expires {
                o = o
                    .property(
                        "expires_at",
                        text("When the approval lapses.")
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
                    )
                    .required("expires_at");
            }
            o
        };
        OneOfBuilder::new()
            .item(variant("approved", true))
            .item(variant("rejected", false))
            .into()
    }
}

impl ToSchema for KycDecisionBody {}

/// Body of `POST /v1/investors/{id}/wallets`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddWallet {
    /// `0x` and 40 hex digits. In mixed case the digits carry an EIP-55
    /// checksum and must match it (a mistyped character is a 422 naming
    /// `address`; JSON Schema cannot state a checksum); all lower or all
    /// upper case carries none.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    address: String,
}

/// A person or an entity.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InvestorType {
    Individual,
    Entity,
}

/// Body of `POST /v1/investors`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateInvestor {
    /// Legal name: not blank, no control characters; stored without
    /// surrounding spaces.
    #[schema(
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// Contact e-mail; the domain in ASCII (internationalised domains in
    /// their `xn--` form).
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    email: String,
    #[schema(value_type = CountryCode)]
    country: String,
    #[serde(rename = "type")]
    kind: InvestorType,
    /// Whether the investor is accredited (qualified).
    accredited: bool,
    /// When the accreditation ends, or ended. A date already past means it
    /// has lapsed: the investor is stored as not accredited.
    #[serde(default)]
    accreditation_expires_at: Option<DateTime<Utc>>,
    /// The organization's own reference (a CRM id, a KYC provider's
    /// applicant id), unique in the organization (409 otherwise); `q=`
    /// finds it exactly.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,100}$")]
    external_ref: Option<String>,
}

/// An investor.
#[derive(Serialize, ToSchema)]
pub(crate) struct InvestorView {
    id: uuid::Uuid,
    name: String,
    email: String,
    #[schema(value_type = CountryCode)]
    country: String,
    #[serde(rename = "type")]
    kind: InvestorType,
    accredited: bool,
    accreditation_expires_at: Option<DateTime<Utc>>,
    external_ref: Option<String>,
    /// Its wallets, oldest first.
    wallets: Vec<WalletView>,
    /// Where its wallets stand in the organization's identity registry,
    /// by address, including wallets removed since. A wallet appears once
    /// the investor is approved.
    registrations: Vec<RegistrationView>,
    /// The latest sanctions screening: on onboarding, on every change, on
    /// approval, and for approved investors whenever a list is loaded.
    screening: Option<ScreeningView>,
    /// `pending`, `approved`, `rejected` or `expired`.
    kyc_status: String,
    /// When the current KYC approval lapses.
    kyc_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Investor> for InvestorView {
    fn from(i: Investor) -> Self {
        Self {
            id: i.id.as_uuid(),
            name: i.name,
            email: i.email,
            country: i.country.to_string(),
            kind: match i.kind {
                rwa_domain::investor::InvestorKind::Individual => InvestorType::Individual,
                rwa_domain::investor::InvestorKind::Entity => InvestorType::Entity,
            },
            accredited: i.accreditation.accredited,
            accreditation_expires_at: i.accreditation.expires_at,
            external_ref: i.external_ref,
            wallets: i
                .wallets
                .iter()
                .map(|w| WalletView {
                    address: w.address.to_checksum(None),
                    added_at: w.added_at,
                })
                .collect(),
            registrations: i
                .registrations
                .into_iter()
                .map(|r| RegistrationView {
                    address: r.address.to_checksum(None),
                    status: r.status.as_str().to_owned(),
                    error: r.error,
                    updated_at: r.updated_at,
                })
                .collect(),
            screening: i.screening.map(Into::into),
            kyc_status: i.kyc_status.as_str().to_owned(),
            kyc_expires_at: i.kyc_expires_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// Filters and page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InvestorListParams {
    /// Only investors in this KYC status.
    #[param(pattern = "^(pending|approved|rejected|expired)$")]
    kyc_status: Option<String>,
    /// Only investors of this country.
    #[param(value_type = Option<CountryCode>)]
    country: Option<String>,
    /// Exactly this name (case, accents, punctuation and word order do not
    /// matter) or exactly this external reference.
    #[param(min_length = 1, max_length = 200)]
    q: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

/// Onboards an investor, `kyc_status: pending`.
#[utoipa::path(post, path = "/v1/investors", tag = "investors",
    security(("api_key" = ["admin", "operator"])),
    request_body = CreateInvestor,
    responses(
        (status = 201, body = InvestorView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the external reference names another investor of the organization"),
    ))]
async fn create_investor(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Json(body): Json<CreateInvestor>,
) -> ApiResult<(StatusCode, axum::Json<InvestorView>)> {
    let draft = InvestorDraft {
        name: body.name,
        email: body.email,
        country: body.country,
        kind: match body.kind {
            InvestorType::Individual => "individual".into(),
            InvestorType::Entity => "entity".into(),
        },
        accredited: body.accredited,
        accreditation_expires_at: body.accreditation_expires_at,
        external_ref: body.external_ref,
    };
    let investor = NewInvestor::parse(&draft, Utc::now()).map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let stored = state
        .investors
        .create(caller.org_id, &investor, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(stored.into())))
}

/// Lists the organization's investors, oldest first.
#[utoipa::path(get, path = "/v1/investors", tag = "investors",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(InvestorListParams),
    responses((status = 200, body = ListView<InvestorView>)))]
async fn list_investors(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Query(params): Query<InvestorListParams>,
) -> ApiResult<axum::Json<ListView<InvestorView>>> {
    let mut errors = Vec::new();
    let kyc_status = params
        .kyc_status
        .as_deref()
        .map(str::parse::<KycStatus>)
        .transpose()
        .map_err(|e| errors.push(FieldError::from(e)))
        .ok()
        .flatten();
    let country = params
        .country
        .as_deref()
        .map(|c| Country::parse(c, "country"))
        .transpose()
        .map_err(|e| errors.push(FieldError::from(e)))
        .ok()
        .flatten();
    if let Some(q) = &params.q
        && !(1..=MAX_NAME_CHARS).contains(&q.chars().count())
    {
        errors.push(FieldError {
            field: "q".into(),
            message: format!("must be 1 to {MAX_NAME_CHARS} characters"),
        });
    }
    let page = rwa_domain::page::PageRequest::parse(params.limit, params.cursor.as_deref());
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = InvestorFilter {
        kyc_status,
        country,
        q: params.q,
    };
    let investors = state.investors.list(caller.org_id, &filter, page?).await?;
    Ok(axum::Json(ListView::from_page(investors)))
}

/// One investor of the organization.
#[utoipa::path(get, path = "/v1/investors/{id}", tag = "investors",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    responses((status = 200, body = InvestorView)))]
async fn get_investor(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<InvestorView>> {
    let id: InvestorId = path_id(&id)?;
    let investor = state.investors.get(caller.org_id, id).await?;
    Ok(axum::Json(investor.into()))
}

/// Changes the investor's name, e-mail, country or accreditation.
#[utoipa::path(patch, path = "/v1/investors/{id}", tag = "investors",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    request_body = UpdateInvestor,
    responses((status = 200, body = InvestorView)))]
async fn update_investor(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateInvestor>,
) -> ApiResult<axum::Json<InvestorView>> {
    let id: InvestorId = path_id(&id)?;
    let draft = InvestorPatchDraft {
        name: body.name,
        email: body.email,
        country: body.country,
        accredited: body.accredited,
        accreditation_expires_at: body.accreditation_expires_at,
    };
    let patch = InvestorPatch::parse(&draft).map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let investor = state
        .investors
        .update(caller.org_id, id, &patch, &caller.actor())
        .await?;
    Ok(axum::Json(investor.into()))
}

/// Adds a wallet to the investor; answers the investor with its wallets.
/// Once the investor is approved, the wallet is carried to the identity
/// registry (`registrations`).
#[utoipa::path(post, path = "/v1/investors/{id}/wallets", tag = "investors",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    request_body = AddWallet,
    responses(
        (status = 201, body = InvestorView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the wallet already belongs to an investor of the organization"),
    ))]
async fn add_wallet(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<AddWallet>,
) -> ApiResult<(StatusCode, axum::Json<InvestorView>)> {
    let id: InvestorId = path_id(&id)?;
    let address = parse_wallet(&body.address, "address")
        .map_err(|e| ApiError::Validation(vec![FieldError::from(e)]))?;
    let investor = state
        .investors
        .add_wallet(caller.org_id, id, address, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(investor.into())))
}

/// Records a KYC decision (compliance officers and admins). An approval
/// screens the investor first: a sanctions hit refuses it, an uncleared
/// possible match holds it (409 naming the entries; the screening is
/// recorded). The identity registry follows the decision: an approval
/// registers every wallet (or renews its expiry), a rejection or an expiry
/// removes them (`registrations`).
#[utoipa::path(post, path = "/v1/investors/{id}/kyc", tag = "investors",
    security(("api_key" = ["admin", "compliance"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    request_body = KycDecisionBody,
    responses(
        (status = 200, body = InvestorView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: an approval refused by a sanctions hit, or waiting for possible matches to be cleared"),
    ))]
async fn decide_kyc(
    caller: Authorized<roles::AdminOrCompliance>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<KycDecisionBody>,
) -> ApiResult<axum::Json<InvestorView>> {
    let id: InvestorId = path_id(&id)?;
    let draft = match body {
        KycDecisionBody::Approved { expires_at, reason } => KycDecisionDraft {
            decision: "approved".into(),
            expires_at: Some(expires_at),
            reason,
        },
        KycDecisionBody::Rejected { reason } => KycDecisionDraft {
            decision: "rejected".into(),
            expires_at: None,
            reason,
        },
    };
    let (decision, reason) = draft.parse().map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let investor = state
        .investors
        .decide_kyc(caller.org_id, id, decision, &reason, &caller.actor())
        .await?;
    Ok(axum::Json(investor.into()))
}

/// Clears the investor's possible sanctions matches (compliance officers
/// and admins), with the reason in the audit trail; hits cannot be cleared.
#[utoipa::path(post, path = "/v1/investors/{id}/screening/clear", tag = "investors",
    security(("api_key" = ["admin", "compliance"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    request_body = ClearScreening,
    responses(
        (status = 200, body = InvestorView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: no possible match awaits clearance"),
    ))]
async fn clear_screening(
    caller: Authorized<roles::AdminOrCompliance>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<ClearScreening>,
) -> ApiResult<axum::Json<InvestorView>> {
    let id: InvestorId = path_id(&id)?;
    let reason = rwa_domain::investor::parse_text(
        &body.reason,
        "reason",
        rwa_domain::investor::MAX_REASON_CHARS,
    )
    .map_err(|e| ApiError::Validation(vec![FieldError::from(e)]))?;
    let investor = state
        .investors
        .clear_screening(caller.org_id, id, &reason, &caller.actor())
        .await?;
    Ok(axum::Json(investor.into()))
}

/// Removes a wallet from the investor.
#[utoipa::path(delete, path = "/v1/investors/{id}/wallets/{address}", tag = "investors",
    security(("api_key" = ["admin", "operator"])),
    params(
        ("id" = uuid::Uuid, Path, description = "investor id"),
        ("address" = String, Path, description = "the wallet, in any letter case", pattern = "^0x[0-9a-fA-F]{40}$"),
    ),
    responses((status = 204, description = "removed")))]
async fn remove_wallet(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id: InvestorId = path_id(&id)?;
    // Any letter case names the same wallet here: the checksum guards
    // against typos when a wallet is added, and a mistyped address to
    // remove is simply not found.
    let address =
        parse_wallet(&address.to_ascii_lowercase(), "address").map_err(|_| ApiError::NotFound)?;
    state
        .investors
        .remove_wallet(caller.org_id, id, address, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use rwa_domain::investor::{EMAIL_PATTERN, EXTERNAL_REF_PATTERN, NAME_PATTERN};
    use utoipa::PartialSchema;

    /// The request schema states the domain's rules, not a copy that drifts.
    #[test]
    fn the_schema_states_the_domain_rules() {
        let schema = serde_json::to_value(super::CreateInvestor::schema()).unwrap();
        let p = &schema["properties"];
        assert_eq!(p["name"]["pattern"], NAME_PATTERN);
        assert_eq!(p["name"]["maxLength"], super::MAX_NAME_CHARS);
        assert_eq!(p["email"]["pattern"], EMAIL_PATTERN);
        assert_eq!(
            p["email"]["maxLength"],
            rwa_domain::investor::MAX_EMAIL_CHARS
        );
        assert_eq!(p["external_ref"]["pattern"], EXTERNAL_REF_PATTERN);
    }
}
