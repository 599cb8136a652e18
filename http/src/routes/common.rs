//! What every resource's handlers share: the create convention (Idempotency-Key, 201, Location,
//! ETag), the ETag header, merge-patch bodies, and boolean query filters; and the shapes most
//! handlers reduce to once their path and query are parsed: run an operation as the caller, then
//! answer a page of rows, or one versioned resource with its ETag (`show`), or the same after a
//! conditional merge patch (`update`).
//!
//! The tenant GETs of operational resources go through the cached variants ([`cached_show`],
//! [`cached_list_page`], [`cached_ok`]): the tenant actor first checks the tenant serves and the
//! caller holds the operation's permission (without a database transaction when the credential is
//! fresh in its cache), then the response cache answers, or runs the operation and keeps its
//! answer. The key is the tenant id, the request path and its query string with the parameters
//! sorted, and the caller's location scope (a principal limited to some locations sees other
//! answers). A cached answer is the same 200, body and ETag; `X-Cache` says `hit`, `miss` or
//! `bypass`. Security resources, token endpoints and reports are never cached.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{IDEMPOTENT_REPLAYED, idempotency_key, if_match, query_error};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use aries_actors::cache::Entry;
use aries_actors::ops::{Idempotent, TenantOp};
use aries_tenants::page::Page;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// `res` with the JSON `value` and `ETag: "<version>"`.
pub fn respond_versioned(
    mut res: HttpResponseBuilder,
    value: &impl Serialize,
    version: i64,
) -> HttpResponse {
    with_etag(res.json(value), version)
}

/// 200 with the JSON `value` and `ETag: "<version>"`.
pub fn ok_with_etag(value: &impl Serialize, version: i64) -> HttpResponse {
    respond_versioned(HttpResponse::Ok(), value, version)
}

/// Runs a tenant operation as the caller.
pub async fn exec<O: TenantOp>(
    caller: &TenantCaller,
    state: &AppState,
    op: O,
) -> Result<O::Output, ApiError> {
    Ok(state
        .directory
        .exec_as(&caller.slug, caller.call(), op)
        .await?)
}

