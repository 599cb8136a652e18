//! Webhooks: endpoints a tenant registers to receive its events over HTTP, the delivery log, and
//! the signature every delivery carries (API.md "Events and webhooks", docs/WEBHOOKS.md).
//!
//! ## Layout
//! - Types and validation: [`WebhookInput`] → [`WebhookFields`] (absolute http(s) URL of at most
//!   2048 characters without credentials; non-empty event types, each `aggregate.verb`,
//!   `aggregate.*` or `*`).
//! - The secret ([`generate_secret`]) and the signature: `Aries-Signature: t=<unix seconds>,
//!   v1=<hex HMAC-SHA256 of "<t>.<raw body>">` ([`sign`], [`verify`]).
//! - SQL for endpoints (each change with its outbox event; the secret is never in one), for the
//!   delivery log, and for the dispatcher: [`claim_deliveries`] (which endpoints to send an event
//!   to, claimed so that two instances never both send) and [`record_attempts`].

use crate::error::{DomainError, check_version, patched};
use crate::ids::{TenantId, WebhookEndpointId};
use crate::outbox;
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgConnection;
use std::net::IpAddr;
use uuid::Uuid;

/// Longest URL an endpoint may have.
pub const MAX_URL_CHARS: usize = 2048;
/// Most event-type patterns one endpoint may subscribe to.
pub const MAX_EVENT_TYPES: usize = 100;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Every secret starts with this, so a leaked one is recognisable (and greppable).
pub const SECRET_PREFIX: &str = "whsec_";
/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Aries-Signature";
/// Receivers reject a signature whose timestamp is further than this from their clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The writable fields (`POST` whole, `PATCH` as a merge patch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where deliveries are POSTed: an absolute `http` or `https` URL (at most 2048 characters,
    /// no user name or password in it).
    pub url: String,
    /// Free text for the tenant's own use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the endpoint receives: exact types (`order.approved`), every event of an aggregate
    /// (`order.*`) or everything (`*`).
    pub event_types: Vec<String>,
    /// An inactive endpoint receives nothing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// Validated fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFields {
    /// The URL as given (trimmed), checked absolute http(s).
    pub url: String,
    /// `None` when blank.
    pub description: Option<String>,
    /// Distinct patterns, in the order given.
    pub event_types: Vec<String>,
    /// Whether deliveries go out.
    pub active: bool,
}

impl WebhookInput {
    /// Checks every field; `allow_private_networks = false` also refuses a URL whose host is an
    /// IP literal in a loopback, private, link-local or otherwise non-public range (host names
    /// are checked when a delivery resolves them).
    pub fn parse(&self, allow_private_networks: bool) -> Result<WebhookFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let url = self.url.trim().to_owned();
        if let Err((code, message)) = check_url(&url, allow_private_networks) {
            errs.push("url", code, message);
        }
        let description = errs.optional_text(
            "description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        );
        let mut event_types: Vec<String> = Vec::new();
        if self.event_types.is_empty() {
            errs.push("event_types", "required", "at least one event type");
        } else if self.event_types.len() > MAX_EVENT_TYPES {
            errs.push(
                "event_types",
                "too_many",
                format!("at most {MAX_EVENT_TYPES} event types"),
            );
        }
        for (i, t) in self.event_types.iter().enumerate() {
            let t = t.trim();
            if !crate::outbox::is_event_pattern(t) {
                errs.push(
                    format!("event_types[{i}]"),
                    "invalid_format",
                    "`aggregate.verb` (lower case, digits, _), `aggregate.*` or `*`",
                );
            } else if !event_types.iter().any(|e| e == t) {
                event_types.push(t.to_owned());
            }
        }
        errs.finish(WebhookFields {
            url,
            description,
            event_types,
            active: self.active.unwrap_or(true),
        })
    }
}

