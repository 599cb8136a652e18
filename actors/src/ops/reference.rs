//! The tenant side of the global reference data (HCPCS, fee schedules): the data lives in the
//! catalog and is read by the http layer through `aries-reference`, but the caller is a tenant
//! credential, so the tenant's actor checks it first like on every tenant route (tenant active,
//! credential valid and not revoked). Any role may read: the data is public.

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use futures::future::BoxFuture;
use sqlx::PgConnection;

/// Resolves the caller; succeeds for any principal of the tenant.
pub struct ReadReference;

impl TenantOp for ReadReference {
    type Output = ();
    const NAME: &'static str = "reference.read";
    const ACCESS: Access = Access::Authenticated;
    fn run<'c>(
        self,
        _conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move { ctx.principal().map(|_| ()) })
    }
}
