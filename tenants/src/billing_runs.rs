//! The billing worklist and billing runs (DOMAIN.md §3.2): what will invoice as of a date, and
//! the run that invoices it, idempotently.
//!
//! A run bills every delivered or picked-up line of an approved order whose next charge is due
//! ([`crate::dme::billing::charges_until`]), groups the charges into one invoice per (order,
//! billing month, flags), advances each line's cursor, closes what the rules close, and spawns the
//! next order of a re-occurring sale. Three things keep a (line, month) from being billed twice:
//! - the caller holds a Redis lease for the tenant and passes its fencing token; every batch
//!   writes it to `billing_fence` (`… where last_token <= $t`), so a run whose lease was taken
//!   over is refused (`billing_run_superseded`) — and the fence row's lock serialises batches;
//! - each order is billed with its row locked `for update`, so the cursor read is the latest;
//! - behind both, `invoice_line_once` (unique per line and month): an order whose billing hits it
//!   is rolled back to its savepoint and skipped, whatever else failed.
//!
//! Each order is all-or-nothing (a savepoint): its invoices, lines, cursors and closes commit
//! together or not at all.

use crate::DomainError;
use crate::dme::billing::{self, BillingLine, Charge, CloseReason, Cycle};
use crate::dme::orders::{LineState, MissingInfo, MissingScope, OrderState, order_is_finished};
use crate::ids::{
    BillingRunId, InvoiceId, InvoiceLineId, OrderId, OrderLineId, PatientId, TenantId,
};
use crate::invoices::cents;
use crate::orders::{self, LineInput, Order, OrderInput, OrderLine};
use crate::outbox;
use crate::page::PageRequest;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Orders one batch (one tenant transaction) bills at most.
pub const BATCH_ORDERS: u32 = 25;

// ---- types ----

/// A charge as the API shows it (the rules' [`Charge`] with a schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DueCharge {
    /// 1-based month of the line's life.
    pub billing_month: i32,
    /// First day of service.
    pub dos_from: NaiveDate,
    /// Last day of service.
    pub dos_to: NaiveDate,
    /// The day the invoice is dated.
    pub invoice_date: NaiveDate,
    /// Units billed.
    #[schema(value_type = String)]
    pub quantity: Decimal,
    /// Modifiers billed (≤ 4).
    pub modifiers: Vec<String>,
    /// Amount billed.
    #[schema(value_type = String)]
    pub billable: Decimal,
    /// Amount expected.
    #[schema(value_type = String)]
    pub allowable: Decimal,
    /// Sales tax.
    #[schema(value_type = String)]
    pub tax: Decimal,
    /// The rule set that priced it.
    pub rule_version: String,
}

impl From<&Charge> for DueCharge {
    fn from(c: &Charge) -> Self {
        DueCharge {
            billing_month: c.billing_month,
            dos_from: c.dos_from,
            dos_to: c.dos_to,
            invoice_date: c.invoice_date,
            quantity: cents(c.quantity),
            modifiers: c.modifiers.clone(),
            billable: cents(c.billable),
            allowable: cents(c.allowable),
            tax: cents(c.tax),
            rule_version: c.rule_version.to_owned(),
        }
    }
}

/// A line due for billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorklistLine {
    /// The order.
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// `O000123`.
    pub order_number: String,
    /// The order's patient.
    #[schema(value_type = String, format = Uuid)]
    pub patient_id: PatientId,
    /// The line.
    #[schema(value_type = String, format = Uuid)]
    pub order_line_id: OrderLineId,
    /// Its number on the order.
    pub line_number: i32,
    /// HCPCS code.
    pub hcpcs: String,
    /// What a run as of the date would bill, month by month (catch-up included).
    pub charges: Vec<DueCharge>,
    /// Whether the line closes after these charges.
    pub closes: bool,
}

