//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, served at `/openapi.json`; Swagger UI (vendored into the binary, no
//! CDN) at `/docs/`.

use crate::routes::billing;
use crate::routes::counters;
use crate::routes::dead_letters;
use crate::routes::live;
use crate::routes::moves;
use crate::routes::moves_live;
use crate::routes::notifications;
use crate::routes::patients;
use crate::routes::price_lists;
use crate::routes::reference;
use crate::routes::reports;
use crate::routes::shards;
use crate::routes::webhooks;
use crate::routes::{
    health, inventory, locations, oauth, operators, orders, payers, platform, prescribers,
    security, tenant_sessions,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "AriesOne API", description = "Multi-tenant platform for HME/DME providers. Errors are RFC 9457 problem+json; see /problems/{code}."),
    paths(
        platform::create_tenant, platform::list_tenants, platform::show_tenant, platform::suspend_tenant,
        platform::resume_tenant, platform::archive_tenant, platform::list_shards,
        dead_letters::list, dead_letters::show, dead_letters::replay_one,
        moves::start, moves::list_for_tenant, moves::list, moves::show, moves::resume, moves::cancel,
        moves_live::live,
        locations::create, locations::list, locations::show, locations::update, locations::delete,
        prescribers::create, prescribers::list, prescribers::show, prescribers::update,
        payers::create, payers::list, payers::show, payers::update,
        patients::create, patients::list, patients::show, patients::update, patients::add_policy,
        patients::list_policies, patients::show_policy, patients::update_policy, patients::remove_policy,
        patients::rerank,
        price_lists::create, price_lists::list, price_lists::show, price_lists::update, price_lists::list_items,
        price_lists::show_item, price_lists::put_item, price_lists::delete_item, price_lists::import_fee_schedule,
        price_lists::adjust,
        inventory::create_warehouse, inventory::list_warehouses, inventory::show_warehouse, inventory::create_item,
        inventory::list_items, inventory::show_item, inventory::receive_serial, inventory::list_serials,
        inventory::show_serial, inventory::record_event, inventory::serial_history,
        inventory::record_movement, inventory::stock, inventory::stock_movements, inventory::update_warehouse,
        inventory::update_item,
        orders::create, orders::list, orders::show, orders::update, orders::missing_information,
        orders::add_line, orders::show_line, orders::update_line, orders::delete_line, orders::approve,
        orders::cancel, orders::deliver, orders::pickup,
        billing::worklist, billing::start_run, billing::list_runs, billing::show_run, billing::list_invoices,
        billing::show_invoice, billing::list_transactions, billing::post_transaction, billing::post_remittance,
        health::live, health::ready,
        platform::bootstrap_api_key, platform::rotate_signing_key, platform::list_audit, platform::verify_audit,
        operators::login, operators::enrol_totp, operators::confirm_totp, operators::list_sessions,
        operators::revoke_session, operators::logout, operators::create_operator, operators::list_operators,
        oauth::token, oauth::revoke, oauth::jwks,
        security::create_user, security::list_users, security::show_user, security::disable_user,
        security::enable_user, security::reset_password,
        security::create_api_key, security::list_api_keys, security::revoke_api_key,
        security::create_client, security::list_clients, security::revoke_client,
        security::list_roles, security::create_role, security::delete_role,
        security::list_audit, security::verify_audit,
        tenant_sessions::login, tenant_sessions::enrol, tenant_sessions::confirm, tenant_sessions::list,
        tenant_sessions::revoke, tenant_sessions::logout,
        reference::show_hcpcs, reference::list_hcpcs, reference::list_fees,
        reports::catalogue, reports::run, reports::platform_tenants,
        inventory::update_serial, inventory::set_reorder_points,
        webhooks::create, webhooks::list, webhooks::show, webhooks::update, webhooks::delete,
        webhooks::rotate_secret, webhooks::list_deliveries, webhooks::show_delivery,
        notifications::show_channel, notifications::put_channel, notifications::create_rule,
        notifications::list_rules, notifications::show_rule, notifications::update_rule,
        notifications::delete_rule, notifications::list_log, counters::show,
        live::dashboard, live::live,
        shards::register, shards::show, shards::update, shards::migrate, shards::activate, shards::read_only, shards::drain,
        shards::plan, shards::start, shards::list_jobs, shards::show_job, shards::cancel_job,
    ),
    components(schemas(
        platform::TenantView, platform::CreateTenant, platform::ShardView,
        aries_shards::dead_letters::DeadLetter,
        moves::MoveView, moves::StartMove, aries_shards::moves::MoveState, aries_shards::moves::verify::TableCheck,
        aries_tenants::locations::Location, aries_tenants::locations::LocationInput,
        aries_tenants::locations::model::AddressInput, aries_tenants::locations::Address,
        aries_tenants::FieldError, health::Readiness,
        aries_tenants::prescribers::Prescriber, aries_tenants::prescribers::PrescriberInput,
        aries_tenants::payers::Payer, aries_tenants::payers::PayerInput,
        aries_tenants::patients::Patient, aries_tenants::patients::PatientInput,
        aries_tenants::patients::PostalAddress, aries_tenants::patients::Policy,
        aries_tenants::patients::PolicyInput, aries_tenants::patients::policies::RerankInput,
        aries_tenants::price_lists::PriceList, aries_tenants::price_lists::PriceListInput,
        aries_tenants::price_lists::PriceListItem, aries_tenants::price_lists::PriceListItemInput,
        aries_tenants::price_lists::Prices, aries_tenants::price_lists::PriceField,
        aries_tenants::price_lists::FeeScheduleImportInput, aries_tenants::price_lists::FeeScheduleImport,
        aries_tenants::price_lists::AllowableChange, aries_tenants::price_lists::AdjustInput,
        aries_tenants::price_lists::Adjustment, aries_tenants::price_lists::PriceChange,
        aries_tenants::dme::terms::OrderType, aries_tenants::dme::terms::SaleRentType,
        aries_tenants::dme::terms::BillingFrequency, aries_tenants::dme::terms::BillItemOn,
        aries_tenants::inventory::Warehouse, aries_tenants::inventory::WarehouseInput, aries_tenants::inventory::Item,
        aries_tenants::inventory::ItemInput, aries_tenants::inventory::Serial, aries_tenants::inventory::SerialInput,
        aries_tenants::inventory::SerialHistoryEntry, aries_tenants::inventory::MovementInput,
        aries_tenants::inventory::StockLevel, aries_tenants::inventory::StockMovement, aries_tenants::dme::stock::StockCounters, aries_tenants::dme::serials::SerialEvent,
        aries_tenants::dme::serials::SerialState, aries_tenants::dme::serials::SerialStatus,
        oauth::TokenForm, oauth::RevokeForm, oauth::OAuthError, operators::LoginInput, operators::TotpEnrolment, operators::TotpConfirm, operators::NewOperator,
        crate::auth::sessions::Session, security::NewApiKey, security::CreatedApiKey, security::NewClient, security::CreatedClient,
        security::PasswordReset, aries_tenants::auth::users::NewUserInput, aries_tenants::auth::users::User,
        aries_tenants::auth::users::UserStatus, aries_tenants::auth::api_keys::ApiKey,
        aries_tenants::auth::clients::OauthClient, aries_tenants::auth::roles::CustomRoleInput,
        aries_tenants::audit::AuditEvent, aries_tenants::audit::Verification,
        aries_reference::store::HcpcsCode, aries_reference::store::FeeScheduleEntry,
        aries_tenants::orders::Order, aries_tenants::orders::OrderLine, aries_tenants::orders::OrderInput,
        aries_tenants::orders::LineInput, aries_tenants::orders::DeliverInput, aries_tenants::orders::DeliverLine,
        aries_tenants::orders::PickupInput, aries_tenants::orders::CancelInput,
        aries_tenants::dme::orders::OrderState, aries_tenants::dme::orders::LineState,
        aries_tenants::dme::orders::MissingInfo, aries_tenants::dme::orders::MissingScope,
        aries_tenants::dme::terms::SaleRentType, aries_tenants::dme::terms::BillingFrequency,
        aries_tenants::dme::terms::BillItemOn, aries_tenants::dme::terms::OrderType,
        orders::ApproveInput, orders::MissingList,
        reports::Catalogue, reports::PlatformReportView, reports::PlatformTotals,
        aries_tenants::reports::ReportSpec, aries_tenants::reports::ParamSpec, aries_tenants::reports::ParamKind,
        aries_tenants::reports::TenantFigures, aries_actors::platform_report::ShardOutcome,
        aries_actors::platform_report::ShardAnswer, aries_actors::platform_report::TenantReportRow,
        aries_tenants::inventory::ReorderPointsInput, aries_tenants::inventory::ReorderPointInput,
        billing::RunInput, aries_tenants::billing_runs::Worklist, aries_tenants::billing_runs::WorklistLine,
        aries_tenants::billing_runs::ExcludedLine, aries_tenants::billing_runs::DueCharge, aries_tenants::billing_runs::BillingRun,
        aries_tenants::invoices::Invoice, aries_tenants::invoices::InvoiceLine, aries_tenants::invoices::ArTransaction,
        aries_tenants::invoices::TransactionInput, aries_tenants::invoices::BatchInput, aries_tenants::invoices::BatchEntry,
        aries_tenants::invoices::Posted, aries_tenants::dme::ar::LineAr, aries_tenants::dme::ar::ArKind,
        aries_tenants::dme::ar::PayerSlot, aries_tenants::dme::ar::CurrentPayer, aries_tenants::dme::ar::SubmissionStatus,
        aries_tenants::webhooks::WebhookInput, aries_tenants::webhooks::WebhookEndpoint,
        aries_tenants::webhooks::WebhookWithSecret, aries_tenants::webhooks::WebhookDelivery,
        aries_tenants::webhooks::DeliveryStatus, aries_tenants::webhooks::WebhookAttempt,
        aries_tenants::webhooks::DeliveryDetail,
        aries_tenants::notifications::Channel, aries_tenants::notifications::ChannelInput,
        aries_tenants::notifications::EmailSettings, aries_tenants::notifications::EmailSettingsInput,
        aries_tenants::notifications::SmsSettings, aries_tenants::notifications::SmsSettingsInput,
        aries_tenants::notifications::ChannelKind, aries_tenants::notifications::TlsMode,
        aries_tenants::notifications::Rule, aries_tenants::notifications::RuleInput,
        aries_tenants::notifications::LogEntry, notifications::LogPage, aries_tenants::notifications::NotificationStatus,
        counters::DayCounters,
        aries_actors::ops::dashboard::Dashboard, aries_actors::ops::dashboard::Kpis,
        aries_actors::ops::dashboard::LiveEvent,
        shards::RegisterShard, shards::RebalanceInput, shards::ShardPatch, aries_shards::shard_jobs::ShardJob,
        aries_shards::shard_jobs::JobStep, aries_shards::shard_jobs::JobKind, aries_shards::shard_jobs::JobState,
        aries_shards::shard_jobs::StepState, aries_actors::shard_load::RebalancePlan,
        aries_actors::shard_load::PlannedMoveView, aries_actors::shard_load::ShardBalanceView,
        aries_shards::rebalance::ShardRole, ProblemDoc,
    )),
    modifiers(&BearerAuth, &CommonProblems, &UniqueOperationIds, &ParameterFormats),
    tags((name = "platform", description = "Operator API"), (name = "locations", description = "A tenant's branches"),
         (name = "prescribers", description = "Ordering physicians, NPs and PAs"),
         (name = "payers", description = "Insurers and programs"),
         (name = "patients", description = "Patients and their insurance policies ranked 1-4"),
         (name = "price-lists", description = "Price lists, their rows per item, fee-schedule import and percentage adjustment"),
         (name = "inventory", description = "Warehouses, items and serial-numbered equipment"),
         (name = "orders", description = "Orders and lines: intake, approval, delivery, pickup"),
         (name = "billing", description = "Billing worklist, billing runs, invoices and AR postings"),
         (name = "health", description = "Liveness and readiness"),
         (name = "oauth", description = "OAuth 2.0 token endpoint, revocation, JWKS"),
         (name = "security", description = "A tenant's users, API keys, OAuth clients and roles"),
         (name = "webhooks", description = "Webhook endpoints (signed event deliveries) and their delivery log"),
         (name = "reference", description = "Global reference data: HCPCS codes and fee schedules (read-only, filled by `aries reference sync`)"),
         (name = "reports", description = "Daily reports: catalogue, parameterised pages as JSON, or CSV exports"),
         (name = "notifications", description = "Email (SMTP) or SMS (HTTP gateway) notifications: the channel, rules per event type, and the log"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // The console's session cookie (operator and tenant-user logins).
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::sessions::COOKIE,
            ))),
        );
    }
}

