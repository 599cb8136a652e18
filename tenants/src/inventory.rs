//! Warehouses, inventory items and serials, with their SQL. A serial's status is the fold of its
//! event log ([`crate::dme::serials`]); an event its state does not allow is refused with the
//! current state named, and nothing is written.

use crate::dme::serials::{self, IllegalTransition, SerialEvent, SerialState, SerialStatus};
use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{ItemId, SerialId, TenantId, WarehouseId};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

fn code(errs: &mut ValidationErrors, raw: &str) -> String {
    let code = raw.trim().to_ascii_uppercase();
    if code.is_empty()
        || code.len() > 32
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        errs.push(
            "code",
            "invalid_format",
            "1 to 32 letters, digits, '-' or '_'",
        );
    }
    code
}

fn taken(e: sqlx::Error, constraint: &str, code: &'static str, detail: String) -> DomainError {
    if unique_violation(&e) == Some(constraint) {
        DomainError::Conflict { code, detail }
    } else {
        DomainError::Database(e)
    }
}

// ---- warehouses ----

/// Body of "create a warehouse".
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseInput {
    /// Short code, unique within the tenant (`MAIN`).
    pub code: String,
    pub name: String,
    /// Inactive warehouses keep their history but receive nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Warehouse {
    #[sqlx(rename = "warehouse_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: WarehouseId,
    pub code: String,
    pub name: String,
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn create_warehouse(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &WarehouseInput,
) -> Result<Warehouse, DomainError> {
    let mut errs = ValidationErrors::default();
    let code = code(&mut errs, &input.code);
    let name = errs.text("name", &input.name, 200);
    errs.finish(()).map_err(DomainError::Validation)?;
    let w: Warehouse = sqlx::query_as(
        "insert into warehouse (tenant_id, warehouse_id, code, name, active) values ($1, $2, $3, $4, $5) \
         returning warehouse_id, code, name, active, version, created_at",
    )
    .bind(tenant)
    .bind(WarehouseId::new())
    .bind(&code)
    .bind(&name)
    .bind(input.active.unwrap_or(true))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| {
        taken(
            e,
            "warehouse_code_key",
            "warehouse_code_taken",
            format!("a warehouse with code {code} exists"),
        )
    })?;
    outbox::record(conn, tenant, w.id.as_uuid(), "warehouse.created", &w).await?;
    Ok(w)
}

pub async fn get_warehouse(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WarehouseId,
) -> Result<Warehouse, DomainError> {
    sqlx::query_as("select warehouse_id, code, name, active, version, created_at from warehouse where tenant_id = $1 and warehouse_id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("warehouse"))
}

pub async fn list_warehouses(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Vec<Warehouse>, DomainError> {
    Ok(sqlx::query_as(
        "select warehouse_id, code, name, active, version, created_at from warehouse where tenant_id = $1 \
         and ($2::uuid is null or warehouse_id > $2) order by warehouse_id limit $3",
    )
    .bind(tenant)
    .bind(page.after)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(conn)
    .await?)
}

// ---- items ----

/// Body of "create an inventory item".
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Inventory code, unique within the tenant.
    pub code: String,
    pub name: String,
    /// Tracked by serial number.
    #[serde(default)]
    pub serialized: bool,
    /// An oxygen tank (returns empty, goes out for filling).
    #[serde(default)]
    pub oxygen_tank: bool,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model_number: Option<String>,
    /// Inactive items keep their history but take no new orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// An inventory item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Item {
    #[sqlx(rename = "item_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: ItemId,
    pub code: String,
    pub name: String,
    pub serialized: bool,
    pub oxygen_tank: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_number: Option<String>,
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

const ITEM_COLUMNS: &str = "item_id, code, name, serialized, oxygen_tank, manufacturer, model_number, active, version, created_at";

pub async fn create_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &ItemInput,
) -> Result<Item, DomainError> {
    let mut errs = ValidationErrors::default();
    let code = code(&mut errs, &input.code);
    let name = errs.text("name", &input.name, 200);
    let manufacturer = errs.optional_text("manufacturer", input.manufacturer.as_deref(), 100);
    let model = errs.optional_text("model_number", input.model_number.as_deref(), 100);
    if input.oxygen_tank && !input.serialized {
        errs.push(
            "oxygen_tank",
            "requires_serialized",
            "oxygen tanks are tracked by serial number",
        );
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    let sql = format!(
        "insert into inventory_item (tenant_id, item_id, code, name, serialized, oxygen_tank, manufacturer, model_number, \
         active) values ($1,$2,$3,$4,$5,$6,$7,$8,$9) returning {ITEM_COLUMNS}"
    );
    let item: Item = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(ItemId::new())
        .bind(&code)
        .bind(&name)
        .bind(input.serialized)
        .bind(input.oxygen_tank)
        .bind(manufacturer)
        .bind(model)
        .bind(input.active.unwrap_or(true))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            taken(
                e,
                "inventory_item_code_key",
                "item_code_taken",
                format!("an item with code {code} exists"),
            )
        })?;
    outbox::record(conn, tenant, item.id.as_uuid(), "item.created", &item).await?;
    Ok(item)
}

