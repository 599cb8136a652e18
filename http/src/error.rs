//! The one table of error codes, and the boundary error every handler returns.
//!
//! Every error leaves as RFC 9457 `application/problem+json`:
//! `{"type": "/problems/<code>", "title", "status", "code", "detail", "instance": "<request id>", "errors"?}`.
//! Internal causes are logged with the request id and never returned.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use aries_actors::TenantError;
use aries_actors::platform::PlatformError;
use aries_shards::CatalogError;
use aries_tenants::{DomainError, FieldError, TenantStatus, ValidationErrors};
use serde::Serialize;
use std::time::Duration;

macro_rules! error_codes {
    ($($variant:ident => ($status:expr, $code:literal, $title:literal, $description:literal)),+ $(,)?) => {
        /// Stable error codes. Clients switch on `code`; never rename one, only add.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            pub fn status(self) -> StatusCode { match self { $(ErrorCode::$variant => $status),+ } }
            pub fn code(self) -> &'static str { match self { $(ErrorCode::$variant => $code),+ } }
            pub fn title(self) -> &'static str { match self { $(ErrorCode::$variant => $title),+ } }
            /// What the problem means and what to do about it (served at `/problems/<code>`).
            pub fn description(self) -> &'static str { match self { $(ErrorCode::$variant => $description),+ } }
            pub fn variant_name(self) -> &'static str { match self { $(ErrorCode::$variant => stringify!($variant)),+ } }
            pub fn from_code(code: &str) -> Option<ErrorCode> { ErrorCode::ALL.iter().copied().find(|c| c.code() == code) }
        }
    };
}

