//! Prescriber operations (no delete: orders will refer to prescribers; deactivate instead).

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::PrescriberId;
use aries_tenants::page::PageRequest;
use aries_tenants::prescribers::{self, Prescriber, PrescriberFilter, PrescriberInput};
use serde_json::json;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Prescribers, action))
}

tenant_op!(
    /// `POST /prescribers`.
    CreatePrescriber {
        /// The new prescriber.
        input: PrescriberInput,
    } -> Prescriber, "prescriber.create", needs(Action::Edit),
    |op, conn, ctx| {
        let p = prescribers::create(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "prescriber.created", "prescriber", p.id, json!({"npi": p.npi})).await?;
        Ok(p)
    }
);

tenant_op!(
    /// `GET /prescribers/{id}`.
    GetPrescriber {
        /// Which prescriber.
        id: PrescriberId,
    } -> Prescriber, "prescriber.get", needs(Action::View),
    |op, conn, ctx| { prescribers::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /prescribers`.
    ListPrescribers {
        /// Which page.
        page: PageRequest,
        /// Which prescribers.
        filter: PrescriberFilter,
    } -> Vec<Prescriber>, "prescriber.list", needs(Action::View),
    |op, conn, ctx| { prescribers::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `PATCH /prescribers/{id}` (JSON merge patch).
    PatchPrescriber {
        /// Which prescriber.
        id: PrescriberId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Prescriber, "prescriber.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (p, changed) = prescribers::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "prescriber.updated", "prescriber", p.id, json!({"patch": op.patch})).await?;
        }
        Ok(p)
    }
);
