//! Report operations: one page of a tenant report, read in the tenant's transaction
//! (`reports:view`). Parameters are validated before the operation is sent
//! ([`aries_tenants::reports::prepare`]).

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::reports::{self, ReportPage, ReportRequest};

tenant_op!(
    /// `GET /reports/{name}`: one page.
    RunReport {
        /// The validated request (report, parameters, page).
        request: ReportRequest,
    } -> ReportPage, "report.run", Access::Requires(Permission::new(Resource::Reports, Action::View)),
    |op, conn, ctx| { reports::run(conn, ctx.tenant, &op.request).await }
);

tenant_op!(
    /// `GET /reports`: the catalogue is the same for everyone, but only callers who may run
    /// reports see it.
    CanViewReports {} -> (), "report.catalogue", Access::Requires(Permission::new(Resource::Reports, Action::View)),
    |_op, _conn, _ctx| { Ok(()) }
);