error_codes! {
    BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "Bad request",
        "The request line or a header could not be understood (for example a malformed If-Match)."),
    Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required",
        "Send a valid credential as `Authorization: Bearer <token>`."),
    Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden",
        "The credential is valid but its roles do not grant this action; `detail` names the permission."),
    MfaRequired => (StatusCode::FORBIDDEN, "mfa_required", "Second factor required",
        "This session has not presented a TOTP code: enrol TOTP (POST /v1/platform/mfa/totp) and confirm it, or log in again with a code."),
    TenantSuspended => (StatusCode::FORBIDDEN, "tenant_suspended", "Tenant suspended",
        "The tenant's account is suspended by the platform operator; its API is closed until it is resumed."),
    TenantArchived => (StatusCode::FORBIDDEN, "tenant_archived", "Tenant archived",
        "The tenant's account is archived; its API is closed for good."),
    NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found",
        "No such resource, or not one the credential may see."),
    MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed",
        "The resource exists but does not support this HTTP method."),
    TenantNotReady => (StatusCode::CONFLICT, "tenant_not_ready", "Tenant not ready",
        "The tenant is still being provisioned; retry the creation call to finish it."),
    LocationCodeTaken => (StatusCode::CONFLICT, "location_code_taken", "Location code taken",
        "Another location of this tenant already uses this code."),
    PrescriberNpiTaken => (StatusCode::CONFLICT, "prescriber_npi_taken", "NPI taken",
        "The tenant already has a prescriber with this NPI."),
    WarehouseCodeTaken => (StatusCode::CONFLICT, "warehouse_code_taken", "Warehouse code taken",
        "Another warehouse of this tenant uses this code."),
    ItemCodeTaken => (StatusCode::CONFLICT, "item_code_taken", "Item code taken",
        "Another inventory item of this tenant uses this code."),
    SerialNumberTaken => (StatusCode::CONFLICT, "serial_number_taken", "Serial number taken",
        "The item already has a serial with this number."),
    InsufficientStock => (StatusCode::CONFLICT, "insufficient_stock", "Not enough stock",
        "The movement would take a counter below zero (or promise more than is on hand); `detail` says which."),
    IllegalTransition => (StatusCode::CONFLICT, "illegal_transition", "Not allowed in the current state",
        "The serial's current state does not allow this event; `detail` names the state."),
    OrderStateConflict => (StatusCode::CONFLICT, "order_state_conflict", "Not allowed in the order's state",
        "The order's or line's current state does not allow this action (editing an approved order, delivering a line twice, canceling after delivery…); `detail` names the state."),
    MissingInformation => (StatusCode::CONFLICT, "missing_information", "Missing information",
        "The order lacks information it needs to be approved; `missing` lists each problem with its scope (patient, policy, prescriber, order, line), the policy's or line's id, and a stable code."),
    SerialUnavailable => (StatusCode::CONFLICT, "serial_unavailable", "Serial not available",
        "The serial named for delivery is not on the shelf of the order's warehouse, or is delivered on another open line."),
    PayerNameTaken => (StatusCode::CONFLICT, "payer_name_taken", "Payer name taken",
        "The tenant already has a payer with this name."),
    AccountNumberTaken => (StatusCode::CONFLICT, "account_number_taken", "Account number taken",
        "Another patient of this tenant has this account number."),
    TooManyPolicies => (StatusCode::CONFLICT, "too_many_policies", "Too many policies",
        "A patient has at most four insurance policies (ranks 1 to 4); remove one first."),
    BillingRunInProgress => (StatusCode::CONFLICT, "billing_run_in_progress", "Billing run in progress",
        "A billing run of this tenant is running (on this or another instance); wait for it to finish and look at its result."),
    BillingRunSuperseded => (StatusCode::CONFLICT, "billing_run_superseded", "Billing run superseded",
        "The run's lease was taken over by a newer run (its fencing token is older than the last one written); it stopped without billing more."),
    ArPayerNotCurrent => (StatusCode::CONFLICT, "ar_payer_not_current", "Not the current payer",
        "Payments, denials and submissions come from (go to) the line's current payer only; `detail` names it."),
    ArPayerNotOnInvoice => (StatusCode::CONFLICT, "ar_payer_not_on_invoice", "Payer not on the invoice",
        "The transaction names a policy rank the invoice does not bill."),
    ArOverpayment => (StatusCode::CONFLICT, "ar_overpayment", "More than the balance",
        "The payment or write-off would take the line's balance below zero; `detail` gives the balance."),
    ArLineSettled => (StatusCode::CONFLICT, "ar_line_settled", "Line settled",
        "The line's balance is zero: nothing more can be posted on it."),
    ArAmountInvalid => (StatusCode::CONFLICT, "ar_amount_invalid", "Amount not valid for the kind",
        "The amount does not suit the transaction's kind (negative, money on a submission or denial, a zero write-off)."),
    ArTooManyPolicies => (StatusCode::CONFLICT, "ar_too_many_policies", "Too many policies",
        "An invoice bills at most four policies."),
    PolicyInUse => (StatusCode::CONFLICT, "policy_in_use", "Policy in use",
        "An order bills this policy, so it cannot be removed; set its `inactive_date` to end it."),
    PayerInactive => (StatusCode::CONFLICT, "payer_inactive", "Payer inactive",
        "The payer is inactive and takes no new policies; reactivate it or choose another."),
    PriceListNameTaken => (StatusCode::CONFLICT, "price_list_name_taken", "Price list name taken",
        "The tenant already has a price list with this name."),
    FeeScheduleInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "fee_schedule_invalid", "Fee schedule not readable",
        "The fee-schedule file could not be read (no header row with HCPCS, Mod and Mod2; a bad code or amount on the line named) or has no column for the state asked; `detail` says which, `errors` names the field (`csv` or `state`)."),
    UserEmailTaken => (StatusCode::CONFLICT, "user_email_taken", "E-mail taken",
        "Another user of this tenant already has this e-mail address."),
    RoleNameTaken => (StatusCode::CONFLICT, "role_name_taken", "Role name taken",
        "The tenant already has a role with this name."),
    CannotDisableSelf => (StatusCode::CONFLICT, "cannot_disable_self", "Cannot disable yourself",
        "A user cannot disable their own account; ask another administrator."),
    OperatorEmailTaken => (StatusCode::CONFLICT, "operator_email_taken", "E-mail taken",
        "Another operator account has this e-mail address."),
    TenantSlugTaken => (StatusCode::CONFLICT, "tenant_slug_taken", "Tenant slug taken",
        "Another tenant already uses this slug."),
    ShardNameTaken => (StatusCode::CONFLICT, "shard_name_taken", "Shard name taken",
        "Another shard already uses this name."),
    InvalidStatusTransition => (StatusCode::CONFLICT, "invalid_status_transition", "Status change not allowed",
        "The tenant's current status does not allow this action (an archived tenant cannot be resumed)."),
    IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", "Idempotency key reused",
        "This Idempotency-Key was already used with a different request; use a new key for a new request."),
    VersionMismatch => (StatusCode::PRECONDITION_FAILED, "version_mismatch", "Version mismatch",
        "If-Match named a version that is no longer current; fetch the resource again and retry."),
    PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large",
        "The request body exceeds the configured limit."),
    UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type",
        "Send the body as application/json (or application/merge-patch+json for PATCH)."),
    MalformedJson => (StatusCode::UNPROCESSABLE_ENTITY, "malformed_json", "Malformed JSON",
        "The body is not valid JSON."),
    ValidationFailed => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed",
        "One or more fields are invalid; `errors` lists each with its path and a code."),
    InvalidId => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_id", "Invalid identifier",
        "A path segment is not a well-formed identifier (a hyphenated UUID, or a tenant slug)."),
    InvalidQuery => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", "Invalid query parameter",
        "A query parameter is unknown or out of range (`limit` is 1 to 500; `cursor` must come from a previous page)."),
    RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests",
        "The credential or the tenant's plan allows fewer requests; retry after the Retry-After delay."),
    ShardUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "shard_unavailable", "Shard unavailable",
        "The database holding this tenant's data is not answering; retry after the Retry-After delay."),
    TenantMoving => (StatusCode::SERVICE_UNAVAILABLE, "tenant_moving", "Tenant being moved",
        "The tenant is being moved to another shard and its writes are frozen for longer than usual; retry after the Retry-After delay."),
    ShardReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "shard_read_only", "Shard read-only",
        "The shard holding this tenant's data is read-only for maintenance: reads work, writes are refused; retry after the Retry-After delay."),
    MoveInProgress => (StatusCode::CONFLICT, "move_in_progress", "Move in progress",
        "The tenant already has an unfinished move (running, or waiting to be resumed or cancelled); `detail` names it."),
    MoveNotAllowed => (StatusCode::CONFLICT, "move_not_allowed", "Move not allowed",
        "The move cannot be made as asked (the tenant is already on that shard, the target shard does not take tenants, or the move is past the point where it can be cancelled); `detail` says which."),
    NoShardAvailable => (StatusCode::SERVICE_UNAVAILABLE, "no_shard_available", "No shard available",
        "No active shard can take a new tenant; the operator must add one or reactivate one."),
    DeadLetterAlreadyReplayed => (StatusCode::CONFLICT, "dead_letter_already_replayed", "Dead letter already replayed",
        "The dead letter was sent back to its queue already; if it fails again it is listed as `dead` again and can be replayed then."),
    DeadLetterQueueMissing => (StatusCode::CONFLICT, "dead_letter_queue_missing", "Dead letter's queue missing",
        "The consumer queue the message died in does not exist on the broker (the consumer was removed or renamed); nothing was sent and the dead letter stays `dead`."),
    ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "Service unavailable",
        "A platform dependency is not answering; retry after the Retry-After delay."),
    InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error",
        "Something failed on our side. The request id identifies it in our logs."),
    ShardNotMigrated => (StatusCode::CONFLICT, "shard_not_migrated", "Shard not migrated",
        "The shard's schema is not at this version's latest shard migration (or was never migrated): run `POST /v1/platform/shards/{shard}/migrate` first."),
    InvalidShardTransition => (StatusCode::CONFLICT, "invalid_shard_transition", "Shard status change not allowed",
        "The shard's status does not allow this action (draining the last active shard, draining a read-only or registered shard, marking a registered shard read-only); `detail` says why."),
    ShardJobInProgress => (StatusCode::CONFLICT, "shard_job_in_progress", "Shard job in progress",
        "A drain or rebalance job is running (one at a time on the platform); wait for it to end or cancel it. `detail` names it."),
}

