//! Orders and their lines: intake → approval → delivery → pickup (DOMAIN.md §3.1).
//!
//! - An order belongs to a patient and bills a snapshot of the patient's policies in rank order
//!   (taken at creation; re-ranking the patient's policies later does not re-route an order).
//! - A line takes its defaults from the price-list row for (item, list): HCPCS, modifiers, the
//!   sale/rent type, the billing frequency and invoice dating, and the prices of its kind (rent
//!   prices for rentals, sale prices for sales). The list is the one named, else the default list
//!   of the payer of the order's first policy.
//! - Approval runs the missing-information check ([`crate::dme::orders::missing_information`]);
//!   anything missing is a 409 listing every problem. Approval commits stock in the order's
//!   warehouse (409 `insufficient_stock` when the shelf cannot cover it).
//! - Delivery hands over each approved line (a serial for serialized items, which becomes rented
//!   or sold to the patient), moves stock out (rented or sold), and starts the line's billing
//!   cursor at the delivery date.
//! - Pickup returns a rental's serial into a warehouse (it lands in maintenance) and ends the line.
//! - Cancellation (before delivery) releases committed stock.
//!
//! Every change is one transaction with an outbox event carrying the whole order (the caller adds
//! the audit row). The state machines and the check are pure, in [`crate::dme::orders`].

use crate::DomainError;
use crate::dme::codes::{self, Icd10};
use crate::dme::orders::{
    self as rules, LineFacts, LineState, MissingInfo, OrderFacts, OrderState, PatientFacts,
    PolicyFacts, PrescriberFacts, Transition,
};
use crate::dme::serials::{SerialEvent, SerialStatus};
use crate::dme::stock::MovementKind;
use crate::dme::terms::{BillItemOn, BillingFrequency, OrderType, SaleRentType};
use crate::error::{check_version, patched};
use crate::ids::{
    ItemId, LocationId, OrderId, OrderLineId, PatientId, PolicyId, PrescriberId, PriceListId,
    SerialId, TenantId, WarehouseId,
};
use crate::inventory::{self, Move};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Most lines an order may have (a claim carries far fewer; this bounds a request's work).
pub const MAX_LINES: usize = 50;

// ---- inputs ----

/// Body of "create an order". Optional fields take the defaults named on each.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[schema(value_type = String, format = Uuid)]
    pub patient_id: PatientId,
    /// Default: today (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_date: Option<NaiveDate>,
    /// Default: the patient's primary prescriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub prescriber_id: Option<PrescriberId>,
    /// Default: the patient's location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub location_id: Option<LocationId>,
    /// Where the equipment is delivered from; needed to approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub warehouse_id: Option<WarehouseId>,
    /// ICD-10-CM codes in claim order (at most 12). Default: the patient's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis_codes: Option<Vec<String>>,
    /// The patient's policies to bill, in billing order (at most 4). Default: the patient's
    /// policies in force on the order date, by rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub policy_ids: Option<Vec<PolicyId>>,
    /// Two-digit CMS place of service. Default `12` (home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_of_service: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_assignment: Option<bool>,
    /// Bill the patient only. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_pay: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Lines to add at once (more can be added while the order is new).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineInput>,
}

/// The fields of an order a merge patch may change (while it is new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderPatchable {
    order_date: NaiveDate,
    prescriber_id: Option<PrescriberId>,
    location_id: Option<LocationId>,
    warehouse_id: Option<WarehouseId>,
    diagnosis_codes: Vec<String>,
    policy_ids: Vec<PolicyId>,
    place_of_service: String,
    accept_assignment: bool,
    self_pay: bool,
    notes: Option<String>,
}

/// Body of "add a line". Optional fields default from the price-list row for (item, list).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// Default: the default price list of the payer of the order's first policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub price_list_id: Option<PriceListId>,
    /// Default: from the list row (its rental type for rentals, one-time sale otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_rent_type: Option<SaleRentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_frequency: Option<BillingFrequency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_item_on: Option<BillItemOn>,
    /// Units per billing period. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<i32>,
    /// The frequency `quantity` is ordered in (2 a `daily` billed monthly = 2 × the days of the
    /// period); absent = per billing period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_frequency: Option<BillingFrequency>,
    /// Up to four pricing modifiers. Default: the list row's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modifiers: Option<Vec<String>>,
    /// Per-unit prices, decimal strings. Default: the list row's prices of the line's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "125.40")]
    pub billable_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "80.10")]
    pub allowable_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxable: Option<bool>,
    /// 1-based pointers into the order's diagnosis codes (1 to 4 of them). Default `[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dx_pointers: Option<Vec<i16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_expires: Option<NaiveDate>,
    /// The CMN/DIF on file (a document reference) and its end date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmn_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmn_expires: Option<NaiveDate>,
}

/// The fields of a line a merge patch may change (while it is new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinePatchable {
    sale_rent_type: SaleRentType,
    billing_frequency: BillingFrequency,
    bill_item_on: BillItemOn,
    quantity: i32,
    #[serde(default)]
    ordered_frequency: Option<BillingFrequency>,
    modifiers: Vec<String>,
    billable_price: Option<Decimal>,
    allowable_price: Option<Decimal>,
    sale_billable_price: Option<Decimal>,
    sale_allowable_price: Option<Decimal>,
    taxable: bool,
    dx_pointers: Vec<i16>,
    authorization_number: Option<String>,
    authorization_expires: Option<NaiveDate>,
    cmn_reference: Option<String>,
    cmn_expires: Option<NaiveDate>,
}

/// Body of "deliver".
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverInput {
    /// Default: today (UTC). Not before the order date, not after tomorrow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<NaiveDate>,
    /// The lines delivered now, with their serials. Default: every approved line (then no line
    /// may need a serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<DeliverLine>>,
}

/// One line handed over.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverLine {
    #[schema(value_type = String, format = Uuid)]
    pub line_id: OrderLineId,
    /// Required for serialized items: an on-hand (or reserved) unit of the line's item in the
    /// order's warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub serial_id: Option<SerialId>,
}

/// Body of "pick up a line".
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupInput {
    /// Default: today (UTC). Not before delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_date: Option<NaiveDate>,
    /// Where the equipment goes (it lands in maintenance). Default: the order's warehouse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub warehouse_id: Option<WarehouseId>,
    /// The last day billed. Default: the pickup date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
}

/// Body of "cancel".
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// Why (kept on the order and in the audit trail).
    pub reason: String,
}

// ---- stored ----

/// An order with its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    #[schema(value_type = String, format = Uuid)]
    pub id: OrderId,
    /// `O000123`, unique per tenant.
    pub order_number: String,
    #[schema(value_type = String, format = Uuid)]
    pub patient_id: PatientId,
    pub state: OrderState,
    pub order_date: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub prescriber_id: Option<PrescriberId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub location_id: Option<LocationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub warehouse_id: Option<WarehouseId>,
    pub diagnosis_codes: Vec<String>,
    /// The policies billed, in billing order.
    #[schema(value_type = Vec<String>)]
    pub policy_ids: Vec<PolicyId>,
    pub place_of_service: String,
    pub accept_assignment: bool,
    pub self_pay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The first delivery's date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<NaiveDate>,
    /// Billing starts from this date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The `ETag`; any change to the order or a line increments it.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In line-number order.
    pub lines: Vec<OrderLine>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderLine {
    #[sqlx(rename = "order_line_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: OrderLineId,
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    pub line_number: i32,
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    #[schema(value_type = String, format = Uuid)]
    pub price_list_id: PriceListId,
    pub state: LineState,
    pub sale_rent_type: SaleRentType,
    pub billing_frequency: BillingFrequency,
    pub bill_item_on: BillItemOn,
    pub hcpcs: String,
    pub modifiers: Vec<String>,
    pub quantity: i32,
    /// The frequency `quantity` is ordered in; absent = per billing period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_frequency: Option<BillingFrequency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "125.40")]
    pub billable_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "80.10")]
    pub allowable_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sale_billable_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sale_allowable_price: Option<Decimal>,
    pub taxable: bool,
    pub flat_rate: bool,
    pub dx_pointers: Vec<i16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_expires: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmn_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmn_expires: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub serial_id: Option<SerialId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<NaiveDate>,
    /// Months billed so far (the billing cursor).
    pub billing_month: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dos_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dos_to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_bill_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub return_warehouse_id: Option<WarehouseId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// When billing closed the line (its last month billed, or its end date passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_on: Option<NaiveDate>,
    /// Why billing closed the line (`last_month_billed`, `end_date_passed`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// The line's own `ETag` (for `PATCH …/lines/{id}`).
    pub version: i64,
}

