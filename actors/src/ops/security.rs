//! Security operations: the OAuth2 grants (which authenticate by themselves), and the management of
//! users, API keys, OAuth clients and custom roles. A principal may only hand out roles whose
//! permissions it holds itself, so an admin cannot mint an owner key.

use super::{Access, OpContext, TenantOp};
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
use futures::future::BoxFuture;
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

/// `grant_type=password`.
pub struct PasswordGrant {
    /// The user's login name.
    pub email: String,
    /// The password, in clear (never logged).
    pub password: String,
    /// Lifetime of the refresh token issued.
    pub refresh_lifetime: chrono::Duration,
}

impl TenantOp for PasswordGrant {
    type Output = GrantResult;
    const NAME: &'static str = "oauth.password";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<GrantResult, DomainError>> {
        Box::pin(async move {
            let found = users::find_for_login(conn, ctx.tenant, &self.email).await?;
            let (user, hash) = match found {
                Some((user, Some(hash))) => (Some(user), hash),
                _ => (None, decoy_hash().to_owned()),
            };
            let ok = verify_slowly(self.password, hash).await;
            let Some(user) = user.filter(|u| ok && u.status == UserStatus::Active) else {
                let email = self.email.trim().to_lowercase();
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
                self.refresh_lifetime,
            )
            .await?;
            Ok(Ok(Granted {
                subject: GrantSubject::User(user.id),
                roles: user.roles,
                refresh_token: Some(token),
            }))
        })
    }
}

/// `grant_type=refresh_token`.
pub struct RefreshGrant {
    /// The presented refresh token.
    pub token: String,
    /// Lifetime of the replacement.
    pub refresh_lifetime: chrono::Duration,
}

impl TenantOp for RefreshGrant {
    type Output = GrantResult;
    const NAME: &'static str = "oauth.refresh";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<GrantResult, DomainError>> {
        Box::pin(async move {
            match refresh::rotate(conn, ctx.tenant, &self.token, self.refresh_lifetime).await? {
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
        })
    }
}

/// `grant_type=client_credentials`.
pub struct ClientCredentialsGrant {
    /// The client's public id.
    pub client_id: String,
    /// The client's secret (never logged).
    pub client_secret: String,
}

impl TenantOp for ClientCredentialsGrant {
    type Output = GrantResult;
    const NAME: &'static str = "oauth.client_credentials";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<GrantResult, DomainError>> {
        Box::pin(async move {
            match clients::authenticate(conn, ctx.tenant, &self.client_id, &self.client_secret)
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
                        &self.client_id,
                        json!({}),
                    )
                    .await?;
                    Ok(Err(Refused::InvalidClient))
                }
            }
        })
    }
}

/// Logout: revokes the refresh token's family (unknown tokens are ignored, per RFC 7009).
pub struct RevokeRefreshToken(pub String);

impl TenantOp for RevokeRefreshToken {
    type Output = ();
    const NAME: &'static str = "oauth.revoke";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move {
            refresh::revoke_family_of(conn, ctx.tenant, &self.0)
                .await
                .map(|_| ())
        })
    }
}

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

/// `POST /users`.
pub struct CreateUser(pub NewUserInput);

