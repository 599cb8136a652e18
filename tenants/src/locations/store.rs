//! SQL for locations. Every function runs inside the caller's tenant transaction (RLS in force)
//! and still filters by `tenant_id` explicitly: the policy is defence in depth, not the filter.
//! Each change writes its outbox event in the same transaction.

use super::model::{Address, Location, LocationFields, LocationInput};
use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{LocationId, TenantId};
use crate::outbox;
use crate::page::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

const COLUMNS: &str = "location_id, code, name, address_line1, address_line2, city, state, postal_code, \
                       phone, npi, pos_type, active, version, created_at, updated_at, tax_rate";

#[derive(sqlx::FromRow)]
struct Row {
    /// Key within the tenant; `tenant_id` is not selected, every query already filters on it.
    location_id: LocationId,
    /// Stored upper-case; unique per tenant (`location_code_key`).
    code: String,
    /// Display name, trimmed before it was written.
    name: String,
    /// The address is flat in the table; `From<Row>` nests these five columns into `Address`.
    address_line1: String,
    /// `NULL` when the location has no second line.
    address_line2: Option<String>,
    /// Part of the flat address (see `address_line1`).
    city: String,
    /// Upper-case postal abbreviation, part of the flat address.
    state: String,
    /// ZIP or ZIP+4, part of the flat address.
    postal_code: String,
    /// `NULL` when none was given.
    phone: Option<String>,
    /// `NULL` when the branch bills under no NPI of its own.
    npi: Option<String>,
    /// Place-of-service code; the column defaults to `12` (home).
    pos_type: String,
    /// Inactive locations are kept for history.
    active: bool,
    /// Bumped by every update that changes something; the ETag and the `If-Match` check.
    version: i64,
    /// Set by the column default at insert.
    created_at: DateTime<Utc>,
    /// Set to `now()` by each update that changes something.
    updated_at: DateTime<Utc>,
    /// Percent; billing taxes the branch's orders with it.
    tax_rate: rust_decimal::Decimal,
}

impl From<Row> for Location {
    fn from(r: Row) -> Self {
        Location {
            id: r.location_id,
            code: r.code,
            name: r.name,
            address: Address {
                line1: r.address_line1,
                line2: r.address_line2,
                city: r.city,
                state: r.state,
                postal_code: r.postal_code,
            },
            phone: r.phone,
            npi: r.npi,
            pos_type: r.pos_type,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            tax_rate: super::model::normalise_rate(r.tax_rate),
        }
    }
}

fn map_write_error(e: sqlx::Error, fields: &LocationFields) -> DomainError {
    match unique_violation(&e) {
        Some("location_code_key") => DomainError::Conflict {
            code: "location_code_taken",
            detail: format!("a location with code {} already exists", fields.code),
        },
        _ => DomainError::Database(e),
    }
}

/// Runs an insert or update whose parameters are `$1` tenant, `$2` location id and `$3`…`$14` the
/// fields in column order, returning the written row.
async fn write_row(
    conn: &mut PgConnection,
    sql: String,
    tenant: TenantId,
    id: LocationId,
    f: &LocationFields,
) -> Result<Location, DomainError> {
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.code)
        .bind(&f.name)
        .bind(&f.address.line1)
        .bind(&f.address.line2)
        .bind(&f.address.city)
        .bind(&f.address.state)
        .bind(&f.address.postal_code)
        .bind(&f.phone)
        .bind(&f.npi)
        .bind(&f.pos_type)
        .bind(f.active)
        .bind(f.tax_rate)
        .fetch_one(conn)
        .await
        .map_err(|e| map_write_error(e, f))?;
    Ok(Location::from(row))
}

