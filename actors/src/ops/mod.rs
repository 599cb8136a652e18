//! Tenant operations. Each is a plain struct (the command or query) implementing [`TenantOp`]; the
//! tenant actor runs any of them the same way: check the tenant serves and its shard is up, open a
//! tenant transaction, resolve the caller and check the operation's permission, run, commit, report
//! the outcome to the shard's breaker.
//!
//! - [`counters`]: the permission check in front of the live counters (kept in Redis).
//! - [`billing`]: the billing worklist, billing-run batches, invoices and AR postings.
//! - [`inventory`]: warehouses, items, serials and their events.
//! - [`locations`]: the location resource.
//! - [`notifications`]: the notification channel, rules and log; the consumer's internal operations.
//! - [`patients`]: patients and their ranked insurance policies.
//! - [`orders`]: orders and lines: intake, approval, delivery, pickup, cancellation.
//! - [`payers`]: insurers and programs.
//! - [`prescribers`]: ordering physicians.
//! - [`reference`]: the credential check in front of the global reference data.
//! - [`price_lists`]: price lists, their rows, fee-schedule import and percentage adjustment.
//! - [`reports`]: one page of a tenant report.
//! - [`security`]: token grants, users, API keys, OAuth clients and custom roles.
//! - [`webhooks`]: webhook endpoints, their delivery log, and the dispatcher's claim and record.

/// Declares a tenant operation: a struct whose fields are the request, its output, its name (for
/// traces and metrics), who may run it, and the body that runs in the tenant transaction with the
/// struct as `op`, the connection and the [`OpContext`] bound to the names given.
macro_rules! tenant_op {
    (
        $(#[$doc:meta])*
        $name:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }
        -> $out:ty, $op_name:literal, $access:expr,
        |$op:ident, $conn:ident, $ctx:ident| $body:block
    ) => {
        $(#[$doc])*
        pub struct $name { $($(#[$fdoc])* pub $field: $fty),* }

        impl $crate::ops::TenantOp for $name {
            type Output = $out;
            const NAME: &'static str = $op_name;
            const ACCESS: $crate::ops::Access = $access;
            fn run<'c>(
                self,
                $conn: &'c mut sqlx::PgConnection,
                $ctx: &'c $crate::ops::OpContext,
            ) -> futures::future::BoxFuture<'c, Result<$out, aries_tenants::DomainError>> {
                let $op = self;
                Box::pin(async move $body)
            }
        }
    };
}

pub mod billing;
pub mod counters;
pub mod dashboard;
pub mod inventory;
pub mod locations;
pub mod notifications;
pub mod orders;
pub mod patients;
pub mod payers;
pub mod prescribers;
pub mod price_lists;
pub mod reference;
pub mod reports;
pub mod security;
pub mod webhooks;

pub use locations::{CreateLocation, DeleteLocation, GetLocation, ListLocations, PatchLocation};

use crate::auth::{CredentialCache, Principal, RequestMeta};
use aries_tenants::DomainError;
use aries_tenants::TenantId;
use aries_tenants::audit::{self, NewAuditEvent, Trail};
use aries_tenants::auth::Permission;
use aries_tenants::idempotency::{self, Claim, IdempotencyKey};
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use std::sync::Arc;

/// Who may run an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A resolved principal holding this permission.
    Requires(Permission),
    /// Anyone: the operation authenticates by itself (the token endpoint's grants).
    Anonymous,
    /// Any resolved principal of the tenant, whatever its roles (global reference data).
    Authenticated,
    /// The platform itself, for the event consumers (webhook claims and logs, notification logs):
    /// no caller, never routed. Such operations write only their own bookkeeping, never what the
    /// cached routes serve, so they do not invalidate the response cache.
    Internal,
}

/// What an operation knows of its call besides its own input.
pub struct OpContext {
    /// The tenant whose transaction this is.
    pub tenant: TenantId,
    /// The caller; always present for `Access::Requires` operations.
    pub principal: Option<Principal>,
    /// The actor's credential cache, for operations that change credentials to clear.
    pub credentials: Arc<CredentialCache>,
    /// Request id and client address, recorded with audited changes.
    pub meta: RequestMeta,
}

impl OpContext {
    /// The caller, for operations that require one (the actor guarantees it for `Requires`).
    pub fn principal(&self) -> Result<&Principal, DomainError> {
        self.principal
            .as_ref()
            .ok_or(DomainError::Unauthenticated("no credential"))
    }

    /// Appends to the tenant's audit trail, in the operation's transaction, as the caller
    /// (`anonymous` when there is none, as for a failed login).
    pub async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: serde_json::Value,
    ) -> Result<(), DomainError> {
        let actor = self
            .principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), |p| p.id.to_string());
        self.audit_as(conn, actor, action, target_type, target_id, details)
            .await
    }

    /// Like [`Self::audit`] with an explicit actor (a login names the user it authenticated).
    pub async fn audit_as(
        &self,
        conn: &mut PgConnection,
        actor: String,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: serde_json::Value,
    ) -> Result<(), DomainError> {
        let event = NewAuditEvent {
            actor,
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_string(),
            request_id: self.meta.request_id.clone(),
            source_ip: self.meta.source_ip.clone(),
            details,
            tenant: None,
        };
        audit::append(conn, Trail::Tenant(self.tenant), &event)
            .await
            .map(|_| ())
    }
}

