//! Warehouse, item and serial operations.

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::dme::serials::SerialEvent;
use aries_tenants::ids::{ItemId, SerialId, WarehouseId};
use aries_tenants::inventory::{
    self as inv, Item, ItemInput, MovementInput, Serial, SerialFilter, SerialHistoryEntry,
    SerialInput, StockLevel, StockMovement, Warehouse, WarehouseInput,
};
use aries_tenants::page::PageRequest;
use serde_json::json;

const fn needs(resource: Resource, action: Action) -> Access {
    Access::Requires(Permission::new(resource, action))
}

tenant_op!(
    /// `POST /warehouses`.
    CreateWarehouse {
        /// The new warehouse.
        input: WarehouseInput,
    } -> Warehouse, "warehouse.create", needs(Resource::Inventory, Action::Edit),
    |op, conn, ctx| {
        let w = inv::create_warehouse(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "warehouse.created", "warehouse", w.id, json!({"code": w.code})).await?;
        Ok(w)
    }
);

tenant_op!(
    /// `GET /warehouses`.
    ListWarehouses {
        /// Which page.
        page: PageRequest,
    } -> Vec<Warehouse>, "warehouse.list", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::list_warehouses(conn, ctx.tenant, op.page).await }
);

tenant_op!(
    /// `GET /warehouses/{id}`.
    GetWarehouse {
        /// Which warehouse.
        id: WarehouseId,
    } -> Warehouse, "warehouse.get", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::get_warehouse(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `POST /items`.
    CreateItem {
        /// The new item.
        input: ItemInput,
    } -> Item, "item.create", needs(Resource::Inventory, Action::Edit),
    |op, conn, ctx| {
        let item = inv::create_item(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "item.created", "item", item.id, json!({"code": item.code})).await?;
        Ok(item)
    }
);

tenant_op!(
    /// `GET /items`.
    ListItems {
        /// Which page.
        page: PageRequest,
    } -> Vec<Item>, "item.list", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::list_items(conn, ctx.tenant, op.page).await }
);

tenant_op!(
    /// `GET /items/{id}`.
    GetItem {
        /// Which item.
        id: ItemId,
    } -> Item, "item.get", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::get_item(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `POST /serials`: receive a serial into a warehouse.
    ReceiveSerial {
        /// The serial and where it arrives.
        input: SerialInput,
    } -> Serial, "serial.receive", needs(Resource::Serials, Action::Edit),
    |op, conn, ctx| {
        let s = inv::receive_serial(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "serial.received", "serial", s.id, json!({"serial_number": s.serial_number}))
            .await?;
        Ok(s)
    }
);

tenant_op!(
    /// `GET /serials/{id}`.
    GetSerial {
        /// Which serial.
        id: SerialId,
    } -> Serial, "serial.get", needs(Resource::Serials, Action::View),
    |op, conn, ctx| { inv::get_serial(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /serials`.
    ListSerials {
        /// Which page.
        page: PageRequest,
        /// Which serials.
        filter: SerialFilter,
    } -> Vec<Serial>, "serial.list", needs(Resource::Serials, Action::View),
    |op, conn, ctx| { inv::list_serials(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `POST /serials/{id}/events`.
    RecordSerialEvent {
        /// Which serial.
        id: SerialId,
        /// What happened.
        event: SerialEvent,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Serial, "serial.event", needs(Resource::Serials, Action::Process),
    |op, conn, ctx| {
        let s = inv::record_event(conn, ctx.tenant, op.id, &op.event, op.if_match).await?;
        let details = serde_json::to_value(&op.event).unwrap_or_default();
        ctx.audit(conn, &format!("serial.{}", op.event.name()), "serial", s.id, details).await?;
        Ok(s)
    }
);

tenant_op!(
    /// `GET /serials/{id}/history`.
    SerialHistory {
        /// Which serial.
        id: SerialId,
    } -> Vec<SerialHistoryEntry>, "serial.history", needs(Resource::Serials, Action::View),
    |op, conn, ctx| {
        inv::get_serial(conn, ctx.tenant, op.id).await?;
        inv::history(conn, ctx.tenant, op.id).await
    }
);

tenant_op!(
    /// `POST /stock/movements`.
    RecordMovement {
        /// The movement.
        input: MovementInput,
    } -> Vec<StockLevel>, "stock.move", needs(Resource::Inventory, Action::Process),
    |op, conn, ctx| {
        let levels = inv::record_movement(conn, ctx.tenant, &op.input).await?;
        let item = levels.first().map(|l| l.item_id.to_string()).unwrap_or_default();
        ctx.audit(conn, "stock.moved", "item", item, json!({"levels": levels})).await?;
        Ok(levels)
    }
);

tenant_op!(
    /// `GET /stock`.
    StockLevels {
        /// Only this warehouse.
        warehouse: Option<WarehouseId>,
        /// Only this item.
        item: Option<ItemId>,
    } -> Vec<StockLevel>, "stock.levels", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::stock_levels(conn, ctx.tenant, op.warehouse, op.item).await }
);

tenant_op!(
    /// `GET /stock/movements`.
    StockLedger {
        /// The warehouse.
        warehouse: WarehouseId,
        /// The item.
        item: ItemId,
    } -> Vec<StockMovement>, "stock.ledger", needs(Resource::Inventory, Action::View),
    |op, conn, ctx| { inv::movements(conn, ctx.tenant, op.warehouse, op.item).await }
);

tenant_op!(
    /// `PATCH /warehouses/{id}`.
    PatchWarehouse {
        /// Which warehouse.
        id: WarehouseId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Warehouse, "warehouse.patch", needs(Resource::Inventory, Action::Edit),
    |op, conn, ctx| {
        let (w, changed) = inv::patch_warehouse(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "warehouse.updated", "warehouse", w.id, json!({"patch": op.patch})).await?;
        }
        Ok(w)
    }
);

tenant_op!(
    /// `PATCH /items/{id}`.
    PatchItem {
        /// Which item.
        id: ItemId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Item, "item.patch", needs(Resource::Inventory, Action::Edit),
    |op, conn, ctx| {
        let (item, changed) = inv::patch_item(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "item.updated", "item", item.id, json!({"patch": op.patch})).await?;
        }
        Ok(item)
    }
);

tenant_op!(
    /// `PATCH /serials/{id}`: merge patch of `next_maintenance_date` (its status changes only by events).
    PatchSerial {
        /// Which serial.
        id: SerialId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Serial, "serial.patch", needs(Resource::Serials, Action::Edit),
    |op, conn, ctx| {
        let (s, changed) = inv::patch_serial(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "serial.updated", "serial", s.id, json!({"patch": op.patch})).await?;
        }
        Ok(s)
    }
);

tenant_op!(
    /// `PUT /stock/reorder-points`.
    SetReorderPoints {
        /// The levels and their new reorder points.
        input: aries_tenants::inventory::ReorderPointsInput,
    } -> Vec<aries_tenants::inventory::StockLevel>, "stock.reorder_points", needs(Resource::Inventory, Action::Edit),
    |op, conn, ctx| {
        let changed = inv::set_reorder_points(conn, ctx.tenant, &op.input).await?;
        if !changed.is_empty() {
            let levels: Vec<_> = changed
                .iter()
                .map(|l| json!({"warehouse_id": l.warehouse_id, "item_id": l.item_id, "reorder_point": l.reorder_point}))
                .collect();
            ctx.audit(conn, "stock.reorder_points_set", "stock_level", changed.len(), json!({"levels": levels}))
                .await?;
        }
        Ok(changed)
    }
);
