//! Patients (the legacy "customer") with their insurance policies ranked 1–4 — the order in which
//! payers are billed. Account numbers come from a per-tenant counter when the client gives none.
//!
//! - [`model`]: input types and their validation, the stored resources.
//! - [`ranking`]: policy ranks as pure functions (insert at a rank, remove, re-rank), with a
//!   property test; the SQL in [`policies`] applies what they decide.
//! - [`policies`]: the policy SQL, and [`policies_by_rank`] for the order code.
//!
//! Ids in a body that name no row of the tenant (location, prescribers, payer) are a 422
//! `validation_failed` naming the field with code `unknown_id`: the request is wrong, not the URL.
//! A patient or policy named in the URL that does not exist is a 404.

pub mod model;
pub mod policies;
pub mod ranking;

pub use model::{
    Patient, PatientFields, PatientInput, Policy, PolicyFields, PolicyInput, PostalAddress,
};
pub use policies::{policies_by_rank, policies_in_force_on};

use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{LocationId, PatientId, PrescriberId, TenantId};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;

/// The name of the foreign key a database error violated, if that is what it is.
pub(crate) fn foreign_key_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => db.constraint(),
        _ => None,
    }
}

/// A 422 on one field whose id names nothing of the tenant's.
pub(crate) fn unknown_id(field: &str, what: &str) -> DomainError {
    let mut errs = ValidationErrors::default();
    errs.push(field, "unknown_id", format!("no such {what}"));
    DomainError::Validation(errs)
}

