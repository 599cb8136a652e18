//! The daily reports of a provider (DOMAIN.md §3.6): named, parameterised, paginated queries over
//! one tenant's data, answered as JSON rows or CSV.
//!
//! - [`CATALOGUE`] describes every report: its name (kebab-case), what it lists, its parameters
//!   (type, default, whether required) and its columns, in CSV order.
//! - [`prepare`] validates a request's query parameters against the report (an unknown parameter,
//!   a bad value or a bad combination is an error naming the parameter) and resolves defaults
//!   (`as_of` = today); it is pure, so the HTTP layer refuses bad requests before any database work.
//! - [`run`] answers one page in the caller's tenant transaction. Every report has a stable order
//!   (its key is documented on the report) and a keyset cursor over that key, so paging never skips
//!   or repeats a row whose key did not change.
//! - [`csv_header`] / [`csv_record`] render rows as RFC 4180 CSV.
//!
//! The operator's cross-tenant figures ([`platform_tenant_sql`]) live here too: they are one
//! statement per tenant, run under that tenant's `aries.tenant_id` like every other tenant query.

use crate::dme::terms::SaleRentType;
use crate::error::DomainError;
use crate::ids::{OrderId, TenantId};
use crate::validation::ValidationErrors;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Rows per page when the client gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;
/// Longest date range of the deliveries and pickups reports.
pub const MAX_RANGE_DAYS: i64 = 366;

// ---- the catalogue ----

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    /// `YYYY-MM-DD`.
    Date,
    /// A hyphenated UUID naming one of the tenant's rows.
    Uuid,
    /// One of fixed values.
    Choice {
        /// The accepted values.
        #[schema(value_type = Vec<String>)]
        values: &'static [&'static str],
    },
    /// A whole number in a range.
    Integer {
        /// Smallest accepted.
        min: i64,
        /// Largest accepted.
        max: i64,
    },
}

/// One parameter of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParamSpec {
    /// The query parameter's name.
    pub name: &'static str,
    /// Its type (and accepted values).
    #[serde(flatten)]
    pub kind: ParamKind,
    /// Whether the request must give it.
    pub required: bool,
    /// The value used when it is absent (`today` for dates); none when absent means "no filter".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<&'static str>,
    /// What it does.
    pub description: &'static str,
}

/// A report of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReportSpec {
    /// URL name (`/reports/{name}`), kebab-case.
    pub name: &'static str,
    /// What it lists, and its order.
    pub description: &'static str,
    /// Its parameters (besides `limit`, `cursor` and `format`, which every report takes).
    pub parameters: &'static [ParamSpec],
    /// The fields of each row, in the order of the CSV columns.
    pub columns: &'static [&'static str],
}

const AS_OF: ParamSpec = ParamSpec {
    name: "as_of",
    kind: ParamKind::Date,
    required: false,
    default: Some("today"),
    description: "the day the report is made for",
};

const SERIAL_STATUSES: &[&str] = &[
    "on_hand",
    "reserved",
    "rented",
    "sold",
    "maintenance",
    "transferred_out",
    "empty",
    "out_for_filling",
    "lost",
    "junked",
];

const WAREHOUSE: ParamSpec = ParamSpec {
    name: "warehouse_id",
    kind: ParamKind::Uuid,
    required: false,
    default: None,
    description: "only this warehouse",
};

const ITEM: ParamSpec = ParamSpec {
    name: "item_id",
    kind: ParamKind::Uuid,
    required: false,
    default: None,
    description: "only this inventory item",
};

const DATE_RANGE: &[ParamSpec] = &[
    ParamSpec {
        name: "date",
        kind: ParamKind::Date,
        required: false,
        default: Some("today"),
        description: "one day (the default when neither date nor from/to is given: today)",
    },
    ParamSpec {
        name: "from",
        kind: ParamKind::Date,
        required: false,
        default: None,
        description: "first day of a range (with `to`, instead of `date`; at most 366 days)",
    },
    ParamSpec {
        name: "to",
        kind: ParamKind::Date,
        required: false,
        default: None,
        description: "last day of a range (with `from`)",
    },
];

