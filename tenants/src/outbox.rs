//! The transactional outbox: every change to tenant data writes one event row in the same
//! transaction, so an event exists if and only if the change committed. A relay (a later issue)
//! publishes the rows to RabbitMQ in order and marks them sent.

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
    sqlx::query(
        "insert into outbox_event (tenant_id, event_id, aggregate_id, event_type, payload) \
         values ($1, $2, $3, $4, $5)",
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
}

/// The tenant's events, oldest first (tests and diagnostics).
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: TenantId,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "select event_id, aggregate_id, event_type, payload from outbox_event \
         where tenant_id = $1 order by event_id",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}
