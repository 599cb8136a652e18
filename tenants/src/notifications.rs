//! Notifications: a tenant's channel (email over SMTP, or SMS through an HTTP gateway speaking the
//! Twilio Messages API), its rules (which event types notify whom) and the log of every attempt;
//! the input rules (email and E.164 shapes, SMTP host/port/TLS mode, gateway URL), the message each
//! event renders to, and the SQL. The sending itself lives with the consumer in `aries-actors`.
//!
//! Secrets (the SMTP password, the gateway's auth token) are write-only: they go into the
//! `secret` column and come out only as a [`Secret`] for the sender, which neither serializes nor
//! prints. The API shows whether one is set, never its value, and no event or audit row holds it.

use crate::error::{DomainError, check_version, patched};
use crate::ids::TenantId;
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

text_enum!(
    /// How a tenant's notifications go out.
    ChannelKind {
        /// Email over SMTP.
        Email => "email",
        /// SMS through an HTTP gateway (Twilio Messages API).
        Sms => "sms",
    }
);

text_enum!(
    /// How the SMTP connection is protected.
    TlsMode {
        /// Plain text (a relay on the local network only).
        None => "none",
        /// Plain connection upgraded with `STARTTLS`, which the server must offer (port 587).
        Starttls => "starttls",
        /// TLS from the first byte (SMTPS, port 465).
        Tls => "tls",
    }
);

text_enum!(
    /// Where a notification to one recipient stands.
    NotificationStatus {
        /// Accepted by the SMTP server or the gateway.
        Sent => "sent",
        /// Refused for good (the provider said no, or the last attempt failed): not tried again.
        Failed => "failed",
        /// The last attempt failed in a way worth another try; the event comes back for it.
        Retrying => "retrying",
    }
);

/// A write-only credential (SMTP password, gateway auth token): no `Serialize`, and a `Debug`
/// that prints nothing, so it cannot reach a response, an event, the audit trail or a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the transport that authenticates with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// `true` for `local@domain.tld` as people type it: no spaces or angle brackets, one `@`, a
/// local part of 1–64 characters, a domain of dot-separated letter/digit/hyphen labels with a dot.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    local_ok && is_hostname(domain) && domain.contains('.')
}

/// `true` for a DNS host name: labels of 1–63 letters, digits or hyphens (not at either end),
/// at most 253 characters.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `true` for an E.164 number: `+`, then 8 to 15 digits, the first not 0 (`+15125550100`).
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Which channel a recipient's shape belongs to, if any.
pub fn recipient_kind(recipient: &str) -> Option<ChannelKind> {
    if is_email(recipient) {
        Some(ChannelKind::Email)
    } else if is_e164(recipient) {
        Some(ChannelKind::Sms)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Channel

/// SMTP settings as sent by a client.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettingsInput {
    /// The SMTP server's host name (`smtp.example.com`).
    pub host: String,
    /// 1–65535; by default 25 for `none`, 587 for `starttls`, 465 for `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The sender address (`notifications@acme.example`).
    pub from: String,
    /// SMTP user name, when the server wants authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// SMTP password (write-only: never returned). Absent keeps the stored one; `""` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// SMS gateway settings as sent by a client.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSettingsInput {
    /// The gateway's base URL (`https://api.twilio.com`), `http` or `https`, no query.
    pub base_url: String,
    /// The account sid: the user name of HTTP Basic auth and part of the URL.
    pub account_sid: String,
    /// The auth token (write-only: never returned). Required the first time; absent keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// The sending number, E.164 (`+15125550100`).
    pub from: String,
}

/// `PUT /notifications/channel`: the whole channel. Exactly one of `email` and `sms`, the one
/// `kind` names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// `email` or `sms`.
    pub kind: String,
    /// The SMTP settings, when `kind` is `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettingsInput>,
    /// The gateway settings, when `kind` is `sms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSettingsInput>,
    /// `false` pauses notifications; `true` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Validated SMTP settings (what the API shows; the password is apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailSettings {
    /// SMTP host name, lower-cased.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: TlsMode,
    /// Sender address.
    pub from: String,
    /// User name for SMTP AUTH, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Validated gateway settings (what the API shows; the token is apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SmsSettings {
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Account sid (Basic auth user name, part of the URL).
    pub account_sid: String,
    /// Sending number, E.164.
    pub from: String,
}