/// Every report, in catalogue order.
pub const CATALOGUE: &[ReportSpec] = &[
    ReportSpec {
        name: "missing-information",
        description: "Open orders (new or approved, with at least one line neither closed nor canceled) and each piece of \
                      information they lack as of `as_of`, one row per problem (the missing-information check of approval \
                      and billing). Orders lacking nothing are not listed. Order: order id (creation), then the check's order \
                      (patient, policies by rank, prescriber, order, lines).",
        parameters: &[AS_OF],
        columns: &[
            "order_id",
            "order_number",
            "order_state",
            "order_date",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "scope",
            "subject_id",
            "code",
            "message",
        ],
    },
    ReportSpec {
        name: "rentals-due",
        description: "Delivered rental lines (every sale/rent type but one-time and re-occurring sales) whose next invoice \
                      date (the billing cursor's next_bill_date) is on or before `as_of`. Order: next_bill_date, line id.",
        parameters: &[AS_OF],
        columns: &[
            "order_id",
            "order_number",
            "order_line_id",
            "line_number",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "item_code",
            "item_name",
            "hcpcs",
            "sale_rent_type",
            "billing_frequency",
            "months_billed",
            "next_billing_month",
            "next_bill_date",
            "dos_from",
            "serial_number",
        ],
    },
    ReportSpec {
        name: "serial-locations",
        description: "Every serial with its status and where it is: the warehouse (on a shelf, in maintenance, empty) or \
                      the patient (rented, sold). Order: serial id (creation).",
        parameters: &[
            ParamSpec {
                name: "status",
                kind: ParamKind::Choice {
                    values: SERIAL_STATUSES,
                },
                required: false,
                default: None,
                description: "only serials in this status",
            },
            WAREHOUSE,
            ITEM,
        ],
        columns: &[
            "serial_id",
            "serial_number",
            "item_id",
            "item_code",
            "item_name",
            "status",
            "warehouse_id",
            "warehouse_code",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "next_maintenance_date",
        ],
    },
    ReportSpec {
        name: "maintenance-due",
        description: "Serials whose next maintenance date is on or before `as_of`, except those sold, lost or junked. \
                      Order: next_maintenance_date, serial id.",
        parameters: &[AS_OF, WAREHOUSE, ITEM],
        columns: &[
            "serial_id",
            "serial_number",
            "item_id",
            "item_code",
            "item_name",
            "status",
            "warehouse_id",
            "warehouse_code",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "next_maintenance_date",
            "days_overdue",
        ],
    },
    ReportSpec {
        name: "reorder",
        description: "Stock levels of active items in active warehouses at or below their reorder point: available (on \
                      hand − committed) ≤ reorder_point, for levels with a reorder point above 0. shortfall = reorder_point \
                      − available. Order: warehouse id, item id.",
        parameters: &[WAREHOUSE, ITEM],
        columns: &[
            "warehouse_id",
            "warehouse_code",
            "item_id",
            "item_code",
            "item_name",
            "on_hand",
            "committed",
            "available",
            "on_order",
            "reorder_point",
            "shortfall",
        ],
    },
    ReportSpec {
        name: "deliveries",
        description: "The warehouse's delivery tickets for a day or range: first the lines still awaiting delivery (kind \
                      `awaiting_delivery`: line approved on an approved order, approved on or before the range's last day; \
                      `date` is the approval day), then the lines delivered in the range (kind `delivered`, `date` = delivery \
                      date, whatever the line's state since). Order: kind, date, line id.",
        parameters: DATE_RANGE,
        columns: &[
            "kind",
            "date",
            "order_id",
            "order_number",
            "order_line_id",
            "line_number",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "address",
            "delivery_directions",
            "warehouse_code",
            "item_code",
            "item_name",
            "quantity",
            "serial_number",
        ],
    },
    ReportSpec {
        name: "pickups",
        description: "Lines picked up in a day or range (pickup_date in the range), with the warehouse the equipment went \
                      back to. Order: pickup date, line id.",
        parameters: DATE_RANGE,
        columns: &[
            "date",
            "order_id",
            "order_number",
            "order_line_id",
            "line_number",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "address",
            "item_code",
            "item_name",
            "quantity",
            "serial_number",
            "return_warehouse_code",
            "end_date",
        ],
    },
    ReportSpec {
        name: "capped-rental-month-13",
        description: "Capped and parental capped rental lines still with the patient (delivered) that have reached month 13 \
                      or will within `within_months` billing months: months_billed ≥ 12 − within_months. Month 13 transfers \
                      title to the patient (the letters of §3.6). month_13_from = dos_from + (12 − months_billed) months, the \
                      start of the 13th monthly period. Order: month_13_from, line id.",
        parameters: &[ParamSpec {
            name: "within_months",
            kind: ParamKind::Integer { min: 0, max: 12 },
            required: false,
            default: Some("1"),
            description: "how many billing months ahead to look (0: only lines whose next month is the 13th or later)",
        }],
        columns: &[
            "order_id",
            "order_number",
            "order_line_id",
            "line_number",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "item_code",
            "item_name",
            "hcpcs",
            "sale_rent_type",
            "months_billed",
            "month_13_from",
            "serial_number",
        ],
    },
    ReportSpec {
        name: "billing-worklist",
        description: "What a billing run as of `as_of` would invoice (the billing worklist): one row per charge (kind `due`), \
                      month by month, catch-up included; `closes` is true on the charge after which the line closes. With \
                      `include=excluded`, also one row per line that would be due but whose order lacks information (kind \
                      `excluded`, charge columns empty, `missing_codes` the problems' codes joined by `;`). Order: order line \
                      id, then billing month.",
        parameters: &[
            AS_OF,
            ParamSpec {
                name: "include",
                kind: ParamKind::Choice {
                    values: &["excluded"],
                },
                required: false,
                default: None,
                description: "`excluded`: also list the lines excluded for missing information",
            },
        ],
        columns: &[
            "kind",
            "order_id",
            "order_number",
            "patient_id",
            "order_line_id",
            "line_number",
            "hcpcs",
            "billing_month",
            "dos_from",
            "dos_to",
            "invoice_date",
            "quantity",
            "modifiers",
            "billable",
            "allowable",
            "tax",
            "closes",
            "missing_codes",
        ],
    },
    ReportSpec {
        name: "ar-aging",
        description: "Open receivables as of `as_of` by current payer: every line of an invoice dated on or before `as_of`, its \
                      AR folded over its transactions posted on or before `as_of`; lines with a zero balance are left out. The \
                      payer is the invoice's policy at the current payer's rank (its payer's name), or `Patient`. Balances are \
                      bucketed by days since the invoice date (0–30, 31–60, 61–90, over 90). One row per payer (kind `payer`: \
                      `lines` counted, the four buckets and the total); with `detail=lines`, each payer's row is followed by \
                      one row per open line (kind `line`: its balance in its bucket, 0.00 in the others). `payer_id` keeps one \
                      payer (the patient's share has none). Order: payers by name, the patient last; lines by id.",
        parameters: &[
            AS_OF,
            ParamSpec {
                name: "payer_id",
                kind: ParamKind::Uuid,
                required: false,
                default: None,
                description: "only the lines this payer is now billed for",
            },
            ParamSpec {
                name: "detail",
                kind: ParamKind::Choice { values: &["lines"] },
                required: false,
                default: None,
                description: "`lines`: one row per open line after its payer's row",
            },
        ],
        columns: &[
            "kind",
            "payer_id",
            "payer_name",
            "lines",
            "days_0_30",
            "days_31_60",
            "days_61_90",
            "days_over_90",
            "total",
            "invoice_id",
            "invoice_number",
            "invoice_date",
            "invoice_line_id",
            "patient_id",
            "hcpcs",
            "billing_month",
            "current_payer",
            "days_outstanding",
        ],
    },
];

/// The report named `name`.
pub fn spec(name: &str) -> Option<&'static ReportSpec> {
    CATALOGUE.iter().find(|r| r.name == name)
}

// ---- requests ----

/// A parameter's validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    Date(NaiveDate),
    Uuid(Uuid),
    Choice(&'static str),
    Integer(i64),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            ParamValue::Uuid(u) => write!(f, "{u}"),
            ParamValue::Choice(c) => f.write_str(c),
            ParamValue::Integer(i) => write!(f, "{i}"),
        }
    }
}

/// A validated report request: which report, its resolved parameters, and which page.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    /// The report.
    pub spec: &'static ReportSpec,
    /// Every parameter given or defaulted, by name.
    pub params: BTreeMap<&'static str, ParamValue>,
    /// Rows per page (1..=MAX_LIMIT).
    pub limit: u32,
    /// The key of the last row of the previous page (decoded from `cursor`).
    pub after: Option<Value>,
}