pub async fn get_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ItemId,
) -> Result<Item, DomainError> {
    let sql =
        format!("select {ITEM_COLUMNS} from inventory_item where tenant_id = $1 and item_id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("item"))
}

pub async fn list_items(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Vec<Item>, DomainError> {
    let sql = format!(
        "select {ITEM_COLUMNS} from inventory_item where tenant_id = $1 and ($2::uuid is null or item_id > $2) \
         order by item_id limit $3"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

// ---- serials ----

/// Body of "receive a serial into stock".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialInput {
    /// The item (must be serialized).
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// The manufacturer's serial number, unique per item.
    pub serial_number: String,
    /// Where it is received.
    #[schema(value_type = String, format = Uuid)]
    pub warehouse_id: WarehouseId,
    /// An oxygen tank that arrives empty.
    #[serde(default)]
    pub empty: bool,
}

/// A serial with its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Serial {
    #[schema(value_type = String, format = Uuid)]
    pub id: SerialId,
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    pub serial_number: String,
    /// The fold of its events.
    pub state: SerialState,
    /// When it is next due for maintenance (set with `PATCH /serials/{id}`; the maintenance-due
    /// report lists it from that day); absent when none is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_maintenance_date: Option<NaiveDate>,
    /// Events and edits so far; the `ETag`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SerialRow {
    serial_id: SerialId,
    item_id: ItemId,
    serial_number: String,
    state: sqlx::types::Json<SerialState>,
    next_maintenance_date: Option<NaiveDate>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SerialRow> for Serial {
    fn from(r: SerialRow) -> Self {
        Serial {
            id: r.serial_id,
            item_id: r.item_id,
            serial_number: r.serial_number,
            state: r.state.0,
            next_maintenance_date: r.next_maintenance_date,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const SERIAL_COLUMNS: &str = "serial_id, item_id, serial_number, state, next_maintenance_date, version, created_at, updated_at";

fn status_text(s: SerialStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn illegal(e: IllegalTransition) -> DomainError {
    DomainError::Conflict {
        code: "illegal_transition",
        detail: format!("{e}: the serial is {}", status_text(e.from)),
    }
}

/// Receives a serial: its first event is `received` into the warehouse.
pub async fn receive_serial(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &SerialInput,
) -> Result<Serial, DomainError> {
    let mut errs = ValidationErrors::default();
    let number = errs.text("serial_number", &input.serial_number, 64);
    errs.finish(()).map_err(DomainError::Validation)?;
    let item = get_item(conn, tenant, input.item_id)
        .await
        .map_err(|_| field_missing("item_id", "no such item"))?;
    if !item.serialized {
        return Err(field_missing(
            "item_id",
            "the item is not tracked by serial number",
        ));
    }
    get_warehouse(conn, tenant, input.warehouse_id)
        .await
        .map_err(|_| field_missing("warehouse_id", "no such warehouse"))?;
    let event = SerialEvent::Received {
        warehouse: input.warehouse_id.0,
        empty: input.empty,
    };
    let state = serials::apply(None, &event, item.oxygen_tank).map_err(illegal)?;
    let id = SerialId::new();
    let sql = format!(
        "insert into serial (tenant_id, serial_id, item_id, serial_number, status, state) values ($1,$2,$3,$4,$5,$6) \
         returning {SERIAL_COLUMNS}"
    );
    let row: SerialRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(item.id)
        .bind(&number)
        .bind(status_text(state.status))
        .bind(sqlx::types::Json(state))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            taken(
                e,
                "serial_number_key",
                "serial_number_taken",
                format!("{} already has serial {number}", item.code),
            )
        })?;
    append_event(conn, tenant, id, 1, &event).await?;
    let serial = Serial::from(row);
    outbox::record(conn, tenant, id.as_uuid(), "serial.received", &serial).await?;
    Ok(serial)
}

fn field_missing(field: &str, message: &str) -> DomainError {
    let mut errs = ValidationErrors::default();
    errs.push(field, "not_found", message);
    DomainError::Validation(errs)
}

async fn append_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SerialId,
    seq: i64,
    event: &SerialEvent,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into serial_event (tenant_id, serial_id, seq, event) values ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(id)
    .bind(i32::try_from(seq).unwrap_or(i32::MAX))
    .bind(sqlx::types::Json(event))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get_serial(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SerialId,
) -> Result<Serial, DomainError> {
    let sql =
        format!("select {SERIAL_COLUMNS} from serial where tenant_id = $1 and serial_id = $2");
    let row: Option<SerialRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Serial::from).ok_or(DomainError::NotFound("serial"))
}

/// Filters of the serial list.
#[derive(Debug, Clone, Default)]
pub struct SerialFilter {
    /// Current status.
    pub status: Option<SerialStatus>,
    /// Of this item.
    pub item: Option<ItemId>,
}

pub async fn list_serials(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &SerialFilter,
) -> Result<Vec<Serial>, DomainError> {
    let sql = format!(
        "select {SERIAL_COLUMNS} from serial where tenant_id = $1 and ($2::uuid is null or serial_id > $2) \
         and ($3::text is null or status = $3) and ($4::uuid is null or item_id = $4) order by serial_id limit $5"
    );
    let rows: Vec<SerialRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(f.status.map(status_text))
        .bind(f.item)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Serial::from).collect())
}

/// Records an event: the state is refolded from the whole log plus the event (never trusted from
/// the read model), and an event the state does not allow is a conflict naming the state.
pub async fn record_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SerialId,
    event: &SerialEvent,
    if_match: Option<i64>,
) -> Result<Serial, DomainError> {
    let row: Option<(i64, bool)> = sqlx::query_as(
        "select s.version, i.oxygen_tank from serial s join inventory_item i using (tenant_id, item_id) \
         where s.tenant_id = $1 and s.serial_id = $2 for update of s",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let (version, tank) = row.ok_or(DomainError::NotFound("serial"))?;
    check_version(if_match, version)?;
    if let SerialEvent::Return { warehouse } | SerialEvent::TransferOut { to: warehouse } = event {
        get_warehouse(conn, tenant, WarehouseId(*warehouse))
            .await
            .map_err(|_| field_missing("warehouse", "no such warehouse"))?;
    }
    let history = history(conn, tenant, id).await?;
    let current = serials::fold(history.iter().map(|h| &h.event), tank).map_err(illegal)?;
    let next = serials::apply(Some(current), event, tank).map_err(illegal)?;
    let seq = i64::try_from(history.len()).unwrap_or(i64::MAX) + 1;
    append_event(conn, tenant, id, seq, event).await?;
    let sql = format!(
        "update serial set status = $3, state = $4, version = version + 1, updated_at = now() \
         where tenant_id = $1 and serial_id = $2 returning {SERIAL_COLUMNS}"
    );
    let row: SerialRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(status_text(next.status))
        .bind(sqlx::types::Json(next))
        .fetch_one(&mut *conn)
        .await?;
    let serial = Serial::from(row);
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        &format!("serial.{}", event.name()),
        &serial,
    )
    .await?;
    Ok(serial)
}

/// One entry of a serial's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SerialHistoryEntry {
    /// 1, 2, 3…
    pub seq: i32,
    pub event: SerialEvent,
    pub occurred_at: DateTime<Utc>,
}

