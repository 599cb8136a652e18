//! Operator accounts and their console sessions: login with password and TOTP (RFC 6238), TOTP
//! enrolment through an otpauth URI, single-use recovery codes, listing and revoking sessions,
//! logout.

use crate::auth::operator::{OperatorAuth, OperatorSession};
use crate::auth::sessions::Session;
use crate::error::{ApiError, ErrorCode};
use crate::extract::JsonBody;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_shards::operators::{OperatorAccount, OperatorRole};
use aries_tenants::auth::secrets;
use aries_tenants::auth::totp;
use aries_tenants::auth::users::parse_email;
use aries_tenants::validation::ValidationErrors;
use serde::Deserialize;
use std::time::Duration;

/// Body of a login.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The operator's e-mail.
    pub email: String,
    /// The password.
    pub password: String,
    /// The current TOTP code (required once TOTP is enrolled).
    #[serde(default)]
    pub totp_code: Option<String>,
    /// A single-use recovery code, instead of a TOTP code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

fn bad_login() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "wrong e-mail, password or code")
}

/// Log in: sets the session cookie. Without enrolled TOTP the session may only enrol it.
#[utoipa::path(post, path = "/v1/platform/sessions", tag = "platform", request_body = LoginInput,
    responses((status = 201, body = Session, description = "Set-Cookie: aries_session (HttpOnly, SameSite=Strict)"),
              (status = 401, description = "unauthenticated")))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<LoginInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.value;
    let ip = crate::auth::caller::request_meta(&req)
        .source_ip
        .unwrap_or_default();
    state.limiter.check_login("platform", &ip).await?;
    let catalog = state.directory.catalog();
    let found = catalog.operator_by_email(&input.email).await?;
    let hash = found
        .as_ref()
        .map(|l| l.password_hash.clone())
        .unwrap_or_default();
    let password = input.password.clone();
    let password_ok = tokio::task::spawn_blocking(move || {
        !hash.is_empty() && secrets::verify_password(&password, &hash)
    })
    .await
    .unwrap_or(false);
    let login = match found {
        Some(l) if password_ok && l.account.active => l,
        _ => return Err(bad_login()),
    };
    let account = &login.account;
    let mfa = if account.totp_enabled {
        let second_ok = match (&input.totp_code, &input.recovery_code, &login.totp_secret) {
            (Some(code), _, Some(secret)) => match totp::check(secret, &account.email, code) {
                Some(step) => catalog.accept_operator_totp_step(account.id, step).await?,
                None => false,
            },
            (None, Some(code), _) => {
                catalog
                    .use_operator_recovery_code(account.id, &secrets::sha256(code.trim()))
                    .await?
            }
            _ => false,
        };
        if !second_ok {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "a valid TOTP or recovery code is required",
            ));
        }
        true
    } else {
        false
    };
    let meta = crate::auth::caller::request_meta(&req);
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (cookie, session) = state
        .sessions
        .create("operator", None, account.id, mfa, meta.source_ip, agent)
        .await?;
    let max_age = i64::try_from(Duration::from_secs(12 * 3600).as_secs()).unwrap_or(0);
    Ok(HttpResponse::Created()
        .cookie(crate::auth::sessions::cookie(
            &cookie,
            max_age,
            state.cookie_secure,
        ))
        .json(session))
}

/// The TOTP enrolment a client shows as a QR code.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// `otpauth://totp/…` for an authenticator app.
    pub otpauth_uri: String,
    /// The same secret in base32, to type in by hand.
    pub secret: String,
}

/// Start (or restart) TOTP enrolment for the session's account.
#[utoipa::path(post, path = "/v1/platform/mfa/totp", tag = "platform", security(("bearer" = []), ("session" = [])), 
    responses((status = 200, body = TotpEnrolment), (status = 401, description = "unauthenticated")))]
pub async fn enrol_totp(
    op: OperatorSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = op
        .0
        .account
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "the operator token has no account"))?;
    let catalog = state.directory.catalog();
    let login = catalog.operator(id).await?.ok_or_else(bad_login)?;
    if login.account.totp_enabled && !op.0.session.as_ref().is_some_and(|(s, _)| s.mfa) {
        return Err(ApiError::new(
            ErrorCode::MfaRequired,
            "log in with your current code to re-enrol",
        ));
    }
    let (secret, otpauth_uri) =
        totp::enrol(&login.account.email).map_err(|e| ApiError::internal(&e))?;
    catalog.set_operator_totp_secret(id, &secret).await?;
    Ok(HttpResponse::Ok().json(TotpEnrolment {
        otpauth_uri,
        secret,
    }))
}

/// Body of TOTP confirmation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    /// The code the authenticator app shows now.
    pub code: String,
}

/// Confirm enrolment with a current code: TOTP becomes required, this session counts as having
/// passed it, and ten single-use recovery codes are returned (this once).
#[utoipa::path(post, path = "/v1/platform/mfa/totp/confirm", tag = "platform", request_body = TotpConfirm, security(("bearer" = []), ("session" = [])), 
    responses((status = 200, description = "`{recovery_codes: [...]}`"), (status = 422, description = "validation_failed")))]