/// Checks an endpoint URL; `Err((code, message))` says what is wrong.
pub fn check_url(url: &str, allow_private_networks: bool) -> Result<(), (&'static str, String)> {
    if url.is_empty() {
        return Err(("required", "must not be blank".into()));
    }
    if url.chars().count() > MAX_URL_CHARS {
        return Err((
            "too_long",
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    let parsed =
        url::Url::parse(url).map_err(|e| ("invalid_url", format!("not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("invalid_url", "the scheme must be http or https".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err((
            "invalid_url",
            "credentials do not belong in the URL (verify the signature instead)".into(),
        ));
    }
    let ip = match parsed.host() {
        None => return Err(("invalid_url", "the URL has no host".into())),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = ip
        && !allow_private_networks
        && !is_public(ip)
    {
        return Err((
            "private_address",
            "the address is loopback, private or link-local; webhooks go to public addresses"
                .into(),
        ));
    }
    Ok(())
}

/// Whether an address is on the public internet: not loopback, private (RFC 1918, fc00::/7),
/// link-local, carrier-grade NAT, unspecified, multicast, broadcast or documentation ranges.
/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// A new endpoint secret: `whsec_` + 32 random bytes in base64url (43 characters).
pub fn generate_secret() -> String {
    crate::auth::secrets::generate(SECRET_PREFIX)
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Aries-Signature` header value for `body` sent at `t` (unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not `t=<digits>,v1=<64 hex digits>[,…]`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` value matches the body and the secret.
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks an `Aries-Signature` header against `body` as received: the timestamp within
/// `tolerance_secs` of `now` (unix seconds) and a `v1` equal, in constant time, to the HMAC with
/// `secret`. Several `v1` entries are accepted (any may match), so a sender may sign with an old
/// and a new secret while a rotation settles; unknown keys are ignored.
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    use subtle::ConstantTimeEq;
    let mut t: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                if t.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                t = Some(v.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => match hex::decode(v).ok() {
                Some(bytes) if bytes.len() == 32 => candidates.push(bytes),
                _ => return Err(SignatureError::Malformed),
            },
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let expected: [u8; 32] = mac(secret, t, body).finalize().into_bytes().into();
    let ok = candidates.iter().fold(0u8, |acc, c| {
        acc | c.as_slice().ct_eq(&expected[..]).unwrap_u8()
    });
    if ok == 1 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// An endpoint as the API shows it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    /// The endpoint's id (in its URL).
    #[sqlx(rename = "endpoint_id")]
    #[schema(value_type = String, format = Uuid)]
    pub id: WebhookEndpointId,
    /// Where deliveries go.
    pub url: String,
    /// The tenant's note, when it wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The patterns it subscribed to.
    pub event_types: Vec<String>,
    /// Whether deliveries go out.
    pub active: bool,
    /// The `ETag`.
    pub version: i64,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a secret rotation included).
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    fn to_input(&self) -> WebhookInput {
        WebhookInput {
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.clone(),
            active: Some(self.active),
        }
    }
}

/// The answer to a create or a secret rotation: the only times the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookWithSecret {
    /// The endpoint as `GET` shows it.
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: the key receivers verify signatures with. Store it now; it is never shown again.
    pub secret: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Being sent, or waiting for the broker's next attempt.
    Pending,
    /// A 2xx came back; it is never sent again.
    Delivered,
    /// The last attempt the broker allows failed (a replay of the dead letter may still deliver it).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event's delivery to one endpoint, as the delivery log lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// The event's id: the delivery id receivers dedupe by (`Aries-Event-Id`).
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// The endpoint it went to.
    #[schema(value_type = String, format = Uuid)]
    pub endpoint_id: WebhookEndpointId,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// HTTP attempts so far.
    pub attempts: i32,
    /// The receiver's last status code; absent when it never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the first attempt was claimed.
    pub created_at: DateTime<Utc>,
    /// When a 2xx came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    /// See [`WebhookDelivery`] for each column.
    event_id: Uuid,
    endpoint_id: WebhookEndpointId,
    event_type: String,
    /// Checked by the table's constraint to be one of the three.
    status: String,
    attempts: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(r: DeliveryRow) -> Self {
        WebhookDelivery {
            event_id: r.event_id,
            endpoint_id: r.endpoint_id,
            event_type: r.event_type,
            status: DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Pending),
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            created_at: r.created_at,
            delivered_at: r.delivered_at,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WebhookAttempt {
    /// 1, 2, … (the `Aries-Delivery-Attempt` header it was sent with).
    pub attempt: i32,
    /// The receiver's status; absent when no answer came (timeout, refused connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The start of the answer's body, when there was one (and the server keeps excerpts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    /// From sending the request to the end of the answer (or the failure).
    pub duration_ms: i32,
    /// When it was sent.
    pub attempted_at: DateTime<Utc>,
}

/// A delivery with its attempts, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    /// The delivery as the log lists it.
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    /// Every HTTP attempt.
    pub attempts_log: Vec<WebhookAttempt>,
}

const COLUMNS: &str =
    "endpoint_id, url, description, event_types, active, version, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "event_id, endpoint_id, event_type, status, attempts, last_status_code, \
     last_error, created_at, delivered_at";

/// Registers an endpoint with a fresh secret, and writes `webhook_endpoint.created` (without the
/// secret).
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    input: &WebhookInput,
    allow_private_networks: bool,
) -> Result<WebhookWithSecret, DomainError> {
    let f = input.parse(allow_private_networks)?;
    let secret = generate_secret();
    let sql = format!(
        "insert into webhook_endpoint (tenant_id, endpoint_id, url, description, event_types, secret, active) \
         values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
    );
    let endpoint: WebhookEndpoint = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(WebhookEndpointId::new())
        .bind(&f.url)
        .bind(&f.description)
        .bind(&f.event_types)
        .bind(&secret)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await?;
    outbox::record(
        conn,
        tenant,
        endpoint.id.as_uuid(),
        "webhook_endpoint.created",
        &endpoint,
    )
    .await?;
    Ok(WebhookWithSecret { endpoint, secret })
}

/// One endpoint (without its secret), or `NotFound`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WebhookEndpointId,
) -> Result<WebhookEndpoint, DomainError> {
    let sql =
        format!("select {COLUMNS} from webhook_endpoint where tenant_id = $1 and endpoint_id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("webhook endpoint"))
}

/// A page of endpoints in id order (`limit + 1` rows, so the caller can tell if more exist).
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
    active: Option<bool>,
) -> Result<Vec<WebhookEndpoint>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from webhook_endpoint where tenant_id = $1 \
         and ($2::uuid is null or endpoint_id > $2) and ($3::boolean is null or active = $3) \
         order by endpoint_id limit $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(active)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?)
}

