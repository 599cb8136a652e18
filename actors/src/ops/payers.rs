//! Payer operations (no delete: policies will refer to payers; deactivate instead).

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::PayerId;
use aries_tenants::page::PageRequest;
use aries_tenants::payers::{self, Payer, PayerFilter, PayerInput};
use serde_json::json;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Payers, action))
}

tenant_op!(
    /// `POST /payers`.
    CreatePayer {
        /// The new payer.
        input: PayerInput,
    } -> Payer, "payer.create", needs(Action::Edit),
    |op, conn, ctx| {
        let p = payers::create(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "payer.created", "payer", p.id, json!({"name": p.name})).await?;
        Ok(p)
    }
);

tenant_op!(
    /// `GET /payers/{id}`.
    GetPayer {
        /// Which payer.
        id: PayerId,
    } -> Payer, "payer.get", needs(Action::View),
    |op, conn, ctx| { payers::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /payers`.
    ListPayers {
        /// Which page.
        page: PageRequest,
        /// Which payers.
        filter: PayerFilter,
    } -> Vec<Payer>, "payer.list", needs(Action::View),
    |op, conn, ctx| { payers::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `PATCH /payers/{id}` (JSON merge patch).
    PatchPayer {
        /// Which payer.
        id: PayerId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Payer, "payer.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (p, changed) = payers::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "payer.updated", "payer", p.id, json!({"patch": op.patch})).await?;
        }
        Ok(p)
    }
);
