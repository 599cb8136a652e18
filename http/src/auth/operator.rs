//! The operator API's caller: either the configured operator token (break-glass, full rights) or a
//! console session of an operator account that passed its second factor. Each route states the
//! least role it needs.

use crate::auth::sessions::{COOKIE, Session};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use aries_shards::operators::OperatorRole;
use futures::future::LocalBoxFuture;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct OperatorPrincipal {
    /// The account, for a console session (`None` for the configured token).
    pub account: Option<uuid::Uuid>,
    /// What it may do.
    pub role: OperatorRole,
    /// The session, when the call came with one (and its cookie, to upgrade or end it).
    pub session: Option<(Session, String)>,
}

impl OperatorPrincipal {
    /// 403 `forbidden` unless the role is at least `least`.
    pub fn require(&self, least: OperatorRole) -> Result<(), ApiError> {
        if self.role >= least {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("requires the {} role", least.as_str()),
            ))
        }
    }

    /// The audit trail's name for this operator.
    pub fn actor(&self) -> String {
        match self.account {
            Some(id) => format!("operator:{id}"),
            None => "operator".into(),
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "an operator token or console session is required",
    )
}

/// The session cookie's value, if sent.
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

async fn authenticate(
    state: &AppState,
    req_bearer: Option<String>,
    cookie: Option<String>,
    need_mfa: bool,
) -> Result<OperatorPrincipal, ApiError> {
    if let Some(token) = req_bearer {
        let expected = state
            .operator_token_sha256
            .as_ref()
            .ok_or_else(unauthenticated)?;
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        return if bool::from(digest.ct_eq(expected)) {
            Ok(OperatorPrincipal {
                account: None,
                role: OperatorRole::PlatformAdmin,
                session: None,
            })
        } else {
            Err(unauthenticated())
        };
    }
    let cookie = cookie.ok_or_else(unauthenticated)?;
    let session = state
        .sessions
        .get(&cookie)
        .await?
        .filter(|s| s.kind == "operator")
        .ok_or_else(unauthenticated)?;
    let login = state
        .directory
        .catalog()
        .operator(session.subject)
        .await?
        .ok_or_else(unauthenticated)?;
    if !login.account.active {
        return Err(unauthenticated());
    }
    if need_mfa && !session.mfa {
        return Err(ApiError::new(
            ErrorCode::MfaRequired,
            "enrol and present a TOTP code before using the operator API",
        ));
    }
    Ok(OperatorPrincipal {
        account: Some(login.account.id),
        role: login.account.role,
        session: Some((session, cookie)),
    })
}

fn extract(
    req: &HttpRequest,
    need_mfa: bool,
) -> LocalBoxFuture<'static, Result<OperatorPrincipal, ApiError>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.to_owned());
    let cookie = session_cookie(req);
    Box::pin(async move {
        let state = state.ok_or_else(unauthenticated)?;
        authenticate(&state, bearer, cookie, need_mfa).await
    })
}

/// An operator who passed the second factor (or holds the configured token).
pub struct OperatorAuth(pub OperatorPrincipal);

impl FromRequest for OperatorAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req, true);
        Box::pin(async move { fut.await.map(OperatorAuth) })
    }
}

/// Any operator session, second factor or not: only for enrolling the second factor and logging out.
pub struct OperatorSession(pub OperatorPrincipal);

impl FromRequest for OperatorSession {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let fut = extract(req, false);
        Box::pin(async move { fut.await.map(OperatorSession) })
    }
}
