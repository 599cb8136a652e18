//! The OAuth 2.0 token endpoint (RFC 6749 §3.2, §4.3, §4.4, §6), token revocation (RFC 7009) and
//! the JWKS document. Errors here follow RFC 6749 §5.2 (`{"error": …, "error_description": …}`),
//! not problem+json, because OAuth client libraries parse that shape.

use crate::auth::keys::Claims;
use crate::extract::{BodyLimit, tenant_slug};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::TenantError;
use aries_actors::ops::security::{
    ClientCredentialsGrant, GrantResult, GrantSubject, PasswordGrant, RefreshGrant, Refused,
    RevokeRefreshToken,
};
use aries_tenants::TenantSlug;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// The token request's form fields (RFC 6749 §4.3.2, §4.4.2, §6).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// `password`, `client_credentials` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The user's e-mail (password grant).
    pub username: Option<String>,
    /// The user's password (password grant).
    pub password: Option<String>,
    /// The refresh token (refresh_token grant).
    pub refresh_token: Option<String>,
    /// Requested scopes; access is decided by roles, so the granted scope is `api`.
    pub scope: Option<String>,
    /// Client id in the body (instead of HTTP Basic).
    pub client_id: Option<String>,
    /// Client secret in the body (instead of HTTP Basic).
    pub client_secret: Option<String>,
}

/// The body of an RFC 6749 §5.2 error (documentation only: `oauth_error` writes it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct OAuthError {
    /// The RFC 6749 error code: `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `rate_limited`, `temporarily_unavailable`.
    error: String,
    /// What went wrong, in words.
    error_description: String,
}

/// An RFC 6749 §5.2 error response.
fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let mut res =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default());
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if error == "invalid_client" {
        res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"aries\""));
    }
    res.json(serde_json::json!({ "error": error, "error_description": description }))
}

/// Maps a failure to reach the tenant into the OAuth shape (the tenant's state is not the client's fault).
fn tenant_failure(e: TenantError) -> HttpResponse {
    match e {
        TenantError::TenantNotFound => oauth_error(400, "invalid_request", "unknown tenant"),
        TenantError::NotServing(_) => {
            oauth_error(400, "unauthorized_client", "the tenant is not active")
        }
        other => {
            tracing::warn!(error = %other, "token endpoint could not reach the tenant");
            let mut res = oauth_error(503, "temporarily_unavailable", "retry shortly");
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            res
        }
    }
}

/// Client credentials from HTTP Basic (`client_id:client_secret`, each form-url-encoded per RFC
/// 6749 §2.3.1) or from the form.
fn client_credentials(req: &HttpRequest, form: &TokenForm) -> Option<(String, String)> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let decode = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    basic.or_else(|| Some((form.client_id.clone()?, form.client_secret.clone()?)))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn issue(
    state: &AppState,
    slug: &TenantSlug,
    tenant_id: String,
    outcome: GrantResult,
) -> HttpResponse {
    let granted = match outcome {
        Ok(g) => g,
        Err(Refused::InvalidGrant) => {
            return oauth_error(
                400,
                "invalid_grant",
                "the grant is invalid, expired or revoked",
            );
        }
        Err(Refused::InvalidClient) => {
            return oauth_error(401, "invalid_client", "client authentication failed");
        }
    };
    let (sub, sub_type) = match granted.subject {
        GrantSubject::User(id) => (id.to_string(), "user"),
        GrantSubject::Client(id) => (id, "client"),
    };
    let now = now_secs();
    let ttl = state.keys.ttl().as_secs();
    let claims = Claims {
        iss: state.keys.issuer().to_owned(),
        sub,
        sub_type: sub_type.to_owned(),
        aud: crate::auth::keys::AUDIENCE.to_owned(),
        exp: now + ttl,
        iat: now,
        jti: uuid::Uuid::now_v7().to_string(),
        tid: tenant_id,
        tenant: slug.to_string(),
        roles: granted.roles,
        scope: "api".into(),
    };
    let token = match state.keys.sign(&claims) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "could not sign an access token");
            return oauth_error(500, "server_error", "could not issue a token");
        }
    };
    let mut body = serde_json::json!({
        "access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "api"
    });
    if let Some(rt) = granted.refresh_token {
        body["refresh_token"] = serde_json::Value::String(rt);
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The form, or the `error_description` of an `invalid_request`.
fn parse_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, &'static str> {
    if !is_form(req) {
        return Err("send the request as application/x-www-form-urlencoded");
    }
    let limit = req.app_data::<BodyLimit>().map_or(64 * 1024, |l| l.0);
    if body.len() > limit {
        return Err("the request is too large");
    }
    // PostgreSQL text cannot hold U+0000: a username or token with one failed in the database.
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| "malformed form")?;
    if form
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err("a form field contains the NUL character (U+0000)");
    }
    serde_urlencoded::from_bytes(body).map_err(|_| "malformed form")
}

