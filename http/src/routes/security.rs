//! A tenant's security configuration: users, API keys, OAuth clients and custom roles. Secrets
//! (API keys, client secrets) appear once, in the creation response, and never again.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, path_id};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use aries_actors::ops::security::{
    CreateApiKey, CreateClient, CreateRole, CreateUser, DeleteRole, GetUser, ListApiKeys,
    ListAudit, ListClients, ListRoles, ListUsers, ResetPassword, RevokeApiKey, RevokeClient,
    SetUserStatus, VerifyAudit,
};
use aries_tenants::auth::api_keys::ApiKey;
use aries_tenants::auth::clients::OauthClient;
use aries_tenants::auth::roles::CustomRoleInput;
use aries_tenants::auth::users::{NewUserInput, User, UserStatus};
use aries_tenants::ids::{ApiKeyId, UserId};
use aries_tenants::page::Page;
use serde::{Deserialize, Serialize};

fn created(location: String, body: &impl Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}

// ---- users ----

/// Create a user (roles you hold only).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/users", tag = "security", request_body = NewUserInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, body = User), (status = 403, description = "forbidden"), (status = 409, description = "user_email_taken")))]
pub async fn create_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: JsonBody<NewUserInput>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            CreateUser { input: body.value },
        )
        .await?;
    Ok(created(
        format!("/v1/tenants/{}/users/{}", caller.slug, user.id),
        &user,
    ))
}

/// List users.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/users", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PageQuery),
    responses((status = 200, description = "`{data: [User], next_cursor?}`")))]
pub async fn list_users(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.parse()?;
    let rows = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListUsers { page })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |u| u.id.as_uuid())))
}

fn user_id(path: web::Path<(String, String)>) -> Result<UserId, ApiError> {
    path_id("user_id", &path.into_inner().1)
}

/// One user.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/users/{user_id}", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = User), (status = 404, description = "not_found")))]
pub async fn show_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(path)?;
    let user = state
        .directory
        .exec_as(&caller.slug, caller.call(), GetUser { id })
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

async fn set_status(
    caller: TenantCaller,
    state: &AppState,
    path: web::Path<(String, String)>,
    status: UserStatus,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(path)?;
    let user = state
        .directory
        .exec_as(&caller.slug, caller.call(), SetUserStatus { id, status })
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Disable a user: they cannot log in, their refresh tokens are revoked, and their access tokens stop
/// working on every instance within `auth.credential_cache_ms`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/users/{user_id}/disable", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = User), (status = 409, description = "cannot_disable_self")))]
pub async fn disable_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_status(caller, &state, path, UserStatus::Disabled).await
}

/// Enable a disabled user.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/users/{user_id}/enable", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = User)))]
pub async fn enable_user(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_status(caller, &state, path, UserStatus::Active).await
}

/// Body of a password reset.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The new password (12 to 256 characters).
    pub password: String,
}

/// Set a user's password (an administrator's reset); the user's sessions and refresh tokens end.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/users/{user_id}/password", tag = "security", security(("bearer" = [])),
    request_body = PasswordReset,
    params(("tenant" = String, Path, description = "tenant slug"), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = User), (status = 422, description = "validation_failed")))]
pub async fn reset_password(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<PasswordReset>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(path)?;
    let op = ResetPassword {
        id,
        password: body.value.password,
    };
    let user = state
        .directory
        .exec_as(&caller.slug, caller.call(), op)
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

// ---- API keys ----

/// Body of "create an API key" (also the operator's bootstrap key).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What the key is for.
    pub name: String,
    /// Roles it acts with (you can only grant what you hold).
    pub roles: Vec<String>,
}

/// A created API key, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// The key as listed later.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The whole key, for `Authorization: Bearer`. Store it now; it cannot be shown again.
    pub secret: String,
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/api-keys", tag = "security", request_body = NewApiKey,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, body = CreatedApiKey), (status = 403, description = "forbidden")))]
pub async fn create_api_key(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: JsonBody<NewApiKey>,
) -> Result<HttpResponse, ApiError> {
    let op = CreateApiKey {
        slug: caller.slug.to_string(),
        name: body.value.name,
        roles: body.value.roles,
    };
    let (key, secret) = state
        .directory
        .exec_as(&caller.slug, caller.call(), op)
        .await?;
    Ok(created(
        format!("/v1/tenants/{}/api-keys/{}", caller.slug, key.id),
        &CreatedApiKey { key, secret },
    ))
}

/// List API keys (prefix, roles, last use; never the secret).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/api-keys", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PageQuery),
    responses((status = 200, description = "`{data: [ApiKey], next_cursor?}`")))]
pub async fn list_api_keys(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.parse()?;
    let rows = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListApiKeys { page })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |k| k.id.as_uuid())))
}

/// Revoke an API key: refused on every instance within `auth.credential_cache_ms`.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/api-keys/{api_key_id}", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("api_key_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ApiKey), (status = 404, description = "not_found")))]
pub async fn revoke_api_key(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: ApiKeyId = path_id("api_key_id", &path.into_inner().1)?;
    let key = state
        .directory
        .exec_as(&caller.slug, caller.call(), RevokeApiKey { id })
        .await?;
    Ok(HttpResponse::Ok().json(key))
}

