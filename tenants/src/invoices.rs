//! Invoices (claims), their lines and the lines' accounts receivable (DOMAIN.md §3.3).
//!
//! Invoices and invoice lines are written by billing runs and never change afterwards; what a
//! line is owed, who it waits on and where its claim stands are folds of its append-only AR
//! transactions ([`crate::dme::ar`]), computed on every read. Posting a transaction folds the
//! line's history with the new entry under a per-line advisory lock, so two concurrent postings
//! cannot both pass the balance check.

use crate::DomainError;
use crate::dme::ar::{self, ArEntry, ArError, ArKind, LineAr, PayerSlot};
use crate::ids::{
    ArTransactionId, BillingRunId, InvoiceId, InvoiceLineId, OrderId, OrderLineId, PatientId,
    PolicyId, PrescriberId, TenantId,
};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Most transactions one remittance batch may post at once.
pub const MAX_BATCH: usize = 200;

// ---- stored ----

/// An invoice with its lines and their receivables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    /// UUIDv7; lists are ordered by it.
    #[schema(value_type = String, format = Uuid)]
    pub id: InvoiceId,
    /// `I000123`, unique per tenant: what people quote.
    pub invoice_number: String,
    /// The order billed.
    #[schema(value_type = String, format = Uuid)]
    pub order_id: OrderId,
    /// The order's patient.
    #[schema(value_type = String, format = Uuid)]
    pub patient_id: PatientId,
    /// The month of the order's life this invoice bills (1-based).
    pub billing_month: i32,
    /// Grouping flags: Ins1=1, Ins2=2, Ins3=4, Ins4=8, accept assignment=16, has an end date=32.
    pub flags: i16,
    /// The day the invoice is dated (from the lines' bill-item-on rule).
    pub invoice_date: NaiveDate,
    /// The policies billed, in rank order, as they were when the invoice was made.
    #[schema(value_type = Vec<String>)]
    pub policy_ids: Vec<PolicyId>,
    /// The ordering prescriber, when the order has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub prescriber_id: Option<PrescriberId>,
    /// CMS place of service of the order.
    pub place_of_service: String,
    /// ICD-10-CM codes of the order, in claim order.
    pub diagnosis_codes: Vec<String>,
    /// Whether the provider accepts assignment for this claim.
    pub accept_assignment: bool,
    /// The branch's tax rate (percent) the taxes were computed with.
    #[schema(value_type = String)]
    pub tax_rate: Decimal,
    /// The run that made it.
    #[schema(value_type = String, format = Uuid)]
    pub billing_run_id: BillingRunId,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Σ lines' charges (billable + tax).
    #[schema(value_type = String)]
    pub total: Decimal,
    /// Σ lines' balances (derived).
    #[schema(value_type = String)]
    pub balance: Decimal,
    /// The lines, in their order-line order.
    pub lines: Vec<InvoiceLine>,
}

/// One invoice line with its receivable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceLine {
    /// UUIDv7.
    #[schema(value_type = String, format = Uuid)]
    pub id: InvoiceLineId,
    /// The invoice it belongs to.
    #[schema(value_type = String, format = Uuid)]
    pub invoice_id: InvoiceId,
    /// The order line billed.
    #[schema(value_type = String, format = Uuid)]
    pub order_line_id: OrderLineId,
    /// The month of the line's life billed; unique per order line.
    pub billing_month: i32,
    /// First day of service billed.
    pub dos_from: NaiveDate,
    /// Last day of service billed.
    pub dos_to: NaiveDate,
    /// HCPCS billing code.
    pub hcpcs: String,
    /// Up to four modifiers (RR KH…).
    pub modifiers: Vec<String>,
    /// Units billed.
    #[schema(value_type = String)]
    pub quantity: Decimal,
    /// Amount billed.
    #[schema(value_type = String)]
    pub billable: Decimal,
    /// Amount expected.
    #[schema(value_type = String)]
    pub allowable: Decimal,
    /// Sales tax on it.
    #[schema(value_type = String)]
    pub tax: Decimal,
    /// The billing rule set that priced it.
    pub rule_version: String,
    /// Balance, payer cursor and status, folded from its transactions.
    pub ar: LineAr,
}

