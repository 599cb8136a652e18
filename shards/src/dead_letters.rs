//! Dead letters in the catalog: messages a consumer gave up on, moved here from the broker's
//! dead-letter queue by the archiver (`aries_actors::events::dead_letters`) so the operator can
//! list them, read why they failed and replay them.

use aries_tenants::page::PageRequest;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A dead letter as listed (the body is included: it is what a replay sends).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The row's id (UUIDv7): the API's key and list order.
    pub id: Uuid,
    /// The consumer's work queue it died in; a replay goes back to this queue only.
    pub queue: String,
    /// The broker message id (the event id).
    pub message_id: String,
    /// The routing key it was first published with.
    pub routing_key: String,
    /// The event type, when the message carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The tenant's slug, when the message carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The handler's last error.
    pub error: String,
    /// Attempts made before the last death.
    pub attempts: i32,
    /// Times it died (a replay that fails again counts again).
    pub deaths: i32,
    /// `dead` (waiting for the operator) or `replayed`.
    pub status: String,
    pub first_dead_at: chrono::DateTime<chrono::Utc>,
    pub last_dead_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Times the operator replayed it.
    pub replays: i32,
    /// The message body as text (events are JSON; bytes that are not UTF-8 show as U+FFFD).
    #[sqlx(try_from = "Vec<u8>")]
    #[schema(value_type = String)]
    pub body: BodyText,
    /// The broker headers at its death (x-death and ours), for diagnosis.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
}

/// A body shown as text, whatever its bytes.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BodyText(pub String);

impl From<Vec<u8>> for BodyText {
    fn from(bytes: Vec<u8>) -> Self {
        Self(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// What the archiver stores for one dead message.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub queue: String,
    pub message_id: String,
    pub routing_key: String,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub body: Vec<u8>,
    pub headers: serde_json::Value,
    pub error: String,
    pub attempts: i32,
}

const SELECT: &str = "select dead_letter_id as id, queue, message_id, routing_key, event_type, tenant, \
     error, attempts, deaths, status, first_dead_at, last_dead_at, replayed_at, replays, \
     body, headers from dead_letter";

/// Stores a dead message; a message that died before (and was replayed) is updated and counted.
pub async fn archive(pool: &PgPool, d: &NewDeadLetter) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into dead_letter (dead_letter_id, queue, message_id, routing_key, event_type, tenant, \
                                  body, headers, error, attempts) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         on conflict (queue, message_id) do update set \
            status = 'dead', body = excluded.body, headers = excluded.headers, error = excluded.error, \
            attempts = excluded.attempts, last_dead_at = now(), \
            deaths = dead_letter.deaths + case when dead_letter.status = 'replayed' then 1 else 0 end",
    )
    .bind(Uuid::now_v7())
    .bind(&d.queue)
    .bind(&d.message_id)
    .bind(&d.routing_key)
    .bind(&d.event_type)
    .bind(&d.tenant)
    .bind(&d.body)
    .bind(&d.headers)
    .bind(&d.error)
    .bind(d.attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Filters of the list.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// `dead` or `replayed`.
    pub status: Option<String>,
    /// The work queue's full name, or the consumer's short name (`webhooks`).
    pub queue: Option<String>,
    pub tenant: Option<String>,
}

/// One page, oldest first; fetches `limit + 1` rows (see `Page::from_rows`).
pub async fn list(
    pool: &PgPool,
    filter: &DeadLetterFilter,
    page: PageRequest,
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} where ($1::uuid is null or dead_letter_id > $1) and ($2::text is null or status = $2) \
         and ($3::text is null or queue = $3 or queue like '%.' || $3) and ($4::text is null or tenant = $4) \
         order by dead_letter_id limit $5"
    )))
    .bind(page.after)
    .bind(&filter.status)
    .bind(&filter.queue)
    .bind(&filter.tenant)
    .bind(i64::from(page.limit) + 1)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<DeadLetter>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} where dead_letter_id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The raw body of a dead letter (a replay sends these bytes).
pub async fn body(pool: &PgPool, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("select body from dead_letter where dead_letter_id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Marks it replayed, if it still is `dead` (two operators replaying at once: one wins), and
/// records who did in the operator's audit trail, in one transaction.
pub async fn mark_replayed(
    pool: &PgPool,
    id: Uuid,
    by: &aries_tenants::audit::AuditActor,
) -> Result<Option<DeadLetter>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "update dead_letter set status = 'replayed', replayed_at = now(), replays = replays + 1 \
         where dead_letter_id = $1 and status = 'dead'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    let letter: DeadLetter = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} where dead_letter_id = $1"
    )))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let event = by.event(
        "dead_letter.replayed",
        "dead_letter",
        id,
        serde_json::json!({"queue": letter.queue, "message_id": letter.message_id}),
        None,
    );
    aries_tenants::audit::append(&mut tx, aries_tenants::audit::Trail::Platform, &event)
        .await
        .map_err(|e| match e {
            aries_tenants::DomainError::Database(db) => db,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    tx.commit().await?;
    Ok(Some(letter))
}

/// Undoes [`mark_replayed`] after a replay that could not be published.
pub async fn unmark_replayed(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update dead_letter set status = 'dead', replays = greatest(replays - 1, 0) \
         where dead_letter_id = $1 and status = 'replayed'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