/// The body of every error answer (RFC 9457 problem details, rendered by `ApiError` in
/// `crate::error`), referenced by each documented 4xx/5xx response of the document.
#[derive(utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)] // documentation only: the answer itself is built from the error table
pub struct ProblemDoc {
    /// `/problems/<code>`, a page describing the problem type.
    #[schema(rename = "type")]
    type_: String,
    /// The code's fixed summary.
    title: String,
    /// The HTTP status again.
    status: u16,
    /// The stable snake_case code clients switch on.
    code: String,
    /// What went wrong with this request.
    detail: String,
    /// The request id (absent only when rendered outside a request).
    instance: Option<String>,
    /// One entry per offending field, header or query parameter.
    errors: Option<Vec<aries_tenants::FieldError>>,
}

/// Completes every operation with the answers the shared machinery gives on any route, so the
/// document lists every status a client can meet (found by `make fuzz`, docs/FUZZING.md):
/// - a bearer-secured operation: 401 `unauthenticated`, 403 (`forbidden`, `tenant_suspended`,
///   `tenant_archived`, `mfa_required`), 429 `rate_limited`;
/// - a tenant route (`/v1/tenants/{tenant}/…`): 404 (an unknown tenant, or another tenant's),
///   503 (`shard_unavailable`, `tenant_moving`, `shard_read_only`, `service_unavailable`);
/// - an id in the path: 404 `not_found`, 422 `invalid_id`;
/// - a request body: 413 `payload_too_large`, 415 `unsupported_media_type`, 422 `malformed_json`
///   / `validation_failed`;
/// - query parameters: 422 `invalid_query`;
/// - header parameters (`If-Match`, `Idempotency-Key`): 400 `bad_request` when malformed.
///
/// A status the route's annotation already documents keeps its description. Every 4xx/5xx answer
/// then gets its content, `application/problem+json` with the `Problem` schema.
struct CommonProblems;

