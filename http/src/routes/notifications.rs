//! Notifications: `/v1/tenants/{tenant}/notifications/…` — the tenant's channel (email over
//! SMTP or SMS through a gateway; secrets write-only), the rules that say which events notify
//! whom, and the log of every attempt. Permission `notifications:view|edit|delete`.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{self, bool_param, with_etag};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::notifications::{
    CreateNotificationRule, DeleteNotificationRule, GetNotificationChannel, GetNotificationRule,
    ListNotificationLog, ListNotificationRules, PatchNotificationRule, PutNotificationChannel,
};
use aries_tenants::notifications::{
    Channel, ChannelInput, LogEntry, LogFilter, NotificationStatus, Rule, RuleInput,
};
use serde::Deserialize;
use uuid::Uuid;

/// The `{rule_id}` of `…/notifications/rules/{rule_id}`.
fn rule_id(path: web::Path<(String, String)>) -> Result<Uuid, ApiError> {
    let raw = path.into_inner().1;
    // One spelling of an id, as everywhere in the API: the hyphenated 36 characters (`Uuid`
    // alone would also take the simple, braced and URN forms).
    path_id("rule_id", if raw.len() == 36 { &raw } else { "" })
}

/// The tenant's notification channel (its secret is never returned: `secret_set` says whether
/// one is stored).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/notifications/channel", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = Channel), (status = 404, description = "not_found: no channel set")))]
pub async fn show_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    common::show(&caller, &state, GetNotificationChannel {}, |c| c.version).await
}

/// Set (201) or replace (200) the tenant's channel. `password` / `auth_token` are write-only:
/// absent keeps the stored one, `""` removes it. `If-Match` makes a replacement conditional.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/notifications/channel", tag = "notifications",
    request_body = ChannelInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"),
           ("If-Match" = Option<String>, Header, description = "ETag of the channel being replaced")),
    responses((status = 201, body = Channel, description = "created"), (status = 200, body = Channel, description = "replaced"),
              (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed")))]
pub async fn put_channel(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<ChannelInput>,
) -> Result<HttpResponse, ApiError> {
    let if_match = if_match(&req)?;
    let op = PutNotificationChannel {
        input: body.value,
        if_match,
    };
    let (channel, created) = common::exec(&caller, &state, op).await?;
    let res = if created {
        HttpResponse::Created()
            .insert_header((
                header::LOCATION,
                format!("/v1/tenants/{}/notifications/channel", caller.slug),
            ))
            .json(&channel)
    } else {
        HttpResponse::Ok().json(&channel)
    };
    Ok(with_etag(res, channel.version))
}

/// Create a rule.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/notifications/rules", tag = "notifications", request_body = RuleInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Rule), (status = 422, description = "validation_failed (`wrong_channel` when a recipient does not suit the channel)")))]
pub async fn create_rule(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreateNotificationRule { input: body.value };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |r| format!("/v1/tenants/{slug}/notifications/rules/{}", r.id),
        |r| r.version,
    )
    .await
}

/// Filters of the rule list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RuleListQuery {
    /// `true` or `false`.
    pub active: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List rules (cursor-paginated, by creation order).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/notifications/rules", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), RuleListQuery),
    responses((status = 200, description = "`{data: [Rule], next_cursor?}`"), (status = 422, description = "invalid_query")))]
pub async fn list_rules(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<RuleListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let op = ListNotificationRules { page, active };
    common::list_page(&caller, &state, op, page.limit, |r: &Rule| r.id).await
}

/// One rule.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/notifications/rules/{rule_id}", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("rule_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Rule), (status = 404, description = "not_found"), (status = 422, description = "invalid_id")))]
pub async fn show_rule(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(path)?;
    common::show(&caller, &state, GetNotificationRule { id }, |r| r.version).await
}

/// Update a rule with a JSON merge patch (RFC 7396). `If-Match` makes it conditional.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/notifications/rules/{rule_id}", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("rule_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Rule), (status = 404, description = "not_found"), (status = 412, description = "version_mismatch"),
              (status = 422, description = "validation_failed")))]
pub async fn update_rule(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(path)?;
    let op = |patch, if_match| PatchNotificationRule {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |r| r.version).await
}

/// Delete a rule (its log entries stay). `If-Match` makes it conditional.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/notifications/rules/{rule_id}", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("rule_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being deleted")),
    responses((status = 204), (status = 404, description = "not_found"), (status = 412, description = "version_mismatch")))]
pub async fn delete_rule(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = rule_id(path)?;
    let if_match = if_match(&req)?;
    common::exec(&caller, &state, DeleteNotificationRule { id, if_match }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Filters of the notification log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// `sent`, `failed` or `retrying`.
    pub status: Option<String>,
    /// One event's entries (its id).
    pub event_id: Option<String>,
    /// One rule's entries.
    pub rule_id: Option<String>,
    /// One event type's entries (`order.approved`).
    pub event_type: Option<String>,
    /// One recipient's entries.
    pub recipient: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn uuid_param(field: &str, v: Option<String>) -> Result<Option<Uuid>, ApiError> {
    v.map(|s| {
        (s.len() == 36)
            .then(|| Uuid::parse_str(&s).ok())
            .flatten()
            .ok_or_else(|| query_error(field, "invalid_uuid", "a hyphenated UUID"))
    })
    .transpose()
}

/// The notification log, oldest first (cursor-paginated).
/// A page of the notification log, as `GET …/notifications/log` answers it (documentation only:
/// the answer is an `aries_tenants::page::Page<LogEntry>`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LogPage {
    /// This page's entries, in id order.
    data: Vec<LogEntry>,
    /// The `cursor` of the next page; absent on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/notifications/log", tag = "notifications", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), LogQuery),
    responses((status = 200, description = "`{data: [LogEntry], next_cursor?}`", body = LogPage),
              (status = 422, description = "invalid_query")))]
pub async fn list_log(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let status = q
        .status
        .map(|s| {
            s.parse::<NotificationStatus>()
                .map_err(|m| query_error("status", "invalid_value", &m))
        })
        .transpose()?;
    let filter = LogFilter {
        status,
        event_id: uuid_param("event_id", q.event_id)?,
        rule_id: uuid_param("rule_id", q.rule_id)?,
        event_type: q.event_type.filter(|s| !s.trim().is_empty()),
        recipient: q.recipient.filter(|s| !s.trim().is_empty()),
    };
    let op = ListNotificationLog { page, filter };
    common::list_page(&caller, &state, op, page.limit, |l: &LogEntry| l.id).await
}
