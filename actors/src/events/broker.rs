//! The broker as the event code uses it: the self-healing connection ([`RabbitLink`]), the
//! topology's names, and publishing with publisher confirms.

use super::topology::Names;
use crate::links::RabbitLink;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use std::sync::Arc;
use std::time::Duration;

/// How long a publish may wait for the broker's confirm before it counts as failed (the message
/// is then published again later: consumers deduplicate by message id).
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Header: the attempt this delivery is (1 for the first).
pub const H_ATTEMPT: &str = "x-aries-attempt";
/// Header: the routing key the event was first published with (retries travel under the queue's
/// name).
pub const H_ROUTING_KEY: &str = "x-aries-routing-key";
/// Header: the work queue a dead letter died in.
pub const H_QUEUE: &str = "x-aries-queue";
/// Header: the handler's error that sent a message to the dead letters.
pub const H_ERROR: &str = "x-aries-error";
/// Header: the tenant's slug (diagnostics, dead-letter listing).
pub const H_TENANT: &str = "x-aries-tenant";
/// Header: how many times the operator replayed this message.
pub const H_REPLAYS: &str = "x-aries-replays";

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the broker is not connected")]
    NotConnected,
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue took the message (the broker returned it)")]
    Unroutable,
    #[error("no confirm within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
}

/// Connection plus names; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    /// Reconnects by itself; everything here asks it for the current connection.
    pub rabbit: RabbitLink,
    /// Exchange and queue names of this deployment.
    pub names: Names,
}

impl Broker {
    pub fn new(rabbit: RabbitLink, names: Names) -> Self {
        Self { rabbit, names }
    }

    /// The current connection, waiting (polling) until there is one.
    pub async fn wait_connection(&self) -> Arc<lapin::Connection> {
        loop {
            if let Some(c) = self.rabbit.connection().await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A new channel in confirm mode, or `NotConnected` at once.
    pub async fn confirm_channel(&self) -> Result<Channel, BrokerError> {
        let conn = self
            .rabbit
            .connection()
            .await
            .ok_or(BrokerError::NotConnected)?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(ch)
    }
}

/// Publishes and waits for the broker's confirm. `mandatory`: a message no queue takes comes back
/// as [`BrokerError::Unroutable`] instead of being confirmed and dropped (a replay to a queue that
/// no longer exists, a retry queue deleted under us).
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: ShortString,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), BrokerError> {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await?;
    match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
        Ok(Ok(c)) if c.is_nack() => Err(BrokerError::Nacked),
        Ok(Ok(c)) => match c.take_message() {
            Some(_) => Err(BrokerError::Unroutable),
            None => Ok(()),
        },
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(BrokerError::Timeout(CONFIRM_TIMEOUT)),
    }
}

/// A header's value as text, if present and textual.
pub fn header_text(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header's value as a number, if present and numeric.
pub fn header_u32(props: &BasicProperties, name: &str) -> Option<u32> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        _ => None,
    }
}

/// The headers of `props` (or none) with `set` applied.
pub fn headers_with(props: &BasicProperties, set: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = props.headers().clone().unwrap_or_default();
    for (k, v) in set {
        table.insert((*k).into(), v.clone());
    }
    table
}

/// Text as a header value.
pub fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// The persistent, identified properties every event message carries, plus `headers`.
pub fn event_properties(
    message_id: &str,
    event_type: Option<&str>,
    priority: Option<u8>,
    headers: FieldTable,
) -> BasicProperties {
    let mut p = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    if let Some(t) = event_type {
        p = p.with_type(t.into());
    }
    if let Some(pr) = priority {
        p = p.with_priority(pr);
    }
    p
}
