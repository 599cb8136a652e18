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
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
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
        oauth::TokenForm, operators::LoginInput, operators::TotpEnrolment, operators::TotpConfirm, operators::NewOperator,
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
        aries_tenants::notifications::LogEntry, aries_tenants::notifications::NotificationStatus,
        counters::DayCounters,
        aries_actors::ops::dashboard::Dashboard, aries_actors::ops::dashboard::Kpis,
        aries_actors::ops::dashboard::LiveEvent,
        shards::RegisterShard, shards::RebalanceInput, shards::ShardPatch, aries_shards::shard_jobs::ShardJob,
        aries_shards::shard_jobs::JobStep, aries_shards::shard_jobs::JobKind, aries_shards::shard_jobs::JobState,
        aries_shards::shard_jobs::StepState, aries_actors::shard_load::RebalancePlan,
        aries_actors::shard_load::PlannedMoveView, aries_actors::shard_load::ShardBalanceView,
        aries_shards::rebalance::ShardRole,
    )),
    modifiers(&BearerAuth),
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
    }
}
