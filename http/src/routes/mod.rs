//! Every route, mounted in one place. Each resource module exports its handlers; `configure`
//! wires them, and [`crate::openapi::ApiDoc`] lists the same handlers for the OpenAPI document.

pub mod billing;
pub mod common;
pub mod console;
pub mod counters;
pub mod dead_letters;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod health;
pub mod inventory;
pub mod live;
pub mod locations;
pub mod meta;
pub mod moves;
pub mod moves_live;
pub mod notifications;
pub mod oauth;
pub mod operators;
pub mod orders;
pub mod patients;
pub mod payers;
pub mod platform;
pub mod prescribers;
pub mod price_lists;
pub mod reference;
pub mod reports;
pub mod security;
pub mod shards;
pub mod tenant_sessions;
pub mod webhooks;

use crate::error::{ApiError, ErrorCode};
use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1/platform")
            .service(
                resource("/tenants")
                    .route(web::post().to(platform::create_tenant))
                    .route(web::get().to(platform::list_tenants)),
            )
            .service(resource("/tenants/{tenant}").route(web::get().to(platform::show_tenant)))
            .service(
                resource("/tenants/{tenant}/suspend")
                    .route(web::post().to(platform::suspend_tenant)),
            )
            .service(
                resource("/tenants/{tenant}/resume").route(web::post().to(platform::resume_tenant)),
            )
            .service(
                resource("/tenants/{tenant}/archive")
                    .route(web::post().to(platform::archive_tenant)),
            )
            .service(
                resource("/tenants/{tenant}/api-keys")
                    .route(web::post().to(platform::bootstrap_api_key)),
            )
            .service(
                resource("/signing-keys/rotate")
                    .route(web::post().to(platform::rotate_signing_key)),
            )
            .service(
                resource("/sessions")
                    .route(web::post().to(operators::login))
                    .route(web::get().to(operators::list_sessions)),
            )
            .service(resource("/sessions/logout").route(web::post().to(operators::logout)))
            .service(
                resource("/sessions/{session_id}")
                    .route(web::delete().to(operators::revoke_session)),
            )
            .service(resource("/mfa/totp").route(web::post().to(operators::enrol_totp)))
            .service(resource("/mfa/totp/confirm").route(web::post().to(operators::confirm_totp)))
            .service(
                resource("/operators")
                    .route(web::post().to(operators::create_operator))
                    .route(web::get().to(operators::list_operators)),
            )
            .service(resource("/audit").route(web::get().to(platform::list_audit)))
            .service(resource("/audit/verify").route(web::get().to(platform::verify_audit)))
            .service(
                resource("/shards")
                    .route(web::get().to(platform::list_shards))
                    .route(web::post().to(shards::register)),
            )
            .service(
                resource("/shards/{shard}")
                    .route(web::get().to(shards::show))
                    .route(web::patch().to(shards::update)),
            )
            .service(resource("/shards/{shard}/migrate").route(web::post().to(shards::migrate)))
            .service(resource("/shards/{shard}/activate").route(web::post().to(shards::activate)))
            .service(resource("/shards/{shard}/read-only").route(web::post().to(shards::read_only)))
            .service(resource("/shards/{shard}/drain").route(web::post().to(shards::drain)))
            .service(
                resource("/rebalance")
                    .route(web::get().to(shards::plan))
                    .route(web::post().to(shards::start)),
            )
            .service(resource("/shard-jobs").route(web::get().to(shards::list_jobs)))
            .service(resource("/shard-jobs/{job_id}").route(web::get().to(shards::show_job)))
            .service(
                resource("/shard-jobs/{job_id}/cancel").route(web::post().to(shards::cancel_job)),
            )
            .service(
                resource("/tenants/{tenant}/moves")
                    .route(web::post().to(moves::start))
                    .route(web::get().to(moves::list_for_tenant)),
            )
            .service(resource("/moves").route(web::get().to(moves::list)))
            .service(resource("/moves/{move_id}").route(web::get().to(moves::show)))
            .service(resource("/moves/{move_id}/resume").route(web::post().to(moves::resume)))
            .service(resource("/moves/{move_id}/cancel").route(web::post().to(moves::cancel)))
            .service(resource("/live").route(web::get().to(moves_live::live)))
            .service(resource("/dead-letters").route(web::get().to(dead_letters::list)))
            .service(
                resource("/dead-letters/{dead_letter_id}").route(web::get().to(dead_letters::show)),
            )
            .service(
                resource("/dead-letters/{dead_letter_id}/replay")
                    .route(web::post().to(dead_letters::replay_one)),
            )
            .service(resource("/reports/tenants").route(web::get().to(reports::platform_tenants)))
            .configure(fault_routes),
    )
    .service(
        web::scope("/v1/tenants/{tenant}")
            .service(
                resource("/locations")
                    .route(web::post().to(locations::create))
                    .route(web::get().to(locations::list)),
            )
            .service(
                resource("/locations/{location_id}")
                    .route(web::get().to(locations::show))
                    .route(web::patch().to(locations::update))
                    .route(web::delete().to(locations::delete)),
            )
            .service(
                resource("/payers")
                    .route(web::post().to(payers::create))
                    .route(web::get().to(payers::list)),
            )
            .service(
                resource("/payers/{payer_id}")
                    .route(web::get().to(payers::show))
                    .route(web::patch().to(payers::update)),
            )
            .service(
                resource("/patients")
                    .route(web::post().to(patients::create))
                    .route(web::get().to(patients::list)),
            )
            .service(
                resource("/patients/{patient_id}")
                    .route(web::get().to(patients::show))
                    .route(web::patch().to(patients::update)),
            )
            .service(
                resource("/patients/{patient_id}/policies")
                    .route(web::post().to(patients::add_policy))
                    .route(web::get().to(patients::list_policies)),
            )
            .service(
                resource("/patients/{patient_id}/policies/rank")
                    .route(web::post().to(patients::rerank)),
            )
            .service(
                resource("/patients/{patient_id}/policies/{policy_id}")
                    .route(web::get().to(patients::show_policy))
                    .route(web::patch().to(patients::update_policy))
                    .route(web::delete().to(patients::remove_policy)),
            )
            .service(
                resource("/price-lists")
                    .route(web::post().to(price_lists::create))
                    .route(web::get().to(price_lists::list)),
            )
            .service(
                resource("/price-lists/{price_list_id}")
                    .route(web::get().to(price_lists::show))
                    .route(web::patch().to(price_lists::update)),
            )
            .service(
                resource("/price-lists/{price_list_id}/items")
                    .route(web::get().to(price_lists::list_items)),
            )
            .service(
                resource("/price-lists/{price_list_id}/items/{item_id}")
                    .route(web::get().to(price_lists::show_item))
                    .route(web::put().to(price_lists::put_item))
                    .route(web::delete().to(price_lists::delete_item)),
            )
            .service(
                resource("/price-lists/{price_list_id}/fee-schedule-import")
                    .route(web::post().to(price_lists::import_fee_schedule)),
            )
            .service(
                resource("/price-lists/{price_list_id}/adjust")
                    .route(web::post().to(price_lists::adjust)),
            )
            .service(
                resource("/prescribers")
                    .route(web::post().to(prescribers::create))
                    .route(web::get().to(prescribers::list)),
            )
            .service(
                resource("/prescribers/{prescriber_id}")
                    .route(web::get().to(prescribers::show))
                    .route(web::patch().to(prescribers::update)),
            )
            .service(
                resource("/warehouses")
                    .route(web::post().to(inventory::create_warehouse))
                    .route(web::get().to(inventory::list_warehouses)),
            )
            .service(
                resource("/warehouses/{warehouse_id}")
                    .route(web::get().to(inventory::show_warehouse))
                    .route(web::patch().to(inventory::update_warehouse)),
            )
            .service(
                resource("/items")
                    .route(web::post().to(inventory::create_item))
                    .route(web::get().to(inventory::list_items)),
            )
            .service(
                resource("/items/{item_id}")
                    .route(web::get().to(inventory::show_item))
                    .route(web::patch().to(inventory::update_item)),
            )
            .service(
                resource("/orders")
                    .route(web::post().to(orders::create))
                    .route(web::get().to(orders::list)),
            )
            .service(
                resource("/orders/{order_id}")
                    .route(web::get().to(orders::show))
                    .route(web::patch().to(orders::update)),
            )
            .service(
                resource("/orders/{order_id}/missing-information")
                    .route(web::get().to(orders::missing_information)),
            )
            .service(resource("/orders/{order_id}/approve").route(web::post().to(orders::approve)))
            .service(resource("/orders/{order_id}/cancel").route(web::post().to(orders::cancel)))
            .service(resource("/orders/{order_id}/deliver").route(web::post().to(orders::deliver)))
            .service(resource("/orders/{order_id}/lines").route(web::post().to(orders::add_line)))
            .service(
                resource("/orders/{order_id}/lines/{line_id}")
                    .route(web::get().to(orders::show_line))
                    .route(web::patch().to(orders::update_line))
                    .route(web::delete().to(orders::delete_line)),
            )
            .service(
                resource("/orders/{order_id}/lines/{line_id}/pickup")
                    .route(web::post().to(orders::pickup)),
            )
            .service(resource("/billing/worklist").route(web::get().to(billing::worklist)))
            .service(
                resource("/billing/runs")
                    .route(web::post().to(billing::start_run))
                    .route(web::get().to(billing::list_runs)),
            )
            .service(resource("/billing/runs/{run_id}").route(web::get().to(billing::show_run)))
            .service(resource("/invoices").route(web::get().to(billing::list_invoices)))
            .service(resource("/invoices/{invoice_id}").route(web::get().to(billing::show_invoice)))
            .service(
                resource("/invoice-lines/{invoice_line_id}/transactions")
                    .route(web::post().to(billing::post_transaction))
                    .route(web::get().to(billing::list_transactions)),
            )
            .service(resource("/ar/remittances").route(web::post().to(billing::post_remittance)))
            .service(
                resource("/serials")
                    .route(web::post().to(inventory::receive_serial))
                    .route(web::get().to(inventory::list_serials)),
            )
            .service(
                resource("/serials/{serial_id}")
                    .route(web::get().to(inventory::show_serial))
                    .route(web::patch().to(inventory::update_serial)),
            )
            .service(
                resource("/serials/{serial_id}/events")
                    .route(web::post().to(inventory::record_event)),
            )
            .service(
                resource("/serials/{serial_id}/history")
                    .route(web::get().to(inventory::serial_history)),
            )
            .service(resource("/stock").route(web::get().to(inventory::stock)))
            .service(
                resource("/stock/movements")
                    .route(web::post().to(inventory::record_movement))
                    .route(web::get().to(inventory::stock_movements)),
            )
            .service(
                resource("/stock/reorder-points")
                    .route(web::put().to(inventory::set_reorder_points)),
            )
            .service(resource("/reports").route(web::get().to(reports::catalogue)))
            .service(resource("/reports/{report}").route(web::get().to(reports::run)))
            .service(
                resource("/notifications/channel")
                    .route(web::get().to(notifications::show_channel))
                    .route(web::put().to(notifications::put_channel)),
            )
            .service(
                resource("/notifications/rules")
                    .route(web::post().to(notifications::create_rule))
                    .route(web::get().to(notifications::list_rules)),
            )
            .service(
                resource("/notifications/rules/{rule_id}")
                    .route(web::get().to(notifications::show_rule))
                    .route(web::patch().to(notifications::update_rule))
                    .route(web::delete().to(notifications::delete_rule)),
            )
            .service(resource("/notifications/log").route(web::get().to(notifications::list_log)))
            .service(resource("/counters").route(web::get().to(counters::show)))
            .service(resource("/dashboard").route(web::get().to(live::dashboard)))
            .service(resource("/live").route(web::get().to(live::live)))
            .service(resource("/oauth/token").route(web::post().to(oauth::token)))
            .service(resource("/oauth/revoke").route(web::post().to(oauth::revoke)))
            .service(
                resource("/users")
                    .route(web::post().to(security::create_user))
                    .route(web::get().to(security::list_users)),
            )
            .service(resource("/users/{user_id}").route(web::get().to(security::show_user)))
            .service(
                resource("/users/{user_id}/disable").route(web::post().to(security::disable_user)),
            )
            .service(
                resource("/users/{user_id}/enable").route(web::post().to(security::enable_user)),
            )
            .service(
                resource("/users/{user_id}/password")
                    .route(web::post().to(security::reset_password)),
            )
            .service(
                resource("/api-keys")
                    .route(web::post().to(security::create_api_key))
                    .route(web::get().to(security::list_api_keys)),
            )
            .service(
                resource("/api-keys/{api_key_id}")
                    .route(web::delete().to(security::revoke_api_key)),
            )
            .service(
                resource("/oauth-clients")
                    .route(web::post().to(security::create_client))
                    .route(web::get().to(security::list_clients)),
            )
            .service(
                resource("/oauth-clients/{client_id}")
                    .route(web::delete().to(security::revoke_client)),
            )
            .service(
                resource("/roles")
                    .route(web::post().to(security::create_role))
                    .route(web::get().to(security::list_roles)),
            )
            .service(resource("/roles/{role}").route(web::delete().to(security::delete_role)))
            .service(
                resource("/sessions")
                    .route(web::post().to(tenant_sessions::login))
                    .route(web::get().to(tenant_sessions::list)),
            )
            .service(resource("/sessions/logout").route(web::post().to(tenant_sessions::logout)))
            .service(
                resource("/sessions/{session_id}").route(web::delete().to(tenant_sessions::revoke)),
            )
            .service(resource("/mfa/totp").route(web::post().to(tenant_sessions::enrol)))
            .service(resource("/mfa/totp/confirm").route(web::post().to(tenant_sessions::confirm)))
            .service(resource("/audit").route(web::get().to(security::list_audit)))
            .service(resource("/audit/verify").route(web::get().to(security::verify_audit)))
            .service(
                resource("/webhooks")
                    .route(web::post().to(webhooks::create))
                    .route(web::get().to(webhooks::list)),
            )
            .service(
                resource("/webhooks/{endpoint_id}")
                    .route(web::get().to(webhooks::show))
                    .route(web::patch().to(webhooks::update))
                    .route(web::delete().to(webhooks::delete)),
            )
            .service(
                resource("/webhooks/{endpoint_id}/rotate-secret")
                    .route(web::post().to(webhooks::rotate_secret)),
            )
            .service(
                resource("/webhooks/{endpoint_id}/deliveries")
                    .route(web::get().to(webhooks::list_deliveries)),
            )
            .service(
                resource("/webhooks/{endpoint_id}/deliveries/{event_id}")
                    .route(web::get().to(webhooks::show_delivery)),
            )
            .service(resource("/reference/hcpcs").route(web::get().to(reference::list_hcpcs)))
            .service(
                resource("/reference/hcpcs/{code}").route(web::get().to(reference::show_hcpcs)),
            )
            .service(
                resource("/reference/fee-schedule").route(web::get().to(reference::list_fees)),
            ),
    )
    .service(resource("/.well-known/jwks.json").route(web::get().to(oauth::jwks)))
    .service(web::resource("/console").route(web::get().to(console::redirect)))
    .service(web::resource("/console/").route(web::get().to(console::asset)))
    .service(web::resource("/console/{file}").route(web::get().to(console::asset)))
    .service(resource("/health/live").route(web::get().to(health::live)))
    .service(resource("/health/ready").route(web::get().to(health::ready)))
    .service(resource("/metrics").route(web::get().to(meta::metrics)))
    .service(resource("/problems/{code}").route(web::get().to(meta::problem)));
}

/// The operator's fault-injection routes (`make chaos`); only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
fn fault_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/faults/tenants/{tenant}/panic")
            .route(web::post().to(faults::panic_tenant_actor)),
    );
}

/// Without the `fault-injection` feature there is no fault route (the path is a 404).
#[cfg(not(feature = "fault-injection"))]
fn fault_routes(_: &mut web::ServiceConfig) {}

/// A resource whose unsupported methods answer 405 problem+json (with `Allow` left to the client
/// to discover from the OpenAPI document).
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this resource does not support the method",
        )
    }))
}
