//! Price lists (legacy `tbl_pricecode`) and their rows per inventory item (`tbl_pricecode_item`):
//! the HCPCS billing code, up to four modifiers, rent and sale prices (billable and allowable),
//! and the defaults an order line takes from its list (order type, sale/rent type, billing
//! frequency, invoice dating, taxable, flat rate). Two bulk operations change a list's prices:
//! the CMS DMEPOS fee-schedule import (allowables, DOMAIN.md §3.6) and a percentage adjustment.
//!
//! Amounts are `Decimal`s with two places in Rust, `numeric(12,2)` in SQL and decimal strings
//! (`"125.40"`) in JSON; [`crate::money`] parses and rounds them.

use crate::dme::codes::{Hcpcs, Modifier};
use crate::dme::fee_schedule::{self, ImportError, ListedAllowables};
use crate::dme::terms::{BillItemOn, BillingFrequency, OrderType, SaleRentType};
use crate::error::{DomainError, check_version, patched, unique_violation};
use crate::ids::{ItemId, PriceListId, TenantId};
use crate::money::{MAX_AMOUNT, cents, parse_amount, parse_percent};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::BTreeSet;
use std::str::FromStr;

/// `amount × (1 + percent/100)`, rounded half-up to the cent once; `None` when the result would
/// not fit `numeric(12,2)`.
pub fn adjust_amount(amount: Decimal, percent: Decimal) -> Option<Decimal> {
    let factor = Decimal::ONE_HUNDRED.checked_add(percent)?;
    let raw = amount
        .checked_mul(factor)?
        .checked_div(Decimal::ONE_HUNDRED)?;
    let v = cents(raw);
    (v <= MAX_AMOUNT && v >= Decimal::ZERO).then_some(v)
}

fn money_field(errs: &mut ValidationErrors, field: &str, raw: Option<&str>) -> Option<Decimal> {
    let raw = raw?;
    match parse_amount(raw) {
        Ok(v) => Some(v),
        Err((code, message)) => {
            errs.push(field, code, message);
            None
        }
    }
}

fn term_field<T: FromStr<Err = String>>(
    errs: &mut ValidationErrors,
    field: &str,
    raw: Option<&str>,
    default: T,
) -> T {
    match raw.map(str::trim) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|msg: String| {
            errs.push(field, "invalid_value", msg);
            default
        }),
    }
}

fn field_error(field: &str, code: &str, message: impl Into<String>) -> DomainError {
    let mut errs = ValidationErrors::default();
    errs.push(field, code, message);
    DomainError::Validation(errs)
}

fn corrupt(what: impl std::fmt::Display) -> DomainError {
    DomainError::Database(sqlx::Error::Decode(what.to_string().into()))
}

// ---- price lists ----

/// The writable fields of a price list (`POST` whole, `PATCH` as a merge patch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceListInput {
    /// Unique within the tenant (`Medicare TX`, `Retail`).
    pub name: String,
    /// What the list is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Inactive lists keep their rows but should not be chosen for new orders (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Validated fields of a price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceListFields {
    /// Trimmed, 1 to 200 characters.
    pub name: String,
    /// Trimmed; blank becomes none.
    pub description: Option<String>,
    /// Whether new orders may use it.
    pub active: bool,
}

impl PriceListInput {
    /// All the problems at once, each naming its field.
    pub fn parse(&self) -> Result<PriceListFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.text("name", &self.name, 200);
        let description = errs.optional_text("description", self.description.as_deref(), 1000);
        errs.finish(PriceListFields {
            name,
            description,
            active: self.active.unwrap_or(true),
        })
    }
}

/// A stored price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PriceList {
    /// The list's id (UUIDv7).
    #[sqlx(rename = "price_list_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: PriceListId,
    /// Unique within the tenant.
    pub name: String,
    /// What the list is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether new orders may use it.
    pub active: bool,
    /// The `ETag`; changes with the list's own fields (its rows have versions of their own).
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its own fields last changed.
    pub updated_at: DateTime<Utc>,
}

impl PriceList {
    fn to_input(&self) -> PriceListInput {
        PriceListInput {
            name: self.name.clone(),
            description: self.description.clone(),
            active: Some(self.active),
        }
    }
}

const LIST_COLUMNS: &str =
    "price_list_id, name, description, active, version, created_at, updated_at";

fn name_taken(e: sqlx::Error, name: &str) -> DomainError {
    if unique_violation(&e) == Some("price_list_name_key") {
        DomainError::Conflict {
            code: "price_list_name_taken",
            detail: format!("a price list named {name} exists"),
        }
    } else {
        DomainError::Database(e)
    }
}

/// Creates a price list.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &PriceListInput,
) -> Result<PriceList, DomainError> {
    let f = input.parse()?;
    let sql = format!(
        "insert into price_list (tenant_id, price_list_id, name, description, active) values ($1,$2,$3,$4,$5) \
         returning {LIST_COLUMNS}"
    );
    let list: PriceList = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(PriceListId::new())
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| name_taken(e, &f.name))?;
    outbox::record(conn, tenant, list.id.as_uuid(), "price_list.created", &list).await?;
    Ok(list)
}

/// One price list.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PriceListId,
) -> Result<PriceList, DomainError> {
    let sql = format!(
        "select {LIST_COLUMNS} from price_list where tenant_id = $1 and price_list_id = $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("price list"))
}

/// Locks the list's row until the transaction ends, so bulk changes of one list run one at a time.
async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PriceListId,
) -> Result<PriceList, DomainError> {
    let sql = format!(
        "select {LIST_COLUMNS} from price_list where tenant_id = $1 and price_list_id = $2 for update"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("price list"))
}