impl CommonProblems {
    fn complete(path: &str, op: &mut utoipa::openapi::path::Operation) {
        use utoipa::openapi::path::{Parameter, ParameterIn};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

        let params: Vec<&Parameter> = op
            .parameters
            .iter()
            .flatten()
            .filter_map(|p| match p {
                RefOr::T(p) => Some(p),
                RefOr::Ref(_) => None,
            })
            .collect();
        let id_in_path = params
            .iter()
            .any(|p| p.parameter_in == ParameterIn::Path && p.name != "tenant");
        let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
        let has_header = params.iter().any(|p| p.parameter_in == ParameterIn::Header);
        // The OAuth endpoints answer in RFC 6749's shape, documented on each of them.
        if op.tags.iter().flatten().any(|t| t == "oauth") {
            return;
        }
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let tenant_route = path.starts_with("/v1/tenants/{tenant}/");

        let mut add: Vec<(&str, &str)> = Vec::new();
        if secured {
            add.push(("401", "unauthenticated: no credential, or not a valid one"));
            add.push((
                "403",
                "forbidden (the roles lack the permission) / tenant_suspended / tenant_archived / mfa_required",
            ));
            add.push(("429", "rate_limited"));
        }
        if tenant_route {
            add.push(("404", "not_found: no such tenant, or not the credential's"));
            add.push((
                "503",
                "shard_unavailable / tenant_moving / shard_read_only / service_unavailable (Retry-After)",
            ));
        }
        if id_in_path {
            add.push(("404", "not_found"));
            add.push(("422", "invalid_id"));
        }
        if op.request_body.is_some() {
            add.push(("413", "payload_too_large"));
            add.push(("415", "unsupported_media_type"));
            add.push(("422", "malformed_json / validation_failed"));
        }
        if has_query {
            add.push(("422", "invalid_query"));
        }
        if has_header {
            add.push((
                "400",
                "bad_request: a malformed header (If-Match not an ETag, Idempotency-Key not 1 to 255 visible characters)",
            ));
        }
        for (status, description) in add {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| ResponseBuilder::new().description(description).into());
        }

