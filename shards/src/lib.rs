//! # aries-shards
//!
//! The data plane's plumbing: the catalog (which tenants and shards exist and where each tenant
//! lives), the pure placement rule, connection options and pools for the catalog and each shard,
//! tenant transactions with row-level security, and the migrations runner.
//!
//! ## Layout
//! - [`settings`]: database settings (URLs, roles, pool sizes); secrets redacted in `Debug`.
//! - [`connect`]: connection options and pools for a DSN as the app role or the owner role.
//! - [`tenant_tx`]: opening a tenant transaction (`set_config('aries.tenant_id', …, true)`).
//! - [`migrate`]: the catalog and shard migrators (embedded from `migrations/`).
//! - [`operators`]: operator accounts (password, TOTP, recovery codes, roles).
//! - [`placement`]: choosing a shard for a new tenant (pure, unit-tested).
//! - [`rebalance`]: planning tenant moves that even out the shards' load (pure, unit-tested).
//! - [`lifecycle`]: a shard's status changes (register, activate, read-only, drain) and their rules.
//! - [`shard_jobs`]: drain and rebalance jobs as the catalog records them.
//! - [`catalog`]: SQL over the catalog: tenants, shards, placements.
//! - [`moves`]: online tenant moves between shards (copy, catch-up, freeze, verify, flip).
//! - [`dead_letters`]: messages consumers gave up on, for the operator to list and replay.
//! - [`signing_keys`]: the stored keys that sign access tokens.
//! - [`provision`]: the shard-side half of creating a tenant.

pub mod catalog;
pub mod connect;
pub mod dead_letters;
pub mod lifecycle;
pub mod migrate;
pub mod moves;
pub mod operators;
pub mod placement;
pub mod provision;
pub mod rebalance;
pub mod settings;
pub mod shard_jobs;
pub mod signing_keys;
pub mod tenant_tx;

pub use aries_tenants::ids::ShardId;
pub use catalog::{Catalog, CatalogError, ShardRecord, ShardStatus, TenantRecord};
pub use settings::DatabaseSettings;
pub use tenant_tx::{EnterError, Fence, begin_tenant_tx, enter_tenant_tx};