impl ReportRequest {
    /// The resolved parameters as strings, echoed in the answer.
    pub fn parameters(&self) -> BTreeMap<&'static str, String> {
        self.params
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect()
    }

    /// Moves the request to the page after `cursor` (a `next_cursor` of this report); false when
    /// the cursor is not one of this report's.
    pub fn with_cursor(&mut self, cursor: &str) -> bool {
        match decode_cursor(self.spec.name, cursor) {
            Some(key) => {
                self.after = Some(key);
                true
            }
            None => false,
        }
    }

    fn date(&self, name: &str) -> Option<NaiveDate> {
        match self.params.get(name) {
            Some(ParamValue::Date(d)) => Some(*d),
            _ => None,
        }
    }

    fn uuid(&self, name: &str) -> Option<Uuid> {
        match self.params.get(name) {
            Some(ParamValue::Uuid(u)) => Some(*u),
            _ => None,
        }
    }

    fn choice(&self, name: &str) -> Option<&'static str> {
        match self.params.get(name) {
            Some(ParamValue::Choice(c)) => Some(c),
            _ => None,
        }
    }

    fn integer(&self, name: &str) -> Option<i64> {
        match self.params.get(name) {
            Some(ParamValue::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    /// The day the report is made for (`as_of`, defaulted to today by `prepare`).
    fn as_of(&self) -> Result<NaiveDate, DomainError> {
        self.date("as_of")
            .ok_or_else(|| invalid("as_of", "missing", "a date is required"))
    }

    /// The key after which this page starts, typed for the report.
    fn after<K: DeserializeOwned>(&self) -> Result<Option<K>, DomainError> {
        self.after
            .clone()
            .map(|v| {
                serde_json::from_value(v).map_err(|_| {
                    invalid(
                        "cursor",
                        "invalid_cursor",
                        "the cursor is not one this report returned",
                    )
                })
            })
            .transpose()
    }
}

fn invalid(field: &str, code: &str, message: &str) -> DomainError {
    let mut errs = ValidationErrors::default();
    errs.push(field, code, message);
    DomainError::Validation(errs)
}

/// Why a request was refused before running.
#[derive(Debug)]
pub enum PrepareError {
    /// No report has this name.
    UnknownReport,
    /// A query parameter is unknown, repeated, malformed or out of range (each named).
    Invalid(ValidationErrors),
}

fn parse_value(kind: ParamKind, raw: &str) -> Result<ParamValue, String> {
    match kind {
        ParamKind::Date => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .filter(|d| (1900..=2200).contains(&d.year()))
            .map(ParamValue::Date)
            .ok_or_else(|| "a date as YYYY-MM-DD".to_owned()),
        ParamKind::Uuid => raw
            .parse::<Uuid>()
            .ok()
            .filter(|_| raw.len() == 36)
            .map(ParamValue::Uuid)
            .ok_or_else(|| "a hyphenated UUID".to_owned()),
        ParamKind::Choice { values } => values
            .iter()
            .find(|v| **v == raw)
            .map(|v| ParamValue::Choice(v))
            .ok_or_else(|| format!("one of {}", values.join(", "))),
        ParamKind::Integer { min, max } => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(ParamValue::Integer)
            .ok_or_else(|| format!("a whole number from {min} to {max}")),
    }
}

/// Validates the query of a request for report `name`: `limit` and `cursor`, then the report's own
/// parameters (an unknown or repeated one, a malformed value, a bad combination are errors naming
/// the parameter). `today` fills date defaults.
pub fn prepare(
    name: &str,
    query: &[(String, String)],
    today: NaiveDate,
) -> Result<ReportRequest, PrepareError> {
    let spec = spec(name).ok_or(PrepareError::UnknownReport)?;
    let mut errs = ValidationErrors::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut params = BTreeMap::new();
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (key, raw) in query {
        if seen.contains(&key.as_str()) {
            errs.push(key.as_str(), "repeated", "given more than once");
            continue;
        }
        seen.push(key);
        match key.as_str() {
            "limit" => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => errs.push(
                    "limit",
                    "out_of_range",
                    format!("an integer from 1 to {MAX_LIMIT}"),
                ),
            },
            "cursor" => match decode_cursor(spec.name, raw) {
                Some(key) => after = Some(key),
                None => errs.push(
                    "cursor",
                    "invalid_cursor",
                    "the cursor is not one this report returned",
                ),
            },
            other => match spec.parameters.iter().find(|p| p.name == other) {
                None => errs.push(
                    other,
                    "unknown_parameter",
                    format!(
                        "{} takes {}",
                        spec.name,
                        spec.parameters
                            .iter()
                            .map(|p| p.name)
                            .chain(["limit", "cursor", "format"])
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(p) => match parse_value(p.kind, raw) {
                    Ok(v) => {
                        params.insert(p.name, v);
                    }
                    Err(msg) => errs.push(p.name, "invalid_value", msg),
                },
            },
        }
    }
    if spec.parameters == DATE_RANGE {
        resolve_range(&mut params, today, &mut errs);
    } else {
        for p in spec.parameters {
            if params.contains_key(p.name) {
                continue;
            }
            match p.default {
                Some("today") => {
                    params.insert(p.name, ParamValue::Date(today));
                }
                Some(d) => match parse_value(p.kind, d) {
                    Ok(v) => {
                        params.insert(p.name, v);
                    }
                    Err(msg) => errs.push(p.name, "invalid_default", msg),
                },
                None if p.required => errs.push(p.name, "missing", "required"),
                None => {}
            }
        }
    }
    errs.finish(())
        .map_err(PrepareError::Invalid)
        .map(|()| ReportRequest {
            spec,
            params,
            limit,
            after,
        })
}

/// `date`, or `from` and `to`, become `from` and `to` (one day when `date` or nothing is given).
fn resolve_range(
    params: &mut BTreeMap<&'static str, ParamValue>,
    today: NaiveDate,
    errs: &mut ValidationErrors,
) {
    let get = |p: &BTreeMap<&'static str, ParamValue>, n: &str| match p.get(n) {
        Some(ParamValue::Date(d)) => Some(*d),
        _ => None,
    };
    let (date, from, to) = (get(params, "date"), get(params, "from"), get(params, "to"));
    let range = match (date, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            errs.push("date", "conflict", "give either date or from and to");
            return;
        }
        (Some(d), None, None) => (d, d),
        (None, None, None) => (today, today),
        (None, Some(f), Some(t)) => (f, t),
        (None, Some(_), None) => {
            errs.push("to", "missing", "from needs to");
            return;
        }
        (None, None, Some(_)) => {
            errs.push("from", "missing", "to needs from");
            return;
        }
    };
    if range.1 < range.0 {
        errs.push("to", "out_of_range", "not before from");
        return;
    }
    if (range.1 - range.0).num_days() >= MAX_RANGE_DAYS {
        errs.push(
            "to",
            "out_of_range",
            format!("a range of at most {MAX_RANGE_DAYS} days"),
        );
        return;
    }
    params.remove("date");
    params.insert("from", ParamValue::Date(range.0));
    params.insert("to", ParamValue::Date(range.1));
}

// ---- cursors ----

/// `base64url(JSON [report name, key])`: opaque to clients, bound to its report.
fn encode_cursor(report: &str, key: &impl Serialize) -> Result<String, DomainError> {
    let json = serde_json::to_vec(&(report, key)).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_cursor(report: &str, raw: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let (name, key): (String, Value) = serde_json::from_slice(&bytes).ok()?;
    (name == report).then_some(key)
}

// ---- answers ----

/// One page of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportPage {
    /// The rows, as JSON objects whose fields are the report's columns.
    pub data: Vec<Value>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Builds a page from up to `limit + 1` rows in key order (the extra row only says more exist).
fn page<R: Serialize, K: Serialize>(
    req: &ReportRequest,
    rows: Vec<R>,
    key: impl Fn(&R) -> K,
) -> Result<ReportPage, DomainError> {
    let keyed = rows
        .into_iter()
        .map(|r| {
            let k = key(&r);
            (r, k)
        })
        .collect();
    page_keyed(req, keyed)
}

/// [`page`] for rows that carry their key beside them.
fn page_keyed<R: Serialize, K: Serialize>(
    req: &ReportRequest,
    mut rows: Vec<(R, K)>,
) -> Result<ReportPage, DomainError> {
    let limit = req.limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match (more, rows.last()) {
        (true, Some((_, key))) => Some(encode_cursor(req.spec.name, key)?),
        _ => None,
    };
    let data = rows
        .iter()
        .map(|(r, _)| serde_json::to_value(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(ReportPage { data, next_cursor })
}

/// Runs one page of the request in the tenant's transaction.
pub async fn run(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    match req.spec.name {
        "missing-information" => missing_information(conn, tenant, req).await,
        "rentals-due" => rentals_due(conn, tenant, req).await,
        "serial-locations" => serial_locations(conn, tenant, req).await,
        "maintenance-due" => maintenance_due(conn, tenant, req).await,
        "reorder" => reorder(conn, tenant, req).await,
        "deliveries" => deliveries(conn, tenant, req).await,
        "pickups" => pickups(conn, tenant, req).await,
        "capped-rental-month-13" => capped_month_13(conn, tenant, req).await,
        "billing-worklist" => billing_worklist(conn, tenant, req).await,
        "ar-aging" => ar_aging(conn, tenant, req).await,
        _ => Err(DomainError::NotFound("report")),
    }
}

fn fetch_limit(req: &ReportRequest) -> i64 {
    i64::from(req.limit) + 1
}

fn rental_types() -> Vec<String> {
    SaleRentType::ALL
        .iter()
        .filter(|t| t.is_rental())
        .map(|t| t.as_str().to_owned())
        .collect()
}

/// `Last, First` of the patient aliased `p`.
const PATIENT_NAME: &str = "p.last_name || ', ' || p.first_name";
/// The patient's delivery address on one line: ship-to when set, else home.
const PATIENT_ADDRESS: &str = "(select concat_ws(', ', a->>'line1', nullif(a->>'line2', ''), a->>'city', \
     concat_ws(' ', a->>'state', a->>'postal_code')) from (select coalesce(p.ship_to, p.address) as a) x)";

// ---- missing information ----

/// A row of `missing-information`.
#[derive(Debug, Clone, Default, Serialize)]
struct MissingRow {
    order_id: Uuid,
    order_number: String,
    order_state: String,
    order_date: NaiveDate,
    patient_id: Uuid,
    patient_account_number: String,
    patient_name: String,
    scope: String,
    /// The policy's or line's id, for those scopes.
    subject_id: Option<Uuid>,
    code: String,
    message: String,
}

#[derive(sqlx::FromRow)]
struct OpenOrder {
    order_id: OrderId,
    order_number: String,
    state: String,
    order_date: NaiveDate,
    patient_id: Uuid,
    account_number: String,
    patient_name: String,
}

/// Orders are read in batches and checked one by one with [`crate::orders::missing_information`]
/// (the check approval and billing use), until the page is full.
async fn missing_information(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let as_of = req.as_of()?;
    let after: Option<(Uuid, usize)> = req.after()?;
    let want = req.limit as usize + 1;
    let mut rows: Vec<(MissingRow, (Uuid, usize))> = Vec::new();
    // (last order read, whether to read it again): the first batch re-reads the cursor's order to
    // go on from its next problem.
    let mut from: Option<(Uuid, bool)> = after.map(|(id, _)| (id, true));
    let sql = format!(
        "select o.order_id, o.order_number, o.state, o.order_date, o.patient_id, p.account_number, \
         {PATIENT_NAME} as patient_name from patient_order o \
         join patient p on p.tenant_id = o.tenant_id and p.patient_id = o.patient_id \
         where o.tenant_id = $1 and o.state in ('new', 'approved') \
         and exists (select 1 from order_line l where l.tenant_id = o.tenant_id and l.order_id = o.order_id \
                     and l.state not in ('closed', 'canceled')) \
         and ($2::uuid is null or o.order_id > $2 or ($3 and o.order_id = $2)) \
         order by o.order_id limit 50"
    );
    'batches: loop {
        let batch: Vec<OpenOrder> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(tenant)
            .bind(from.map(|f| f.0))
            .bind(from.is_some_and(|f| f.1))
            .fetch_all(&mut *conn)
            .await?;
        let Some(last) = batch.last() else { break };
        from = Some((last.order_id.as_uuid(), false));
        for o in batch {
            let missing =
                crate::orders::missing_information(conn, tenant, o.order_id, as_of).await?;
            for (i, m) in missing.into_iter().enumerate() {
                if after.is_some_and(|(id, n)| id == o.order_id.as_uuid() && i <= n) {
                    continue;
                }
                let scope = serde_json::to_value(m.scope)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                rows.push((
                    MissingRow {
                        order_id: o.order_id.as_uuid(),
                        order_number: o.order_number.clone(),
                        order_state: o.state.clone(),
                        order_date: o.order_date,
                        patient_id: o.patient_id,
                        patient_account_number: o.account_number.clone(),
                        patient_name: o.patient_name.clone(),
                        scope,
                        subject_id: m.id,
                        code: m.code,
                        message: m.message,
                    },
                    (o.order_id.as_uuid(), i),
                ));
                if rows.len() >= want {
                    break 'batches;
                }
            }
        }
    }
    page_keyed(req, rows)
}

// ---- rentals due ----

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct RentalDueRow {
    order_id: Uuid,
    order_number: String,
    order_line_id: Uuid,
    line_number: i32,
    patient_id: Uuid,
    patient_account_number: String,
    patient_name: String,
    item_code: String,
    item_name: String,
    hcpcs: String,
    sale_rent_type: String,
    billing_frequency: String,
    months_billed: i32,
    next_billing_month: i32,
    next_bill_date: NaiveDate,
    dos_from: Option<NaiveDate>,
    serial_number: Option<String>,
}

/// The joins every order-line report shares: order `o`, patient `p`, item `i`, serial `s`.
const LINE_JOINS: &str = "from order_line l \
     join patient_order o on o.tenant_id = l.tenant_id and o.order_id = l.order_id \
     join patient p on p.tenant_id = o.tenant_id and p.patient_id = o.patient_id \
     join inventory_item i on i.tenant_id = l.tenant_id and i.item_id = l.item_id \
     left join serial s on s.tenant_id = l.tenant_id and s.serial_id = l.serial_id";

fn line_select() -> String {
    format!(
        "l.order_id, o.order_number, l.order_line_id, l.line_number, o.patient_id, \
         p.account_number as patient_account_number, {PATIENT_NAME} as patient_name, \
         i.code as item_code, i.name as item_name"
    )
}

async fn rentals_due(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let after: Option<(NaiveDate, Uuid)> = req.after()?;
    let sql = format!(
        "select {}, l.hcpcs, l.sale_rent_type, l.billing_frequency, l.billing_month as months_billed, \
         l.billing_month + 1 as next_billing_month, l.next_bill_date, l.dos_from, s.serial_number {LINE_JOINS} \
         where l.tenant_id = $1 and l.state = 'delivered' and l.sale_rent_type = any($2) and l.next_bill_date <= $3 \
         and ($4::date is null or (l.next_bill_date, l.order_line_id) > ($4, $5)) \
         order by l.next_bill_date, l.order_line_id limit $6",
        line_select()
    );
    let rows: Vec<RentalDueRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(rental_types())
        .bind(req.as_of()?)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| (r.next_bill_date, r.order_line_id))
}

// ---- serials ----

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct SerialRow {
    serial_id: Uuid,
    serial_number: String,
    item_id: Uuid,
    item_code: String,
    item_name: String,
    status: String,
    warehouse_id: Option<Uuid>,
    warehouse_code: Option<String>,
    patient_id: Option<Uuid>,
    patient_account_number: Option<String>,
    patient_name: Option<String>,
    next_maintenance_date: Option<NaiveDate>,
}

/// The columns of a serial row (serial `s`, item `i`, warehouse `w`, patient `p`).
fn serial_columns() -> String {
    format!(
        "s.serial_id, s.serial_number, s.item_id, i.code as item_code, i.name as item_name, s.status, \
         (s.state->>'warehouse')::uuid as warehouse_id, w.code as warehouse_code, \
         (s.state->>'patient')::uuid as patient_id, p.account_number as patient_account_number, \
         case when p.patient_id is null then null else {PATIENT_NAME} end as patient_name, s.next_maintenance_date"
    )
}

/// The joins of a serial row.
const SERIAL_JOINS: &str = "from serial s join inventory_item i on i.tenant_id = s.tenant_id and i.item_id = s.item_id \
     left join warehouse w on w.tenant_id = s.tenant_id and w.warehouse_id = (s.state->>'warehouse')::uuid \
     left join patient p on p.tenant_id = s.tenant_id and p.patient_id = (s.state->>'patient')::uuid";

async fn serial_locations(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let after: Option<Uuid> = req.after()?;
    let sql = format!(
        "select {} {SERIAL_JOINS} where s.tenant_id = $1 and ($2::text is null or s.status = $2) \
         and ($3::uuid is null or (s.state->>'warehouse')::uuid = $3) and ($4::uuid is null or s.item_id = $4) \
         and ($5::uuid is null or s.serial_id > $5) order by s.serial_id limit $6",
        serial_columns()
    );
    let rows: Vec<SerialRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(req.choice("status"))
        .bind(req.uuid("warehouse_id"))
        .bind(req.uuid("item_id"))
        .bind(after)
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| r.serial_id)
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct MaintenanceRow {
    #[serde(flatten)]
    #[sqlx(flatten)]
    serial: SerialRow,
    days_overdue: i32,
}

async fn maintenance_due(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let after: Option<(NaiveDate, Uuid)> = req.after()?;
    let sql = format!(
        "select {}, ($2::date - s.next_maintenance_date) as days_overdue {SERIAL_JOINS} \
         where s.tenant_id = $1 and s.next_maintenance_date <= $2 and s.status not in ('sold', 'lost', 'junked') \
         and ($3::uuid is null or (s.state->>'warehouse')::uuid = $3) and ($4::uuid is null or s.item_id = $4) \
         and ($5::date is null or (s.next_maintenance_date, s.serial_id) > ($5, $6)) \
         order by s.next_maintenance_date, s.serial_id limit $7",
        serial_columns()
    );
    let rows: Vec<MaintenanceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(req.as_of()?)
        .bind(req.uuid("warehouse_id"))
        .bind(req.uuid("item_id"))
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| {
        (
            r.serial.next_maintenance_date.unwrap_or_default(),
            r.serial.serial_id,
        )
    })
}

// ---- reorder ----

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct ReorderRow {
    warehouse_id: Uuid,
    warehouse_code: String,
    item_id: Uuid,
    item_code: String,
    item_name: String,
    on_hand: i64,
    committed: i64,
    available: i64,
    on_order: i64,
    reorder_point: i64,
    shortfall: i64,
}

async fn reorder(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let after: Option<(Uuid, Uuid)> = req.after()?;
    let rows: Vec<ReorderRow> = sqlx::query_as(
        "select l.warehouse_id, w.code as warehouse_code, l.item_id, i.code as item_code, i.name as item_name, \
         l.on_hand, l.committed, l.on_hand - l.committed as available, l.on_order, l.reorder_point, \
         l.reorder_point - (l.on_hand - l.committed) as shortfall \
         from stock_level l join warehouse w on w.tenant_id = l.tenant_id and w.warehouse_id = l.warehouse_id \
         join inventory_item i on i.tenant_id = l.tenant_id and i.item_id = l.item_id \
         where l.tenant_id = $1 and w.active and i.active and l.reorder_point > 0 \
         and l.on_hand - l.committed <= l.reorder_point \
         and ($2::uuid is null or l.warehouse_id = $2) and ($3::uuid is null or l.item_id = $3) \
         and ($4::uuid is null or (l.warehouse_id, l.item_id) > ($4, $5)) \
         order by l.warehouse_id, l.item_id limit $6",
    )
    .bind(tenant)
    .bind(req.uuid("warehouse_id"))
    .bind(req.uuid("item_id"))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(fetch_limit(req))
    .fetch_all(conn)
    .await?;
    page(req, rows, |r| (r.warehouse_id, r.item_id))
}

// ---- deliveries and pickups ----

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct DeliveryRow {
    kind: String,
    date: NaiveDate,
    order_id: Uuid,
    order_number: String,
    order_line_id: Uuid,
    line_number: i32,
    patient_id: Uuid,
    patient_account_number: String,
    patient_name: String,
    address: Option<String>,
    delivery_directions: Option<String>,
    warehouse_code: Option<String>,
    item_code: String,
    item_name: String,
    quantity: i32,
    serial_number: Option<String>,
    /// Sort rank of `kind` (awaiting first); not a column.
    #[serde(skip)]
    k: i32,
}

fn range(req: &ReportRequest) -> Result<(NaiveDate, NaiveDate), DomainError> {
    match (req.date("from"), req.date("to")) {
        (Some(f), Some(t)) => Ok((f, t)),
        _ => Err(invalid("from", "missing", "a date range is required")),
    }
}

async fn deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let (from, to) = range(req)?;
    let after: Option<(i32, NaiveDate, Uuid)> = req.after()?;
    let common = format!(
        "{}, {PATIENT_ADDRESS} as address, p.delivery_directions, w.code as warehouse_code, l.quantity, \
         s.serial_number {LINE_JOINS} left join warehouse w on w.tenant_id = o.tenant_id and w.warehouse_id = o.warehouse_id",
        line_select()
    );
    let sql = format!(
        "select * from (\
           select 0 as k, 'awaiting_delivery' as kind, (o.approved_at at time zone 'UTC')::date as date, {common} \
           where l.tenant_id = $1 and l.state = 'approved' and o.state = 'approved' \
           and (o.approved_at at time zone 'UTC')::date <= $3 \
           union all \
           select 1 as k, 'delivered' as kind, l.delivery_date as date, {common} \
           where l.tenant_id = $1 and l.delivery_date between $2 and $3 and l.state <> 'canceled'\
         ) r where ($4::int is null or (r.k, r.date, r.order_line_id) > ($4, $5, $6)) \
         order by r.k, r.date, r.order_line_id limit $7"
    );
    let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(after.map(|a| a.2))
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| (r.k, r.date, r.order_line_id))
}

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct PickupRow {
    date: NaiveDate,
    order_id: Uuid,
    order_number: String,
    order_line_id: Uuid,
    line_number: i32,
    patient_id: Uuid,
    patient_account_number: String,
    patient_name: String,
    address: Option<String>,
    item_code: String,
    item_name: String,
    quantity: i32,
    serial_number: Option<String>,
    return_warehouse_code: Option<String>,
    end_date: Option<NaiveDate>,
}