impl OrderLine {
    /// The line's state.
    pub fn state(&self) -> LineState {
        self.state
    }

    fn patchable(&self) -> LinePatchable {
        LinePatchable {
            sale_rent_type: self.sale_rent_type,
            billing_frequency: self.billing_frequency,
            bill_item_on: self.bill_item_on,
            quantity: self.quantity,
            ordered_frequency: self.ordered_frequency,
            modifiers: self.modifiers.clone(),
            billable_price: self.billable_price,
            allowable_price: self.allowable_price,
            sale_billable_price: self.sale_billable_price,
            sale_allowable_price: self.sale_allowable_price,
            taxable: self.taxable,
            dx_pointers: self.dx_pointers.clone(),
            authorization_number: self.authorization_number.clone(),
            authorization_expires: self.authorization_expires,
            cmn_reference: self.cmn_reference.clone(),
            cmn_expires: self.cmn_expires,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: OrderId,
    order_number: String,
    patient_id: PatientId,
    state: OrderState,
    order_date: NaiveDate,
    prescriber_id: Option<PrescriberId>,
    location_id: Option<LocationId>,
    warehouse_id: Option<WarehouseId>,
    diagnosis_codes: Vec<String>,
    policy_ids: Vec<PolicyId>,
    place_of_service: String,
    accept_assignment: bool,
    self_pay: bool,
    notes: Option<String>,
    delivery_date: Option<NaiveDate>,
    bill_date: Option<NaiveDate>,
    approved_at: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    cancel_reason: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn into_order(self, lines: Vec<OrderLine>) -> Result<Order, DomainError> {
        Ok(Order {
            id: self.order_id,
            order_number: self.order_number,
            patient_id: self.patient_id,
            state: self.state,
            order_date: self.order_date,
            prescriber_id: self.prescriber_id,
            location_id: self.location_id,
            warehouse_id: self.warehouse_id,
            diagnosis_codes: self.diagnosis_codes,
            policy_ids: self.policy_ids,
            place_of_service: self.place_of_service,
            accept_assignment: self.accept_assignment,
            self_pay: self.self_pay,
            notes: self.notes,
            delivery_date: self.delivery_date,
            bill_date: self.bill_date,
            approved_at: self.approved_at,
            canceled_at: self.canceled_at,
            cancel_reason: self.cancel_reason,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            lines,
        })
    }
}

impl Order {
    fn patchable(&self) -> OrderPatchable {
        OrderPatchable {
            order_date: self.order_date,
            prescriber_id: self.prescriber_id,
            location_id: self.location_id,
            warehouse_id: self.warehouse_id,
            diagnosis_codes: self.diagnosis_codes.clone(),
            policy_ids: self.policy_ids.clone(),
            place_of_service: self.place_of_service.clone(),
            accept_assignment: self.accept_assignment,
            self_pay: self.self_pay,
            notes: self.notes.clone(),
        }
    }
}

const ORDER_COLUMNS: &str = "o.order_id, o.order_number, o.patient_id, o.state, o.order_date, o.prescriber_id, \
    o.location_id, o.warehouse_id, o.diagnosis_codes, \
    coalesce((select array_agg(p.policy_id order by p.rank) from order_policy p \
              where p.tenant_id = o.tenant_id and p.order_id = o.order_id), '{}') as policy_ids, \
    o.place_of_service, o.accept_assignment, o.self_pay, o.notes, o.delivery_date, o.bill_date, \
    o.approved_at, o.canceled_at, o.cancel_reason, o.version, o.created_at, o.updated_at";

const LINE_COLUMNS: &str = "order_line_id, order_id, line_number, item_id, price_list_id, state, \
    sale_rent_type, billing_frequency, bill_item_on, hcpcs, modifiers, quantity, billable_price, \
    allowable_price, sale_billable_price, sale_allowable_price, taxable, flat_rate, dx_pointers, \
    authorization_number, authorization_expires, cmn_reference, cmn_expires, serial_id, \
    delivery_date, billing_month, dos_from, dos_to, next_bill_date, pickup_date, \
    return_warehouse_id, end_date, ordered_frequency, closed_on, close_reason, version";

// ---- validation helpers ----

/// A money amount sent as a JSON number or string, checked like every amount of the API
/// ([`crate::money::check_amount`]).
fn money(errs: &mut ValidationErrors, field: &str, v: Option<Decimal>) -> Option<Decimal> {
    match crate::money::check_amount(v?) {
        Ok(v) => Some(v),
        Err((code, message)) => {
            errs.push(field, code, message);
            None
        }
    }
}

fn diagnosis_codes(errs: &mut ValidationErrors, raw: &[String]) -> Vec<String> {
    if raw.len() > 12 {
        errs.push("diagnosis_codes", "too_many", "at most 12 diagnosis codes");
    }
    let mut out: Vec<String> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        match Icd10::parse(c) {
            Ok(code) => {
                let s = code.as_str().to_owned();
                if out.contains(&s) {
                    errs.push(format!("diagnosis_codes[{i}]"), "duplicate", "listed twice");
                } else {
                    out.push(s);
                }
            }
            Err(m) => errs.push(format!("diagnosis_codes[{i}]"), "invalid_format", m),
        }
    }
    out
}

fn modifiers(errs: &mut ValidationErrors, raw: &[String]) -> Vec<String> {
    match codes::parse_modifiers(raw) {
        Ok(m) => m.iter().map(|m| m.as_str().to_owned()).collect(),
        Err(e) => {
            errs.push("modifiers", "invalid_format", e);
            Vec::new()
        }
    }
}

fn dx_pointers(errs: &mut ValidationErrors, raw: &[i16]) {
    if raw.len() > 4 {
        errs.push("dx_pointers", "too_many", "at most 4 diagnosis pointers");
    }
    for (i, p) in raw.iter().enumerate() {
        if !(1..=12).contains(p) {
            errs.push(format!("dx_pointers[{i}]"), "out_of_range", "1 to 12");
        }
    }
}

fn quantity(errs: &mut ValidationErrors, q: i32) {
    if !(1..=100_000).contains(&q) {
        errs.push("quantity", "out_of_range", "1 to 100000");
    }
}

fn place_of_service(errs: &mut ValidationErrors, pos: &str) -> String {
    let pos = pos.trim().to_owned();
    if pos.len() != 2 || !pos.chars().all(|c| c.is_ascii_digit()) {
        errs.push(
            "place_of_service",
            "invalid_format",
            "a two-digit CMS place-of-service code",
        );
    }
    pos
}

/// A reference to another record that does not exist: a validation error on the field.
fn not_found(field: &str, what: &str) -> DomainError {
    let mut errs = ValidationErrors::default();
    errs.push(field, "not_found", format!("no such {what}"));
    DomainError::Validation(errs)
}

fn state_conflict(detail: String) -> DomainError {
    DomainError::Conflict {
        code: "order_state_conflict",
        detail,
    }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

// ---- reads ----

/// The order with its lines; `for_update` locks the order row (every write does, so writes to
/// one order serialise).
async fn load(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    for_update: bool,
) -> Result<Order, DomainError> {
    let lock = if for_update { " for update of o" } else { "" };
    let sql = format!(
        "select {ORDER_COLUMNS} from patient_order o where o.tenant_id = $1 and o.order_id = $2{lock}"
    );
    let row: OrderRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("order"))?;
    let sql = format!(
        "select {LINE_COLUMNS} from order_line where tenant_id = $1 and order_id = $2 order by line_number"
    );
    let lines: Vec<OrderLine> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    row.into_order(lines)
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
) -> Result<Order, DomainError> {
    load(conn, tenant, id, false).await
}

/// Filters of the order list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub patient_id: Option<PatientId>,
    pub state: Option<OrderState>,
    /// Order dates from (inclusive).
    pub from: Option<NaiveDate>,
    /// Order dates to (inclusive).
    pub to: Option<NaiveDate>,
}

