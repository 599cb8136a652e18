//! Payers: the insurers and programs a DME provider bills (Medicare, Medicaid, commercial plans…).

use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{PayerId, PriceListId, TenantId};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Kinds of payer.
pub const PAYER_TYPES: &[&str] = &[
    "medicare",
    "medicaid",
    "commercial",
    "managed_care",
    "workers_comp",
    "self_pay",
    "other",
];

/// The writable fields (`POST` whole, `PATCH` as a merge patch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayerInput {
    /// Unique within the tenant.
    pub name: String,
    /// `medicare`, `medicaid`, `commercial`, `managed_care`, `workers_comp`, `self_pay` or `other`.
    pub payer_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// How claims reach the payer (Region A, Availity…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_channel: Option<String>,
    /// `allowed` (default) or `bill`: which price expected payments are based on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// In-network with this payer (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participating: Option<bool>,
    /// Inactive payers take no new policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The payer's default price list (legacy PriceCodeID): where its orders' lines take prices
    /// from unless the order says otherwise. Must exist; `null` in a patch clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub default_price_list_id: Option<PriceListId>,
}

/// Validated fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayerFields {
    pub name: String,
    pub payer_type: String,
    pub phone: Option<String>,
    pub claim_channel: Option<String>,
    pub basis: String,
    pub participating: bool,
    pub active: bool,
    /// The default price list, checked to exist when written.
    pub default_price_list_id: Option<PriceListId>,
}

impl PayerInput {
    pub fn parse(&self) -> Result<PayerFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.text("name", &self.name, 200);
        let payer_type = self.payer_type.trim().to_ascii_lowercase();
        if !PAYER_TYPES.contains(&payer_type.as_str()) {
            errs.push(
                "payer_type",
                "invalid_value",
                format!("one of {}", PAYER_TYPES.join(", ")),
            );
        }
        let phone = errs.optional_text("phone", self.phone.as_deref(), 32);
        if let Some(p) = &phone
            && !(7..=15).contains(&p.chars().filter(char::is_ascii_digit).count())
        {
            errs.push("phone", "invalid_format", "7 to 15 digits");
        }
        let claim_channel = errs.optional_text("claim_channel", self.claim_channel.as_deref(), 60);
        let basis = self
            .basis
            .as_deref()
            .unwrap_or("allowed")
            .trim()
            .to_ascii_lowercase();
        if basis != "allowed" && basis != "bill" {
            errs.push("basis", "invalid_value", "allowed or bill");
        }
        errs.finish(PayerFields {
            name,
            payer_type,
            phone,
            claim_channel,
            basis,
            participating: self.participating.unwrap_or(true),
            active: self.active.unwrap_or(true),
            default_price_list_id: self.default_price_list_id,
        })
    }
}

/// A stored payer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Payer {
    #[sqlx(rename = "payer_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: PayerId,
    pub name: String,
    pub payer_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_channel: Option<String>,
    pub basis: String,
    pub participating: bool,
    pub active: bool,
    /// The payer's default price list, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub default_price_list_id: Option<PriceListId>,
    /// The `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payer {
    fn to_input(&self) -> PayerInput {
        PayerInput {
            name: self.name.clone(),
            payer_type: self.payer_type.clone(),
            phone: self.phone.clone(),
            claim_channel: self.claim_channel.clone(),
            basis: Some(self.basis.clone()),
            participating: Some(self.participating),
            active: Some(self.active),
            default_price_list_id: self.default_price_list_id,
        }
    }
}

const COLUMNS: &str = "payer_id, name, payer_type, phone, claim_channel, basis, participating, active, \
     default_price_list_id, version, created_at, updated_at";

async fn write(
    conn: &mut PgConnection,
    sql: String,
    tenant: TenantId,
    id: PayerId,
    f: &PayerFields,
) -> Result<Payer, DomainError> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.name)
        .bind(&f.payer_type)
        .bind(&f.phone)
        .bind(&f.claim_channel)
        .bind(&f.basis)
        .bind(f.participating)
        .bind(f.active)
        .bind(f.default_price_list_id)
        .fetch_one(conn)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some("payer_name_key") => DomainError::Conflict {
                code: "payer_name_taken",
                detail: format!("a payer named {} exists", f.name),
            },
            _ => DomainError::Database(e),
        })
}

/// A default price list must exist (an unknown id is a 422 on the field, not a 404 of the payer).
async fn check_price_list(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &PayerFields,
) -> Result<(), DomainError> {
    let Some(id) = f.default_price_list_id else {
        return Ok(());
    };
    if crate::price_lists::exists(conn, tenant, id).await? {
        return Ok(());
    }
    let mut errs = ValidationErrors::default();
    errs.push(
        "default_price_list_id",
        "not_found",
        format!("no price list {id}"),
    );
    Err(DomainError::Validation(errs))
}

pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &PayerInput,
) -> Result<Payer, DomainError> {
    let f = input.parse()?;
    check_price_list(conn, tenant, &f).await?;
    let sql = format!(
        "insert into payer (tenant_id, payer_id, name, payer_type, phone, claim_channel, basis, participating, active, \
         default_price_list_id) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) returning {COLUMNS}"
    );
    let p = write(conn, sql, tenant, PayerId::new(), &f).await?;
    outbox::record(conn, tenant, p.id.as_uuid(), "payer.created", &p).await?;
    Ok(p)
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PayerId,
) -> Result<Payer, DomainError> {
    let sql = format!("select {COLUMNS} from payer where tenant_id = $1 and payer_id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("payer"))
}

/// Filters of the list.
#[derive(Debug, Clone, Default)]
pub struct PayerFilter {
    /// Substring of the name.
    pub q: Option<String>,
    /// Exact type.
    pub payer_type: Option<String>,
    /// Active or not.
    pub active: Option<bool>,
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &PayerFilter,
) -> Result<Vec<Payer>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from payer where tenant_id = $1 and ($2::uuid is null or payer_id > $2) \
         and ($3::text is null or name ilike '%' || $3 || '%') and ($4::text is null or payer_type = $4) \
         and ($5::boolean is null or active = $5) order by payer_id limit $6"
    );
    let q = f.q.as_deref().map(|q| {
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    });
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(q)
        .bind(&f.payer_type)
        .bind(f.active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

/// Merge patch with `If-Match`; returns the payer and whether it changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PayerId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Payer, bool), DomainError> {
    let sql =
        format!("select {COLUMNS} from payer where tenant_id = $1 and payer_id = $2 for update");
    let current: Payer = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("payer"))?;
    check_version(if_match, current.version)?;
    let f = patched(&current.to_input(), patch)?.parse()?;
    if f == current.to_input().parse()? {
        return Ok((current, false));
    }
    check_price_list(conn, tenant, &f).await?;
    let sql = format!(
        "update payer set name=$3, payer_type=$4, phone=$5, claim_channel=$6, basis=$7, participating=$8, active=$9, \
         default_price_list_id=$10, version = version + 1, updated_at = now() where tenant_id = $1 and payer_id = $2 returning {COLUMNS}"
    );
    let p = write(conn, sql, tenant, id, &f).await?;
    outbox::record(conn, tenant, p.id.as_uuid(), "payer.updated", &p).await?;
    Ok((p, true))
}
