//! Security operations: the OAuth2 grants (which authenticate by themselves), and the management of
//! users, API keys, OAuth clients and custom roles. A principal may only hand out roles whose
//! permissions it holds itself, so an admin cannot mint an owner key.

use super::{Access, OpContext};
use crate::auth::PrincipalId;
use aries_tenants::DomainError;
use aries_tenants::auth::api_keys::{self, ApiKey};
use aries_tenants::auth::clients::{self, OauthClient};
use aries_tenants::auth::permissions::{Action, Permission, PermissionSet, Resource, RoleName};
use aries_tenants::auth::refresh::{self, Rotation};
use aries_tenants::auth::roles::{self, CustomRole, CustomRoleInput};
use aries_tenants::auth::secrets;
use aries_tenants::auth::users::{self, NewUserInput, User, UserStatus};
use aries_tenants::ids::{ApiKeyId, FamilyId, UserId};
use aries_tenants::page::PageRequest;
use aries_tenants::validation::ValidationErrors;
use serde_json::json;
use sqlx::PgConnection;
use std::sync::OnceLock;

const fn needs(resource: Resource, action: Action) -> Access {
    Access::Requires(Permission::new(resource, action))
}

// ---- grants ----

/// Who a grant authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantSubject {
    User(UserId),
    Client(String),
}

/// A successful grant: the HTTP layer signs the access token from it.
#[derive(Debug, Clone)]
pub struct Granted {
    /// The token's subject.
    pub subject: GrantSubject,
    /// The subject's current roles (the token's `roles` claim).
    pub roles: Vec<String>,
    /// A new refresh token (password and refresh grants).
    pub refresh_token: Option<String>,
}

/// Why a grant was refused (RFC 6749 §5.2 `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong user, password or refresh token; a reused refresh token (its family is now revoked).
    InvalidGrant,
    /// Unknown client or wrong secret.
    InvalidClient,
}

/// A grant's result. Refusals are `Ok` so the transaction commits (a reused refresh token's family
/// revocation must stick).
pub type GrantResult = Result<Granted, Refused>;

/// A PHC hash of a random password, verified against when the user does not exist so that an
/// unknown e-mail costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| secrets::hash_password(&secrets::generate("decoy-")).unwrap_or_default())
}

