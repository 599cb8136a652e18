//! The one request middleware: request id, the request's tracing span, latency metrics, an access
//! log line, security headers, and turning any error response that is not already problem+json
//! (actix's own 404/405/413/400s) into one.

use crate::error::{ApiError, ErrorCode, PROBLEM_JSON, REQUEST_ID};
use crate::ratelimit::RateLimitInfo;
use actix_web::HttpMessage as _;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use std::time::Instant;
use tracing::Instrument;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds), as API.md lists them.
pub fn rate_limit_headers(res: &mut actix_web::HttpResponseBuilder, info: RateLimitInfo) {
    res.insert_header(("ratelimit-limit", info.limit.to_string()))
        .insert_header(("ratelimit-remaining", info.remaining.to_string()))
        .insert_header(("ratelimit-reset", info.reset_secs.to_string()));
}

/// A client-sent request id is kept only if it is a sane token (so logs cannot be forged with
/// newlines or flooded with kilobytes).
fn accept_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// A request whose path or query carries U+0000 (`%00`, the only way a URL can): refused before
/// any handler, because PostgreSQL text cannot hold that character and a lookup with it failed as
/// a 500. A query parameter is 422 `invalid_query` naming it; a path segment 422 `invalid_id`
/// naming the route's parameter there.
fn nul_in_url(req: &ServiceRequest) -> Option<ApiError> {
    use aries_tenants::FieldError;
    let nul = "must not contain the NUL character (U+0000)";
    if let Some(q) = req.uri().query().filter(|q| q.contains("%00")) {
        let field = url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.into_owned())?;
        // `invalid_value`, as the handlers' own checks of query text name it.
        let error = FieldError::new(field.clone(), "invalid_value", nul);
        return Some(ApiError::with_errors(
            ErrorCode::InvalidQuery,
            format!("{field}: {nul}"),
            vec![error],
        ));
    }
    let path = req.path();
    if !path.contains("%00") {
        return None;
    }
    // The route's name for the segment, when the path matched a route (`{role}` → `role`).
    let pattern = req.match_pattern().unwrap_or_default();
    let field = path
        .split('/')
        .zip(pattern.split('/'))
        .find(|(seg, _)| seg.contains("%00"))
        .and_then(|(_, pat)| pat.strip_prefix('{')?.strip_suffix('}').map(str::to_owned))
        .unwrap_or_default();
    let error = FieldError::new(field.clone(), "invalid_characters", nul);
    Some(ApiError::with_errors(
        ErrorCode::InvalidId,
        format!("{field}: {nul}"),
        vec![error],
    ))
}

pub async fn request_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(accept_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "http",
        request_id = %request_id,
        method = %method,
        route = %route,
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let id_for_scope = request_id.clone();
    let mut res = if let Some(refused) = nul_in_url(&req) {
        let problem = REQUEST_ID.sync_scope(request_id.clone(), || refused.error_response());
        req.into_response(problem)
    } else {
        let result = REQUEST_ID
            .scope(
                id_for_scope,
                async move { next.call(req).await }.instrument(span.clone()),
            )
            .await;
        match result {
            Ok(res) => res.map_into_boxed_body(),
            Err(e) => return Err(e),
        }
    };
    // Only responses made from an error (actix's own: payload overflow, path decoding…) are
    // rewritten; a handler that answers an error status with its own body (readiness) is left be.
    if let Some(err) = res.response().error() {
        let is_problem = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
        if !is_problem {
            let code = match res.status().as_u16() {
                404 => ErrorCode::NotFound,
                405 => ErrorCode::MethodNotAllowed,
                413 => ErrorCode::PayloadTooLarge,
                415 => ErrorCode::UnsupportedMediaType,
                503 => ErrorCode::ServiceUnavailable,
                s if s >= 500 => ErrorCode::InternalError,
                _ => ErrorCode::BadRequest,
            };
            let detail = if code == ErrorCode::InternalError {
                tracing::error!(error = %err, "internal error");
                code.title().to_owned()
            } else {
                err.to_string()
            };
            let problem = REQUEST_ID.sync_scope(request_id.clone(), || {
                ApiError::new(code, detail).error_response()
            });
            res = res.into_response(problem);
        }
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    span.record("status", status);
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
    let rate_limit = res.request().extensions().get::<RateLimitInfo>().copied();
    let headers = res.headers_mut();
    if let Some(info) = rate_limit
        && !headers.contains_key("ratelimit-limit")
    {
        for (name, value) in [
            ("ratelimit-limit", info.limit),
            ("ratelimit-remaining", info.remaining),
            ("ratelimit-reset", info.reset_secs),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
