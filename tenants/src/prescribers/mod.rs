//! Prescribers: the physicians, nurse practitioners and physician assistants whose orders a DME
//! provider fills. The NPI is validated by its check digit and unique within the tenant; PECOS
//! enrolment is kept because Medicare denies claims from orderers not enrolled.

use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{PrescriberId, TenantId};
use crate::npi::is_valid_npi;
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// The writable fields of a prescriber (`POST` whole; `PATCH` as a JSON merge patch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescriberInput {
    pub first_name: String,
    pub last_name: String,
    /// Ten digits with a valid NPI check digit.
    pub npi: String,
    /// MD, DO, NP, PA…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_number: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub license_expires: Option<NaiveDate>,
    /// Enrolled in Medicare's PECOS (required for Medicare DMEPOS orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pecos_enrolled: Option<bool>,
    /// Inactive prescribers stay for history but take no new orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Validated fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrescriberFields {
    pub first_name: String,
    pub last_name: String,
    pub npi: String,
    pub credentials: Option<String>,
    pub phone: Option<String>,
    pub fax: Option<String>,
    pub license_number: Option<String>,
    pub license_expires: Option<NaiveDate>,
    pub pecos_enrolled: bool,
    pub active: bool,
}

fn phone(errs: &mut ValidationErrors, field: &str, value: Option<&str>) -> Option<String> {
    let p = errs.optional_text(field, value, 32)?;
    let digits = p.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits)
        || !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        errs.push(
            field,
            "invalid_format",
            "7 to 15 digits, optionally with + - ( ) . and spaces",
        );
    }
    Some(p)
}

impl PrescriberInput {
    pub fn parse(&self) -> Result<PrescriberFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let first_name = errs.text("first_name", &self.first_name, 100);
        let last_name = errs.text("last_name", &self.last_name, 100);
        let npi = self.npi.trim().to_owned();
        if !is_valid_npi(&npi) {
            errs.push(
                "npi",
                "invalid_npi",
                "ten digits with a valid NPI check digit",
            );
        }
        let credentials = errs.optional_text("credentials", self.credentials.as_deref(), 20);
        let phone_n = phone(&mut errs, "phone", self.phone.as_deref());
        let fax = phone(&mut errs, "fax", self.fax.as_deref());
        let license_number =
            errs.optional_text("license_number", self.license_number.as_deref(), 40);
        errs.finish(PrescriberFields {
            first_name,
            last_name,
            npi,
            credentials,
            phone: phone_n,
            fax,
            license_number,
            license_expires: self.license_expires,
            pecos_enrolled: self.pecos_enrolled.unwrap_or(false),
            active: self.active.unwrap_or(true),
        })
    }
}

/// A stored prescriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Prescriber {
    #[sqlx(rename = "prescriber_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: PrescriberId,
    pub first_name: String,
    pub last_name: String,
    pub npi: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fax: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub license_expires: Option<NaiveDate>,
    pub pecos_enrolled: bool,
    pub active: bool,
    /// Bumped on every change; the `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Prescriber {
    fn to_input(&self) -> PrescriberInput {
        PrescriberInput {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            npi: self.npi.clone(),
            credentials: self.credentials.clone(),
            phone: self.phone.clone(),
            fax: self.fax.clone(),
            license_number: self.license_number.clone(),
            license_expires: self.license_expires,
            pecos_enrolled: Some(self.pecos_enrolled),
            active: Some(self.active),
        }
    }
}

const COLUMNS: &str = "prescriber_id, first_name, last_name, npi, credentials, phone, fax, license_number, \
                       license_expires, pecos_enrolled, active, version, created_at, updated_at";

fn write_error(e: sqlx::Error, f: &PrescriberFields) -> DomainError {
    match unique_violation(&e) {
        Some("prescriber_npi_key") => DomainError::Conflict {
            code: "prescriber_npi_taken",
            detail: format!("a prescriber with NPI {} exists", f.npi),
        },
        _ => DomainError::Database(e),
    }
}

