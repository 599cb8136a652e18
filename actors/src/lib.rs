//! # aries-actors
//!
//! The live part of the platform: one supervised actor per tenant and per shard, the directory that
//! finds (or wakes) a tenant's actor, and the adapters to Redis and RabbitMQ.
//!
//! ## Layout
//! - [`auth`]: credentials as the tenant actor resolves them into principals, with a short-lived cache.
//! - [`breaker`]: a lock-free circuit breaker per shard (closed → open → half-open).
//! - [`shard`]: `ShardActor` (owns a shard's pool, probes it, drives its breaker) and the registry of shards.
//! - [`tenant`]: `TenantActor` (a tenant's state; runs its operations in tenant transactions), with
//!   supervision: a handler that panics answers its caller with an error and restarts the actor.
//! - [`ops`]: the tenant operations (one type per command or query) the tenant actor executes.
//! - [`directory`]: single-flight activation and passivation of tenant actors over one arbiter per core.
//! - [`platform`]: operator actions that span the catalog and the shards (create a tenant, suspend…).
//! - [`platform_report`]: the operator's report over every shard, in parallel, with a deadline per shard.
//! - [`shard_load`]: tenants' loads (rows) per shard, measured without privilege, and the rebalance plan.
//! - [`shard_jobs`]: drain and rebalance jobs (tenant moves one at a time) as an instance runs them.
//! - [`links`]: Redis and RabbitMQ connections that heal themselves, with their health.
//! - [`cache`]: the two-tier (in-memory, Redis) response cache of tenant GETs and its invalidation.
//! - [`locks`]: Redis leases with fencing tokens (one billing run per tenant across instances).
//! - [`moves`]: online tenant moves as an instance runs them (lease, resume, cancel, live progress).
//! - [`events`]: the outbox relay, RabbitMQ topology, consumers with retries and dead letters.
//! - [`error`]: `TenantError`, what a tenant operation can fail with.

pub mod auth;
pub mod breaker;
pub mod cache;
pub mod directory;
pub mod error;
pub mod events;
pub mod links;
pub mod locks;
pub mod moves;
pub mod ops;
pub mod platform;
pub mod platform_report;
pub mod shard;
pub mod shard_jobs;
pub mod shard_load;
pub mod tenant;

pub use directory::{Directory, DirectorySettings};
pub use error::TenantError;
pub use platform::Platform;
pub use shard::{ShardHandle, ShardRegistry};
pub mod live;