/// One AR transaction as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArTransaction {
    /// UUIDv7: the fold's order.
    #[sqlx(rename = "ar_transaction_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: ArTransactionId,
    /// The line it concerns.
    #[schema(value_type = String, format = Uuid)]
    pub invoice_line_id: InvoiceLineId,
    /// What happened.
    pub kind: ArKind,
    /// Whom it concerns.
    pub payer: PayerSlot,
    /// Money paid or written off (0.00 for submissions and denials).
    #[schema(value_type = String)]
    pub amount: Decimal,
    /// What the payer allowed (payments).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub allowed: Option<Decimal>,
    /// The deductible the payer applied (payments).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub deductible: Option<Decimal>,
    /// The posting day.
    pub posted_on: NaiveDate,
    /// Remittance batch or check number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// A note for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The principal who posted it.
    pub created_by: String,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
}

impl ArTransaction {
    /// Amounts with two places.
    fn printed(mut self) -> Self {
        self.amount = cents(self.amount);
        self.allowed = self.allowed.map(cents);
        self.deductible = self.deductible.map(cents);
        self
    }

    fn entry(&self) -> ArEntry {
        ArEntry {
            kind: self.kind,
            payer: self.payer,
            amount: self.amount,
            allowed: self.allowed,
            deductible: self.deductible,
            posted_on: self.posted_on,
        }
    }
}

// ---- inputs ----

/// Body of "post a transaction" on a line.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionInput {
    /// What happened.
    pub kind: ArKind,
    /// Whom it concerns. Default: the line's current payer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<PayerSlot>,
    /// Decimal string, two places at most. Required for payments (may be `"0.00"`) and
    /// write-offs (more than zero); absent for submissions and denials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "80.00")]
    pub amount: Option<Decimal>,
    /// What the payer allowed (payments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub allowed: Option<Decimal>,
    /// The deductible the payer applied (payments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub deductible: Option<Decimal>,
    /// Default: today (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_on: Option<NaiveDate>,
    /// Remittance batch or check number (at most 50 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// At most 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One line of a remittance posted in one call.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchEntry {
    /// The line it is posted on.
    #[schema(value_type = String, format = Uuid)]
    pub invoice_line_id: InvoiceLineId,
    /// The transaction.
    #[serde(flatten)]
    pub transaction: TransactionInput,
}

/// Body of "post a remittance": every entry or none.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// In posting order (several may name the same line).
    pub transactions: Vec<BatchEntry>,
}

/// Filters of the invoice list.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    /// One patient's invoices.
    pub patient_id: Option<PatientId>,
    /// One order's invoices.
    pub order_id: Option<OrderId>,
    /// Invoice date on or after.
    pub from: Option<NaiveDate>,
    /// Invoice date on or before.
    pub to: Option<NaiveDate>,
    /// `true`: only invoices with a balance; `false`: only those fully settled.
    pub open: Option<bool>,
}

// ---- reading ----

#[derive(sqlx::FromRow)]
struct InvoiceRow {
    invoice_id: InvoiceId,
    invoice_number: String,
    order_id: OrderId,
    patient_id: PatientId,
    billing_month: i32,
    flags: i16,
    invoice_date: NaiveDate,
    policy_ids: Vec<PolicyId>,
    prescriber_id: Option<PrescriberId>,
    place_of_service: String,
    diagnosis_codes: Vec<String>,
    accept_assignment: bool,
    tax_rate: Decimal,
    billing_run_id: BillingRunId,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    invoice_line_id: InvoiceLineId,
    invoice_id: InvoiceId,
    order_line_id: OrderLineId,
    billing_month: i32,
    dos_from: NaiveDate,
    dos_to: NaiveDate,
    hcpcs: String,
    modifiers: Vec<String>,
    quantity: Decimal,
    billable: Decimal,
    allowable: Decimal,
    tax: Decimal,
    rule_version: String,
    /// How many policies its invoice bills (the fold needs it).
    policies: i32,
}