/// Whether a price list exists (for references to it, such as a payer's default list).
pub async fn exists(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PriceListId,
) -> Result<bool, DomainError> {
    let found: Option<(i32,)> =
        sqlx::query_as("select 1 from price_list where tenant_id = $1 and price_list_id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// Filters of the list of price lists.
#[derive(Debug, Clone, Default)]
pub struct PriceListFilter {
    /// Substring of the name (case-insensitive).
    pub q: Option<String>,
    /// Active or not.
    pub active: Option<bool>,
}

/// Price lists in id order.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &PriceListFilter,
) -> Result<Vec<PriceList>, DomainError> {
    let sql = format!(
        "select {LIST_COLUMNS} from price_list where tenant_id = $1 and ($2::uuid is null or price_list_id > $2) \
         and ($3::text is null or name ilike '%' || $3 || '%') and ($4::boolean is null or active = $4) \
         order by price_list_id limit $5"
    );
    let q = f.q.as_deref().map(|q| {
        q.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    });
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(q)
        .bind(f.active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

/// Merge patch with `If-Match`; returns the list and whether it changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: PriceListId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(PriceList, bool), DomainError> {
    let current = lock(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    let f = patched(&current.to_input(), patch)?.parse()?;
    if f == current.to_input().parse()? {
        return Ok((current, false));
    }
    let sql = format!(
        "update price_list set name = $3, description = $4, active = $5, version = version + 1, updated_at = now() \
         where tenant_id = $1 and price_list_id = $2 returning {LIST_COLUMNS}"
    );
    let list: PriceList = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| name_taken(e, &f.name))?;
    outbox::record(conn, tenant, list.id.as_uuid(), "price_list.updated", &list).await?;
    Ok((list, true))
}

// ---- price list items ----

/// Body of `PUT /price-lists/{id}/items/{item_id}`: the whole row (absent prices are unpriced,
/// absent defaults take the documented default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceListItemInput {
    /// HCPCS Level II billing code (`E0601`).
    pub hcpcs: String,
    /// Up to four two-character modifiers, in claim order (`["RR", "KH"]`).
    #[serde(default)]
    pub modifiers: Vec<String>,
    /// Monthly rental price billed (usual and customary), e.g. `"125.40"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rent_billable: Option<String>,
    /// Monthly rental price the payer allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rent_allowable: Option<String>,
    /// Purchase price billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_billable: Option<String>,
    /// Purchase price the payer allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_allowable: Option<String>,
    /// `sale` (default) or `rental`: what a new order line does with the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_order_type: Option<String>,
    /// A sale/rent type (`capped_rental`…; default `monthly_rental`): the billing rule of a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rental_type: Option<String>,
    /// How often a line bills (default `monthly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_frequency: Option<String>,
    /// Which day an invoice is dated (default `day_of_delivery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_item_on: Option<String>,
    /// Sales tax applies (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxable: Option<bool>,
    /// Billed as a flat amount whatever the quantity (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_rate: Option<bool>,
}

/// Validated fields of a price-list row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceListItemFields {
    /// Billing code.
    pub hcpcs: Hcpcs,
    /// Up to four, distinct.
    pub modifiers: Vec<Modifier>,
    /// Prices with two places, none where unpriced.
    pub prices: Prices,
    /// Default order type of a new line.
    pub default_order_type: OrderType,
    /// Sale/rent type of a new line.
    pub rental_type: SaleRentType,
    /// Billing frequency of a new line.
    pub billing_frequency: BillingFrequency,
    /// Invoice dating of a new line.
    pub bill_item_on: BillItemOn,
    /// Sales tax applies.
    pub taxable: bool,
    /// Billed as a flat amount.
    pub flat_rate: bool,
}

impl PriceListItemInput {
    /// All the problems at once, each naming its field (`modifiers[1]`, `sale_allowable`…).
    pub fn parse(&self) -> Result<PriceListItemFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let hcpcs = Hcpcs::parse(&self.hcpcs)
            .map_err(|m| errs.push("hcpcs", "invalid_format", m))
            .ok();
        let mut modifiers: Vec<Modifier> = Vec::new();
        if self.modifiers.len() > 4 {
            errs.push("modifiers", "too_many", "at most four modifiers");
        }
        for (i, raw) in self.modifiers.iter().enumerate() {
            match Modifier::parse(raw) {
                Ok(m) if modifiers.contains(&m) => errs.push(
                    format!("modifiers[{i}]"),
                    "duplicate",
                    format!("modifier {m} appears twice"),
                ),
                Ok(m) => modifiers.push(m),
                Err(msg) => errs.push(format!("modifiers[{i}]"), "invalid_format", msg),
            }
        }
        let prices = Prices {
            rent_billable: money_field(&mut errs, "rent_billable", self.rent_billable.as_deref()),
            rent_allowable: money_field(
                &mut errs,
                "rent_allowable",
                self.rent_allowable.as_deref(),
            ),
            sale_billable: money_field(&mut errs, "sale_billable", self.sale_billable.as_deref()),
            sale_allowable: money_field(
                &mut errs,
                "sale_allowable",
                self.sale_allowable.as_deref(),
            ),
        };
        let default_order_type = term_field(
            &mut errs,
            "default_order_type",
            self.default_order_type.as_deref(),
            OrderType::Sale,
        );
        let rental_type = term_field(
            &mut errs,
            "rental_type",
            self.rental_type.as_deref(),
            SaleRentType::MonthlyRental,
        );
        let billing_frequency = term_field(
            &mut errs,
            "billing_frequency",
            self.billing_frequency.as_deref(),
            BillingFrequency::Monthly,
        );
        let bill_item_on = term_field(
            &mut errs,
            "bill_item_on",
            self.bill_item_on.as_deref(),
            BillItemOn::DayOfDelivery,
        );
        let Some(hcpcs) = hcpcs else {
            return Err(errs);
        };
        errs.finish(PriceListItemFields {
            hcpcs,
            modifiers,
            prices,
            default_order_type,
            rental_type,
            billing_frequency,
            bill_item_on,
            taxable: self.taxable.unwrap_or(false),
            flat_rate: self.flat_rate.unwrap_or(false),
        })
    }
}

