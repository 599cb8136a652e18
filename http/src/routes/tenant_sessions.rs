//! Console sessions for a tenant's users (tenant admins and staff): login with password and TOTP,
//! enrolment, recovery codes, list, revoke and logout. A session acts with the user's roles, on this
//! tenant's URLs only, and only after the second factor.

use crate::auth::caller::{request_meta, user_session};
use crate::auth::operator::session_cookie;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, tenant_slug};
use crate::routes::operators::{LoginInput, TotpConfirm, TotpEnrolment};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::auth::Call;
use aries_actors::ops::security::{ConfirmUserTotp, EnrolUserTotp, SessionLogin};
use aries_tenants::ids::UserId;
use aries_tenants::validation::ValidationErrors;

/// The session of this tenant's URL, second factor or not (enrolment, list, logout).
async fn current(
    req: &HttpRequest,
    state: &AppState,
    raw: &str,
) -> Result<
    (
        aries_tenants::TenantSlug,
        crate::auth::sessions::Session,
        String,
    ),
    ApiError,
> {
    let slug = tenant_slug(raw)?;
    let value = session_cookie(req).ok_or_else(|| {
        ApiError::new(ErrorCode::Unauthenticated, "a console session is required")
    })?;
    let session = user_session(state, &slug, &value).await?;
    Ok((slug, session, value))
}

/// Log in to the tenant's console: sets the session cookie.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sessions", tag = "security", request_body = LoginInput,
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, description = "the session; Set-Cookie: aries_session"), (status = 401, description = "unauthenticated")))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<LoginInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = tenant_slug(&path)?;
    let input = body.value;
    let meta = request_meta(&req);
    state
        .limiter
        .check_login(
            &format!("tenant:{slug}"),
            meta.source_ip.as_deref().unwrap_or_default(),
        )
        .await?;
    let op = SessionLogin {
        email: input.email,
        password: input.password,
        totp_code: input.totp_code,
        recovery_code: input.recovery_code,
    };
    let granted = state
        .directory
        .exec_as(
            &slug,
            Call {
                credential: None,
                meta: meta.clone(),
            },
            op,
        )
        .await?
        .map_err(|_| ApiError::new(ErrorCode::Unauthenticated, "wrong e-mail, password or code"))?;
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (value, session) = state
        .sessions
        .create(
            "user",
            Some(slug.to_string()),
            granted.user.as_uuid(),
            granted.mfa,
            meta.source_ip,
            agent,
        )
        .await?;
    Ok(HttpResponse::Created()
        .cookie(crate::auth::sessions::cookie(
            &value,
            12 * 3600,
            state.cookie_secure,
        ))
        .json(session))
}

/// Start TOTP enrolment for the session's user.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/mfa/totp", tag = "security", security(("session" = [])), 
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 200, body = TotpEnrolment)))]
pub async fn enrol(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (slug, session, _) = current(&req, &state, &path).await?;
    let call = Call {
        credential: None,
        meta: request_meta(&req),
    };
    let user = UserId(session.subject);
    if !session.mfa {
        // Re-enrolling an account that has TOTP needs a session that passed it.
        let login = state
            .directory
            .exec_as(
                &slug,
                call.clone(),
                aries_actors::ops::security::GetUserTotpState { user },
            )
            .await?;
        if login {
            return Err(ApiError::new(
                ErrorCode::MfaRequired,
                "log in with your current code to re-enrol",
            ));
        }
    }
    let (secret, otpauth_uri) = state
        .directory
        .exec_as(&slug, call, EnrolUserTotp { user })
        .await?;
    Ok(HttpResponse::Ok().json(TotpEnrolment {
        otpauth_uri,
        secret,
    }))
}

/// Confirm TOTP with a current code: the session passes the second factor, and ten single-use
/// recovery codes are returned (this once).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/mfa/totp/confirm", tag = "security", request_body = TotpConfirm, security(("session" = [])), 
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, description = "`{recovery_codes}`"), (status = 422, description = "validation_failed")))]
pub async fn confirm(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<TotpConfirm>,
) -> Result<HttpResponse, ApiError> {
    let (slug, session, value) = current(&req, &state, &path).await?;
    let call = Call {
        credential: None,
        meta: request_meta(&req),
    };
    let op = ConfirmUserTotp {
        user: UserId(session.subject),
        code: body.value.code,
    };
    let Some(codes) = state.directory.exec_as(&slug, call, op).await? else {
        let mut errs = ValidationErrors::default();
        errs.push(
            "code",
            "invalid_code",
            "not the current code of this enrolment",
        );
        return Err(ApiError::validation(errs));
    };
    state.sessions.upgrade_mfa(&value, &session).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recovery_codes": codes })))
}

/// The session user's own sessions.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/sessions", tag = "security", security(("session" = [])), 
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 200, description = "`{data: [Session]}`")))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, session, _) = current(&req, &state, &path).await?;
    let data = state.sessions.list("user", session.subject).await?;
    let data: Vec<serde_json::Value> = data
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["current"] = serde_json::Value::Bool(s.id == session.id);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

/// End one of the session user's sessions (everywhere at once).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/sessions/{session_id}", tag = "security", security(("session" = [])), 
    params(("tenant" = String, Path, description = "tenant slug"), ("session_id" = String, Path)),
    responses((status = 204), (status = 404, description = "not_found")))]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw, id) = path.into_inner();
    let (_, session, _) = current(&req, &state, &raw).await?;
    if state.sessions.revoke("user", session.subject, &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("session"))
    }
}

/// End this session and clear the cookie.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/sessions/logout", tag = "security", security(("session" = [])), 
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 204)))]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, session, _) = current(&req, &state, &path).await?;
    state
        .sessions
        .revoke("user", session.subject, &session.id)
        .await?;
    Ok(HttpResponse::NoContent()
        .cookie(crate::auth::sessions::cookie("", 0, state.cookie_secure))
        .finish())
}