/// The serial's events, oldest first.
pub async fn history(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SerialId,
) -> Result<Vec<SerialHistoryEntry>, DomainError> {
    let rows: Vec<(i32, sqlx::types::Json<SerialEvent>, DateTime<Utc>)> = sqlx::query_as(
        "select seq, event, occurred_at from serial_event where tenant_id = $1 and serial_id = $2 order by seq",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, event, occurred_at)| SerialHistoryEntry {
            seq,
            event: event.0,
            occurred_at,
        })
        .collect())
}

/// The writable fields of a serial (its status only changes through events).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SerialPatchable {
    /// When it is next due for maintenance; `null` clears it.
    #[serde(default)]
    next_maintenance_date: Option<NaiveDate>,
}

/// Merge patch of a serial's `next_maintenance_date` (`If-Match` checked against the serial's
/// version, which the change bumps). Answers the serial and whether anything changed.
pub async fn patch_serial(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: SerialId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Serial, bool), DomainError> {
    let sql = format!(
        "select {SERIAL_COLUMNS} from serial where tenant_id = $1 and serial_id = $2 for update"
    );
    let row: Option<SerialRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let current = row
        .map(Serial::from)
        .ok_or(DomainError::NotFound("serial"))?;
    check_version(if_match, current.version)?;
    let before = SerialPatchable {
        next_maintenance_date: current.next_maintenance_date,
    };
    let after: SerialPatchable = patched(&before, patch)?;
    let mut errs = ValidationErrors::default();
    if let Some(d) = after.next_maintenance_date
        && !(2000..=2200).contains(&chrono::Datelike::year(&d))
    {
        errs.push(
            "next_maintenance_date",
            "out_of_range",
            "a date between 2000 and 2200",
        );
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    if after.next_maintenance_date == current.next_maintenance_date {
        return Ok((current, false));
    }
    let sql = format!(
        "update serial set next_maintenance_date = $3, version = version + 1, updated_at = now() \
         where tenant_id = $1 and serial_id = $2 returning {SERIAL_COLUMNS}"
    );
    let row: SerialRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(after.next_maintenance_date)
        .fetch_one(&mut *conn)
        .await?;
    let serial = Serial::from(row);
    outbox::record(conn, tenant, id.as_uuid(), "serial.updated", &serial).await?;
    Ok((serial, true))
}

// ---- updates ----

/// Merge patch of a warehouse's code, name and active flag (`If-Match` checked).
pub async fn patch_warehouse(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WarehouseId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Warehouse, bool), DomainError> {
    let current = get_warehouse(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    let before = WarehouseInput {
        code: current.code.clone(),
        name: current.name.clone(),
        active: Some(current.active),
    };
    let after: WarehouseInput = patched(&before, patch)?;
    let mut errs = ValidationErrors::default();
    let code = code(&mut errs, &after.code);
    let name = errs.text("name", &after.name, 200);
    errs.finish(()).map_err(DomainError::Validation)?;
    let active = after.active.unwrap_or(true);
    if (code.as_str(), name.as_str(), active)
        == (current.code.as_str(), current.name.as_str(), current.active)
    {
        return Ok((current, false));
    }
    let w: Warehouse = sqlx::query_as(
        "update warehouse set code = $3, name = $4, active = $5, version = version + 1, updated_at = now()          where tenant_id = $1 and warehouse_id = $2 returning warehouse_id, code, name, active, version, created_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(&code)
    .bind(&name)
    .bind(active)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| taken(e, "warehouse_code_key", "warehouse_code_taken", format!("a warehouse with code {code} exists")))?;
    outbox::record(conn, tenant, w.id.as_uuid(), "warehouse.updated", &w).await?;
    Ok((w, true))
}

/// Merge patch of an item; whether it is serialized or an oxygen tank cannot change (its serials
/// and stock depend on it).
pub async fn patch_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ItemId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Item, bool), DomainError> {
    let current = get_item(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    let before = ItemInput {
        code: current.code.clone(),
        name: current.name.clone(),
        serialized: current.serialized,
        oxygen_tank: current.oxygen_tank,
        manufacturer: current.manufacturer.clone(),
        model_number: current.model_number.clone(),
        active: Some(current.active),
    };
    let after: ItemInput = patched(&before, patch)?;
    let mut errs = ValidationErrors::default();
    let code = code(&mut errs, &after.code);
    let name = errs.text("name", &after.name, 200);
    let manufacturer = errs.optional_text("manufacturer", after.manufacturer.as_deref(), 100);
    let model = errs.optional_text("model_number", after.model_number.as_deref(), 100);
    if after.serialized != current.serialized {
        errs.push(
            "serialized",
            "immutable",
            "cannot change once the item exists",
        );
    }
    if after.oxygen_tank != current.oxygen_tank {
        errs.push(
            "oxygen_tank",
            "immutable",
            "cannot change once the item exists",
        );
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    let active = after.active.unwrap_or(true);
    let unchanged = code == current.code
        && name == current.name
        && manufacturer == current.manufacturer
        && model == current.model_number
        && active == current.active;
    if unchanged {
        return Ok((current, false));
    }
    let sql = format!(
        "update inventory_item set code = $3, name = $4, manufacturer = $5, model_number = $6, active = $7,          version = version + 1, updated_at = now() where tenant_id = $1 and item_id = $2 returning {ITEM_COLUMNS}"
    );
    let item: Item = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&code)
        .bind(&name)
        .bind(manufacturer)
        .bind(model)
        .bind(active)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            taken(
                e,
                "inventory_item_code_key",
                "item_code_taken",
                format!("an item with code {code} exists"),
            )
        })?;
    outbox::record(conn, tenant, item.id.as_uuid(), "item.updated", &item).await?;
    Ok((item, true))
}