/// A row's four prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Prices {
    /// Monthly rental price billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "125.40")]
    pub rent_billable: Option<Decimal>,
    /// Monthly rental price allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "80.10")]
    pub rent_allowable: Option<Decimal>,
    /// Purchase price billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "1250.00")]
    pub sale_billable: Option<Decimal>,
    /// Purchase price allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "801.00")]
    pub sale_allowable: Option<Decimal>,
}

impl Prices {
    /// The price named by `field`.
    pub fn get(&self, field: PriceField) -> Option<Decimal> {
        match field {
            PriceField::RentBillable => self.rent_billable,
            PriceField::RentAllowable => self.rent_allowable,
            PriceField::SaleBillable => self.sale_billable,
            PriceField::SaleAllowable => self.sale_allowable,
        }
    }

    fn set(&mut self, field: PriceField, v: Option<Decimal>) {
        match field {
            PriceField::RentBillable => self.rent_billable = v,
            PriceField::RentAllowable => self.rent_allowable = v,
            PriceField::SaleBillable => self.sale_billable = v,
            PriceField::SaleAllowable => self.sale_allowable = v,
        }
    }
}

/// One of a row's four prices.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PriceField {
    RentBillable,
    RentAllowable,
    SaleBillable,
    SaleAllowable,
}

/// A price-list row as stored: what an order line takes its defaults from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceListItem {
    /// The list the row belongs to.
    #[schema(value_type = String, format = Uuid)]
    pub price_list_id: PriceListId,
    /// The inventory item it prices (one row per item and list).
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// HCPCS billing code.
    #[schema(value_type = String, example = "E0601")]
    pub hcpcs: Hcpcs,
    /// Up to four modifiers, in claim order.
    #[schema(value_type = Vec<String>)]
    pub modifiers: Vec<Modifier>,
    /// The four prices; absent where unpriced.
    #[serde(flatten)]
    pub prices: Prices,
    /// What a new order line does with the item.
    pub default_order_type: OrderType,
    /// A new line's sale/rent type (its billing rule).
    pub rental_type: SaleRentType,
    /// How often a new line bills.
    pub billing_frequency: BillingFrequency,
    /// Which day a new line's invoices are dated.
    pub bill_item_on: BillItemOn,
    /// Sales tax applies.
    pub taxable: bool,
    /// Billed as a flat amount whatever the quantity.
    pub flat_rate: bool,
    /// The `ETag` of the row.
    pub version: i64,
    /// When the row was first put.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (by a put, an import or an adjustment).
    pub updated_at: DateTime<Utc>,
}