async fn pickups(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let (from, to) = range(req)?;
    let after: Option<(NaiveDate, Uuid)> = req.after()?;
    let sql = format!(
        "select l.pickup_date as date, {}, {PATIENT_ADDRESS} as address, l.quantity, s.serial_number, \
         w.code as return_warehouse_code, l.end_date {LINE_JOINS} \
         left join warehouse w on w.tenant_id = l.tenant_id and w.warehouse_id = l.return_warehouse_id \
         where l.tenant_id = $1 and l.pickup_date between $2 and $3 \
         and ($4::date is null or (l.pickup_date, l.order_line_id) > ($4, $5)) \
         order by l.pickup_date, l.order_line_id limit $6",
        line_select()
    );
    let rows: Vec<PickupRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| (r.date, r.order_line_id))
}

// ---- capped rentals at month 13 ----

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
struct Month13Row {
    order_id: Uuid,
    order_number: String,
    order_line_id: Uuid,
    line_number: i32,
    patient_id: Uuid,
    patient_account_number: String,
    patient_name: String,
    item_code: String,
    item_name: String,
    hcpcs: String,
    sale_rent_type: String,
    months_billed: i32,
    month_13_from: NaiveDate,
    serial_number: Option<String>,
}

async fn capped_month_13(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let within = req.integer("within_months").unwrap_or(1);
    let after: Option<(NaiveDate, Uuid)> = req.after()?;
    let sql = format!(
        "select * from (select {}, l.hcpcs, l.sale_rent_type, l.billing_month as months_billed, \
         (l.dos_from + make_interval(months => 12 - l.billing_month))::date as month_13_from, s.serial_number \
         {LINE_JOINS} where l.tenant_id = $1 and l.state = 'delivered' and l.dos_from is not null \
         and l.sale_rent_type in ('capped_rental', 'parental_capped_rental') and l.billing_month >= 12 - $2) r \
         where ($3::date is null or (r.month_13_from, r.order_line_id) > ($3, $4)) \
         order by r.month_13_from, r.order_line_id limit $5",
        line_select()
    );
    let rows: Vec<Month13Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(i32::try_from(within).unwrap_or(1))
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(fetch_limit(req))
        .fetch_all(conn)
        .await?;
    page(req, rows, |r| (r.month_13_from, r.order_line_id))
}

