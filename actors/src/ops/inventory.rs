//! Warehouse, item and serial operations.

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::dme::serials::SerialEvent;
use aries_tenants::ids::{ItemId, SerialId, WarehouseId};
use aries_tenants::inventory::{
    self as inv, Item, ItemInput, Serial, SerialFilter, SerialHistoryEntry, SerialInput, Warehouse,
    WarehouseInput,
};
use aries_tenants::page::PageRequest;
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(resource: Resource, action: Action) -> Access {
    Access::Requires(Permission::new(resource, action))
}

/// `POST /warehouses`.
pub struct CreateWarehouse(pub WarehouseInput);

impl TenantOp for CreateWarehouse {
    type Output = Warehouse;
    const NAME: &'static str = "warehouse.create";
    const ACCESS: Access = needs(Resource::Inventory, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Warehouse, DomainError>> {
        Box::pin(async move {
            let w = inv::create_warehouse(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "warehouse.created",
                "warehouse",
                w.id,
                json!({"code": w.code}),
            )
            .await?;
            Ok(w)
        })
    }
}

/// `GET /warehouses`.
pub struct ListWarehouses(pub PageRequest);

impl TenantOp for ListWarehouses {
    type Output = Vec<Warehouse>;
    const NAME: &'static str = "warehouse.list";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Warehouse>, DomainError>> {
        Box::pin(async move { inv::list_warehouses(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /warehouses/{id}`.
pub struct GetWarehouse(pub WarehouseId);

impl TenantOp for GetWarehouse {
    type Output = Warehouse;
    const NAME: &'static str = "warehouse.get";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Warehouse, DomainError>> {
        Box::pin(async move { inv::get_warehouse(conn, ctx.tenant, self.0).await })
    }
}

/// `POST /items`.
pub struct CreateItem(pub ItemInput);

impl TenantOp for CreateItem {
    type Output = Item;
    const NAME: &'static str = "item.create";
    const ACCESS: Access = needs(Resource::Inventory, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Item, DomainError>> {
        Box::pin(async move {
            let item = inv::create_item(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "item.created",
                "item",
                item.id,
                json!({"code": item.code}),
            )
            .await?;
            Ok(item)
        })
    }
}

/// `GET /items`.
pub struct ListItems(pub PageRequest);

impl TenantOp for ListItems {
    type Output = Vec<Item>;
    const NAME: &'static str = "item.list";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Item>, DomainError>> {
        Box::pin(async move { inv::list_items(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /items/{id}`.
pub struct GetItem(pub ItemId);

impl TenantOp for GetItem {
    type Output = Item;
    const NAME: &'static str = "item.get";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Item, DomainError>> {
        Box::pin(async move { inv::get_item(conn, ctx.tenant, self.0).await })
    }
}

/// `POST /serials`: receive a serial into a warehouse.
pub struct ReceiveSerial(pub SerialInput);

impl TenantOp for ReceiveSerial {
    type Output = Serial;
    const NAME: &'static str = "serial.receive";
    const ACCESS: Access = needs(Resource::Serials, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Serial, DomainError>> {
        Box::pin(async move {
            let s = inv::receive_serial(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "serial.received",
                "serial",
                s.id,
                json!({"serial_number": s.serial_number}),
            )
            .await?;
            Ok(s)
        })
    }
}

/// `GET /serials/{id}`.
pub struct GetSerial(pub SerialId);

impl TenantOp for GetSerial {
    type Output = Serial;
    const NAME: &'static str = "serial.get";
    const ACCESS: Access = needs(Resource::Serials, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Serial, DomainError>> {
        Box::pin(async move { inv::get_serial(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /serials`.
pub struct ListSerials {
    /// Which page.
    pub page: PageRequest,
    /// Which serials.
    pub filter: SerialFilter,
}

impl TenantOp for ListSerials {
    type Output = Vec<Serial>;
    const NAME: &'static str = "serial.list";
    const ACCESS: Access = needs(Resource::Serials, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Serial>, DomainError>> {
        Box::pin(async move { inv::list_serials(conn, ctx.tenant, self.page, &self.filter).await })
    }
}

/// `POST /serials/{id}/events`.
pub struct RecordSerialEvent {
    /// Which serial.
    pub id: SerialId,
    /// What happened.
    pub event: SerialEvent,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for RecordSerialEvent {
    type Output = Serial;
    const NAME: &'static str = "serial.event";
    const ACCESS: Access = needs(Resource::Serials, Action::Process);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Serial, DomainError>> {
        Box::pin(async move {
            let s =
                inv::record_event(conn, ctx.tenant, self.id, &self.event, self.if_match).await?;
            let details = serde_json::to_value(&self.event).unwrap_or_default();
            ctx.audit(
                conn,
                &format!("serial.{}", self.event.name()),
                "serial",
                s.id,
                details,
            )
            .await?;
            Ok(s)
        })
    }
}

/// `GET /serials/{id}/history`.
pub struct SerialHistory(pub SerialId);

impl TenantOp for SerialHistory {
    type Output = Vec<SerialHistoryEntry>;
    const NAME: &'static str = "serial.history";
    const ACCESS: Access = needs(Resource::Serials, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            inv::get_serial(conn, ctx.tenant, self.0).await?;
            inv::history(conn, ctx.tenant, self.0).await
        })
    }
}

/// `POST /stock/movements`.
pub struct RecordMovement(pub aries_tenants::inventory::MovementInput);

impl TenantOp for RecordMovement {
    type Output = Vec<aries_tenants::inventory::StockLevel>;
    const NAME: &'static str = "stock.move";
    const ACCESS: Access = needs(Resource::Inventory, Action::Process);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let levels = inv::record_movement(conn, ctx.tenant, &self.0).await?;
            let item = levels
                .first()
                .map(|l| l.item_id.to_string())
                .unwrap_or_default();
            ctx.audit(conn, "stock.moved", "item", item, json!({"levels": levels}))
                .await?;
            Ok(levels)
        })
    }
}

/// `GET /stock`.
pub struct StockLevels {
    /// Only this warehouse.
    pub warehouse: Option<WarehouseId>,
    /// Only this item.
    pub item: Option<ItemId>,
}

impl TenantOp for StockLevels {
    type Output = Vec<aries_tenants::inventory::StockLevel>;
    const NAME: &'static str = "stock.levels";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(
            async move { inv::stock_levels(conn, ctx.tenant, self.warehouse, self.item).await },
        )
    }
}

/// `GET /stock/movements`.
pub struct StockLedger {
    /// The warehouse.
    pub warehouse: WarehouseId,
    /// The item.
    pub item: ItemId,
}

impl TenantOp for StockLedger {
    type Output = Vec<aries_tenants::inventory::StockMovement>;
    const NAME: &'static str = "stock.ledger";
    const ACCESS: Access = needs(Resource::Inventory, Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move { inv::movements(conn, ctx.tenant, self.warehouse, self.item).await })
    }
}

/// `PATCH /warehouses/{id}`.
pub struct PatchWarehouse {
    /// Which warehouse.
    pub id: WarehouseId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchWarehouse {
    type Output = Warehouse;
    const NAME: &'static str = "warehouse.patch";
    const ACCESS: Access = needs(Resource::Inventory, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Warehouse, DomainError>> {
        Box::pin(async move {
            let (w, changed) =
                inv::patch_warehouse(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "warehouse.updated",
                    "warehouse",
                    w.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(w)
        })
    }
}

/// `PATCH /items/{id}`.
pub struct PatchItem {
    /// Which item.
    pub id: ItemId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchItem {
    type Output = Item;
    const NAME: &'static str = "item.patch";
    const ACCESS: Access = needs(Resource::Inventory, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Item, DomainError>> {
        Box::pin(async move {
            let (item, changed) =
                inv::patch_item(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "item.updated",
                    "item",
                    item.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(item)
        })
    }
}

/// `PATCH /serials/{id}`: merge patch of `next_maintenance_date` (its status changes only by events).
pub struct PatchSerial {
    /// Which serial.
    pub id: SerialId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchSerial {
    type Output = Serial;
    const NAME: &'static str = "serial.patch";
    const ACCESS: Access = needs(Resource::Serials, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Serial, DomainError>> {
        Box::pin(async move {
            let (s, changed) =
                inv::patch_serial(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "serial.updated",
                    "serial",
                    s.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(s)
        })
    }
}

/// `PUT /stock/reorder-points`.
pub struct SetReorderPoints(pub aries_tenants::inventory::ReorderPointsInput);

impl TenantOp for SetReorderPoints {
    type Output = Vec<aries_tenants::inventory::StockLevel>;
    const NAME: &'static str = "stock.reorder_points";
    const ACCESS: Access = needs(Resource::Inventory, Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Self::Output, DomainError>> {
        Box::pin(async move {
            let changed = inv::set_reorder_points(conn, ctx.tenant, &self.0).await?;
            if !changed.is_empty() {
                let levels: Vec<_> = changed
                    .iter()
                    .map(|l| json!({"warehouse_id": l.warehouse_id, "item_id": l.item_id, "reorder_point": l.reorder_point}))
                    .collect();
                ctx.audit(
                    conn,
                    "stock.reorder_points_set",
                    "stock_level",
                    changed.len(),
                    json!({"levels": levels}),
                )
                .await?;
            }
            Ok(changed)
        })
    }
}