// ---- stock ----

use crate::dme::stock::{MovementKind, StockCounters, StockError};

/// Body of "record a stock movement". A transfer writes the out and in halves as a pair.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MovementInput {
    /// Goods received into a warehouse.
    Receipt {
        #[schema(value_type = String, format = Uuid)]
        warehouse_id: WarehouseId,
        #[schema(value_type = String, format = Uuid)]
        item_id: ItemId,
        quantity: i64,
        #[serde(default)]
        note: Option<String>,
    },
    /// A counted correction of the shelf (signed).
    Adjustment {
        #[schema(value_type = String, format = Uuid)]
        warehouse_id: WarehouseId,
        #[schema(value_type = String, format = Uuid)]
        item_id: ItemId,
        quantity: i64,
        /// Why (required for adjustments).
        note: String,
    },
    /// From one warehouse to another.
    Transfer {
        #[schema(value_type = String, format = Uuid)]
        from_warehouse_id: WarehouseId,
        #[schema(value_type = String, format = Uuid)]
        to_warehouse_id: WarehouseId,
        #[schema(value_type = String, format = Uuid)]
        item_id: ItemId,
        quantity: i64,
        #[serde(default)]
        note: Option<String>,
    },
}

/// Counters of one item in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockLevel {
    #[schema(value_type = String, format = Uuid)]
    pub warehouse_id: WarehouseId,
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    #[serde(flatten)]
    pub counters: StockCounters,
    /// On hand minus committed.
    pub available: i64,
    /// Reorder when `available` falls to this (0: no reorder point); set with
    /// `PUT /stock/reorder-points`, read by the reorder report.
    pub reorder_point: i64,
    pub version: i64,
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StockMovement {
    #[schema(value_type = String, format = Uuid)]
    pub movement_id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub warehouse_id: WarehouseId,
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    pub kind: String,
    pub quantity: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub transfer_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn kind_text(k: MovementKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

type LevelRow = (WarehouseId, ItemId, i64, i64, i64, i64, i64, i64, i64, i64);

fn level_from(r: LevelRow) -> StockLevel {
    let counters = StockCounters {
        on_hand: r.2,
        committed: r.3,
        on_order: r.4,
        rented: r.5,
        sold: r.6,
        unavailable: r.7,
    };
    StockLevel {
        warehouse_id: r.0,
        item_id: r.1,
        available: counters.available(),
        counters,
        reorder_point: r.8,
        version: r.9,
    }
}

const LEVEL_COLUMNS: &str = "warehouse_id, item_id, on_hand, committed, on_order, rented, sold, unavailable, reorder_point, version";

/// One movement to apply.
pub struct Move<'a> {
    /// The level's warehouse.
    pub warehouse: WarehouseId,
    /// The level's item.
    pub item: ItemId,
    /// What happened (decides which counters change).
    pub kind: MovementKind,
    /// Units (signed for adjustments only).
    pub quantity: i64,
    /// Pairs the halves of a transfer (or of a return into another warehouse).
    pub transfer: Option<uuid::Uuid>,
    /// Why, for people reading the ledger.
    pub note: Option<&'a str>,
}

/// Applies one movement to a level (creating the level at zero), appending the ledger line in the
/// same transaction; a movement the counters refuse is 409 `insufficient_stock`. The caller
/// records the outbox event (one per business change, not per ledger line).
pub async fn move_stock(
    conn: &mut PgConnection,
    tenant: TenantId,
    m: Move<'_>,
) -> Result<StockLevel, DomainError> {
    let Move {
        warehouse,
        item,
        kind,
        quantity,
        transfer,
        note,
    } = m;
    sqlx::query("insert into stock_level (tenant_id, warehouse_id, item_id) values ($1, $2, $3) on conflict do nothing")
        .bind(tenant)
        .bind(warehouse)
        .bind(item)
        .execute(&mut *conn)
        .await?;
    let sql = format!(
        "select {LEVEL_COLUMNS} from stock_level where tenant_id = $1 and warehouse_id = $2 and item_id = $3 for update"
    );
    let row: LevelRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(warehouse)
        .bind(item)
        .fetch_one(&mut *conn)
        .await?;
    let next = level_from(row)
        .counters
        .apply(kind, quantity)
        .map_err(|e| match e {
            StockError::NonPositive(_) | StockError::TooLarge => {
                let mut errs = ValidationErrors::default();
                errs.push("quantity", "out_of_range", e.to_string());
                DomainError::Validation(errs)
            }
            other => DomainError::Conflict {
                code: "insufficient_stock",
                detail: other.to_string(),
            },
        })?;
    sqlx::query(
        "insert into stock_movement (tenant_id, movement_id, warehouse_id, item_id, kind, quantity, transfer_id, note) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7())
    .bind(warehouse)
    .bind(item)
    .bind(kind_text(kind))
    .bind(quantity)
    .bind(transfer)
    .bind(note)
    .execute(&mut *conn)
    .await?;
    let sql = format!(
        "update stock_level set on_hand=$4, committed=$5, on_order=$6, rented=$7, sold=$8, unavailable=$9, \
         version = version + 1, updated_at = now() where tenant_id = $1 and warehouse_id = $2 and item_id = $3 \
         returning {LEVEL_COLUMNS}"
    );
    let row: LevelRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(warehouse)
        .bind(item)
        .bind(next.on_hand)
        .bind(next.committed)
        .bind(next.on_order)
        .bind(next.rented)
        .bind(next.sold)
        .bind(next.unavailable)
        .fetch_one(conn)
        .await?;
    Ok(level_from(row))
}

/// Records a movement (both halves of a transfer in one go); returns the levels it changed.
pub async fn record_movement(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &MovementInput,
) -> Result<Vec<StockLevel>, DomainError> {
    let mut errs = ValidationErrors::default();
    let check_refs = |errs: &mut ValidationErrors, ids: &[(&str, bool)]| {
        for (field, ok) in ids {
            if !ok {
                errs.push(*field, "not_found", "no such record");
            }
        }
    };
    let levels = match input {
        MovementInput::Receipt {
            warehouse_id,
            item_id,
            quantity,
            note,
        } => {
            let w = get_warehouse(conn, tenant, *warehouse_id).await.is_ok();
            let i = get_item(conn, tenant, *item_id).await.is_ok();
            check_refs(&mut errs, &[("warehouse_id", w), ("item_id", i)]);
            errs.finish(()).map_err(DomainError::Validation)?;
            vec![
                move_stock(
                    conn,
                    tenant,
                    Move {
                        warehouse: *warehouse_id,
                        item: *item_id,
                        kind: MovementKind::Received,
                        quantity: *quantity,
                        transfer: None,
                        note: note.as_deref(),
                    },
                )
                .await?,
            ]
        }
        MovementInput::Adjustment {
            warehouse_id,
            item_id,
            quantity,
            note,
        } => {
            let w = get_warehouse(conn, tenant, *warehouse_id).await.is_ok();
            let i = get_item(conn, tenant, *item_id).await.is_ok();
            check_refs(&mut errs, &[("warehouse_id", w), ("item_id", i)]);
            let note = errs.text("note", note, 500);
            if *quantity == 0 {
                errs.push(
                    "quantity",
                    "out_of_range",
                    "an adjustment changes the count",
                );
            }
            errs.finish(()).map_err(DomainError::Validation)?;
            vec![
                move_stock(
                    conn,
                    tenant,
                    Move {
                        warehouse: *warehouse_id,
                        item: *item_id,
                        kind: MovementKind::Adjustment,
                        quantity: *quantity,
                        transfer: None,
                        note: Some(&note),
                    },
                )
                .await?,
            ]
        }
        MovementInput::Transfer {
            from_warehouse_id,
            to_warehouse_id,
            item_id,
            quantity,
            note,
        } => {
            let f = get_warehouse(conn, tenant, *from_warehouse_id)
                .await
                .is_ok();
            let t = get_warehouse(conn, tenant, *to_warehouse_id).await.is_ok();
            let i = get_item(conn, tenant, *item_id).await.is_ok();
            check_refs(
                &mut errs,
                &[
                    ("from_warehouse_id", f),
                    ("to_warehouse_id", t),
                    ("item_id", i),
                ],
            );
            if from_warehouse_id == to_warehouse_id {
                errs.push(
                    "to_warehouse_id",
                    "same_warehouse",
                    "a transfer goes to another warehouse",
                );
            }
            errs.finish(()).map_err(DomainError::Validation)?;
            let pair = Some(uuid::Uuid::now_v7());
            let out = move_stock(
                conn,
                tenant,
                Move {
                    warehouse: *from_warehouse_id,
                    item: *item_id,
                    kind: MovementKind::TransferredOut,
                    quantity: *quantity,
                    transfer: pair,
                    note: note.as_deref(),
                },
            )
            .await?;
            let inn = move_stock(
                conn,
                tenant,
                Move {
                    warehouse: *to_warehouse_id,
                    item: *item_id,
                    kind: MovementKind::TransferredIn,
                    quantity: *quantity,
                    transfer: pair,
                    note: note.as_deref(),
                },
            )
            .await?;
            vec![out, inn]
        }
    };
    for level in &levels {
        outbox::record(
            conn,
            tenant,
            level.item_id.as_uuid(),
            "stock.changed",
            level,
        )
        .await?;
    }
    Ok(levels)
}

/// Stock levels, filtered by warehouse and/or item.
pub async fn stock_levels(
    conn: &mut PgConnection,
    tenant: TenantId,
    warehouse: Option<WarehouseId>,
    item: Option<ItemId>,
) -> Result<Vec<StockLevel>, DomainError> {
    let sql = format!(
        "select {LEVEL_COLUMNS} from stock_level where tenant_id = $1 and ($2::uuid is null or warehouse_id = $2) \
         and ($3::uuid is null or item_id = $3) order by warehouse_id, item_id limit 1000"
    );
    let rows: Vec<LevelRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(warehouse)
        .bind(item)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(level_from).collect())
}

/// The ledger of one (warehouse, item), oldest first.
pub async fn movements(
    conn: &mut PgConnection,
    tenant: TenantId,
    warehouse: WarehouseId,
    item: ItemId,
) -> Result<Vec<StockMovement>, DomainError> {
    Ok(sqlx::query_as(
        "select movement_id, warehouse_id, item_id, kind, quantity, transfer_id, note, created_at from stock_movement \
         where tenant_id = $1 and warehouse_id = $2 and item_id = $3 order by movement_id limit 10000",
    )
    .bind(tenant)
    .bind(warehouse)
    .bind(item)
    .fetch_all(conn)
    .await?)
}

// ---- reorder points ----

/// The most levels one `PUT /stock/reorder-points` may set.
pub const MAX_REORDER_POINTS: usize = 500;

/// Body of `PUT /stock/reorder-points`: reorder points of some (warehouse, item) levels.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderPointsInput {
    /// 1 to 500 levels, each (warehouse, item) at most once.
    pub levels: Vec<ReorderPointInput>,
}