const INVOICE_COLUMNS: &str = "invoice_id, invoice_number, order_id, patient_id, billing_month, flags, \
    invoice_date, policy_ids, prescriber_id, place_of_service, diagnosis_codes, accept_assignment, \
    tax_rate, billing_run_id, created_at";

const LINE_COLUMNS: &str = "l.invoice_line_id, l.invoice_id, l.order_line_id, l.billing_month, l.dos_from, \
    l.dos_to, l.hcpcs, l.modifiers, l.quantity, l.billable, l.allowable, l.tax, l.rule_version, \
    cardinality(i.policy_ids) as policies";

const TX_COLUMNS: &str = "ar_transaction_id, invoice_line_id, kind, payer, amount, allowed, deductible, \
    posted_on, batch, comment, created_by, created_at";

/// The AR kinds that carry money, as SQL text (the balance filter of the list uses it).
const MONEY_KINDS: &str = "('payment', 'contractual_writeoff', 'hardship_writeoff', 'balance_writeoff', 'sequestration_writeoff')";

fn corrupt(e: ArError) -> DomainError {
    // A stored history the rules refuse can only come from a bug or a hand edit.
    DomainError::Database(sqlx::Error::Decode(
        format!("stored AR history does not fold: {e}").into(),
    ))
}

/// Money as the API prints it: two places (`"0.00"`, not `"0"`).
pub fn cents(mut v: Decimal) -> Decimal {
    v.rescale(2);
    v
}

fn charge(l: &LineRow) -> Decimal {
    cents(l.billable + l.tax)
}

fn policies(l: &LineRow) -> usize {
    usize::try_from(l.policies).unwrap_or(0)
}

async fn transactions_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    lines: &[InvoiceLineId],
) -> Result<Vec<ArTransaction>, DomainError> {
    let sql = format!(
        "select {TX_COLUMNS} from ar_transaction where tenant_id = $1 and invoice_line_id = any($2) \
         order by invoice_line_id, ar_transaction_id"
    );
    let rows: Vec<ArTransaction> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(lines)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(ArTransaction::printed).collect())
}

async fn load_lines(
    conn: &mut PgConnection,
    tenant: TenantId,
    invoices: &[InvoiceId],
) -> Result<Vec<InvoiceLine>, DomainError> {
    let sql = format!(
        "select {LINE_COLUMNS} from invoice_line l join invoice i using (tenant_id, invoice_id) \
         join order_line ol on ol.tenant_id = l.tenant_id and ol.order_line_id = l.order_line_id \
         where l.tenant_id = $1 and l.invoice_id = any($2) order by l.invoice_id, ol.line_number, l.billing_month"
    );
    let rows: Vec<LineRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(invoices)
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<InvoiceLineId> = rows.iter().map(|r| r.invoice_line_id).collect();
    let txs = transactions_of(conn, tenant, &ids).await?;
    rows.into_iter()
        .map(|r| {
            let entries: Vec<ArEntry> = txs
                .iter()
                .filter(|t| t.invoice_line_id == r.invoice_line_id)
                .map(ArTransaction::entry)
                .collect();
            let ar = ar::fold(charge(&r), policies(&r), &entries).map_err(corrupt)?;
            Ok(InvoiceLine {
                id: r.invoice_line_id,
                invoice_id: r.invoice_id,
                order_line_id: r.order_line_id,
                billing_month: r.billing_month,
                dos_from: r.dos_from,
                dos_to: r.dos_to,
                hcpcs: r.hcpcs,
                modifiers: r.modifiers,
                quantity: cents(r.quantity),
                billable: cents(r.billable),
                allowable: cents(r.allowable),
                tax: cents(r.tax),
                rule_version: r.rule_version,
                ar,
            })
        })
        .collect()
}

