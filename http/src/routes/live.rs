//! Live dashboards: `GET /v1/tenants/{tenant}/dashboard` (the snapshot as JSON) and the WebSocket
//! `GET /v1/tenants/{tenant}/live` (a snapshot, then every event in sequence order). Permission
//! `reports:view` for both.
//!
//! ## The socket's protocol
//! - Credentials never in the URL: the console session cookie, `Authorization: Bearer <token|api
//!   key>`, or `Sec-WebSocket-Protocol: aries.v1, aries.bearer.<token>` (the server answers
//!   `aries.v1`). Refused before the upgrade with problem+json 401/403/404.
//! - Server → client JSON text frames:
//!   `{"type":"snapshot","seq":S,"kpis":{…},"recent":[event…]}` first;
//!   `{"type":"event","seq":n,"event":{"id","type","occurred_at","summary"},"kpis":{…}}` for each
//!   event after S, in order, no gaps, each once, sent as soon as it arrives (`kpis` only on the
//!   last event a resume replays); `{"type":"kpis","seq":S,"kpis":{…}}` when the KPIs changed
//!   after events already sent (read at most every `[live] kpi_interval_ms`, after the events
//!   went out, so no event waits for them);
//!   `{"type":"heartbeat","seq":S}` every `[live] heartbeat_ms` (plus pings; a client silent for
//!   `client_timeout_ms` is closed). A client too slow for its bounded queue gets a fresh
//!   snapshot instead of the dropped queue.
//! - `?after=N` resumes: every event with seq > N from the outbox, then live; more than
//!   `[live] resume_max` behind (or ahead of the tenant) → a snapshot.

use crate::auth::caller::{TenantCaller, authenticate, bearer, request_meta};
use crate::error::{ApiError, ErrorCode};
use crate::extract::query_error;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, MessageStream, Session};
use aries_actors::auth::Call;
use aries_actors::live::{Push, Subscription, event_frame};
use aries_actors::ops::dashboard::{Dashboard, DashboardKpis, LiveOutbox};
use aries_tenants::{TenantId, TenantSlug};
use bytestring::ByteString;
use serde_json::json;
use std::time::Duration;

/// The subprotocol the server speaks.
pub const PROTOCOL: &str = "aries.v1";
/// Prefix of the subprotocol that carries a bearer token (browsers cannot set headers).
const BEARER_PROTOCOL: &str = "aries.bearer.";

/// The tenant's id (cached with its plan); an unknown tenant is 404.
async fn tenant_id(state: &AppState, slug: &TenantSlug) -> Result<TenantId, ApiError> {
    state
        .plan_of(slug)
        .await
        .map(|(id, _)| id)
        .map_err(|e| match e {
            aries_shards::CatalogError::TenantNotFound(_) => ApiError::not_found("resource"),
            other => ApiError::from(other),
        })
}

/// The snapshot as the caller may read it, with the day's Redis counters.
async fn snapshot(
    state: &AppState,
    slug: &TenantSlug,
    tenant: TenantId,
    call: Call,
) -> Result<Dashboard, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let mut d = state
        .directory
        .exec_as(slug, call, DashboardKpis { today })
        .await?;
    d.kpis.counters = state.live.counters(tenant).await;
    Ok(d)
}

/// The tenant's live dashboard: its KPIs, the event sequence they were read at, the latest
/// events. The same snapshot opens the WebSocket `GET /v1/tenants/{tenant}/live` (see the module
/// documentation and README: credentials by cookie, bearer header or the `aries.bearer.<token>`
/// subprotocol, `?after=<seq>` to resume; then `event` and `heartbeat` messages).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/dashboard", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = Dashboard), (status = 401, description = "unauthenticated"),
              (status = 403, description = "forbidden: reports:view"), (status = 404, description = "not_found")))]
pub async fn dashboard(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant_id(&state, &caller.slug).await?;
    let d = snapshot(&state, &caller.slug, tenant, caller.call()).await?;
    Ok(HttpResponse::Ok().json(d))
}

/// The token of `Sec-WebSocket-Protocol: aries.v1, aries.bearer.<token>`, if offered.
fn protocol_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL).map(str::to_owned))
        .filter(|t| !t.is_empty())
}

/// `after=<seq>` (any other query parameter is ignored: no credential is read from the URL).
fn after_param(query: &str) -> Result<Option<i64>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    match pairs.into_iter().find(|(k, _)| k == "after") {
        None => Ok(None),
        Some((_, v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| query_error("after", "invalid_integer", "a sequence number ≥ 0")),
    }
}