// ---- OAuth clients ----

/// Body of "register an OAuth client".
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// What the integration is.
    pub name: String,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
}

/// A registered client with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedClient {
    /// The client as listed later.
    #[serde(flatten)]
    pub client: OauthClient,
    /// The client secret for the client-credentials grant. Store it now.
    pub client_secret: String,
}

/// Register an OAuth client for the client-credentials grant.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/oauth-clients", tag = "security", request_body = NewClient,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, body = CreatedClient)))]
pub async fn create_client(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: JsonBody<NewClient>,
) -> Result<HttpResponse, ApiError> {
    let op = CreateClient {
        name: body.value.name,
        roles: body.value.roles,
    };
    let (client, client_secret) = state
        .directory
        .exec_as(&caller.slug, caller.call(), op)
        .await?;
    let url = format!(
        "/v1/tenants/{}/oauth-clients/{}",
        caller.slug, client.client_id
    );
    Ok(created(
        url,
        &CreatedClient {
            client,
            client_secret,
        },
    ))
}

/// List OAuth clients.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/oauth-clients", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, description = "`{data: [OauthClient]}`")))]
pub async fn list_clients(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let data = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListClients {})
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

/// Revoke an OAuth client: its tokens stop working within `auth.credential_cache_ms`.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/oauth-clients/{client_id}", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("client_id" = String, Path)),
    responses((status = 200, body = OauthClient), (status = 404, description = "not_found")))]
pub async fn revoke_client(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let client_id = path.into_inner().1;
    let client = state
        .directory
        .exec_as(&caller.slug, caller.call(), RevokeClient { client_id })
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

// ---- roles ----

/// Built-in and custom roles with their permissions.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/roles", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, description = "`{data: [Role]}`")))]
pub async fn list_roles(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let data = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListRoles {})
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

/// Create a custom role.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/roles", tag = "security", request_body = CustomRoleInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, description = "the role"), (status = 409, description = "role_name_taken")))]
pub async fn create_role(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: JsonBody<CustomRoleInput>,
) -> Result<HttpResponse, ApiError> {
    let role = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            CreateRole { input: body.value },
        )
        .await?;
    Ok(created(
        format!("/v1/tenants/{}/roles/{}", caller.slug, role.name),
        &role,
    ))
}

/// Delete a custom role (its holders lose its permissions).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/roles/{role}", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("role" = String, Path)),
    responses((status = 204), (status = 404, description = "not_found")))]
pub async fn delete_role(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner().1;
    state
        .directory
        .exec_as(&caller.slug, caller.call(), DeleteRole { name })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- audit ----

/// Filters of the audit list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exact action (`location.created`).
    pub action: Option<String>,
    /// Exact actor (`user:<id>`, `api_key:<id>`…).
    pub actor: Option<String>,
    /// Exact target type (`location`).
    pub target_type: Option<String>,
    /// Exact target id.
    pub target_id: Option<String>,
    /// RFC 3339: events at or after.
    pub since: Option<String>,
    /// RFC 3339: events before.
    pub until: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Platform trail only: events about this tenant (slug).
    pub tenant: Option<String>,
}

impl AuditQuery {
    /// The filter and page size; 422 `invalid_query` naming the bad parameter.
    pub fn parse(&self) -> Result<(aries_tenants::audit::AuditFilter, u32), ApiError> {
        let page = PageQuery {
            limit: self.limit.clone(),
            cursor: None,
        }
        .parse()?;
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|_| {
                            crate::extract::query_error(
                                field,
                                "invalid_timestamp",
                                "an RFC 3339 timestamp",
                            )
                        })
                })
                .transpose()
        };
        let after_seq = self
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    crate::extract::query_error(
                        "cursor",
                        "invalid_cursor",
                        "the cursor is not one this API returned",
                    )
                })
            })
            .transpose()?;
        let filter = aries_tenants::audit::AuditFilter {
            action: self.action.clone(),
            actor: self.actor.clone(),
            target_type: self.target_type.clone(),
            target_id: self.target_id.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            after_seq,
            tenant: None,
        };
        Ok((filter, page.limit))
    }
}

/// A page of audit events: `{"data": [...], "next_cursor": "<seq>"}`.
pub fn audit_page(
    mut rows: Vec<aries_tenants::audit::AuditEvent>,
    limit: u32,
) -> serde_json::Value {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    let mut body = serde_json::json!({ "data": rows });
    if let Some(n) = next {
        body["next_cursor"] = serde_json::Value::String(n);
    }
    body
}

/// The tenant's audit trail (append-only, hash-chained), filtered.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), AuditQuery),
    responses((status = 200, description = "`{data: [AuditEvent], next_cursor?}`")))]
pub async fn list_audit(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, limit) = query.parse()?;
    let rows = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListAudit { filter, limit })
        .await?;
    Ok(HttpResponse::Ok().json(audit_page(rows, limit)))
}

/// Recomputes the tenant's hash chain and names the first row that does not match.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/audit/verify", tag = "security", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = aries_tenants::audit::Verification)))]
pub async fn verify_audit(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = state
        .directory
        .exec_as(&caller.slug, caller.call(), VerifyAudit {})
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
