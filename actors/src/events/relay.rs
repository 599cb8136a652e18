//! The outbox relay: per shard, publishes every tenant's committed events to the events exchange,
//! in each tenant's commit order, and marks them sent only once the broker confirmed them.
//!
//! - **One relay per shard across instances.** Every instance runs a relay task per shard; the one
//!   holding the shard database's advisory lock ([`LEADER_LOCK`], session-level, on a dedicated
//!   connection) publishes, the others stand by and retry the lock. If the leader's instance dies,
//!   its connection drops, Postgres releases the lock and a standby takes over within
//!   `poll_interval`. The lock lives in the shard's own database, so it needs nothing but the
//!   shard to be up (Redis may be down).
//! - **Woken by commits.** A trigger on `outbox_event` sends `NOTIFY aries_outbox`; the leader
//!   LISTENs on the same connection and drains at once, and at least every `poll_interval`.
//! - **Rounds over many tenants.** The pending tenants are dealt to `tenants_in_flight` lanes; a
//!   lane's round is one transaction that switches row-level security from tenant to tenant
//!   ([`outbox::bind_tenant`]), passes each one's move fence and reads its events (up to `batch`
//!   in all), publishes them, waits for the confirms once and marks them all before one commit.
//!   A tenant is in one lane, so its events go out in order.
//! - **Resumes where it stopped.** `outbox_cursor.published_seq` is advanced in the transaction that
//!   marks a batch sent, after the broker's confirms; a relay that dies in between publishes that
//!   batch again (at least once: consumers deduplicate by `message_id` = event id).
//! - **Broker down**: the batch fails, nothing is marked, the relay retries with backoff; the link
//!   reconnects by itself and publishing resumes from the cursor.

use super::Envelope;
use super::broker::{self, Broker, BrokerError, H_TENANT};
use super::topology::routing_key;
use crate::shard::{ShardHandle, ShardRegistry};
use aries_shards::ShardId;
use aries_tenants::outbox::{self, RelayEvent};
use lapin::Channel;
use lapin::types::{AMQPValue, FieldTable};
use sqlx::postgres::PgListener;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// `pg_try_advisory_lock` key of the relay leadership ("AriesOut" in ASCII).
pub const LEADER_LOCK: i64 = 0x4172_6965_734f_7574;
/// The channel the outbox trigger notifies.
pub const CHANNEL: &str = "aries_outbox";

/// How the relay runs.
#[derive(Clone)]
pub struct RelayConfig {
    /// Longest wait between drains when no notification arrives; also how often a standby retries
    /// the leadership.
    pub poll_interval: Duration,
    /// Most events read and published per relay transaction (a round over several tenants).
    pub batch: i64,
    /// Lanes publishing at once (see `[events] relay_tenants_in_flight`).
    pub tenants_in_flight: usize,
    /// The message priority of an event type (read by the notifications' priority queue).
    pub priority: fn(&str) -> u8,
    /// The consumers' queues, declared (with their bindings) before anything is published: a
    /// message published to a topic exchange before its queue exists is dropped, so on a new
    /// broker (or a new deployment) the relay must not get ahead of the consumers.
    pub queues: Vec<QueueSpec>,
}

/// A consumer's queue as the relay declares it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// The consumer's name (queue `<ns>.<name>`).
    pub name: &'static str,
    /// Its routing-key patterns.
    pub bindings: Vec<String>,
    /// `x-max-priority`, for a priority queue.
    pub max_priority: Option<u8>,
}

impl QueueSpec {
    pub fn of(handler: &dyn super::EventHandler) -> Self {
        Self {
            name: handler.name(),
            bindings: handler.bindings(),
            max_priority: handler.max_priority(),
        }
    }
}