fn assemble(rows: Vec<InvoiceRow>, mut lines: Vec<InvoiceLine>) -> Vec<Invoice> {
    rows.into_iter()
        .map(|r| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                lines.drain(..).partition(|l| l.invoice_id == r.invoice_id);
            lines = rest;
            let total = cents(mine.iter().map(|l| l.ar.charge).sum());
            let balance = cents(mine.iter().map(|l| l.ar.balance).sum());
            Invoice {
                id: r.invoice_id,
                invoice_number: r.invoice_number,
                order_id: r.order_id,
                patient_id: r.patient_id,
                billing_month: r.billing_month,
                flags: r.flags,
                invoice_date: r.invoice_date,
                policy_ids: r.policy_ids,
                prescriber_id: r.prescriber_id,
                place_of_service: r.place_of_service,
                diagnosis_codes: r.diagnosis_codes,
                accept_assignment: r.accept_assignment,
                tax_rate: crate::locations::model::normalise_rate(r.tax_rate),
                billing_run_id: r.billing_run_id,
                created_at: r.created_at,
                total,
                balance,
                lines: mine,
            }
        })
        .collect()
}

/// One invoice with its lines and their receivables, or `NotFound`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: InvoiceId,
) -> Result<Invoice, DomainError> {
    let sql =
        format!("select {INVOICE_COLUMNS} from invoice where tenant_id = $1 and invoice_id = $2");
    let row: InvoiceRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("invoice"))?;
    let lines = load_lines(conn, tenant, &[id]).await?;
    assemble(vec![row], lines)
        .into_iter()
        .next()
        .ok_or(DomainError::NotFound("invoice"))
}

/// A page of invoices (id order), each with its lines.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &InvoiceFilter,
) -> Result<Vec<Invoice>, DomainError> {
    // An invoice is open when one of its lines is owed something: its charge is more than its
    // money entries (the fold never lets them exceed it, so this is the fold's balance).
    let sql = format!(
        "select {INVOICE_COLUMNS} from invoice i where tenant_id = $1 and ($2::uuid is null or invoice_id > $2) \
         and ($3::uuid is null or patient_id = $3) and ($4::uuid is null or order_id = $4) \
         and ($5::date is null or invoice_date >= $5) and ($6::date is null or invoice_date <= $6) \
         and ($7::boolean is null or $7 = exists (select 1 from invoice_line l where l.tenant_id = i.tenant_id \
              and l.invoice_id = i.invoice_id and l.billable + l.tax > coalesce((select sum(t.amount) \
              from ar_transaction t where t.tenant_id = l.tenant_id and t.invoice_line_id = l.invoice_line_id \
              and t.kind in {MONEY_KINDS}), 0))) \
         order by invoice_id limit $8"
    );
    let rows: Vec<InvoiceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(f.patient_id)
        .bind(f.order_id)
        .bind(f.from)
        .bind(f.to)
        .bind(f.open)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<InvoiceId> = rows.iter().map(|r| r.invoice_id).collect();
    let lines = load_lines(conn, tenant, &ids).await?;
    Ok(assemble(rows, lines))
}

/// An invoice line with its receivable as of a day (the AR-aging report's input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAsOf {
    /// The invoice.
    pub invoice_id: InvoiceId,
    /// `I000123`.
    pub invoice_number: String,
    /// The day the invoice is dated: the age of the receivable counts from it.
    pub invoice_date: NaiveDate,
    /// The invoice's patient.
    pub patient_id: PatientId,
    /// The policies the invoice bills, in rank order (the current payer's rank names one).
    pub policy_ids: Vec<PolicyId>,
    /// The line.
    pub invoice_line_id: InvoiceLineId,
    /// The order line billed.
    pub order_line_id: OrderLineId,
    /// HCPCS billed.
    pub hcpcs: String,
    /// The month of the line's life billed.
    pub billing_month: i32,
    /// The fold of its transactions posted on or before the day.
    pub ar: LineAr,
}

