//! Investors ([`InvestorRepository`]), their personal data sealed at rest.
//!
//! Name, e-mail and external reference are sealed with the store's personal
//! data keys (`rwa_domain::pii`) before they reach a statement, each bound to
//! its row and column, and opened after reading; the database and its backups
//! hold ciphertext only. A search by name or external reference compares
//! keyed hashes of the normalised value. An investor, its audit entry and its
//! `investor.created` event are one transaction; neither carries personal
//! data, only the investor's id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::chain::Address;
use rwa_domain::country::Country;
use rwa_domain::identity::SweepReport;
use rwa_domain::investor::{
    Accreditation, INVESTOR_ACCREDITATION_EXPIRED, INVESTOR_CREATED, INVESTOR_UPDATED,
    INVESTOR_WALLET_ADDED, INVESTOR_WALLET_REMOVED, Investor, InvestorFilter, InvestorPatch,
    InvestorRef, InvestorRepository, KycDecision, KycStatus, NewInvestor, ProviderDecision, Wallet,
    normalize_name,
};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::pii::PiiKeys;
use rwa_domain::sanctions::{
    INVESTOR_SANCTIONS_HIT, INVESTOR_SCREENING_CLEARED, RescreenReport, Screening, ScreeningStatus,
};
use rwa_domain::{Actor, InvestorId, OrgId, RepoError, RepoResult};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// Namespaces of the keyed hashes (equal strings of two kinds never match).
const NAME: &str = "name";
const EXTERNAL_REF: &str = "external_ref";