impl PriceListItem {
    fn fields(&self) -> PriceListItemFields {
        PriceListItemFields {
            hcpcs: self.hcpcs.clone(),
            modifiers: self.modifiers.clone(),
            prices: self.prices,
            default_order_type: self.default_order_type,
            rental_type: self.rental_type,
            billing_frequency: self.billing_frequency,
            bill_item_on: self.bill_item_on,
            taxable: self.taxable,
            flat_rate: self.flat_rate,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    price_list_id: PriceListId,
    item_id: ItemId,
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
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ItemRow> for PriceListItem {
    type Error = DomainError;
    fn try_from(r: ItemRow) -> Result<Self, DomainError> {
        Ok(PriceListItem {
            price_list_id: r.price_list_id,
            item_id: r.item_id,
            hcpcs: Hcpcs::parse(&r.hcpcs).map_err(corrupt)?,
            modifiers: r
                .modifiers
                .iter()
                .map(|m| Modifier::parse(m))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?,
            prices: Prices {
                rent_billable: r.rent_billable,
                rent_allowable: r.rent_allowable,
                sale_billable: r.sale_billable,
                sale_allowable: r.sale_allowable,
            },
            default_order_type: r.default_order_type,
            rental_type: r.rental_type,
            billing_frequency: r.billing_frequency,
            bill_item_on: r.bill_item_on,
            taxable: r.taxable,
            flat_rate: r.flat_rate,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const ITEM_COLUMNS: &str = "price_list_id, item_id, hcpcs, modifiers, rent_billable, rent_allowable, \
     sale_billable, sale_allowable, default_order_type, rental_type, billing_frequency, bill_item_on, \
     taxable, flat_rate, version, created_at, updated_at";

fn modifier_texts(m: &[Modifier]) -> Vec<String> {
    m.iter().map(|m| m.as_str().to_owned()).collect()
}

async fn fetch_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    item: ItemId,
    for_update: bool,
) -> Result<Option<PriceListItem>, DomainError> {
    let sql = format!(
        "select {ITEM_COLUMNS} from price_list_item where tenant_id = $1 and price_list_id = $2 and item_id = $3{}",
        if for_update { " for update" } else { "" }
    );
    let row: Option<ItemRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(list)
        .bind(item)
        .fetch_optional(conn)
        .await?;
    row.map(PriceListItem::try_from).transpose()
}

/// The row for (`price_list_id`, `item_id`), if the list prices the item: where an order line
/// takes its defaults (HCPCS, modifiers, prices, sale/rent type, frequency).
pub async fn item_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    price_list_id: PriceListId,
    item_id: ItemId,
) -> Result<Option<PriceListItem>, DomainError> {
    fetch_item(conn, tenant, price_list_id, item_id, false).await
}

/// One row (404 when the list or the row does not exist).
pub async fn get_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    item: ItemId,
) -> Result<PriceListItem, DomainError> {
    get(conn, tenant, list).await?;
    fetch_item(conn, tenant, list, item, false)
        .await?
        .ok_or(DomainError::NotFound("price list item"))
}

/// Whether a put created the row or replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The row did not exist (201).
    Created,
    /// The row existed and its fields changed (200).
    Replaced,
    /// The row existed with the same fields; nothing was written (200).
    Unchanged,
}

/// Creates or replaces the row of `item` in `list`. `If-Match` applies to a replacement; on a row
/// that does not exist it fails (412), as RFC 9110 says.
pub async fn put_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    item: ItemId,
    input: &PriceListItemInput,
    if_match: Option<i64>,
) -> Result<(PriceListItem, PutOutcome), DomainError> {
    let f = input.parse()?;
    get(conn, tenant, list).await?;
    let item_known: Option<(i32,)> =
        sqlx::query_as("select 1 from inventory_item where tenant_id = $1 and item_id = $2")
            .bind(tenant)
            .bind(item)
            .fetch_optional(&mut *conn)
            .await?;
    if item_known.is_none() {
        return Err(DomainError::NotFound("item"));
    }
    let mut current = fetch_item(conn, tenant, list, item, true).await?;
    if current.is_none() {
        if if_match.is_some() {
            return Err(DomainError::VersionMismatch { current: 0 });
        }
        let sql = format!(
            "insert into price_list_item (tenant_id, price_list_id, item_id, hcpcs, modifiers, rent_billable, \
             rent_allowable, sale_billable, sale_allowable, default_order_type, rental_type, billing_frequency, \
             bill_item_on, taxable, flat_rate) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,\
             $10,$11,$12,$13,$14,$15) on conflict (tenant_id, price_list_id, item_id) do nothing returning {ITEM_COLUMNS}"
        );
        let row: Option<ItemRow> = bind_item(
            sqlx::query_as(sqlx::AssertSqlSafe(sql)),
            (tenant, list, item),
            &f,
        )
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(row) => {
                let created = PriceListItem::try_from(row)?;
                outbox::record(
                    conn,
                    tenant,
                    list.as_uuid(),
                    "price_list.item_put",
                    &created,
                )
                .await?;
                return Ok((created, PutOutcome::Created));
            }
            // Another transaction inserted it meanwhile: this put replaces that row.
            None => current = fetch_item(conn, tenant, list, item, true).await?,
        }
    }
    let current = current.ok_or(DomainError::NotFound("price list item"))?;
    check_version(if_match, current.version)?;
    if current.fields() == f {
        return Ok((current, PutOutcome::Unchanged));
    }
    let sql = format!(
        "update price_list_item set hcpcs = $4, modifiers = $5, rent_billable = $6, rent_allowable = $7, \
         sale_billable = $8, sale_allowable = $9, default_order_type = $10, rental_type = $11, \
         billing_frequency = $12, bill_item_on = $13, taxable = $14, flat_rate = $15, version = version + 1, \
         updated_at = now() where tenant_id = $1 and price_list_id = $2 and item_id = $3 returning {ITEM_COLUMNS}"
    );
    let row: ItemRow = bind_item(
        sqlx::query_as(sqlx::AssertSqlSafe(sql)),
        (tenant, list, item),
        &f,
    )
    .fetch_one(&mut *conn)
    .await?;
    let replaced = PriceListItem::try_from(row)?;
    outbox::record(
        conn,
        tenant,
        list.as_uuid(),
        "price_list.item_put",
        &replaced,
    )
    .await?;
    Ok((replaced, PutOutcome::Replaced))
}

type ItemQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, ItemRow, sqlx::postgres::PgArguments>;

/// Binds `$1..$15` of the insert and the update, in the order both statements use.
fn bind_item<'q>(
    query: ItemQuery<'q>,
    (tenant, list, item): (TenantId, PriceListId, ItemId),
    f: &PriceListItemFields,
) -> ItemQuery<'q> {
    query
        .bind(tenant)
        .bind(list)
        .bind(item)
        .bind(f.hcpcs.as_str().to_owned())
        .bind(modifier_texts(&f.modifiers))
        .bind(f.prices.rent_billable)
        .bind(f.prices.rent_allowable)
        .bind(f.prices.sale_billable)
        .bind(f.prices.sale_allowable)
        .bind(f.default_order_type)
        .bind(f.rental_type)
        .bind(f.billing_frequency)
        .bind(f.bill_item_on)
        .bind(f.taxable)
        .bind(f.flat_rate)
}