/// A line that would be due but cannot be billed: its order lacks information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExcludedLine {
    /// The order.
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// `O000123`.
    pub order_number: String,
    /// The line.
    #[schema(value_type = String, format = Uuid)]
    pub order_line_id: OrderLineId,
    /// Its number on the order.
    pub line_number: i32,
    /// Why (the order's and this line's problems).
    pub missing: Vec<MissingInfo>,
}

/// One page of the worklist. Pages walk candidate lines (delivered or picked up, of approved
/// orders) in id order; a page may hold fewer entries than the limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Worklist {
    /// The date asked for.
    pub as_of: NaiveDate,
    /// Lines due.
    pub data: Vec<WorklistLine>,
    /// Lines that would be due but have missing information.
    pub excluded: Vec<ExcludedLine>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A billing run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BillingRun {
    /// UUIDv7.
    #[sqlx(rename = "billing_run_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: BillingRunId,
    /// Bills every charge whose invoice date is on or before it.
    pub as_of: NaiveDate,
    /// The Redis lease's fencing token it wrote under.
    pub fencing_token: i64,
    /// `running`, `completed` or `failed`.
    pub status: String,
    /// Invoice lines written.
    pub lines_billed: i32,
    /// Invoices written.
    pub invoices_created: i32,
    /// Order lines closed.
    pub lines_closed: i32,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who started it.
    pub started_by: String,
    /// When.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// Invoice lines written.
    pub lines_billed: i32,
    /// Invoices written (their ids, for the audit trail).
    pub invoices: Vec<InvoiceId>,
    /// Order lines closed.
    pub lines_closed: i32,
    /// Orders skipped because a line was already billed for a month (`invoice_line_once`).
    pub orders_skipped: i32,
    /// Orders created for re-occurring sales.
    pub orders_created: Vec<OrderId>,
    /// The last order looked at; the next batch starts after it.
    pub last_order: Option<OrderId>,
    /// Whether no order is left.
    pub done: bool,
}

// ---- pure parts ----

/// The rules' view of a stored line (None when it has not been delivered).
pub fn billing_line(l: &OrderLine) -> Option<BillingLine> {
    let delivery_date = l.delivery_date?;
    Some(BillingLine {
        sale_rent_type: l.sale_rent_type,
        billing_frequency: l.billing_frequency,
        bill_item_on: l.bill_item_on,
        quantity: l.quantity,
        ordered_frequency: l.ordered_frequency,
        modifiers: l.modifiers.clone(),
        billable_price: l.billable_price,
        allowable_price: l.allowable_price,
        sale_billable_price: l.sale_billable_price,
        sale_allowable_price: l.sale_allowable_price,
        taxable: l.taxable,
        flat_rate: l.flat_rate,
        delivery_date,
        pickup_date: l.pickup_date,
        end_date: l.end_date,
        billing_month: l.billing_month,
        dos_from: l.dos_from.unwrap_or(delivery_date),
    })
}

/// A branch rate in percent as the fraction the rules take (8.25 → 0.0825).
pub fn tax_fraction(percent: Decimal) -> Decimal {
    percent / Decimal::from(100)
}

/// The grouping flags of an invoice (legacy bitmask): Ins1=1, Ins2=2, Ins3=4, Ins4=8 for the
/// order's policies, accept assignment=16, the line has an end date=32.
pub fn invoice_flags(policies: usize, accept_assignment: bool, has_end_date: bool) -> i16 {
    let mut flags: i16 = 0;
    for rank in 0..policies.min(4) {
        flags |= 1 << rank;
    }
    if accept_assignment {
        flags |= 16;
    }
    if has_end_date {
        flags |= 32;
    }
    flags
}

/// One line's charges to bill, as planning needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCharges {
    /// The order line.
    pub line: OrderLineId,
    /// Whether it has an end date (a grouping flag).
    pub has_end_date: bool,
    /// Its charges, in month order.
    pub charges: Vec<Charge>,
}