pub async fn confirm_totp(
    op: OperatorSession,
    state: web::Data<AppState>,
    body: JsonBody<TotpConfirm>,
) -> Result<HttpResponse, ApiError> {
    let id = op
        .0
        .account
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "the operator token has no account"))?;
    let catalog = state.directory.catalog();
    let login = catalog.operator(id).await?.ok_or_else(bad_login)?;
    let secret = login.totp_secret.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidStatusTransition, "start enrolment first")
    })?;
    let wrong_code = || {
        let mut errs = ValidationErrors::default();
        errs.push(
            "code",
            "invalid_code",
            "not the current code of this enrolment",
        );
        ApiError::validation(errs)
    };
    let step =
        totp::check(&secret, &login.account.email, &body.value.code).ok_or_else(wrong_code)?;
    if !catalog.accept_operator_totp_step(id, step).await? {
        return Err(wrong_code());
    }
    let codes = totp::recovery_codes();
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| secrets::sha256(c)).collect();
    catalog.replace_operator_recovery_codes(id, &hashes).await?;
    if let Some((session, cookie)) = &op.0.session {
        state.sessions.upgrade_mfa(cookie, session).await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recovery_codes": codes })))
}

/// The caller's own sessions (`current` marks this one).
#[utoipa::path(get, path = "/v1/platform/sessions", tag = "platform", security(("bearer" = []), ("session" = [])), 
    responses((status = 200, description = "`{data: [Session + current]}`")))]
pub async fn list_sessions(
    op: OperatorSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = op
        .0
        .account
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "the operator token has no sessions"))?;
    let current = op.0.session.as_ref().map(|(s, _)| s.id.clone());
    let sessions = state.sessions.list("operator", id).await?;
    let data: Vec<serde_json::Value> = sessions
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["current"] = serde_json::Value::Bool(Some(&s.id) == current.as_ref());
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

/// End one of the caller's sessions (on every instance at once).
#[utoipa::path(delete, path = "/v1/platform/sessions/{session_id}", tag = "platform", security(("bearer" = []), ("session" = [])), 
    params(("session_id" = String, Path)), responses((status = 204), (status = 404, description = "not_found")))]
pub async fn revoke_session(
    op: OperatorSession,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = op.0.account.ok_or_else(|| ApiError::not_found("session"))?;
    if state.sessions.revoke("operator", id, &path).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("session"))
    }
}

/// End this session and clear the cookie.
#[utoipa::path(post, path = "/v1/platform/sessions/logout", tag = "platform", security(("bearer" = []), ("session" = [])), responses((status = 204)))]
pub async fn logout(
    op: OperatorSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let (Some(id), Some((session, _))) = (op.0.account, &op.0.session) {
        state.sessions.revoke("operator", id, &session.id).await?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(crate::auth::sessions::cookie("", 0, state.cookie_secure))
        .finish())
}

/// Body of "create an operator account".
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    /// Login name.
    pub email: String,
    /// Shown in the console.
    pub display_name: String,
    /// First password (12+ characters); the operator enrols TOTP at first login.
    pub password: String,
    /// `platform_viewer`, `platform_operator` or `platform_admin`.
    pub role: String,
}

/// Create an operator account (platform_admin only).
#[utoipa::path(post, path = "/v1/platform/operators", tag = "platform", security(("bearer" = [])), request_body = NewOperator,
    responses((status = 201, description = "the account"), (status = 409, description = "operator_email_taken")))]
pub async fn create_operator(
    op: OperatorAuth,
    state: web::Data<AppState>,
    body: JsonBody<NewOperator>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    let account = create_account(state.directory.catalog(), body.value).await?;
    Ok(HttpResponse::Created().json(account))
}

/// Validates and creates an account (the API and the CLI share it).
pub async fn create_account(
    catalog: &aries_shards::Catalog,
    input: NewOperator,
) -> Result<OperatorAccount, ApiError> {
    let mut errs = ValidationErrors::default();
    let email = parse_email(&mut errs, "email", &input.email);
    let name = errs.text("display_name", &input.display_name, 200);
    if let Err(why) = secrets::check_password_rules(&input.password) {
        errs.push("password", "weak_password", why);
    }
    let role = input
        .role
        .parse::<OperatorRole>()
        .map_err(|e| errs.push("role", "invalid_value", e))
        .ok();
    let Some(role) = role.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(errs));
    };
    let password = input.password;
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(catalog.create_operator(&email, &name, &hash, role).await?)
}

/// Every operator account (platform_admin only).
#[utoipa::path(get, path = "/v1/platform/operators", tag = "platform", security(("bearer" = [])),
    responses((status = 200, description = "`{data: [OperatorAccount]}`")))]
pub async fn list_operators(
    op: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    let data = state.directory.catalog().operators().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}