/// Every line of the invoices dated on or before `as_of` that is still owed something as of that
/// day: each folded with [`ar::fold`]'s rules over its transactions posted on or before `as_of`
/// (in posting order, as the fold always reads them). An entry the rules refuse once the later
/// ones are left out (a back-dated posting can make the cut inconsistent) is skipped rather than
/// failing the whole report. Order: invoice date, line id.
pub async fn open_lines_as_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    as_of: NaiveDate,
) -> Result<Vec<LineAsOf>, DomainError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        line: LineRow,
        invoice_number: String,
        invoice_date: NaiveDate,
        patient_id: PatientId,
        policy_ids: Vec<PolicyId>,
    }
    let sql = format!(
        "select {LINE_COLUMNS}, i.invoice_number, i.invoice_date, i.patient_id, i.policy_ids \
         from invoice_line l join invoice i using (tenant_id, invoice_id) \
         where l.tenant_id = $1 and i.invoice_date <= $2 order by i.invoice_date, l.invoice_line_id"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(as_of)
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<InvoiceLineId> = rows.iter().map(|r| r.line.invoice_line_id).collect();
    let txs = transactions_of(conn, tenant, &ids).await?;
    let mut out = Vec::new();
    for r in rows {
        let entries: Vec<ArEntry> = txs
            .iter()
            .filter(|t| t.invoice_line_id == r.line.invoice_line_id && t.posted_on <= as_of)
            .map(ArTransaction::entry)
            .collect();
        let (charge, policies) = (charge(&r.line), policies(&r.line));
        let ar = match ar::fold(charge, policies, &entries) {
            Ok(ar) => ar,
            Err(_) => {
                let start = LineAr::open(charge, policies).map_err(corrupt)?;
                entries
                    .iter()
                    .fold(start, |ar, e| ar.apply(e).unwrap_or(ar))
            }
        };
        if ar.balance.is_zero() {
            continue;
        }
        out.push(LineAsOf {
            invoice_id: r.line.invoice_id,
            invoice_number: r.invoice_number,
            invoice_date: r.invoice_date,
            patient_id: r.patient_id,
            policy_ids: r.policy_ids,
            invoice_line_id: r.line.invoice_line_id,
            order_line_id: r.line.order_line_id,
            hcpcs: r.line.hcpcs,
            billing_month: r.line.billing_month,
            ar,
        });
    }
    Ok(out)
}