async fn verify_slowly(password: String, hash: String) -> bool {
    // Argon2 takes tens of milliseconds of CPU: off the actor's thread.
    tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

tenant_op!(
    /// `grant_type=password`.
    PasswordGrant {
        /// The user's login name.
        email: String,
        /// The password, in clear (never logged).
        password: String,
        /// Lifetime of the refresh token issued.
        refresh_lifetime: chrono::Duration,
    } -> GrantResult, "oauth.password", Access::Anonymous,
    |op, conn, ctx| {
        let found = users::find_for_login(conn, ctx.tenant, &op.email).await?;
        let (user, hash) = match found {
            Some((user, Some(hash))) => (Some(user), hash),
            _ => (None, decoy_hash().to_owned()),
        };
        let ok = verify_slowly(op.password, hash).await;
        let Some(user) = user.filter(|u| ok && u.status == UserStatus::Active) else {
            let email = op.email.trim().to_lowercase();
            ctx.audit(
                conn,
                "auth.login_failed",
                "user",
                &email,
                json!({"grant": "password"}),
            )
            .await?;
            return Ok(Err(Refused::InvalidGrant));
        };
        ctx.audit_as(
            conn,
            format!("user:{}", user.id),
            "auth.login",
            "user",
            user.id,
            json!({"grant": "password"}),
        )
        .await?;
        let token = refresh::issue(
            conn,
            ctx.tenant,
            user.id,
            FamilyId::new(),
            op.refresh_lifetime,
        )
        .await?;
        Ok(Ok(Granted {
            subject: GrantSubject::User(user.id),
            roles: user.roles,
            refresh_token: Some(token),
        }))
    }
);

tenant_op!(
    /// `grant_type=refresh_token`.
    RefreshGrant {
        /// The presented refresh token.
        token: String,
        /// Lifetime of the replacement.
        refresh_lifetime: chrono::Duration,
    } -> GrantResult, "oauth.refresh", Access::Anonymous,
    |op, conn, ctx| {
        match refresh::rotate(conn, ctx.tenant, &op.token, op.refresh_lifetime).await? {
            Rotation::Rotated { user, token } => {
                match users::standing(conn, ctx.tenant, user).await? {
                    Some((UserStatus::Active, roles, _)) => Ok(Ok(Granted {
                        subject: GrantSubject::User(user),
                        roles,
                        refresh_token: Some(token),
                    })),
                    _ => Ok(Err(Refused::InvalidGrant)),
                }
            }
            Rotation::Reused => {
                tracing::warn!(tenant = %ctx.tenant, "a rotated refresh token was presented again; its family is revoked");
                ctx.audit(
                    conn,
                    "auth.refresh_reused",
                    "refresh_family",
                    "revoked",
                    json!({}),
                )
                .await?;
                Ok(Err(Refused::InvalidGrant))
            }
            Rotation::Invalid => Ok(Err(Refused::InvalidGrant)),
        }
    }
);

tenant_op!(
    /// `grant_type=client_credentials`.
    ClientCredentialsGrant {
        /// The client's public id.
        client_id: String,
        /// The client's secret (never logged).
        client_secret: String,
    } -> GrantResult, "oauth.client_credentials", Access::Anonymous,
    |op, conn, ctx| {
        match clients::authenticate(conn, ctx.tenant, &op.client_id, &op.client_secret)
            .await?
        {
            Some(c) => Ok(Ok(Granted {
                subject: GrantSubject::Client(c.client_id),
                roles: c.roles,
                refresh_token: None,
            })),
            None => {
                ctx.audit(
                    conn,
                    "auth.client_failed",
                    "oauth_client",
                    &op.client_id,
                    json!({}),
                )
                .await?;
                Ok(Err(Refused::InvalidClient))
            }
        }
    }
);

tenant_op!(
    /// Logout: revokes the refresh token's family (unknown tokens are ignored, per RFC 7009).
    RevokeRefreshToken {
        /// The presented refresh token.
        token: String,
    } -> (), "oauth.revoke", Access::Anonymous,
    |op, conn, ctx| {
        refresh::revoke_family_of(conn, ctx.tenant, &op.token)
            .await
            .map(|_| ())
    }
);

// ---- role checks shared by users, keys and clients ----

/// Fails unless every role exists and the caller holds every permission the roles grant.
async fn check_grantable(
    conn: &mut PgConnection,
    ctx: &OpContext,
    field: &str,
    role_names: &[String],
) -> Result<(), DomainError> {
    let custom = roles::load(conn, ctx.tenant).await?;
    let mut errs = ValidationErrors::default();
    roles::check_known(&mut errs, field, role_names, &custom);
    if !errs.is_empty() {
        return Err(DomainError::Validation(errs));
    }
    let wanted = PermissionSet::of_roles(role_names, &custom);
    if !ctx.principal()?.permissions.covers(&wanted) {
        return Err(DomainError::Forbidden(
            "cannot grant roles with permissions you do not hold".into(),
        ));
    }
    Ok(())
}

fn parse_role_list(field: &str, names: &[String]) -> Result<Vec<String>, DomainError> {
    let mut errs = ValidationErrors::default();
    let roles = users::parse_roles(&mut errs, field, names);
    errs.finish(roles).map_err(DomainError::Validation)
}

// ---- users ----

tenant_op!(
    /// `POST /users`.
    CreateUser {
        /// The new user.
        input: NewUserInput,
    } -> User, "user.create", needs(Resource::Users, Action::Edit),
    |op, conn, ctx| {
        let user = op.input.parse()?;
        check_grantable(conn, ctx, "roles", &user.roles).await?;
        let hash = match user.password.clone() {
            Some(p) => Some(
                tokio::task::spawn_blocking(move || secrets::hash_password(&p))
                    .await
                    .map_err(|e| DomainError::Forbidden(format!("hashing failed: {e}")))?
                    .map_err(DomainError::Forbidden)?,
            ),
            None => None,
        };
        let created = users::create(conn, ctx.tenant, &user, hash.as_deref()).await?;
        let details = json!({"email": created.email, "roles": created.roles, "location_ids": created.location_ids});
        ctx.audit(conn, "user.created", "user", created.id, details)
            .await?;
        Ok(created)
    }
);

tenant_op!(
    /// `GET /users`.
    ListUsers {
        /// Which page.
        page: PageRequest,
    } -> Vec<User>, "user.list", needs(Resource::Users, Action::View),
    |op, conn, ctx| { users::list(conn, ctx.tenant, op.page).await }
);

tenant_op!(
    /// `GET /users/{id}`.
    GetUser {
        /// Which user.
        id: UserId,
    } -> User, "user.get", needs(Resource::Users, Action::View),
    |op, conn, ctx| { users::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `POST /users/{id}/disable` and `/enable`: disabling also revokes the user's refresh tokens; the
    /// user's access tokens stop working within the credential cache's lifetime on every instance.
    SetUserStatus {
        /// Which user.
        id: UserId,
        /// The new status.
        status: UserStatus,
    } -> User, "user.set_status", needs(Resource::Users, Action::Edit),
    |op, conn, ctx| {
        if ctx.principal()?.id == PrincipalId::User(op.id)
            && op.status == UserStatus::Disabled
        {
            return Err(DomainError::Conflict {
                code: "cannot_disable_self",
                detail: "you cannot disable yourself".into(),
            });
        }
        let user = users::set_status(conn, ctx.tenant, op.id, op.status).await?;
        let action = if op.status == UserStatus::Disabled {
            "user.disabled"
        } else {
            "user.enabled"
        };
        ctx.audit(conn, action, "user", op.id, json!({})).await?;
        ctx.credentials.clear();
        Ok(user)
    }
);

tenant_op!(
    /// `POST /users/{id}/password`: an administrator sets a new password (logging the user out).
    ResetPassword {
        /// Which user.
        id: UserId,
        /// The new password, in clear.
        password: String,
    } -> User, "user.reset_password", needs(Resource::Users, Action::Edit),
    |op, conn, ctx| {
        if let Err(why) = secrets::check_password_rules(&op.password) {
            let mut errs = ValidationErrors::default();
            errs.push("password", "weak_password", why);
            return Err(DomainError::Validation(errs));
        }
        let password = op.password;
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| DomainError::Forbidden(format!("hashing failed: {e}")))?
            .map_err(DomainError::Forbidden)?;
        let user = users::set_password(conn, ctx.tenant, op.id, &hash).await?;
        ctx.audit(conn, "user.password_reset", "user", op.id, json!({}))
            .await?;
        ctx.credentials.clear();
        Ok(user)
    }
);

// ---- API keys ----

tenant_op!(
    /// `POST /api-keys`: returns the key and its secret (shown once).
    CreateApiKey {
        /// The tenant's slug, written into the key so it is recognised as this tenant's.
        slug: String,
        /// What the key is for.
        name: String,
        /// Roles it acts with.
        roles: Vec<String>,
    } -> (ApiKey, String), "api_key.create", needs(Resource::ApiKeys, Action::Edit),
    |op, conn, ctx| {
        let mut errs = ValidationErrors::default();
        let name = errs.text("name", &op.name, 200);
        errs.finish(()).map_err(DomainError::Validation)?;
        let role_names = parse_role_list("roles", &op.roles)?;
        check_grantable(conn, ctx, "roles", &role_names).await?;
        let by = ctx.principal()?.id.to_string();
        let (key, secret) =
            api_keys::create(conn, ctx.tenant, &op.slug, &name, &role_names, &by).await?;
        let details = json!({"name": key.name, "prefix": key.prefix, "roles": key.roles});
        ctx.audit(conn, "api_key.created", "api_key", key.id, details)
            .await?;
        Ok((key, secret))
    }
);

tenant_op!(
    /// `GET /api-keys`.
    ListApiKeys {
        /// Which page.
        page: PageRequest,
    } -> Vec<ApiKey>, "api_key.list", needs(Resource::ApiKeys, Action::View),
    |op, conn, ctx| { api_keys::list(conn, ctx.tenant, op.page).await }
);

tenant_op!(
    /// `DELETE /api-keys/{id}`: revokes (the row stays for the record).
    RevokeApiKey {
        /// Which key.
        id: ApiKeyId,
    } -> ApiKey, "api_key.revoke", needs(Resource::ApiKeys, Action::Delete),
    |op, conn, ctx| {
        let key = api_keys::revoke(conn, ctx.tenant, op.id).await?;
        ctx.audit(
            conn,
            "api_key.revoked",
            "api_key",
            key.id,
            json!({"prefix": key.prefix}),
        )
        .await?;
        ctx.credentials.clear();
        Ok(key)
    }
);

// ---- OAuth clients ----

tenant_op!(
    /// `POST /oauth-clients`: returns the client and its secret (shown once).
    CreateClient {
        /// What the integration is.
        name: String,
        /// Roles its tokens carry.
        roles: Vec<String>,
    } -> (OauthClient, String), "oauth_client.create", needs(Resource::OauthClients, Action::Edit),
    |op, conn, ctx| {
        let mut errs = ValidationErrors::default();
        let name = errs.text("name", &op.name, 200);
        errs.finish(()).map_err(DomainError::Validation)?;
        let role_names = parse_role_list("roles", &op.roles)?;
        check_grantable(conn, ctx, "roles", &role_names).await?;
        let (client, secret) = clients::create(conn, ctx.tenant, &name, &role_names).await?;
        let details = json!({"name": client.name, "roles": client.roles});
        ctx.audit(
            conn,
            "oauth_client.created",
            "oauth_client",
            &client.client_id,
            details,
        )
        .await?;
        Ok((client, secret))
    }
);

tenant_op!(
    /// `GET /oauth-clients`.
    ListClients {} -> Vec<OauthClient>, "oauth_client.list", needs(Resource::OauthClients, Action::View),
    |_op, conn, ctx| { clients::list(conn, ctx.tenant).await }
);

tenant_op!(
    /// `DELETE /oauth-clients/{client_id}`.
    RevokeClient {
        /// The client's public id.
        client_id: String,
    } -> OauthClient, "oauth_client.revoke", needs(Resource::OauthClients, Action::Delete),
    |op, conn, ctx| {
        let client = clients::revoke(conn, ctx.tenant, &op.client_id).await?;
        ctx.audit(
            conn,
            "oauth_client.revoked",
            "oauth_client",
            &client.client_id,
            json!({}),
        )
        .await?;
        ctx.credentials.clear();
        Ok(client)
    }
);

// ---- roles ----

/// A role as listed: built-in or custom, with its permissions.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RoleView {
    /// The role's name.
    pub name: String,
    /// Whether it is one of the built-in roles (which cannot change).
    pub builtin: bool,
    /// `resource:action` strings.
    pub permissions: Vec<String>,
}

