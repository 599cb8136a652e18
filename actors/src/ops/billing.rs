//! Billing and AR operations: the worklist, the batches of a billing run (the lease is taken by
//! the caller, which passes its fencing token), invoices, and AR postings. Billing needs
//! `billing:*`; posting money `payments:process`.

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::billing_runs::{self, BatchOutcome, BillingRun, Worklist};
use aries_tenants::ids::{BillingRunId, InvoiceId, InvoiceLineId, OrderId};
use aries_tenants::invoices::{
    self, ArTransaction, BatchInput, Invoice, InvoiceFilter, Posted, TransactionInput,
};
use aries_tenants::page::PageRequest;
use chrono::NaiveDate;
use serde_json::json;

const fn billing(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Billing, action))
}

const PAYMENTS: Access = Access::Requires(Permission::new(Resource::Payments, Action::Process));

tenant_op!(
    /// `GET /billing/worklist`.
    GetWorklist {
        /// Bill date asked for.
        as_of: NaiveDate,
        /// Which page.
        page: PageRequest,
    } -> Worklist, "billing.worklist", billing(Action::View),
    |op, conn, ctx| { billing_runs::worklist(conn, ctx.tenant, op.as_of, op.page).await }
);

tenant_op!(
    /// Starts a billing run under a fencing token (the caller holds the tenant's lease).
    StartBillingRun {
        /// Bills charges dated on or before it.
        as_of: NaiveDate,
        /// The lease's fencing token.
        token: i64,
    } -> BillingRun, "billing_run.start", billing(Action::Process),
    |op, conn, ctx| {
        let by = ctx.principal()?.id.to_string();
        let run = billing_runs::start_run(conn, ctx.tenant, op.as_of, op.token, &by).await?;
        ctx.audit(conn, "billing_run.started", "billing_run", run.id, json!({"as_of": op.as_of, "token": op.token}))
            .await?;
        Ok(run)
    }
);

tenant_op!(
    /// One batch of a billing run (one tenant transaction).
    BillBatch {
        /// The run.
        run: BillingRunId,
        /// Its date.
        as_of: NaiveDate,
        /// Its fencing token.
        token: i64,
        /// Start after this order.
        after: Option<OrderId>,
    } -> BatchOutcome, "billing_run.batch", billing(Action::Process),
    |op, conn, ctx| {
        let out = billing_runs::bill_batch(conn, ctx.tenant, op.run, op.as_of, op.token, op.after).await?;
        for id in &out.invoices {
            ctx.audit(conn, "invoice.created", "invoice", id, json!({"billing_run_id": op.run})).await?;
        }
        for id in &out.orders_created {
            ctx.audit(conn, "order.created", "order", id, json!({"billing_run_id": op.run, "reason": "reoccurring_sale"}))
                .await?;
        }
        Ok(out)
    }
);

tenant_op!(
    /// Ends a billing run with its totals (or its failure).
    FinishBillingRun {
        /// The run.
        run: BillingRunId,
        /// What its batches did, summed.
        totals: BatchOutcome,
        /// Invoices written.
        invoices_created: i32,
        /// Why it failed, if it did.
        error: Option<String>,
    } -> BillingRun, "billing_run.finish", billing(Action::Process),
    |op, conn, ctx| {
        let run = billing_runs::finish_run(conn, ctx.tenant, op.run, &op.totals, op.invoices_created, op.error).await?;
        ctx.audit(conn, &format!("billing_run.{}", run.status), "billing_run", run.id,
            json!({"lines_billed": run.lines_billed, "invoices_created": run.invoices_created, "lines_closed": run.lines_closed}))
            .await?;
        Ok(run)
    }
);

tenant_op!(
    /// `GET /billing/runs/{id}`.
    GetBillingRun { id: BillingRunId } -> BillingRun, "billing_run.get", billing(Action::View),
    |op, conn, ctx| { billing_runs::get_run(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /billing/runs`.
    ListBillingRuns { page: PageRequest } -> Vec<BillingRun>, "billing_run.list", billing(Action::View),
    |op, conn, ctx| { billing_runs::list_runs(conn, ctx.tenant, op.page).await }
);

tenant_op!(
    /// `GET /invoices/{id}`.
    GetInvoice { id: InvoiceId } -> Invoice, "invoice.get", billing(Action::View),
    |op, conn, ctx| { invoices::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /invoices`.
    ListInvoices {
        /// Which page.
        page: PageRequest,
        /// Which invoices.
        filter: InvoiceFilter,
    } -> Vec<Invoice>, "invoice.list", billing(Action::View),
    |op, conn, ctx| { invoices::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `GET /invoice-lines/{id}/transactions`.
    ListTransactions {
        /// The line.
        line: InvoiceLineId,
        /// Which page.
        page: PageRequest,
    } -> Vec<ArTransaction>, "ar_transaction.list", billing(Action::View),
    |op, conn, ctx| { invoices::transactions(conn, ctx.tenant, op.line, op.page).await }
);

tenant_op!(
    /// `POST /invoice-lines/{id}/transactions`.
    PostTransaction {
        /// The line.
        line: InvoiceLineId,
        /// The transaction.
        input: TransactionInput,
    } -> Posted, "ar_transaction.post", PAYMENTS,
    |op, conn, ctx| {
        let by = ctx.principal()?.id.to_string();
        let posted = invoices::post(conn, ctx.tenant, op.line, &op.input, &by).await?;
        ctx.audit(conn, "ar_transaction.posted", "invoice_line", op.line,
            json!({"kind": posted.transaction.kind, "payer": posted.transaction.payer, "amount": posted.transaction.amount}))
            .await?;
        Ok(posted)
    }
);

tenant_op!(
    /// `POST /ar/remittances`: several postings, all or nothing.
    PostRemittance { input: BatchInput } -> Vec<Posted>, "ar_transaction.post_batch", PAYMENTS,
    |op, conn, ctx| {
        let by = ctx.principal()?.id.to_string();
        let posted = invoices::post_batch(conn, ctx.tenant, &op.input, &by).await?;
        for p in &posted {
            ctx.audit(conn, "ar_transaction.posted", "invoice_line", p.transaction.invoice_line_id,
                json!({"kind": p.transaction.kind, "payer": p.transaction.payer, "amount": p.transaction.amount}))
                .await?;
        }
        Ok(posted)
    }
);