async fn line_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: InvoiceLineId,
) -> Result<LineRow, DomainError> {
    let sql = format!(
        "select {LINE_COLUMNS} from invoice_line l join invoice i using (tenant_id, invoice_id) \
         where l.tenant_id = $1 and l.invoice_line_id = $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("invoice line"))
}

/// A page of one line's transactions, oldest first (`NotFound` when the line is not the
/// tenant's).
pub async fn transactions(
    conn: &mut PgConnection,
    tenant: TenantId,
    line: InvoiceLineId,
    page: PageRequest,
) -> Result<Vec<ArTransaction>, DomainError> {
    line_row(conn, tenant, line).await?;
    let sql = format!(
        "select {TX_COLUMNS} from ar_transaction where tenant_id = $1 and invoice_line_id = $2 \
         and ($3::uuid is null or ar_transaction_id > $3) order by ar_transaction_id limit $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(line)
        .bind(page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(ArTransaction::printed)
        .collect())
}

// ---- posting ----

fn money_field(errs: &mut ValidationErrors, field: &str, v: Option<Decimal>) -> Option<Decimal> {
    let v = v?;
    if v < Decimal::ZERO {
        errs.push(field, "out_of_range", "must not be negative");
    } else if v.normalize().scale() > 2 {
        errs.push(field, "invalid_format", "at most two decimal places");
    } else if v >= Decimal::from(10_000_000_000i64) {
        errs.push(field, "out_of_range", "must be less than 10000000000");
    }
    let mut v = v;
    v.rescale(2);
    Some(v)
}

/// Checks the shape of a transaction (field rules, not the AR rules), prefixing paths with
/// `prefix` (`transactions[2].` in a batch).
fn check_input(
    errs: &mut ValidationErrors,
    prefix: &str,
    t: &TransactionInput,
) -> TransactionInput {
    let p = |f: &str| format!("{prefix}{f}");
    let amount = money_field(errs, &p("amount"), t.amount);
    let allowed = money_field(errs, &p("allowed"), t.allowed);
    let deductible = money_field(errs, &p("deductible"), t.deductible);
    if t.kind.is_money() {
        match amount {
            None => errs.push(
                p("amount"),
                "required",
                format!("a {} needs an amount", t.kind),
            ),
            Some(a) if t.kind.is_writeoff() && a.is_zero() => errs.push(
                p("amount"),
                "out_of_range",
                "a write-off must be more than zero",
            ),
            Some(_) => {}
        }
    } else if amount.is_some_and(|a| !a.is_zero()) {
        errs.push(
            p("amount"),
            "not_allowed",
            format!("a {} carries no amount", t.kind),
        );
    }
    if t.kind != ArKind::Payment {
        if allowed.is_some() {
            errs.push(
                p("allowed"),
                "not_allowed",
                "only a payment has an allowed amount",
            );
        }
        if deductible.is_some() {
            errs.push(
                p("deductible"),
                "not_allowed",
                "only a payment has a deductible",
            );
        }
    }
    let batch = errs.optional_text(&p("batch"), t.batch.as_deref(), 50);
    let comment = errs.optional_text(&p("comment"), t.comment.as_deref(), 500);
    TransactionInput {
        kind: t.kind,
        payer: t.payer,
        amount,
        allowed,
        deductible,
        posted_on: t.posted_on,
        batch,
        comment,
    }
}

/// Takes the line's posting lock for the rest of the transaction: postings on one line are
/// serialised, so each folds the history the previous one committed.
async fn lock_line(conn: &mut PgConnection, line: InvoiceLineId) -> Result<(), DomainError> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('ar_line:' || $1::text, 0))")
        .bind(line)
        .execute(conn)
        .await?;
    Ok(())
}

/// The line's receivable now (every committed transaction folded).
async fn current_ar(
    conn: &mut PgConnection,
    tenant: TenantId,
    row: &LineRow,
) -> Result<LineAr, DomainError> {
    let txs = transactions_of(conn, tenant, &[row.invoice_line_id]).await?;
    let entries: Vec<ArEntry> = txs.iter().map(ArTransaction::entry).collect();
    ar::fold(charge(row), policies(row), &entries).map_err(corrupt)
}

fn refused(e: ArError) -> DomainError {
    DomainError::Conflict {
        code: e.code(),
        detail: e.to_string(),
    }
}

/// Folds `t` onto `ar` and inserts it; returns the stored transaction and the line's new AR.
async fn post_one(
    conn: &mut PgConnection,
    tenant: TenantId,
    line: InvoiceLineId,
    ar: &LineAr,
    t: &TransactionInput,
    created_by: &str,
    today: NaiveDate,
) -> Result<(ArTransaction, LineAr), DomainError> {
    let payer = match t.payer {
        Some(p) => p,
        None => ar
            .current_payer
            .slot()
            .ok_or_else(|| refused(ArError::Settled))?,
    };
    let entry = ArEntry {
        kind: t.kind,
        payer,
        amount: t.amount.unwrap_or(Decimal::new(0, 2)),
        allowed: t.allowed,
        deductible: t.deductible,
        posted_on: t.posted_on.unwrap_or(today),
    };
    let next = ar.apply(&entry).map_err(refused)?;
    let sql = format!(
        "insert into ar_transaction (tenant_id, ar_transaction_id, invoice_line_id, kind, payer, amount, \
         allowed, deductible, posted_on, batch, comment, created_by) \
         values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) returning {TX_COLUMNS}"
    );
    let tx: ArTransaction = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(ArTransactionId::new())
        .bind(line)
        .bind(entry.kind)
        .bind(entry.payer)
        .bind(entry.amount)
        .bind(entry.allowed)
        .bind(entry.deductible)
        .bind(entry.posted_on)
        .bind(&t.batch)
        .bind(&t.comment)
        .bind(created_by)
        .fetch_one(&mut *conn)
        .await?;
    Ok((tx.printed(), next))
}