/// One invoice to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedInvoice {
    /// Month billed.
    pub billing_month: i32,
    /// Grouping flags.
    pub flags: i16,
    /// The earliest invoice date of its charges.
    pub invoice_date: NaiveDate,
    /// (line, charge), in the order the lines were given.
    pub lines: Vec<(OrderLineId, Charge)>,
}

/// Groups an order's charges into invoices per (billing month, flags), in (month, flags) order.
pub fn plan_invoices(
    policies: usize,
    accept_assignment: bool,
    lines: &[LineCharges],
) -> Vec<PlannedInvoice> {
    let mut out: Vec<PlannedInvoice> = Vec::new();
    for l in lines {
        let flags = invoice_flags(policies, accept_assignment, l.has_end_date);
        for c in &l.charges {
            match out
                .iter_mut()
                .find(|p| p.billing_month == c.billing_month && p.flags == flags)
            {
                Some(p) => {
                    p.invoice_date = p.invoice_date.min(c.invoice_date);
                    p.lines.push((l.line, c.clone()));
                }
                None => out.push(PlannedInvoice {
                    billing_month: c.billing_month,
                    flags,
                    invoice_date: c.invoice_date,
                    lines: vec![(l.line, c.clone())],
                }),
            }
        }
    }
    out.sort_by_key(|p| (p.billing_month, p.flags));
    out
}

/// The order's problems that stop a line: the order-wide ones and the line's own.
fn problems_for(missing: &[MissingInfo], line: OrderLineId) -> Vec<MissingInfo> {
    missing
        .iter()
        .filter(|m| m.scope != MissingScope::Line || m.id == Some(line.as_uuid()))
        .cloned()
        .collect()
}

fn billable_state(l: &OrderLine) -> bool {
    matches!(l.state(), LineState::Delivered | LineState::Pickup)
}

// ---- reading ----

async fn tax_rate_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    order: &Order,
) -> Result<Decimal, DomainError> {
    let Some(location) = order.location_id else {
        return Ok(Decimal::ZERO);
    };
    let rate: Option<Decimal> = sqlx::query_scalar(
        "select tax_rate from location where tenant_id = $1 and location_id = $2",
    )
    .bind(tenant)
    .bind(location)
    .fetch_optional(conn)
    .await?;
    Ok(rate.unwrap_or(Decimal::ZERO))
}

/// A page of the worklist as of a date.
pub async fn worklist(
    conn: &mut PgConnection,
    tenant: TenantId,
    as_of: NaiveDate,
    page: PageRequest,
) -> Result<Worklist, DomainError> {
    worklist_from(conn, tenant, as_of, page, false).await
}

