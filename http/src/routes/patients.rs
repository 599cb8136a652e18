//! Patients and their ranked insurance policies: `/v1/tenants/{tenant}/patients`,
//! `…/patients/{patient_id}/policies`, `…/policies/{policy_id}` and `…/policies/rank`.
//! No patient delete: set `inactive_date` (orders and claims will refer to patients).
//! An id in a body that names nothing of the tenant's (location, prescriber, payer) is a 422
//! naming the field with code `unknown_id`; a patient or policy in the URL that does not exist is
//! a 404.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{self, bool_param, mark_replayed, run_keyed};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::patients::{
    AddPolicy, CreatePatient, GetPatient, GetPolicy, ListPatients, ListPolicies, PatchPatient,
    PatchPolicy, RemovePolicy, RerankPolicies,
};
use aries_tenants::ids::{PatientId, PolicyId};
use aries_tenants::page::Page;
use aries_tenants::patients::policies::RerankInput;
use aries_tenants::patients::{Patient, PatientFilter, PatientInput, Policy, PolicyInput};
use chrono::NaiveDate;
use serde::Deserialize;

fn patient_id(path: web::Path<(String, String)>) -> Result<PatientId, ApiError> {
    path_id("patient_id", &path.into_inner().1)
}

fn policy_ids(
    path: web::Path<(String, String, String)>,
) -> Result<(PatientId, PolicyId), ApiError> {
    let (_, patient, policy) = path.into_inner();
    Ok((
        path_id("patient_id", &patient)?,
        path_id("policy_id", &policy)?,
    ))
}

/// Create a patient, optionally with policies (ranked in the order given).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/patients", tag = "patients", request_body = PatientInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Patient),
              (status = 409, description = "account_number_taken / payer_inactive / too_many_policies"),
              (status = 422, description = "validation_failed (unknown ids: code `unknown_id` on the field) / malformed_json / idempotency_key_reused")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<PatientInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreatePatient { input: body.value };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |v| format!("/v1/tenants/{slug}/patients/{}", v.id),
        |v| v.version,
    )
    .await
}

/// Filters of the patient search; all given ones must hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PatientQuery {
    /// Case-insensitive substring of the first or the last name.
    pub q: Option<String>,
    /// Exact account number.
    pub account_number: Option<String>,
    /// Exact date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// `true` (no inactive date reached, not deceased) or `false`.
    pub active: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Search patients (in creation order; no policies in the rows).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/patients", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PatientQuery),
    responses((status = 200, description = "`{data: [Patient], next_cursor?}`"), (status = 422, description = "invalid_query")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PatientQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let date_of_birth = match q.date_of_birth.as_deref() {
        None => None,
        Some(s) => Some(
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|_| s.len() == 10)
                .ok_or_else(|| {
                    query_error(
                        "date_of_birth",
                        "invalid_date",
                        "a calendar date YYYY-MM-DD",
                    )
                })?,
        ),
    };
    for (field, v) in [("q", &q.q), ("account_number", &q.account_number)] {
        if v.as_deref()
            .is_some_and(|s| s.chars().any(char::is_control))
        {
            return Err(query_error(
                field,
                "invalid_value",
                "must not contain control characters",
            ));
        }
    }
    let filter = PatientFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        account_number: q.account_number.filter(|s| !s.trim().is_empty()),
        date_of_birth,
        active,
    };
    let op = ListPatients { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |p| p.id.as_uuid()).await
}

/// One patient, with their policies in rank order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/patients/{patient_id}", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Patient), (status = 404, description = "not_found"), (status = 422, description = "invalid_id")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = patient_id(path)?;
    common::cached_show(&caller, &req, &state, GetPatient { id }, |p| p.version).await
}

/// Update the patient's own fields with a JSON merge patch (not `policies`); `If-Match` makes it
/// conditional.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/patients/{patient_id}", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Patient), (status = 404, description = "not_found"),
              (status = 409, description = "account_number_taken"), (status = 412, description = "version_mismatch"),
              (status = 422, description = "validation_failed")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = patient_id(path)?;
    let op = |patch, if_match| PatchPatient {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |p| p.version).await
}

/// Add a policy: at `rank` (the policies from it on move down one) or at the next free rank.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies", tag = "patients", request_body = PolicyInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Policy), (status = 404, description = "not_found (patient)"),
              (status = 409, description = "too_many_policies (a patient has at most 4) / payer_inactive"),
              (status = 422, description = "validation_failed (`rank` beyond the next free one: out_of_range; unknown payer: unknown_id)")))]
pub async fn add_policy(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<PolicyInput>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient_id(path)?;
    let slug = caller.slug.clone();
    let op = AddPolicy {
        patient,
        input: body.value,
    };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |v| format!("/v1/tenants/{slug}/patients/{patient}/policies/{}", v.id),
        |v| v.version,
    )
    .await
}

/// The patient's policies in rank order (all of them, active or not): `{data: [Policy]}`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid)),
    responses((status = 200, description = "`{data: [Policy]}` by rank"), (status = 404, description = "not_found")))]
pub async fn list_policies(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient_id(path)?;
    common::cached(&caller, &req, &state, ListPolicies { patient }, |data| {
        common::entry_of(
            &Page {
                data,
                next_cursor: None,
            },
            None,
        )
    })
    .await
}

/// One policy of the patient.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies/{policy_id}", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
           ("policy_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Policy), (status = 404, description = "not_found")))]
pub async fn show_policy(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (patient, id) = policy_ids(path)?;
    common::cached_show(&caller, &req, &state, GetPolicy { patient, id }, |p| {
        p.version
    })
    .await
}

/// Update a policy with a JSON merge patch (not its rank: re-rank instead); `If-Match` makes it
/// conditional.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies/{policy_id}", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
           ("policy_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Policy), (status = 404, description = "not_found"),
              (status = 409, description = "payer_inactive (a new payer must be active)"),
              (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed")))]
pub async fn update_policy(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (patient, id) = policy_ids(path)?;
    let op = |patch, if_match| PatchPolicy {
        patient,
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |p| p.version).await
}

/// Remove a policy; the policies ranked below it move up one. `If-Match` makes it conditional.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies/{policy_id}", tag = "patients", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
           ("policy_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being removed")),
    responses((status = 204), (status = 404, description = "not_found"), (status = 409, description = "policy_in_use: an order bills it"),
              (status = 412, description = "version_mismatch")))]
pub async fn remove_policy(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (patient, id) = policy_ids(path)?;
    let if_match = if_match(&req)?;
    let op = RemovePolicy {
        patient,
        id,
        if_match,
    };
    common::exec(&caller, &state, op).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-rank: `policy_ids` is the complete new order (rank 1 first). Anything but a permutation of
/// the patient's policies is a 422 (`not_a_permutation` on `policy_ids`). Answers the policies in
/// their new order. Naturally idempotent; an `Idempotency-Key` is honoured like on any POST.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/patients/{patient_id}/policies/rank", tag = "patients", request_body = RerankInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("patient_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 200, description = "`{data: [Policy]}` in the new order"), (status = 404, description = "not_found"),
              (status = 422, description = "validation_failed")))]
pub async fn rerank(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<RerankInput>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient_id(path)?;
    let op = RerankPolicies {
        patient,
        input: body.value,
    };
    let (data, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    let mut res = HttpResponse::Ok();
    mark_replayed(&mut res, replayed);
    Ok(res.json(Page {
        data,
        next_cursor: None,
    }))
}
