//! # aries-tenants
//!
//! The tenant model and the tenant-owned DME domain: plain types, pure rules and the SQL that stores
//! them. Nothing here knows about actors or HTTP; SQL functions take a `&mut PgConnection` (always a
//! tenant transaction opened by `aries-shards`, so row-level security is in force) and never open a
//! pool of their own.
//!
//! ## Layout
//! - [`audit`]: the append-only, hash-chained audit trail (tenants' and the operator's).
//! - [`ids`]: typed ids (UUIDv7) so a location id can never be passed where a tenant id is expected.
//! - [`tenant`]: the tenant as the platform sees it: slug, status, plan.
//! - [`validation`]: field-level validation errors shared by every input type.
//! - [`npi`]: the National Provider Identifier check digit (Luhn with the 80840 prefix).
//! - [`page`]: cursor pagination (opaque cursors, bounded limits).
//! - [`inventory`]: warehouses, items and serials (status = fold of the serial's events).
//! - [`locations`]: the first tenant resource: branches (input parsing, rules, SQL).
//! - [`idempotency`]: Idempotency-Key handling for tenant writes, in the write's own transaction.
//! - [`payers`]: insurers and programs the provider bills.
//! - [`patients`]: patients and their insurance policies ranked 1–4.
//! - [`prescribers`]: ordering physicians (NPI validated), with their SQL.
//! - [`price_lists`]: price lists and their rows per item; fee-schedule import, percentage adjustment.
//! - [`money`]: amounts and percentages (decimal strings, two places, half-up), parsed the same
//!   way by every resource.
//! - [`orders`]: orders and lines from intake through approval, delivery and pickup.
//! - [`reports`]: the daily reports (catalogue, parameters, pages, CSV) and the platform report's per-tenant figures.
//! - [`invoices`]: invoices (claims) and their lines' AR transactions; balances derived by folding.
//! - [`billing_runs`]: the billing worklist and idempotent billing runs (fenced, once per line and month).
//! - [`notifications`]: the tenant's notification channel (SMTP or SMS gateway), rules and log;
//!   message rendering per event.
//! - [`outbox`]: the transactional outbox row written with every change.
//! - [`dme`]: the DME domain's rules (codes, fee schedules, serials), pure and unit-tested.
//! - [`webhooks`]: webhook endpoints, their delivery log, and the `Aries-Signature` scheme.
//! - [`error`]: the domain error enum; `aries-http` maps it to problem+json.

#[macro_use]
mod macros;

pub mod audit;
pub mod auth;
pub mod billing_runs;
pub mod dme;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod inventory;
pub mod invoices;
pub mod locations;
pub mod money;
pub mod notifications;
pub mod npi;
pub mod orders;
pub mod outbox;
pub mod page;
pub mod patients;
pub mod payers;
pub mod prescribers;
pub mod price_lists;
pub mod reports;
pub mod tenant;
pub mod validation;
pub mod webhooks;

pub use error::DomainError;
pub use ids::{LocationId, TenantId};
pub use tenant::{Plan, TenantSlug, TenantStatus};
pub use validation::{FieldError, ValidationErrors};
