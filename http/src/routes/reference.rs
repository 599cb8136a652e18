//! Global reference data for tenants: `/v1/tenants/{tenant}/reference/hcpcs[/{code}]` and
//! `/v1/tenants/{tenant}/reference/fee-schedule`. Read-only; the data is filled by
//! `aries reference sync` (never on a request's path). The caller is checked by the tenant's actor
//! like on every tenant route (any role may read); the rows come from the catalog through
//! `aries-reference`, so this module writes no SQL.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{PageQuery, query_error};
use crate::routes::common::bool_param;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use aries_actors::ops::reference::ReadReference;
use aries_reference::mapping;
use aries_reference::store::{self, FeeFilter};
use aries_shards::CatalogError;
use aries_tenants::FieldError;
use aries_tenants::dme::codes::Hcpcs;
use serde::Deserialize;

/// The tenant's actor checks the credential (tenant active, key or token valid).
async fn authorize(caller: &TenantCaller, state: &AppState) -> Result<(), ApiError> {
    state
        .directory
        .exec_as(&caller.slug, caller.call(), ReadReference {})
        .await?;
    Ok(())
}

fn catalog(e: sqlx::Error) -> ApiError {
    CatalogError::Database(e).into()
}

fn limit(raw: Option<String>) -> Result<u32, ApiError> {
    Ok(PageQuery {
        limit: raw,
        cursor: None,
    }
    .parse()?
    .limit)
}

fn bad_cursor(e: store::InvalidCursor) -> ApiError {
    query_error("cursor", "invalid_cursor", &e.to_string())
}

/// One HCPCS code.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reference/hcpcs/{code}", tag = "reference", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("code" = String, Path, description = "HCPCS Level II code, e.g. E0601")),
    responses((status = 200, body = aries_reference::store::HcpcsCode), (status = 404, description = "not_found"),
        (status = 422, description = "invalid_id: not a HCPCS Level II code")))]
pub async fn show_hcpcs(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    authorize(&caller, &state).await?;
    let raw = path.into_inner().1;
    let code = Hcpcs::parse(&raw).map_err(|e| {
        ApiError::with_errors(
            ErrorCode::InvalidId,
            format!("code: {e}"),
            vec![FieldError::new("code", "invalid_hcpcs", e)],
        )
    })?;
    let row = store::get_hcpcs(state.directory.catalog().pool(), code.as_str())
        .await
        .map_err(catalog)?
        .ok_or_else(|| ApiError::not_found("HCPCS code"))?;
    Ok(HttpResponse::Ok().json(row))
}

/// Filters of the HCPCS list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HcpcsQuery {
    /// Case-insensitive substring of the code or a description.
    pub q: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List HCPCS codes in code order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reference/hcpcs", tag = "reference", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), HcpcsQuery),
    responses((status = 200, description = "`{data: [HcpcsCode], next_cursor?}`")))]
pub async fn list_hcpcs(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<HcpcsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = limit(q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(store::hcpcs_cursor)
        .transpose()
        .map_err(bad_cursor)?;
    authorize(&caller, &state).await?;
    let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let page = store::list_hcpcs(
        state.directory.catalog().pool(),
        text,
        after.as_deref(),
        limit,
    )
    .await
    .map_err(catalog)?;
    Ok(HttpResponse::Ok().json(page))
}

/// Filters of the fee-schedule list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeeQuery {
    /// HCPCS code.
    pub hcpcs: Option<String>,
    /// Two-letter state.
    pub state: Option<String>,
    /// Pricing modifier (`RR`); empty (`modifier=`) for rows without one.
    pub modifier: Option<String>,
    /// `true` for rural fees, `false` for non-rural.
    pub rural: Option<String>,
    /// Schedule year.
    pub year: Option<String>,
    /// Schedule quarter, 1 to 4.
    pub quarter: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn checked<T>(field: &str, code: &str, r: Result<T, String>) -> Result<T, ApiError> {
    r.map_err(|e| query_error(field, code, &e))
}

/// List fee-schedule amounts, ordered by code, year, quarter, state, rural, modifiers.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reference/fee-schedule", tag = "reference", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), FeeQuery),
    responses((status = 200, description = "`{data: [FeeScheduleEntry], next_cursor?}`"),
        (status = 422, description = "invalid_query")))]
pub async fn list_fees(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<FeeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = limit(q.limit)?;
    let after = q
        .cursor
        .as_deref()
        .map(store::fee_cursor)
        .transpose()
        .map_err(bad_cursor)?;
    let filter = FeeFilter {
        hcpcs: q
            .hcpcs
            .map(|h| checked("hcpcs", "invalid_hcpcs", Hcpcs::parse(&h)).map(String::from))
            .transpose()?,
        state: q
            .state
            .map(|s| checked("state", "invalid_state", mapping::state(&s)))
            .transpose()?,
        modifier: q
            .modifier
            .map(|m| {
                checked(
                    "modifier",
                    "invalid_modifier",
                    mapping::modifier(Some(m.trim()).filter(|m| !m.is_empty())),
                )
            })
            .transpose()?,
        rural: bool_param("rural", q.rural.as_deref())?,
        year: q
            .year
            .map(|y| checked("year", "out_of_range", mapping::year(&y)))
            .transpose()?,
        quarter: q
            .quarter
            .map(|v| checked("quarter", "out_of_range", mapping::quarter(&v)))
            .transpose()?,
    };
    authorize(&caller, &state).await?;
    let page = store::list_fees(
        state.directory.catalog().pool(),
        &filter,
        after.as_ref(),
        limit,
    )
    .await
    .map_err(catalog)?;
    Ok(HttpResponse::Ok().json(page))
}
