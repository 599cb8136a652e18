//! The notification consumer: for each event, the tenant's active rules whose patterns select
//! its type name the recipients; each gets one message over the tenant's channel, email through
//! SMTP (lettre, tokio transport, rustls with ring) or SMS through an HTTP gateway speaking the
//! Twilio Messages API.
//!
//! ## Idempotent by event id
//! Every attempt is written to `notification_log`, unique per (tenant, event, rule, recipient). A
//! redelivered event skips recipients whose row is final (`sent`, or `failed` for good), so it
//! sends nothing twice and retries only those left `retrying`. A recipient named by two rules
//! gets one message. The log row is written after the provider answered: a crash between the two
//! (or two instances handed the same message at once) can send a message twice, which is the
//! at-least-once the broker gives; it never loses one.
//!
//! ## Failures
//! A provider's refusal (SMTP 5xx, gateway 4xx other than 408/429, an address the transport
//! cannot parse) is permanent: logged `failed`, not retried. Anything else (SMTP 4xx, gateway
//! 5xx, 408, 429, timeouts, a refused connection) returns [`HandleError::Retry`] with the row
//! `retrying`; on the final attempt it is logged `failed` instead.

use super::{Delivery, EventHandler, HandleError};
use crate::ops::notifications::{NotificationPlan, PlanNotifications, RecordNotificationAttempts};
use crate::{Directory, TenantError};
use aries_tenants::notifications::{
    Attempt, Channel, ChannelKind, EmailSettings, NotificationStatus, Rendered, Secret,
    SmsSettings, TlsMode, recipient_kind, render,
};
use aries_tenants::{DomainError, TenantSlug};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// `[notifications]`: limits on the providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Limit on one SMTP exchange (connect, greeting, each command), in milliseconds.
    pub smtp_timeout_ms: u64,
    /// Limit on one request to the SMS gateway, in milliseconds.
    pub sms_timeout_ms: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            smtp_timeout_ms: 10_000,
            sms_timeout_ms: 10_000,
        }
    }
}

/// How urgent an event is for its notification (the relay sets it as the message priority on a
/// queue with `x-max-priority = 10`): what a patient or a driver waits on first, bulk changes last.
pub fn priority_of(event_type: &str) -> u8 {
    match event_type {
        "order.delivered" | "order.line_picked_up" => 10,
        "order.approved" | "order.canceled" => 9,
        "order.created" | "order.updated" | "order.line_added" | "order.line_updated"
        | "order.line_removed" => 6,
        "invoice.created" | "ar_transaction.posted" | "ar_batch.posted" => 4,
        t if t.starts_with("patient.") || t.starts_with("prescriber.") => 4,
        t if t.starts_with("price_list.")
            || t.starts_with("stock.")
            || t.starts_with("item.")
            || t.starts_with("serial.")
            || t.starts_with("warehouse.") =>
        {
            1
        }
        _ => 3,
    }
}

/// What came of sending to one recipient.
#[derive(Debug)]
enum Outcome {
    /// Accepted; the provider's id for it.
    Sent(Option<String>),
    /// Refused for good.
    Permanent(String),
    /// Worth another try.
    Transient(String),
}

/// The notification consumer (queue `<ns>.notifications`, a priority queue).
pub struct NotificationSender {
    /// Runs the internal operations in the tenant's transaction, and reads the tenant's name
    /// from the catalog for the messages.
    directory: Directory,
    /// Timeouts.
    settings: NotificationSettings,
    /// One HTTP client (its connection pool) for every gateway request.
    http: reqwest::Client,
}

