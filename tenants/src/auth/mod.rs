//! Who may do what in a tenant: permissions and roles (pure), secrets and password hashing, and the
//! stores for users, API keys, OAuth clients and refresh tokens.
//!
//! - [`permissions`]: resources × actions, the built-in roles, custom roles (pure, unit-tested).
//! - [`secrets`]: random credentials, their SHA-256, Argon2id password hashes.
//! - [`totp`]: RFC 6238 codes, enrolment URIs, recovery codes.
//! - [`users`]: tenant users (create, list, disable, reset password, login lookup).
//! - [`api_keys`]: per-tenant API keys (shown once, stored hashed).
//! - [`clients`]: OAuth clients for the client-credentials grant.
//! - [`roles`]: custom roles per tenant.
//! - [`refresh`]: refresh tokens, rotated on use, families revoked on reuse.

pub mod api_keys;
pub mod clients;
pub mod permissions;
pub mod refresh;
pub mod roles;
pub mod secrets;
pub mod totp;
pub mod users;

pub use permissions::{Action, Permission, PermissionSet, Resource, RoleName};
