//! Connections to Redis and RabbitMQ that heal themselves, with a health view for /health/ready.
//! Neither is on a request's path yet; later issues (cache, rate limits, events) build on these.
//! Start-up never waits for them: a link that cannot connect keeps retrying in the background.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;

/// Longest pause between reconnection attempts (here, and in the outbox relay and the consumers,
/// which wait on these links): `make chaos` measured that three 5 s caps in a row kept events from
/// flowing for 12.6 s after a RabbitMQ restart; an attempt against a dead local broker is cheap.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A health check slower than this reports the dependency down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// Redis through a `ConnectionManager` (multiplexed; it reconnects by itself once created).
#[derive(Clone)]
pub struct RedisLink {
    /// Kept for the background loop, which retries with it until a manager exists. May carry a
    /// password (the link derives no `Debug`, so it is never printed).
    url: String,
    /// `None` until the background loop first connects; from then on the manager reconnects by
    /// itself. The `Arc` shares the slot between the loop and every clone of the link; a tokio
    /// `RwLock`, so waiting for it never blocks a runtime thread.
    manager: Arc<RwLock<Option<redis::aio::ConnectionManager>>>,
}

impl RedisLink {
    /// Starts connecting in the background.
    pub fn start(url: String) -> Self {
        let link = Self {
            url,
            manager: Arc::new(RwLock::new(None)),
        };
        let bg = link.clone();
        tokio::spawn(async move { bg.connect_loop().await });
        link
    }

    async fn connect_loop(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let client = redis::Client::open(self.url.as_str())?;
                redis::aio::ConnectionManager::new(client).await
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(m)) => {
                    *self.manager.write().await = Some(m);
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "redis not reachable yet"),
                Err(_) => tracing::warn!("redis connection attempt timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The connection, once established.
    pub async fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.manager.read().await.clone()
    }

    /// `PING`, or why not.
    pub async fn check(&self) -> Result<(), String> {
        let Some(mut conn) = self.connection().await else {
            return Err("not connected yet".into());
        };
        match tokio::time::timeout(
            CHECK_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

/// The URL with a short heartbeat unless it names one: a dead broker is noticed in seconds.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&heartbeat=4")
    } else {
        format!("{url}?heartbeat=4")
    }
}

/// RabbitMQ through one lapin connection, replaced when it drops (lapin does not reconnect).
#[derive(Clone)]
pub struct RabbitLink {
    /// Kept for the supervising loop, which reconnects with it whenever the connection drops.
    /// Carries the password (the link derives no `Debug`, so it is never printed).
    url: String,
    /// `None` until the first connection; replaced by the supervising loop when it drops. The outer
    /// `Arc` shares the slot between the loop and every clone of the link; the inner one lets
    /// `connection()` hand the connection out without holding the lock (`lapin::Connection` is not
    /// `Clone`).
    connection: Arc<RwLock<Option<Arc<lapin::Connection>>>>,
}

impl RabbitLink {
    /// Starts connecting (and re-connecting whenever the connection is lost) in the background.
    pub fn start(url: String) -> Self {
        let link = Self {
            url,
            connection: Arc::new(RwLock::new(None)),
        };
        let bg = link.clone();
        tokio::spawn(async move { bg.supervise().await });
        link
    }

    async fn supervise(&self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let healthy = match self.connection.read().await.as_ref() {
                Some(c) => c.status().connected(),
                None => false,
            };
            if healthy {
                backoff = Duration::from_millis(100);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let url = with_heartbeat(&self.url);
            let attempt = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(c)) => {
                    tracing::info!("connected to rabbitmq");
                    *self.connection.write().await = Some(Arc::new(c));
                    continue;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "rabbitmq not reachable"),
                Err(_) => tracing::warn!("rabbitmq connection attempt timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The live connection, if any.
    pub async fn connection(&self) -> Option<Arc<lapin::Connection>> {
        self.connection
            .read()
            .await
            .clone()
            .filter(|c| c.status().connected())
    }

    pub async fn check(&self) -> Result<(), String> {
        match self.connection().await {
            Some(_) => Ok(()),
            None => Err("not connected".into()),
        }
    }
}
