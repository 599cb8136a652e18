//! The policy SQL. Every change to a patient's policies first locks the patient's row, so rank
//! changes for one patient are serialized; the new order comes from [`super::ranking`] and is
//! written with the `(tenant_id, patient_id, rank)` unique constraint deferred, then checked before
//! the operation returns. A policy whose rank moves gets a new version (its ETag changes).

use super::model::{Policy, PolicyFields, PolicyInput};
use super::ranking::{self, RankError};
use super::{foreign_key_violation, unknown_id};
use crate::error::{DomainError, check_version, patched};
use crate::ids::{PatientId, PayerId, PolicyId, TenantId};
use crate::outbox;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

#[derive(sqlx::FromRow)]
struct PolicyRow {
    policy_id: PolicyId,
    patient_id: PatientId,
    payer_id: PayerId,
    rank: i16,
    policy_number: String,
    group_number: Option<String>,
    relationship: String,
    insured_first_name: Option<String>,
    insured_last_name: Option<String>,
    insured_date_of_birth: Option<NaiveDate>,
    payment_percent: Option<Decimal>,
    effective_date: Option<NaiveDate>,
    inactive_date: Option<NaiveDate>,
    active: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PolicyRow> for Policy {
    type Error = DomainError;
    fn try_from(r: PolicyRow) -> Result<Self, DomainError> {
        Ok(Policy {
            id: r.policy_id,
            patient_id: r.patient_id,
            payer_id: r.payer_id,
            rank: r.rank,
            policy_number: r.policy_number,
            group_number: r.group_number,
            relationship: r.relationship,
            insured_first_name: r.insured_first_name,
            insured_last_name: r.insured_last_name,
            insured_date_of_birth: r.insured_date_of_birth,
            payment_percent: r.payment_percent,
            effective_date: r.effective_date,
            inactive_date: r.inactive_date,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// In force on `$n`: started (or no start) and not yet ended.
fn in_force(param: &str) -> String {
    format!(
        "((effective_date is null or effective_date <= {param}) and (inactive_date is null or inactive_date > {param}))"
    )
}

fn columns() -> String {
    format!(
        "policy_id, patient_id, payer_id, rank, policy_number, group_number, relationship, insured_first_name, \
         insured_last_name, insured_date_of_birth, payment_percent, effective_date, \
         inactive_date, {} as active, version, created_at, updated_at",
        in_force("current_date")
    )
}

fn rows_to_policies(rows: Vec<PolicyRow>) -> Result<Vec<Policy>, DomainError> {
    rows.into_iter().map(Policy::try_from).collect()
}

/// Locks the patient's row (serializing rank changes); 404 when the tenant has no such patient.
async fn lock_patient(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<(), DomainError> {
    sqlx::query_as::<_, (i32,)>(
        "select 1 from patient where tenant_id = $1 and patient_id = $2 for update",
    )
    .bind(tenant)
    .bind(patient)
    .fetch_optional(conn)
    .await?
    .map(|_| ())
    .ok_or(DomainError::NotFound("patient"))
}

async fn order_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<Vec<PolicyId>, DomainError> {
    let rows: Vec<(PolicyId,)> = sqlx::query_as(
        "select policy_id from patient_policy where tenant_id = $1 and patient_id = $2 order by rank",
    )
    .bind(tenant)
    .bind(patient)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The payer must exist (else 422 on `field`) and be active (else 409 `payer_inactive`).
async fn check_payer(
    conn: &mut PgConnection,
    tenant: TenantId,
    payer: PayerId,
    field: &str,
) -> Result<(), DomainError> {
    let row: Option<(bool, String)> =
        sqlx::query_as("select active, name from payer where tenant_id = $1 and payer_id = $2")
            .bind(tenant)
            .bind(payer)
            .fetch_optional(conn)
            .await?;
    match row {
        None => Err(unknown_id(field, "payer")),
        Some((false, name)) => Err(DomainError::Conflict {
            code: "payer_inactive",
            detail: format!("payer {name} is inactive and takes no new policies"),
        }),
        Some((true, _)) => Ok(()),
    }
}

fn rank_error(e: RankError, field: &str) -> DomainError {
    match e {
        RankError::TooMany => DomainError::Conflict {
            code: "too_many_policies",
            detail: e.to_string(),
        },
        RankError::OutOfRange { .. } | RankError::NotAPermutation => {
            let mut errs = ValidationErrors::default();
            let code = if matches!(e, RankError::NotAPermutation) {
                "not_a_permutation"
            } else {
                "out_of_range"
            };
            errs.push(field, code, e.to_string());
            DomainError::Validation(errs)
        }
    }
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

async fn set_rank_check(conn: &mut PgConnection, deferred: bool) -> Result<(), DomainError> {
    let sql = if deferred {
        "set constraints patient_policy_rank_key deferred"
    } else {
        "set constraints patient_policy_rank_key immediate"
    };
    sqlx::query(sql).execute(conn).await?;
    Ok(())
}

/// Writes the ranks of `new` that differ from `old`, for policies already stored (the constraint
/// must be deferred by the caller).
async fn move_ranks(
    conn: &mut PgConnection,
    tenant: TenantId,
    old: &[PolicyId],
    new: &[PolicyId],
) -> Result<(), DomainError> {
    for (id, rank) in ranking::changes(old, new) {
        if !old.contains(&id) {
            continue;
        }
        sqlx::query(
            "update patient_policy set rank = $3, version = version + 1, updated_at = now() \
             where tenant_id = $1 and policy_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(rank)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts a validated policy at its rank (shifting the others) or at the next free one. Field
/// errors are named under `prefix` (`policies[0]` when embedded in a patient create).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    f: &PolicyFields,
    prefix: &str,
) -> Result<Policy, DomainError> {
    lock_patient(conn, tenant, patient).await?;
    let old = order_of(conn, tenant, patient).await?;
    let id = PolicyId::new();
    let new =
        ranking::insert_at(&old, id, f.rank).map_err(|e| rank_error(e, &field(prefix, "rank")))?;
    check_payer(conn, tenant, f.payer_id, &field(prefix, "payer_id")).await?;
    let rank = ranking::changes(&old, &new)
        .into_iter()
        .find(|(x, _)| *x == id)
        .map_or(1, |(_, r)| r);
    set_rank_check(conn, true).await?;
    move_ranks(conn, tenant, &old, &new).await?;
    let sql = format!(
        "insert into patient_policy (tenant_id, policy_id, patient_id, payer_id, rank, policy_number, group_number, \
         relationship, insured_first_name, insured_last_name, insured_date_of_birth, payment_percent, effective_date, \
         inactive_date) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) returning {}",
        columns()
    );
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(patient)
        .bind(f.payer_id)
        .bind(rank)
        .bind(&f.policy_number)
        .bind(&f.group_number)
        .bind(&f.relationship)
        .bind(&f.insured_first_name)
        .bind(&f.insured_last_name)
        .bind(f.insured_date_of_birth)
        .bind(f.payment_percent)
        .bind(f.effective_date)
        .bind(f.inactive_date)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match foreign_key_violation(&e) {
            Some("patient_policy_payer_fkey") => unknown_id(&field(prefix, "payer_id"), "payer"),
            _ => DomainError::Database(e),
        })?;
    set_rank_check(conn, false).await?;
    row.try_into()
}

/// `POST …/patients/{id}/policies`: adds a policy and its `patient.policy_added` event.
pub async fn add(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    input: &PolicyInput,
) -> Result<Policy, DomainError> {
    let f = input.parse()?;
    let p = insert(conn, tenant, patient, &f, "").await?;
    outbox::record(conn, tenant, patient.as_uuid(), "patient.policy_added", &p).await?;
    Ok(p)
}

/// Every policy of the patient in rank order, active or not (no existence check).
pub(crate) async fn all_by_rank(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<Vec<Policy>, DomainError> {
    let sql = format!(
        "select {} from patient_policy where tenant_id = $1 and patient_id = $2 order by rank",
        columns()
    );
    let rows: Vec<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .fetch_all(conn)
        .await?;
    rows_to_policies(rows)
}

async fn patient_exists(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<(), DomainError> {
    let (exists,): (bool,) = sqlx::query_as(
        "select exists (select 1 from patient where tenant_id = $1 and patient_id = $2)",
    )
    .bind(tenant)
    .bind(patient)
    .fetch_one(conn)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(DomainError::NotFound("patient"))
    }
}

/// `GET …/patients/{id}/policies`: all the patient's policies in rank order; 404 for no patient.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<Vec<Policy>, DomainError> {
    patient_exists(conn, tenant, patient).await?;
    all_by_rank(conn, tenant, patient).await
}

/// The patient's policies in force today, in rank order: the payers an order bills, first to
/// last. 404 when the tenant has no such patient.
pub async fn policies_by_rank(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
) -> Result<Vec<Policy>, DomainError> {
    patient_exists(conn, tenant, patient).await?;
    let sql = format!(
        "select {} from patient_policy where tenant_id = $1 and patient_id = $2 and {} order by rank",
        columns(),
        in_force("current_date")
    );
    let rows: Vec<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .fetch_all(conn)
        .await?;
    rows_to_policies(rows)
}

/// Like [`policies_by_rank`] for another day (an order's date of service): the policies in force
/// on `day`, in rank order. Their `active` field still says whether they are in force today.
pub async fn policies_in_force_on(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    day: NaiveDate,
) -> Result<Vec<Policy>, DomainError> {
    patient_exists(conn, tenant, patient).await?;
    let sql = format!(
        "select {} from patient_policy where tenant_id = $1 and patient_id = $2 and {} order by rank",
        columns(),
        in_force("$3::date")
    );
    let rows: Vec<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .bind(day)
        .fetch_all(conn)
        .await?;
    rows_to_policies(rows)
}

/// `GET …/policies/{id}`: one policy of the patient (404 when it is not theirs).
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    id: PolicyId,
) -> Result<Policy, DomainError> {
    let sql = format!(
        "select {} from patient_policy where tenant_id = $1 and patient_id = $2 and policy_id = $3",
        columns()
    );
    let row: Option<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.ok_or(DomainError::NotFound("policy"))?.try_into()
}

async fn fetch_locked(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    id: PolicyId,
) -> Result<Policy, DomainError> {
    let sql = format!(
        "select {} from patient_policy where tenant_id = $1 and patient_id = $2 and policy_id = $3 for update",
        columns()
    );
    let row: Option<PolicyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.ok_or(DomainError::NotFound("policy"))?.try_into()
}

/// `PATCH …/policies/{id}`: merge patch with `If-Match`; `patient.policy_updated` when something
/// changed. The rank is not patchable (re-rank instead); a new payer must be active.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    id: PolicyId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Policy, bool), DomainError> {
    lock_patient(conn, tenant, patient).await?;
    let current = fetch_locked(conn, tenant, patient, id).await?;
    check_version(if_match, current.version)?;
    let f = patched(&current.to_input(), patch)?.parse()?;
    if f.rank != usize::try_from(current.rank).ok() {
        let mut errs = ValidationErrors::default();
        errs.push(
            "rank",
            "not_patchable",
            "change ranks with POST …/policies/rank",
        );
        return Err(errs.into());
    }
    if current.to_input().parse().is_ok_and(|c| c == f) {
        return Ok((current, false));
    }
    if f.payer_id != current.payer_id {
        check_payer(conn, tenant, f.payer_id, "payer_id").await?;
    }
    let sql = format!(
        "update patient_policy set payer_id=$4, policy_number=$5, group_number=$6, relationship=$7, \
         insured_first_name=$8, insured_last_name=$9, insured_date_of_birth=$10, payment_percent=$11, \
         effective_date=$12, inactive_date=$13, version = version + 1, updated_at = now() \
         where tenant_id = $1 and patient_id = $2 and policy_id = $3 returning {}",
        columns()
    );
    let row: PolicyRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(patient)
        .bind(id)
        .bind(f.payer_id)
        .bind(&f.policy_number)
        .bind(&f.group_number)
        .bind(&f.relationship)
        .bind(&f.insured_first_name)
        .bind(&f.insured_last_name)
        .bind(f.insured_date_of_birth)
        .bind(f.payment_percent)
        .bind(f.effective_date)
        .bind(f.inactive_date)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match foreign_key_violation(&e) {
            Some("patient_policy_payer_fkey") => unknown_id("payer_id", "payer"),
            _ => DomainError::Database(e),
        })?;
    let p: Policy = row.try_into()?;
    outbox::record(
        conn,
        tenant,
        patient.as_uuid(),
        "patient.policy_updated",
        &p,
    )
    .await?;
    Ok((p, true))
}

/// What `patient.policy_removed` carries.
#[derive(Debug, Clone, Serialize)]
struct Removed {
    /// The removed policy.
    id: PolicyId,
    /// Its patient.
    patient_id: PatientId,
    /// Its payer, so consumers need not have kept the policy.
    payer_id: PayerId,
}

/// `DELETE …/policies/{id}` with `If-Match`: the policies ranked below close up;
/// `patient.policy_removed`. Returns the removed policy.
pub async fn remove(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    id: PolicyId,
    if_match: Option<i64>,
) -> Result<Policy, DomainError> {
    lock_patient(conn, tenant, patient).await?;
    let current = fetch_locked(conn, tenant, patient, id).await?;
    check_version(if_match, current.version)?;
    let old = order_of(conn, tenant, patient).await?;
    sqlx::query("delete from patient_policy where tenant_id = $1 and policy_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| match super::foreign_key_violation(&e) {
            // Orders keep the policies they bill (a snapshot); history must not lose them.
            Some("order_policy_policy_fkey") => DomainError::Conflict {
                code: "policy_in_use",
                detail: "an order bills this policy: set its inactive_date instead of removing it"
                    .into(),
            },
            _ => DomainError::Database(e),
        })?;
    let new = ranking::remove(&old, id);
    set_rank_check(conn, true).await?;
    move_ranks(conn, tenant, &old, &new).await?;
    set_rank_check(conn, false).await?;
    let removed = Removed {
        id,
        patient_id: patient,
        payer_id: current.payer_id,
    };
    outbox::record(
        conn,
        tenant,
        patient.as_uuid(),
        "patient.policy_removed",
        &removed,
    )
    .await?;
    Ok(current)
}

/// `POST …/policies/rank`: the complete new order of the patient's policies.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankInput {
    /// Every policy id of the patient, each once, first-billed first.
    pub policy_ids: Vec<String>,
}

/// What `patient.policies_reranked` carries.
#[derive(Debug, Clone, Serialize)]
struct Reranked {
    /// The patient.
    patient_id: PatientId,
    /// The new order, rank 1 first.
    policy_ids: Vec<PolicyId>,
}

/// Re-ranks the patient's policies to the given complete order (422 `not_a_permutation` on
/// `policy_ids` otherwise); `patient.policies_reranked` when the order changed. Returns the
/// policies in their new order and whether anything moved.
pub async fn rerank(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    input: &RerankInput,
) -> Result<(Vec<Policy>, bool), DomainError> {
    let mut errs = ValidationErrors::default();
    let requested: Vec<PolicyId> = input
        .policy_ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            super::model::parse_id(&mut errs, &format!("policy_ids[{i}]"), Some(raw.as_str()))
        })
        .collect();
    if !errs.is_empty() {
        return Err(errs.into());
    }
    lock_patient(conn, tenant, patient).await?;
    let old = order_of(conn, tenant, patient).await?;
    let new = ranking::reorder(&old, &requested).map_err(|e| rank_error(e, "policy_ids"))?;
    let changed = old != new;
    if changed {
        set_rank_check(conn, true).await?;
        move_ranks(conn, tenant, &old, &new).await?;
        set_rank_check(conn, false).await?;
        outbox::record(
            conn,
            tenant,
            patient.as_uuid(),
            "patient.policies_reranked",
            &Reranked {
                patient_id: patient,
                policy_ids: new,
            },
        )
        .await?;
    }
    Ok((all_by_rank(conn, tenant, patient).await?, changed))
}
