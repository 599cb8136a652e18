//! The caller of a tenant route. `Authorization: Bearer` carries either an access token (a JWT this
//! platform signed) or an API key (`ak_<tenant>.<secret>`). Both name their tenant: a credential
//! of another tenant gets 404, exactly as a row that does not exist, so nothing leaks about what B
//! holds. The credential's standing (user active, key not revoked) and permissions are checked by
//! the tenant actor.

use crate::auth::sessions::Session;
use crate::error::{ApiError, ErrorCode};
use crate::extract::tenant_slug;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use aries_actors::auth::{Call, Credential, RequestMeta};
use aries_tenants::TenantSlug;
use aries_tenants::auth::{api_keys, secrets};
use futures::future::LocalBoxFuture;

/// A tenant route's tenant and caller.
pub struct TenantCaller {
    /// The tenant named by the URL.
    pub slug: TenantSlug,
    /// The caller's credential, for the tenant actor to resolve.
    pub credential: Credential,
    /// Request id and client address, for the audit trail.
    pub meta: RequestMeta,
}

impl TenantCaller {
    /// The call to hand to the tenant's actor.
    pub fn call(&self) -> Call {
        Call {
            credential: Some(self.credential.clone()),
            meta: self.meta.clone(),
        }
    }
}

/// The request id (set by the request middleware) and the peer's address. The peer is the TCP
/// peer: behind a proxy it is the proxy (trusted `X-Forwarded-For` handling is not configured).
pub fn request_meta(req: &HttpRequest) -> RequestMeta {
    RequestMeta {
        request_id: crate::error::REQUEST_ID.try_with(Clone::clone).ok(),
        source_ip: req.peer_addr().map(|a| a.ip().to_string()),
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "a valid bearer token or API key for this tenant is required",
    )
}

fn foreign() -> ApiError {
    ApiError::not_found("resource")
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

impl FromRequest for TenantCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let raw_slug = req.match_info().get("tenant").map(str::to_owned);
        let token = bearer(req);
        let meta = request_meta(req);
        let cookie = crate::auth::operator::session_cookie(req);
        let request = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(unauthenticated)?;
            let caller = authenticate(&state, raw_slug, token, cookie, meta).await?;
            if !state.limiter.enabled() {
                // No plan needed: an unknown tenant is reported by its actor's activation.
                return Ok(caller);
            }
            // Rate limits count authenticated calls only: a flood of bad credentials cannot use up
            // a tenant's budget.
            let (tenant_id, plan) = state.plan_of(&caller.slug).await.map_err(|e| match e {
                aries_shards::CatalogError::TenantNotFound(_) => foreign(),
                other => ApiError::from(other),
            })?;
            let key = match &caller.credential {
                Credential::ApiKey(hash) => hex::encode(&hash[..8]),
                Credential::User(id) => format!("u:{id}"),
                Credential::Client(id) => format!("c:{id}"),
                Credential::Operator => "operator".to_owned(),
            };
            if let Some(info) = state
                .limiter
                .check(&tenant_id.to_string(), plan, &key)
                .await?
            {
                request.extensions_mut().insert(info);
            }
            Ok(caller)
        })
    }
}

/// The live session behind `cookie`, if it is a user session of tenant `slug` (another tenant's
/// session is foreign: 404).
pub async fn user_session(
    state: &AppState,
    slug: &TenantSlug,
    cookie: &str,
) -> Result<Session, ApiError> {
    let session = state
        .sessions
        .get(cookie)
        .await?
        .filter(|s| s.kind == "user")
        .ok_or_else(unauthenticated)?;
    if session.tenant.as_deref() != Some(slug.as_str()) {
        return Err(foreign());
    }
    Ok(session)
}

/// Resolves a tenant route's caller from its slug and the credential found (bearer token or API
/// key, else the console session cookie). The live socket calls it with a token it may have taken
/// from `Sec-WebSocket-Protocol`.
pub async fn authenticate(
    state: &AppState,
    raw_slug: Option<String>,
    token: Option<String>,
    cookie: Option<String>,
    meta: RequestMeta,
) -> Result<TenantCaller, ApiError> {
    let slug = tenant_slug(raw_slug.as_deref().unwrap_or_default())?;
    let Some(token) = token else {
        // No bearer: a console session of one of this tenant's users, second factor passed.
        let cookie = cookie.ok_or_else(unauthenticated)?;
        let session = user_session(state, &slug, &cookie).await?;
        if !session.mfa {
            return Err(ApiError::new(
                ErrorCode::MfaRequired,
                "enrol and present a TOTP code before using the API",
            ));
        }
        return Ok(TenantCaller {
            slug,
            credential: Credential::User(aries_tenants::ids::UserId(session.subject)),
            meta,
        });
    };
    if token.starts_with(api_keys::PREFIX) {
        return match api_keys::tenant_of(&token) {
            Some(owner) if owner == slug.as_str() => Ok(TenantCaller {
                slug,
                credential: Credential::ApiKey(secrets::sha256(&token)),
                meta,
            }),
            Some(_) => Err(foreign()),
            None => Err(unauthenticated()),
        };
    }
    let claims = state.keys.verify(&token).await.map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        unauthenticated()
    })?;
    if claims.tenant != slug.as_str() {
        return Err(foreign());
    }
    let credential = match claims.sub_type.as_str() {
        "user" => Credential::User(claims.sub.parse().map_err(|_| unauthenticated())?),
        "client" => Credential::Client(claims.sub),
        _ => return Err(unauthenticated()),
    };
    Ok(TenantCaller {
        slug,
        credential,
        meta,
    })
}
