//! The live dashboard's reads (`reports:view`): the tenant's KPIs with the sequence they were read
//! at and the latest events ([`DashboardKpis`]), and the events after a sequence number from the
//! outbox ([`LiveOutbox`], for a socket that resumes or fills a gap). [`DashboardKpisInternal`] is
//! the same read for the live hub, which recomputes KPIs for every socket of a tenant at once.
//!
//! Everything is read in one tenant transaction, so the KPIs, `seq` and `recent` agree: `seq` is
//! the tenant's last committed event when the figures were read.

use super::Access;
use aries_tenants::DomainError;
use aries_tenants::TenantId;
use aries_tenants::auth::{Action, Permission, Resource};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// How many events `recent` holds.
pub const RECENT: i64 = 20;

/// The tenant's KPIs (money as decimal strings with two places).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Kpis {
    /// Orders dated today (UTC), whatever their state but canceled.
    pub orders_today: i64,
    /// Delivered rental lines: equipment out on rent now.
    pub active_rentals: i64,
    /// Lines awaiting delivery: approved lines of approved orders (the deliveries report's
    /// `awaiting_delivery`).
    pub deliveries_due: i64,
    /// Today's pickup tickets: lines picked up today (UTC).
    pub pickups_due: i64,
    /// Σ billable + tax of invoice lines of invoices dated this month (UTC).
    pub billed_this_month: String,
    /// Σ open balance of invoice lines: billable + tax − payments − write-offs.
    pub open_ar: String,
    /// Stock levels with a reorder point whose available stock (on hand − committed) fell to it.
    pub stock_at_reorder_point: i64,
    /// The day's live counters from Redis (`events`, per type, named KPIs); empty when Redis
    /// does not answer. Filled by the caller of the operation, not by the shard.
    pub counters: BTreeMap<String, i64>,
}

/// One event as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveEvent {
    /// The event's id (the envelope's).
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// `<aggregate>.<verb>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it committed.
    pub occurred_at: DateTime<Utc>,
    /// A short human line (`order.created O000012`).
    pub summary: String,
    /// The tenant's sequence number of the event; the socket's messages carry it beside the
    /// event, so it is not serialized inside it.
    #[serde(skip)]
    pub seq: i64,
}

/// What names the resource in a summary, tried in order.
const NAMING_FIELDS: &[&str] = &[
    "order_number",
    "invoice_number",
    "account_number",
    "code",
    "name",
    "number",
];

/// `<type> <name>`: the first naming field of the event's data (or of `data.order`), if any.
pub fn summary(event_type: &str, data: &serde_json::Value) -> String {
    let pick = |v: &serde_json::Value| {
        NAMING_FIELDS
            .iter()
            .find_map(|f| v.get(*f).and_then(|x| x.as_str()).map(str::to_owned))
    };
    match pick(data).or_else(|| data.get("order").and_then(pick)) {
        Some(name) => format!("{event_type} {name}"),
        None => event_type.to_owned(),
    }
}

/// A snapshot as read from the shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// The tenant's latest event sequence when the KPIs were read (0 before any event).
    pub seq: i64,
    /// The figures.
    pub kpis: Kpis,
    /// The latest events (at most [`RECENT`]), newest first.
    pub recent: Vec<LiveEvent>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event_id: uuid::Uuid,
    event_type: String,
    payload: serde_json::Value,
    occurred_at: DateTime<Utc>,
    seq: i64,
}

impl From<EventRow> for LiveEvent {
    fn from(r: EventRow) -> Self {
        LiveEvent {
            summary: summary(&r.event_type, &r.payload),
            id: r.event_id,
            event_type: r.event_type,
            occurred_at: r.occurred_at,
            seq: r.seq,
        }
    }
}