/// The channel as the API returns it: no secret, only whether one is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Channel {
    /// `email` or `sms`.
    pub kind: ChannelKind,
    /// SMTP settings, for an email channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// Gateway settings, for an SMS channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSettings>,
    /// Whether a password or token is stored (its value is never shown).
    pub secret_set: bool,
    /// A paused channel sends nothing.
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    /// When the channel was first set.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What `PUT` stores, once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFields {
    /// Which transport.
    pub kind: ChannelKind,
    /// The shown settings, as stored in the `settings` column.
    pub settings: serde_json::Value,
    /// `None`: keep the stored secret; `Some(None)`: remove it; `Some(Some(s))`: replace it.
    pub secret: Option<Option<Secret>>,
    /// Paused or not.
    pub active: bool,
}

impl ChannelInput {
    /// Checks every rule; `has_secret` says whether a secret is stored for the same kind (an SMS
    /// channel needs a token, given now or kept).
    pub fn parse(&self, stored_secret_for_kind: bool) -> Result<ChannelFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let kind = match self.kind.trim().parse::<ChannelKind>() {
            Ok(k) => Some(k),
            Err(e) => {
                errs.push("kind", "invalid_value", e);
                None
            }
        };
        let mut settings = serde_json::Value::Null;
        let mut secret = None;
        match kind {
            Some(ChannelKind::Email) => {
                if self.sms.is_some() {
                    errs.push("sms", "not_allowed", "an email channel has no sms settings");
                }
                match &self.email {
                    None => errs.push("email", "required", "the SMTP settings"),
                    Some(e) => {
                        let (s, pw) = parse_email(e, &mut errs);
                        settings = serde_json::to_value(s).unwrap_or_default();
                        secret = pw;
                    }
                }
            }
            Some(ChannelKind::Sms) => {
                if self.email.is_some() {
                    errs.push(
                        "email",
                        "not_allowed",
                        "an sms channel has no email settings",
                    );
                }
                match &self.sms {
                    None => errs.push("sms", "required", "the gateway settings"),
                    Some(s) => {
                        let (s, token) = parse_sms(s, &mut errs);
                        let has_token = match &token {
                            Some(t) => t.is_some(),
                            None => stored_secret_for_kind,
                        };
                        if !has_token {
                            errs.push("sms.auth_token", "required", "the gateway's auth token");
                        }
                        settings = serde_json::to_value(s).unwrap_or_default();
                        secret = token;
                    }
                }
            }
            None => {}
        }
        errs.finish(ChannelFields {
            kind: kind.unwrap_or(ChannelKind::Email),
            settings,
            secret,
            active: self.active.unwrap_or(true),
        })
    }
}

/// A write-only field: absent keeps, blank removes, anything else replaces (at most 500
/// characters, no control characters).
fn secret_field(
    errs: &mut ValidationErrors,
    field: &str,
    value: Option<&str>,
) -> Option<Option<Secret>> {
    match value {
        None => None,
        Some("") => Some(None),
        Some(v) => {
            if v.chars().count() > 500 || v.chars().any(char::is_control) {
                errs.push(
                    field,
                    "invalid_format",
                    "at most 500 characters, no control characters",
                );
            }
            Some(Some(Secret(v.to_owned())))
        }
    }
}

fn parse_email(
    e: &EmailSettingsInput,
    errs: &mut ValidationErrors,
) -> (EmailSettings, Option<Option<Secret>>) {
    let host = e.host.trim().to_ascii_lowercase();
    if host.is_empty() {
        errs.push("email.host", "required", "must not be blank");
    } else if !is_hostname(&host) && host.parse::<std::net::IpAddr>().is_err() {
        errs.push(
            "email.host",
            "invalid_format",
            "a host name such as smtp.example.com, or an IP address",
        );
    }
    let tls = match e.tls.as_deref().map(str::trim) {
        None | Some("") => TlsMode::Starttls,
        Some(t) => t.parse().unwrap_or_else(|m: String| {
            errs.push("email.tls", "invalid_value", m);
            TlsMode::Starttls
        }),
    };
    let port = match e.port {
        None => match tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        },
        Some(p) => u16::try_from(p).ok().filter(|p| *p > 0).unwrap_or_else(|| {
            errs.push("email.port", "out_of_range", "a port from 1 to 65535");
            0
        }),
    };
    let from = e.from.trim().to_owned();
    if !is_email(&from) {
        errs.push(
            "email.from",
            "invalid_email",
            "an email address such as notifications@example.com",
        );
    }
    let username = errs.optional_text("email.username", e.username.as_deref(), 200);
    let password = secret_field(errs, "email.password", e.password.as_deref());
    if username.is_none() && matches!(password, Some(Some(_))) {
        errs.push("email.username", "required", "a password needs a user name");
    }
    (
        EmailSettings {
            host,
            port,
            tls,
            from,
            username,
        },
        password,
    )
}