#[derive(Clone, sqlx::FromRow)]
pub(crate) struct InvestorRow {
    id: Uuid,
    org_id: Uuid,
    name_sealed: String,
    email_sealed: String,
    external_ref_sealed: Option<String>,
    country: String,
    kind: String,
    accredited: bool,
    accreditation_expires_at: Option<DateTime<Utc>>,
    kyc_status: String,
    kyc_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct WalletRow {
    investor_id: Uuid,
    address: String,
    created_at: DateTime<Utc>,
}

/// Gives each investor its wallets (rows ordered by investor, then age).
fn attach(investors: &mut [Investor], rows: Vec<WalletRow>) -> RepoResult<()> {
    for row in rows {
        let address: Address = row.address.parse().map_err(|_| {
            RepoError::Internal(format!("stored wallet {:?} does not parse", row.address))
        })?;
        if let Some(i) = investors
            .iter_mut()
            .find(|i| i.id.as_uuid() == row.investor_id)
        {
            i.wallets.push(Wallet {
                address,
                added_at: row.created_at,
            });
        }
    }
    Ok(())
}

/// How wallets are stored: lower-case hex.
fn stored_address(a: Address) -> String {
    format!("{a:#x}")
}

/// What `insert_investor` writes: the request with its personal data sealed.
pub(crate) struct SealedInvestor {
    id: Uuid,
    org_id: Uuid,
    pii_key: String,
    name_sealed: String,
    email_sealed: String,
    external_ref_sealed: Option<String>,
    name_index: String,
    external_ref_index: Option<String>,
    country: String,
    kind: &'static str,
    accredited: bool,
    accreditation_expires_at: Option<DateTime<Utc>>,
}

/// The associated data a sealed column is bound to.
fn context(id: Uuid, column: &str) -> String {
    format!("investor:{id}:{column}")
}

fn seal(keys: &PiiKeys, org: OrgId, i: &NewInvestor) -> SealedInvestor {
    let id = i.id.as_uuid();
    let Accreditation {
        accredited,
        expires_at: accreditation_expires_at,
    } = i.accreditation;
    SealedInvestor {
        id,
        org_id: org.as_uuid(),
        pii_key: keys.current_id().to_owned(),
        name_sealed: keys.seal(&i.name, &context(id, "name")),
        email_sealed: keys.seal(&i.email, &context(id, "email")),
        external_ref_sealed: i
            .external_ref
            .as_deref()
            .map(|r| keys.seal(r, &context(id, "external_ref"))),
        name_index: keys.blind_index(NAME, &normalize_name(&i.name)),
        external_ref_index: i
            .external_ref
            .as_deref()
            .map(|r| keys.blind_index(EXTERNAL_REF, r)),
        country: i.country.alpha2().to_owned(),
        kind: i.kind.as_str(),
        accredited,
        accreditation_expires_at,
    }
}

fn open(keys: &PiiKeys, r: InvestorRow) -> RepoResult<Investor> {
    let broken = |what: &str, e: &dyn std::fmt::Display| {
        RepoError::Internal(format!("investor {}: stored {what}: {e}", r.id))
    };
    let unseal = |sealed: &str, column: &str| {
        keys.open(sealed, &context(r.id, column))
            .map_err(|e| broken(column, &e))
    };
    let name = unseal(&r.name_sealed, "name")?;
    let email = unseal(&r.email_sealed, "email")?;
    let external_ref = r
        .external_ref_sealed
        .as_deref()
        .map(|s| unseal(s, "external_ref"))
        .transpose()?;
    let country = Country::parse(&r.country, "country").map_err(|e| broken("country", &e))?;
    let kind = r.kind.parse().map_err(|e| broken("type", &e))?;
    let kyc_status: KycStatus = r.kyc_status.parse().map_err(|e| broken("kyc_status", &e))?;
    Ok(Investor {
        id: InvestorId::from_uuid(r.id),
        org_id: OrgId::from_uuid(r.org_id),
        name,
        email,
        country,
        kind,
        accreditation: Accreditation {
            accredited: r.accredited,
            expires_at: r.accreditation_expires_at,
        },
        external_ref,
        kyc_status,
        kyc_expires_at: r.kyc_expires_at,
        wallets: Vec::new(),
        registrations: Vec::new(),
        screening: None,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// What the registry should say about the investor's wallets (see
/// [`crate::identity::wanted`]), from its stored row.
pub(crate) fn want_of(r: &InvestorRow) -> RepoResult<Option<(i32, i64)>> {
    let broken = |what: &str, e: &dyn std::fmt::Display| {
        RepoError::Internal(format!("investor {}: stored {what}: {e}", r.id))
    };
    let status: KycStatus = r.kyc_status.parse().map_err(|e| broken("kyc_status", &e))?;
    let country = Country::parse(&r.country, "country").map_err(|e| broken("country", &e))?;
    Ok(crate::identity::wanted(status, r.kyc_expires_at, country))
}

/// What `investor.*` events carry: the investor without personal data.
fn event_data(i: &Investor) -> serde_json::Value {
    json!({
        "investor": {
            "id": i.id,
            "country": i.country,
            "type": i.kind.as_str(),
            "accredited": i.accreditation.accredited,
            "kyc_status": i.kyc_status.as_str(),
        }
    })
}

/// The audit entry (and event data) of a wallet change: ids and the address.
pub(crate) fn wallet_record(action: &'static str, id: InvestorId, address: &str) -> AuditRecord {
    AuditRecord {
        action,
        target: format!("investor:{id}"),
        data: json!({ "investor_id": id, "address": address }),
    }
}

fn reference_taken(e: RepoError) -> RepoError {
    match e {
        RepoError::Conflict(_) => RepoError::Conflict(
            "external_ref is already used by another investor of this organization".into(),
        ),
        other => other,
    }
}

/// Rows re-sealed per transaction by a rotation.
const ROTATION_BATCH: i64 = 200;

/// A row still sealed under an old key, as a rotation reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct StaleRow {
    id: Uuid,
    pii_key: String,
    name_sealed: String,
    email_sealed: String,
    external_ref_sealed: Option<String>,
}

/// What a rotation writes back into one row.
pub(crate) struct Resealed {
    id: Uuid,
    old_key: String,
    pii_key: String,
    name_sealed: String,
    email_sealed: String,
    external_ref_sealed: Option<String>,
    name_index: String,
    external_ref_index: Option<String>,
}

fn reseal(keys: &PiiKeys, r: StaleRow) -> RepoResult<Resealed> {
    let broken = |column: &str, e: rwa_domain::pii::PiiError| {
        RepoError::Internal(format!("investor {}: stored {column}: {e}", r.id))
    };
    let unseal = |sealed: &str, column: &str| {
        keys.open(sealed, &context(r.id, column))
            .map_err(|e| broken(column, e))
    };
    let name = unseal(&r.name_sealed, "name")?;
    let email = unseal(&r.email_sealed, "email")?;
    let external_ref = r
        .external_ref_sealed
        .as_deref()
        .map(|s| unseal(s, "external_ref"))
        .transpose()?;
    Ok(Resealed {
        id: r.id,
        old_key: r.pii_key.clone(),
        pii_key: keys.current_id().to_owned(),
        name_sealed: keys.seal(&name, &context(r.id, "name")),
        email_sealed: keys.seal(&email, &context(r.id, "email")),
        external_ref_sealed: external_ref
            .as_deref()
            .map(|x| keys.seal(x, &context(r.id, "external_ref"))),
        name_index: keys.blind_index(NAME, &normalize_name(&name)),
        external_ref_index: external_ref
            .as_deref()
            .map(|x| keys.blind_index(EXTERNAL_REF, x)),
    })
}

impl Store {
    fn pii_keys(&self) -> RepoResult<std::sync::Arc<PiiKeys>> {
        self.pii.clone().ok_or_else(|| {
            RepoError::Internal("personal data keys are not configured (RWA_SECRET_KEY)".into())
        })
    }

    /// For `rwa secrets rotate`: re-seals every investor row sealed under a
    /// key other than the current one (it must open under the current or the
    /// previous key the store was given), and recomputes its search hashes
    /// under the current key, in batches of one transaction each; answers how
    /// many rows. Safe to interrupt and run again: a batch commits whole, and
    /// rows already re-sealed are not touched twice. Rotation events are not
    /// audited per row; the command's caller is.
    pub async fn reseal_personal_data(&self) -> RepoResult<u64> {
        let keys = self.pii_keys()?;
        let current = keys.current_id().to_owned();
        let mut total = 0;
        loop {
            let (keys, current) = (keys.clone(), current.clone());
            let done: RepoResult<u64> = in_write_tx!(self, |tx, sql| {
                let stale = sql::stale_investors(&mut tx, &current, ROTATION_BATCH)
                    .await
                    .db()?;
                let count = stale.len() as u64;
                for row in stale {
                    let resealed = reseal(&keys, row)?;
                    sql::write_resealed(&mut tx, &resealed).await.db()?;
                }
                Ok::<_, RepoError>(count)
            });
            let done = done?;
            total += done;
            if done < ROTATION_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// The audit entry and event data of a new sanctions hit.
fn hit_record(id: InvestorId, screening: &Screening) -> AuditRecord {
    AuditRecord {
        action: INVESTOR_SANCTIONS_HIT,
        target: format!("investor:{id}"),
        data: json!({
            "investor_id": id,
            "matches": screening.matches.iter().filter(|m| m.hit).collect::<Vec<_>>(),
            "lists": screening.lists,
        }),
    }
}

/// Screens the investor inside the caller's transaction (`$tx`, with the
/// `sanctions`, `audit` and `events` statement modules in scope) and
/// answers the screening; a new hit on an approved investor appends
/// `investor.sanctions_hit` and its audit entry.
macro_rules! screen_in_tx {
    ($tx:ident, $index:expr, $org:expr, $id:expr, $name:expr, $approved:expr, $actor:expr) => {{
        let (before, screening) = sanctions::screen(
            &mut $tx,
            &$index,
            $org.as_uuid(),
            $id.as_uuid(),
            $name,
            // Microseconds: what both databases keep.
            chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
        )
        .await?;
        if $approved && crate::sanctions::new_hit(before.as_ref(), &screening) {
            let record = hit_record($id, &screening);
            audit::append_audit(&mut $tx, $org, $actor, &record)
                .await
                .db()?;
            events::append_event(
                &mut $tx,
                $org.as_uuid(),
                INVESTOR_SANCTIONS_HIT,
                &record.data,
            )
            .await
            .db()?;
        }
        screening
    }};
}

/// The audit entry of a KYC decision taken at `now`, and the status it sets.
fn decision_record(
    id: InvestorId,
    decision: KycDecision,
    reason: &str,
    provider_ref: Option<&str>,
    now: DateTime<Utc>,
) -> (KycStatus, Option<DateTime<Utc>>, AuditRecord) {
    // The status does not depend on the current one: a later decision
    // replaces it (see `KycStatus::after`).
    let status = KycStatus::Pending.after(&decision, now);
    let expires_at = match decision {
        KycDecision::Approve { expires_at } => Some(expires_at),
        KycDecision::Reject => None,
    };
    let mut data = json!({
        "kyc_status": status.as_str(),
        "kyc_expires_at": expires_at,
        "reason": reason,
    });
    if let Some(r) = provider_ref {
        data["provider_ref"] = json!(r);
    }
    let record = AuditRecord {
        action: status.event(),
        target: format!("investor:{id}"),
        data,
    };
    (status, expires_at, record)
}

/// A KYC decision's event: ids and statuses only.
fn decision_event(
    id: InvestorId,
    status: KycStatus,
    expires_at: Option<DateTime<Utc>>,
) -> serde_json::Value {
    json!({ "investor_id": id, "kyc_status": status.as_str(), "kyc_expires_at": expires_at })
}

/// Which investor, and the callback's receipt, of a provider's decision.
struct ProviderReceipt {
    external_ref_index: Option<String>,
    digest: String,
    provider_ref: String,
}

impl Store {
    /// Records a KYC decision (a provider's when `receipt` is given) and
    /// plans the registry; answers the investor's id.
    async fn decide(
        &self,
        org: OrgId,
        id: Option<InvestorId>,
        decision: KycDecision,
        reason: String,
        actor: Actor,
        receipt: Option<ProviderReceipt>,
    ) -> RepoResult<InvestorId> {
        let now = Utc::now();
        let id = match (id, &receipt) {
            (Some(id), _) => id,
            (
                None,
                Some(ProviderReceipt {
                    external_ref_index: Some(index),
                    ..
                }),
            ) => {
                let found = on_reader!(self, |pool, sql| {
                    sql::id_by_external_ref(pool, org.as_uuid(), index)
                        .await
                        .db()?
                });
                InvestorId::from_uuid(found.ok_or(RepoError::NotFound)?)
            }
            (None, _) => return Err(RepoError::NotFound),
        };
        let keys = self.pii_keys()?;
        let index = self.screening_index().await?;
        // An approval refused by the screening commits the screening (it
        // stays on record) and nothing else: the inner `Err`.
        let decided: RepoResult<Result<InvestorId, String>> =
            in_write_tx!(self, |tx, sql, identity, sanctions, audit, events| {
                let (status, expires_at, record) = decision_record(
                    id,
                    decision,
                    &reason,
                    receipt.as_ref().map(|r| r.provider_ref.as_str()),
                    now,
                );
                let Some(row) = sql::investor_for_update(&mut tx, org.as_uuid(), id.as_uuid())
                    .await
                    .db()?
                else {
                    return Err(RepoError::NotFound);
                };
                // (No early `return Ok`: on PostgreSQL the body runs in this
                // function, where `return` would leave it.)
                let refused = match decision {
                    KycDecision::Approve { .. } => {
                        let current = open(&keys, row.clone())?;
                        let approved = current.kyc_status == KycStatus::Approved;
                        let screening =
                            screen_in_tx!(tx, index, org, id, &current.name, approved, &actor);
                        match screening.status {
                            ScreeningStatus::Hit => Some(format!(
                                "approval refused: sanctions hit: {}",
                                screening.describe(true)
                            )),
                            ScreeningStatus::PossibleMatch => Some(format!(
                                "approval waits for a compliance officer to clear the possible \
                                 sanctions matches (POST /v1/investors/{id}/screening/clear): {}",
                                screening.describe(false)
                            )),
                            ScreeningStatus::Clear => None,
                        }
                    }
                    KycDecision::Reject => None,
                };
                if let Some(why) = refused {
                    Ok::<_, RepoError>(Err(why))
                } else {
                    if let Some(r) = &receipt {
                        let stored = sql::insert_receipt(
                            &mut tx,
                            &r.digest,
                            org.as_uuid(),
                            id.as_uuid(),
                            &r.provider_ref,
                        )
                        .await
                        .db();
                        if let Err(RepoError::Conflict(_)) = stored {
                            return Err(RepoError::Conflict(
                                "this signature was accepted before: the callback is a replay"
                                    .into(),
                            ));
                        }
                        stored?;
                    }
                    sql::set_kyc(
                        &mut tx,
                        org.as_uuid(),
                        id.as_uuid(),
                        status.as_str(),
                        expires_at,
                    )
                    .await
                    .db()?;
                    audit::append_audit(&mut tx, org, &actor, &record)
                        .await
                        .db()?;
                    events::append_event(
                        &mut tx,
                        org.as_uuid(),
                        status.event(),
                        &decision_event(id, status, expires_at),
                    )
                    .await
                    .db()?;
                    let country = Country::parse(&row.country, "country")
                        .map_err(|e| RepoError::Internal(e.to_string()))?;
                    let want = crate::identity::wanted(status, expires_at, country);
                    identity::plan(&mut tx, org.as_uuid(), id.as_uuid(), want).await?;
                    Ok::<_, RepoError>(Ok(id))
                }
            });
        self.wake_jobs();
        decided?.map_err(RepoError::Conflict)
    }
}

/// Rows changed per transaction by the expiry sweep.
const SWEEP_BATCH: i64 = 200;

/// The sweep's actor in the audit trail.
const SWEEPER: Actor = Actor::system("expiry-sweep");

/// Expires KYC approvals, then accreditations, that ended before now, in
/// batches of one transaction each; then restarts identity syncs that lost
/// their job.
pub(crate) async fn sweep_expiries(store: &Store) -> RepoResult<SweepReport> {
    let now = Utc::now();
    let mut report = SweepReport::default();
    loop {
        let done: RepoResult<u64> = in_write_tx!(store, |tx, sql, identity, audit, events| {
            let due = sql::due_kyc(&mut tx, now, SWEEP_BATCH).await.db()?;
            let count = due.len() as u64;
            for (id, org, expires_at) in due {
                let org = OrgId::from_uuid(org);
                let investor = InvestorId::from_uuid(id);
                let status = KycStatus::Expired;
                sql::set_kyc(&mut tx, org.as_uuid(), id, status.as_str(), expires_at)
                    .await
                    .db()?;
                let record = AuditRecord {
                    action: status.event(),
                    target: format!("investor:{investor}"),
                    data: json!({ "kyc_status": status.as_str(), "kyc_expires_at": expires_at }),
                };
                audit::append_audit(&mut tx, org, &SWEEPER, &record)
                    .await
                    .db()?;
                events::append_event(
                    &mut tx,
                    org.as_uuid(),
                    status.event(),
                    &decision_event(investor, status, expires_at),
                )
                .await
                .db()?;
                identity::plan(&mut tx, org.as_uuid(), id, None).await?;
            }
            Ok::<_, RepoError>(count)
        });
        let done = done?;
        report.kyc_expired += done;
        if done < SWEEP_BATCH as u64 {
            break;
        }
    }
    loop {
        let done: RepoResult<u64> = in_write_tx!(store, |tx, sql, audit, events| {
            let due = sql::due_accreditation(&mut tx, now, SWEEP_BATCH)
                .await
                .db()?;
            let count = due.len() as u64;
            for (id, org, expires_at) in due {
                let org = OrgId::from_uuid(org);
                let investor = InvestorId::from_uuid(id);
                sql::lapse_accreditation(&mut tx, id).await.db()?;
                let data = json!({
                    "investor_id": investor,
                    "accredited": false,
                    "accreditation_expires_at": expires_at,
                });
                let record = AuditRecord {
                    action: INVESTOR_ACCREDITATION_EXPIRED,
                    target: format!("investor:{investor}"),
                    data: data.clone(),
                };
                audit::append_audit(&mut tx, org, &SWEEPER, &record)
                    .await
                    .db()?;
                events::append_event(
                    &mut tx,
                    org.as_uuid(),
                    INVESTOR_ACCREDITATION_EXPIRED,
                    &data,
                )
                .await
                .db()?;
            }
            Ok::<_, RepoError>(count)
        });
        let done = done?;
        report.accreditation_lapsed += done;
        if done < SWEEP_BATCH as u64 {
            break;
        }
    }
    crate::identity::revive_syncs(store).await?;
    store.wake_jobs();
    Ok(report)
}

/// Investors screened per transaction by a rescreen.
const RESCREEN_BATCH: i64 = 100;

/// Screens every approved investor (all organizations) against the current
/// lists, in batches of one transaction each; a new hit raises its event.
pub(crate) async fn rescreen_approved(store: &Store) -> RepoResult<RescreenReport> {
    const RESCREENER: Actor = Actor::system("sanctions-rescreen");
    let keys = store.pii_keys()?;
    let index = store.screening_index().await?;
    let mut report = RescreenReport::default();
    let mut after = Uuid::nil();
    loop {
        let (keys, index) = (keys.clone(), index.clone());
        let done: RepoResult<(u64, u64, Option<Uuid>)> =
            in_write_tx!(store, |tx, sql, sanctions, audit, events| {
                let rows = sql::approved_after(&mut tx, after, RESCREEN_BATCH)
                    .await
                    .db()?;
                let (count, last) = (rows.len() as u64, rows.last().map(|r| r.id));
                let mut hits = 0;
                for row in rows {
                    let org = OrgId::from_uuid(row.org_id);
                    let investor = open(&keys, row)?;
                    let id = investor.id;
                    let screening =
                        screen_in_tx!(tx, index, org, id, &investor.name, true, &RESCREENER);
                    hits += u64::from(screening.status == ScreeningStatus::Hit);
                }
                Ok::<_, RepoError>((count, hits, last))
            });
        let (count, hits, last) = done?;
        report.screened += count;
        report.hits += hits;
        match last {
            Some(last) if count == RESCREEN_BATCH as u64 => after = last,
            _ => return Ok(report),
        }
    }
}

#[async_trait]
impl InvestorRepository for Store {
    async fn create(
        &self,
        org: OrgId,
        investor: &NewInvestor,
        actor: &Actor,
    ) -> RepoResult<Investor> {
        let keys = self.pii_keys()?;
        let index = self.screening_index().await?;
        let sealed = seal(&keys, org, investor);
        let name = investor.name.clone();
        let record = AuditRecord {
            action: INVESTOR_CREATED,
            target: format!("investor:{}", investor.id),
            data: json!({
                "country": investor.country,
                "type": investor.kind.as_str(),
                "accredited": investor.accreditation.accredited,
            }),
        };
        let actor = actor.clone();
        // The block keeps the macro's `?`s inside, so a duplicate reference
        // passes through `reference_taken`.
        let created: RepoResult<Investor> = async {
            in_write_tx!(self, |tx, sql, sanctions, audit, events| {
                let row = sql::insert_investor(&mut tx, &sealed).await.db()?;
                let mut investor = open(&keys, row)?;
                let id = investor.id;
                let screening = screen_in_tx!(tx, index, org, id, &name, false, &actor);
                investor.screening = Some(screening);
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                events::append_event(
                    &mut tx,
                    org.as_uuid(),
                    INVESTOR_CREATED,
                    &event_data(&investor),
                )
                .await
                .db()?;
                Ok::<_, RepoError>(investor)
            })
        }
        .await;
        created.map_err(reference_taken)
    }

    async fn find_by_wallet(&self, org: OrgId, address: Address) -> RepoResult<Option<Investor>> {
        let stored = stored_address(address);
        let owner = on_reader!(self, |pool, sql| {
            sql::wallet_owner(pool, org.as_uuid(), &stored).await.db()?
        });
        match owner {
            Some(id) => self.get(org, InvestorId::from_uuid(id)).await.map(Some),
            None => Ok(None),
        }
    }

    async fn get(&self, org: OrgId, id: InvestorId) -> RepoResult<Investor> {
        let keys = self.pii_keys()?;
        let row = on_reader!(self, |pool, sql| {
            sql::get_investor(pool, org.as_uuid(), id.as_uuid())
                .await
                .db()?
        });
        let mut investor = [open(&keys, row.ok_or(RepoError::NotFound)?)?];
        self.attach_details(org, &mut investor).await?;
        let [investor] = investor;
        Ok(investor)
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &InvestorFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Investor>> {
        let keys = self.pii_keys()?;
        let (name_index, ref_index) = match filter.q.as_deref() {
            Some(q) => (
                Some(keys.blind_index(NAME, &normalize_name(q))),
                Some(keys.blind_index(EXTERNAL_REF, q)),
            ),
            None => (None, None),
        };
        let query = ListQuery {
            org: org.as_uuid(),
            kyc_status: filter.kyc_status.map(KycStatus::as_str),
            country: filter.country.map(|c| c.alpha2().to_owned()),
            name_index: name_index.as_deref(),
            ref_index: ref_index.as_deref(),
            after: page.after,
            fetch: i64::from(page.limit) + 1,
        };
        let rows = on_reader!(self, |pool, sql| {
            sql::list_investors(pool, &query).await.db()?
        });
        let investors = rows
            .into_iter()
            .map(|r| open(&keys, r))
            .collect::<RepoResult<Vec<_>>>()?;
        let mut page = Page::from_overfetch(investors, page.limit, |i| i.id.as_uuid());
        self.attach_details(org, &mut page.items).await?;
        Ok(page)
    }

    async fn add_wallet(
        &self,
        org: OrgId,
        id: InvestorId,
        address: Address,
        actor: &Actor,
    ) -> RepoResult<Investor> {
        let stored = stored_address(address);
        let record = wallet_record(INVESTOR_WALLET_ADDED, id, &stored);
        let actor = actor.clone();
        let keys = self.pii_keys()?;
        let index = self.screening_index().await?;
        let added: RepoResult<()> = async {
            in_write_tx!(self, |tx, sql, identity, sanctions, audit, events| {
                let Some(row) = sql::investor_for_update(&mut tx, org.as_uuid(), id.as_uuid())
                    .await
                    .db()?
                else {
                    return Err(RepoError::NotFound);
                };
                sql::insert_wallet(&mut tx, org.as_uuid(), id.as_uuid(), &stored)
                    .await
                    .db()?;
                let want = want_of(&row)?;
                let current = open(&keys, row)?;
                let approved = current.kyc_status == KycStatus::Approved;
                screen_in_tx!(tx, index, org, id, &current.name, approved, &actor);
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                events::append_event(&mut tx, org.as_uuid(), INVESTOR_WALLET_ADDED, &record.data)
                    .await
                    .db()?;
                identity::plan(&mut tx, org.as_uuid(), id.as_uuid(), want).await?;
                Ok::<_, RepoError>(())
            })
        }
        .await;
        added.map_err(|e| match e {
            RepoError::Conflict(_) => RepoError::Conflict(format!(
                "wallet {} already belongs to an investor of this organization",
                address.to_checksum(None)
            )),
            other => other,
        })?;
        self.wake_jobs();
        InvestorRepository::get(self, org, id).await
    }

    async fn decide_kyc(
        &self,
        org: OrgId,
        id: InvestorId,
        decision: KycDecision,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Investor> {
        self.decide(
            org,
            Some(id),
            decision,
            reason.to_owned(),
            actor.clone(),
            None,
        )
        .await?;
        InvestorRepository::get(self, org, id).await
    }

    async fn decide_kyc_from_provider(
        &self,
        org: OrgId,
        decision: &ProviderDecision,
        digest: &str,
    ) -> RepoResult<Investor> {
        let keys = self.pii_keys()?;
        let (id, external_ref_index) = match &decision.investor {
            InvestorRef::Id(id) => (Some(*id), None),
            InvestorRef::ExternalRef(r) => (None, Some(keys.blind_index(EXTERNAL_REF, r))),
        };
        let receipt = ProviderReceipt {
            external_ref_index,
            digest: digest.to_owned(),
            provider_ref: decision.provider_ref.clone(),
        };
        let id = self
            .decide(
                org,
                id,
                decision.decision,
                decision.reason.clone(),
                Actor::system("kyc-provider"),
                Some(receipt),
            )
            .await?;
        InvestorRepository::get(self, org, id).await
    }

    async fn update(
        &self,
        org: OrgId,
        id: InvestorId,
        patch: &InvestorPatch,
        actor: &Actor,
    ) -> RepoResult<Investor> {
        let keys = self.pii_keys()?;
        let index = self.screening_index().await?;
        let now = Utc::now();
        let fields = patch.fields();
        let patch = patch.clone();
        let actor = actor.clone();
        let updated: RepoResult<()> =
            in_write_tx!(self, |tx, sql, identity, sanctions, audit, events| {
                let Some(row) = sql::investor_for_update(&mut tx, org.as_uuid(), id.as_uuid())
                    .await
                    .db()?
                else {
                    return Err(RepoError::NotFound);
                };
                let current = open(&keys, row)?;
                let changed = NewInvestor {
                    id,
                    name: patch.name.clone().unwrap_or(current.name.clone()),
                    email: patch.email.clone().unwrap_or(current.email.clone()),
                    country: patch.country.unwrap_or(current.country),
                    kind: current.kind,
                    accreditation: patch.accreditation(current.accreditation, now),
                    external_ref: current.external_ref.clone(),
                };
                // Every sealed column again, under the current key: a row's
                // columns always share one key id.
                let sealed = seal(&keys, org, &changed);
                let row = sql::update_investor(&mut tx, &sealed).await.db()?;
                let approved = current.kyc_status == KycStatus::Approved;
                screen_in_tx!(tx, index, org, id, &changed.name, approved, &actor);
                let data = json!({
                    "investor_id": id,
                    "fields": fields,
                    "country": changed.country,
                    "accredited": changed.accreditation.accredited,
                    "accreditation_expires_at": changed.accreditation.expires_at,
                });
                let record = AuditRecord {
                    action: INVESTOR_UPDATED,
                    target: format!("investor:{id}"),
                    data: data.clone(),
                };
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                events::append_event(&mut tx, org.as_uuid(), INVESTOR_UPDATED, &data)
                    .await
                    .db()?;
                identity::plan(&mut tx, org.as_uuid(), id.as_uuid(), want_of(&row)?).await?;
                Ok::<_, RepoError>(())
            });
        updated?;
        self.wake_jobs();
        InvestorRepository::get(self, org, id).await
    }

    async fn clear_screening(
        &self,
        org: OrgId,
        id: InvestorId,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Investor> {
        let (reason, actor) = (reason.to_owned(), actor.clone());
        let cleared: RepoResult<()> = in_write_tx!(self, |tx, sql, sanctions, audit, events| {
            if sql::investor_for_update(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
                .is_none()
            {
                return Err(RepoError::NotFound);
            }
            let Some(row) = sanctions::screening_of(&mut tx, id.as_uuid()).await.db()? else {
                return Err(RepoError::Conflict(
                    "no possible sanctions match awaits clearance".into(),
                ));
            };
            let mut screening = Screening::try_from(row)?;
            let open: Vec<_> = screening
                .matches
                .iter()
                .filter(|m| !m.hit && !m.cleared)
                .cloned()
                .collect();
            if open.is_empty() {
                return Err(RepoError::Conflict(
                    "no possible sanctions match awaits clearance (a hit cannot be cleared)".into(),
                ));
            }
            for m in &mut screening.matches {
                m.cleared |= !m.hit;
            }
            screening.status = Screening::status_of(&screening.matches);
            sanctions::write_screening(
                &mut tx,
                &crate::sanctions::ScreeningWrite::new(org.as_uuid(), id.as_uuid(), &screening)?,
            )
            .await
            .db()?;
            let data = json!({ "investor_id": id, "cleared": open, "status": screening.status });
            let record = AuditRecord {
                action: INVESTOR_SCREENING_CLEARED,
                target: format!("investor:{id}"),
                data: json!({ "investor_id": id, "cleared": open, "reason": reason }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            events::append_event(&mut tx, org.as_uuid(), INVESTOR_SCREENING_CLEARED, &data)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        });
        cleared?;
        InvestorRepository::get(self, org, id).await
    }

    async fn remove_wallet(
        &self,
        org: OrgId,
        id: InvestorId,
        address: Address,
        actor: &Actor,
    ) -> RepoResult<()> {
        let stored = stored_address(address);
        let record = wallet_record(INVESTOR_WALLET_REMOVED, id, &stored);
        let actor = actor.clone();
        let removed: RepoResult<()> = in_write_tx!(self, |tx, sql, identity, audit, events| {
            let Some(row) = sql::investor_for_update(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
            else {
                return Err(RepoError::NotFound);
            };
            let removed = sql::delete_wallet(&mut tx, org.as_uuid(), id.as_uuid(), &stored)
                .await
                .db()?;
            if removed == 0 {
                return Err(RepoError::NotFound);
            }
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            events::append_event(
                &mut tx,
                org.as_uuid(),
                INVESTOR_WALLET_REMOVED,
                &record.data,
            )
            .await
            .db()?;
            identity::plan(&mut tx, org.as_uuid(), id.as_uuid(), want_of(&row)?).await?;
            Ok::<_, RepoError>(())
        });
        removed?;
        self.wake_jobs();
        Ok(())
    }
}

impl Store {
    /// Gives investors (ordered by id) their wallets and registrations, one
    /// read each for all of them: their wallets are those of investors
    /// between the first and the last id.
    async fn attach_details(&self, org: OrgId, investors: &mut [Investor]) -> RepoResult<()> {
        let (Some(first), Some(last)) = (investors.first(), investors.last()) else {
            return Ok(());
        };
        let (first, last) = (first.id.as_uuid(), last.id.as_uuid());
        let wallets = on_reader!(self, |pool, sql| {
            sql::wallets_between(pool, org.as_uuid(), first, last)
                .await
                .db()?
        });
        attach(investors, wallets)?;
        let registrations = self.registrations_between(org, first, last).await?;
        crate::identity::attach(investors, registrations)?;
        for (id, screening) in self.screenings_between(org.as_uuid(), first, last).await? {
            if let Some(i) = investors.iter_mut().find(|i| i.id.as_uuid() == id) {
                i.screening = Some(screening);
            }
        }
        Ok(())
    }
}

/// The parameters of a list, named.
pub(crate) struct ListQuery<'a> {
    org: Uuid,
    kyc_status: Option<&'a str>,
    country: Option<String>,
    name_index: Option<&'a str>,
    ref_index: Option<&'a str>,
    after: Option<Uuid>,
    fetch: i64,
}

/// Columns of `investors`, in [`InvestorRow`] order.
macro_rules! investor_columns {
    () => {
        "id, org_id, name_sealed, email_sealed, external_ref_sealed, country, kind, accredited, \
         accreditation_expires_at, kyc_status, kyc_expires_at, created_at, updated_at"
    };
}

crate::dialect::statements! {
    use sqlx::query_as;
    use uuid::Uuid;

    use super::{InvestorRow, ListQuery, Resealed, SealedInvestor, StaleRow, WalletRow};

    pub(crate) async fn investor_for_update(
        c: &mut Conn,
        org: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<InvestorRow>> {
        query_as(concat!(
            "SELECT ",
            investor_columns!(),
            " FROM investors WHERE org_id = $1 AND id = $2 ",
            lock!()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn id_by_external_ref(
        pool: &Pool,
        org: Uuid,
        index: &str,
    ) -> sqlx::Result<Option<Uuid>> {
        sqlx::query_scalar("SELECT id FROM investors WHERE org_id = $1 AND external_ref_index = $2")
            .bind(org)
            .bind(index)
            .fetch_optional(pool)
            .await
    }

    /// Approved investors after `after`, by id (every organization).
    pub(crate) async fn approved_after(
        c: &mut Conn,
        after: Uuid,
        limit: i64,
    ) -> sqlx::Result<Vec<InvestorRow>> {
        query_as(concat!(
            "SELECT ",
            investor_columns!(),
            " FROM investors WHERE kyc_status = 'approved' AND id > $1 ORDER BY id LIMIT $2 ",
            lock!()
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn insert_receipt(
        c: &mut Conn,
        digest: &str,
        org: Uuid,
        investor: Uuid,
        provider_ref: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO kyc_callback_receipts (digest, org_id, investor_id, provider_ref) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(digest)
        .bind(org)
        .bind(investor)
        .bind(provider_ref)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn update_investor(
        c: &mut Conn,
        i: &SealedInvestor,
    ) -> sqlx::Result<InvestorRow> {
        query_as(concat!(
            "UPDATE investors SET pii_key = $3, name_sealed = $4, email_sealed = $5, \
             external_ref_sealed = $6, name_index = $7, external_ref_index = $8, country = $9, \
             accredited = $10, accreditation_expires_at = $11, updated_at = ",
            now!(),
            " WHERE org_id = $1 AND id = $2 RETURNING ",
            investor_columns!()
        ))
        .bind(i.org_id)
        .bind(i.id)
        .bind(&i.pii_key)
        .bind(&i.name_sealed)
        .bind(&i.email_sealed)
        .bind(i.external_ref_sealed.as_deref())
        .bind(&i.name_index)
        .bind(i.external_ref_index.as_deref())
        .bind(&i.country)
        .bind(i.accredited)
        .bind(i.accreditation_expires_at)
        .fetch_one(c)
        .await
    }

    /// Approved investors whose approval ended by `now`: id, organization, expiry.
    pub(crate) async fn due_kyc(
        c: &mut Conn,
        now: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> sqlx::Result<Vec<(Uuid, Uuid, Option<chrono::DateTime<chrono::Utc>>)>> {
        query_as(concat!(
            "SELECT id, org_id, kyc_expires_at FROM investors \
             WHERE kyc_status = 'approved' AND kyc_expires_at <= $1 ORDER BY id LIMIT $2 ",
            lock!()
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    /// Accredited investors whose accreditation ended by `now`.
    pub(crate) async fn due_accreditation(
        c: &mut Conn,
        now: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> sqlx::Result<Vec<(Uuid, Uuid, Option<chrono::DateTime<chrono::Utc>>)>> {
        query_as(concat!(
            "SELECT id, org_id, accreditation_expires_at FROM investors \
             WHERE accredited AND accreditation_expires_at <= $1 ORDER BY id LIMIT $2 ",
            lock!()
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn lapse_accreditation(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        sqlx::query(concat!(
            "UPDATE investors SET accredited = false, updated_at = ",
            now!(),
            " WHERE id = $1"
        ))
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn set_kyc(
        c: &mut Conn,
        org: Uuid,
        id: Uuid,
        status: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> sqlx::Result<u64> {
        sqlx::query(concat!(
            "UPDATE investors SET kyc_status = $3, kyc_expires_at = $4, updated_at = ",
            now!(),
            " WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .bind(status)
        .bind(expires_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    /// Adds the wallet if the investor is the organization's; answers the
    /// rows written (0: no such investor).
    pub(crate) async fn wallet_owner(pool: &Pool, org: Uuid, address: &str) -> sqlx::Result<Option<Uuid>> {
        sqlx::query_scalar("SELECT investor_id FROM investor_wallets WHERE org_id = $1 AND address = $2")
            .bind(org)
            .bind(address)
            .fetch_optional(pool)
            .await
    }

    pub(crate) async fn insert_wallet(
        c: &mut Conn,
        org: Uuid,
        investor: Uuid,
        address: &str,
    ) -> sqlx::Result<u64> {
        sqlx::query(
            "INSERT INTO investor_wallets (org_id, address, investor_id) \
             SELECT org_id, $3, id FROM investors WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(investor)
        .bind(address)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    pub(crate) async fn delete_wallet(
        c: &mut Conn,
        org: Uuid,
        investor: Uuid,
        address: &str,
    ) -> sqlx::Result<u64> {
        sqlx::query(
            "DELETE FROM investor_wallets WHERE org_id = $1 AND investor_id = $2 AND address = $3",
        )
        .bind(org)
        .bind(investor)
        .bind(address)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    /// Wallets of the organization's investors with ids from `first` to
    /// `last`, by investor then age.
    pub(crate) async fn wallets_between(
        pool: &Pool,
        org: Uuid,
        first: Uuid,
        last: Uuid,
    ) -> sqlx::Result<Vec<WalletRow>> {
        query_as(
            "SELECT investor_id, address, created_at FROM investor_wallets \
             WHERE org_id = $1 AND investor_id >= $2 AND investor_id <= $3 \
             ORDER BY investor_id, created_at, address",
        )
        .bind(org)
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn stale_investors(
        c: &mut Conn,
        current_key: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<StaleRow>> {
        query_as(
            "SELECT id, pii_key, name_sealed, email_sealed, external_ref_sealed FROM investors \
             WHERE pii_key <> $1 ORDER BY id LIMIT $2",
        )
        .bind(current_key)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn write_resealed(c: &mut Conn, r: &Resealed) -> sqlx::Result<()> {
        // Not `updated_at`: re-sealing changes no business data.
        sqlx::query(
            "UPDATE investors SET pii_key = $1, name_sealed = $2, email_sealed = $3, \
             external_ref_sealed = $4, name_index = $5, external_ref_index = $6 \
             WHERE id = $7 AND pii_key = $8",
        )
        .bind(&r.pii_key)
        .bind(&r.name_sealed)
        .bind(&r.email_sealed)
        .bind(r.external_ref_sealed.as_deref())
        .bind(&r.name_index)
        .bind(r.external_ref_index.as_deref())
        .bind(r.id)
        .bind(&r.old_key)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn insert_investor(
        c: &mut Conn,
        i: &SealedInvestor,
    ) -> sqlx::Result<InvestorRow> {
        query_as(concat!(
            "INSERT INTO investors (id, org_id, pii_key, name_sealed, email_sealed, \
             external_ref_sealed, name_index, external_ref_index, country, kind, accredited, \
             accreditation_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
            investor_columns!()
        ))
        .bind(i.id)
        .bind(i.org_id)
        .bind(&i.pii_key)
        .bind(&i.name_sealed)
        .bind(&i.email_sealed)
        .bind(i.external_ref_sealed.as_deref())
        .bind(&i.name_index)
        .bind(i.external_ref_index.as_deref())
        .bind(&i.country)
        .bind(i.kind)
        .bind(i.accredited)
        .bind(i.accreditation_expires_at)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn get_investor(
        pool: &Pool,
        org: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<InvestorRow>> {
        query_as(concat!(
            "SELECT ",
            investor_columns!(),
            " FROM investors WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn list_investors(
        pool: &Pool,
        q: &ListQuery<'_>,
    ) -> sqlx::Result<Vec<InvestorRow>> {
        query_as(concat!(
            "SELECT ",
            investor_columns!(),
            " FROM investors WHERE org_id = $1 \
             AND ($2 IS NULL OR kyc_status = $2) \
             AND ($3 IS NULL OR country = $3) \
             AND ($4 IS NULL OR name_index = $4 OR external_ref_index = $5) \
             AND ($6 IS NULL OR id > $6) \
             ORDER BY id LIMIT $7"
        ))
        .bind(q.org)
        .bind(q.kyc_status)
        .bind(q.country.as_deref())
        .bind(q.name_index)
        .bind(q.ref_index)
        .bind(q.after)
        .bind(q.fetch)
        .fetch_all(pool)
        .await
    }
}
