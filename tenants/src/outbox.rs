//! The transactional outbox: every change to tenant data writes one event row in the same
//! transaction, so an event exists if and only if the change committed. The relay
//! (`aries_actors::events::relay`) publishes the rows to RabbitMQ in order and marks them sent.
//!
//! Each event gets the tenant's next sequence number from `outbox_cursor` (an upsert that holds
//! the tenant's cursor row until the transaction ends), so sequence order is commit order; the
//! migration `20261202000008_outbox_relay.sql` explains why, and wakes the relay on commit.

use crate::ids::{EventId, TenantId};
use serde::Serialize;
use sqlx::PgConnection;

/// Inserts one event. `event_type` is `<aggregate>.<verb>` (`location.created`); `data` is the
/// envelope's `data` member (see API.md).
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    aggregate_id: uuid::Uuid,
    event_type: &str,
    data: &impl Serialize,
) -> Result<EventId, sqlx::Error> {
    let id = EventId::new();
    let payload = serde_json::to_value(data).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // One round trip: take the next sequence number (locking the tenant's cursor row until the
    // transaction ends) and insert the event with it.
    sqlx::query(
        "with c as (insert into outbox_cursor (tenant_id, last_seq) values ($1, 1) \
                    on conflict (tenant_id) do update set last_seq = outbox_cursor.last_seq + 1 \
                    returning last_seq) \
         insert into outbox_event (tenant_id, event_id, aggregate_id, event_type, payload, seq) \
         select $1, $2, $3, $4, $5, last_seq from c",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(aggregate_id)
    .bind(event_type)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(id)
}

/// An event as stored, for tests and the relay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    /// UUIDv7, so ordering by it is ordering by time: the order the relay publishes in. Meant to
    /// become the broker's `message_id`, so consumers can deduplicate.
    pub event_id: uuid::Uuid,
    /// Id of the entity that changed (for `location.*`, the location's id), so consumers can
    /// group events per entity.
    pub aggregate_id: uuid::Uuid,
    /// `<aggregate>.<verb>` (`location.created`): what consumers route and switch on.
    pub event_type: String,
    /// The envelope's `data` member: the entity as the API returns it, or `{"id": …}` for a
    /// deletion.
    pub payload: serde_json::Value,
    /// The tenant's sequence number of the event (1, 2, … in commit order).
    pub seq: i64,
}

/// The tenant's events, oldest first (tests and diagnostics).
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: TenantId,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "select event_id, aggregate_id, event_type, payload, seq from outbox_event \
         where tenant_id = $1 order by seq",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

// ---- event-type patterns: what webhook endpoints and notification rules subscribe to ----

/// `true` for an event-type pattern: `*`, `<aggregate>.*` or `<aggregate>.<verb>`, each name
/// lower-case letters, digits and `_`, starting with a letter.
pub fn is_event_pattern(s: &str) -> bool {
    fn name(n: &str) -> bool {
        n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
    if s == "*" {
        return true;
    }
    match s.split_once('.') {
        Some((aggregate, "*")) => name(aggregate),
        Some((aggregate, verb)) => name(aggregate) && name(verb),
        None => false,
    }
}

/// Does `pattern` (see [`is_event_pattern`]) select `event_type`?
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(aggregate) => event_type
            .strip_prefix(aggregate)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// Whether any of `patterns` selects `event_type` (a webhook endpoint's or a rule's subscription).
pub fn any_pattern_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, event_type))
}

/// A tenant with events the broker has not confirmed yet (the relay's work list).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct PendingTenant {
    pub tenant_id: TenantId,
    /// Events up to this sequence number are published.
    pub published_seq: i64,
}

/// Tenants of this shard with unpublished events. Reads `outbox_cursor` only (no tenant data, no
/// row-level security), so it needs no tenant setting.
pub async fn pending_tenants(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<PendingTenant>, sqlx::Error> {
    sqlx::query_as(
        "select tenant_id, published_seq from outbox_cursor where last_seq > published_seq \
         order by tenant_id limit $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Whether this shard serves `tenant` now (a move has not frozen it or moved it away). Takes the
/// tenant's move-fence lock shared first (as every write does, see `aries_enter`), held until the
/// transaction ends, so a move's freeze waits for the caller. Runs in a tenant transaction.
pub async fn serves(conn: &mut PgConnection, tenant: TenantId) -> Result<bool, sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock_shared(hashtextextended($1::text, 0))")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let row: Option<(i32,)> =
        sqlx::query_as("select 1 from tenant where tenant_id = $1 and serving")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// An event as the relay publishes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RelayEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub seq: i64,
    /// The tenant's slug, for the routing key and the envelope.
    pub slug: String,
}

/// The tenant's events after `after_seq`, in sequence order. Runs in a tenant transaction.
pub async fn unpublished(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<RelayEvent>, sqlx::Error> {
    sqlx::query_as(
        "select e.event_id, e.event_type, e.payload, e.occurred_at, e.seq, t.slug \
         from outbox_event e join tenant t on t.tenant_id = e.tenant_id \
         where e.tenant_id = $1 and e.seq > $2 order by e.seq limit $3",
    )
    .bind(tenant_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Marks the tenant's events up to `up_to_seq` published (the broker confirmed them).
/// `published_at` is the clock at this statement, after the confirms (not the transaction's start),
/// so `published_at - occurred_at` is the relay's share of an event's delay (`make bench` (d)
/// reports it). Runs in a tenant transaction; the cursor's row lock is held only until that
/// transaction commits.
pub async fn mark_published(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    up_to_seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update outbox_event set published_at = clock_timestamp() \
         where tenant_id = $1 and seq <= $2 and published_at is null",
    )
    .bind(tenant_id)
    .bind(up_to_seq)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update outbox_cursor set published_seq = greatest(published_seq, $2) where tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(up_to_seq)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(
            is_event_pattern("*")
                && is_event_pattern("order.*")
                && is_event_pattern("order.line_picked_up")
        );
        assert!(
            !is_event_pattern("order")
                && !is_event_pattern("Order.x")
                && !is_event_pattern("*.approved")
        );
        assert!(pattern_matches("*", "order.approved"));
        assert!(pattern_matches("order.*", "order.approved"));
        assert!(!pattern_matches("order.*", "order_line.approved"));
        assert!(pattern_matches("order.approved", "order.approved"));
        assert!(!pattern_matches("order.approved", "order.canceled"));
    }
}