/// Filters of a list's rows.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Rows with this billing code.
    pub hcpcs: Option<Hcpcs>,
}

/// A list's rows in item-id order (404 when the list does not exist).
pub async fn list_items(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    page: PageRequest,
    f: &ItemFilter,
) -> Result<Vec<PriceListItem>, DomainError> {
    get(conn, tenant, list).await?;
    let sql = format!(
        "select {ITEM_COLUMNS} from price_list_item where tenant_id = $1 and price_list_id = $2 \
         and ($3::uuid is null or item_id > $3) and ($4::text is null or hcpcs = $4) order by item_id limit $5"
    );
    let rows: Vec<ItemRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(list)
        .bind(page.after)
        .bind(f.hcpcs.as_ref().map(|h| h.as_str().to_owned()))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(PriceListItem::try_from).collect()
}

/// Deletes a row (`If-Match` honoured); returns the deleted row.
pub async fn delete_item(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    item: ItemId,
    if_match: Option<i64>,
) -> Result<PriceListItem, DomainError> {
    get(conn, tenant, list).await?;
    let current = fetch_item(conn, tenant, list, item, true)
        .await?
        .ok_or(DomainError::NotFound("price list item"))?;
    check_version(if_match, current.version)?;
    sqlx::query(
        "delete from price_list_item where tenant_id = $1 and price_list_id = $2 and item_id = $3",
    )
    .bind(tenant)
    .bind(list)
    .bind(item)
    .execute(&mut *conn)
    .await?;
    outbox::record(
        conn,
        tenant,
        list.as_uuid(),
        "price_list.item_deleted",
        &serde_json::json!({"price_list_id": list, "item_id": item, "hcpcs": current.hcpcs}),
    )
    .await?;
    Ok(current)
}

/// Writes new prices for many rows of one list in one statement; bumps each row's version.
async fn write_prices(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    rows: &[(ItemId, Prices)],
) -> Result<(), DomainError> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Prices) -> Option<Decimal>| -> Vec<Option<Decimal>> {
        rows.iter().map(|(_, p)| f(p)).collect()
    };
    let ids: Vec<uuid::Uuid> = rows.iter().map(|(id, _)| id.as_uuid()).collect();
    sqlx::query(
        "update price_list_item p set rent_billable = u.rb, rent_allowable = u.ra, \
         sale_billable = u.sb, sale_allowable = u.sa, version = p.version + 1, updated_at = now() \
         from unnest($3::uuid[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[]) as u(item_id, rb, ra, sb, sa) \
         where p.tenant_id = $1 and p.price_list_id = $2 and p.item_id = u.item_id",
    )
    .bind(tenant)
    .bind(list)
    .bind(ids)
    .bind(col(|p| p.rent_billable))
    .bind(col(|p| p.rent_allowable))
    .bind(col(|p| p.sale_billable))
    .bind(col(|p| p.sale_allowable))
    .execute(conn)
    .await?;
    Ok(())
}

/// Every row of a list (or those with one code), locked for a bulk change.
async fn rows_for_update(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    hcpcs: Option<&Hcpcs>,
) -> Result<Vec<PriceListItem>, DomainError> {
    let sql = format!(
        "select {ITEM_COLUMNS} from price_list_item where tenant_id = $1 and price_list_id = $2 \
         and ($3::text is null or hcpcs = $3) order by item_id for update"
    );
    let rows: Vec<ItemRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(list)
        .bind(hcpcs.map(|h| h.as_str().to_owned()))
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(PriceListItem::try_from).collect()
}

// ---- fee-schedule import ----

/// Largest fee-schedule file accepted (the public all-states CSV is a few megabytes).
pub const FEE_SCHEDULE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Body of `POST /price-lists/{id}/fee-schedule-import` as JSON (files up to the app's body
/// limit; bigger ones go as `text/csv` with the other fields as query parameters).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeScheduleImportInput {
    /// The DMEPOS fee-schedule CSV file's text (preamble lines, header row, rows).
    pub csv: String,
    /// The state whose column is read (`TX`).
    pub state: String,
    /// Read the rural column (`TX (R)`) instead of the non-rural one (`TX (NR)`).
    #[serde(default)]
    pub rural: bool,
    /// Return the diff without writing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Also re-price the allowables of this list's order lines that are still new (not yet
    /// approved): rentals take the new rent allowable, sales the new sale allowable.
    #[serde(default)]
    pub cascade_to_open_lines: bool,
}

/// The change an import makes to one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllowableChange {
    /// The row's item (with the list, the row's key: what re-pricing open order lines follows).
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// The row's billing code.
    #[schema(value_type = String)]
    pub hcpcs: Hcpcs,
    /// Rental allowable before the import.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rent_allowable_before: Option<Decimal>,
    /// Rental allowable after it (equal to before when the schedule has no rental price).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rent_allowable_after: Option<Decimal>,
    /// Purchase allowable before the import.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sale_allowable_before: Option<Decimal>,
    /// Purchase allowable after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub sale_allowable_after: Option<Decimal>,
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeeScheduleImport {
    /// The list imported into.
    #[schema(value_type = String, format = Uuid)]
    pub price_list_id: PriceListId,
    /// The state column read.
    pub state: String,
    /// Whether the rural column was read.
    pub rural: bool,
    /// True when nothing was written.
    pub dry_run: bool,
    /// SHA-256 of the file (hex), so an import can be matched with the file it read.
    pub file_sha256: String,
    /// Data rows in the file.
    pub rows_read: usize,
    /// Rows that did not count (Mod2 set, UE, no amount for the state).
    pub rows_ignored: usize,
    /// Distinct codes the file prices for the state.
    pub codes_in_file: usize,
    /// Rows of the list whose allowables changed.
    pub rows_changed: usize,
    /// How many of the list's codes the file does not price (their rows are left as they are).
    pub codes_not_in_file: usize,
    /// Those codes, sorted.
    #[schema(value_type = Vec<String>)]
    pub missing_codes: Vec<Hcpcs>,
    /// One entry per changed row, in item-id order.
    pub changes: Vec<AllowableChange>,
    /// With `cascade_to_open_lines`: the new order lines whose allowable followed the import (or,
    /// with `dry_run`, would).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub lines_repriced: Vec<crate::ids::OrderLineId>,
}

