//! The audit trail: append-only, hash-chained. Every audited change appends one row in the same
//! transaction as the change. A row's hash is SHA-256 over the previous row's hash and the row's
//! own fields (length-prefixed, so no two different rows hash alike), so changing, removing or
//! inserting a row by hand breaks the chain from that row on, which [`verify`] reports.
//!
//! Two trails share this code: each tenant's, on its shard (`audit_event`), and the operator's,
//! in the catalog (`operator_audit_event`).

use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// Which trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trail {
    /// A tenant's, on its shard (inside a tenant transaction).
    Tenant(TenantId),
    /// The platform operator's, in the catalog.
    Platform,
}

impl Trail {
    fn events(self) -> &'static str {
        match self {
            Trail::Tenant(_) => "audit_event",
            Trail::Platform => "operator_audit_event",
        }
    }
    fn head(self) -> &'static str {
        match self {
            Trail::Tenant(_) => "audit_head",
            Trail::Platform => "operator_audit_head",
        }
    }
    /// The head row's key.
    fn head_key(self) -> Uuid {
        match self {
            Trail::Tenant(t) => t.0,
            Trail::Platform => Uuid::nil(),
        }
    }
    /// The tenant filter of reads (`None`: the whole platform trail).
    fn filter(self) -> Option<Uuid> {
        match self {
            Trail::Tenant(t) => Some(t.0),
            Trail::Platform => None,
        }
    }
}

/// Who acts, from where: the part of an audit event that comes from the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditActor {
    /// `operator`, `cli:<user>`, `system`, `user:<id>`…
    pub actor: String,
    /// The HTTP request id, when there is one.
    pub request_id: Option<String>,
    /// The client's address, when there is one.
    pub source_ip: Option<String>,
}

impl AuditActor {
    /// An event by this actor.
    pub fn event(
        &self,
        action: &str,
        target_type: &str,
        target_id: impl ToString,
        details: serde_json::Value,
        tenant: Option<TenantId>,
    ) -> NewAuditEvent {
        NewAuditEvent {
            actor: self.actor.clone(),
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_string(),
            request_id: self.request_id.clone(),
            source_ip: self.source_ip.clone(),
            details,
            tenant,
        }
    }
}

/// What to record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// Who acted (`user:<id>`, `api_key:<id>`, `client:<id>`, `operator`, `anonymous`).
    pub actor: String,
    /// What happened (`location.created`).
    pub action: String,
    /// The kind of thing acted on (`location`).
    pub target_type: String,
    /// Its id (or name).
    pub target_id: String,
    /// The request that did it.
    pub request_id: Option<String>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// Anything else worth keeping (never secrets).
    pub details: serde_json::Value,
    /// On the platform trail, the tenant acted on.
    pub tenant: Option<TenantId>,
}

/// A recorded event, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Position in the chain (1, 2, 3…).
    pub seq: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// The kind of thing acted on.
    pub target_type: String,
    /// Its id.
    pub target_id: String,
    /// The request that did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// Extra facts.
    pub details: serde_json::Value,
    /// The tenant the event concerns (the platform trail's; a tenant's own trail repeats its id).
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: Uuid,
    /// The previous row's hash, hex.
    #[sqlx(skip)]
    pub prev_hash: String,
    /// This row's hash, hex.
    #[sqlx(skip)]
    pub hash: String,
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The hash of a row given the previous row's hash.
#[allow(clippy::too_many_arguments)]
pub fn chain_hash(
    prev: &[u8],
    seq: i64,
    occurred_at: DateTime<Utc>,
    tenant_id: Uuid,
    actor: &str,
    action: &str,
    target_type: &str,
    target_id: &str,
    request_id: Option<&str>,
    source_ip: Option<&str>,
    details: &serde_json::Value,
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, prev);
    field(&mut h, &seq.to_be_bytes());
    field(&mut h, &occurred_at.timestamp_micros().to_be_bytes());
    field(&mut h, tenant_id.as_bytes());
    for s in [
        actor,
        action,
        target_type,
        target_id,
        request_id.unwrap_or("\u{0}"),
        source_ip.unwrap_or("\u{0}"),
    ] {
        field(&mut h, s.as_bytes());
    }
    // serde_json's maps are ordered by key, so the same value always serialises alike.
    field(&mut h, &serde_json::to_vec(details).unwrap_or_default());
    h.finalize().into()
}

