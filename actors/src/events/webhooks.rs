//! The webhook dispatcher: an [`EventHandler`] that POSTs each tenant event to the tenant's
//! endpoints subscribed to its type, signed (`Aries-Signature`, docs/WEBHOOKS.md).
//!
//! ## One delivery
//! 1. Claim (one tenant transaction): the active endpoints whose patterns match the event type
//!    and that have not had this event id delivered; each gets a `pending` delivery row with a
//!    claim that expires, so another instance handling the same event (a message published
//!    twice) keeps off it. Endpoints already delivered are never sent again.
//! 2. Send to every claimed endpoint at once: the exact bytes of the message, with
//!    `Content-Type: application/json`, `Aries-Signature`, `Aries-Event-Id`, `Aries-Event-Type`,
//!    `Aries-Delivery-Attempt` (per endpoint: 1, 2, …) and `User-Agent: AriesOne-Webhooks/1`.
//!    A 2xx is delivered; any other status, a redirect (not followed), a timeout or a failed
//!    connection is a failed attempt.
//! 3. Record every attempt in one operation (the delivery log), settle the delivery rows, release
//!    the claims.
//! 4. Any failure (or an endpoint busy elsewhere) → [`HandleError::Retry`]: the consumer retries
//!    with backoff and dead-letters after its last attempt; on `final_attempt` the failed
//!    deliveries are marked `failed` first. An unknown or archived tenant → `Reject`; a tenant or
//!    shard that is temporarily unavailable → `Retry`.
//!
//! Unless `allow_private_networks`, a host is resolved before the request and refused when any
//! of its addresses is loopback, private or link-local; the request then goes to the checked
//! addresses only (no second lookup a DNS rebinding could change).

use crate::Directory;
use crate::TenantError;
use crate::events::{Delivery, EventHandler, HandleError};
use crate::ops::webhooks::{ClaimWebhookDeliveries, RecordWebhookAttempts};
use aries_tenants::webhooks::{AttemptOutcome, DispatchTarget, is_public, sign};
use aries_tenants::{DomainError, TenantSlug, TenantStatus};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Sent as `User-Agent`.
pub const USER_AGENT: &str = "AriesOne-Webhooks/1";
/// How much longer than the request timeout a claim lasts (resolution, recording).
const CLAIM_MARGIN_MS: u64 = 15_000;
/// Longest error text kept in the log.
const MAX_ERROR_CHARS: usize = 500;

/// `[webhooks]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Limit on one delivery request (resolution, connection, answer), in milliseconds.
    pub timeout_ms: u64,
    /// Lets endpoints be loopback, private or link-local addresses (tests, on-premise
    /// receivers); off by default so a tenant cannot aim the platform at its own network.
    pub allow_private_networks: bool,
    /// How many bytes of each answer's body the delivery log keeps (0: none).
    pub max_response_bytes: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            allow_private_networks: false,
            max_response_bytes: 1024,
        }
    }
}

/// The handler (queue `<ns>.webhooks`). Cheap to share: the HTTP client pools connections.
pub struct WebhookDispatcher {
    /// Runs the claim and record operations on the tenant's actor.
    directory: Directory,
    /// Timeouts, the private-network policy, the excerpt size.
    settings: WebhookSettings,
    /// Shared by every delivery to a host not pinned to checked addresses; `None` when the TLS
    /// backend could not start (every attempt then fails, and says why).
    client: Option<reqwest::Client>,
}

fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
}