fn parse_sms(
    s: &SmsSettingsInput,
    errs: &mut ValidationErrors,
) -> (SmsSettings, Option<Option<Secret>>) {
    let base_url = s.base_url.trim().trim_end_matches('/').to_owned();
    let url_ok = url::Url::parse(&base_url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if !url_ok {
        errs.push(
            "sms.base_url",
            "invalid_url",
            "an http or https URL without credentials, query or fragment, such as https://api.twilio.com",
        );
    }
    let account_sid = s.account_sid.trim().to_owned();
    if account_sid.is_empty()
        || account_sid.len() > 64
        || !account_sid.chars().all(|c| c.is_ascii_alphanumeric())
    {
        errs.push(
            "sms.account_sid",
            "invalid_format",
            "1 to 64 letters and digits",
        );
    }
    let from = s.from.trim().to_owned();
    if !is_e164(&from) {
        errs.push(
            "sms.from",
            "invalid_phone",
            "an E.164 number: + and 8 to 15 digits, such as +15125550100",
        );
    }
    let token = secret_field(errs, "sms.auth_token", s.auth_token.as_deref());
    (
        SmsSettings {
            base_url,
            account_sid,
            from,
        },
        token,
    )
}

// ---------------------------------------------------------------------------------------------
// Rules

/// The writable fields of a rule. `POST` takes it whole; `PATCH` a JSON merge patch of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Display name; required, at most 200 characters.
    pub name: String,
    /// Event types that notify: `order.approved`, `order.*` or `*` (1 to 50).
    pub event_types: Vec<String>,
    /// Email addresses or E.164 numbers (1 to 50), of the kind the channel sends to.
    pub recipients: Vec<String>,
    /// Inactive rules notify no one; `true` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A validated rule input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFields {
    /// Trimmed name.
    pub name: String,
    /// Trimmed, de-duplicated patterns, in the order given.
    pub event_types: Vec<String>,
    /// Trimmed recipients (emails lower-cased), de-duplicated, in the order given.
    pub recipients: Vec<String>,
    /// `true` when absent.
    pub active: bool,
}

/// A rule as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    /// The rule's id (UUIDv7).
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Event-type patterns.
    pub event_types: Vec<String>,
    /// Who is notified.
    pub recipients: Vec<String>,
    /// Inactive rules notify no one.
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

impl Rule {
    /// The writable fields, for a merge patch.
    pub fn to_input(&self) -> RuleInput {
        RuleInput {
            name: self.name.clone(),
            event_types: self.event_types.clone(),
            recipients: self.recipients.clone(),
            active: Some(self.active),
        }
    }

    /// Does the rule fire for `event_type`?
    pub fn matches(&self, event_type: &str) -> bool {
        self.active
            && self
                .event_types
                .iter()
                .any(|p| crate::outbox::pattern_matches(p, event_type))
    }
}