async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WebhookEndpointId,
) -> Result<WebhookEndpoint, DomainError> {
    let sql = format!(
        "select {COLUMNS} from webhook_endpoint where tenant_id = $1 and endpoint_id = $2 for update"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(DomainError::NotFound("webhook endpoint"))
}

/// Merge patch of url, description, event_types and active, with `If-Match`; writes
/// `webhook_endpoint.updated`. Returns the endpoint and whether it changed.
pub async fn patch(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WebhookEndpointId,
    patch: &serde_json::Value,
    if_match: Option<i64>,
    allow_private_networks: bool,
) -> Result<(WebhookEndpoint, bool), DomainError> {
    let current = lock(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    let f = patched(&current.to_input(), patch)?.parse(allow_private_networks)?;
    let unchanged = f.url == current.url
        && f.description == current.description
        && f.event_types == current.event_types
        && f.active == current.active;
    if unchanged {
        return Ok((current, false));
    }
    let sql = format!(
        "update webhook_endpoint set url = $3, description = $4, event_types = $5, active = $6, \
         version = version + 1, updated_at = now() where tenant_id = $1 and endpoint_id = $2 \
         returning {COLUMNS}"
    );
    let endpoint: WebhookEndpoint = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&f.url)
        .bind(&f.description)
        .bind(&f.event_types)
        .bind(f.active)
        .fetch_one(&mut *conn)
        .await?;
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        "webhook_endpoint.updated",
        &endpoint,
    )
    .await?;
    Ok((endpoint, true))
}