tenant_op!(
    /// `GET /roles`: built-in roles, then the tenant's.
    ListRoles {} -> Vec<RoleView>, "role.list", needs(Resource::Roles, Action::View),
    |_op, conn, ctx| {
        let mut out: Vec<RoleView> = RoleName::ALL
            .iter()
            .map(|r| RoleView {
                name: r.as_str().to_owned(),
                builtin: true,
                permissions: r.permissions().iter().map(ToString::to_string).collect(),
            })
            .collect();
        out.extend(
            roles::list(conn, ctx.tenant)
                .await?
                .into_iter()
                .map(|r: CustomRole| RoleView {
                    name: r.name,
                    builtin: false,
                    permissions: r.permissions,
                }),
        );
        Ok(out)
    }
);

tenant_op!(
    /// `POST /roles`.
    CreateRole {
        /// The new role.
        input: CustomRoleInput,
    } -> CustomRole, "role.create", needs(Resource::Roles, Action::Edit),
    |op, conn, ctx| {
        let (name, permissions) = op.input.parse()?;
        let role = roles::create(conn, ctx.tenant, &name, &permissions).await?;
        ctx.audit(
            conn,
            "role.created",
            "role",
            &role.name,
            json!({"permissions": role.permissions}),
        )
        .await?;
        ctx.credentials.clear();
        Ok(role)
    }
);