/// Appends `event` to `trail` in the caller's transaction.
pub async fn append(
    conn: &mut PgConnection,
    trail: Trail,
    event: &NewAuditEvent,
) -> Result<i64, DomainError> {
    // Taking the head row serialises appends to this trail until the transaction ends.
    let head_sql = format!(
        "insert into {head} (tenant_id, seq, hash) values ($1, 1, $2) \
         on conflict (tenant_id) do update set seq = {head}.seq + 1 returning seq, hash",
        head = trail.head()
    );
    let zero = [0u8; 32];
    let (seq, prev): (i64, Vec<u8>) = sqlx::query_as(sqlx::AssertSqlSafe(head_sql))
        .bind(trail.head_key())
        .bind(&zero[..])
        .fetch_one(&mut *conn)
        .await?;
    // A fresh head row holds the zero hash, which is also the first row's `prev_hash`.
    let occurred_at = Utc::now().trunc_subsecs(6);
    let tenant_id = event
        .tenant
        .map(|t| t.0)
        .or(trail.filter())
        .unwrap_or_else(Uuid::nil);
    let hash = chain_hash(
        &prev,
        seq,
        occurred_at,
        tenant_id,
        &event.actor,
        &event.action,
        &event.target_type,
        &event.target_id,
        event.request_id.as_deref(),
        event.source_ip.as_deref(),
        &event.details,
    );
    let insert = format!(
        "insert into {} (tenant_id, seq, occurred_at, actor, action, target_type, target_id, request_id, \
         source_ip, details, prev_hash, hash) values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        trail.events()
    );
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(tenant_id)
        .bind(seq)
        .bind(occurred_at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target_type)
        .bind(&event.target_id)
        .bind(&event.request_id)
        .bind(&event.source_ip)
        .bind(&event.details)
        .bind(&prev)
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
    let update = format!("update {} set hash = $2 where tenant_id = $1", trail.head());
    sqlx::query(sqlx::AssertSqlSafe(update))
        .bind(trail.head_key())
        .bind(&hash[..])
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// Filters of the audit list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action.
    pub action: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact target type.
    pub target_type: Option<String>,
    /// Exact target id.
    pub target_id: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only rows after this sequence number (the cursor).
    pub after_seq: Option<i64>,
    /// On the platform trail: only events about this tenant.
    pub tenant: Option<TenantId>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    event: AuditEvent,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

const COLUMNS: &str = "seq, occurred_at, actor, action, target_type, target_id, request_id, source_ip, details, \
                       tenant_id, prev_hash, hash";

/// A page of events in sequence order (`limit + 1` rows).
pub async fn list(
    conn: &mut PgConnection,
    trail: Trail,
    filter: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditEvent>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from {} where ($1::uuid is null or tenant_id = $1) \
         and ($2::text is null or action = $2) and ($3::text is null or actor = $3) \
         and ($4::text is null or target_type = $4) and ($5::text is null or target_id = $5) \
         and ($6::timestamptz is null or occurred_at >= $6) and ($7::timestamptz is null or occurred_at < $7) \
         and ($8::bigint is null or seq > $8) order by seq limit $9",
        trail.events()
    );
    let tenant = trail.filter().or(filter.tenant.map(|t| t.0));
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(&filter.action)
        .bind(&filter.actor)
        .bind(&filter.target_type)
        .bind(&filter.target_id)
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.after_seq)
        .bind(i64::from(limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditEvent {
            prev_hash: hex::encode(&r.prev_hash),
            hash: hex::encode(&r.hash),
            ..r.event
        })
        .collect())
}

/// The result of checking a trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// True when every row's hash matches its content and its predecessor.
    pub intact: bool,
    /// Rows checked.
    pub checked: i64,
    /// The first row whose hash or link is wrong (the altered, inserted or next-after-removed row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
}

/// Recomputes the whole chain.
pub async fn verify(conn: &mut PgConnection, trail: Trail) -> Result<Verification, DomainError> {
    let sql = format!(
        "select {COLUMNS} from {} where ($1::uuid is null or tenant_id = $1) order by seq",
        trail.events()
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(trail.filter())
        .fetch_all(conn)
        .await?;
    let mut prev = vec![0u8; 32];
    for (expected_seq, r) in (1..).zip(rows.iter()) {
        let e = &r.event;
        let recomputed = chain_hash(
            &prev,
            e.seq,
            e.occurred_at,
            e.tenant_id,
            &e.actor,
            &e.action,
            &e.target_type,
            &e.target_id,
            e.request_id.as_deref(),
            e.source_ip.as_deref(),
            &e.details,
        );
        if e.seq != expected_seq || r.prev_hash != prev || r.hash != recomputed {
            return Ok(Verification {
                intact: false,
                checked: expected_seq,
                first_broken_seq: Some(e.seq),
            });
        }
        prev = r.hash.clone();
    }
    Ok(Verification {
        intact: true,
        checked: rows.len() as i64,
        first_broken_seq: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_hash() {
        let t = Utc::now().trunc_subsecs(6);
        let d = serde_json::json!({"b": 1, "a": "x"});
        let base = chain_hash(
            &[0; 32],
            1,
            t,
            Uuid::nil(),
            "user:1",
            "x.created",
            "x",
            "1",
            Some("r"),
            None,
            &d,
        );
        assert_ne!(
            base,
            chain_hash(
                &[1; 32],
                1,
                t,
                Uuid::nil(),
                "user:1",
                "x.created",
                "x",
                "1",
                Some("r"),
                None,
                &d
            )
        );
        assert_ne!(
            base,
            chain_hash(
                &[0; 32],
                2,
                t,
                Uuid::nil(),
                "user:1",
                "x.created",
                "x",
                "1",
                Some("r"),
                None,
                &d
            )
        );
        assert_ne!(
            base,
            chain_hash(
                &[0; 32],
                1,
                t,
                Uuid::nil(),
                "user:2",
                "x.created",
                "x",
                "1",
                Some("r"),
                None,
                &d
            )
        );
        assert_ne!(
            base,
            chain_hash(
                &[0; 32],
                1,
                t,
                Uuid::nil(),
                "user:1",
                "x.created",
                "x",
                "1",
                None,
                None,
                &d
            )
        );
        // Moving text between fields is not the same row.
        assert_ne!(
            chain_hash(
                &[0; 32],
                1,
                t,
                Uuid::nil(),
                "ab",
                "c",
                "x",
                "1",
                None,
                None,
                &d
            ),
            chain_hash(
                &[0; 32],
                1,
                t,
                Uuid::nil(),
                "a",
                "bc",
                "x",
                "1",
                None,
                None,
                &d
            )
        );
        // Key order in details does not matter.
        let same = serde_json::json!({"a": "x", "b": 1});
        assert_eq!(
            base,
            chain_hash(
                &[0; 32],
                1,
                t,
                Uuid::nil(),
                "user:1",
                "x.created",
                "x",
                "1",
                Some("r"),
                None,
                &same
            )
        );
    }
}