#[derive(sqlx::FromRow)]
struct PatientRow {
    patient_id: PatientId,
    account_number: String,
    first_name: String,
    middle_name: Option<String>,
    last_name: String,
    date_of_birth: NaiveDate,
    gender: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<Json<PostalAddress>>,
    bill_to: Option<Json<PostalAddress>>,
    ship_to: Option<Json<PostalAddress>>,
    delivery_directions: Option<String>,
    location_id: Option<LocationId>,
    primary_prescriber_id: Option<PrescriberId>,
    secondary_prescriber_id: Option<PrescriberId>,
    diagnosis_codes: Vec<String>,
    hardship: bool,
    signature_on_file: bool,
    inactive_date: Option<NaiveDate>,
    deceased_date: Option<NaiveDate>,
    active: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PatientRow> for Patient {
    fn from(r: PatientRow) -> Self {
        Patient {
            id: r.patient_id,
            account_number: r.account_number,
            first_name: r.first_name,
            middle_name: r.middle_name,
            last_name: r.last_name,
            date_of_birth: r.date_of_birth,
            gender: r.gender,
            phone: r.phone,
            email: r.email,
            address: r.address.map(|j| j.0),
            bill_to: r.bill_to.map(|j| j.0),
            ship_to: r.ship_to.map(|j| j.0),
            delivery_directions: r.delivery_directions,
            location_id: r.location_id,
            primary_prescriber_id: r.primary_prescriber_id,
            secondary_prescriber_id: r.secondary_prescriber_id,
            diagnosis_codes: r.diagnosis_codes,
            hardship: r.hardship,
            signature_on_file: r.signature_on_file,
            inactive_date: r.inactive_date,
            deceased_date: r.deceased_date,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            policies: None,
        }
    }
}

/// A patient is active unless an inactive date has come or a date of death is recorded.
const ACTIVE: &str =
    "((inactive_date is null or inactive_date > current_date) and deceased_date is null)";

fn columns() -> String {
    format!(
        "patient_id, account_number, first_name, middle_name, last_name, date_of_birth, gender, phone, email, \
         address, bill_to, ship_to, delivery_directions, location_id, primary_prescriber_id, secondary_prescriber_id, \
         diagnosis_codes, hardship, signature_on_file, inactive_date, deceased_date, {ACTIVE} as active, version, \
         created_at, updated_at"
    )
}

fn write_error(e: sqlx::Error, account_number: &str) -> DomainError {
    if unique_violation(&e) == Some("patient_account_number_key") {
        return DomainError::Conflict {
            code: "account_number_taken",
            detail: format!("another patient has account number {account_number}"),
        };
    }
    match foreign_key_violation(&e) {
        Some("patient_location_fkey") => unknown_id("location_id", "location"),
        Some("patient_primary_prescriber_fkey") => {
            unknown_id("primary_prescriber_id", "prescriber")
        }
        Some("patient_secondary_prescriber_fkey") => {
            unknown_id("secondary_prescriber_id", "prescriber")
        }
        _ => DomainError::Database(e),
    }
}

async fn write(
    conn: &mut PgConnection,
    sql: String,
    tenant: TenantId,
    id: PatientId,
    account_number: &str,
    f: &PatientFields,
) -> Result<Patient, DomainError> {
    let row: PatientRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(account_number)
        .bind(&f.first_name)
        .bind(&f.middle_name)
        .bind(&f.last_name)
        .bind(f.date_of_birth)
        .bind(&f.gender)
        .bind(&f.phone)
        .bind(&f.email)
        .bind(f.address.clone().map(Json))
        .bind(f.bill_to.clone().map(Json))
        .bind(f.ship_to.clone().map(Json))
        .bind(&f.delivery_directions)
        .bind(f.location_id)
        .bind(f.primary_prescriber_id)
        .bind(f.secondary_prescriber_id)
        .bind(&f.diagnosis_codes)
        .bind(f.hardship)
        .bind(f.signature_on_file)
        .bind(f.inactive_date)
        .bind(f.deceased_date)
        .fetch_one(conn)
        .await
        .map_err(|e| write_error(e, account_number))?;
    Ok(row.into())
}

/// The next free generated account number (`P000001`, `P000002`…), from the tenant's counter,
/// whose row stays locked until the write's transaction ends. Numbers a client chose are skipped.
async fn next_account_number(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<String, DomainError> {
    for _ in 0..10_000 {
        let (n,): (i64,) = sqlx::query_as(
            "insert into patient_account_counter (tenant_id, last_value) values ($1, 1) \
             on conflict (tenant_id) do update set last_value = patient_account_counter.last_value + 1 \
             returning last_value",
        )
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await?;
        let candidate = format!("P{n:06}");
        let (taken,): (bool,) = sqlx::query_as(
            "select exists (select 1 from patient where tenant_id = $1 and account_number = $2)",
        )
        .bind(tenant)
        .bind(&candidate)
        .fetch_one(&mut *conn)
        .await?;
        if !taken {
            return Ok(candidate);
        }
    }
    Err(DomainError::Conflict {
        code: "account_number_taken",
        detail: "no free generated account number; give one".into(),
    })
}

/// Creates a patient (and the policies given with it, in order) and its `patient.created` event,
/// whose payload carries the policies.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &PatientInput,
) -> Result<Patient, DomainError> {
    let f = input.parse()?;
    let account_number = match &f.account_number {
        Some(a) => a.clone(),
        None => next_account_number(conn, tenant).await?,
    };
    let sql = format!(
        "insert into patient (tenant_id, patient_id, account_number, first_name, middle_name, last_name, date_of_birth, \
         gender, phone, email, address, bill_to, ship_to, delivery_directions, location_id, primary_prescriber_id, \
         secondary_prescriber_id, diagnosis_codes, hardship, signature_on_file, inactive_date, deceased_date) \
         values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22) returning {}",
        columns()
    );
    let mut p = write(conn, sql, tenant, PatientId::new(), &account_number, &f).await?;
    let mut added = Vec::new();
    for (i, input) in input.policies.iter().flatten().enumerate() {
        let pf = input.parse_at(&format!("policies[{i}]"))?;
        added.push(policies::insert(conn, tenant, p.id, &pf, &format!("policies[{i}]")).await?);
    }
    p.policies = Some(added);
    outbox::record(conn, tenant, p.id.as_uuid(), "patient.created", &p).await?;
    Ok(p)
}

async fn fetch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PatientId,
    lock: bool,
) -> Result<Patient, DomainError> {
    let sql = format!(
        "select {} from patient where tenant_id = $1 and patient_id = $2{}",
        columns(),
        if lock { " for update" } else { "" }
    );
    let row: Option<PatientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Patient::from)
        .ok_or(DomainError::NotFound("patient"))
}

