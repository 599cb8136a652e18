//! Tenant operations. Each is a plain struct (the command or query) implementing [`TenantOp`]; the
//! tenant actor runs any of them the same way: check the tenant serves and its shard is up, open a
//! tenant transaction, run, commit, report the outcome to the shard's breaker.

use aries_tenants::DomainError;
use aries_tenants::LocationId;
use aries_tenants::TenantId;
use aries_tenants::idempotency::{self, Claim, IdempotencyKey};
use aries_tenants::locations::store::{self, ListFilter};
use aries_tenants::locations::{Location, LocationInput};
use aries_tenants::page::PageRequest;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;

/// A unit of tenant work that runs in one tenant transaction.
pub trait TenantOp: Send + 'static {
    type Output: Send + 'static;
    /// Shown in traces and metrics.
    const NAME: &'static str;
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>>;
}

/// `POST /locations`.
pub struct CreateLocation(pub LocationInput);

impl TenantOp for CreateLocation {
    type Output = Location;
    const NAME: &'static str = "location.create";
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(async move { store::create(conn, tenant, &self.0).await })
    }
}

/// `GET /locations/{id}`.
pub struct GetLocation(pub LocationId);

impl TenantOp for GetLocation {
    type Output = Location;
    const NAME: &'static str = "location.get";
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(async move { store::get(conn, tenant, self.0).await })
    }
}

/// `GET /locations`.
pub struct ListLocations {
    /// Validated limit and cursor; the store fetches one row more to tell whether a next page exists.
    pub page: PageRequest,
    /// Search text and `active` filter, already normalised by the handler.
    pub filter: ListFilter,
}

impl TenantOp for ListLocations {
    type Output = Vec<Location>;
    const NAME: &'static str = "location.list";
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Vec<Location>, DomainError>> {
        Box::pin(async move { store::list(conn, tenant, self.page, &self.filter).await })
    }
}

/// `PATCH /locations/{id}` (JSON merge patch).
pub struct PatchLocation {
    /// The location to change.
    pub id: LocationId,
    /// The JSON merge patch as sent: it is applied to the current row inside the transaction, and
    /// only the resulting document is validated.
    pub patch: serde_json::Value,
    /// Version from `If-Match`; `None` (absent, or `*`) changes whatever version is current.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchLocation {
    type Output = Location;
    const NAME: &'static str = "location.patch";
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(
            async move { store::patch(conn, tenant, self.id, &self.patch, self.if_match).await },
        )
    }
}

/// `DELETE /locations/{id}`.
pub struct DeleteLocation {
    /// The location to delete.
    pub id: LocationId,
    /// Version from `If-Match`; `None` (absent, or `*`) deletes whatever version is current.
    pub if_match: Option<i64>,
}

impl TenantOp for DeleteLocation {
    type Output = ();
    const NAME: &'static str = "location.delete";
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move { store::delete(conn, tenant, self.id, self.if_match).await })
    }
}

/// Any create run under an `Idempotency-Key`: the key is taken, the inner operation runs, and its
/// output is stored, all in one tenant transaction; a retry with the same key and request gets the
/// stored output back (`replayed`), one with another request `idempotency_key_reused`.
pub struct Idempotent<O> {
    /// The client's `Idempotency-Key`, taken in the same transaction as the write, so a failed
    /// write frees it for a retry.
    pub key: IdempotencyKey,
    /// SHA-256 of method, path and body.
    pub request_sha256: [u8; 32],
    /// The create to run on the key's first use; its output is stored as JSON for replays.
    pub op: O,
}

/// The output of an [`Idempotent`] operation.
#[derive(Debug)]
pub struct Replayable<T> {
    /// The inner operation's output, or on a replay the stored one read back.
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
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        tenant: TenantId,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let corrupt =
                |e: serde_json::Error| DomainError::Database(sqlx::Error::Decode(Box::new(e)));
            match idempotency::claim(conn, tenant, &self.key, &self.request_sha256).await? {
                Claim::Replay(body) => Ok(Replayable {
                    value: serde_json::from_value(body).map_err(corrupt)?,
                    replayed: true,
                }),
                Claim::Fresh => {
                    let value = self.op.run(conn, tenant).await?;
                    let body = serde_json::to_value(&value).map_err(corrupt)?;
                    idempotency::complete(conn, tenant, &self.key, &body).await?;
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

    pub struct InjectFault(pub Fault);

    impl TenantOp for InjectFault {
        type Output = ();
        const NAME: &'static str = "fault.inject";
        #[allow(clippy::panic)]
        fn run<'c>(
            self,
            conn: &'c mut PgConnection,
            _tenant: TenantId,
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