// ---- the billing worklist ----

/// A row of `billing-worklist`: a charge that will invoice, or a line excluded for missing
/// information.
#[derive(Debug, Clone, Default, Serialize)]
struct WorklistRow {
    /// `due` or `excluded`.
    kind: &'static str,
    order_id: Uuid,
    order_number: String,
    /// Absent on excluded rows (the worklist does not carry it there).
    patient_id: Option<Uuid>,
    order_line_id: Uuid,
    line_number: i32,
    hcpcs: Option<String>,
    billing_month: Option<i32>,
    dos_from: Option<NaiveDate>,
    dos_to: Option<NaiveDate>,
    invoice_date: Option<NaiveDate>,
    quantity: Option<Decimal>,
    /// Space-separated (`RR KH`).
    modifiers: Option<String>,
    billable: Option<Decimal>,
    allowable: Option<Decimal>,
    tax: Option<Decimal>,
    closes: Option<bool>,
    /// The missing-information codes, joined by `;`.
    missing_codes: Option<String>,
}

/// Walks [`crate::billing_runs::worklist_from`] (the worklist the API and the runs use) and
/// flattens it into rows until the page is full. Key: (order line id, index of the row within the
/// line).
async fn billing_worklist(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    let as_of = req.as_of()?;
    let with_excluded = req.choice("include") == Some("excluded");
    let after: Option<(Uuid, usize)> = req.after()?;
    let want = req.limit as usize + 1;
    let mut rows: Vec<(WorklistRow, (Uuid, usize))> = Vec::new();
    let mut from = after.map(|(line, _)| (line, true));
    loop {
        let page = crate::page::PageRequest {
            limit: 50,
            after: from.map(|f| f.0),
        };
        let wl = crate::billing_runs::worklist_from(
            conn,
            tenant,
            as_of,
            page,
            from.is_some_and(|f| f.1),
        )
        .await?;
        let mut flat: Vec<(WorklistRow, (Uuid, usize))> = Vec::new();
        for l in &wl.data {
            let last = l.charges.len().saturating_sub(1);
            for (i, c) in l.charges.iter().enumerate() {
                flat.push((
                    WorklistRow {
                        kind: "due",
                        order_id: l.order_id.as_uuid(),
                        order_number: l.order_number.clone(),
                        patient_id: Some(l.patient_id.as_uuid()),
                        order_line_id: l.order_line_id.as_uuid(),
                        line_number: l.line_number,
                        hcpcs: Some(l.hcpcs.clone()),
                        billing_month: Some(c.billing_month),
                        dos_from: Some(c.dos_from),
                        dos_to: Some(c.dos_to),
                        invoice_date: Some(c.invoice_date),
                        quantity: Some(c.quantity),
                        modifiers: Some(c.modifiers.join(" ")),
                        billable: Some(c.billable),
                        allowable: Some(c.allowable),
                        tax: Some(c.tax),
                        closes: Some(l.closes && i == last),
                        missing_codes: None,
                    },
                    (l.order_line_id.as_uuid(), i),
                ));
            }
        }
        if with_excluded {
            for l in &wl.excluded {
                flat.push((
                    WorklistRow {
                        kind: "excluded",
                        order_id: l.order_id.as_uuid(),
                        order_number: l.order_number.clone(),
                        order_line_id: l.order_line_id.as_uuid(),
                        line_number: l.line_number,
                        missing_codes: Some(
                            l.missing
                                .iter()
                                .map(|m| m.code.as_str())
                                .collect::<Vec<_>>()
                                .join(";"),
                        ),
                        ..WorklistRow::default()
                    },
                    (l.order_line_id.as_uuid(), 0),
                ));
            }
        }
        flat.sort_by_key(|(_, k)| *k);
        for (row, key) in flat {
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            rows.push((row, key));
            if rows.len() >= want {
                return page_keyed(req, rows);
            }
        }
        match wl.next_cursor.as_deref().map(crate::page::decode_cursor) {
            Some(Ok(last)) => from = Some((last, false)),
            _ => break,
        }
    }
    page_keyed(req, rows)
}