/// One patient with all their policies in rank order (active or not).
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PatientId,
) -> Result<Patient, DomainError> {
    let mut p = fetch(conn, tenant, id, false).await?;
    p.policies = Some(policies::all_by_rank(conn, tenant, id).await?);
    Ok(p)
}

/// Filters of the list; all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    /// Case-insensitive substring of the first or the last name.
    pub q: Option<String>,
    /// Exact account number (compared upper-case).
    pub account_number: Option<String>,
    /// Exact date of birth.
    pub date_of_birth: Option<NaiveDate>,
    /// Active (no inactive date reached, not deceased) or not.
    pub active: Option<bool>,
}

/// A page in id order (`limit + 1` rows), without policies.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &PatientFilter,
) -> Result<Vec<Patient>, DomainError> {
    let sql = format!(
        "select {} from patient where tenant_id = $1 and ($2::uuid is null or patient_id > $2) \
         and ($3::text is null or first_name ilike '%' || $3 || '%' or last_name ilike '%' || $3 || '%') \
         and ($4::text is null or account_number = $4) and ($5::date is null or date_of_birth = $5) \
         and ($6::boolean is null or {ACTIVE} = $6) order by patient_id limit $7",
        columns()
    );
    let q = f.q.as_deref().map(|q| {
        q.trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    });
    let rows: Vec<PatientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(q)
        .bind(
            f.account_number
                .as_deref()
                .map(|a| a.trim().to_ascii_uppercase()),
        )
        .bind(f.date_of_birth)
        .bind(f.active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Patient::from).collect())
}

/// Applies a JSON merge patch to the patient's own fields (checking `if_match`);
/// `patient.updated` when something changed. `policies` cannot be patched here.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PatientId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Patient, bool), DomainError> {
    let current = fetch(conn, tenant, id, true).await?;
    check_version(if_match, current.version)?;
    let input = patched(&current.to_input(), patch)?;
    let mut errs = ValidationErrors::default();
    if input.policies.is_some() {
        errs.push(
            "policies",
            "not_patchable",
            "change policies with the …/policies sub-resource",
        );
    }
    if input.account_number.is_none() {
        errs.push(
            "account_number",
            "required",
            "a patient keeps an account number",
        );
    }
    let f = match input.parse() {
        Ok(f) if errs.is_empty() => f,
        Ok(_) => return Err(errs.into()),
        Err(e) => {
            errs.0.extend(e.0);
            return Err(errs.into());
        }
    };
    let unchanged = current.to_input().parse().is_ok_and(|c| c == f);
    let (p, changed) = if unchanged {
        (current, false)
    } else {
        let account_number = f.account_number.clone().unwrap_or_default();
        let sql = format!(
            "update patient set account_number=$3, first_name=$4, middle_name=$5, last_name=$6, date_of_birth=$7, \
             gender=$8, phone=$9, email=$10, address=$11, bill_to=$12, ship_to=$13, delivery_directions=$14, \
             location_id=$15, primary_prescriber_id=$16, secondary_prescriber_id=$17, diagnosis_codes=$18, \
             hardship=$19, signature_on_file=$20, inactive_date=$21, deceased_date=$22, version = version + 1, \
             updated_at = now() where tenant_id = $1 and patient_id = $2 returning {}",
            columns()
        );
        let p = write(conn, sql, tenant, id, &account_number, &f).await?;
        outbox::record(conn, tenant, p.id.as_uuid(), "patient.updated", &p).await?;
        (p, true)
    };
    let mut p = p;
    p.policies = Some(policies::all_by_rank(conn, tenant, id).await?);
    Ok((p, changed))
}