/// Reads one versioned resource: runs `op` and answers 200 with it and its ETag (`version`).
pub async fn show<O>(
    caller: &TenantCaller,
    state: &AppState,
    op: O,
    version: impl Fn(&O::Output) -> i64,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize,
{
    let value = exec(caller, state, op).await?;
    Ok(ok_with_etag(&value, version(&value)))
}

/// `X-Cache: hit | miss | bypass` on cached routes.
pub const X_CACHE: &str = "x-cache";

/// The cache key of a request: SHA-256 (hex) of its path, its query parameters sorted, and the
/// caller's location scope.
pub fn request_key(req: &HttpRequest, scope: Option<&[aries_tenants::LocationId]>) -> String {
    use sha2::{Digest, Sha256};
    let mut params: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    params.sort();
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    let mut digest = Sha256::new();
    digest.update(req.path().as_bytes());
    digest.update(b"?");
    digest.update(query.as_bytes());
    digest.update(b"\n");
    match scope {
        None => digest.update(b"*"),
        Some(ids) => {
            let mut ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            ids.sort();
            digest.update(ids.join(",").as_bytes());
        }
    }
    hex::encode(digest.finalize())
}

/// Runs a read-only operation through the response cache: authorizes the caller for `O::ACCESS`,
/// then answers from the cache or runs `op` and keeps what `render` makes of its output.
pub async fn cached<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    op: O,
    render: impl FnOnce(O::Output) -> Result<Entry, ApiError>,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
{
    let (entry, outcome) = if state.cache.enabled() {
        let allowed = state
            .directory
            .authorize(&caller.slug, caller.call(), O::ACCESS)
            .await?;
        let key = request_key(req, allowed.location_scope.as_deref());
        state
            .cache
            .get_or_load(allowed.tenant, &key, || async {
                render(exec(caller, state, op).await?)
            })
            .await?
    } else {
        let entry = render(exec(caller, state, op).await?)?;
        (
            std::sync::Arc::new(entry),
            aries_actors::cache::Outcome::Bypass,
        )
    };
    let mut res = HttpResponse::Ok();
    res.content_type("application/json")
        .insert_header((X_CACHE, outcome.as_str()));
    if let Some(etag) = &entry.etag {
        res.insert_header((header::ETAG, etag.as_str()));
    }
    Ok(res.body(entry.body.clone()))
}

/// The cache entry of a JSON answer with an optional version (its ETag).
pub fn entry_of(value: &impl Serialize, version: Option<i64>) -> Result<Entry, ApiError> {
    Ok(Entry {
        etag: version.map(|v| format!("\"{v}\"")),
        body: serde_json::to_vec(value).map_err(|e| ApiError::internal(&e))?,
    })
}

/// [`show`] through the response cache.
pub async fn cached_show<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    op: O,
    version: impl Fn(&O::Output) -> i64,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize,
{
    cached(caller, req, state, op, |v| entry_of(&v, Some(version(&v)))).await
}

/// [`list_page`] through the response cache.
pub async fn cached_list_page<O, T>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    op: O,
    limit: u32,
    id_of: impl Fn(&T) -> Uuid,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp<Output = Vec<T>>,
    T: Serialize,
{
    cached(caller, req, state, op, |rows| {
        entry_of(&Page::from_rows(rows, limit, id_of), None)
    })
    .await
}

/// A 200 with the operation's output as JSON (no ETag), through the response cache.
pub async fn cached_ok<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    op: O,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize,
{
    cached(caller, req, state, op, |v| entry_of(&v, None)).await
}

/// What a JSON merge patch is checked for before anything runs, in this order: a well-formed
/// `If-Match` (returned), then a body that is an object.
pub fn merge_patch_preconditions(
    req: &HttpRequest,
    patch: &serde_json::Value,
) -> Result<Option<i64>, ApiError> {
    let if_match = if_match(req)?;
    require_object(patch)?;
    Ok(if_match)
}

/// A JSON merge patch of one versioned resource: checks [`merge_patch_preconditions`], runs the
/// operation `op` builds from the patch and the `If-Match` version, and answers 200 with the
/// result and its ETag (`version`).
pub async fn update<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    patch: serde_json::Value,
    op: impl FnOnce(serde_json::Value, Option<i64>) -> O,
    version: impl Fn(&O::Output) -> i64,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize,
{
    let if_match = merge_patch_preconditions(req, &patch)?;
    show(caller, state, op(patch, if_match), version).await
}

/// Runs a list operation and answers 200 with the page (`{data, next_cursor?}`) of at most `limit`
/// rows; `id_of` gives the cursor of the last one.
pub async fn list_page<O, T>(
    caller: &TenantCaller,
    state: &AppState,
    op: O,
    limit: u32,
    id_of: impl Fn(&T) -> Uuid,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp<Output = Vec<T>>,
    T: Serialize,
{
    let rows = exec(caller, state, op).await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, limit, id_of)))
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
            let keyed = Idempotent {
                key,
                request_sha256,
                op,
            };
            let out = exec(caller, state, keyed).await?;
            (out.value, out.replayed)
        }
        None => (exec(caller, state, op).await?, false),
    })
}

/// Marks a replayed answer (`Idempotent-Replayed: true`).
pub fn mark_replayed(res: &mut actix_web::HttpResponseBuilder, replayed: bool) {
    if replayed {
        res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
}

/// Runs `op` under the request's `Idempotency-Key` when it has one, and answers 200 with its
/// output (`Idempotent-Replayed: true` when it is the stored answer to an earlier request).
pub async fn keyed_ok<O>(
    caller: &TenantCaller,
    req: &HttpRequest,
    state: &AppState,
    request_sha256: [u8; 32],
    op: O,
) -> Result<HttpResponse, ApiError>
where
    O: TenantOp,
    O::Output: Serialize + DeserializeOwned,
{
    let (value, replayed) = run_keyed(caller, req, state, request_sha256, op).await?;
    let mut res = HttpResponse::Ok();
    mark_replayed(&mut res, replayed);
    Ok(res.json(&value))
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
    Ok(respond_versioned(res, &value, version(&value)))
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