tokio::task_local! {
    /// The current request's id, set by the request middleware, read when a problem is rendered.
    pub static REQUEST_ID: String;
}

/// The boundary error.
#[derive(Debug)]
pub struct ApiError {
    /// Row of the error table: gives the status, `type`, `title` and `code` of the problem.
    pub code: ErrorCode,
    /// Sent as `detail`: this occurrence, in words safe for the client (causes are logged, not put
    /// here).
    pub detail: String,
    /// Field errors (validation only).
    pub errors: Vec<FieldError>,
    /// Sent as `Retry-After` (503, 429).
    pub retry_after: Option<Duration>,
    /// Sent as `RateLimit-*` headers (429).
    pub rate_limit: Option<crate::ratelimit::RateLimitInfo>,
    /// Extension members of the problem (RFC 9457 §3.2), e.g. `missing` for `missing_information`.
    /// Boxed: most problems have none, and every `Result<_, ApiError>` carries the size.
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            rate_limit: None,
            extensions: None,
        }
    }

    /// Adds an extension member to the problem body.
    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions
            .get_or_insert_with(Default::default)
            .insert(name.to_owned(), value);
        self
    }

    pub fn with_errors(
        code: ErrorCode,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        Self {
            errors,
            ..Self::new(code, detail)
        }
    }

    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    pub fn with_rate_limit(mut self, info: crate::ratelimit::RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// A 500 whose cause is logged, not returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "an unexpected error occurred")
    }

    pub fn validation(errs: ValidationErrors) -> Self {
        let malformed = errs.0.iter().any(|e| e.code == "malformed_json");
        if malformed {
            let detail = errs
                .0
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return Self::with_errors(ErrorCode::MalformedJson, detail, errs.0);
        }
        if let Some(e) = errs.0.iter().find(|e| e.code == "fee_schedule_invalid") {
            let detail = e.message.clone();
            return Self::with_errors(ErrorCode::FeeScheduleInvalid, detail, errs.0);
        }
        Self::with_errors(ErrorCode::ValidationFailed, errs.to_string(), errs.0)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.detail)
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    /// `/problems/<code>`, a page describing the problem type (RFC 9457 `type`); `type` is a
    /// keyword, hence the rename.
    #[serde(rename = "type")]
    type_: String,
    /// The code's fixed summary; the same for every occurrence.
    title: &'a str,
    /// The HTTP status again, for clients that keep only the body (RFC 9457).
    status: u16,
    /// The stable snake_case code clients switch on.
    code: &'a str,
    /// What went wrong with this request.
    detail: &'a str,
    /// The request id, so a report can be matched with the logs; `None` (omitted) when rendered
    /// outside a request's scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    /// One entry per offending field, header or query parameter; omitted when there is none.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    /// The problem type's own members (documented on its `/problems/<code>` page).
    #[serde(flatten)]
    extensions: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let body = ProblemBody {
            type_: format!("/problems/{}", self.code.code()),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code: self.code.code(),
            detail: &self.detail,
            instance: REQUEST_ID.try_with(Clone::clone).ok(),
            errors: &self.errors,
            extensions: self.extensions.as_deref(),
        };
        let mut res = HttpResponse::build(self.code.status());
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(d) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, d.as_secs().max(1).to_string()));
        }
        if let Some(info) = self.rate_limit {
            crate::middleware::rate_limit_headers(&mut res, info);
        }
        if self.code == ErrorCode::Unauthenticated {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aries\""),
            ));
        }
        res.body(serde_json::to_vec(&body).unwrap_or_default())
    }
}