impl RuleInput {
    /// Checks every rule; `channel` is the tenant's channel kind, when one is set, which every
    /// recipient must suit.
    pub fn parse(&self, channel: Option<ChannelKind>) -> Result<RuleFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.text("name", &self.name, 200);
        let mut event_types: Vec<String> = Vec::new();
        if self.event_types.is_empty() || self.event_types.len() > 50 {
            errs.push("event_types", "out_of_range", "1 to 50 event types");
        }
        for (i, t) in self.event_types.iter().enumerate() {
            let t = t.trim();
            if !crate::outbox::is_event_pattern(t) {
                errs.push(
                    format!("event_types[{i}]"),
                    "invalid_format",
                    "an event type (order.approved), an aggregate's events (order.*) or *",
                );
            } else if !event_types.iter().any(|e| e == t) {
                event_types.push(t.to_owned());
            }
        }
        let mut recipients: Vec<String> = Vec::new();
        if self.recipients.is_empty() || self.recipients.len() > 50 {
            errs.push("recipients", "out_of_range", "1 to 50 recipients");
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let r = r.trim();
            let field = format!("recipients[{i}]");
            let r = match recipient_kind(r) {
                None => {
                    errs.push(
                        field,
                        "invalid_recipient",
                        "an email address or an E.164 number (+15125550100)",
                    );
                    continue;
                }
                Some(kind) if channel.is_some_and(|c| c != kind) => {
                    errs.push(
                        field,
                        "wrong_channel",
                        format!(
                            "the tenant's channel is {}; this recipient is not",
                            channel.map(ChannelKind::as_str).unwrap_or_default()
                        ),
                    );
                    continue;
                }
                Some(ChannelKind::Email) => r.to_ascii_lowercase(),
                Some(ChannelKind::Sms) => r.to_owned(),
            };
            if !recipients.contains(&r) {
                recipients.push(r);
            }
        }
        errs.finish(RuleFields {
            name,
            event_types,
            recipients,
            active: self.active.unwrap_or(true),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Log

/// One recipient's notification of one event by one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// Id of the entry (UUIDv7 of the first attempt): the list's order.
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// The event that notified (its envelope id).
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// The rule that selected the recipient.
    #[schema(value_type = String, format = Uuid)]
    pub rule_id: Uuid,
    /// Email address or number.
    pub recipient: String,
    /// The channel used.
    pub channel: ChannelKind,
    /// Sent, failed for good, or waiting for another try.
    pub status: NotificationStatus,
    /// The SMTP server's answer or the gateway's message sid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Why the last attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Attempts made so far.
    pub attempts: i32,
    /// First attempt.
    pub created_at: DateTime<Utc>,
    /// Last attempt.
    pub updated_at: DateTime<Utc>,
    /// When the provider accepted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
}

/// The outcome of one attempt, as the sender records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Which event.
    pub event_id: Uuid,
    /// Its type (shown in the log).
    pub event_type: String,
    /// Which rule.
    pub rule_id: Uuid,
    /// To whom.
    pub recipient: String,
    /// Over what.
    pub channel: ChannelKind,
    /// The outcome.
    pub status: NotificationStatus,
    /// Provider's id for the message, when sent.
    pub provider_message_id: Option<String>,
    /// Why it failed (never holds a secret: provider answers and transport errors only).
    pub error: Option<String>,
}

/// Filters of the log.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this status.
    pub status: Option<NotificationStatus>,
    /// Only this event.
    pub event_id: Option<Uuid>,
    /// Only this rule.
    pub rule_id: Option<Uuid>,
    /// Only this event type (exact).
    pub event_type: Option<String>,
    /// Only this recipient (exact).
    pub recipient: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// What one event says to its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Email subject; also the first line of an SMS.
    pub subject: String,
    /// Email body (plain text).
    pub text: String,
    /// SMS body: the subject and the key fields, at most 320 characters (two segments).
    pub sms: String,
}

/// Fields of an event's `data` that identify the thing or say where it stands, in the order
/// shown. Names, addresses and notes of patients are left out on purpose: an email or SMS is
/// not a place for health information.
const KEY_FIELDS: &[(&str, &str)] = &[
    ("order_number", "Order"),
    ("invoice_number", "Invoice"),
    ("state", "Status"),
    ("status", "Status"),
    ("delivery_date", "Delivery date"),
    ("pickup_date", "Pickup date"),
    ("cancel_reason", "Reason"),
    ("amount", "Amount"),
    ("total", "Total"),
    ("code", "Code"),
    ("name", "Name"),
];

