//! Order operations: create and edit while new, approve (the missing-information gate), cancel,
//! deliver and pick up. Intake edits and approves (`orders:*`); the warehouse delivers and picks
//! up (`deliveries:process`).

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::dme::orders::MissingInfo;
use aries_tenants::ids::{OrderId, OrderLineId};
use aries_tenants::orders::{
    self, CancelInput, DeliverInput, LineInput, Order, OrderFilter, OrderInput, PickupInput,
};
use aries_tenants::page::PageRequest;
use chrono::NaiveDate;
use serde_json::json;

const fn orders(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Orders, action))
}

const DELIVERIES: Access = Access::Requires(Permission::new(Resource::Deliveries, Action::Process));

tenant_op!(
    /// `POST /orders`.
    CreateOrder { input: OrderInput } -> Order, "order.create", orders(Action::Edit),
    |op, conn, ctx| {
        let o = orders::create(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "order.created", "order", o.id, json!({"order_number": o.order_number, "lines": o.lines.len()}))
            .await?;
        Ok(o)
    }
);

tenant_op!(
    /// `GET /orders/{id}`.
    GetOrder { id: OrderId } -> Order, "order.get", orders(Action::View),
    |op, conn, ctx| { orders::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /orders`.
    ListOrders {
        /// Which page.
        page: PageRequest,
        /// Which orders.
        filter: OrderFilter,
    } -> Vec<Order>, "order.list", orders(Action::View),
    |op, conn, ctx| { orders::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `GET /orders/{id}/missing-information`.
    MissingInformation {
        /// Which order.
        id: OrderId,
        /// The day the check is made for (expiry dates are compared with it).
        as_of: NaiveDate,
    } -> Vec<MissingInfo>, "order.missing_information", orders(Action::View),
    |op, conn, ctx| { orders::missing_information(conn, ctx.tenant, op.id, op.as_of).await }
);

tenant_op!(
    /// `PATCH /orders/{id}` (JSON merge patch, while new).
    PatchOrder {
        /// Which order.
        id: OrderId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Order, "order.patch", orders(Action::Edit),
    |op, conn, ctx| {
        let (o, changed) = orders::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "order.updated", "order", o.id, json!({"patch": op.patch})).await?;
        }
        Ok(o)
    }
);

tenant_op!(
    /// `POST /orders/{id}/lines`: answers the order and the new line's id.
    AddLine {
        /// Which order.
        id: OrderId,
        /// The line.
        input: LineInput,
    } -> (Order, OrderLineId), "order.add_line", orders(Action::Edit),
    |op, conn, ctx| {
        let (o, line) = orders::add_line(conn, ctx.tenant, op.id, &op.input).await?;
        ctx.audit(conn, "order.line_added", "order", o.id, json!({"line_id": line, "item_id": op.input.item_id}))
            .await?;
        Ok((o, line))
    }
);

tenant_op!(
    /// `PATCH /orders/{id}/lines/{line_id}` (JSON merge patch, while new).
    PatchLine {
        /// Which order.
        id: OrderId,
        /// Which line.
        line: OrderLineId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version of the line, when sent.
        if_match: Option<i64>,
    } -> Order, "order.patch_line", orders(Action::Edit),
    |op, conn, ctx| {
        let (o, changed) =
            orders::patch_line(conn, ctx.tenant, op.id, op.line, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "order.line_updated", "order", o.id, json!({"line_id": op.line, "patch": op.patch}))
                .await?;
        }
        Ok(o)
    }
);

tenant_op!(
    /// `DELETE /orders/{id}/lines/{line_id}` (while new).
    RemoveLine {
        /// Which order.
        id: OrderId,
        /// Which line.
        line: OrderLineId,
        /// `If-Match` version of the line, when sent.
        if_match: Option<i64>,
    } -> Order, "order.remove_line", orders(Action::Delete),
    |op, conn, ctx| {
        let o = orders::remove_line(conn, ctx.tenant, op.id, op.line, op.if_match).await?;
        ctx.audit(conn, "order.line_removed", "order", o.id, json!({"line_id": op.line})).await?;
        Ok(o)
    }
);

tenant_op!(
    /// `POST /orders/{id}/approve`.
    ApproveOrder {
        /// Which order.
        id: OrderId,
        /// The day the missing-information check is made for.
        as_of: NaiveDate,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Order, "order.approve", orders(Action::Process),
    |op, conn, ctx| {
        let o = orders::approve(conn, ctx.tenant, op.id, op.as_of, op.if_match).await?;
        ctx.audit(conn, "order.approved", "order", o.id, json!({"as_of": op.as_of})).await?;
        Ok(o)
    }
);

tenant_op!(
    /// `POST /orders/{id}/cancel`.
    CancelOrder {
        /// Which order.
        id: OrderId,
        /// Why.
        input: CancelInput,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Order, "order.cancel", orders(Action::Process),
    |op, conn, ctx| {
        let o = orders::cancel(conn, ctx.tenant, op.id, &op.input, op.if_match).await?;
        ctx.audit(conn, "order.canceled", "order", o.id, json!({"reason": op.input.reason})).await?;
        Ok(o)
    }
);

tenant_op!(
    /// `POST /orders/{id}/deliver`.
    DeliverOrder {
        /// Which order.
        id: OrderId,
        /// Date and serials.
        input: DeliverInput,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Order, "order.deliver", DELIVERIES,
    |op, conn, ctx| {
        let o = orders::deliver(conn, ctx.tenant, op.id, &op.input, op.if_match).await?;
        ctx.audit(conn, "order.delivered", "order", o.id, serde_json::to_value(&op.input).unwrap_or_default())
            .await?;
        Ok(o)
    }
);

tenant_op!(
    /// `POST /orders/{id}/lines/{line_id}/pickup`.
    PickupLine {
        /// Which order.
        id: OrderId,
        /// Which line.
        line: OrderLineId,
        /// Date, warehouse, end date.
        input: PickupInput,
        /// `If-Match` version of the line, when sent.
        if_match: Option<i64>,
    } -> Order, "order.pickup", DELIVERIES,
    |op, conn, ctx| {
        let o = orders::pickup(conn, ctx.tenant, op.id, op.line, &op.input, op.if_match).await?;
        ctx.audit(conn, "order.line_picked_up", "order", o.id, json!({"line_id": op.line, "input": op.input}))
            .await?;
        Ok(o)
    }
);