/// Starts the relays: one task per shard in the registry, and a watcher that starts one for each
/// shard added later.
pub fn start(shards: ShardRegistry, broker: Broker, config: RelayConfig) {
    tokio::spawn(async move {
        let mut running: HashSet<ShardId> = HashSet::new();
        loop {
            for handle in shards.handles() {
                if running.insert(handle.id) {
                    let (broker, config) = (broker.clone(), config.clone());
                    tokio::spawn(run_shard(handle, broker, config));
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

async fn run_shard(handle: Arc<ShardHandle>, broker: Broker, config: RelayConfig) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match lead(&handle, &broker, &config).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::debug!(shard = %handle.name, error = %e, "outbox relay restarting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(crate::links::MAX_BACKOFF);
            }
        }
    }
}

/// Why a leadership term ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("shard database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("the listening connection was lost (and with it the leadership)")]
    LostConnection,
}

/// Waits for the leadership, then drains until the connection is lost.
async fn lead(
    handle: &ShardHandle,
    broker: &Broker,
    config: &RelayConfig,
) -> Result<(), RelayError> {
    let mut listener = PgListener::connect_with(&handle.pool).await?;
    // A lost connection must end the term (the lock went with it): the listener must not
    // reconnect behind our back before we notice.
    listener.eager_reconnect(false);
    loop {
        let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut listener)
            .await?;
        if got {
            break;
        }
        tokio::time::sleep(config.poll_interval).await;
    }
    // The listener reconnects by itself when used as an executor; the lock is held only while the
    // backend is the one that took it.
    let backend: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    listener.listen(CHANNEL).await?;
    tracing::info!(shard = %handle.name, "outbox relay leading");
    let mut channel: Option<Channel> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        match drain(handle, broker, &mut channel, config).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                channel = None;
                tracing::warn!(shard = %handle.name, error = %e, "outbox relay: batch not published; retrying");
                metrics::counter!("aries_outbox_publish_failures_total", "shard" => handle.name.clone())
                    .increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        match tokio::time::timeout(config.poll_interval, listener.try_recv()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => return Err(RelayError::LostConnection),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                // Quiet period: make sure the term's connection is still the one holding the lock.
                let now: i32 = sqlx::query_scalar("select pg_backend_pid()")
                    .fetch_one(&mut listener)
                    .await?;
                if now != backend {
                    return Err(RelayError::LostConnection);
                }
            }
        }
    }
}

/// Publishes every pending event of the shard.
async fn drain(
    handle: &ShardHandle,
    broker: &Broker,
    channel: &mut Option<Channel>,
    config: &RelayConfig,
) -> Result<(), RelayError> {
    let pending = {
        let mut conn = handle.pool.acquire().await?;
        outbox::pending_tenants(&mut conn, 1000).await?
    };
    metrics::gauge!("aries_outbox_pending_tenants", "shard" => handle.name.clone())
        .set(pending.len() as f64);
    if pending.is_empty() {
        return Ok(());
    }
    let ch = match channel {
        Some(ch) if ch.status().connected() => ch.clone(),
        _ => {
            let ch = broker.confirm_channel().await?;
            broker
                .names
                .declare_events(&ch)
                .await
                .map_err(BrokerError::from)?;
            // Bound before the first publish: a message no queue is bound for is dropped.
            for q in &config.queues {
                broker
                    .names
                    .declare_consumer(&ch, q.name, &q.bindings, q.max_priority)
                    .await
                    .map_err(BrokerError::from)?;
            }
            channel.insert(ch).clone()
        }
    };
    // The pending tenants are dealt to up to `tenants_in_flight` lanes; each lane publishes its
    // tenants' events in rounds, one transaction per round over several tenants (each tenant's
    // events in order, by that one lane). The first failure is returned once the other lanes are
    // done (what they marked was confirmed).
    let lanes = config.tenants_in_flight.clamp(1, pending.len());
    let mut dealt: Vec<Vec<outbox::PendingTenant>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, tenant) in pending.into_iter().enumerate() {
        dealt[i % lanes].push(tenant);
    }
    let results: Vec<Result<(), RelayError>> = futures::future::join_all(
        dealt
            .into_iter()
            .map(|tenants| drain_lane(handle, broker, &ch, config, tenants)),
    )
    .await;
    results.into_iter().collect()
}