// ---- AR aging ----

/// A row of `ar-aging`: one payer's open receivables, or one open line.
#[derive(Debug, Clone, Default, Serialize)]
struct AgingRow {
    /// `payer` or `line`.
    kind: &'static str,
    /// None for the patient.
    payer_id: Option<Uuid>,
    payer_name: String,
    /// Open lines counted (payer rows).
    lines: Option<i64>,
    days_0_30: Decimal,
    days_31_60: Decimal,
    days_61_90: Decimal,
    days_over_90: Decimal,
    total: Decimal,
    invoice_id: Option<Uuid>,
    invoice_number: Option<String>,
    invoice_date: Option<NaiveDate>,
    invoice_line_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    hcpcs: Option<String>,
    billing_month: Option<i32>,
    current_payer: Option<String>,
    days_outstanding: Option<i64>,
}

impl AgingRow {
    /// Adds `balance`, `days` old, to its bucket and the total.
    fn add(&mut self, days: i64, balance: Decimal) {
        let bucket = match days {
            ..=30 => &mut self.days_0_30,
            31..=60 => &mut self.days_31_60,
            61..=90 => &mut self.days_61_90,
            _ => &mut self.days_over_90,
        };
        *bucket += balance;
        self.total += balance;
    }
}

/// The sort key of an aging row: (patient last, payer name, payer id, payer row before its
/// lines, line id).
type AgingKey = (u8, String, Uuid, u8, Uuid);