/// The tenant's last committed event sequence (0 before any).
async fn latest_seq(conn: &mut PgConnection, tenant: TenantId) -> Result<i64, DomainError> {
    let seq: Option<i64> =
        sqlx::query_scalar("select last_seq from outbox_cursor where tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(seq.unwrap_or(0))
}

/// Reads the snapshot (KPIs without the Redis counters) in the caller's tenant transaction.
pub async fn read_dashboard(
    conn: &mut PgConnection,
    tenant: TenantId,
    today: NaiveDate,
) -> Result<Dashboard, DomainError> {
    let seq = latest_seq(conn, tenant).await?;
    let month_start = today.with_day0(0).unwrap_or(today);
    let next_month = month_start
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(today);
    let rentals: Vec<String> = aries_tenants::dme::terms::SaleRentType::ALL
        .iter()
        .filter(|t| t.is_rental())
        .map(|t| t.as_str().to_owned())
        .collect();
    let row: (i64, i64, i64, i64, String, String, i64) = sqlx::query_as(
        "select \
         (select count(*) from patient_order where tenant_id = $1 and order_date = $2 and state <> 'canceled'), \
         (select count(*) from order_line where tenant_id = $1 and state = 'delivered' and sale_rent_type = any($5)), \
         (select count(*) from order_line l join patient_order o on o.tenant_id = l.tenant_id and o.order_id = l.order_id \
          where l.tenant_id = $1 and l.state = 'approved' and o.state = 'approved'), \
         (select count(*) from order_line where tenant_id = $1 and pickup_date = $2), \
         (select coalesce(sum(il.billable + il.tax), 0)::numeric(14, 2)::text from invoice i join invoice_line il \
          on il.tenant_id = i.tenant_id and il.invoice_id = i.invoice_id \
          where i.tenant_id = $1 and i.invoice_date >= $3 and i.invoice_date < $4), \
         (select coalesce(sum(il.billable + il.tax - coalesce(t.settled, 0)), 0)::numeric(14, 2)::text from invoice_line il \
          left join (select invoice_line_id, sum(amount) as settled from ar_transaction where tenant_id = $1 \
                     and kind in ('payment', 'contractual_writeoff', 'hardship_writeoff', 'balance_writeoff', \
                                  'sequestration_writeoff') group by invoice_line_id) t \
          on t.invoice_line_id = il.invoice_line_id where il.tenant_id = $1), \
         (select count(*) from stock_level where tenant_id = $1 and reorder_point > 0 \
          and on_hand - committed <= reorder_point)",
    )
    .bind(tenant)
    .bind(today)
    .bind(month_start)
    .bind(next_month)
    .bind(&rentals)
    .fetch_one(&mut *conn)
    .await?;
    let recent: Vec<EventRow> = sqlx::query_as(
        "select event_id, event_type, payload, occurred_at, seq from outbox_event \
         where tenant_id = $1 and seq <= $2 order by seq desc limit $3",
    )
    .bind(tenant)
    .bind(seq)
    .bind(RECENT)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Dashboard {
        seq,
        kpis: Kpis {
            orders_today: row.0,
            active_rentals: row.1,
            deliveries_due: row.2,
            pickups_due: row.3,
            billed_this_month: row.4,
            open_ar: row.5,
            stock_at_reorder_point: row.6,
            counters: BTreeMap::new(),
        },
        recent: recent.into_iter().map(LiveEvent::from).collect(),
    })
}

use chrono::Datelike as _;

tenant_op!(
    /// `GET /dashboard` and a socket's snapshot: the KPIs, the sequence they were read at, the
    /// latest events.
    DashboardKpis {
        /// The UTC day the daily figures are for.
        today: NaiveDate,
    } -> Dashboard, "dashboard.read",
    Access::Requires(Permission::new(Resource::Reports, Action::View)),
    |op, conn, ctx| { read_dashboard(conn, ctx.tenant, op.today).await }
);

tenant_op!(
    /// The live hub's throttled recompute, shared by every socket of the tenant on this
    /// instance (each socket was authorized when it opened).
    DashboardKpisInternal {
        /// The UTC day the daily figures are for.
        today: NaiveDate,
    } -> Dashboard, "dashboard.read_internal", Access::Internal,
    |op, conn, ctx| { read_dashboard(conn, ctx.tenant, op.today).await }
);

/// Events after a sequence number, and the tenant's latest sequence.
#[derive(Debug, Clone)]
pub struct OutboxPage {
    /// Events with `seq > after`, in sequence order, at most `limit`.
    pub events: Vec<LiveEvent>,
    /// The tenant's last committed sequence.
    pub latest: i64,
}

tenant_op!(
    /// A socket's resume (`after=`) or gap fill: the tenant's events after `after` from the
    /// outbox, in sequence order.
    LiveOutbox {
        /// Events with a greater sequence number are read.
        after: i64,
        /// At most this many.
        limit: i64,
    } -> OutboxPage, "dashboard.outbox",
    Access::Requires(Permission::new(Resource::Reports, Action::View)),
    |op, conn, ctx| {
        let latest = latest_seq(conn, ctx.tenant).await?;
        let rows: Vec<EventRow> = sqlx::query_as(
            "select event_id, event_type, payload, occurred_at, seq from outbox_event \
             where tenant_id = $1 and seq > $2 order by seq limit $3",
        )
        .bind(ctx.tenant)
        .bind(op.after)
        .bind(op.limit)
        .fetch_all(&mut *conn)
        .await?;
        Ok(OutboxPage { events: rows.into_iter().map(LiveEvent::from).collect(), latest })
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_resource() {
        let d = serde_json::json!({"order_number": "O000012", "name": "x"});
        assert_eq!(summary("order.created", &d), "order.created O000012");
        let d = serde_json::json!({"order": {"order_number": "O7"}});
        assert_eq!(summary("order.approved", &d), "order.approved O7");
        assert_eq!(
            summary("location.deleted", &serde_json::json!({"id": "x"})),
            "location.deleted"
        );
    }
}