fn snapshot_message(d: &Dashboard) -> String {
    json!({"type": "snapshot", "seq": d.seq, "kpis": d.kpis, "recent": d.recent}).to_string()
}

/// The live socket (see the module documentation).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/live", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"),
           ("after" = Option<i64>, Query, description = "resume after this event sequence")),
    responses((status = 101, description = "WebSocket (subprotocol aries.v1): snapshot, event and heartbeat messages"),
              (status = 401, description = "unauthenticated"),
              (status = 403, description = "forbidden: reports:view"), (status = 404, description = "not_found")))]
pub async fn live(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let token = bearer(&req).or_else(|| protocol_token(&req));
    let cookie = crate::auth::operator::session_cookie(&req);
    let caller = authenticate(
        &state,
        req.match_info().get("tenant").map(str::to_owned),
        token,
        cookie,
        request_meta(&req),
    )
    .await?;
    let after = after_param(req.query_string())?;
    let tenant = tenant_id(&state, &caller.slug).await?;
    let settings = state.live.settings().clone();
    // Subscribe first: whatever commits after the snapshot's read is queued.
    let sub = state.live.subscribe(tenant, &caller.slug);
    let mut first = Vec::new();
    let mut last = None;
    if let Some(n) = after {
        let page = state
            .directory
            .exec_as(
                &caller.slug,
                caller.call(),
                LiveOutbox {
                    after: n,
                    limit: settings.resume_max + 1,
                },
            )
            .await
            .map_err(ApiError::from)?;
        let count = i64::try_from(page.events.len()).unwrap_or(i64::MAX);
        if n <= page.latest && count <= settings.resume_max {
            let kpis = if page.events.is_empty() {
                None
            } else {
                Some(
                    snapshot(&state, &caller.slug, tenant, caller.call())
                        .await?
                        .kpis,
                )
            };
            let k = page.events.len();
            // A frame that does not serialize (not expected) makes it a snapshot instead.
            let frames: Result<Vec<ByteString>, _> = page
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| event_frame(e, kpis.as_ref().filter(|_| i + 1 == k)))
                .collect();
            if let Ok(frames) = frames {
                first = frames;
                last = Some(page.events.last().map_or(n, |e| e.seq));
            }
        }
    }
    let last = match last {
        Some(l) => l,
        None => {
            let d = snapshot(&state, &caller.slug, tenant, caller.call()).await?;
            first.push(snapshot_message(&d).into());
            d.seq
        }
    };
    let (res, session, stream) =
        actix_ws::handle_with_protocols(&req, body, &[PROTOCOL]).map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("this route needs a WebSocket upgrade ({e})"),
            )
        })?;
    let socket = Socket {
        state: state.into_inner(),
        slug: caller.slug.clone(),
        tenant,
        call: caller.call(),
        settings,
        last,
    };
    actix_web::rt::spawn(socket.run(session, stream, sub, first));
    Ok(res)
}

/// One open socket's task.
struct Socket {
    /// For the snapshot and outbox reads.
    state: std::sync::Arc<AppState>,
    /// The tenant.
    slug: TenantSlug,
    /// The tenant's id (the Redis counters' key).
    tenant: TenantId,
    /// The caller, re-checked by each read (a revoked key closes the socket at its next read).
    call: Call,
    /// Intervals and bounds.
    settings: aries_actors::live::LiveSettings,
    /// The last sequence sent (a snapshot's or an event's).
    last: i64,
}

/// Why the socket ends.
struct Gone;

impl Socket {
    async fn send(session: &mut Session, text: impl Into<ByteString>) -> Result<(), Gone> {
        session.text(text).await.map_err(|_| Gone)?;
        metrics::counter!("aries_live_messages_sent_total").increment(1);
        Ok(())
    }

    async fn run(
        mut self,
        mut session: Session,
        mut stream: MessageStream,
        mut sub: Subscription,
        first: Vec<ByteString>,
    ) {
        metrics::gauge!("aries_live_sockets_open").increment(1.0);
        let _ = self.serve(&mut session, &mut stream, &mut sub, first).await;
        let _ = session.close(None).await;
        metrics::gauge!("aries_live_sockets_open").decrement(1.0);
    }