tenant_op!(
    /// `DELETE /roles/{name}`: users and keys holding it simply lose its permissions.
    DeleteRole {
        /// Which role.
        name: String,
    } -> (), "role.delete", needs(Resource::Roles, Action::Delete),
    |op, conn, ctx| {
        roles::delete(conn, ctx.tenant, &op.name).await?;
        ctx.audit(conn, "role.deleted", "role", &op.name, json!({}))
            .await?;
        ctx.credentials.clear();
        Ok(())
    }
);

// ---- audit ----

tenant_op!(
    /// `GET /audit`: the tenant's trail, filtered, in sequence order.
    ListAudit {
        /// What to show.
        filter: aries_tenants::audit::AuditFilter,
        /// Page size.
        limit: u32,
    } -> Vec<aries_tenants::audit::AuditEvent>, "audit.list", needs(Resource::Audit, Action::View),
    |op, conn, ctx| {
        aries_tenants::audit::list(
            conn,
            aries_tenants::audit::Trail::Tenant(ctx.tenant),
            &op.filter,
            op.limit,
        )
        .await
    }
);

tenant_op!(
    /// `GET /audit/verify`: recomputes the tenant's chain.
    VerifyAudit {} -> aries_tenants::audit::Verification, "audit.verify", needs(Resource::Audit, Action::View),
    |_op, conn, ctx| {
        aries_tenants::audit::verify(conn, aries_tenants::audit::Trail::Tenant(ctx.tenant))
            .await
    }
);

// ---- console sessions of tenant users ----

/// A console login that passed: the session's subject and whether the second factor was shown.
#[derive(Debug, Clone, Copy)]
pub struct SessionGranted {
    /// The user.
    pub user: UserId,
    /// True when a TOTP or recovery code was presented; false when the user has no TOTP yet (the
    /// session may then only enrol it).
    pub mfa: bool,
}