        let problem = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build();
        for (status, response) in op.responses.responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let (true, RefOr::T(response)) = (is_error, response)
                && response.content.is_empty()
            {
                response.content.insert(
                    crate::error::PROBLEM_JSON.to_owned(),
                    problem.clone().into(),
                );
            }
        }
    }
}

/// Every operation of the document with its path and method.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (&String, &'static str, &mut utoipa::openapi::path::Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ]
        .into_iter()
        .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
        .map(move |(method, op)| (path, method, op))
    })
}

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, _, op) in operations(openapi) {
            Self::complete(path, op);
        }
    }
}

/// Makes every `operationId` unique, as OpenAPI requires. utoipa names an operation after its
/// handler, and many handlers share a name (`show`, `list`, `create`… in each route module):
/// tools that address operations by id (code generators, schemathesis's links) picked the wrong
/// one. A name used once stays; a shared one becomes `<name>_<the path's literal segments>`, the
/// `/v1` and `/v1/tenants/{tenant}` prefixes left out: `show` on
/// `/v1/tenants/{tenant}/locations/{location_id}` is `show_locations`, on
/// `/v1/platform/moves/{move_id}` `show_platform_moves` (a segment equal to the name is left out:
/// `logout` on `/v1/platform/sessions/logout` is `logout_platform_sessions`). Should that still
/// collide with another id, the other one is qualified the same way, and as a last resort the
/// method goes in front.
struct UniqueOperationIds;