fn schedule_error(e: ImportError) -> DomainError {
    let field = match e {
        ImportError::UnknownState { .. } => "state",
        ImportError::NoHeader | ImportError::Row { .. } => "csv",
    };
    field_error(field, "fee_schedule_invalid", e.to_string())
}

/// Imports the fee schedule in `csv` for `state`/`rural` into the allowables of `list`'s rows
/// whose code it prices (other lists are untouched; an allowable the schedule lacks stays). With
/// `dry_run` nothing is written. The returned changes name each row, so a caller can carry them
/// on (e.g. to open order lines) in the same transaction.
pub async fn import_fee_schedule(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    input: &FeeScheduleImportInput,
) -> Result<FeeScheduleImport, DomainError> {
    let state = input.state.trim().to_ascii_uppercase();
    if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(field_error(
            "state",
            "invalid_format",
            "a two-letter state code such as TX",
        ));
    }
    lock(conn, tenant, list).await?;
    let schedule =
        fee_schedule::read(input.csv.as_bytes(), &state, input.rural).map_err(schedule_error)?;
    let rows = rows_for_update(conn, tenant, list, None).await?;
    let listed: Vec<ListedAllowables> = rows
        .iter()
        .map(|r| ListedAllowables {
            item: r.item_id.to_string(),
            hcpcs: r.hcpcs.clone(),
            rent: r.prices.rent_allowable,
            sale: r.prices.sale_allowable,
        })
        .collect();
    let by_item: std::collections::HashMap<String, &PriceListItem> =
        rows.iter().map(|r| (r.item_id.to_string(), r)).collect();
    let mut changes = Vec::new();
    let mut writes = Vec::new();
    for c in fee_schedule::diff(&listed, &schedule) {
        let Some(row) = by_item.get(&c.item) else {
            continue;
        };
        let rent_after = c.rent_after.map(cents);
        let sale_after = c.sale_after.map(cents);
        for (field, v) in [("rent", rent_after), ("sale", sale_after)] {
            if let Some(v) = v.filter(|v| *v > MAX_AMOUNT) {
                return Err(field_error(
                    "csv",
                    "fee_schedule_invalid",
                    format!("{} {field} allowable {v} is above {MAX_AMOUNT}", row.hcpcs),
                ));
            }
        }
        let mut prices = row.prices;
        prices.rent_allowable = rent_after;
        prices.sale_allowable = sale_after;
        writes.push((row.item_id, prices));
        changes.push(AllowableChange {
            item_id: row.item_id,
            hcpcs: row.hcpcs.clone(),
            rent_allowable_before: c.rent_before,
            rent_allowable_after: rent_after,
            sale_allowable_before: c.sale_before,
            sale_allowable_after: sale_after,
        });
    }
    let missing: BTreeSet<Hcpcs> = rows
        .iter()
        .filter(|r| !schedule.entries.contains_key(&r.hcpcs))
        .map(|r| r.hcpcs.clone())
        .collect();
    let outcome = FeeScheduleImport {
        price_list_id: list,
        state: schedule.state.clone(),
        rural: schedule.rural,
        dry_run: input.dry_run,
        file_sha256: {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(input.csv.as_bytes());
            hex::encode(digest)
        },
        rows_read: schedule.rows,
        rows_ignored: schedule.ignored,
        codes_in_file: schedule.entries.len(),
        rows_changed: changes.len(),
        codes_not_in_file: missing.len(),
        missing_codes: missing.into_iter().collect(),
        changes,
        lines_repriced: Vec::new(),
    };
    if !input.dry_run {
        write_prices(conn, tenant, list, &writes).await?;
        outbox::record(
            conn,
            tenant,
            list.as_uuid(),
            "price_list.fee_schedule_imported",
            &outcome,
        )
        .await?;
    }
    Ok(outcome)
}

// ---- percentage adjustment ----

fn default_prices() -> Vec<PriceField> {
    vec![PriceField::RentBillable, PriceField::SaleBillable]
}

/// Body of `POST /price-lists/{id}/adjust`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustInput {
    /// Percentage as a decimal string, above -100 and at most 1000, up to four places (`"5.00"`,
    /// `"-3.333"`).
    pub percent: String,
    /// Which prices change (default both billables).
    #[serde(default = "default_prices")]
    pub prices: Vec<PriceField>,
    /// Only rows with this billing code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcpcs: Option<String>,
}