/// Events whose `name` field may be a person's (left out, see [`KEY_FIELDS`]).
fn personal(event_type: &str) -> bool {
    event_type.starts_with("patient.")
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The message for one event: subject `"<tenant>: order O000123 approved"`, and a text naming the
/// tenant, the event, when it happened and the key fields of `data`.
pub fn render(
    tenant_name: &str,
    event_type: &str,
    occurred_at: DateTime<Utc>,
    data: &serde_json::Value,
) -> Rendered {
    let (aggregate, verb) = event_type.split_once('.').unwrap_or((event_type, ""));
    let aggregate_words = aggregate.replace('_', " ");
    let verb_words = verb.replace('_', " ");
    let fields: Vec<(&str, String)> = KEY_FIELDS
        .iter()
        .filter(|(k, _)| !(personal(event_type) && *k == "name"))
        .filter_map(|(k, label)| data.get(*k).and_then(scalar).map(|v| (*label, v)))
        .collect();
    let reference = data
        .get("order_number")
        .or_else(|| data.get("invoice_number"))
        .or_else(|| data.get("code"))
        .and_then(scalar);
    let subject = match &reference {
        Some(r) => format!("{tenant_name}: {aggregate_words} {r} {verb_words}"),
        None => format!("{tenant_name}: {aggregate_words} {verb_words}"),
    };
    let subject: String = subject.trim().chars().take(200).collect();
    let mut text = format!(
        "{tenant_name}\n\nEvent: {event_type}\nWhen: {}\n",
        occurred_at.format("%Y-%m-%d %H:%M UTC")
    );
    for (label, value) in &fields {
        text.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(id) = data.get("id").and_then(scalar) {
        text.push_str(&format!("Id: {id}\n"));
    }
    text.push_str("\nSent by AriesOne on behalf of ");
    text.push_str(tenant_name);
    text.push_str(".\n");
    let mut sms = subject.clone();
    for (label, value) in fields
        .iter()
        .filter(|(l, _)| *l == "Status" || *l == "Delivery date")
    {
        sms.push_str(&format!(" · {label}: {value}"));
    }
    let sms = sms.chars().take(320).collect();
    Rendered { subject, text, sms }
}

// ---------------------------------------------------------------------------------------------
// SQL (every function runs in the caller's tenant transaction, RLS in force, and still filters by
// tenant explicitly)

#[derive(sqlx::FromRow)]
struct ChannelRow {
    /// `email` or `sms`.
    kind: ChannelKind,
    /// The shown settings of that kind.
    settings: serde_json::Value,
    /// The write-only credential, selected only for the sender.
    secret: Option<String>,
    /// Paused or not.
    active: bool,
    /// `ETag`.
    version: i64,
    /// First set.
    created_at: DateTime<Utc>,
    /// Last changed.
    updated_at: DateTime<Utc>,
}

fn corrupt(e: serde_json::Error) -> DomainError {
    DomainError::Database(sqlx::Error::Decode(Box::new(e)))
}

impl ChannelRow {
    fn into_channel(self) -> Result<(Channel, Option<Secret>), DomainError> {
        let (email, sms) = match self.kind {
            ChannelKind::Email => (
                Some(serde_json::from_value(self.settings).map_err(corrupt)?),
                None,
            ),
            ChannelKind::Sms => (
                None,
                Some(serde_json::from_value(self.settings).map_err(corrupt)?),
            ),
        };
        let channel = Channel {
            kind: self.kind,
            email,
            sms,
            secret_set: self.secret.is_some(),
            active: self.active,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        Ok((channel, self.secret.map(Secret)))
    }
}

async fn channel_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    lock: bool,
) -> Result<Option<ChannelRow>, DomainError> {
    let sql = if lock {
        "select kind, settings, secret, active, version, created_at, updated_at \
         from notification_channel where tenant_id = $1 for update"
    } else {
        "select kind, settings, secret, active, version, created_at, updated_at \
         from notification_channel where tenant_id = $1"
    };
    Ok(sqlx::query_as(sql)
        .bind(tenant)
        .fetch_optional(conn)
        .await?)
}

/// The tenant's channel, or `NotFound` when none was set.
pub async fn get_channel(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Channel, DomainError> {
    match channel_row(conn, tenant, false).await? {
        Some(row) => Ok(row.into_channel()?.0),
        None => Err(DomainError::NotFound("notification channel")),
    }
}

/// The channel with its secret, for the sender only; `None` when none was set.
pub async fn channel_for_sending(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<(Channel, Option<Secret>)>, DomainError> {
    channel_row(conn, tenant, false)
        .await?
        .map(ChannelRow::into_channel)
        .transpose()
}

/// Sets the tenant's channel (creating or replacing it, checking `if_match` against the current
/// version) and writes a `notification_channel.updated` event without the secret. Returns the
/// channel and whether it was created.
pub async fn put_channel(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &ChannelInput,
    if_match: Option<i64>,
) -> Result<(Channel, bool), DomainError> {
    let current = channel_row(conn, tenant, true).await?;
    match (&current, if_match) {
        (Some(row), _) => check_version(if_match, row.version)?,
        (None, Some(_)) => return Err(DomainError::NotFound("notification channel")),
        (None, None) => {}
    }
    let requested_kind = input.kind.trim().parse::<ChannelKind>().ok();
    let stored_secret = current
        .as_ref()
        .filter(|r| Some(r.kind) == requested_kind)
        .and_then(|r| r.secret.clone());
    let f = input.parse(stored_secret.is_some())?;
    // A secret belongs to its kind: switching kinds drops the old one unless a new one is given.
    let secret: Option<String> = match f.secret {
        None => stored_secret,
        Some(s) => s.map(|s| s.0),
    };
    let row: ChannelRow = sqlx::query_as(
        "insert into notification_channel (tenant_id, kind, settings, secret, active) \
         values ($1, $2, $3, $4, $5) \
         on conflict (tenant_id) do update set kind = $2, settings = $3, secret = $4, active = $5, \
         version = notification_channel.version + 1, updated_at = now() \
         returning kind, settings, secret, active, version, created_at, updated_at",
    )
    .bind(tenant)
    .bind(f.kind)
    .bind(&f.settings)
    .bind(&secret)
    .bind(f.active)
    .fetch_one(&mut *conn)
    .await?;
    let (channel, _) = row.into_channel()?;
    outbox::record(
        conn,
        tenant,
        tenant.as_uuid(),
        "notification_channel.updated",
        &channel,
    )
    .await?;
    Ok((channel, current.is_none()))
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    /// Key within the tenant.
    rule_id: Uuid,
    /// Display name.
    name: String,
    /// Patterns.
    event_types: Vec<String>,
    /// Recipients.
    recipients: Vec<String>,
    /// On or off.
    active: bool,
    /// `ETag`.
    version: i64,
    /// Created.
    created_at: DateTime<Utc>,
    /// Last changed.
    updated_at: DateTime<Utc>,
}

impl From<RuleRow> for Rule {
    fn from(r: RuleRow) -> Self {
        Rule {
            id: r.rule_id,
            name: r.name,
            event_types: r.event_types,
            recipients: r.recipients,
            active: r.active,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const RULE_COLUMNS: &str =
    "rule_id, name, event_types, recipients, active, version, created_at, updated_at";

async fn channel_kind(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<ChannelKind>, DomainError> {
    let kind: Option<(ChannelKind,)> =
        sqlx::query_as("select kind from notification_channel where tenant_id = $1")
            .bind(tenant)
            .fetch_optional(conn)
            .await?;
    Ok(kind.map(|k| k.0))
}

/// Creates a rule and its `notification_rule.created` event.
pub async fn create_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &RuleInput,
) -> Result<Rule, DomainError> {
    let kind = channel_kind(conn, tenant).await?;
    let f = input.parse(kind)?;
    let sql = format!(
        "insert into notification_rule (tenant_id, rule_id, name, event_types, recipients, active) \
         values ($1, $2, $3, $4, $5, $6) returning {RULE_COLUMNS}"
    );
    let row: RuleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(&f.name)
        .bind(&f.event_types)
        .bind(&f.recipients)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await?;
    let rule = Rule::from(row);
    outbox::record(conn, tenant, rule.id, "notification_rule.created", &rule).await?;
    Ok(rule)
}

async fn rule_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    lock: bool,
) -> Result<Rule, DomainError> {
    let sql = format!(
        "select {RULE_COLUMNS} from notification_rule where tenant_id = $1 and rule_id = $2{}",
        if lock { " for update" } else { "" }
    );
    let row: Option<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Rule::from)
        .ok_or(DomainError::NotFound("notification rule"))
}

/// One rule, or `NotFound`.
pub async fn get_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Rule, DomainError> {
    rule_row(conn, tenant, id, false).await
}

/// A page of rules in id order (`limit + 1` rows, so the caller can tell whether more exist).
pub async fn list_rules(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    active: Option<bool>,
) -> Result<Vec<Rule>, DomainError> {
    let sql = format!(
        "select {RULE_COLUMNS} from notification_rule where tenant_id = $1 \
         and ($2::uuid is null or rule_id > $2) and ($3::boolean is null or active = $3) \
         order by rule_id limit $4"
    );
    let rows: Vec<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Rule::from).collect())
}

/// The active rules that fire for `event_type`.
pub async fn rules_matching(
    conn: &mut PgConnection,
    tenant: TenantId,
    event_type: &str,
) -> Result<Vec<Rule>, DomainError> {
    let sql = format!(
        "select {RULE_COLUMNS} from notification_rule where tenant_id = $1 and active order by rule_id"
    );
    let rows: Vec<RuleRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(Rule::from)
        .filter(|r| r.matches(event_type))
        .collect())
}

/// Applies a JSON merge patch (checking `if_match`) and writes `notification_rule.updated`; a
/// patch that changes nothing bumps nothing (the flag says whether anything changed).
pub async fn patch_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    patch: &serde_json::Value,
    if_match: Option<i64>,
) -> Result<(Rule, bool), DomainError> {
    let current = rule_row(conn, tenant, id, true).await?;
    check_version(if_match, current.version)?;
    let input: RuleInput = patched(&current.to_input(), patch)?;
    let kind = channel_kind(conn, tenant).await?;
    let f = input.parse(kind)?;
    if f.name == current.name
        && f.event_types == current.event_types
        && f.recipients == current.recipients
        && f.active == current.active
    {
        return Ok((current, false));
    }
    let sql = format!(
        "update notification_rule set name = $3, event_types = $4, recipients = $5, active = $6, \
         version = version + 1, updated_at = now() where tenant_id = $1 and rule_id = $2 \
         returning {RULE_COLUMNS}"
    );
    let row: RuleRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.name)
        .bind(&f.event_types)
        .bind(&f.recipients)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await?;
    let rule = Rule::from(row);
    outbox::record(conn, tenant, rule.id, "notification_rule.updated", &rule).await?;
    Ok((rule, true))
}

