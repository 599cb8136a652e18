//! # aries-reference
//!
//! The SODA service (DOMAIN.md §1): global reference data — the HCPCS Level II catalogue and
//! fee schedules — kept in the catalog database and filled by connectors that speak public
//! open-data APIs. It runs from the command line (`aries reference sync …`) and is **never on a
//! request's path**: the API only reads what a sync stored.
//!
//! ## Layout
//! - [`source`]: the [`ReferenceSource`] trait (one page of flat records for a query), paging,
//!   the shared HTTP client with its timeout and bounded retries with backoff on 429/5xx.
//! - [`socrata`]: Socrata SODA 2.x (`$select`, `$where`, `$order=:id`, `$limit`/`$offset`,
//!   `X-App-Token`, `{"code","message"}` error bodies).
//! - [`cms`]: the data.cms.gov data API (`size`/`offset`, `filter[Col]=value`).
//! - [`mapping`]: which column holds which field, per source (one realistic shape each; see the
//!   table there), and the validation that rejects a bad record without stopping the run.
//! - [`store`]: catalog SQL — idempotent upserts, the `reference_sync` run rows, and the reads
//!   behind `GET /v1/tenants/{tenant}/reference/…`.
//! - [`sync`]: one run, page by page, each page's rows and counts in one transaction.
//!
//! Writes use the owner role (the command line); the application role has `select` only on the
//! reference tables (migration `20261202000001_reference.sql`).

pub mod cms;
pub mod mapping;
pub mod socrata;
pub mod source;
pub mod store;
pub mod sync;

pub use cms::CmsDataApi;
pub use mapping::{DatasetKind, Mapping};
pub use socrata::Socrata;
pub use source::{HttpFetcher, PageSpec, Query, Record, ReferenceSource, RetryPolicy, SourceError};
pub use sync::{SyncError, SyncPlan, SyncReport};