/// Replaces the secret (a new version), with `If-Match`; writes `webhook_endpoint.secret_rotated`
/// carrying the id and version only. Deliveries signed from now on use the new secret.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WebhookEndpointId,
    if_match: Option<i64>,
) -> Result<WebhookWithSecret, DomainError> {
    let current = lock(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    let secret = generate_secret();
    let sql = format!(
        "update webhook_endpoint set secret = $3, version = version + 1, updated_at = now() \
         where tenant_id = $1 and endpoint_id = $2 returning {COLUMNS}"
    );
    let endpoint: WebhookEndpoint = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(&secret)
        .fetch_one(&mut *conn)
        .await?;
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        "webhook_endpoint.secret_rotated",
        &serde_json::json!({"id": id, "version": endpoint.version}),
    )
    .await?;
    Ok(WebhookWithSecret { endpoint, secret })
}

/// Deletes an endpoint with its delivery log (checking `If-Match`); writes
/// `webhook_endpoint.deleted`.
pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: WebhookEndpointId,
    if_match: Option<i64>,
) -> Result<(), DomainError> {
    let current = lock(conn, tenant, id).await?;
    check_version(if_match, current.version)?;
    sqlx::query("delete from webhook_endpoint where tenant_id = $1 and endpoint_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    outbox::record(
        conn,
        tenant,
        id.as_uuid(),
        "webhook_endpoint.deleted",
        &serde_json::json!({"id": id}),
    )
    .await?;
    Ok(())
}

/// A page of an endpoint's deliveries in event-id (time) order, optionally of one status;
/// `NotFound` when the endpoint does not exist.
pub async fn list_deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    endpoint: WebhookEndpointId,
    page: PageRequest,
    status: Option<DeliveryStatus>,
) -> Result<Vec<WebhookDelivery>, DomainError> {
    get(conn, tenant, endpoint).await?;
    let sql = format!(
        "select {DELIVERY_COLUMNS} from webhook_delivery where tenant_id = $1 and endpoint_id = $2 \
         and ($3::uuid is null or event_id > $3) and ($4::text is null or status = $4) \
         order by event_id limit $5"
    );
    let rows: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(endpoint)
        .bind(page.after)
        .bind(status.map(DeliveryStatus::as_str))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(WebhookDelivery::from).collect())
}

/// One delivery with its attempts, or `NotFound`.
pub async fn get_delivery(
    conn: &mut PgConnection,
    tenant: TenantId,
    endpoint: WebhookEndpointId,
    event: Uuid,
) -> Result<DeliveryDetail, DomainError> {
    let sql = format!(
        "select {DELIVERY_COLUMNS} from webhook_delivery where tenant_id = $1 and endpoint_id = $2 \
         and event_id = $3"
    );
    let row: DeliveryRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(endpoint)
        .bind(event)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DomainError::NotFound("webhook delivery"))?;
    let attempts_log: Vec<WebhookAttempt> = sqlx::query_as(
        "select attempt, status_code, error, response_excerpt, duration_ms, attempted_at \
         from webhook_attempt where tenant_id = $1 and endpoint_id = $2 and event_id = $3 \
         order by attempt",
    )
    .bind(tenant)
    .bind(endpoint)
    .bind(event)
    .fetch_all(conn)
    .await?;
    Ok(DeliveryDetail {
        delivery: row.into(),
        attempts_log,
    })
}

/// An endpoint the dispatcher is to send an event to now.
#[derive(Clone, PartialEq, Eq)]
pub struct DispatchTarget {
    /// Which endpoint (to record the attempt against).
    pub endpoint_id: WebhookEndpointId,
    /// Where to POST.
    pub url: String,
    /// The signing key (kept out of `Debug`).
    pub secret: String,
    /// This attempt's number for this endpoint (`Aries-Delivery-Attempt`).
    pub attempt: i32,
}