impl UniqueOperationIds {
    fn qualified(name: &str, path: &str) -> String {
        let rest = path
            .strip_prefix("/v1/tenants/{tenant}/")
            .or_else(|| path.strip_prefix("/v1/"))
            .unwrap_or(path);
        let mut id = name.to_owned();
        for segment in rest.split('/') {
            let segment = segment.replace(['-', '.'], "_");
            if !segment.is_empty() && !segment.starts_with('{') && segment != name {
                id.push('_');
                id.push_str(&segment);
            }
        }
        id
    }
}

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut qualified = std::collections::HashSet::<(String, &'static str)>::new();
        for _round in 0..3 {
            let mut uses = std::collections::HashMap::<String, usize>::new();
            for (_, _, op) in operations(openapi) {
                if let Some(id) = &op.operation_id {
                    *uses.entry(id.clone()).or_default() += 1;
                }
            }
            if uses.values().all(|n| *n == 1) {
                return;
            }
            for (path, method, op) in operations(openapi) {
                let Some(id) = &op.operation_id else { continue };
                if uses.get(id).is_none_or(|n| *n == 1) {
                    continue;
                }
                op.operation_id = Some(if qualified.insert((path.clone(), method)) {
                    Self::qualified(id, path)
                } else {
                    format!("{method}_{id}")
                });
            }
        }
    }
}

/// The formats the shared extractors accept for parameters every route spells the same way, so
/// that a client (or `make fuzz`) can tell a valid value from one refused before the handler runs:
/// - `If-Match` (`extract::if_match`): `*` or an ETag this API sent, a quoted version like `"3"`;
/// - `Idempotency-Key` (`extract::idempotency_key`): 1 to 255 visible ASCII characters;
/// - `limit` in a query (`extract::PageQuery`, reports): an integer from 1 to 500.
struct ParameterFormats;

impl ParameterFormats {
    /// The schema of a parameter named `name` in `place`, when it is one of the shared ones.
    fn schema(
        place: &utoipa::openapi::path::ParameterIn,
        name: &str,
    ) -> Option<utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>> {
        use utoipa::openapi::path::ParameterIn;
        let pattern = match (place, name.to_ascii_lowercase().as_str()) {
            (ParameterIn::Header, "if-match") => r#"^(\*|"[0-9]{1,18}")$"#,
            (ParameterIn::Header, "idempotency-key") => "^[!-~]{1,255}$",
            (ParameterIn::Query, "limit") => "^([1-9][0-9]?|[1-4][0-9]{2}|500)$",
            _ => return None,
        };
        serde_json::from_value(serde_json::json!({"type": "string", "pattern": pattern})).ok()
    }
}

impl Modify for ParameterFormats {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (_, _, op) in operations(openapi) {
            for param in op.parameters.iter_mut().flatten() {
                if let utoipa::openapi::RefOr::T(p) = param
                    && let Some(schema) = Self::schema(&p.parameter_in, &p.name)
                {
                    p.schema = Some(schema);
                }
            }
        }
    }
}
