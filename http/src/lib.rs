//! # aries-http
//!
//! The front of the platform: actix-web routes, problem+json errors, request validation, OpenAPI,
//! metrics, health, configuration, start-up and the `aries` command line. It writes no SQL: every
//! tenant call goes to the tenant's actor through the [`aries_actors::Directory`], every operator
//! call to [`aries_actors::Platform`].
//!
//! ## Layout
//! - [`auth`]: access-token keys (JWT, JWKS, rotation) and the tenant-caller extractor.
//! - [`settings`]: layered configuration (defaults → file → `ARIES__…`), secrets redacted.
//! - [`startup`]: `Core` (catalog, shard actors, directory) and `Application` (the server).
//! - [`cli`]: `aries serve | migrate | tenants … | shards …`.
//! - [`error`]: the one table of error codes and the problem+json boundary error.
//! - [`extract`]: JSON bodies, path ids, paging, If-Match, the operator credential.
//! - [`middleware`]: request id, tracing span, metrics, access log, problem+json for actix's own errors.
//! - [`ratelimit`]: GCRA rate limits in Redis per credential and per tenant plan.
//! - [`routes`]: one module per resource, mounted in `routes::configure`.
//! - [`openapi`]: the OpenAPI 3.1 document and the offline docs page.
//! - [`telemetry`]: JSON logs and the Prometheus recorder.

pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
