//! What every resource's handlers share: the create convention (Idempotency-Key, 201, Location,
//! ETag), the ETag header, merge-patch bodies, and boolean query filters.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{IDEMPOTENT_REPLAYED, idempotency_key, query_error};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use aries_actors::ops::{Idempotent, TenantOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// Runs an operation under the request's `Idempotency-Key` when it carries one (API.md: any
/// `POST` may): the first answer is stored with the write, and a retry gets it again. Returns the
/// output and whether it is such a replay.
pub async fn run_keyed<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    request_sha256: [u8; 32],
    op: O,
) -> Result<(O::Output, bool), ApiError>
where
    O: TenantOp,
    O::Output: Serialize + DeserializeOwned,
{
    Ok(match idempotency_key(req)? {
        Some(key) => {
            let out = state
                .directory
                .exec_as(
                    &caller.slug,
                    caller.call(),
                    Idempotent {
                        key,
                        request_sha256,
                        op,
                    },
                )
                .await?;
            (out.value, out.replayed)
        }
        None => (
            state
                .directory
                .exec_as(&caller.slug, caller.call(), op)
                .await?,
            false,
        ),
    })
}

/// Marks a replayed answer (`Idempotent-Replayed: true`).
pub fn mark_replayed(res: &mut actix_web::HttpResponseBuilder, replayed: bool) {
    if replayed {
        res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
}

/// Runs a create with the API's conventions: an `Idempotency-Key` replays the first response
/// (`Idempotent-Replayed: true`), the answer is 201 with `Location` (from `url`) and `ETag` (from
/// `version`).
pub async fn create<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    request_sha256: [u8; 32],
    op: O,
    url: impl Fn(&O::Output) -> String,
    version: impl Fn(&O::Output) -> i64,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize + DeserializeOwned,
{
    let (value, replayed) = run_keyed(caller, req, state, request_sha256, op).await?;
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, url(&value)));
    mark_replayed(&mut res, replayed);
    let v = version(&value);
    Ok(with_etag(res.json(&value), v))
}

/// A merge patch must be a JSON object (RFC 7396 would replace the whole resource otherwise).
pub fn require_object(patch: &serde_json::Value) -> Result<(), ApiError> {
    if patch.is_object() {
        return Ok(());
    }
    Err(ApiError::with_errors(
        ErrorCode::ValidationFailed,
        "a merge patch is a JSON object",
        vec![aries_tenants::FieldError::new(
            "",
            "invalid_type",
            "expected a JSON object",
        )],
    ))
}

/// A `true`/`false` query parameter.
pub fn bool_param(field: &str, v: Option<&str>) -> Result<Option<bool>, ApiError> {
    match v {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(query_error(field, "invalid_value", "true or false")),
    }
}