/// One row an adjustment changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceChange {
    /// The row's item.
    #[schema(value_type = String, format = Uuid)]
    pub item_id: ItemId,
    /// The row's billing code.
    #[schema(value_type = String)]
    pub hcpcs: Hcpcs,
    /// The four prices before.
    pub before: Prices,
    /// The four prices after.
    pub after: Prices,
}

/// What an adjustment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adjustment {
    /// The list adjusted.
    #[schema(value_type = String, format = Uuid)]
    pub price_list_id: PriceListId,
    /// The percentage applied.
    #[schema(value_type = String)]
    pub percent: Decimal,
    /// The prices it applied to.
    pub prices: Vec<PriceField>,
    /// Rows whose prices changed.
    pub rows_changed: usize,
    /// One entry per changed row, in item-id order.
    pub changes: Vec<PriceChange>,
}

/// Validated adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustFields {
    /// The percentage.
    pub percent: Decimal,
    /// Distinct, in a stable order.
    pub prices: Vec<PriceField>,
    /// The code filter.
    pub hcpcs: Option<Hcpcs>,
}

impl AdjustInput {
    /// All the problems at once.
    pub fn parse(&self) -> Result<AdjustFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let percent = parse_percent(&self.percent)
            .map_err(|(code, msg)| errs.push("percent", code, msg))
            .unwrap_or_default();
        if self.prices.is_empty() {
            errs.push("prices", "required", "name at least one price");
        }
        let prices: BTreeSet<PriceField> = self.prices.iter().copied().collect();
        let hcpcs = match self.hcpcs.as_deref() {
            None => None,
            Some(raw) => Hcpcs::parse(raw)
                .map_err(|m| errs.push("hcpcs", "invalid_format", m))
                .ok(),
        };
        errs.finish(AdjustFields {
            percent,
            prices: prices.into_iter().collect(),
            hcpcs,
        })
    }
}

/// The prices of `before` named in `fields`, adjusted by `percent`; `Err(field)` when one would
/// overflow.
pub fn adjust_prices(
    before: &Prices,
    fields: &[PriceField],
    percent: Decimal,
) -> Result<Prices, PriceField> {
    let mut after = *before;
    for f in fields {
        if let Some(v) = before.get(*f) {
            after.set(*f, Some(adjust_amount(v, percent).ok_or(*f)?));
        }
    }
    Ok(after)
}