/// Lets a handler (or a default service) return an `ApiError` as its whole response.
impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(errs) => ApiError::validation(errs),
            DomainError::NotFound(what) => ApiError::not_found(what),
            DomainError::Unauthenticated(why) => {
                tracing::info!(reason = why, "credential refused");
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "a valid bearer token or API key for this tenant is required",
                )
            }
            DomainError::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
            // The domain names the rule it enforced; the table gives it a status and a title.
            DomainError::Conflict { code, detail } => match ErrorCode::from_code(code) {
                Some(c) => ApiError::new(c, detail),
                None => ApiError::internal(&format!("unmapped conflict code {code}: {detail}")),
            },
            DomainError::MissingInformation(missing) => ApiError::new(
                ErrorCode::MissingInformation,
                format!("{} piece(s) of information missing", missing.len()),
            )
            .with_extension(
                "missing",
                serde_json::to_value(&missing).unwrap_or_default(),
            ),
            DomainError::VersionMismatch { current } => ApiError::new(
                ErrorCode::VersionMismatch,
                format!("the current version is {current}"),
            ),
            DomainError::Database(e) => ApiError::internal(&e),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::TenantNotFound => ApiError::not_found("tenant"),
            TenantError::NotServing(TenantStatus::Suspended) => {
                ApiError::new(ErrorCode::TenantSuspended, "the tenant is suspended")
            }
            TenantError::NotServing(TenantStatus::Archived) => {
                ApiError::new(ErrorCode::TenantArchived, "the tenant is archived")
            }
            TenantError::NotServing(_) => ApiError::new(
                ErrorCode::TenantNotReady,
                "the tenant is still being provisioned",
            ),
            TenantError::ShardUnavailable { shard, retry_after } => {
                tracing::warn!(%shard, "shard unavailable");
                ApiError::new(
                    ErrorCode::ShardUnavailable,
                    "the tenant's data is temporarily unavailable",
                )
                .retry_after(retry_after)
            }
            TenantError::TenantMoving { retry_after } => ApiError::new(
                ErrorCode::TenantMoving,
                "the tenant is being moved to another shard; retry shortly",
            )
            .retry_after(retry_after),
            TenantError::ShardReadOnly { shard } => {
                tracing::info!(%shard, "write refused: shard is read-only");
                ApiError::new(
                    ErrorCode::ShardReadOnly,
                    "the tenant's shard is read-only for maintenance; reads still work",
                )
                .retry_after(Duration::from_secs(60))
            }
            TenantError::Domain(d) => d.into(),
            TenantError::Catalog(c) => c.into(),
            TenantError::Crashed => {
                tracing::error!("tenant operation crashed; actor restarted");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the request failed; the tenant's service restarted, retry",
                )
                .retry_after(Duration::from_secs(1))
            }
            TenantError::ActorUnavailable(why) => {
                tracing::warn!(%why, "tenant actor unavailable");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the tenant's service is restarting, retry",
                )
                .retry_after(Duration::from_secs(1))
            }
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::TenantNotFound(_) => ApiError::not_found("tenant"),
            CatalogError::ShardNotFound(_) => ApiError::not_found("shard"),
            CatalogError::SlugTaken(s) => {
                ApiError::new(ErrorCode::TenantSlugTaken, format!("the slug {s} is taken"))
            }
            CatalogError::ShardNameTaken(s) => ApiError::new(
                ErrorCode::ShardNameTaken,
                format!("a shard named {s} exists"),
            ),
            e @ CatalogError::InvalidTransition { .. } => {
                ApiError::new(ErrorCode::InvalidStatusTransition, e.to_string())
            }
            e @ CatalogError::IdempotencyKeyReused => {
                ApiError::new(ErrorCode::IdempotencyKeyReused, e.to_string())
            }
            CatalogError::OperatorEmailTaken(email) => ApiError::new(
                ErrorCode::OperatorEmailTaken,
                format!("an operator with e-mail {email} exists"),
            ),
            CatalogError::ShardNotMigrated(name) => ApiError::new(
                ErrorCode::ShardNotMigrated,
                format!("shard {name} is not migrated to the current schema; migrate it first"),
            ),
            CatalogError::InvalidShardTransition(why) => {
                ApiError::new(ErrorCode::InvalidShardTransition, why)
            }
            CatalogError::ShardJobInProgress(id) => ApiError::new(
                ErrorCode::ShardJobInProgress,
                format!("shard job {id} is running"),
            ),
            CatalogError::ShardJobNotFound(_) => ApiError::not_found("shard job"),
            CatalogError::NoShardAvailable => ApiError::new(
                ErrorCode::NoShardAvailable,
                "no active shard can take a new tenant",
            ),
            CatalogError::Database(db) if aries_actors::breaker::is_unavailability(&db) => {
                tracing::error!(error = %db, "catalog unavailable");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "the platform catalog is not answering",
                )
                .retry_after(Duration::from_secs(2))
            }
            other => ApiError::internal(&other),
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Catalog(c) => c.into(),
            PlatformError::ShardUnavailable {
                shard,
                reason,
                retry_after,
            } => {
                tracing::warn!(%shard, %reason, "shard unavailable for an operator action");
                ApiError::new(
                    ErrorCode::ShardUnavailable,
                    format!("shard {shard} is unavailable"),
                )
                .retry_after(retry_after)
            }
            e @ PlatformError::InvalidWeight => ApiError::with_errors(
                ErrorCode::ValidationFailed,
                e.to_string(),
                vec![FieldError::new("weight", "out_of_range", e.to_string())],
            ),
            PlatformError::InvalidDsn(why) => ApiError::with_errors(
                ErrorCode::ValidationFailed,
                format!("dsn: {why}"),
                vec![FieldError::new("dsn", "invalid_format", why)],
            ),
            PlatformError::Provision(p) => ApiError::internal(&p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            assert!(
                c.code()
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{}",
                c.code()
            );
            assert_eq!(ErrorCode::from_code(c.code()), Some(*c));
        }
    }

    /// Every code in the table is produced somewhere outside this file (lemmy's and meilisearch's
    /// habit): a code nobody uses is either dead or a mapping someone forgot.
    /// The other direction: every conflict the domain crates raise with a literal code has a row
    /// in the table (an unknown one would answer 500 `internal_error`).
    #[test]
    fn every_domain_conflict_code_is_in_the_table() -> std::io::Result<()> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack: Vec<_> = ["tenants/src", "shards/src", "actors/src", "reference/src"]
            .iter()
            .map(|d| root.join(d))
            .collect();
        let mut seen = 0;
        let mut unknown = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)?;
                for (at, _) in text.match_indices("Conflict {") {
                    let after = &text[at..];
                    let body = &after[..after.find('}').unwrap_or(after.len())];
                    let Some(start) = body.find("code: \"") else {
                        continue; // a code passed through a variable
                    };
                    let rest = &body[start + 7..];
                    let code = &rest[..rest.find('"').unwrap_or(0)];
                    seen += 1;
                    if ErrorCode::from_code(code).is_none() {
                        unknown.push(format!("{}: {code}", path.display()));
                    }
                }
            }
        }
        assert!(
            seen >= 10,
            "only {seen} literal conflict codes found: the scan is broken"
        );
        assert!(
            unknown.is_empty(),
            "conflicts without a row in the table: {unknown:?}"
        );
        Ok(())
    }

    #[test]
    fn every_code_is_used() -> std::io::Result<()> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut text = String::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("error.rs")
                {
                    text.push_str(&std::fs::read_to_string(&path)?);
                }
            }
        }
        // This file's own conversions count too, but not the table itself.
        let own = include_str!("error.rs");
        let conversions = own
            .split("impl From<DomainError> for ApiError")
            .nth(1)
            .unwrap_or_default();
        let helpers = own.split("impl ApiError {").nth(1).unwrap_or_default();
        text.push_str(conversions);
        text.push_str(
            helpers
                .split("impl std::fmt::Display for ApiError")
                .next()
                .unwrap_or_default(),
        );
        // Business-rule conflicts are raised by the domain crates with the code's text as a string
        // literal (`DomainError::Conflict { code: "payer_name_taken", .. }`), looked up in the table.
        let mut domain = String::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack: Vec<_> = ["tenants/src", "shards/src", "actors/src"]
            .iter()
            .map(|d| root.join(d))
            .collect();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    domain.push_str(&std::fs::read_to_string(&path)?);
                }
            }
        }
        let unused: Vec<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| {
                let raised_here = text.contains(&format!("ErrorCode::{}", c.variant_name()));
                let raised_by_domain = c.status() == StatusCode::CONFLICT
                    && domain.contains(&format!("\"{}\"", c.code()));
                !(raised_here || raised_by_domain)
            })
            .map(|c| c.code())
            .collect();
        assert!(unused.is_empty(), "error codes never produced: {unused:?}");
        Ok(())
    }
}