/// A page of orders (each with its lines), in id order.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &OrderFilter,
) -> Result<Vec<Order>, DomainError> {
    let sql = format!(
        "select {ORDER_COLUMNS} from patient_order o where o.tenant_id = $1 and ($2::uuid is null or o.order_id > $2) \
         and ($3::uuid is null or o.patient_id = $3) and ($4::text is null or o.state = $4) \
         and ($5::date is null or o.order_date >= $5) and ($6::date is null or o.order_date <= $6) \
         order by o.order_id limit $7"
    );
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(f.patient_id)
        .bind(f.state.map(OrderState::as_str))
        .bind(f.from)
        .bind(f.to)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<OrderId> = rows.iter().map(|r| r.order_id).collect();
    let sql = format!(
        "select {LINE_COLUMNS} from order_line where tenant_id = $1 and order_id = any($2) order by order_id, line_number"
    );
    let mut lines: Vec<OrderLine> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mine: Vec<OrderLine> = lines
            .extract_if(.., |l| l.order_id == row.order_id)
            .collect();
        out.push(row.into_order(mine)?);
    }
    Ok(out)
}

// ---- facts for the check ----

#[derive(sqlx::FromRow)]
struct PatientRow {
    date_of_birth: Option<NaiveDate>,
    address: Option<sqlx::types::Json<serde_json::Value>>,
    signature_on_file: bool,
    inactive_date: Option<NaiveDate>,
    deceased_date: Option<NaiveDate>,
    primary_prescriber_id: Option<PrescriberId>,
    location_id: Option<LocationId>,
    diagnosis_codes: Vec<String>,
}