/// One level's reorder point.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderPointInput {
    /// The level's warehouse.
    #[schema(value_type = String, format = Uuid)]
    pub warehouse_id: WarehouseId,
    /// The level's item.
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// Reorder when available stock falls to this; 0 removes the reorder point.
    pub reorder_point: i64,
}

/// Sets reorder points, creating a level with zero counters where the item was never stocked in
/// the warehouse. All or nothing: one bad entry refuses the whole request, naming it by index.
/// Answers the levels whose reorder point changed, in the order given.
pub async fn set_reorder_points(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &ReorderPointsInput,
) -> Result<Vec<StockLevel>, DomainError> {
    let mut errs = ValidationErrors::default();
    if input.levels.is_empty() || input.levels.len() > MAX_REORDER_POINTS {
        errs.push(
            "levels",
            "out_of_range",
            format!("1 to {MAX_REORDER_POINTS} levels"),
        );
    }
    for (i, l) in input.levels.iter().enumerate() {
        if !(0..=crate::dme::stock::MAX_QUANTITY).contains(&l.reorder_point) {
            errs.push(
                format!("levels[{i}].reorder_point"),
                "out_of_range",
                format!("0 to {}", crate::dme::stock::MAX_QUANTITY),
            );
        }
        if input.levels[..i]
            .iter()
            .any(|o| o.warehouse_id == l.warehouse_id && o.item_id == l.item_id)
        {
            errs.push(
                format!("levels[{i}]"),
                "duplicate",
                "this warehouse and item are listed twice",
            );
        }
        if get_warehouse(conn, tenant, l.warehouse_id).await.is_err() {
            errs.push(
                format!("levels[{i}].warehouse_id"),
                "not_found",
                "no such warehouse",
            );
        }
        if get_item(conn, tenant, l.item_id).await.is_err() {
            errs.push(format!("levels[{i}].item_id"), "not_found", "no such item");
        }
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    let mut changed = Vec::new();
    for l in &input.levels {
        let sql = format!(
            "insert into stock_level as s (tenant_id, warehouse_id, item_id, reorder_point) values ($1, $2, $3, $4) \
             on conflict (tenant_id, warehouse_id, item_id) do update set reorder_point = excluded.reorder_point, \
             version = s.version + 1, updated_at = now() where s.reorder_point <> excluded.reorder_point \
             returning {LEVEL_COLUMNS}"
        );
        let row: Option<LevelRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(l.warehouse_id)
            .bind(l.item_id)
            .bind(l.reorder_point)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = row {
            changed.push(level_from(row));
        }
    }
    if !changed.is_empty() {
        outbox::record(
            conn,
            tenant,
            uuid::Uuid::now_v7(),
            "stock.reorder_points_set",
            &changed,
        )
        .await?;
    }
    Ok(changed)
}
