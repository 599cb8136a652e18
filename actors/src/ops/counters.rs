//! The live counters' read check: the counters live in Redis, not on the shard, so this
//! operation only resolves the caller, checks `reports:view`, and names the tenant's id (the
//! counters' key).

use super::Access;
use aries_tenants::TenantId;
use aries_tenants::auth::{Action, Permission, Resource};

tenant_op!(
    /// `GET /counters`: who may read the tenant's live counters, and under which tenant id.
    AuthorizeCounters {} -> TenantId, "counters.read",
    Access::Requires(Permission::new(Resource::Reports, Action::View)),
    |_op, _conn, ctx| { Ok(ctx.tenant) }
);