impl NotificationSender {
    pub fn new(directory: Directory, settings: NotificationSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.sms_timeout_ms))
            .build()
            .unwrap_or_default();
        Self {
            directory,
            settings,
            http,
        }
    }

    #[tracing::instrument(name = "notifications.handle", skip_all,
        fields(tenant = %delivery.envelope.tenant, event_id = %delivery.envelope.id,
               event_type = %delivery.envelope.event_type, attempt = delivery.attempt))]
    async fn run(&self, delivery: &Delivery) -> Result<(), HandleError> {
        let env = &delivery.envelope;
        let slug = TenantSlug::parse(&env.tenant)
            .map_err(|e| HandleError::Reject(format!("tenant slug: {e}")))?;
        let plan = self
            .directory
            .exec(
                &slug,
                PlanNotifications {
                    event_id: env.id,
                    event_type: env.event_type.clone(),
                },
            )
            .await
            .map_err(handle_error)?;
        let NotificationPlan {
            channel,
            rules,
            log,
        } = plan;
        let Some((channel, secret)) = channel.filter(|(c, _)| c.active) else {
            return Ok(());
        };
        // A recipient is done for this event once any rule's row for them is final.
        let done: HashSet<&str> = log
            .iter()
            .filter(|l| l.status != NotificationStatus::Retrying)
            .map(|l| l.recipient.as_str())
            .collect();
        let mut seen = HashSet::new();
        let targets: Vec<(Uuid, String)> = rules
            .iter()
            .flat_map(|r| r.recipients.iter().map(move |to| (r.id, to.clone())))
            .filter(|(_, to)| !done.contains(to.as_str()) && seen.insert(to.clone()))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let tenant_name = match self.directory.catalog().tenant_by_slug(&slug).await {
            Ok(t) => t.name,
            Err(_) => env.tenant.clone(),
        };
        let message = render(&tenant_name, &env.event_type, env.occurred_at, &env.data);
        let mut attempts = Vec::with_capacity(targets.len());
        let mut transient = Vec::new();
        for (rule_id, to) in targets {
            let outcome = self
                .send(&channel, secret.as_ref(), &tenant_name, &message, &to)
                .await;
            let (status, provider_message_id, error) = match outcome {
                Outcome::Sent(id) => (NotificationStatus::Sent, id, None),
                Outcome::Permanent(e) => (NotificationStatus::Failed, None, Some(e)),
                Outcome::Transient(e) => {
                    transient.push(format!("{to}: {e}"));
                    let status = if delivery.final_attempt {
                        NotificationStatus::Failed
                    } else {
                        NotificationStatus::Retrying
                    };
                    (status, None, Some(e))
                }
            };
            tracing::info!(%rule_id, status = %status, channel = %channel.kind, "notification attempt");
            attempts.push(Attempt {
                event_id: env.id,
                event_type: env.event_type.clone(),
                rule_id,
                recipient: to,
                channel: channel.kind,
                status,
                provider_message_id,
                error,
            });
        }
        self.directory
            .exec(&slug, RecordNotificationAttempts { attempts })
            .await
            .map_err(handle_error)?;
        if transient.is_empty() || delivery.final_attempt {
            Ok(())
        } else {
            Err(HandleError::Retry(transient.join("; ")))
        }
    }

    async fn send(
        &self,
        channel: &Channel,
        secret: Option<&Secret>,
        tenant_name: &str,
        message: &Rendered,
        to: &str,
    ) -> Outcome {
        if recipient_kind(to) != Some(channel.kind) {
            return Outcome::Permanent(format!(
                "the recipient is not an address the {} channel can send to",
                channel.kind
            ));
        }
        match (channel.kind, &channel.email, &channel.sms) {
            (ChannelKind::Email, Some(email), _) => {
                self.send_email(email, secret, tenant_name, message, to)
                    .await
            }
            (ChannelKind::Sms, _, Some(sms)) => self.send_sms(sms, secret, message, to).await,
            _ => Outcome::Permanent("the channel has no settings for its kind".into()),
        }
    }

    async fn send_email(
        &self,
        s: &EmailSettings,
        secret: Option<&Secret>,
        tenant_name: &str,
        message: &Rendered,
        to: &str,
    ) -> Outcome {
        use lettre::message::{Mailbox, header::ContentType};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

        let builder = match s.tls {
            TlsMode::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &s.host,
            )),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host),
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host),
        };
        let mut builder = match builder {
            Ok(b) => b
                .port(s.port)
                .timeout(Some(Duration::from_millis(self.settings.smtp_timeout_ms))),
            Err(e) => return Outcome::Permanent(format!("smtp settings: {e}")),
        };
        if let (Some(user), Some(pw)) = (&s.username, secret) {
            builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_owned()));
        }
        let transport = builder.build();
        let (from, to) = match (s.from.parse(), to.parse()) {
            (Ok(from), Ok(to)) => (
                Mailbox::new(Some(tenant_name.to_owned()), from),
                Mailbox::new(None, to),
            ),
            _ => return Outcome::Permanent("an address the mailer cannot parse".into()),
        };
        let email = Message::builder()
            .from(from)
            .to(to)
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text.clone());
        let email = match email {
            Ok(m) => m,
            Err(e) => return Outcome::Permanent(format!("building the message: {e}")),
        };
        match transport.send(email).await {
            Ok(reply) => Outcome::Sent(
                reply
                    .message()
                    .next()
                    .map(|l| l.chars().take(200).collect()),
            ),
            Err(e) if e.is_permanent() => Outcome::Permanent(format!("smtp: {e}")),
            Err(e) => Outcome::Transient(format!("smtp: {e}")),
        }
    }

    async fn send_sms(
        &self,
        s: &SmsSettings,
        secret: Option<&Secret>,
        message: &Rendered,
        to: &str,
    ) -> Outcome {
        let Some(token) = secret else {
            return Outcome::Permanent("the sms channel has no auth token".into());
        };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            s.base_url, s.account_sid
        );
        let res = self
            .http
            .post(&url)
            .basic_auth(&s.account_sid, Some(token.expose()))
            .form(&[
                ("To", to),
                ("From", s.from.as_str()),
                ("Body", message.sms.as_str()),
            ])
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            // No URL in the text: it is the tenant's configuration, and the log is for the tenant.
            Err(e) => return Outcome::Transient(format!("gateway: {}", e.without_url())),
        };
        let status = res.status();
        #[derive(Deserialize)]
        struct Created {
            /// The gateway's message sid.
            sid: Option<String>,
        }
        if status.is_success() {
            let sid = res.json::<Created>().await.ok().and_then(|c| c.sid);
            return Outcome::Sent(sid);
        }
        let body: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let text = format!("gateway answered {}: {body}", status.as_u16());
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Outcome::Permanent(text)
        } else {
            Outcome::Transient(text)
        }
    }
}

/// A tenant operation's failure as the consumer reports it: gone tenants and domain refusals
/// cannot succeed later; everything else (a shard or the catalog down, an actor restarting) can.
fn handle_error(e: TenantError) -> HandleError {
    match e {
        TenantError::TenantNotFound | TenantError::NotServing(_) => {
            HandleError::Reject(e.to_string())
        }
        TenantError::Domain(DomainError::Database(_)) => HandleError::Retry(e.to_string()),
        TenantError::Domain(_) => HandleError::Reject(e.to_string()),
        _ => HandleError::Retry(e.to_string()),
    }
}

impl EventHandler for NotificationSender {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn max_priority(&self) -> Option<u8> {
        Some(10)
    }

    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(self.run(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::priority_of;

    #[test]
    fn what_people_wait_on_comes_first() {
        assert_eq!(priority_of("order.delivered"), 10);
        assert!(priority_of("order.approved") > priority_of("order.created"));
        assert!(priority_of("order.created") > priority_of("price_list.fee_schedule_imported"));
        assert!(priority_of("stock.changed") < priority_of("patient.created"));
        assert!(priority_of("whatever.else") <= 10);
    }
}