/// A unit of tenant work that runs in one tenant transaction.
pub trait TenantOp: Send + 'static {
    type Output: Send + 'static;
    /// Shown in traces and metrics.
    const NAME: &'static str;
    /// Checked by the actor before `run`.
    const ACCESS: Access;
    /// Whether the operation leaves the tenant's data as it was, so the response cache need not
    /// be invalidated after it: by default, operations that need only a `view` permission. Every
    /// other operation that commits counts as a write.
    const READ_ONLY: bool = matches!(
        Self::ACCESS,
        Access::Requires(Permission {
            action: aries_tenants::auth::Action::View,
            ..
        }) | Access::Internal
    );
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>>;
}

/// Any create run under an `Idempotency-Key`: the key is taken, the inner operation runs, and its
/// output is stored, all in one tenant transaction; a retry with the same key and request gets the
/// stored output back (`replayed`), one with another request `idempotency_key_reused`.
pub struct Idempotent<O> {
    /// The client's key.
    pub key: IdempotencyKey,
    /// SHA-256 of method, path and body.
    pub request_sha256: [u8; 32],
    /// The create it guards.
    pub op: O,
}

/// The output of an [`Idempotent`] operation.
#[derive(Debug)]
pub struct Replayable<T> {
    /// The inner operation's output (fresh or stored).
    pub value: T,
    /// True when this is the stored answer to an earlier request.
    pub replayed: bool,
}

impl<O> TenantOp for Idempotent<O>
where
    O: TenantOp,
    O::Output: Serialize + DeserializeOwned,
{
    type Output = Replayable<O::Output>;
    const NAME: &'static str = O::NAME;
    const ACCESS: Access = O::ACCESS;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let corrupt =
                |e: serde_json::Error| DomainError::Database(sqlx::Error::Decode(Box::new(e)));
            match idempotency::claim(conn, ctx.tenant, &self.key, &self.request_sha256).await? {
                Claim::Replay(body) => Ok(Replayable {
                    value: serde_json::from_value(body).map_err(corrupt)?,
                    replayed: true,
                }),
                Claim::Fresh => {
                    let value = self.op.run(conn, ctx).await?;
                    let body = serde_json::to_value(&value).map_err(corrupt)?;
                    idempotency::complete(conn, ctx.tenant, &self.key, &body).await?;
                    Ok(Replayable {
                        value,
                        replayed: false,
                    })
                }
            }
        })
    }
}

/// Test-only: an operation that fails the way a bug would, to exercise supervision.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use super::*;

    /// How the operation misbehaves.
    #[derive(Debug, Clone, Copy)]
    pub enum Fault {
        /// Panics inside the operation, with a tenant transaction open.
        Panic,
        /// Runs SQL that fails (not a connection failure; the breaker must not open).
        SqlError,
    }

    /// Runs the fault.
    pub struct InjectFault(pub Fault);

    impl TenantOp for InjectFault {
        type Output = ();
        const NAME: &'static str = "fault.inject";
        const ACCESS: Access = Access::Anonymous;
        #[allow(clippy::panic)]
        fn run<'c>(
            self,
            conn: &'c mut PgConnection,
            _: &'c OpContext,
        ) -> BoxFuture<'c, Result<(), DomainError>> {
            Box::pin(async move {
                match self.0 {
                    Fault::Panic => panic!("injected fault"),
                    Fault::SqlError => {
                        sqlx::query("select * from no_such_table")
                            .execute(conn)
                            .await?;
                        Ok(())
                    }
                }
            })
        }
    }
}