/// Deletes a rule (checking `if_match`) and writes `notification_rule.deleted`. Its log rows stay.
pub async fn delete_rule(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    if_match: Option<i64>,
) -> Result<(), DomainError> {
    let current = rule_row(conn, tenant, id, true).await?;
    check_version(if_match, current.version)?;
    sqlx::query("delete from notification_rule where tenant_id = $1 and rule_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    outbox::record(
        conn,
        tenant,
        id,
        "notification_rule.deleted",
        &serde_json::json!({ "id": id }),
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct LogRow {
    /// Key and cursor.
    log_id: Uuid,
    /// The event.
    event_id: Uuid,
    /// Its type.
    event_type: String,
    /// The rule.
    rule_id: Uuid,
    /// To whom.
    recipient: String,
    /// Over what.
    channel: ChannelKind,
    /// Outcome.
    status: NotificationStatus,
    /// Provider's id.
    provider_message_id: Option<String>,
    /// Last failure.
    error: Option<String>,
    /// Attempts so far.
    attempts: i32,
    /// First attempt.
    created_at: DateTime<Utc>,
    /// Last attempt.
    updated_at: DateTime<Utc>,
    /// Accepted by the provider.
    sent_at: Option<DateTime<Utc>>,
}

impl From<LogRow> for LogEntry {
    fn from(r: LogRow) -> Self {
        LogEntry {
            id: r.log_id,
            event_id: r.event_id,
            event_type: r.event_type,
            rule_id: r.rule_id,
            recipient: r.recipient,
            channel: r.channel,
            status: r.status,
            provider_message_id: r.provider_message_id,
            error: r.error,
            attempts: r.attempts,
            created_at: r.created_at,
            updated_at: r.updated_at,
            sent_at: r.sent_at,
        }
    }
}

const LOG_COLUMNS: &str = "log_id, event_id, event_type, rule_id, recipient, channel, status, \
                           provider_message_id, error, attempts, created_at, updated_at, sent_at";

/// Every log row of one event (what the sender skips on a redelivery).
pub async fn log_of_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    event_id: Uuid,
) -> Result<Vec<LogEntry>, DomainError> {
    let sql = format!(
        "select {LOG_COLUMNS} from notification_log where tenant_id = $1 and event_id = $2 order by log_id"
    );
    let rows: Vec<LogRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(event_id)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(LogEntry::from).collect())
}

