//! The tenant side of the global reference data (HCPCS, fee schedules): the data lives in the
//! catalog and is read by the http layer through `aries-reference`, but the caller is a tenant
//! credential, so the tenant's actor checks it first like on every tenant route (tenant active,
//! credential valid and not revoked). Any role may read: the data is public.

use super::Access;

tenant_op!(
    /// Resolves the caller; succeeds for any principal of the tenant.
    ReadReference {} -> (), "reference.read", Access::Authenticated,
    |_op, _conn, ctx| { ctx.principal().map(|_| ()) }
);