/// Exchange a grant for an access token.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/oauth/token", tag = "oauth",
    params(("tenant" = String, Path, description = "tenant slug")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "`{access_token, token_type, expires_in, refresh_token?, scope}`"),
              (status = 400, description = "RFC 6749 §5.2 error", body = OAuthError),
              (status = 401, description = "invalid_client", body = OAuthError),
              (status = 429, description = "rate_limited: too many password attempts (Retry-After)", body = OAuthError),
              (status = 503, description = "temporarily_unavailable (Retry-After)", body = OAuthError)))]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(slug) = tenant_slug(&path) else {
        return oauth_error(400, "invalid_request", "unknown tenant");
    };
    let form: TokenForm = match parse_form(&req, &body) {
        Ok(f) => f,
        Err(why) => return oauth_error(400, "invalid_request", why),
    };
    let tenant_id = match state.directory.catalog().tenant_by_slug(&slug).await {
        Ok(t) => t.id.to_string(),
        Err(e) => return tenant_failure(e.into()),
    };
    let dir = &state.directory;
    let call = || aries_actors::auth::Call {
        credential: None,
        meta: crate::auth::caller::request_meta(&req),
    };
    let outcome = match form.grant_type.as_deref() {
        Some("password") => {
            let ip = crate::auth::caller::request_meta(&req)
                .source_ip
                .unwrap_or_default();
            if let Err(limited) = state
                .limiter
                .check_login(&format!("tenant:{slug}"), &ip)
                .await
            {
                let mut res = oauth_error(
                    limited.code.status().as_u16(),
                    "rate_limited",
                    "too many login attempts; retry later",
                );
                if let Some(after) = limited.retry_after
                    && let Ok(v) =
                        header::HeaderValue::from_str(&after.as_secs().max(1).to_string())
                {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return res;
            }
            let (Some(username), Some(password)) = (form.username.clone(), form.password.clone())
            else {
                return oauth_error(400, "invalid_request", "username and password are required");
            };
            dir.exec_as(
                &slug,
                call(),
                PasswordGrant {
                    email: username,
                    password,
                    refresh_lifetime: state.refresh_ttl,
                },
            )
            .await
        }
        Some("refresh_token") => {
            let Some(token) = form.refresh_token.clone() else {
                return oauth_error(400, "invalid_request", "refresh_token is required");
            };
            dir.exec_as(
                &slug,
                call(),
                RefreshGrant {
                    token,
                    refresh_lifetime: state.refresh_ttl,
                },
            )
            .await
        }
        Some("client_credentials") => {
            let Some((client_id, client_secret)) = client_credentials(&req, &form) else {
                return oauth_error(401, "invalid_client", "client authentication is required");
            };
            dir.exec_as(
                &slug,
                call(),
                ClientCredentialsGrant {
                    client_id,
                    client_secret,
                },
            )
            .await
        }
        Some(_) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "use password, client_credentials or refresh_token",
            );
        }
        None => return oauth_error(400, "invalid_request", "grant_type is required"),
    };
    match outcome {
        Ok(result) => issue(&state, &slug, tenant_id, result).await,
        Err(e) => tenant_failure(e),
    }
}

/// The revocation request's form (RFC 7009 §2.1).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RevokeForm {
    /// The refresh token to revoke (required; an unknown one is still answered 200).
    pub token: Option<String>,
}

/// Revoke a refresh token and its family (RFC 7009): always 200, even for an unknown token.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/oauth/revoke", tag = "oauth",
    params(("tenant" = String, Path, description = "tenant slug")),
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded", description = "`token=<refresh token>`"),
    responses((status = 200, description = "revoked (or unknown)"),
              (status = 400, description = "invalid_request: no token, not a form, or an unknown tenant", body = OAuthError),
              (status = 503, description = "temporarily_unavailable (Retry-After)", body = OAuthError)))]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Ok(slug) = tenant_slug(&path) else {
        return oauth_error(400, "invalid_request", "unknown tenant");
    };
    let form: Option<RevokeForm> = parse_form(&req, &body).ok();
    let Some(token) = form.and_then(|f| f.token) else {
        return oauth_error(400, "invalid_request", "token is required");
    };
    match state
        .directory
        .exec(&slug, RevokeRefreshToken { token })
        .await
    {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => tenant_failure(e),
    }
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth", responses((status = 200, description = "JWK set")))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(state.keys.jwks())
}
