//! Live counters: `GET /v1/tenants/{tenant}/counters?date=YYYY-MM-DD` answers the tenant's
//! counters for one UTC day (today by default) as the counters consumer keeps them in Redis.
//! Permission `reports:view`. Redis down → 503 `service_unavailable` with `Retry-After`.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::query_error;
use crate::routes::common;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use aries_actors::ops::counters::AuthorizeCounters;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which day.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CountersQuery {
    /// UTC day, `YYYY-MM-DD`; today when absent.
    pub date: Option<String>,
}

/// One day's counters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayCounters {
    /// The UTC day.
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// `events`, one entry per event type (`order.created`), and the KPIs (`orders_created`,
    /// `orders_approved`, `orders_delivered`, `orders_canceled`, `lines_picked_up`,
    /// `invoices_created`, `payments_posted`, `patients_created`); absent when zero.
    pub counters: BTreeMap<String, i64>,
}

/// The tenant's live counters for one UTC day.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/counters", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), CountersQuery),
    responses((status = 200, body = DayCounters), (status = 422, description = "invalid_query"),
              (status = 503, description = "service_unavailable: Redis does not answer")))]
pub async fn show(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<CountersQuery>,
) -> Result<HttpResponse, ApiError> {
    let date = match query.into_inner().date {
        None => Utc::now().date_naive(),
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| query_error("date", "invalid_date", "a date as YYYY-MM-DD"))?,
    };
    let tenant = common::exec(&caller, &state, AuthorizeCounters {}).await?;
    let counters = state.counters.read(tenant, date).await.map_err(|e| {
        tracing::warn!(error = %e, "live counters unavailable");
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the live counters are unavailable; try again shortly",
        )
        .retry_after(Duration::from_secs(1))
    })?;
    Ok(HttpResponse::Ok().json(DayCounters { date, counters }))
}
