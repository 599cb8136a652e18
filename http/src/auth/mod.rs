//! Authentication at the HTTP edge.
//!
//! - [`keys`]: the key ring that signs and verifies access tokens (Ed25519 JWTs), with rotation and
//!   the JWKS document.
//! - [`sessions`]: console sessions in Redis (cookie, sliding expiry, list, revoke).
//! - [`operator`]: the operator's credential (configured token, or a console session with TOTP) and roles.
//! - [`caller`]: the extractor that turns `Authorization: Bearer …` on a tenant URL into a
//!   credential the tenant actor resolves (or a 401/404).

pub mod caller;
pub mod keys;
pub mod operator;
pub mod sessions;