/// Raises or lowers the chosen prices of a list's rows (or of one code's) by a percentage, each
/// rounded half-up to the cent, in one transaction. Unpriced prices stay unpriced.
pub async fn adjust(
    conn: &mut PgConnection,
    tenant: TenantId,
    list: PriceListId,
    input: &AdjustInput,
) -> Result<Adjustment, DomainError> {
    let a = input.parse()?;
    lock(conn, tenant, list).await?;
    let rows = rows_for_update(conn, tenant, list, a.hcpcs.as_ref()).await?;
    let mut changes = Vec::new();
    for r in &rows {
        let after = adjust_prices(&r.prices, &a.prices, a.percent).map_err(|f| {
            field_error(
                "percent",
                "out_of_range",
                format!(
                    "{} of {} would exceed {MAX_AMOUNT}",
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    r.hcpcs
                ),
            )
        })?;
        if after != r.prices {
            changes.push(PriceChange {
                item_id: r.item_id,
                hcpcs: r.hcpcs.clone(),
                before: r.prices,
                after,
            });
        }
    }
    let writes: Vec<(ItemId, Prices)> = changes.iter().map(|c| (c.item_id, c.after)).collect();
    write_prices(conn, tenant, list, &writes).await?;
    let outcome = Adjustment {
        price_list_id: list,
        percent: a.percent,
        prices: a.prices,
        rows_changed: changes.len(),
        changes,
    };
    outbox::record(
        conn,
        tenant,
        list.as_uuid(),
        "price_list.adjusted",
        &outcome,
    )
    .await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn fields_of(r: Result<PriceListItemFields, ValidationErrors>) -> Vec<(String, String)> {
        match r {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    fn input(hcpcs: &str) -> PriceListItemInput {
        PriceListItemInput {
            hcpcs: hcpcs.into(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_every_field() {
        let ok = PriceListItemInput {
            hcpcs: "e0601".into(),
            modifiers: vec!["rr".into(), "KH".into()],
            rent_billable: Some("125.4".into()),
            sale_allowable: Some("801".into()),
            default_order_type: Some("rental".into()),
            rental_type: Some("capped_rental".into()),
            billing_frequency: Some("calendar_monthly".into()),
            bill_item_on: Some("last_day_of_month".into()),
            taxable: Some(true),
            ..Default::default()
        }
        .parse();
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.hcpcs.as_str(), "E0601");
        assert_eq!(
            ok.modifiers
                .iter()
                .map(Modifier::as_str)
                .collect::<Vec<_>>(),
            ["RR", "KH"]
        );
        assert_eq!(ok.prices.rent_billable, Some(d("125.40")));
        assert_eq!(
            ok.prices.sale_allowable.map(|v| v.to_string()),
            Some("801.00".into())
        );
        assert_eq!(ok.prices.rent_allowable, None);
        assert_eq!(
            (
                ok.default_order_type,
                ok.rental_type,
                ok.billing_frequency,
                ok.bill_item_on
            ),
            (
                OrderType::Rental,
                SaleRentType::CappedRental,
                BillingFrequency::CalendarMonthly,
                BillItemOn::LastDayOfMonth
            )
        );
        let defaults = input("K0001").parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                defaults.default_order_type,
                defaults.rental_type,
                defaults.billing_frequency,
                defaults.bill_item_on,
                defaults.taxable,
                defaults.flat_rate
            ),
            (
                OrderType::Sale,
                SaleRentType::MonthlyRental,
                BillingFrequency::Monthly,
                BillItemOn::DayOfDelivery,
                false,
                false
            )
        );

        let cases: Vec<(PriceListItemInput, Vec<(&str, &str)>)> = vec![
            (input("W0601"), vec![("hcpcs", "invalid_format")]),
            (input("99213"), vec![("hcpcs", "invalid_format")]),
            (
                PriceListItemInput {
                    modifiers: vec!["RR".into(), "R".into(), "rr".into()],
                    ..input("E0601")
                },
                vec![
                    ("modifiers[1]", "invalid_format"),
                    ("modifiers[2]", "duplicate"),
                ],
            ),
            (
                PriceListItemInput {
                    modifiers: ["RR", "KH", "KX", "GA", "NU"].map(String::from).to_vec(),
                    ..input("E0601")
                },
                vec![("modifiers", "too_many")],
            ),
            (
                PriceListItemInput {
                    rent_billable: Some("-1".into()),
                    rent_allowable: Some("1.001".into()),
                    sale_billable: Some("ten".into()),
                    sale_allowable: Some("99999999999".into()),
                    ..input("E0601")
                },
                vec![
                    ("rent_billable", "negative"),
                    ("rent_allowable", "too_many_decimals"),
                    ("sale_billable", "invalid_amount"),
                    ("sale_allowable", "out_of_range"),
                ],
            ),
            (
                PriceListItemInput {
                    default_order_type: Some("lease".into()),
                    rental_type: Some("capped".into()),
                    billing_frequency: Some("fortnightly".into()),
                    bill_item_on: Some("whenever".into()),
                    ..input("E0601")
                },
                vec![
                    ("default_order_type", "invalid_value"),
                    ("rental_type", "invalid_value"),
                    ("billing_frequency", "invalid_value"),
                    ("bill_item_on", "invalid_value"),
                ],
            ),
            (
                PriceListItemInput {
                    rent_billable: Some("x".into()),
                    ..input("")
                },
                vec![
                    ("hcpcs", "invalid_format"),
                    ("rent_billable", "invalid_amount"),
                ],
            ),
        ];
        for (i, (inp, want)) in cases.into_iter().enumerate() {
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|(f, c)| (f.to_owned(), c.to_owned()))
                .collect();
            assert_eq!(fields_of(inp.parse()), want, "case {i}");
        }
    }

    #[test]
    fn adjustment_rounds_half_up_to_the_cent_once() {
        let cases = [
            // (amount, percent, expected)
            ("100.00", "10", "110.00"),
            ("100.00", "-3.333", "96.67"),
            ("80.10", "10", "88.11"),
            ("80.10", "-3.333", "77.43"), // 77.430267
            ("0.10", "5", "0.11"),        // 0.105: half-up, not to even
            ("0.30", "-5", "0.29"),       // 0.285: half-up on a cut (banker's would give 0.28)
            ("1.50", "-0.5", "1.49"),     // 1.4925
            ("2.00", "-99.75", "0.01"),   // 0.005
            ("2.00", "-99.76", "0.00"),   // 0.0048
            ("0.00", "50", "0.00"),
            ("1254.00", "0", "1254.00"),
        ];
        for (amount, pct, want) in cases {
            let got = adjust_amount(d(amount), d(pct)).map(|v| v.to_string());
            assert_eq!(got.as_deref(), Some(want), "{amount} {pct}%");
        }
        assert_eq!(adjust_amount(MAX_AMOUNT, d("0.01")), None);
        let before = Prices {
            rent_billable: Some(d("100.00")),
            rent_allowable: Some(d("80.10")),
            sale_billable: None,
            sale_allowable: Some(d("801.00")),
        };
        let after = adjust_prices(
            &before,
            &[PriceField::RentBillable, PriceField::SaleBillable],
            d("10"),
        );
        assert_eq!(
            after,
            Ok(Prices {
                rent_billable: Some(d("110.00")),
                ..before
            }),
            "allowables untouched, the unpriced sale billable stays unpriced"
        );
    }

    #[test]
    fn adjust_input() {
        let a = AdjustInput {
            percent: "5".into(),
            prices: vec![
                PriceField::SaleAllowable,
                PriceField::RentBillable,
                PriceField::RentBillable,
            ],
            hcpcs: Some("e0601".into()),
        }
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            a.prices,
            [PriceField::RentBillable, PriceField::SaleAllowable]
        );
        assert_eq!(a.hcpcs.map(String::from), Some("E0601".into()));
        let bad = AdjustInput {
            percent: "-100".into(),
            prices: vec![],
            hcpcs: Some("X1".into()),
        }
        .parse()
        .err()
        .map(|e| e.0.into_iter().map(|e| e.field).collect::<Vec<_>>());
        assert_eq!(
            bad,
            Some(vec!["percent".into(), "prices".into(), "hcpcs".into()])
        );
    }

    #[test]
    fn list_input() {
        let e = PriceListInput {
            name: "  ".into(),
            ..Default::default()
        }
        .parse()
        .err()
        .map(|e| {
            e.0.into_iter()
                .map(|e| (e.field, e.code))
                .collect::<Vec<_>>()
        });
        assert_eq!(e, Some(vec![("name".into(), "required".into())]));
    }
}