/// Folds every invoice line with [`crate::invoices::open_lines_as_of`] (the invoices' own AR
/// fold), resolves each open line's payer, and groups in memory.
async fn ar_aging(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &ReportRequest,
) -> Result<ReportPage, DomainError> {
    use crate::invoices::cents;
    let as_of = req.as_of()?;
    let only_payer = req.uuid("payer_id");
    let detail = req.choice("detail") == Some("lines");
    let after: Option<AgingKey> = req.after()?;
    let lines = crate::invoices::open_lines_as_of(conn, tenant, as_of).await?;
    let policy_ids: Vec<Uuid> = lines
        .iter()
        .filter_map(|l| {
            let rank = l.ar.current_payer.slot()?.rank()?;
            l.policy_ids.get(rank - 1).map(|p| p.as_uuid())
        })
        .collect();
    let payers: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "select pp.policy_id, py.payer_id, py.name from patient_policy pp \
         join payer py on py.tenant_id = pp.tenant_id and py.payer_id = pp.payer_id \
         where pp.tenant_id = $1 and pp.policy_id = any($2)",
    )
    .bind(tenant)
    .bind(&policy_ids)
    .fetch_all(&mut *conn)
    .await?;
    let zero = Decimal::new(0, 2);
    let mut groups: BTreeMap<AgingKey, (AgingRow, Vec<(AgingKey, AgingRow)>)> = BTreeMap::new();
    for l in lines {
        let slot = l.ar.current_payer.slot();
        let payer = match slot.and_then(|s| s.rank()) {
            Some(rank) => l
                .policy_ids
                .get(rank - 1)
                .and_then(|p| payers.iter().find(|(id, _, _)| *id == p.as_uuid()))
                .map(|(_, id, name)| (Some(*id), name.clone()))
                .unwrap_or((None, "(unknown payer)".to_owned())),
            None => (None, "Patient".to_owned()),
        };
        if only_payer.is_some() && payer.0 != only_payer {
            continue;
        }
        let is_patient = slot.and_then(|s| s.rank()).is_none();
        let group_key: AgingKey = (
            u8::from(is_patient),
            payer.1.clone(),
            payer.0.unwrap_or(Uuid::nil()),
            0,
            Uuid::nil(),
        );
        let days = (as_of - l.invoice_date).num_days();
        let balance = l.ar.balance;
        let entry = groups.entry(group_key.clone()).or_insert_with(|| {
            (
                AgingRow {
                    kind: "payer",
                    payer_id: payer.0,
                    payer_name: payer.1.clone(),
                    lines: Some(0),
                    days_0_30: zero,
                    days_31_60: zero,
                    days_61_90: zero,
                    days_over_90: zero,
                    total: zero,
                    ..AgingRow::default()
                },
                Vec::new(),
            )
        });
        entry.0.add(days, balance);
        entry.0.lines = entry.0.lines.map(|n| n + 1);
        if detail {
            let mut row = AgingRow {
                kind: "line",
                payer_id: payer.0,
                payer_name: payer.1.clone(),
                days_0_30: zero,
                days_31_60: zero,
                days_61_90: zero,
                days_over_90: zero,
                total: zero,
                invoice_id: Some(l.invoice_id.as_uuid()),
                invoice_number: Some(l.invoice_number.clone()),
                invoice_date: Some(l.invoice_date),
                invoice_line_id: Some(l.invoice_line_id.as_uuid()),
                patient_id: Some(l.patient_id.as_uuid()),
                hcpcs: Some(l.hcpcs.clone()),
                billing_month: Some(l.billing_month),
                current_payer: Some(l.ar.current_payer.as_str().to_owned()),
                days_outstanding: Some(days),
                ..AgingRow::default()
            };
            row.add(days, balance);
            let mut key = group_key;
            key.3 = 1;
            key.4 = l.invoice_line_id.as_uuid();
            entry.1.push((key, row));
        }
    }
    let mut rows: Vec<(AgingRow, AgingKey)> = Vec::new();
    for (key, (payer_row, mut line_rows)) in groups {
        line_rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, mut r) in std::iter::once((key, payer_row)).chain(line_rows) {
            if after.as_ref().is_some_and(|a| &k <= a) {
                continue;
            }
            for v in [
                &mut r.days_0_30,
                &mut r.days_31_60,
                &mut r.days_61_90,
                &mut r.days_over_90,
                &mut r.total,
            ] {
                *v = cents(*v);
            }
            rows.push((r, k));
        }
    }
    rows.truncate(req.limit as usize + 1);
    page_keyed(req, rows)
}

// ---- CSV ----