/// Publishes every pending event of a lane's tenants. A round is one transaction: for each tenant
/// in turn it binds row-level security to the tenant, passes the move fence and reads its next
/// events, until `config.batch` events are gathered; then it publishes them all, waits for every
/// confirm once, marks each tenant's events and commits once. So a round's two waits (the broker's
/// confirms, the commit's flush) are shared by all its tenants instead of paid per tenant. A
/// tenant a round did not reach, or whose events did not all fit, goes in the next round.
async fn drain_lane(
    handle: &ShardHandle,
    broker: &Broker,
    ch: &Channel,
    config: &RelayConfig,
    tenants: Vec<outbox::PendingTenant>,
) -> Result<(), RelayError> {
    let mut waiting: std::collections::VecDeque<outbox::PendingTenant> = tenants.into();
    while !waiting.is_empty() {
        let mut tx = handle.pool.begin().await?;
        // (tenant, its events this round, whether it may have more)
        let mut round: Vec<(outbox::PendingTenant, Vec<RelayEvent>, bool)> = Vec::new();
        let mut gathered = 0_i64;
        while gathered < config.batch {
            let Some(tenant) = waiting.pop_front() else {
                break;
            };
            outbox::bind_tenant(&mut tx, tenant.tenant_id).await?;
            // The move fence: a tenant this shard no longer serves (moved away, or frozen by a
            // move whose target publishes what is left) is skipped; holding its lock until commit
            // makes a move's freeze wait for a round in flight, so events marked published here
            // are never copied to the target as unpublished.
            if !outbox::serves(&mut tx, tenant.tenant_id).await? {
                continue;
            }
            let limit = config.batch - gathered;
            let events =
                outbox::unpublished(&mut tx, tenant.tenant_id, tenant.published_seq, limit).await?;
            if events.is_empty() {
                continue;
            }
            gathered += events.len() as i64;
            let more = events.len() as i64 == limit;
            round.push((tenant, events, more));
        }
        if round.is_empty() {
            tx.commit().await?;
            continue;
        }
        publish_round(ch, broker, &round, config).await?;
        // Marked in tenant-id order: the cursor rows are locked as they are updated, and one
        // order for every transaction that touches several tenants' cursors rules out deadlocks.
        round.sort_by_key(|(tenant, _, _)| tenant.tenant_id);
        for (tenant, events, more) in round {
            let Some(last) = events.last().map(|e| e.seq) else {
                continue;
            };
            outbox::bind_tenant(&mut tx, tenant.tenant_id).await?;
            outbox::mark_published(&mut tx, tenant.tenant_id, last).await?;
            if more {
                waiting.push_back(outbox::PendingTenant {
                    published_seq: last,
                    ..tenant
                });
            }
        }
        tx.commit().await?;
        metrics::counter!("aries_outbox_published_total", "shard" => handle.name.clone())
            .increment(u64::try_from(gathered).unwrap_or(0));
    }
    Ok(())
}

/// Publishes a round: each tenant's events in order on one channel, then waits for every confirm.
async fn publish_round(
    ch: &Channel,
    broker: &Broker,
    round: &[(outbox::PendingTenant, Vec<RelayEvent>, bool)],
    config: &RelayConfig,
) -> Result<(), BrokerError> {
    let mut confirms = Vec::with_capacity(round.iter().map(|(_, e, _)| e.len()).sum());
    for (tenant, events, _) in round {
        for e in events {
            confirms.push(publish(ch, broker, tenant.tenant_id, e, config).await?);
        }
    }
    for confirm in confirms {
        match tokio::time::timeout(broker::CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(c)) if c.is_nack() => return Err(BrokerError::Nacked),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(BrokerError::Timeout(broker::CONFIRM_TIMEOUT)),
        }
    }
    Ok(())
}

/// Publishes one event; the returned confirm resolves when the broker has it.
async fn publish(
    ch: &Channel,
    broker: &Broker,
    tenant_id: aries_tenants::TenantId,
    e: &RelayEvent,
    config: &RelayConfig,
) -> Result<lapin::PublisherConfirm, BrokerError> {
    let exchange = broker.names.events_exchange();
    let envelope = Envelope {
        id: e.event_id,
        event_type: e.event_type.clone(),
        tenant: e.slug.clone(),
        tenant_id,
        occurred_at: e.occurred_at,
        version: 1,
        sequence: e.seq,
        data: e.payload.clone(),
    };
    let body = serde_json::to_vec(&envelope).map_err(|_| BrokerError::Nacked)?;
    let mut headers = FieldTable::default();
    headers.insert(H_TENANT.into(), broker::text(&e.slug));
    headers.insert("x-aries-sequence".into(), AMQPValue::LongLongInt(e.seq));
    let props = broker::event_properties(
        &e.event_id.to_string(),
        Some(&e.event_type),
        Some((config.priority)(&e.event_type)),
        headers,
    )
    .with_timestamp(u64::try_from(e.occurred_at.timestamp()).unwrap_or(0));
    Ok(ch
        .basic_publish(
            exchange.as_str().into(),
            routing_key(&e.slug, &e.event_type),
            lapin::options::BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?)
}
