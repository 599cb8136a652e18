//! Console sessions, kept in Redis so every instance sees them and a revocation is immediate
//! everywhere. The browser holds a random session id in an `HttpOnly`, `SameSite=Strict` cookie;
//! Redis holds only the id's SHA-256 as the key, so a copy of Redis grants nothing. Sessions expire
//! after `auth.session_idle_secs` without use (each use extends it) and after
//! `auth.session_max_secs` in all.

use aries_actors::links::RedisLink;
use aries_tenants::auth::secrets;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cookie's name.
pub const COOKIE: &str = "aries_session";
/// A Redis call slower than this fails the request (503) rather than hanging it.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    /// Shown in lists and used to revoke (not the cookie's secret).
    pub id: String,
    /// `operator`, or `user` for a tenant user.
    pub kind: String,
    /// For a tenant user's session, the tenant's slug: the session is good on its URLs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The account's id.
    #[schema(value_type = String, format = Uuid)]
    pub subject: uuid::Uuid,
    /// Whether the second factor was presented (or the account has none yet and may only enrol).
    pub mfa: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last use.
    pub last_seen: u64,
    /// Where it was opened from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The browser that opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The session store.
pub struct SessionStore {
    /// Where sessions live.
    redis: RedisLink,
    /// Idle lifetime.
    idle: Duration,
    /// Absolute lifetime.
    max: Duration,
    /// Start of every key (`redis.key_prefix`).
    prefix: String,
}

/// Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable: {0}")]
pub struct StoreUnavailable(String);

impl From<StoreUnavailable> for crate::error::ApiError {
    fn from(e: StoreUnavailable) -> Self {
        tracing::warn!(error = %e, "session store unavailable");
        crate::error::ApiError::new(
            crate::error::ErrorCode::ServiceUnavailable,
            "sessions are unavailable",
        )
        .retry_after(Duration::from_secs(1))
    }
}

/// The session cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site sends it),
/// `Secure` unless configured off. An empty value with age 0 clears it.
pub fn cookie(value: &str, max_age_secs: i64, secure: bool) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(COOKIE, value.to_owned())
        .path("/")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_secs))
        .finish()
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreUnavailable> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StoreUnavailable(e.to_string())),
        Err(_) => Err(StoreUnavailable("timed out".into())),
    }
}

impl SessionStore {
    pub fn new(redis: RedisLink, idle: Duration, max: Duration, prefix: String) -> Self {
        Self {
            redis,
            idle,
            max,
            prefix,
        }
    }

    fn session_key(&self, cookie: &str) -> String {
        format!(
            "{}:session:{}",
            self.prefix,
            hex::encode(secrets::sha256(cookie))
        )
    }

    fn index_key(&self, kind: &str, subject: uuid::Uuid) -> String {
        format!("{}:sessions:{kind}:{subject}", self.prefix)
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, StoreUnavailable> {
        self.redis
            .connection()
            .await
            .ok_or_else(|| StoreUnavailable("not connected".into()))
    }

    /// Opens a session; returns the cookie value (shown only in `Set-Cookie`) and the session.
    pub async fn create(
        &self,
        kind: &str,
        tenant: Option<String>,
        subject: uuid::Uuid,
        mfa: bool,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<(String, Session), StoreUnavailable> {
        let cookie = secrets::generate("");
        let t = now();
        let session = Session {
            id: uuid::Uuid::now_v7().simple().to_string(),
            kind: kind.to_owned(),
            tenant,
            subject,
            mfa,
            created_at: t,
            last_seen: t,
            ip,
            user_agent: user_agent.map(|u| u.chars().take(200).collect()),
        };
        self.save(&cookie, &session).await?;
        let mut conn = self.conn().await?;
        let key = self.session_key(&cookie);
        timed(conn.hset::<_, _, _, ()>(self.index_key(kind, subject), &session.id, key)).await?;
        Ok((cookie, session))
    }

    async fn save(&self, cookie: &str, session: &Session) -> Result<(), StoreUnavailable> {
        let mut conn = self.conn().await?;
        let body = serde_json::to_string(session).map_err(|e| StoreUnavailable(e.to_string()))?;
        timed(conn.set_ex::<_, _, ()>(self.session_key(cookie), body, self.idle.as_secs().max(1)))
            .await
    }

    /// The live session behind a cookie, extending its idle lifetime.
    pub async fn get(&self, cookie: &str) -> Result<Option<Session>, StoreUnavailable> {
        let mut conn = self.conn().await?;
        let raw: Option<String> = timed(conn.get(self.session_key(cookie))).await?;
        let Some(mut session) = raw.and_then(|r| serde_json::from_str::<Session>(&r).ok()) else {
            return Ok(None);
        };
        let t = now();
        if t.saturating_sub(session.created_at) > self.max.as_secs() {
            self.revoke(session.kind.clone().as_str(), session.subject, &session.id)
                .await?;
            return Ok(None);
        }
        session.last_seen = t;
        self.save(cookie, &session).await?;
        Ok(Some(session))
    }

    /// Marks the session as having passed the second factor.
    pub async fn upgrade_mfa(
        &self,
        cookie: &str,
        session: &Session,
    ) -> Result<(), StoreUnavailable> {
        let upgraded = Session {
            mfa: true,
            ..session.clone()
        };
        self.save(cookie, &upgraded).await
    }

    /// The subject's live sessions (dead index entries are cleaned on the way).
    pub async fn list(
        &self,
        kind: &str,
        subject: uuid::Uuid,
    ) -> Result<Vec<Session>, StoreUnavailable> {
        let mut conn = self.conn().await?;
        let index: Vec<(String, String)> =
            timed(conn.hgetall(self.index_key(kind, subject))).await?;
        let mut out = Vec::new();
        for (id, key) in index {
            let raw: Option<String> = timed(conn.get(&key)).await?;
            match raw.and_then(|r| serde_json::from_str::<Session>(&r).ok()) {
                Some(s) => out.push(s),
                None => timed(conn.hdel::<_, _, ()>(self.index_key(kind, subject), &id)).await?,
            }
        }
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    /// Ends one of the subject's sessions; false when it has no such session.
    pub async fn revoke(
        &self,
        kind: &str,
        subject: uuid::Uuid,
        id: &str,
    ) -> Result<bool, StoreUnavailable> {
        let mut conn = self.conn().await?;
        let key: Option<String> = timed(conn.hget(self.index_key(kind, subject), id)).await?;
        let Some(key) = key else { return Ok(false) };
        timed(conn.del::<_, ()>(&key)).await?;
        timed(conn.hdel::<_, _, ()>(self.index_key(kind, subject), id)).await?;
        Ok(true)
    }
}