impl WebhookDispatcher {
    pub fn new(directory: Directory, settings: WebhookSettings) -> Self {
        let client = match client_builder(Duration::from_millis(settings.timeout_ms)).build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "the webhook HTTP client could not be built");
                None
            }
        };
        Self {
            directory,
            settings,
            client,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.timeout_ms)
    }

    #[tracing::instrument(name = "webhooks.dispatch", skip_all,
        fields(tenant = %delivery.envelope.tenant, event_id = %delivery.envelope.id,
               event_type = %delivery.envelope.event_type, attempt = delivery.attempt))]
    async fn dispatch(&self, delivery: &Delivery) -> Result<(), HandleError> {
        let env = &delivery.envelope;
        let slug = TenantSlug::parse(&env.tenant)
            .map_err(|e| HandleError::Reject(format!("tenant `{}`: {e}", env.tenant)))?;
        let claim_ms = i64::try_from(self.settings.timeout_ms.saturating_add(CLAIM_MARGIN_MS))
            .unwrap_or(i64::MAX);
        let claimed = self
            .directory
            .exec(
                &slug,
                ClaimWebhookDeliveries {
                    tenant: env.tenant_id,
                    event: env.id,
                    event_type: env.event_type.clone(),
                    claim_ms,
                },
            )
            .await
            .map_err(classify)?;
        let sent = claimed.targets.len();
        let outcomes =
            futures::future::join_all(claimed.targets.iter().map(|t| self.send(t, delivery))).await;
        let failed = outcomes.iter().filter(|o| !o.delivered).count();
        for o in &outcomes {
            let outcome = if o.delivered { "delivered" } else { "failed" };
            metrics::counter!("aries_webhook_attempts_total", "outcome" => outcome).increment(1);
        }
        if !outcomes.is_empty() {
            self.directory
                .exec(
                    &slug,
                    RecordWebhookAttempts {
                        tenant: env.tenant_id,
                        event: env.id,
                        outcomes,
                        final_attempt: delivery.final_attempt,
                    },
                )
                .await
                .map_err(classify)?;
        }
        tracing::debug!(
            sent,
            failed,
            already_delivered = claimed.delivered,
            busy = claimed.busy,
            "webhook deliveries"
        );
        if failed > 0 {
            return Err(HandleError::Retry(format!(
                "{failed} of {sent} webhook endpoint(s) failed"
            )));
        }
        if claimed.busy > 0 {
            return Err(HandleError::Retry(format!(
                "{} webhook endpoint(s) being sent this event by another dispatcher",
                claimed.busy
            )));
        }
        Ok(())
    }

    /// One attempt to one endpoint; never fails, the outcome says what happened.
    async fn send(&self, target: &DispatchTarget, delivery: &Delivery) -> AttemptOutcome {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout(), self.post(target, delivery)).await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (status_code, error, response_excerpt) = match result {
            Err(_) => (
                None,
                Some(format!("timed out after {} ms", self.settings.timeout_ms)),
                None,
            ),
            Ok(Err(error)) => (None, Some(error), None),
            Ok(Ok((status, excerpt))) => {
                let error = (!(200..300).contains(&status)).then(|| match status {
                    300..=399 => format!("HTTP {status} (redirects are not followed)"),
                    _ => format!("HTTP {status}"),
                });
                (Some(i32::from(status)), error, excerpt)
            }
        };
        let delivered = error.is_none();
        if !delivered {
            tracing::info!(endpoint_id = %target.endpoint_id, attempt = target.attempt,
                status_code, error = error.as_deref().unwrap_or(""), "webhook attempt failed");
        }
        AttemptOutcome {
            endpoint_id: target.endpoint_id,
            attempt: target.attempt,
            status_code,
            error: error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect()),
            response_excerpt,
            duration_ms,
            delivered,
        }
    }

    /// Resolves (unless private networks are allowed), POSTs, and reads the start of the answer:
    /// `(status, excerpt)`, or why no answer came.
    async fn post(
        &self,
        target: &DispatchTarget,
        delivery: &Delivery,
    ) -> Result<(u16, Option<String>), String> {
        let url = reqwest::Url::parse(&target.url).map_err(|e| format!("bad URL: {e}"))?;
        let client = if self.settings.allow_private_networks {
            self.client
                .clone()
                .ok_or_else(|| "the HTTP client is unavailable".to_owned())?
        } else {
            self.pinned_client(&url).await?
        };
        let t = chrono::Utc::now().timestamp();
        let env = &delivery.envelope;
        let res = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Aries-Signature", sign(&target.secret, t, &delivery.body))
            .header("Aries-Event-Id", env.id.to_string())
            .header("Aries-Event-Type", env.event_type.as_str())
            .header("Aries-Delivery-Attempt", target.attempt.to_string())
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(describe)?;
        let status = res.status().as_u16();
        Ok((status, self.excerpt(res).await))
    }

    /// A client bound to the host's checked public addresses; an error when the host resolves to
    /// nothing or to any non-public address.
    async fn pinned_client(&self, url: &reqwest::Url) -> Result<reqwest::Client, String> {
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| format!("cannot resolve {bare}: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{bare} resolves to no address"));
        }
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "refused: {bare} resolves to {}, a non-public address",
                bad.ip()
            ));
        }
        client_builder(self.timeout())
            .resolve_to_addrs(bare, &addrs)
            .build()
            .map_err(|e| format!("the HTTP client is unavailable: {e}"))
    }

    /// The first `max_response_bytes` of the body (lossy UTF-8); the rest is not read.
    async fn excerpt(&self, mut res: reqwest::Response) -> Option<String> {
        let max = self.settings.max_response_bytes;
        if max == 0 {
            return None;
        }
        let mut kept: Vec<u8> = Vec::new();
        while kept.len() < max {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    let room = max - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
    }
}

/// A transport error in a few words (the URL is the endpoint's own, not a secret).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Whether a failure of the tenant side is for good (`Reject`) or for now (`Retry`).
fn classify(e: TenantError) -> HandleError {
    match e {
        TenantError::TenantNotFound
        | TenantError::NotServing(TenantStatus::Archived)
        | TenantError::Domain(DomainError::NotFound(_)) => HandleError::Reject(e.to_string()),
        other => HandleError::Retry(other.to_string()),
    }
}

impl EventHandler for WebhookDispatcher {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(self.dispatch(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_refuse_unknown_fields() {
        let s = WebhookSettings::default();
        assert_eq!(
            (s.timeout_ms, s.allow_private_networks, s.max_response_bytes),
            (10_000, false, 1024)
        );
        let parsed: Result<WebhookSettings, _> =
            serde_json::from_str(r#"{"allow_private_networks": true}"#);
        assert!(parsed.is_ok_and(|s| s.allow_private_networks && s.timeout_ms == 10_000));
        assert!(serde_json::from_str::<WebhookSettings>(r#"{"timeout": 1}"#).is_err());
    }

    #[test]
    fn tenant_failures_classify() {
        assert!(matches!(
            classify(TenantError::TenantNotFound),
            HandleError::Reject(_)
        ));
        assert!(matches!(
            classify(TenantError::NotServing(TenantStatus::Archived)),
            HandleError::Reject(_)
        ));
        assert!(matches!(
            classify(TenantError::NotServing(TenantStatus::Suspended)),
            HandleError::Retry(_)
        ));
        assert!(matches!(
            classify(TenantError::ShardUnavailable {
                shard: "s".into(),
                retry_after: Duration::from_secs(1)
            }),
            HandleError::Retry(_)
        ));
        assert!(matches!(
            classify(TenantError::Crashed),
            HandleError::Retry(_)
        ));
    }
}