/// [`worklist`], starting at `page.after` itself when `inclusive` (the billing-worklist report
/// resumes in the middle of a line's charges).
pub async fn worklist_from(
    conn: &mut PgConnection,
    tenant: TenantId,
    as_of: NaiveDate,
    page: PageRequest,
    inclusive: bool,
) -> Result<Worklist, DomainError> {
    let candidates: Vec<(OrderLineId, OrderId)> = sqlx::query_as(
        "select l.order_line_id, l.order_id from order_line l join patient_order o using (tenant_id, order_id) \
         where l.tenant_id = $1 and o.state = 'approved' and l.state in ('delivered', 'pickup') \
         and ($2::uuid is null or l.order_line_id > $2 or ($4 and l.order_line_id = $2)) \
         order by l.order_line_id limit $3",
    )
    .bind(tenant)
    .bind(page.after)
    .bind(i64::from(page.limit) + 1)
    .bind(inclusive)
    .fetch_all(&mut *conn)
    .await?;
    let more = candidates.len() > page.limit as usize;
    let candidates = &candidates[..candidates.len().min(page.limit as usize)];
    let mut data = Vec::new();
    let mut excluded = Vec::new();
    let mut cache: Vec<(Order, Vec<MissingInfo>, Decimal)> = Vec::new();
    for (line_id, order_id) in candidates {
        if !cache.iter().any(|(o, _, _)| o.id == *order_id) {
            let order = orders::get(conn, tenant, *order_id).await?;
            let missing = orders::missing_information(conn, tenant, *order_id, as_of).await?;
            let rate = tax_rate_of(conn, tenant, &order).await?;
            cache.push((order, missing, rate));
        }
        let Some((order, missing, rate)) = cache.iter().find(|(o, _, _)| o.id == *order_id) else {
            continue;
        };
        let Some(line) = order.lines.iter().find(|l| l.id == *line_id) else {
            continue;
        };
        let Some(bl) = billing_line(line) else {
            continue;
        };
        let (charges, _, closed) = billing::charges_until(&bl, as_of, tax_fraction(*rate));
        if charges.is_empty() {
            continue;
        }
        let problems = problems_for(missing, line.id);
        if problems.is_empty() {
            data.push(WorklistLine {
                order_id: order.id,
                order_number: order.order_number.clone(),
                patient_id: order.patient_id,
                order_line_id: line.id,
                line_number: line.line_number,
                hcpcs: line.hcpcs.clone(),
                charges: charges.iter().map(DueCharge::from).collect(),
                closes: closed,
            });
        } else {
            excluded.push(ExcludedLine {
                order_id: order.id,
                order_number: order.order_number.clone(),
                order_line_id: line.id,
                line_number: line.line_number,
                missing: problems,
            });
        }
    }
    let next_cursor = if more {
        candidates
            .last()
            .map(|(l, _)| crate::page::encode_cursor(l.as_uuid()))
    } else {
        None
    };
    Ok(Worklist {
        as_of,
        data,
        excluded,
        next_cursor,
    })
}

const RUN_COLUMNS: &str = "billing_run_id, as_of, fencing_token, status, lines_billed, invoices_created, \
    lines_closed, error, started_by, started_at, finished_at";

