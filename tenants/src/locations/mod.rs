//! Locations (branches) of a DME provider: the first tenant-owned resource, and the model for the
//! ones that follow. A location has a short code unique within its tenant, an address, and the
//! billing identifiers a claim needs (NPI, place-of-service type).
//!
//! - [`model`]: the input shape, its parsing into validated fields, and the stored resource.
//! - [`store`]: the SQL, each operation writing its outbox event in the caller's transaction.

pub mod model;
pub mod store;

pub use model::{Address, Location, LocationFields, LocationInput};
