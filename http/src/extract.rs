//! Extractors: handlers receive parsed, validated inputs and never touch raw headers or bodies.

use crate::error::{ApiError, ErrorCode};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use aries_tenants::idempotency::IdempotencyKey;
use aries_tenants::page::{MAX_LIMIT, PageRequest, decode_cursor};
use aries_tenants::validation::from_json_slice;
use aries_tenants::{FieldError, TenantSlug};
use futures::StreamExt as _;
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// A JSON body: content type checked (415), size bounded (413), parsed with field paths in its
/// errors (422), unknown fields rejected by the target type.
pub struct JsonBody<T> {
    /// The body, deserialized into the handler's type.
    pub value: T,
    /// SHA-256 of method, path and the raw body: what an idempotency key is bound to.
    pub request_sha256: [u8; 32],
}

/// The body size limit, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<BodyLimit>()
            .copied()
            .unwrap_or(BodyLimit(256 * 1024))
            .0;
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        let mut digest = Sha256::new();
        digest.update(req.method().as_str().as_bytes());
        digest.update(b" ");
        digest.update(req.path().as_bytes());
        digest.update(b"\n");
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send the body with Content-Type: application/json",
                ));
            }
            let too_large = || {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body exceeds {limit} bytes"),
                )
            };
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::new(ErrorCode::BadRequest, format!("reading the body: {e}"))
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let value = from_json_slice::<T>(&body).map_err(ApiError::validation)?;
            digest.update(&body);
            Ok(JsonBody {
                value,
                request_sha256: digest.finalize().into(),
            })
        })
    }
}

/// The body of an action (`POST …/approve`, `…/deliver`): JSON like [`JsonBody`], or no body at
/// all, which stands for `{}` (the action's defaults).
pub struct ActionBody<T>(pub JsonBody<T>);

impl<T: DeserializeOwned + 'static> FromRequest for ActionBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let empty = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
            || (!headers.contains_key(header::CONTENT_LENGTH)
                && !headers.contains_key(header::TRANSFER_ENCODING));
        if empty && !headers.contains_key(header::CONTENT_TYPE) {
            let mut digest = Sha256::new();
            digest.update(req.method().as_str().as_bytes());
            digest.update(b" ");
            digest.update(req.path().as_bytes());
            digest.update(b"\n{}");
            let value = from_json_slice::<T>(b"{}").map_err(ApiError::validation);
            let sha: [u8; 32] = digest.finalize().into();
            return Box::pin(async move {
                Ok(ActionBody(JsonBody {
                    value: value?,
                    request_sha256: sha,
                }))
            });
        }
        let inner = JsonBody::<T>::from_request(req, payload);
        Box::pin(async move { inner.await.map(ActionBody) })
    }
}

/// Set (to `true`) on a response that replays the stored answer to an earlier request.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` header, if sent (API.md: any POST may carry one).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = |errors: Vec<FieldError>| {
        ApiError::with_errors(
            ErrorCode::BadRequest,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            errors,
        )
    };
    let s = v.to_str().map_err(|_| invalid(Vec::new()))?;
    IdempotencyKey::parse(s).map(Some).map_err(|e| invalid(e.0))
}

/// Parses a tenant slug from the path, recording it on the request's span.
pub fn tenant_slug(raw: &str) -> Result<TenantSlug, ApiError> {
    let slug = TenantSlug::parse(raw).map_err(|e| {
        ApiError::with_errors(
            ErrorCode::InvalidId,
            e.to_string(),
            vec![FieldError::new("tenant", "invalid_slug", e.to_string())],
        )
    })?;
    tracing::Span::current().record("tenant", slug.as_str());
    Ok(slug)
}

/// Parses a UUID path segment named `field`.
pub fn path_id<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        let msg = "not a UUID in its hyphenated form (8-4-4-4-12 hex digits)";
        ApiError::with_errors(
            ErrorCode::InvalidId,
            format!("{field}: {msg}"),
            vec![FieldError::new(field, "invalid_uuid", msg)],
        )
    })
}

/// `limit` and `cursor` of a list request.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1 to 500, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let mut page = PageRequest::default();
        if let Some(l) = &self.limit {
            page.limit = l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    query_error(
                        "limit",
                        "out_of_range",
                        &format!("an integer from 1 to {MAX_LIMIT}"),
                    )
                })?;
        }
        if let Some(c) = &self.cursor {
            page.after = Some(
                decode_cursor(c)
                    .map_err(|e| query_error("cursor", "invalid_cursor", &e.to_string()))?,
            );
        }
        Ok(page)
    }
}

pub fn query_error(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::with_errors(
        ErrorCode::InvalidQuery,
        format!("{field}: {message}"),
        vec![FieldError::new(field, code, message)],
    )
}

/// The `If-Match` header as a version: absent → `None`, `*` → `None` (any version), `"7"` → 7.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|s| s.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                "If-Match must be an ETag this API sent, like \"3\"",
            )
        })
}

pub use crate::auth::operator::OperatorAuth;