/// Records one attempt: the first makes the row, later ones update it and count. A row already
/// `sent` or `failed` is final and stays as it is (a late duplicate cannot overwrite it).
pub async fn record_attempt(
    conn: &mut PgConnection,
    tenant: TenantId,
    a: &Attempt,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into notification_log (tenant_id, log_id, event_id, event_type, rule_id, recipient, channel, \
         status, provider_message_id, error, sent_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, case when $8 = 'sent' then now() end) \
         on conflict (tenant_id, event_id, rule_id, recipient) do update set \
         status = excluded.status, provider_message_id = excluded.provider_message_id, \
         error = excluded.error, attempts = notification_log.attempts + 1, updated_at = now(), \
         sent_at = excluded.sent_at \
         where notification_log.status = 'retrying'",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(a.event_id)
    .bind(&a.event_type)
    .bind(a.rule_id)
    .bind(&a.recipient)
    .bind(a.channel)
    .bind(a.status)
    .bind(&a.provider_message_id)
    .bind(&a.error)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of the log in id order (`limit + 1` rows).
pub async fn list_log(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    f: &LogFilter,
) -> Result<Vec<LogEntry>, DomainError> {
    let sql = format!(
        "select {LOG_COLUMNS} from notification_log where tenant_id = $1 \
         and ($2::uuid is null or log_id > $2) and ($3::text is null or status = $3) \
         and ($4::uuid is null or event_id = $4) and ($5::uuid is null or rule_id = $5) \
         and ($6::text is null or event_type = $6) and ($7::text is null or recipient = $7) \
         order by log_id limit $8"
    );
    let rows: Vec<LogRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(f.status)
        .bind(f.event_id)
        .bind(f.rule_id)
        .bind(&f.event_type)
        .bind(&f.recipient)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(LogEntry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert!(is_email("ops@acme.example"));
        assert!(is_email("first.last+tag@sub.acme.co"));
        for bad in [
            "",
            "ops",
            "ops@",
            "@acme.com",
            "ops@acme",
            "o ps@acme.com",
            "a..b@acme.com",
            "ops@-acme.com",
            "<ops@acme.com>",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_e164("+15125550100"));
        assert!(is_e164("+44207946"));
        for bad in [
            "15125550100",
            "+1512",
            "+1234567890123456",
            "+05125550100",
            "+1 512 555 0100",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn channel_rules() {
        let input = ChannelInput {
            kind: "email".into(),
            email: Some(EmailSettingsInput {
                host: "SMTP.acme.example".into(),
                tls: Some("tls".into()),
                from: "ops@acme.example".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = input
            .parse(false)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.settings["port"], 465);
        assert_eq!(f.settings["host"], "smtp.acme.example");
        let bad = ChannelInput {
            kind: "sms".into(),
            sms: Some(SmsSettingsInput {
                base_url: "ftp://x".into(),
                account_sid: "AC 1".into(),
                auth_token: None,
                from: "5125550100".into(),
            }),
            ..Default::default()
        };
        let fields: Vec<String> = bad
            .parse(false)
            .err()
            .map(|e| e.0.into_iter().map(|f| f.field).collect())
            .unwrap_or_default();
        assert_eq!(
            fields,
            [
                "sms.base_url",
                "sms.account_sid",
                "sms.from",
                "sms.auth_token"
            ]
        );
    }

    #[test]
    fn recipients_must_suit_the_channel() {
        let input = RuleInput {
            name: "ops".into(),
            event_types: vec!["order.*".into()],
            recipients: vec!["Ops@Acme.example".into(), "+15125550100".into()],
            active: None,
        };
        assert!(input.parse(None).is_ok());
        let e = input
            .parse(Some(ChannelKind::Email))
            .err()
            .map(|e| e.0[0].code.clone());
        assert_eq!(e.as_deref(), Some("wrong_channel"));
        let ok = input.parse(None).map(|f| f.recipients).unwrap_or_default();
        assert_eq!(ok[0], "ops@acme.example");
    }

    #[test]
    fn rendering_names_tenant_event_and_key_fields() {
        let r = render(
            "Acme DME",
            "order.approved",
            Utc::now(),
            &json!({"id": "x", "order_number": "O000123", "state": "approved", "notes": "secret"}),
        );
        assert_eq!(r.subject, "Acme DME: order O000123 approved");
        assert!(r.text.contains("Event: order.approved") && r.text.contains("Status: approved"));
        assert!(!r.text.contains("secret"));
        let p = render(
            "Acme DME",
            "patient.created",
            Utc::now(),
            &json!({"name": "Jane Doe"}),
        );
        assert!(
            !p.text.contains("Jane"),
            "no patient names in notifications"
        );
    }
}