    async fn serve(
        &mut self,
        session: &mut Session,
        stream: &mut MessageStream,
        sub: &mut Subscription,
        first: Vec<ByteString>,
    ) -> Result<(), Gone> {
        for m in first {
            Self::send(session, m).await?;
        }
        let beat = Duration::from_millis(self.settings.heartbeat_ms.max(10));
        let timeout = Duration::from_millis(self.settings.client_timeout_ms.max(10));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let mut heard = tokio::time::Instant::now();
        let signal = sub.resync_signal();
        loop {
            if sub.take_resync() {
                self.resync(session).await?;
                continue;
            }
            tokio::select! {
                biased;
                () = signal.requested() => {}
                msg = stream.recv() => {
                    heard = tokio::time::Instant::now();
                    match msg {
                        Some(Ok(Message::Ping(b))) => session.pong(&b).await.map_err(|_| Gone)?,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                        Some(Ok(_)) => {}
                    }
                }
                push = sub.recv() => match push {
                    Some(p) => self.event(session, p).await?,
                    None => return Ok(()),
                },
                _ = heartbeat.tick() => {
                    if heard.elapsed() > timeout {
                        return Ok(());
                    }
                    Self::send(session, json!({"type": "heartbeat", "seq": self.last}).to_string())
                        .await?;
                    session.ping(b"").await.map_err(|_| Gone)?;
                }
            }
        }
    }

    /// A fresh snapshot (the queue was dropped, or events may have been lost).
    async fn resync(&mut self, session: &mut Session) -> Result<(), Gone> {
        let d = snapshot(&self.state, &self.slug, self.tenant, self.call.clone())
            .await
            .map_err(|_| Gone)?;
        metrics::counter!("aries_live_snapshots_resent_total").increment(1);
        Self::send(session, snapshot_message(&d)).await?;
        self.last = d.seq;
        Ok(())
    }

    /// Sends an event after filling any gap before it (skips what was sent already), or a KPI
    /// update.
    async fn event(&mut self, session: &mut Session, p: Push) -> Result<(), Gone> {
        let (event, frame) = match p {
            Push::Event { event, frame, .. } => (event, frame),
            Push::Kpis { seq, kpis } => {
                let m = json!({"type": "kpis", "seq": seq, "kpis": kpis.as_ref()});
                return Self::send(session, m.to_string()).await;
            }
        };
        let seq = event.seq;
        if seq <= self.last {
            return Ok(());
        }
        if seq > self.last + 1 {
            let page = self
                .state
                .directory
                .exec_as(
                    &self.slug,
                    self.call.clone(),
                    LiveOutbox {
                        after: self.last,
                        limit: (seq - self.last - 1).min(self.settings.resume_max + 1),
                    },
                )
                .await
                .map_err(|_| Gone)?;
            let missing = seq - self.last - 1;
            let got = i64::try_from(page.events.len()).unwrap_or(0);
            if missing > self.settings.resume_max || got < missing {
                return self.resync(session).await;
            }
            for e in page.events.iter().filter(|e| e.seq < seq) {
                let Ok(frame) = event_frame(e, None) else {
                    return self.resync(session).await;
                };
                Self::send(session, frame).await?;
                self.last = e.seq;
            }
        }
        Self::send(session, frame).await?;
        self.last = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aries_actors::ops::dashboard::LiveEvent;

    #[test]
    fn after_is_the_only_query_parameter_read() {
        assert_eq!(after_param("").ok(), Some(None));
        assert_eq!(after_param("after=12&token=x").ok(), Some(Some(12)));
        assert!(after_param("after=-1").is_err());
        assert!(after_param("after=x").is_err());
    }

    #[test]
    fn an_event_message_carries_its_sequence_beside_the_event() -> Result<(), serde_json::Error> {
        let e = LiveEvent {
            id: uuid::Uuid::nil(),
            event_type: "order.created".into(),
            occurred_at: chrono::Utc::now(),
            summary: "order.created O1".into(),
            seq: 7,
        };
        let m: serde_json::Value = serde_json::from_str(&event_frame(&e, None)?)?;
        assert_eq!(m["type"], "event");
        assert_eq!(m["seq"], 7);
        assert_eq!(m["event"]["type"], "order.created");
        assert_eq!(m["event"].get("seq"), None);
        assert_eq!(m.get("kpis"), None);
        let kpis = aries_actors::ops::dashboard::Kpis {
            orders_today: 3,
            ..Default::default()
        };
        let m: serde_json::Value = serde_json::from_str(&event_frame(&e, Some(&kpis))?)?;
        assert_eq!(m["kpis"]["orders_today"], 3);
        Ok(())
    }
}