tenant_op!(
    /// `POST /sessions`: password, then TOTP (or a recovery code) when the user has enrolled it.
    SessionLogin {
        /// Login name.
        email: String,
        /// Password, in clear.
        password: String,
        /// Current TOTP code.
        totp_code: Option<String>,
        /// A single-use recovery code.
        recovery_code: Option<String>,
    } -> Result<SessionGranted, Refused>, "session.login", Access::Anonymous,
    |op, conn, ctx| {
        let found = users::find_for_login(conn, ctx.tenant, &op.email).await?;
        let (user, hash) = match found {
            Some((user, Some(hash))) => (Some(user), hash),
            _ => (None, decoy_hash().to_owned()),
        };
        let ok = verify_slowly(op.password, hash).await;
        let email = op.email.trim().to_lowercase();
        let Some(user) = user.filter(|u| ok && u.status == UserStatus::Active) else {
            ctx.audit(
                conn,
                "auth.login_failed",
                "user",
                &email,
                json!({"grant": "session"}),
            )
            .await?;
            return Ok(Err(Refused::InvalidGrant));
        };
        let (secret, enabled) = users::totp_state(conn, ctx.tenant, user.id).await?;
        let mfa = if enabled {
            let second = match (&op.totp_code, &op.recovery_code, &secret) {
                (Some(code), _, Some(secret)) => {
                    match aries_tenants::auth::totp::check(secret, &user.email, code) {
                        Some(step) => {
                            users::accept_totp_step(conn, ctx.tenant, user.id, step).await?
                        }
                        None => false,
                    }
                }
                (None, Some(code), _) => {
                    users::use_recovery_code(
                        conn,
                        ctx.tenant,
                        user.id,
                        &secrets::sha256(code.trim()),
                    )
                    .await?
                }
                _ => false,
            };
            if !second {
                ctx.audit(
                    conn,
                    "auth.login_failed",
                    "user",
                    user.id,
                    json!({"grant": "session", "reason": "second factor"}),
                )
                .await?;
                return Ok(Err(Refused::InvalidGrant));
            }
            true
        } else {
            false
        };
        ctx.audit_as(
            conn,
            format!("user:{}", user.id),
            "auth.session_opened",
            "user",
            user.id,
            json!({"mfa": mfa}),
        )
        .await?;
        Ok(Ok(SessionGranted { user: user.id, mfa }))
    }
);

tenant_op!(
    /// `POST /mfa/totp` for the session's user: a new secret and its otpauth URI.
    EnrolUserTotp {
        /// The session's user.
        user: UserId,
    } -> (String, String), "user.totp_enrol", Access::Anonymous,
    |op, conn, ctx| {
        let user = users::get(conn, ctx.tenant, op.user).await?;
        let (secret, uri) =
            aries_tenants::auth::totp::enrol(&user.email).map_err(DomainError::Forbidden)?;
        users::set_totp_secret(conn, ctx.tenant, user.id, &secret).await?;
        ctx.audit_as(
            conn,
            format!("user:{}", user.id),
            "user.totp_enrolment_started",
            "user",
            user.id,
            json!({}),
        )
        .await?;
        Ok((secret, uri))
    }
);

tenant_op!(
    /// `POST /mfa/totp/confirm`: the recovery codes when the code is current (and unused), else `None`.
    ConfirmUserTotp {
        /// The session's user.
        user: UserId,
        /// The code shown by the authenticator app.
        code: String,
    } -> Option<Vec<String>>, "user.totp_confirm", Access::Anonymous,
    |op, conn, ctx| {
        let user = users::get(conn, ctx.tenant, op.user).await?;
        let (secret, _) = users::totp_state(conn, ctx.tenant, user.id).await?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let Some(step) = aries_tenants::auth::totp::check(&secret, &user.email, &op.code)
        else {
            return Ok(None);
        };
        if !users::accept_totp_step(conn, ctx.tenant, user.id, step).await? {
            return Ok(None);
        }
        let codes = aries_tenants::auth::totp::recovery_codes();
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| secrets::sha256(c)).collect();
        users::replace_recovery_codes(conn, ctx.tenant, user.id, &hashes).await?;
        ctx.audit_as(
            conn,
            format!("user:{}", user.id),
            "user.totp_enabled",
            "user",
            user.id,
            json!({}),
        )
        .await?;
        Ok(Some(codes))
    }
);

tenant_op!(
    /// Whether the user has confirmed TOTP (a session without the second factor may then not re-enrol).
    GetUserTotpState {
        /// Which user.
        user: UserId,
    } -> bool, "user.totp_state", Access::Anonymous,
    |op, conn, ctx| { Ok(users::totp_state(conn, ctx.tenant, op.user).await?.1) }
);