/// Creates a location and its `location.created` event.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &LocationInput,
) -> Result<Location, DomainError> {
    let f = input.parse()?;
    let sql = format!(
        "insert into location (tenant_id, location_id, code, name, address_line1, address_line2, city, state, \
         postal_code, phone, npi, pos_type, active, tax_rate) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) \
         returning {COLUMNS}"
    );
    let location = write_row(conn, sql, tenant, LocationId::new(), &f).await?;
    outbox::record(
        conn,
        tenant,
        location.id.as_uuid(),
        "location.created",
        &location,
    )
    .await?;
    Ok(location)
}

/// One location, or `NotFound`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: LocationId,
) -> Result<Location, DomainError> {
    let sql = format!("select {COLUMNS} from location where tenant_id = $1 and location_id = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Location::from)
        .ok_or(DomainError::NotFound("location"))
}

/// Filters of the location list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Case-insensitive substring of the name or code.
    pub q: Option<String>,
    /// Only active (or only inactive) locations.
    pub active: Option<bool>,
    /// Only these locations (the caller's location scope); `None`: all.
    pub only: Option<Vec<LocationId>>,
}

/// A page of locations in id order; fetches `limit + 1` rows so the caller can tell if more exist.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    filter: &ListFilter,
) -> Result<Vec<Location>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from location where tenant_id = $1 \
         and ($2::uuid is null or location_id > $2) \
         and ($3::text is null or name ilike '%' || $3 || '%' or code ilike '%' || $3 || '%') \
         and ($4::boolean is null or active = $4) \
         and ($6::uuid[] is null or location_id = any($6)) \
         order by location_id limit $5"
    );
    let q = filter.q.as_deref().map(escape_like);
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(q)
        .bind(filter.active)
        .bind(i64::from(page.limit) + 1)
        .bind(
            filter
                .only
                .as_ref()
                .map(|ids| ids.iter().map(|i| i.0).collect::<Vec<_>>()),
        )
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Location::from).collect())
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Applies a JSON merge patch of the writable fields, checking `if_match` against the current
/// version, and writes a `location.updated` event. A patch that changes nothing bumps nothing;
/// the flag says whether anything changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: LocationId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Location, bool), DomainError> {
    let sql = format!(
        "select {COLUMNS} from location where tenant_id = $1 and location_id = $2 for update"
    );
    let current: Location = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Location::from)
        .ok_or(DomainError::NotFound("location"))?;
    check_version(if_match, current.version)?;
    let input: LocationInput = patched(&current.to_input(), patch)?;
    let f = input.parse()?;
    if f == current.to_input().parse()? {
        return Ok((current, false));
    }
    let sql = format!(
        "update location set code=$3, name=$4, address_line1=$5, address_line2=$6, city=$7, state=$8, \
         postal_code=$9, phone=$10, npi=$11, pos_type=$12, active=$13, tax_rate=$14, version = version + 1, updated_at = now() \
         where tenant_id = $1 and location_id = $2 returning {COLUMNS}"
    );
    let location = write_row(conn, sql, tenant, id, &f).await?;
    outbox::record(
        conn,
        tenant,
        location.id.as_uuid(),
        "location.updated",
        &location,
    )
    .await?;
    Ok((location, true))
}

/// Deletes a location (checking `if_match`) and writes a `location.deleted` event.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: LocationId,
    if_match: Option<i64>,
) -> Result<(), DomainError> {
    let row: Option<(i64,)> =
        sqlx::query_as("delete from location where tenant_id = $1 and location_id = $2 and ($3::bigint is null or version = $3) returning version")
            .bind(tenant)
            .bind(id)
            .bind(if_match)
            .fetch_optional(&mut *conn)
            .await?;
    if row.is_none() {
        let current: Option<(i64,)> = sqlx::query_as(
            "select version from location where tenant_id = $1 and location_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        return Err(match current {
            Some((v,)) => DomainError::VersionMismatch { current: v },
            None => DomainError::NotFound("location"),
        });
    }
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        "location.deleted",
        &serde_json::json!({ "id": id }),
    )
    .await?;
    Ok(())
}