impl std::fmt::Debug for DispatchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchTarget")
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// What [`claim_deliveries`] found for one event.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// Active, subscribed endpoints not yet delivered, now claimed by the caller.
    pub targets: Vec<DispatchTarget>,
    /// Subscribed endpoints that already have the event (never sent again).
    pub delivered: usize,
    /// Subscribed endpoints another dispatcher is sending the event to right now.
    pub busy: usize,
}

/// The tenant's active endpoints subscribed to `event_type` that have not had event `event`
/// delivered, each claimed for `claim_ms` (a `pending` delivery row is created or updated with a
/// claim that expires), so that another instance handling the same event at the same time keeps
/// off them. A claim that expires (a dispatcher that died mid-send) is taken over by the next one.
pub async fn claim_deliveries(
    conn: &mut PgConnection,
    tenant: TenantId,
    event: Uuid,
    event_type: &str,
    claim_ms: i64,
) -> Result<Claimed, DomainError> {
    let endpoints: Vec<(WebhookEndpointId, String, String, Vec<String>)> = sqlx::query_as(
        "select endpoint_id, url, secret, event_types from webhook_endpoint \
         where tenant_id = $1 and active order by endpoint_id",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let subscribed: Vec<_> = endpoints
        .into_iter()
        .filter(|(_, _, _, types)| crate::outbox::any_pattern_matches(types, event_type))
        .collect();
    if subscribed.is_empty() {
        return Ok(Claimed::default());
    }
    let ids: Vec<Uuid> = subscribed.iter().map(|e| e.0.as_uuid()).collect();
    let claimed: Vec<(WebhookEndpointId, i32)> = sqlx::query_as(
        "insert into webhook_delivery (tenant_id, endpoint_id, event_id, event_type, claimed_until) \
         select $1, e, $3, $4, now() + make_interval(secs => $5::double precision / 1000) \
         from unnest($2::uuid[]) e \
         on conflict (tenant_id, endpoint_id, event_id) do update \
         set claimed_until = excluded.claimed_until, status = 'pending', updated_at = now() \
         where webhook_delivery.status <> 'delivered' \
         and (webhook_delivery.claimed_until is null or webhook_delivery.claimed_until < now()) \
         returning endpoint_id, attempts",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(event)
    .bind(event_type)
    .bind(claim_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Claimed::default();
    for (id, url, secret, _) in subscribed {
        if let Some((_, attempts)) = claimed.iter().find(|(c, _)| *c == id) {
            out.targets.push(DispatchTarget {
                endpoint_id: id,
                url,
                secret,
                attempt: attempts + 1,
            });
        }
    }
    let unclaimed: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !out.targets.iter().any(|t| t.endpoint_id.as_uuid() == *id))
        .collect();
    if !unclaimed.is_empty() {
        let (delivered, busy): (i64, i64) = sqlx::query_as(
            "select count(*) filter (where status = 'delivered'), count(*) filter (where status <> 'delivered') \
             from webhook_delivery where tenant_id = $1 and event_id = $2 and endpoint_id = any($3)",
        )
        .bind(tenant)
        .bind(event)
        .bind(&unclaimed)
        .fetch_one(&mut *conn)
        .await?;
        out.delivered = usize::try_from(delivered).unwrap_or(0);
        out.busy = usize::try_from(busy).unwrap_or(0);
    }
    Ok(out)
}

/// The outcome of one HTTP attempt, as the dispatcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The endpoint it went to.
    pub endpoint_id: WebhookEndpointId,
    /// Its number (from the claim).
    pub attempt: i32,
    /// The receiver's status, when it answered.
    pub status_code: Option<i32>,
    /// Why it failed (transport error or non-2xx), `None` on success.
    pub error: Option<String>,
    /// The start of the answer's body, when kept.
    pub response_excerpt: Option<String>,
    /// How long it took.
    pub duration_ms: i32,
    /// A 2xx came back.
    pub delivered: bool,
}

/// Records a batch of attempts of event `event`: one log row each, and the delivery rows updated
/// (`delivered`; `failed` when `final_attempt`, else `pending`), their claims released. An
/// attempt whose endpoint was deleted meanwhile is dropped.
pub async fn record_attempts(
    conn: &mut PgConnection,
    tenant: TenantId,
    event: Uuid,
    outcomes: &[AttemptOutcome],
    final_attempt: bool,
) -> Result<(), DomainError> {
    for o in outcomes {
        let status = if o.delivered {
            DeliveryStatus::Delivered
        } else if final_attempt {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        };
        let updated = sqlx::query(
            "update webhook_delivery set attempts = greatest(attempts, $4), last_status_code = $5, \
             last_error = $6, status = $7, claimed_until = null, updated_at = now(), \
             delivered_at = case when $7 = 'delivered' then now() else delivered_at end \
             where tenant_id = $1 and endpoint_id = $2 and event_id = $3",
        )
        .bind(tenant)
        .bind(o.endpoint_id)
        .bind(event)
        .bind(o.attempt)
        .bind(o.status_code)
        .bind(&o.error)
        .bind(status.as_str())
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "insert into webhook_attempt (tenant_id, endpoint_id, event_id, attempt, status_code, error, \
             response_excerpt, duration_ms) values ($1, $2, $3, $4, $5, $6, $7, $8) \
             on conflict do nothing",
        )
        .bind(tenant)
        .bind(o.endpoint_id)
        .bind(event)
        .bind(o.attempt)
        .bind(o.status_code)
        .bind(&o.error)
        .bind(&o.response_excerpt)
        .bind(o.duration_ms)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently when this test was written:
    /// `python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test", b"1700000000.{\"id\":\"e1\",\"type\":\"order.approved\"}", hashlib.sha256).hexdigest())'`
    const VECTOR: &str = "f4a6bce1f14da768e413651dc84d903262cc459fec715f58695c0dbb50d4c266";
    const BODY: &[u8] = br#"{"id":"e1","type":"order.approved"}"#;

    #[test]
    fn sign_matches_an_independent_hmac() {
        assert_eq!(
            sign("whsec_test", 1_700_000_000, BODY),
            format!("t=1700000000,v1={VECTOR}")
        );
    }

    #[test]
    fn verify_accepts_a_good_signature_and_refuses_the_rest() {
        let header = sign("whsec_test", 1_700_000_000, BODY);
        let now = 1_700_000_100;
        assert_eq!(verify(&header, "whsec_test", BODY, now, 300), Ok(()));
        // The vector itself, written by hand.
        let by_hand = format!("t=1700000000,v1={VECTOR}");
        assert_eq!(verify(&by_hand, "whsec_test", BODY, now, 300), Ok(()));
        assert_eq!(
            verify(&header, "whsec_other", BODY, now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, "whsec_test", b"{}", now, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, "whsec_test", BODY, 1_700_000_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&header, "whsec_test", BODY, 1_699_999_600, 300),
            Err(SignatureError::Stale)
        );
        // Another timestamp with the same mac: the mac covers the timestamp.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(&moved, "whsec_test", BODY, now, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "",
            "t=1700000000",
            "v1=00",
            "t=abc,v1=00",
            "t=1700000000,v1=zz",
            "t=1700000000;v1=00",
            &format!("t=1700000000,v1={}", &VECTOR[..62]),
            &format!("t=-1700000000,v1={VECTOR}"),
        ] {
            assert_eq!(
                verify(bad, "whsec_test", BODY, now, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A second v1 (an old secret during a rotation) and an unknown key are tolerated.
        let two = format!("t=1700000000,v1={},v1={VECTOR},v0=x", "0".repeat(64));
        assert_eq!(verify(&two, "whsec_test", BODY, now, 300), Ok(()));
    }

    #[test]
    fn secrets_are_prefixed_and_random() {
        let a = generate_secret();
        assert!(a.starts_with("whsec_") && a.len() == 6 + 43, "{a}");
        assert_ne!(a, generate_secret());
    }

    fn input(url: &str, types: &[&str]) -> WebhookInput {
        WebhookInput {
            url: url.into(),
            description: None,
            event_types: types.iter().map(|s| (*s).to_owned()).collect(),
            active: None,
        }
    }

    fn codes(e: ValidationErrors) -> Vec<(String, String)> {
        e.0.into_iter().map(|f| (f.field, f.code)).collect()
    }

    #[test]
    fn urls_are_absolute_http_and_public() {
        for ok in [
            "https://hooks.example.com/aries",
            "http://example.com:8080/x?y=1",
            "https://93.184.216.34/in",
        ] {
            assert!(input(ok, &["*"]).parse(false).is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("", "required"),
            ("/relative", "invalid_url"),
            ("ftp://example.com/", "invalid_url"),
            ("mailto:a@example.com", "invalid_url"),
            ("https://user:pw@example.com/", "invalid_url"),
            ("http://127.0.0.1:9000/", "private_address"),
            ("http://10.1.2.3/", "private_address"),
            ("http://192.168.0.1/", "private_address"),
            ("http://169.254.169.254/latest/meta-data", "private_address"),
            ("http://[::1]/", "private_address"),
            ("http://[fd00::1]/", "private_address"),
            ("http://[::ffff:127.0.0.1]/", "private_address"),
            ("http://0.0.0.0/", "private_address"),
        ] {
            let e = input(bad, &["*"]).parse(false).err().map(codes);
            assert_eq!(e, Some(vec![("url".into(), code.into())]), "{bad}");
        }
        assert!(input("http://127.0.0.1:9000/", &["*"]).parse(true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(2030));
        assert_eq!(
            input(&long, &["*"]).parse(true).err().map(codes),
            Some(vec![("url".into(), "too_long".into())])
        );
    }

    #[test]
    fn event_types_have_a_known_shape() {
        let f = input(
            "https://example.com/",
            &["order.approved", "order.*", "*", "order.*"],
        )
        .parse(false)
        .ok();
        assert_eq!(
            f.map(|f| f.event_types),
            Some(vec!["order.approved".into(), "order.*".into(), "*".into()])
        );
        assert_eq!(
            input("https://example.com/", &[])
                .parse(false)
                .err()
                .map(codes),
            Some(vec![("event_types".into(), "required".into())])
        );
        for bad in [
            "order",
            "Order.approved",
            "order.",
            ".x",
            "*.approved",
            "order.approved.x",
            "a b.c",
        ] {
            assert_eq!(
                input("https://example.com/", &["*", bad])
                    .parse(false)
                    .err()
                    .map(codes),
                Some(vec![("event_types[1]".into(), "invalid_format".into())]),
                "{bad}"
            );
        }
    }

    #[test]
    fn patterns_match_exact_aggregate_and_all() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(crate::outbox::any_pattern_matches(
            &p(&["*"]),
            "order.approved"
        ));
        assert!(crate::outbox::any_pattern_matches(
            &p(&["order.approved"]),
            "order.approved"
        ));
        assert!(!crate::outbox::any_pattern_matches(
            &p(&["order.approved"]),
            "order.cancelled"
        ));
        assert!(crate::outbox::any_pattern_matches(
            &p(&["order.*"]),
            "order.cancelled"
        ));
        assert!(!crate::outbox::any_pattern_matches(
            &p(&["order.*"]),
            "order_line.created"
        ));
        assert!(!crate::outbox::any_pattern_matches(
            &p(&["order.*"]),
            "orders.created"
        ));
        assert!(!crate::outbox::any_pattern_matches(
            &p(&["patient.created", "payer.*"]),
            "order.approved"
        ));
    }

    #[test]
    fn public_addresses() {
        for ip in ["8.8.8.8", "93.184.216.34", "2606:4700::1111"] {
            assert!(
                is_public(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))),
                "{ip}"
            );
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(
                !is_public(ip.parse().unwrap_or(IpAddr::from([8, 8, 8, 8]))),
                "{ip}"
            );
        }
    }
}