impl TenantOp for CreateUser {
    type Output = User;
    const NAME: &'static str = "user.create";
    const ACCESS: Access = needs(Resource::Users, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<User, DomainError>> {
        Box::pin(async move {
            let user = self.0.parse()?;
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
        })
    }
}

/// `GET /users`.
pub struct ListUsers(pub PageRequest);

impl TenantOp for ListUsers {
    type Output = Vec<User>;
    const NAME: &'static str = "user.list";
    const ACCESS: Access = needs(Resource::Users, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<User>, DomainError>> {
        Box::pin(async move { users::list(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /users/{id}`.
pub struct GetUser(pub UserId);

impl TenantOp for GetUser {
    type Output = User;
    const NAME: &'static str = "user.get";
    const ACCESS: Access = needs(Resource::Users, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<User, DomainError>> {
        Box::pin(async move { users::get(conn, ctx.tenant, self.0).await })
    }
}

/// `POST /users/{id}/disable` and `/enable`: disabling also revokes the user's refresh tokens; the
/// user's access tokens stop working within the credential cache's lifetime on every instance.
pub struct SetUserStatus {
    /// Which user.
    pub id: UserId,
    /// The new status.
    pub status: UserStatus,
}

impl TenantOp for SetUserStatus {
    type Output = User;
    const NAME: &'static str = "user.set_status";
    const ACCESS: Access = needs(Resource::Users, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<User, DomainError>> {
        Box::pin(async move {
            if ctx.principal()?.id == PrincipalId::User(self.id)
                && self.status == UserStatus::Disabled
            {
                return Err(DomainError::Conflict {
                    code: "cannot_disable_self",
                    detail: "you cannot disable yourself".into(),
                });
            }
            let user = users::set_status(conn, ctx.tenant, self.id, self.status).await?;
            let action = if self.status == UserStatus::Disabled {
                "user.disabled"
            } else {
                "user.enabled"
            };
            ctx.audit(conn, action, "user", self.id, json!({})).await?;
            ctx.credentials.clear();
            Ok(user)
        })
    }
}

/// `POST /users/{id}/password`: an administrator sets a new password (logging the user out).
pub struct ResetPassword {
    /// Which user.
    pub id: UserId,
    /// The new password, in clear.
    pub password: String,
}

impl TenantOp for ResetPassword {
    type Output = User;
    const NAME: &'static str = "user.reset_password";
    const ACCESS: Access = needs(Resource::Users, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<User, DomainError>> {
        Box::pin(async move {
            if let Err(why) = secrets::check_password_rules(&self.password) {
                let mut errs = ValidationErrors::default();
                errs.push("password", "weak_password", why);
                return Err(DomainError::Validation(errs));
            }
            let password = self.password;
            let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
                .await
                .map_err(|e| DomainError::Forbidden(format!("hashing failed: {e}")))?
                .map_err(DomainError::Forbidden)?;
            let user = users::set_password(conn, ctx.tenant, self.id, &hash).await?;
            ctx.audit(conn, "user.password_reset", "user", self.id, json!({}))
                .await?;
            ctx.credentials.clear();
            Ok(user)
        })
    }
}

// ---- API keys ----

/// `POST /api-keys`: returns the key and its secret (shown once).
pub struct CreateApiKey {
    /// The tenant's slug, written into the key so it is recognised as this tenant's.
    pub slug: String,
    /// What the key is for.
    pub name: String,
    /// Roles it acts with.
    pub roles: Vec<String>,
}

impl TenantOp for CreateApiKey {
    type Output = (ApiKey, String);
    const NAME: &'static str = "api_key.create";
    const ACCESS: Access = needs(Resource::ApiKeys, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(ApiKey, String), DomainError>> {
        Box::pin(async move {
            let mut errs = ValidationErrors::default();
            let name = errs.text("name", &self.name, 200);
            errs.finish(()).map_err(DomainError::Validation)?;
            let role_names = parse_role_list("roles", &self.roles)?;
            check_grantable(conn, ctx, "roles", &role_names).await?;
            let by = ctx.principal()?.id.to_string();
            let (key, secret) =
                api_keys::create(conn, ctx.tenant, &self.slug, &name, &role_names, &by).await?;
            let details = json!({"name": key.name, "prefix": key.prefix, "roles": key.roles});
            ctx.audit(conn, "api_key.created", "api_key", key.id, details)
                .await?;
            Ok((key, secret))
        })
    }
}

/// `GET /api-keys`.
pub struct ListApiKeys(pub PageRequest);

impl TenantOp for ListApiKeys {
    type Output = Vec<ApiKey>;
    const NAME: &'static str = "api_key.list";
    const ACCESS: Access = needs(Resource::ApiKeys, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<ApiKey>, DomainError>> {
        Box::pin(async move { api_keys::list(conn, ctx.tenant, self.0).await })
    }
}

/// `DELETE /api-keys/{id}`: revokes (the row stays for the record).
pub struct RevokeApiKey(pub ApiKeyId);

impl TenantOp for RevokeApiKey {
    type Output = ApiKey;
    const NAME: &'static str = "api_key.revoke";
    const ACCESS: Access = needs(Resource::ApiKeys, Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<ApiKey, DomainError>> {
        Box::pin(async move {
            let key = api_keys::revoke(conn, ctx.tenant, self.0).await?;
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
        })
    }
}

// ---- OAuth clients ----

/// `POST /oauth-clients`: returns the client and its secret (shown once).
pub struct CreateClient {
    /// What the integration is.
    pub name: String,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
}

impl TenantOp for CreateClient {
    type Output = (OauthClient, String);
    const NAME: &'static str = "oauth_client.create";
    const ACCESS: Access = needs(Resource::OauthClients, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(OauthClient, String), DomainError>> {
        Box::pin(async move {
            let mut errs = ValidationErrors::default();
            let name = errs.text("name", &self.name, 200);
            errs.finish(()).map_err(DomainError::Validation)?;
            let role_names = parse_role_list("roles", &self.roles)?;
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
        })
    }
}

/// `GET /oauth-clients`.
pub struct ListClients;

impl TenantOp for ListClients {
    type Output = Vec<OauthClient>;
    const NAME: &'static str = "oauth_client.list";
    const ACCESS: Access = needs(Resource::OauthClients, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<OauthClient>, DomainError>> {
        Box::pin(async move { clients::list(conn, ctx.tenant).await })
    }
}

/// `DELETE /oauth-clients/{client_id}`.
pub struct RevokeClient(pub String);

impl TenantOp for RevokeClient {
    type Output = OauthClient;
    const NAME: &'static str = "oauth_client.revoke";
    const ACCESS: Access = needs(Resource::OauthClients, Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<OauthClient, DomainError>> {
        Box::pin(async move {
            let client = clients::revoke(conn, ctx.tenant, &self.0).await?;
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
        })
    }
}

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

/// `GET /roles`: built-in roles, then the tenant's.
pub struct ListRoles;

impl TenantOp for ListRoles {
    type Output = Vec<RoleView>;
    const NAME: &'static str = "role.list";
    const ACCESS: Access = needs(Resource::Roles, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<RoleView>, DomainError>> {
        Box::pin(async move {
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
        })
    }
}

/// `POST /roles`.
pub struct CreateRole(pub CustomRoleInput);

impl TenantOp for CreateRole {
    type Output = CustomRole;
    const NAME: &'static str = "role.create";
    const ACCESS: Access = needs(Resource::Roles, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<CustomRole, DomainError>> {
        Box::pin(async move {
            let (name, permissions) = self.0.parse()?;
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
        })
    }
}

/// `DELETE /roles/{name}`: users and keys holding it simply lose its permissions.
pub struct DeleteRole(pub String);

impl TenantOp for DeleteRole {
    type Output = ();
    const NAME: &'static str = "role.delete";
    const ACCESS: Access = needs(Resource::Roles, Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move {
            roles::delete(conn, ctx.tenant, &self.0).await?;
            ctx.audit(conn, "role.deleted", "role", &self.0, json!({}))
                .await?;
            ctx.credentials.clear();
            Ok(())
        })
    }
}

// ---- audit ----

/// `GET /audit`: the tenant's trail, filtered, in sequence order.
pub struct ListAudit {
    /// What to show.
    pub filter: aries_tenants::audit::AuditFilter,
    /// Page size.
    pub limit: u32,
}

impl TenantOp for ListAudit {
    type Output = Vec<aries_tenants::audit::AuditEvent>;
    const NAME: &'static str = "audit.list";
    const ACCESS: Access = needs(Resource::Audit, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            aries_tenants::audit::list(
                conn,
                aries_tenants::audit::Trail::Tenant(ctx.tenant),
                &self.filter,
                self.limit,
            )
            .await
        })
    }
}

/// `GET /audit/verify`: recomputes the tenant's chain.
pub struct VerifyAudit;

impl TenantOp for VerifyAudit {
    type Output = aries_tenants::audit::Verification;
    const NAME: &'static str = "audit.verify";
    const ACCESS: Access = needs(Resource::Audit, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            aries_tenants::audit::verify(conn, aries_tenants::audit::Trail::Tenant(ctx.tenant))
                .await
        })
    }
}

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

/// `POST /sessions`: password, then TOTP (or a recovery code) when the user has enrolled it.
pub struct SessionLogin {
    /// Login name.
    pub email: String,
    /// Password, in clear.
    pub password: String,
    /// Current TOTP code.
    pub totp_code: Option<String>,
    /// A single-use recovery code.
    pub recovery_code: Option<String>,
}

impl TenantOp for SessionLogin {
    type Output = Result<SessionGranted, Refused>;
    const NAME: &'static str = "session.login";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let found = users::find_for_login(conn, ctx.tenant, &self.email).await?;
            let (user, hash) = match found {
                Some((user, Some(hash))) => (Some(user), hash),
                _ => (None, decoy_hash().to_owned()),
            };
            let ok = verify_slowly(self.password, hash).await;
            let email = self.email.trim().to_lowercase();
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
                let second = match (&self.totp_code, &self.recovery_code, &secret) {
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
        })
    }
}

/// `POST /mfa/totp` for the session's user: a new secret and its otpauth URI.
pub struct EnrolUserTotp(pub UserId);

impl TenantOp for EnrolUserTotp {
    type Output = (String, String);
    const NAME: &'static str = "user.totp_enrol";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let user = users::get(conn, ctx.tenant, self.0).await?;
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
        })
    }
}

/// `POST /mfa/totp/confirm`: the recovery codes when the code is current (and unused), else `None`.
pub struct ConfirmUserTotp {
    /// The session's user.
    pub user: UserId,
    /// The code shown by the authenticator app.
    pub code: String,
}

impl TenantOp for ConfirmUserTotp {
    type Output = Option<Vec<String>>;
    const NAME: &'static str = "user.totp_confirm";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let user = users::get(conn, ctx.tenant, self.user).await?;
            let (secret, _) = users::totp_state(conn, ctx.tenant, user.id).await?;
            let Some(secret) = secret else {
                return Ok(None);
            };
            let Some(step) = aries_tenants::auth::totp::check(&secret, &user.email, &self.code)
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
        })
    }
}

/// Whether the user has confirmed TOTP (a session without the second factor may then not re-enrol).
pub struct GetUserTotpState(pub UserId);

impl TenantOp for GetUserTotpState {
    type Output = bool;
    const NAME: &'static str = "user.totp_state";
    const ACCESS: Access = Access::Anonymous;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<bool, DomainError>> {
        Box::pin(async move { Ok(users::totp_state(conn, ctx.tenant, self.0).await?.1) })
    }
}