async fn patient_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PatientId,
) -> Result<Option<PatientRow>, DomainError> {
    Ok(sqlx::query_as(
        "select date_of_birth, address, signature_on_file, inactive_date, deceased_date, \
         primary_prescriber_id, location_id, diagnosis_codes from patient where tenant_id = $1 and patient_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

fn complete_address(a: Option<&serde_json::Value>) -> bool {
    let Some(a) = a else { return false };
    ["line1", "city", "state", "postal_code"].iter().all(|k| {
        a.get(k)
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.trim().is_empty())
    })
}

/// Gathers what the missing-information check looks at, in the order's transaction.
async fn facts(
    conn: &mut PgConnection,
    tenant: TenantId,
    order: &Order,
) -> Result<OrderFacts, DomainError> {
    let p = patient_row(conn, tenant, order.patient_id)
        .await?
        .ok_or(DomainError::NotFound("patient"))?;
    let patient = PatientFacts {
        date_of_birth: p.date_of_birth,
        has_address: complete_address(p.address.as_ref().map(|j| &j.0)),
        signature_on_file: p.signature_on_file,
        inactive_date: p.inactive_date,
        deceased_date: p.deceased_date,
    };
    type PolicyRow = (
        PolicyId,
        i16,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<NaiveDate>,
        Option<NaiveDate>,
        Option<NaiveDate>,
        bool,
        String,
    );
    let rows: Vec<PolicyRow> = sqlx::query_as(
        "select pp.policy_id, op.rank, pp.policy_number, pp.relationship, pp.insured_first_name, \
         pp.insured_last_name, pp.insured_date_of_birth, pp.effective_date, pp.inactive_date, py.active, py.payer_type \
         from order_policy op join patient_policy pp using (tenant_id, policy_id) \
         join payer py on py.tenant_id = pp.tenant_id and py.payer_id = pp.payer_id \
         where op.tenant_id = $1 and op.order_id = $2 order by op.rank",
    )
    .bind(tenant)
    .bind(order.id)
    .fetch_all(&mut *conn)
    .await?;
    let policies = rows
        .into_iter()
        .map(|r| PolicyFacts {
            id: r.0.as_uuid(),
            rank: r.1,
            policy_number: r.2,
            insured_is_patient: r.3 == "self",
            insured_name_and_dob: r.4.is_some() && r.5.is_some() && r.6.is_some(),
            effective_date: r.7,
            inactive_date: r.8,
            payer_active: r.9,
            payer_is_medicare: r.10 == "medicare",
        })
        .collect();
    let prescriber = match order.prescriber_id {
        None => None,
        Some(id) => {
            let row: Option<(bool, bool, Option<NaiveDate>)> = sqlx::query_as(
                "select active, pecos_enrolled, license_expires from prescriber where tenant_id = $1 and prescriber_id = $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            row.map(
                |(active, pecos_enrolled, license_expires)| PrescriberFacts {
                    active,
                    pecos_enrolled,
                    license_expires,
                },
            )
        }
    };
    let lines = order
        .lines
        .iter()
        .map(|l| LineFacts {
            id: l.id.as_uuid(),
            open: !matches!(l.state(), LineState::Canceled | LineState::Closed),
            billable_price: l.billable_price,
            allowable_price: l.allowable_price,
            needs_sale_price: l.sale_rent_type == SaleRentType::RentToPurchase,
            has_sale_price: l.sale_billable_price.is_some() && l.sale_allowable_price.is_some(),
            dx_pointers: l.dx_pointers.clone(),
            authorization_expires: l.authorization_expires,
            cmn_expires: l.cmn_expires,
        })
        .collect();
    Ok(OrderFacts {
        patient,
        policies,
        self_pay: order.self_pay,
        prescriber,
        has_warehouse: order.warehouse_id.is_some(),
        diagnosis_count: order.diagnosis_codes.len(),
        lines,
    })
}

/// What the order lacks as of a date (empty: nothing).
pub async fn missing_information(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    as_of: NaiveDate,
) -> Result<Vec<MissingInfo>, DomainError> {
    let order = load(conn, tenant, id, false).await?;
    let f = facts(conn, tenant, &order).await?;
    Ok(rules::missing_information(&f, as_of))
}

// ---- writes ----

async fn next_order_number(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<String, DomainError> {
    let n: i64 = sqlx::query_scalar(
        "insert into order_number_counter (tenant_id, last_value) values ($1, 1) \
         on conflict (tenant_id) do update set last_value = order_number_counter.last_value + 1 \
         returning last_value",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(format!("O{n:06}"))
}

/// Checks an order's references: prescriber, location and warehouse exist, and the policies to
/// bill are the patient's (at most four, no repeats). Problems go into `errs`.
async fn check_order_refs(
    conn: &mut PgConnection,
    tenant: TenantId,
    patient: PatientId,
    f: &OrderPatchable,
    errs: &mut ValidationErrors,
) -> Result<(), DomainError> {
    if let Some(id) = f.prescriber_id {
        let ok: Option<i32> = sqlx::query_scalar(
            "select 1 from prescriber where tenant_id = $1 and prescriber_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if ok.is_none() {
            errs.push("prescriber_id", "not_found", "no such prescriber");
        }
    }
    if let Some(id) = f.location_id {
        let ok: Option<i32> =
            sqlx::query_scalar("select 1 from location where tenant_id = $1 and location_id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if ok.is_none() {
            errs.push("location_id", "not_found", "no such location");
        }
    }
    if let Some(id) = f.warehouse_id
        && inventory::get_warehouse(conn, tenant, id).await.is_err()
    {
        errs.push("warehouse_id", "not_found", "no such warehouse");
    }
    if f.policy_ids.len() > 4 {
        errs.push("policy_ids", "too_many", "at most 4 policies");
    }
    for (i, id) in f.policy_ids.iter().enumerate() {
        if f.policy_ids[..i].contains(id) {
            errs.push(format!("policy_ids[{i}]"), "duplicate", "listed twice");
            continue;
        }
        let owner: Option<PatientId> = sqlx::query_scalar(
            "select patient_id from patient_policy where tenant_id = $1 and policy_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        if owner != Some(patient) {
            errs.push(
                format!("policy_ids[{i}]"),
                "not_found",
                "not one of the patient's policies",
            );
        }
    }
    Ok(())
}

async fn write_policies(
    conn: &mut PgConnection,
    tenant: TenantId,
    order: OrderId,
    policies: &[PolicyId],
) -> Result<(), DomainError> {
    sqlx::query("delete from order_policy where tenant_id = $1 and order_id = $2")
        .bind(tenant)
        .bind(order)
        .execute(&mut *conn)
        .await?;
    for (i, p) in policies.iter().enumerate() {
        sqlx::query("insert into order_policy (tenant_id, order_id, rank, policy_id) values ($1, $2, $3, $4)")
            .bind(tenant)
            .bind(order)
            .bind(i16::try_from(i + 1).unwrap_or(i16::MAX))
            .bind(p)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Creates an order (and its first lines).
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &OrderInput,
) -> Result<Order, DomainError> {
    let mut errs = ValidationErrors::default();
    let patient = patient_row(conn, tenant, input.patient_id).await?;
    let Some(patient) = patient else {
        return Err(not_found("patient_id", "patient"));
    };
    let order_date = input.order_date.unwrap_or_else(today);
    let policy_ids = match &input.policy_ids {
        Some(ids) => ids.clone(),
        None => sqlx::query_scalar(
            "select policy_id from patient_policy where tenant_id = $1 and patient_id = $2 \
             and (effective_date is null or effective_date <= $3) and (inactive_date is null or inactive_date > $3) \
             order by rank",
        )
        .bind(tenant)
        .bind(input.patient_id)
        .bind(order_date)
        .fetch_all(&mut *conn)
        .await?,
    };
    let fields = OrderPatchable {
        order_date,
        prescriber_id: input.prescriber_id.or(patient.primary_prescriber_id),
        location_id: input.location_id.or(patient.location_id),
        warehouse_id: input.warehouse_id,
        diagnosis_codes: input
            .diagnosis_codes
            .clone()
            .unwrap_or(patient.diagnosis_codes),
        policy_ids,
        place_of_service: input
            .place_of_service
            .clone()
            .unwrap_or_else(|| "12".to_owned()),
        accept_assignment: input.accept_assignment.unwrap_or(true),
        self_pay: input.self_pay.unwrap_or(false),
        notes: input.notes.clone(),
    };
    let fields = parse_order_fields(&fields, &mut errs);
    check_order_refs(conn, tenant, input.patient_id, &fields, &mut errs).await?;
    if input.lines.len() > MAX_LINES {
        errs.push("lines", "too_many", format!("at most {MAX_LINES} lines"));
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    let id = OrderId::new();
    let number = next_order_number(conn, tenant).await?;
    sqlx::query(
        "insert into patient_order (tenant_id, order_id, order_number, patient_id, order_date, prescriber_id, \
         location_id, warehouse_id, diagnosis_codes, place_of_service, accept_assignment, self_pay, notes) \
         values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
    )
    .bind(tenant)
    .bind(id)
    .bind(&number)
    .bind(input.patient_id)
    .bind(fields.order_date)
    .bind(fields.prescriber_id)
    .bind(fields.location_id)
    .bind(fields.warehouse_id)
    .bind(&fields.diagnosis_codes)
    .bind(&fields.place_of_service)
    .bind(fields.accept_assignment)
    .bind(fields.self_pay)
    .bind(&fields.notes)
    .execute(&mut *conn)
    .await?;
    write_policies(conn, tenant, id, &fields.policy_ids).await?;
    let mut order = load(conn, tenant, id, true).await?;
    for (i, line) in input.lines.iter().enumerate() {
        insert_line(
            conn,
            tenant,
            &order,
            line,
            i32::try_from(i + 1).unwrap_or(i32::MAX),
        )
        .await
        .map_err(|e| prefix_fields(e, &format!("lines[{i}].")))?;
    }
    if !input.lines.is_empty() {
        order = load(conn, tenant, id, false).await?;
    }
    outbox::record(conn, tenant, id.as_uuid(), "order.created", &order).await?;
    Ok(order)
}

/// Field errors of a nested input get its path (`lines[2].item_id`).
fn prefix_fields(e: DomainError, prefix: &str) -> DomainError {
    match e {
        DomainError::Validation(mut errs) => {
            for f in &mut errs.0 {
                f.field = format!("{prefix}{}", f.field);
            }
            DomainError::Validation(errs)
        }
        other => other,
    }
}

fn parse_order_fields(f: &OrderPatchable, errs: &mut ValidationErrors) -> OrderPatchable {
    let order_date = f.order_date;
    if order_date > today() + Days::new(1) {
        errs.push("order_date", "out_of_range", "not in the future");
    }
    let diagnosis_codes = diagnosis_codes(errs, &f.diagnosis_codes);
    let pos = place_of_service(errs, &f.place_of_service);
    let notes = errs.optional_text("notes", f.notes.as_deref(), 2000);
    OrderPatchable {
        order_date,
        diagnosis_codes,
        place_of_service: pos,
        notes,
        ..f.clone()
    }
}

/// The price-list row for (item, list), with the columns a line takes.
#[derive(sqlx::FromRow)]
struct ListRow {
    hcpcs: String,
    modifiers: Vec<String>,
    rent_billable: Option<Decimal>,
    rent_allowable: Option<Decimal>,
    sale_billable: Option<Decimal>,
    sale_allowable: Option<Decimal>,
    default_order_type: OrderType,
    rental_type: SaleRentType,
    billing_frequency: BillingFrequency,
    bill_item_on: BillItemOn,
    taxable: bool,
    flat_rate: bool,
}

/// The line's sale/rent type when the request names none: the list row's rental type for a
/// rental row (monthly rental if that type is a sale), else a one-time sale, or the re-occurring
/// sale the row names.
fn default_sale_rent_type(order_type: OrderType, rental_type: SaleRentType) -> SaleRentType {
    match order_type {
        OrderType::Rental if rental_type.is_rental() => rental_type,
        OrderType::Rental => SaleRentType::MonthlyRental,
        OrderType::Sale if rental_type == SaleRentType::ReoccurringSale => rental_type,
        OrderType::Sale => SaleRentType::OneTimeSale,
    }
}

async fn insert_line(
    conn: &mut PgConnection,
    tenant: TenantId,
    order: &Order,
    input: &LineInput,
    line_number: i32,
) -> Result<OrderLineId, DomainError> {
    let item = inventory::get_item(conn, tenant, input.item_id)
        .await
        .map_err(|_| not_found("item_id", "item"))?;
    if !item.active {
        let mut errs = ValidationErrors::default();
        errs.push("item_id", "inactive", "the item is inactive");
        return Err(DomainError::Validation(errs));
    }
    let price_list_id = match input.price_list_id {
        Some(id) => id,
        None => {
            let default: Option<Option<PriceListId>> = sqlx::query_scalar(
                "select py.default_price_list_id from order_policy op \
                 join patient_policy pp using (tenant_id, policy_id) \
                 join payer py on py.tenant_id = pp.tenant_id and py.payer_id = pp.payer_id \
                 where op.tenant_id = $1 and op.order_id = $2 order by op.rank limit 1",
            )
            .bind(tenant)
            .bind(order.id)
            .fetch_optional(&mut *conn)
            .await?;
            default.flatten().ok_or_else(|| {
                let mut errs = ValidationErrors::default();
                errs.push(
                    "price_list_id",
                    "required",
                    "name a price list: the order's first payer has no default price list",
                );
                DomainError::Validation(errs)
            })?
        }
    };
    let row: Option<ListRow> = sqlx::query_as(
        "select hcpcs, modifiers, rent_billable, rent_allowable, sale_billable, sale_allowable, default_order_type, \
         rental_type, billing_frequency, bill_item_on, taxable, flat_rate \
         from price_list_item where tenant_id = $1 and price_list_id = $2 and item_id = $3",
    )
    .bind(tenant)
    .bind(price_list_id)
    .bind(input.item_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        let known: Option<i32> = sqlx::query_scalar(
            "select 1 from price_list where tenant_id = $1 and price_list_id = $2",
        )
        .bind(tenant)
        .bind(price_list_id)
        .fetch_optional(&mut *conn)
        .await?;
        let mut errs = ValidationErrors::default();
        match known {
            None => errs.push("price_list_id", "not_found", "no such price list"),
            Some(_) => errs.push("item_id", "not_priced", "the item is not on the price list"),
        }
        return Err(DomainError::Validation(errs));
    };
    let kind = input
        .sale_rent_type
        .unwrap_or_else(|| default_sale_rent_type(row.default_order_type, row.rental_type));
    let (billable, allowable) = if kind.is_rental() {
        (row.rent_billable, row.rent_allowable)
    } else {
        (row.sale_billable, row.sale_allowable)
    };
    let (sale_billable, sale_allowable) = if kind == SaleRentType::RentToPurchase {
        (row.sale_billable, row.sale_allowable)
    } else {
        (None, None)
    };
    let fields = LinePatchable {
        sale_rent_type: kind,
        billing_frequency: input.billing_frequency.unwrap_or(if kind.is_rental() {
            row.billing_frequency
        } else {
            BillingFrequency::OneTime
        }),
        bill_item_on: input.bill_item_on.unwrap_or(row.bill_item_on),
        quantity: input.quantity.unwrap_or(1),
        ordered_frequency: input.ordered_frequency,
        modifiers: input.modifiers.clone().unwrap_or(row.modifiers),
        billable_price: input.billable_price.or(billable),
        allowable_price: input.allowable_price.or(allowable),
        sale_billable_price: sale_billable,
        sale_allowable_price: sale_allowable,
        taxable: input.taxable.unwrap_or(row.taxable),
        dx_pointers: input.dx_pointers.clone().unwrap_or_else(|| vec![1]),
        authorization_number: input.authorization_number.clone(),
        authorization_expires: input.authorization_expires,
        cmn_reference: input.cmn_reference.clone(),
        cmn_expires: input.cmn_expires,
    };
    let fields = parse_line_fields(&fields, item.serialized)?;
    let id = OrderLineId::new();
    sqlx::query(
        "insert into order_line (tenant_id, order_line_id, order_id, line_number, item_id, price_list_id, \
         sale_rent_type, billing_frequency, bill_item_on, hcpcs, modifiers, quantity, billable_price, allowable_price, \
         sale_billable_price, sale_allowable_price, taxable, flat_rate, dx_pointers, authorization_number, \
         authorization_expires, cmn_reference, cmn_expires, ordered_frequency) \
         values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24)",
    )
    .bind(tenant)
    .bind(id)
    .bind(order.id)
    .bind(line_number)
    .bind(input.item_id)
    .bind(price_list_id)
    .bind(fields.sale_rent_type)
    .bind(fields.billing_frequency)
    .bind(fields.bill_item_on)
    .bind(&row.hcpcs)
    .bind(&fields.modifiers)
    .bind(fields.quantity)
    .bind(fields.billable_price)
    .bind(fields.allowable_price)
    .bind(fields.sale_billable_price)
    .bind(fields.sale_allowable_price)
    .bind(fields.taxable)
    .bind(row.flat_rate)
    .bind(&fields.dx_pointers)
    .bind(&fields.authorization_number)
    .bind(fields.authorization_expires)
    .bind(&fields.cmn_reference)
    .bind(fields.cmn_expires)
    .bind(fields.ordered_frequency)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

fn parse_line_fields(f: &LinePatchable, serialized: bool) -> Result<LinePatchable, DomainError> {
    let mut errs = ValidationErrors::default();
    quantity(&mut errs, f.quantity);
    if serialized && f.quantity != 1 && !f.sale_rent_type.is_rental() {
        errs.push(
            "quantity",
            "out_of_range",
            "a serialized item is sold one unit (one serial) per line",
        );
    }
    let modifiers = modifiers(&mut errs, &f.modifiers);
    dx_pointers(&mut errs, &f.dx_pointers);
    let out = LinePatchable {
        modifiers,
        billable_price: money(&mut errs, "billable_price", f.billable_price),
        allowable_price: money(&mut errs, "allowable_price", f.allowable_price),
        sale_billable_price: money(&mut errs, "sale_billable_price", f.sale_billable_price),
        sale_allowable_price: money(&mut errs, "sale_allowable_price", f.sale_allowable_price),
        authorization_number: errs.optional_text(
            "authorization_number",
            f.authorization_number.as_deref(),
            50,
        ),
        cmn_reference: errs.optional_text("cmn_reference", f.cmn_reference.as_deref(), 200),
        ..f.clone()
    };
    errs.finish(out).map_err(DomainError::Validation)
}

async fn bump(conn: &mut PgConnection, tenant: TenantId, id: OrderId) -> Result<(), DomainError> {
    sqlx::query("update patient_order set version = version + 1, updated_at = now() where tenant_id = $1 and order_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

fn require(order: &Order, t: Transition) -> Result<OrderState, DomainError> {
    rules::order_transition(order.state, t).map_err(|e| state_conflict(e.to_string()))
}

/// Merge patch of a new order (If-Match on the order's version). Returns the order and whether
/// it changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Order, bool), DomainError> {
    let current = load(conn, tenant, id, true).await?;
    check_version(if_match, current.version)?;
    require(&current, Transition::Edit)?;
    let before = current.patchable();
    let wanted: OrderPatchable = patched(&before, patch)?;
    let mut errs = ValidationErrors::default();
    let f = parse_order_fields(&wanted, &mut errs);
    check_order_refs(conn, tenant, current.patient_id, &f, &mut errs).await?;
    errs.finish(()).map_err(DomainError::Validation)?;
    if f == before {
        return Ok((current, false));
    }
    sqlx::query(
        "update patient_order set order_date=$3, prescriber_id=$4, location_id=$5, warehouse_id=$6, diagnosis_codes=$7, \
         place_of_service=$8, accept_assignment=$9, self_pay=$10, notes=$11 where tenant_id = $1 and order_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(f.order_date)
    .bind(f.prescriber_id)
    .bind(f.location_id)
    .bind(f.warehouse_id)
    .bind(&f.diagnosis_codes)
    .bind(&f.place_of_service)
    .bind(f.accept_assignment)
    .bind(f.self_pay)
    .bind(&f.notes)
    .execute(&mut *conn)
    .await?;
    if f.policy_ids != before.policy_ids {
        write_policies(conn, tenant, id, &f.policy_ids).await?;
    }
    bump(conn, tenant, id).await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.updated", &order).await?;
    Ok((order, true))
}

/// Adds a line to a new order; returns the order and the new line's id.
pub async fn add_line(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    input: &LineInput,
) -> Result<(Order, OrderLineId), DomainError> {
    let order = load(conn, tenant, id, true).await?;
    require(&order, Transition::Edit)?;
    if order.lines.len() >= MAX_LINES {
        return Err(state_conflict(format!(
            "an order has at most {MAX_LINES} lines"
        )));
    }
    let next = order.lines.iter().map(|l| l.line_number).max().unwrap_or(0) + 1;
    let line = insert_line(conn, tenant, &order, input, next).await?;
    bump(conn, tenant, id).await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.line_added", &order).await?;
    Ok((order, line))
}

fn find_line(order: &Order, line: OrderLineId) -> Result<&OrderLine, DomainError> {
    order
        .lines
        .iter()
        .find(|l| l.id == line)
        .ok_or(DomainError::NotFound("order line"))
}

/// Merge patch of a line of a new order (If-Match on the line's version).
pub async fn patch_line(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    line_id: OrderLineId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Order, bool), DomainError> {
    let order = load(conn, tenant, id, true).await?;
    let line = find_line(&order, line_id)?;
    check_version(if_match, line.version)?;
    require(&order, Transition::Edit)?;
    let before = line.patchable();
    let wanted: LinePatchable = patched(&before, patch)?;
    let serialized = inventory::get_item(conn, tenant, line.item_id)
        .await?
        .serialized;
    let f = parse_line_fields(&wanted, serialized)?;
    if f == before {
        return Ok((order, false));
    }
    sqlx::query(
        "update order_line set sale_rent_type=$3, billing_frequency=$4, bill_item_on=$5, quantity=$6, modifiers=$7, \
         billable_price=$8, allowable_price=$9, sale_billable_price=$10, sale_allowable_price=$11, taxable=$12, \
         dx_pointers=$13, authorization_number=$14, authorization_expires=$15, cmn_reference=$16, cmn_expires=$17, \
         ordered_frequency=$18, version = version + 1, updated_at = now() where tenant_id = $1 and order_line_id = $2",
    )
    .bind(tenant)
    .bind(line_id)
    .bind(f.sale_rent_type)
    .bind(f.billing_frequency)
    .bind(f.bill_item_on)
    .bind(f.quantity)
    .bind(&f.modifiers)
    .bind(f.billable_price)
    .bind(f.allowable_price)
    .bind(f.sale_billable_price)
    .bind(f.sale_allowable_price)
    .bind(f.taxable)
    .bind(&f.dx_pointers)
    .bind(&f.authorization_number)
    .bind(f.authorization_expires)
    .bind(&f.cmn_reference)
    .bind(f.cmn_expires)
    .bind(f.ordered_frequency)
    .execute(&mut *conn)
    .await?;
    bump(conn, tenant, id).await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.line_updated", &order).await?;
    Ok((order, true))
}

/// Removes a line of a new order (If-Match on the line's version).
pub async fn remove_line(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    line_id: OrderLineId,
    if_match: Option<i64>,
) -> Result<Order, DomainError> {
    let order = load(conn, tenant, id, true).await?;
    let line = find_line(&order, line_id)?;
    check_version(if_match, line.version)?;
    require(&order, Transition::Edit)?;
    sqlx::query("delete from order_line where tenant_id = $1 and order_line_id = $2")
        .bind(tenant)
        .bind(line_id)
        .execute(&mut *conn)
        .await?;
    bump(conn, tenant, id).await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.line_removed", &order).await?;
    Ok(order)
}

/// Units a line takes from the shelf: one serial for serialized items, else its quantity.
fn units(line: &OrderLine, serialized: bool) -> i64 {
    if serialized {
        1
    } else {
        i64::from(line.quantity)
    }
}

async fn set_line_state(
    conn: &mut PgConnection,
    tenant: TenantId,
    line: OrderLineId,
    state: LineState,
) -> Result<(), DomainError> {
    sqlx::query(
        "update order_line set state = $3, version = version + 1, updated_at = now() where tenant_id = $1 and order_line_id = $2",
    )
    .bind(tenant)
    .bind(line)
    .bind(state.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Approves a new order: nothing may be missing as of `as_of` (else every problem is listed),
/// and its open lines' stock is committed in the order's warehouse.
pub async fn approve(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    as_of: NaiveDate,
    if_match: Option<i64>,
) -> Result<Order, DomainError> {
    let order = load(conn, tenant, id, true).await?;
    check_version(if_match, order.version)?;
    require(&order, Transition::Approve)?;
    let f = facts(conn, tenant, &order).await?;
    let missing = rules::missing_information(&f, as_of);
    if !missing.is_empty() {
        return Err(DomainError::MissingInformation(missing));
    }
    let warehouse = order
        .warehouse_id
        .ok_or_else(|| state_conflict("the order has no warehouse".into()))?;
    for line in &order.lines {
        let Some(next) = rules::line_transition(line.state(), Transition::Approve) else {
            continue;
        };
        let serialized = inventory::get_item(conn, tenant, line.item_id)
            .await?
            .serialized;
        inventory::move_stock(
            conn,
            tenant,
            Move {
                warehouse,
                item: line.item_id,
                kind: MovementKind::Committed,
                quantity: units(line, serialized),
                transfer: None,
                note: Some(&format!(
                    "order {} line {}",
                    order.order_number, line.line_number
                )),
            },
        )
        .await?;
        set_line_state(conn, tenant, line.id, next).await?;
    }
    sqlx::query(
        "update patient_order set state = 'approved', approved_at = now(), version = version + 1, updated_at = now() \
         where tenant_id = $1 and order_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.approved", &order).await?;
    Ok(order)
}

/// Cancels an order before delivery; committed stock is released.
pub async fn cancel(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    input: &CancelInput,
    if_match: Option<i64>,
) -> Result<Order, DomainError> {
    let mut errs = ValidationErrors::default();
    let reason = errs.text("reason", &input.reason, 500);
    errs.finish(()).map_err(DomainError::Validation)?;
    let order = load(conn, tenant, id, true).await?;
    check_version(if_match, order.version)?;
    require(&order, Transition::Cancel)?;
    if let Some(l) = order.lines.iter().find(|l| {
        matches!(
            l.state(),
            LineState::Delivered | LineState::Pickup | LineState::Closed
        )
    }) {
        return Err(state_conflict(format!(
            "line {} is {}: an order with deliveries cannot be canceled",
            l.line_number,
            l.state()
        )));
    }
    for line in &order.lines {
        if line.state() == LineState::Approved
            && let Some(warehouse) = order.warehouse_id
        {
            let serialized = inventory::get_item(conn, tenant, line.item_id)
                .await?
                .serialized;
            inventory::move_stock(
                conn,
                tenant,
                Move {
                    warehouse,
                    item: line.item_id,
                    kind: MovementKind::Uncommitted,
                    quantity: units(line, serialized),
                    transfer: None,
                    note: Some(&format!("order {} canceled", order.order_number)),
                },
            )
            .await?;
        }
        if let Some(next) = rules::line_transition(line.state(), Transition::Cancel) {
            set_line_state(conn, tenant, line.id, next).await?;
        }
    }
    sqlx::query(
        "update patient_order set state = 'canceled', canceled_at = now(), cancel_reason = $3, version = version + 1, \
         updated_at = now() where tenant_id = $1 and order_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(&reason)
    .execute(&mut *conn)
    .await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.canceled", &order).await?;
    Ok(order)
}

/// Delivers approved lines: serials handed over (rented or sold to the patient), stock moved out
/// of the order's warehouse, billing cursors started at the delivery date.
pub async fn deliver(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    input: &DeliverInput,
    if_match: Option<i64>,
) -> Result<Order, DomainError> {
    let order = load(conn, tenant, id, true).await?;
    check_version(if_match, order.version)?;
    require(&order, Transition::Deliver)?;
    let date = input.delivery_date.unwrap_or_else(today);
    let mut errs = ValidationErrors::default();
    if date < order.order_date {
        errs.push("delivery_date", "out_of_range", "not before the order date");
    } else if date > today() + Days::new(1) {
        errs.push(
            "delivery_date",
            "out_of_range",
            "a delivery is recorded once it happened",
        );
    }
    let wanted: Vec<DeliverLine> = match &input.lines {
        Some(lines) => lines.clone(),
        None => order
            .lines
            .iter()
            .filter(|l| l.state() == LineState::Approved)
            .map(|l| DeliverLine {
                line_id: l.id,
                serial_id: None,
            })
            .collect(),
    };
    if wanted.is_empty() {
        return Err(state_conflict(
            "the order has no approved line left to deliver".into(),
        ));
    }
    let warehouse = order
        .warehouse_id
        .ok_or_else(|| state_conflict("the order has no warehouse".into()))?;
    // Validate every line before changing anything, so the client gets all problems at once.
    let mut plan = Vec::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        let field = |f: &str| format!("lines[{i}].{f}");
        if wanted[..i].iter().any(|o| o.line_id == w.line_id) {
            errs.push(field("line_id"), "duplicate", "listed twice");
            continue;
        }
        if let Some(s) = w.serial_id
            && wanted[..i].iter().any(|o| o.serial_id == Some(s))
        {
            errs.push(field("serial_id"), "duplicate", "one serial per line");
            continue;
        }
        let Some(line) = order.lines.iter().find(|l| l.id == w.line_id) else {
            errs.push(field("line_id"), "not_found", "not a line of this order");
            continue;
        };
        if rules::line_transition(line.state(), Transition::Deliver).is_none() {
            return Err(state_conflict(format!(
                "line {} is {}: only approved lines are delivered",
                line.line_number,
                line.state()
            )));
        }
        let item = inventory::get_item(conn, tenant, line.item_id).await?;
        match (item.serialized, w.serial_id) {
            (true, None) => errs.push(
                field("serial_id"),
                "required",
                "the item is serialized: name the unit delivered",
            ),
            (false, Some(_)) => errs.push(
                field("serial_id"),
                "not_serialized",
                "the item has no serial numbers",
            ),
            (true, Some(s)) => match inventory::get_serial(conn, tenant, s).await {
                Err(_) => errs.push(field("serial_id"), "not_found", "no such serial"),
                Ok(serial) if serial.item_id != line.item_id => errs.push(
                    field("serial_id"),
                    "wrong_item",
                    "the serial is a unit of another item",
                ),
                Ok(serial)
                    if matches!(
                        serial.state.status,
                        SerialStatus::OnHand | SerialStatus::Reserved
                    ) && serial.state.warehouse != Some(warehouse.as_uuid()) =>
                {
                    return Err(DomainError::Conflict {
                        code: "serial_unavailable",
                        detail: format!(
                            "serial {} is in another warehouse than the order's",
                            serial.serial_number
                        ),
                    });
                }
                Ok(_) => {}
            },
            (false, None) => {}
        }
        plan.push((line.clone(), item.serialized, w.serial_id));
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    let patient = order.patient_id.as_uuid();
    for (line, serialized, serial) in &plan {
        let rental = line.sale_rent_type.is_rental();
        if let Some(s) = serial {
            let event = if rental {
                SerialEvent::Rent { patient }
            } else {
                SerialEvent::Sell { patient }
            };
            inventory::record_event(conn, tenant, *s, &event, None).await?;
        }
        inventory::move_stock(
            conn,
            tenant,
            Move {
                warehouse,
                item: line.item_id,
                kind: if rental {
                    MovementKind::RentedOut
                } else {
                    MovementKind::SoldOut
                },
                quantity: units(line, *serialized),
                transfer: None,
                note: Some(&format!(
                    "order {} line {} delivered",
                    order.order_number, line.line_number
                )),
            },
        )
        .await?;
        // The first charge's invoice date depends on the line's invoice dating (the delivery day,
        // the month's or the period's last day, or the pickup).
        let delivered = OrderLine {
            delivery_date: Some(date),
            dos_from: Some(date),
            ..line.clone()
        };
        let next_bill_date = crate::billing_runs::billing_line(&delivered)
            .and_then(|b| crate::dme::billing::next_invoice_date(&b));
        sqlx::query(
            "update order_line set state = 'delivered', serial_id = $3, delivery_date = $4, dos_from = $4, \
             next_bill_date = $5, version = version + 1, updated_at = now() where tenant_id = $1 and order_line_id = $2",
        )
        .bind(tenant)
        .bind(line.id)
        .bind(serial)
        .bind(date)
        .bind(next_bill_date)
        .execute(&mut *conn)
        .await
        .map_err(|e| match crate::error::unique_violation(&e) {
            Some("order_line_open_serial_idx") => DomainError::Conflict {
                code: "serial_unavailable",
                detail: "the serial is delivered on another open line".into(),
            },
            _ => DomainError::Database(e),
        })?;
    }
    sqlx::query(
        "update patient_order set delivery_date = coalesce(delivery_date, $3), bill_date = coalesce(bill_date, $3), \
         version = version + 1, updated_at = now() where tenant_id = $1 and order_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(date)
    .execute(&mut *conn)
    .await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.delivered", &order).await?;
    Ok(order)
}

/// Picks up a delivered rental line: its serial returns into a warehouse (into maintenance), the
/// stock follows, and the line ends at its end date.
pub async fn pickup(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: OrderId,
    line_id: OrderLineId,
    input: &PickupInput,
    if_match: Option<i64>,
) -> Result<Order, DomainError> {
    let order = load(conn, tenant, id, true).await?;
    let line = find_line(&order, line_id)?.clone();
    check_version(if_match, line.version)?;
    require(&order, Transition::Pickup)?;
    if rules::line_transition(line.state(), Transition::Pickup).is_none() {
        return Err(state_conflict(format!(
            "line {} is {}: only delivered lines are picked up",
            line.line_number,
            line.state()
        )));
    }
    if !line.sale_rent_type.is_rental() {
        return Err(state_conflict(format!(
            "line {} was sold ({}): sold equipment is not picked up",
            line.line_number, line.sale_rent_type
        )));
    }
    let from = order
        .warehouse_id
        .ok_or_else(|| state_conflict("the order has no warehouse".into()))?;
    let to = input.warehouse_id.unwrap_or(from);
    let date = input.pickup_date.unwrap_or_else(today);
    let end = input.end_date.unwrap_or(date);
    let mut errs = ValidationErrors::default();
    if line.delivery_date.is_some_and(|d| date < d) {
        errs.push("pickup_date", "out_of_range", "not before the delivery");
    } else if date > today() + Days::new(1) {
        errs.push(
            "pickup_date",
            "out_of_range",
            "a pickup is recorded once it happened",
        );
    }
    if line.delivery_date.is_some_and(|d| end < d) {
        errs.push("end_date", "out_of_range", "not before the delivery");
    }
    if input.warehouse_id.is_some() && inventory::get_warehouse(conn, tenant, to).await.is_err() {
        errs.push("warehouse_id", "not_found", "no such warehouse");
    }
    errs.finish(()).map_err(DomainError::Validation)?;
    if let Some(s) = line.serial_id {
        inventory::record_event(
            conn,
            tenant,
            s,
            &SerialEvent::Return {
                warehouse: to.as_uuid(),
            },
            None,
        )
        .await?;
    }
    let serialized = inventory::get_item(conn, tenant, line.item_id)
        .await?
        .serialized;
    let n = units(&line, serialized);
    let note = format!(
        "order {} line {} picked up",
        order.order_number, line.line_number
    );
    if to == from {
        inventory::move_stock(
            conn,
            tenant,
            Move {
                warehouse: from,
                item: line.item_id,
                kind: MovementKind::Returned,
                quantity: n,
                transfer: None,
                note: Some(&note),
            },
        )
        .await?;
    } else {
        let pair = Some(uuid::Uuid::now_v7());
        for (warehouse, kind) in [
            (from, MovementKind::ReturnedToOther),
            (to, MovementKind::ReturnedFromOther),
        ] {
            inventory::move_stock(
                conn,
                tenant,
                Move {
                    warehouse,
                    item: line.item_id,
                    kind,
                    quantity: n,
                    transfer: pair,
                    note: Some(&note),
                },
            )
            .await?;
        }
    }
    // The pickup ends billing (and dates a day-of-pickup line's charge): the next invoice date moves.
    let picked = OrderLine {
        pickup_date: Some(date),
        end_date: Some(end),
        ..line.clone()
    };
    let next_bill_date = crate::billing_runs::billing_line(&picked)
        .and_then(|b| crate::dme::billing::next_invoice_date(&b));
    sqlx::query(
        "update order_line set state = 'pickup', pickup_date = $3, end_date = $4, return_warehouse_id = $5, \
         next_bill_date = $6, version = version + 1, updated_at = now() where tenant_id = $1 and order_line_id = $2",
    )
    .bind(tenant)
    .bind(line_id)
    .bind(date)
    .bind(end)
    .bind(to)
    .bind(next_bill_date)
    .execute(&mut *conn)
    .await?;
    bump(conn, tenant, id).await?;
    let order = load(conn, tenant, id, false).await?;
    outbox::record(conn, tenant, id.as_uuid(), "order.line_picked_up", &order).await?;
    Ok(order)
}

/// After a fee-schedule import into `list`, carries the new allowables to the list's order lines
/// that are still new (approved lines keep the price they were approved with): a rental line takes
/// the rent allowable, a sale the sale allowable, and rent to purchase also the sale allowable of
/// its last month. Returns the lines changed (with `dry_run`, the lines that would change, and
/// nothing is written).
pub async fn reprice_new_lines(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    changes: &[crate::price_lists::AllowableChange],
    dry_run: bool,
) -> Result<Vec<OrderLineId>, DomainError> {
    const NEW_ALLOWABLE: &str = "case when sale_rent_type in ('one_time_sale', 'reoccurring_sale') \
        then coalesce($5, allowable_price) else coalesce($4, allowable_price) end";
    const NEW_SALE: &str = "case when sale_rent_type = 'rent_to_purchase' \
        then coalesce($5, sale_allowable_price) else sale_allowable_price end";
    let filter = format!(
        "tenant_id = $1 and price_list_id = $2 and item_id = $3 and state = 'new' \
         and (allowable_price is distinct from ({NEW_ALLOWABLE}) or sale_allowable_price is distinct from ({NEW_SALE}))"
    );
    let sql = if dry_run {
        format!("select order_line_id, order_id from order_line where {filter}")
    } else {
        format!(
            "update order_line set allowable_price = {NEW_ALLOWABLE}, sale_allowable_price = {NEW_SALE}, \
             version = version + 1, updated_at = now() where {filter} returning order_line_id, order_id"
        )
    };
    let mut lines = Vec::new();
    let mut orders: Vec<OrderId> = Vec::new();
    for c in changes {
        let rows: Vec<(OrderLineId, OrderId)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant)
            .bind(list)
            .bind(c.item_id)
            .bind(c.rent_allowable_after)
            .bind(c.sale_allowable_after)
            .fetch_all(&mut *conn)
            .await?;
        for (line, order) in rows {
            lines.push(line);
            if !orders.contains(&order) {
                orders.push(order);
            }
        }
    }
    if !dry_run {
        for order in orders {
            bump(conn, tenant, order).await?;
            let o = load(conn, tenant, order, false).await?;
            outbox::record(conn, tenant, order.as_uuid(), "order.repriced", &o).await?;
        }
    }
    lines.sort();
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_rent_type_defaults_follow_the_list_row() {
        use OrderType::*;
        use SaleRentType::*;
        let table = [
            (Rental, CappedRental, CappedRental),
            (Rental, MedicareOxygenRental, MedicareOxygenRental),
            (Rental, OneTimeSale, MonthlyRental),
            (Sale, CappedRental, OneTimeSale),
            (Sale, ReoccurringSale, ReoccurringSale),
        ];
        for (order_type, rental_type, expected) in table {
            assert_eq!(default_sale_rent_type(order_type, rental_type), expected);
        }
    }

    #[test]
    fn money_is_checked_and_printed_with_two_places() {
        let mut errs = ValidationErrors::default();
        assert_eq!(
            money(&mut errs, "p", Some(Decimal::new(801, 1))).map(|d| d.to_string()),
            Some("80.10".to_owned())
        );
        assert!(errs.is_empty());
        money(&mut errs, "a", Some(Decimal::new(-1, 2)));
        money(&mut errs, "b", Some(Decimal::new(1001, 3)));
        money(&mut errs, "c", Some(Decimal::new(10_000_000_000, 0)));
        assert_eq!(
            errs.0
                .iter()
                .map(|e| (e.field.as_str(), e.code.as_str()))
                .collect::<Vec<_>>(),
            [
                ("a", "negative"),
                ("b", "too_many_decimals"),
                ("c", "out_of_range")
            ]
        );
    }

    #[test]
    fn line_fields_are_validated_by_name() {
        let f = LinePatchable {
            sale_rent_type: SaleRentType::OneTimeSale,
            billing_frequency: BillingFrequency::OneTime,
            bill_item_on: BillItemOn::DayOfDelivery,
            quantity: 2,
            ordered_frequency: None,
            modifiers: vec!["NU".into(), "n".into()],
            billable_price: None,
            allowable_price: Some(Decimal::new(-5, 0)),
            sale_billable_price: None,
            sale_allowable_price: None,
            taxable: false,
            dx_pointers: vec![0, 13],
            authorization_number: None,
            authorization_expires: None,
            cmn_reference: None,
            cmn_expires: None,
        };
        let Err(DomainError::Validation(errs)) = parse_line_fields(&f, true) else {
            panic!("expected validation errors");
        };
        assert_eq!(
            errs.0.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            [
                "quantity",
                "modifiers",
                "dx_pointers[0]",
                "dx_pointers[1]",
                "allowable_price"
            ]
        );
    }

    #[test]
    fn complete_addresses_have_every_part() {
        let full = serde_json::json!({"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"});
        assert!(complete_address(Some(&full)));
        let mut partial = full.clone();
        partial["city"] = serde_json::json!(" ");
        assert!(!complete_address(Some(&partial)));
        assert!(!complete_address(None));
    }
}