async fn write(
    conn: &mut PgConnection,
    sql: String,
    tenant: TenantId,
    id: PrescriberId,
    f: &PrescriberFields,
) -> Result<Prescriber, DomainError> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.first_name)
        .bind(&f.last_name)
        .bind(&f.npi)
        .bind(&f.credentials)
        .bind(&f.phone)
        .bind(&f.fax)
        .bind(&f.license_number)
        .bind(f.license_expires)
        .bind(f.pecos_enrolled)
        .bind(f.active)
        .fetch_one(conn)
        .await
        .map_err(|e| write_error(e, f))
}

/// Creates a prescriber and its `prescriber.created` event.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &PrescriberInput,
) -> Result<Prescriber, DomainError> {
    let f = input.parse()?;
    let sql = format!(
        "insert into prescriber (tenant_id, prescriber_id, first_name, last_name, npi, credentials, phone, fax, \
         license_number, license_expires, pecos_enrolled, active) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) \
         returning {COLUMNS}"
    );
    let p = write(conn, sql, tenant, PrescriberId::new(), &f).await?;
    outbox::record(conn, tenant, p.id.as_uuid(), "prescriber.created", &p).await?;
    Ok(p)
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PrescriberId,
) -> Result<Prescriber, DomainError> {
    let sql =
        format!("select {COLUMNS} from prescriber where tenant_id = $1 and prescriber_id = $2");
    let row: Option<Prescriber> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.ok_or(DomainError::NotFound("prescriber"))
}

/// Filters of the list.
#[derive(Debug, Clone, Default)]
pub struct PrescriberFilter {
    /// Case-insensitive substring of first or last name.
    pub q: Option<String>,
    /// Exact NPI.
    pub npi: Option<String>,
    /// Active or not.
    pub active: Option<bool>,
}

/// A page in id order (`limit + 1` rows).
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &PrescriberFilter,
) -> Result<Vec<Prescriber>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from prescriber where tenant_id = $1 and ($2::uuid is null or prescriber_id > $2) \
         and ($3::text is null or first_name ilike '%' || $3 || '%' or last_name ilike '%' || $3 || '%') \
         and ($4::text is null or npi = $4) and ($5::boolean is null or active = $5) \
         order by prescriber_id limit $6"
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
        .bind(&f.npi)
        .bind(f.active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

/// Applies a JSON merge patch (checking `if_match`); `prescriber.updated` when something changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PrescriberId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Prescriber, bool), DomainError> {
    let sql = format!(
        "select {COLUMNS} from prescriber where tenant_id = $1 and prescriber_id = $2 for update"
    );
    let current: Prescriber = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("prescriber"))?;
    check_version(if_match, current.version)?;
    let f = patched(&current.to_input(), patch)?.parse()?;
    if f == current.to_input().parse()? {
        return Ok((current, false));
    }
    let sql = format!(
        "update prescriber set first_name=$3, last_name=$4, npi=$5, credentials=$6, phone=$7, fax=$8, \
         license_number=$9, license_expires=$10, pecos_enrolled=$11, active=$12, version = version + 1, \
         updated_at = now() where tenant_id = $1 and prescriber_id = $2 returning {COLUMNS}"
    );
    let p = write(conn, sql, tenant, id, &f).await?;
    outbox::record(conn, tenant, p.id.as_uuid(), "prescriber.updated", &p).await?;
    Ok((p, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_npi_and_names() {
        let ok = PrescriberInput {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            npi: "1234567893".into(),
            ..Default::default()
        };
        assert!(ok.parse().is_ok());
        let bad = PrescriberInput {
            first_name: " ".into(),
            npi: "1234567890".into(),
            phone: Some("x".into()),
            ..ok
        };
        let fields: Vec<String> = bad
            .parse()
            .err()
            .map(|e| e.0.into_iter().map(|e| e.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["first_name", "npi", "phone"]);
    }
}