/// What a posting returns: the transaction and the line's receivable after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Posted {
    /// The stored transaction.
    pub transaction: ArTransaction,
    /// The line's receivable with it.
    pub ar: LineAr,
}

/// Posts one transaction on a line: the payer defaults to the current one; an entry the AR rules
/// refuse is a conflict naming the rule (`ar_overpayment`, `ar_payer_not_current`,
/// `ar_line_settled`, …). Writes an `ar_transaction.posted` event.
pub async fn post(
    conn: &mut PgConnection,
    tenant: TenantId,
    line: InvoiceLineId,
    input: &TransactionInput,
    created_by: &str,
) -> Result<Posted, DomainError> {
    let mut errs = ValidationErrors::default();
    let t = check_input(&mut errs, "", input);
    errs.finish(())?;
    let row = line_row(conn, tenant, line).await?;
    lock_line(conn, line).await?;
    let ar = current_ar(conn, tenant, &row).await?;
    let (transaction, ar) = post_one(
        conn,
        tenant,
        line,
        &ar,
        &t,
        created_by,
        Utc::now().date_naive(),
    )
    .await?;
    let posted = Posted { transaction, ar };
    outbox::record(
        conn,
        tenant,
        line.as_uuid(),
        "ar_transaction.posted",
        &posted,
    )
    .await?;
    Ok(posted)
}

/// Posts a remittance: every entry in order, all or nothing (the caller's transaction rolls back
/// on the first refusal, whose detail names the entry).
pub async fn post_batch(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &BatchInput,
    created_by: &str,
) -> Result<Vec<Posted>, DomainError> {
    let mut errs = ValidationErrors::default();
    if input.transactions.is_empty() || input.transactions.len() > MAX_BATCH {
        errs.push(
            "transactions",
            "out_of_range",
            format!("1 to {MAX_BATCH} transactions"),
        );
    }
    let checked: Vec<(InvoiceLineId, TransactionInput)> = input
        .transactions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.invoice_line_id,
                check_input(&mut errs, &format!("transactions[{i}]."), &e.transaction),
            )
        })
        .collect();
    errs.finish(())?;
    // Lock in a stable order (no deadlock between two batches naming the same lines).
    let mut lines: Vec<InvoiceLineId> = checked.iter().map(|(l, _)| *l).collect();
    lines.sort();
    lines.dedup();
    let mut state: Vec<(InvoiceLineId, LineAr)> = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let row = line_row(conn, tenant, *l).await.map_err(|e| match e {
            DomainError::NotFound(_) => {
                let mut errs = ValidationErrors::default();
                let at = checked.iter().position(|(x, _)| x == l).unwrap_or(i);
                errs.push(
                    format!("transactions[{at}].invoice_line_id"),
                    "not_found",
                    "no such invoice line",
                );
                DomainError::Validation(errs)
            }
            other => other,
        })?;
        lock_line(conn, *l).await?;
        state.push((*l, current_ar(conn, tenant, &row).await?));
    }
    let today = Utc::now().date_naive();
    let mut out = Vec::with_capacity(checked.len());
    for (i, (line, t)) in checked.iter().enumerate() {
        let Some(slot) = state.iter_mut().find(|(l, _)| l == line) else {
            continue;
        };
        let (transaction, ar) = post_one(conn, tenant, *line, &slot.1, t, created_by, today)
            .await
            .map_err(|e| match e {
                DomainError::Conflict { code, detail } => DomainError::Conflict {
                    code,
                    detail: format!("transactions[{i}]: {detail}"),
                },
                other => other,
            })?;
        slot.1 = ar.clone();
        out.push(Posted { transaction, ar });
    }
    outbox::record(conn, tenant, tenant.as_uuid(), "ar_batch.posted", &out).await?;
    Ok(out)
}
