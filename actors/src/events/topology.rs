//! Names of the exchanges and queues, and their declaration. Everything is declared by whoever
//! needs it, on every (re)connection: declarations are idempotent, so a broker that lost its
//! state (or a new one) gets the whole topology back from the first instance that connects.
//!
//! | name | kind | what for |
//! |---|---|---|
//! | `<ns>.events` | topic exchange, durable | the relay publishes here, key `tenant.<slug>.<type>` |
//! | `<ns>.dlx` | fanout exchange, durable | dead letters of every consumer |
//! | `<ns>.dead` | queue, durable | bound to `<ns>.dlx`; the archiver empties it into the catalog |
//! | `<ns>.<consumer>` | queue, durable (priority when the consumer asks) | competing consumers of all instances |
//! | `<ns>.<consumer>.retry` | queue, durable, no consumer | a failed message waits its backoff here (per-message TTL), then dead-letters back to `<ns>.<consumer>` |
//! | `<ns>.instance.<id>` | queue, exclusive, auto-delete | one per instance: cache invalidation, live dashboards |
//!
//! Queues are classic (not quorum): quorum queues in RabbitMQ 3.10 have no `x-max-priority`.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// The namespace every name starts with, and whether queues expire (test deployments).
#[derive(Debug, Clone)]
pub struct Names {
    /// `[rabbitmq] namespace`: lets several deployments (or test runs) share one broker.
    pub ns: String,
    /// `[rabbitmq] queue_expires_ms`: `x-expires` on every queue, for throwaway deployments only
    /// (a production queue must never vanish with its messages while instances are down).
    pub queue_expires_ms: Option<u32>,
}

impl Names {
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.ns)
    }
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.ns)
    }
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.ns)
    }
    pub fn work_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.ns)
    }
    pub fn retry_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}.retry", self.ns)
    }
    pub fn instance_queue(&self, instance: &str) -> String {
        format!("{}.instance.{instance}", self.ns)
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(ms) = self.queue_expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongUInt(ms));
        }
        args
    }

    fn exchange_options(&self) -> ExchangeDeclareOptions {
        ExchangeDeclareOptions {
            durable: true,
            // Throwaway deployments: the exchange goes with its last queue binding.
            auto_delete: self.queue_expires_ms.is_some(),
            ..Default::default()
        }
    }

    /// The events exchange (what the relay needs).
    pub async fn declare_events(&self, ch: &Channel) -> lapin::Result<()> {
        ch.exchange_declare(
            self.events_exchange().into(),
            ExchangeKind::Topic,
            self.exchange_options(),
            FieldTable::default(),
        )
        .await
    }

    /// The dead-letter exchange and queue.
    pub async fn declare_dead_letters(&self, ch: &Channel) -> lapin::Result<()> {
        ch.exchange_declare(
            self.dead_letter_exchange().into(),
            ExchangeKind::Fanout,
            self.exchange_options(),
            FieldTable::default(),
        )
        .await?;
        let queue = self.dead_letter_queue();
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            self.queue_args(),
        )
        .await?;
        ch.queue_bind(
            queue.as_str().into(),
            self.dead_letter_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    }

    /// A consumer's work queue (bound to `bindings`), its retry queue, and what they need.
    pub async fn declare_consumer(
        &self,
        ch: &Channel,
        consumer: &str,
        bindings: &[String],
        max_priority: Option<u8>,
    ) -> lapin::Result<()> {
        self.declare_events(ch).await?;
        self.declare_dead_letters(ch).await?;
        let work = self.work_queue(consumer);
        let mut args = self.queue_args();
        if let Some(p) = max_priority {
            args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(p));
        }
        ch.queue_declare(work.as_str().into(), QueueDeclareOptions::durable(), args)
            .await?;
        for key in bindings {
            ch.queue_bind(
                work.as_str().into(),
                self.events_exchange().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        let mut retry_args = self.queue_args();
        retry_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        retry_args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(work.as_str().into()),
        );
        ch.queue_declare(
            self.retry_queue(consumer).as_str().into(),
            QueueDeclareOptions::durable(),
            retry_args,
        )
        .await?;
        Ok(())
    }

    /// This instance's own queue, bound to every event. Exclusive: it lives and dies with the
    /// connection, so a restarted broker or instance starts it afresh (the owner then drops what it
    /// derived from events, since some may have been missed meanwhile).
    pub async fn declare_instance(&self, ch: &Channel, instance: &str) -> lapin::Result<String> {
        self.declare_events(ch).await?;
        let queue = self.instance_queue(instance);
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            queue.as_str().into(),
            self.events_exchange().into(),
            "tenant.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(queue)
    }
}

/// Routing key of an event: `tenant.<slug>.<type>` (slugs and types hold no dots but the type's
/// one, so `tenant.acme.order.*` selects a tenant's order events).
pub fn routing_key(slug: &str, event_type: &str) -> ShortString {
    format!("tenant.{slug}.{event_type}").into()
}