/// The header record of a report's CSV (RFC 4180: comma-separated, CRLF-terminated).
pub fn csv_header(spec: &ReportSpec) -> String {
    let mut out = spec
        .columns
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// One row as a CSV record, fields in the report's column order: text as is, numbers and
/// booleans in their JSON form, null as an empty field. A text field that a spreadsheet would run
/// as a formula (starting with `=`, `+`, `-`, `@`, tab or CR, and not a number) is prefixed with
/// `'` (OWASP's CSV-injection advice).
pub fn csv_record(spec: &ReportSpec, row: &Value) -> String {
    let mut out = spec
        .columns
        .iter()
        .map(|c| {
            let cell = match row.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => defuse(s),
                Some(other) => other.to_string(),
            };
            csv_field(&cell)
        })
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

fn defuse(s: &str) -> String {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s.parse::<Decimal>().is_err() {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Quotes a field when it holds a comma, a quote, CR or LF, doubling inner quotes (RFC 4180 §2).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

// ---- the operator's platform report ----

/// One tenant's figures for the platform report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantFigures {
    /// Whose figures.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// Delivered rental lines now (every sale/rent type but the sales), equipment out on rent.
    pub active_rentals: i64,
    /// Σ billable of invoice lines of invoices dated in the month.
    #[schema(value_type = String)]
    pub billed: Decimal,
    /// Σ open balance of invoice lines: billable + tax − payments − write-offs (the AR rule).
    #[schema(value_type = String)]
    pub open_ar: Decimal,
}

/// The statement that computes `tenant`'s figures for the month starting `month_start` (run after
/// `set_config('aries.tenant_id', tenant, true)` in the same transaction, so row-level security
/// limits it to the tenant; it also names the tenant in every `where`). The tenant id and dates are
/// typed values whose text is digits, hyphens and hex, so formatting them into SQL is safe; the
/// statement goes into a multi-statement simple query, which takes no bind parameters. Every
/// column is text, decoded by [`parse_figures`].
pub fn platform_tenant_sql(tenant: TenantId, month_start: NaiveDate) -> String {
    let id = tenant.as_uuid().hyphenated();
    let start = month_start.format("%Y-%m-%d");
    let next = month_start
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(month_start)
        .format("%Y-%m-%d");
    let rentals = rental_types()
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "select '{id}' as tenant_id, \
         (select count(*) from order_line where tenant_id = '{id}' and state = 'delivered' \
          and sale_rent_type in ({rentals}))::text as active_rentals, \
         (select coalesce(sum(il.billable), 0) from invoice i join invoice_line il \
          on il.tenant_id = i.tenant_id and il.invoice_id = i.invoice_id \
          where i.tenant_id = '{id}' and i.invoice_date >= date '{start}' and i.invoice_date < date '{next}')::text as billed, \
         (select coalesce(sum(il.billable + il.tax - coalesce(t.settled, 0)), 0) from invoice_line il \
          left join (select invoice_line_id, sum(amount) as settled from ar_transaction where tenant_id = '{id}' \
                     and kind in ('payment', 'contractual_writeoff', 'hardship_writeoff', 'balance_writeoff', \
                                  'sequestration_writeoff') group by invoice_line_id) t \
          on t.invoice_line_id = il.invoice_line_id where il.tenant_id = '{id}')::text as open_ar"
    )
}

/// Reads the four text columns of [`platform_tenant_sql`]; money with two places.
pub fn parse_figures(cols: [&str; 4]) -> Option<TenantFigures> {
    let money = |s: &str| -> Option<Decimal> {
        let mut d = s.parse::<Decimal>().ok()?;
        d.rescale(2);
        Some(d)
    };
    Some(TenantFigures {
        tenant_id: cols[0].parse().ok()?,
        active_rentals: cols[1].parse().ok()?,
        billed: money(cols[2])?,
        open_ar: money(cols[3])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn fields(e: PrepareError) -> Vec<(String, String)> {
        match e {
            PrepareError::Invalid(errs) => errs.0.into_iter().map(|f| (f.field, f.code)).collect(),
            PrepareError::UnknownReport => vec![("report".into(), "unknown".into())],
        }
    }

    #[test]
    fn names_are_kebab_case_and_unique() {
        for (i, r) in CATALOGUE.iter().enumerate() {
            assert!(
                r.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.name
            );
            assert!(CATALOGUE[..i].iter().all(|o| o.name != r.name));
        }
    }

    #[test]
    fn columns_are_the_row_fields() {
        let keys = |v: Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let sorted = |cols: &[&str]| -> Vec<String> {
            let mut c: Vec<String> = cols.iter().map(|s| (*s).to_owned()).collect();
            c.sort();
            c
        };
        let rows: [(&str, Value); 10] = [
            (
                "missing-information",
                serde_json::to_value(MissingRow::default()).unwrap_or_default(),
            ),
            (
                "rentals-due",
                serde_json::to_value(RentalDueRow::default()).unwrap_or_default(),
            ),
            (
                "serial-locations",
                serde_json::to_value(SerialRow::default()).unwrap_or_default(),
            ),
            (
                "maintenance-due",
                serde_json::to_value(MaintenanceRow::default()).unwrap_or_default(),
            ),
            (
                "reorder",
                serde_json::to_value(ReorderRow::default()).unwrap_or_default(),
            ),
            (
                "deliveries",
                serde_json::to_value(DeliveryRow::default()).unwrap_or_default(),
            ),
            (
                "pickups",
                serde_json::to_value(PickupRow::default()).unwrap_or_default(),
            ),
            (
                "capped-rental-month-13",
                serde_json::to_value(Month13Row::default()).unwrap_or_default(),
            ),
            (
                "billing-worklist",
                serde_json::to_value(WorklistRow::default()).unwrap_or_default(),
            ),
            (
                "ar-aging",
                serde_json::to_value(AgingRow::default()).unwrap_or_default(),
            ),
        ];
        assert_eq!(rows.len(), CATALOGUE.len());
        for (name, row) in rows {
            let mut k = keys(row);
            k.sort();
            let spec = spec(name).map(|s| s.columns).unwrap_or_default();
            assert_eq!(k, sorted(spec), "{name}");
        }
    }

    #[test]
    fn prepare_validates_and_defaults() {
        let today = day("2026-12-02");
        let r = prepare("rentals-due", &[], today).map_err(fields);
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.params.get("as_of"), Some(&ParamValue::Date(today)));
        assert_eq!(r.limit, DEFAULT_LIMIT);
        assert!(matches!(
            prepare("no-such", &[], today),
            Err(PrepareError::UnknownReport)
        ));
        let e = prepare(
            "rentals-due",
            &q(&[("bogus", "1"), ("as_of", "2026-13-01"), ("limit", "0")]),
            today,
        )
        .map(|_| ())
        .map_err(fields);
        assert_eq!(
            e,
            Err(vec![
                ("bogus".into(), "unknown_parameter".into()),
                ("as_of".into(), "invalid_value".into()),
                ("limit".into(), "out_of_range".into()),
            ])
        );
        let e = prepare(
            "serial-locations",
            &q(&[("status", "gone"), ("status", "lost")]),
            today,
        )
        .map(|_| ())
        .map_err(fields);
        assert_eq!(
            e,
            Err(vec![
                ("status".into(), "invalid_value".into()),
                ("status".into(), "repeated".into()),
            ])
        );
        let e = prepare(
            "capped-rental-month-13",
            &q(&[("within_months", "13")]),
            today,
        )
        .map(|_| ())
        .map_err(fields);
        assert_eq!(
            e,
            Err(vec![("within_months".into(), "invalid_value".into())])
        );
        let r = prepare("capped-rental-month-13", &[], today).map_err(fields);
        assert_eq!(
            r.map(|r| r.params.get("within_months").cloned()),
            Ok(Some(ParamValue::Integer(1)))
        );
    }

    #[test]
    fn date_ranges() {
        let today = day("2026-12-02");
        let range_of = |pairs: &[(&str, &str)]| {
            prepare("deliveries", &q(pairs), today)
                .map(|r| (r.date("from"), r.date("to"), r.params.contains_key("date")))
                .map_err(fields)
        };
        assert_eq!(range_of(&[]), Ok((Some(today), Some(today), false)));
        let d = day("2026-11-30");
        assert_eq!(
            range_of(&[("date", "2026-11-30")]),
            Ok((Some(d), Some(d), false))
        );
        assert_eq!(
            range_of(&[("from", "2026-11-01"), ("to", "2026-11-30")]),
            Ok((Some(day("2026-11-01")), Some(d), false))
        );
        assert_eq!(
            range_of(&[("date", "2026-11-30"), ("from", "2026-11-01")]),
            Err(vec![("date".into(), "conflict".into())])
        );
        assert_eq!(
            range_of(&[("from", "2026-11-01")]),
            Err(vec![("to".into(), "missing".into())])
        );
        assert_eq!(
            range_of(&[("from", "2026-11-02"), ("to", "2026-11-01")]),
            Err(vec![("to".into(), "out_of_range".into())])
        );
        assert_eq!(
            range_of(&[("from", "2025-01-01"), ("to", "2026-11-01")]),
            Err(vec![("to".into(), "out_of_range".into())])
        );
    }

    #[test]
    fn cursors_are_bound_to_their_report() -> Result<(), DomainError> {
        let c = encode_cursor("reorder", &(Uuid::nil(), Uuid::max()))?;
        assert_eq!(
            decode_cursor("reorder", &c),
            Some(serde_json::json!([Uuid::nil(), Uuid::max()]))
        );
        assert_eq!(decode_cursor("pickups", &c), None);
        assert_eq!(decode_cursor("reorder", "!!"), None);
        let today = day("2026-12-02");
        let e = prepare("pickups", &q(&[("cursor", &c)]), today)
            .map(|_| ())
            .map_err(fields);
        assert_eq!(e, Err(vec![("cursor".into(), "invalid_cursor".into())]));
        Ok(())
    }

    #[test]
    fn aging_buckets_have_inclusive_upper_bounds() {
        let mut r = AgingRow::default();
        for (days, cents) in [
            (0, 1),
            (30, 2),
            (31, 4),
            (60, 8),
            (61, 16),
            (90, 32),
            (91, 64),
        ] {
            r.add(days, Decimal::new(cents, 2));
        }
        assert_eq!(
            (
                r.days_0_30,
                r.days_31_60,
                r.days_61_90,
                r.days_over_90,
                r.total
            ),
            (
                Decimal::new(3, 2),
                Decimal::new(12, 2),
                Decimal::new(48, 2),
                Decimal::new(64, 2),
                Decimal::new(127, 2)
            )
        );
    }

    #[test]
    fn csv_quotes_and_defuses() {
        let spec = ReportSpec {
            name: "t",
            description: "",
            parameters: &[],
            columns: &["a", "b", "c", "d", "e"],
        };
        assert_eq!(csv_header(&spec), "a,b,c,d,e\r\n");
        let row =
            serde_json::json!({"a": "x, \"y\"", "b": null, "c": 3, "d": "=SUM(A1)", "e": "-12.50"});
        assert_eq!(
            csv_record(&spec, &row),
            "\"x, \"\"y\"\"\",,3,'=SUM(A1),-12.50\r\n"
        );
        let row = serde_json::json!({"a": "two\nlines"});
        assert_eq!(csv_record(&spec, &row), "\"two\nlines\",,,,\r\n");
    }

    #[test]
    fn platform_sql_names_the_tenant_and_month() {
        let t = TenantId::new();
        let sql = platform_tenant_sql(t, day("2026-12-01"));
        assert!(sql.contains(&format!("'{}'", t.as_uuid().hyphenated())));
        assert!(sql.contains("date '2026-12-01'") && sql.contains("date '2027-01-01'"));
        let f = parse_figures([&t.to_string(), "3", "125.4", "0"]);
        assert_eq!(
            f,
            Some(TenantFigures {
                tenant_id: t,
                active_rentals: 3,
                billed: Decimal::new(12540, 2),
                open_ar: Decimal::ZERO,
            })
        );
        assert_eq!(
            f.map(|f| (f.billed.to_string(), f.open_ar.to_string())),
            Some(("125.40".to_owned(), "0.00".to_owned()))
        );
    }
}