/// One run, or `NotFound`.
pub async fn get_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: BillingRunId,
) -> Result<BillingRun, DomainError> {
    let sql = format!(
        "select {RUN_COLUMNS} from billing_run where tenant_id = $1 and billing_run_id = $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("billing run"))
}

/// A page of runs, oldest first.
pub async fn list_runs(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Vec<BillingRun>, DomainError> {
    let sql = format!(
        "select {RUN_COLUMNS} from billing_run where tenant_id = $1 and ($2::uuid is null or billing_run_id > $2) \
         order by billing_run_id limit $3"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

// ---- the run ----

fn superseded(token: i64) -> DomainError {
    DomainError::Conflict {
        code: "billing_run_superseded",
        detail: format!(
            "fencing token {token} is older than the last one a billing run wrote with; another run took over"
        ),
    }
}

/// Writes the fencing token: refused when a newer one was seen. Holds the fence row's lock until
/// the transaction ends, so two runs' batches never interleave.
pub async fn fence(
    conn: &mut PgConnection,
    tenant: TenantId,
    token: i64,
) -> Result<(), DomainError> {
    let ok: Option<i64> = sqlx::query_scalar(
        "insert into billing_fence (tenant_id, last_token) values ($1, $2) \
         on conflict (tenant_id) do update set last_token = excluded.last_token \
         where billing_fence.last_token <= excluded.last_token returning last_token",
    )
    .bind(tenant)
    .bind(token)
    .fetch_optional(conn)
    .await?;
    ok.map(|_| ()).ok_or_else(|| superseded(token))
}

/// Records a new run (status `running`) under `token`.
pub async fn start_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    as_of: NaiveDate,
    token: i64,
    started_by: &str,
) -> Result<BillingRun, DomainError> {
    fence(conn, tenant, token).await?;
    let sql = format!(
        "insert into billing_run (tenant_id, billing_run_id, as_of, fencing_token, started_by) \
         values ($1, $2, $3, $4, $5) returning {RUN_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(BillingRunId::new())
        .bind(as_of)
        .bind(token)
        .bind(started_by)
        .fetch_one(conn)
        .await?)
}

/// Ends a run with its totals; writes `billing_run.completed` (or `.failed`).
pub async fn finish_run(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: BillingRunId,
    totals: &BatchOutcome,
    invoices_created: i32,
    error: Option<String>,
) -> Result<BillingRun, DomainError> {
    let status = if error.is_some() {
        "failed"
    } else {
        "completed"
    };
    let sql = format!(
        "update billing_run set status = $3, lines_billed = $4, invoices_created = $5, lines_closed = $6, \
         error = $7, finished_at = now() where tenant_id = $1 and billing_run_id = $2 returning {RUN_COLUMNS}"
    );
    let run: BillingRun = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(status)
        .bind(totals.lines_billed)
        .bind(invoices_created)
        .bind(totals.lines_closed)
        .bind(&error)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("billing run"))?;
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        &format!("billing_run.{status}"),
        &run,
    )
    .await?;
    Ok(run)
}

/// Bills up to [`BATCH_ORDERS`] orders after `after` (in id order) for run `run`, under `token`.
pub async fn bill_batch(
    conn: &mut PgConnection,
    tenant: TenantId,
    run: BillingRunId,
    as_of: NaiveDate,
    token: i64,
    after: Option<OrderId>,
) -> Result<BatchOutcome, DomainError> {
    fence(conn, tenant, token).await?;
    let status: Option<String> = sqlx::query_scalar(
        "select status from billing_run where tenant_id = $1 and billing_run_id = $2",
    )
    .bind(tenant)
    .bind(run)
    .fetch_optional(&mut *conn)
    .await?;
    if status.as_deref() != Some("running") {
        return Err(DomainError::NotFound("running billing run"));
    }
    let ids: Vec<OrderId> = sqlx::query_scalar(
        "select o.order_id from patient_order o where o.tenant_id = $1 and o.state = 'approved' \
         and ($2::uuid is null or o.order_id > $2) and exists (select 1 from order_line l \
         where l.tenant_id = o.tenant_id and l.order_id = o.order_id and l.state in ('delivered', 'pickup')) \
         order by o.order_id limit $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(i64::from(BATCH_ORDERS) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = BatchOutcome {
        done: ids.len() <= BATCH_ORDERS as usize,
        ..BatchOutcome::default()
    };
    for id in ids.into_iter().take(BATCH_ORDERS as usize) {
        out.last_order = Some(id);
        sqlx::query("savepoint bill_order")
            .execute(&mut *conn)
            .await?;
        match bill_order(conn, tenant, run, as_of, id).await {
            Ok(o) => {
                sqlx::query("release savepoint bill_order")
                    .execute(&mut *conn)
                    .await?;
                out.lines_billed += o.lines_billed;
                out.lines_closed += o.lines_closed;
                out.invoices.extend(o.invoices);
                out.orders_created.extend(o.orders_created);
            }
            Err(DomainError::Database(e))
                if crate::error::unique_violation(&e) == Some("invoice_line_once") =>
            {
                // Billed already by someone the fence did not stop: nothing of this order is kept.
                sqlx::query("rollback to savepoint bill_order")
                    .execute(&mut *conn)
                    .await?;
                out.orders_skipped += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn next_invoice_number(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<String, DomainError> {
    let n: i64 = sqlx::query_scalar(
        "insert into invoice_number_counter (tenant_id, last_value) values ($1, 1) \
         on conflict (tenant_id) do update set last_value = invoice_number_counter.last_value + 1 \
         returning last_value",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await?;
    Ok(format!("I{n:06}"))
}

/// What a line's cursor becomes after billing.
struct LineUpdate {
    line: OrderLineId,
    billing_month: i32,
    dos_from: NaiveDate,
    dos_to: Option<NaiveDate>,
    next_bill_date: Option<NaiveDate>,
    close: Option<CloseReason>,
}

fn close_reason_text(r: CloseReason) -> &'static str {
    match r {
        CloseReason::LastMonthBilled => "last_month_billed",
        CloseReason::EndDatePassed => "end_date_passed",
        CloseReason::OneTime => "one_time",
        CloseReason::UnsupportedLegacyRules => "unsupported_legacy_rules",
        CloseReason::DateOutOfRange => "date_out_of_range",
    }
}

/// Bills one order (the caller holds a savepoint around it).
async fn bill_order(
    conn: &mut PgConnection,
    tenant: TenantId,
    run: BillingRunId,
    as_of: NaiveDate,
    id: OrderId,
) -> Result<BatchOutcome, DomainError> {
    // Lock the order: a concurrent biller waits here, then reads the cursors this one wrote.
    let state: Option<String> = sqlx::query_scalar(
        "select state from patient_order where tenant_id = $1 and order_id = $2 for update",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let mut out = BatchOutcome::default();
    if state.as_deref() != Some(OrderState::Approved.as_str()) {
        return Ok(out);
    }
    let order = orders::get(conn, tenant, id).await?;
    let missing = orders::missing_information(conn, tenant, id, as_of).await?;
    let rate = tax_rate_of(conn, tenant, &order).await?;
    let fraction = tax_fraction(rate);
    let mut to_bill = Vec::new();
    let mut updates = Vec::new();
    let mut reorders = Vec::new();
    for line in order.lines.iter().filter(|l| billable_state(l)) {
        if !problems_for(&missing, line.id).is_empty() {
            continue;
        }
        let Some(bl) = billing_line(line) else {
            continue;
        };
        let (charges, cursor, closed) = billing::charges_until(&bl, as_of, fraction);
        let after = BillingLine {
            billing_month: cursor.billing_month,
            dos_from: cursor.dos_from,
            ..bl.clone()
        };
        let (next_bill_date, close) = match billing::next_cycle(&after, as_of, fraction) {
            Cycle::Closed { reason } => (None, Some(reason)),
            Cycle::NotDue { invoice_date } => (Some(invoice_date), None),
            Cycle::Bill { charge, .. } => (Some(charge.invoice_date), None),
            Cycle::Held { .. } => (None, None),
        };
        let close = if closed {
            close.or(Some(CloseReason::LastMonthBilled))
        } else {
            None
        };
        if charges.is_empty() && close.is_none() {
            continue;
        }
        if !charges.is_empty()
            && let Some(date) = billing::reorder_date(&bl)
        {
            reorders.push((line.clone(), date));
        }
        updates.push(LineUpdate {
            line: line.id,
            billing_month: cursor.billing_month,
            dos_from: cursor.dos_from,
            dos_to: charges.last().map(|c| c.dos_to).or(line.dos_to),
            next_bill_date,
            close,
        });
        to_bill.push((
            line,
            LineCharges {
                line: line.id,
                has_end_date: line.end_date.is_some(),
                charges,
            },
        ));
    }
    let plan = plan_invoices(
        order.policy_ids.len(),
        order.accept_assignment,
        &to_bill.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
    );
    for p in &plan {
        let invoice_id = InvoiceId::new();
        let number = next_invoice_number(conn, tenant).await?;
        sqlx::query(
            "insert into invoice (tenant_id, invoice_id, invoice_number, order_id, patient_id, billing_month, flags, \
             invoice_date, policy_ids, prescriber_id, place_of_service, diagnosis_codes, accept_assignment, tax_rate, \
             billing_run_id) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
        )
        .bind(tenant)
        .bind(invoice_id)
        .bind(&number)
        .bind(order.id)
        .bind(order.patient_id)
        .bind(p.billing_month)
        .bind(p.flags)
        .bind(p.invoice_date)
        .bind(&order.policy_ids)
        .bind(order.prescriber_id)
        .bind(&order.place_of_service)
        .bind(&order.diagnosis_codes)
        .bind(order.accept_assignment)
        .bind(rate)
        .bind(run)
        .execute(&mut *conn)
        .await?;
        for (line_id, c) in &p.lines {
            let hcpcs = to_bill
                .iter()
                .find(|(l, _)| l.id == *line_id)
                .map(|(l, _)| l.hcpcs.clone())
                .unwrap_or_default();
            sqlx::query(
                "insert into invoice_line (tenant_id, invoice_line_id, invoice_id, order_line_id, billing_month, \
                 dos_from, dos_to, hcpcs, modifiers, quantity, billable, allowable, tax, rule_version) \
                 values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
            )
            .bind(tenant)
            .bind(InvoiceLineId::new())
            .bind(invoice_id)
            .bind(line_id)
            .bind(c.billing_month)
            .bind(c.dos_from)
            .bind(c.dos_to)
            .bind(&hcpcs)
            .bind(&c.modifiers)
            .bind(c.quantity)
            .bind(c.billable)
            .bind(c.allowable)
            .bind(c.tax)
            .bind(c.rule_version)
            .execute(&mut *conn)
            .await?;
            out.lines_billed += 1;
        }
        let invoice = crate::invoices::get(conn, tenant, invoice_id).await?;
        outbox::record(
            conn,
            tenant,
            invoice_id.as_uuid(),
            "invoice.created",
            &invoice,
        )
        .await?;
        out.invoices.push(invoice_id);
    }
    for u in &updates {
        let (state, closed_on, reason) = match u.close {
            Some(r) => (
                Some(LineState::Closed.as_str()),
                Some(as_of),
                Some(close_reason_text(r)),
            ),
            None => (None, None, None),
        };
        sqlx::query(
            "update order_line set billing_month = $3, dos_from = $4, dos_to = $5, next_bill_date = $6, \
             state = coalesce($7, state), closed_on = coalesce($8, closed_on), close_reason = coalesce($9, close_reason), \
             version = version + 1, updated_at = now() where tenant_id = $1 and order_line_id = $2",
        )
        .bind(tenant)
        .bind(u.line)
        .bind(u.billing_month)
        .bind(u.dos_from)
        .bind(u.dos_to)
        .bind(u.next_bill_date)
        .bind(state)
        .bind(closed_on)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
        if u.close.is_some() {
            out.lines_closed += 1;
        }
    }
    if !updates.is_empty() {
        let states: Vec<LineState> = order
            .lines
            .iter()
            .map(|l| match updates.iter().find(|u| u.line == l.id) {
                Some(u) if u.close.is_some() => LineState::Closed,
                _ => l.state(),
            })
            .collect();
        let finished = order_is_finished(&states);
        sqlx::query(
            "update patient_order set state = case when $3 then 'closed' else state end, \
             version = version + 1, updated_at = now() where tenant_id = $1 and order_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(finished)
        .execute(&mut *conn)
        .await?;
        let order = orders::get(conn, tenant, id).await?;
        let event = if finished {
            "order.closed"
        } else {
            "order.billed"
        };
        outbox::record(conn, tenant, id.as_uuid(), event, &order).await?;
    }
    for (line, date) in reorders {
        let next = orders::create(
            conn,
            tenant,
            &OrderInput {
                patient_id: order.patient_id,
                order_date: Some(date),
                prescriber_id: order.prescriber_id,
                location_id: order.location_id,
                warehouse_id: order.warehouse_id,
                diagnosis_codes: Some(order.diagnosis_codes.clone()),
                policy_ids: Some(order.policy_ids.clone()),
                place_of_service: Some(order.place_of_service.clone()),
                accept_assignment: Some(order.accept_assignment),
                self_pay: Some(order.self_pay),
                notes: Some(format!(
                    "re-occurring sale: next order after {} line {}",
                    order.order_number, line.line_number
                )),
                lines: vec![LineInput {
                    item_id: line.item_id,
                    price_list_id: Some(line.price_list_id),
                    sale_rent_type: Some(line.sale_rent_type),
                    billing_frequency: Some(line.billing_frequency),
                    bill_item_on: Some(line.bill_item_on),
                    quantity: Some(line.quantity),
                    ordered_frequency: line.ordered_frequency,
                    modifiers: Some(line.modifiers.clone()),
                    billable_price: line.billable_price,
                    allowable_price: line.allowable_price,
                    taxable: Some(line.taxable),
                    dx_pointers: Some(line.dx_pointers.clone()),
                    authorization_number: line.authorization_number.clone(),
                    authorization_expires: line.authorization_expires,
                    cmn_reference: line.cmn_reference.clone(),
                    cmn_expires: line.cmn_expires,
                }],
            },
        )
        .await?;
        out.orders_created.push(next.id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    fn charge(month: i32, invoice_date: &str) -> Charge {
        Charge {
            billing_month: month,
            dos_from: day(invoice_date),
            dos_to: day(invoice_date),
            invoice_date: day(invoice_date),
            quantity: Decimal::ONE,
            modifiers: vec![],
            billable: Decimal::new(10000, 2),
            allowable: Decimal::new(8000, 2),
            tax: Decimal::ZERO,
            rule_version: "dmepos-2006",
        }
    }

    #[test]
    fn flags_follow_the_legacy_bitmask() {
        assert_eq!(invoice_flags(0, false, false), 0);
        assert_eq!(invoice_flags(1, false, false), 1);
        assert_eq!(invoice_flags(2, true, false), 1 + 2 + 16);
        assert_eq!(invoice_flags(4, true, true), 1 + 2 + 4 + 8 + 16 + 32);
        assert_eq!(invoice_flags(7, false, true), 15 + 32);
    }

    #[test]
    fn plan_groups_by_month_and_flags() {
        let a = OrderLineId::new();
        let b = OrderLineId::new();
        let c = OrderLineId::new();
        let lines = vec![
            LineCharges {
                line: a,
                has_end_date: false,
                charges: vec![charge(1, "2026-01-10"), charge(2, "2026-02-10")],
            },
            LineCharges {
                line: b,
                has_end_date: false,
                charges: vec![charge(1, "2026-01-05")],
            },
            // An end date puts the line on its own invoice.
            LineCharges {
                line: c,
                has_end_date: true,
                charges: vec![charge(1, "2026-01-10")],
            },
        ];
        let plan = plan_invoices(2, true, &lines);
        let got: Vec<(i32, i16, NaiveDate, Vec<OrderLineId>)> = plan
            .iter()
            .map(|p| {
                (
                    p.billing_month,
                    p.flags,
                    p.invoice_date,
                    p.lines.iter().map(|(l, _)| *l).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 19, day("2026-01-05"), vec![a, b]),
                (1, 51, day("2026-01-10"), vec![c]),
                (2, 19, day("2026-02-10"), vec![a]),
            ]
        );
        // Every charge is planned exactly once.
        let total: usize = plan.iter().map(|p| p.lines.len()).sum();
        assert_eq!(total, 4);
        assert!(plan_invoices(1, false, &[]).is_empty());
    }

    #[test]
    fn tax_rate_is_a_percentage() {
        assert_eq!(tax_fraction(Decimal::new(825, 2)), Decimal::new(825, 4));
        assert_eq!(tax_fraction(Decimal::ZERO), Decimal::ZERO);
    }

    #[test]
    fn order_problems_stop_every_line_line_problems_only_theirs() {
        let a = OrderLineId::new();
        let b = OrderLineId::new();
        let line_problem = MissingInfo {
            scope: MissingScope::Line,
            id: Some(a.as_uuid()),
            code: "missing_price".into(),
            message: String::new(),
        };
        assert_eq!(
            problems_for(std::slice::from_ref(&line_problem), a).len(),
            1
        );
        assert!(problems_for(std::slice::from_ref(&line_problem), b).is_empty());
        let order_problem = MissingInfo {
            scope: MissingScope::Patient,
            id: None,
            code: "missing_date_of_birth".into(),
            message: String::new(),
        };
        assert_eq!(problems_for(&[order_problem, line_problem], b).len(), 1);
    }
}
