//! Metrics and problem-type descriptions.

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use actix_web::{HttpResponse, web};

/// Prometheus text format. Gauges that are cheaper to read than to keep current (pool use,
/// active actors) are sampled here.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.directory.shards().record_pool_metrics();
    metrics::gauge!("aries_tenant_actors_in_directory").set(state.directory.active_count() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::prometheus().render())
}

/// `/problems/<code>`: what a problem type means (the `type` member of every error points here).
pub async fn problem(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let code = ErrorCode::from_code(&path).ok_or_else(|| ApiError::not_found("problem type"))?;
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>HTTP status {status}. Code <code>{code}</code>.</p><p>{desc}</p></body></html>",
        title = code.title(),
        status = code.status().as_u16(),
        code = code.code(),
        desc = code.description(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}
