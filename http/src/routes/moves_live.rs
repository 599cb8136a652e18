//! Live progress of tenant moves for operators: the WebSocket `GET /v1/platform/live`
//! (docs/MOVES.md, "Live progress").
//!
//! ## The socket's protocol
//! - Credentials as on every `/v1/platform` route: `Authorization: Bearer <operator token>` or the
//!   console's operator session cookie (second factor passed); any operator role. Refused before
//!   the upgrade with problem+json (401 `unauthenticated`, 403 `mfa_required`). The subprotocol
//!   `aries.v1` is answered when offered.
//! - Server → client JSON text frames:
//!   `{"type":"snapshot","moves":[MoveView…]}` first (every unfinished move and the
//!   [`RECENT_FINISHED`] most recent finished ones, newest first);
//!   `{"type":"move","move":MoveView}` whenever a move changes (its `updated_at`, state or
//!   counters), each version once, never an older one after a newer;
//!   `{"type":"heartbeat"}` every `[live] heartbeat_ms` (plus pings; a client silent for
//!   `client_timeout_ms` is closed). A client that falls more than `[live] queue_bound` changes
//!   behind gets a fresh snapshot instead of the changes it missed.
//!
//! ## Where the changes come from
//! - [`aries_actors::moves::TenantMoves::subscribe`]: every change of the moves this instance
//!   runs, at once.
//! - The catalog, every [`POLL`]: the moves whose `updated_at` is recent (with an overlap of
//!   [`OVERLAP`] for transactions that committed late), which covers moves run by other
//!   instances. Both feed the same de-duplication: a version is sent only when it is newer than
//!   the one the client has.

use crate::error::{ApiError, ErrorCode};
use crate::extract::OperatorAuth;
use crate::routes::moves::MoveView;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, MessageStream, Session};
use aries_actors::live::LiveSettings;
use aries_actors::moves::{MovesError, TenantMoves};
use aries_shards::moves::{MoveRecord, MoveState};
use aries_shards::operators::OperatorRole;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;

/// The subprotocol the server speaks (the same as the tenants' live socket).
pub const PROTOCOL: &str = crate::routes::live::PROTOCOL;
/// Finished moves in a snapshot, besides every unfinished one.
pub const RECENT_FINISHED: u32 = 20;
/// Unfinished moves in a snapshot at most (a tenant has one at a time, so this is plenty).
const MAX_UNFINISHED: u32 = 500;
/// How often the catalog is asked for moves changed on other instances.
pub const POLL: Duration = Duration::from_millis(500);
/// Each poll looks this far back before the previous one (a change's `updated_at` is its
/// transaction's start, which can commit a little later).
pub const OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// Versions remembered per socket before the finished moves are forgotten.
const REMEMBERED: usize = 2_000;

/// Every unfinished move, then the most recent finished ones; newest first.
async fn snapshot(moves: &TenantMoves) -> Result<Vec<MoveRecord>, MovesError> {
    let records = moves.records();
    let mut unfinished = records.list(None, true, None, MAX_UNFINISHED).await?;
    unfinished.truncate(MAX_UNFINISHED as usize);
    // Among the newest `RECENT_FINISHED + unfinished` moves at least `RECENT_FINISHED` are
    // finished, when that many exist.
    let count = u32::try_from(unfinished.len()).unwrap_or(MAX_UNFINISHED);
    let finished = records
        .list(None, false, None, RECENT_FINISHED + count)
        .await?
        .into_iter()
        .filter(|m| m.state.is_finished())
        .take(RECENT_FINISHED as usize);
    let mut all: Vec<MoveRecord> = unfinished.into_iter().chain(finished).collect();
    all.sort_by_key(|m| std::cmp::Reverse(m.id));
    Ok(all)
}

fn snapshot_message(moves: &[MoveRecord]) -> String {
    let views: Vec<MoveView> = moves.iter().cloned().map(MoveView::from).collect();
    json!({"type": "snapshot", "moves": views}).to_string()
}

fn move_message(m: &MoveRecord) -> String {
    json!({"type": "move", "move": MoveView::from(m.clone())}).to_string()
}

/// The version of a move a client was sent last.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    /// When the catalog recorded it.
    updated_at: DateTime<Utc>,
    /// Its state then (a same-instant version may only move it forward).
    state: MoveState,
    /// Everything else the client saw (counters, error, runner…).
    record: MoveRecord,
}

/// What each client was sent, per move: decides whether a version is news.
#[derive(Debug, Default)]
struct Versions {
    /// By move.
    sent: HashMap<Uuid, Sent>,
}

impl Versions {
    /// Whether `m` should be sent (newer than, or at the same instant different from and not
    /// behind, what the client has); remembers it if so.
    fn offer(&mut self, m: &MoveRecord) -> bool {
        let news = match self.sent.get(&m.id) {
            None => true,
            Some(prev) => {
                m.updated_at > prev.updated_at
                    || (m.updated_at == prev.updated_at
                        && m.state >= prev.state
                        && *m != prev.record)
            }
        };
        if news {
            if self.sent.len() >= REMEMBERED {
                self.sent.retain(|_, s| !s.state.is_finished());
            }
            self.sent.insert(
                m.id,
                Sent {
                    updated_at: m.updated_at,
                    state: m.state,
                    record: m.clone(),
                },
            );
        }
        news
    }

    /// Forgets everything but what a fresh snapshot carries.
    fn reset(&mut self, snapshot: &[MoveRecord]) {
        self.sent.clear();
        for m in snapshot {
            self.offer(m);
        }
    }
}

/// The operators' live socket for tenant moves (see the module documentation and docs/MOVES.md):
/// a snapshot, then every change of a move, whichever instance runs it.
#[utoipa::path(get, path = "/v1/platform/live", tag = "platform", security(("bearer" = [])),
    responses((status = 101, description = "WebSocket (subprotocol aries.v1): `snapshot` `{moves: [MoveView]}`, then `move` `{move: MoveView}` and `heartbeat` messages"),
              (status = 400, description = "bad_request: not a WebSocket upgrade"),
              (status = 401, description = "unauthenticated"), (status = 403, description = "mfa_required")))]
pub async fn live(
    op: OperatorAuth,
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let moves = state.moves.clone();
    // Subscribe and read the catalog's clock first: whatever changes after is seen.
    let local = moves.subscribe();
    let (since, _) = moves.changed_since(None).await?;
    let first = snapshot(&moves).await?;
    let (res, session, stream) =
        actix_ws::handle_with_protocols(&req, body, &[PROTOCOL]).map_err(|e| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("this route needs a WebSocket upgrade ({e})"),
            )
        })?;
    let socket = Socket {
        moves,
        settings: state.live.settings().clone(),
        since: since - OVERLAP,
        versions: Versions::default(),
    };
    actix_web::rt::spawn(socket.run(session, stream, local, first));
    Ok(res)
}

/// The bounded queue: when more than `bound` local changes wait for a socket, they are dropped
/// (the receiver moves to the newest end) and `true` says the client is owed a snapshot instead.
fn drop_backlog_over(local: &mut broadcast::Receiver<MoveRecord>, bound: usize) -> bool {
    if local.len() > bound.max(1) {
        *local = local.resubscribe();
        true
    } else {
        false
    }
}

/// One open socket's task.
struct Socket {
    /// The snapshot, the catalog polls.
    moves: TenantMoves,
    /// Heartbeat, client timeout, queue bound.
    settings: LiveSettings,
    /// The next poll asks for changes from this instant (catalog clock) on.
    since: DateTime<Utc>,
    /// What the client has.
    versions: Versions,
}

/// Why the socket ends.
struct Gone;

impl Socket {
    async fn send(session: &mut Session, text: String) -> Result<(), Gone> {
        session.text(text).await.map_err(|_| Gone)?;
        metrics::counter!("aries_moves_live_messages_sent_total").increment(1);
        Ok(())
    }

    async fn run(
        mut self,
        mut session: Session,
        mut stream: MessageStream,
        mut local: broadcast::Receiver<MoveRecord>,
        first: Vec<MoveRecord>,
    ) {
        metrics::gauge!("aries_moves_live_sockets_open").increment(1.0);
        let _ = self
            .serve(&mut session, &mut stream, &mut local, first)
            .await;
        let _ = session.close(None).await;
        metrics::gauge!("aries_moves_live_sockets_open").decrement(1.0);
    }

    async fn serve(
        &mut self,
        session: &mut Session,
        stream: &mut MessageStream,
        local: &mut broadcast::Receiver<MoveRecord>,
        first: Vec<MoveRecord>,
    ) -> Result<(), Gone> {
        self.versions.reset(&first);
        Self::send(session, snapshot_message(&first)).await?;
        let beat = Duration::from_millis(self.settings.heartbeat_ms.max(10));
        let timeout = Duration::from_millis(self.settings.client_timeout_ms.max(10));
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        loop {
            if drop_backlog_over(local, self.settings.queue_bound) {
                self.resync(session).await?;
                continue;
            }
            tokio::select! {
                biased;
                msg = stream.recv() => {
                    heard = tokio::time::Instant::now();
                    match msg {
                        Some(Ok(Message::Ping(b))) => session.pong(&b).await.map_err(|_| Gone)?,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                        Some(Ok(_)) => {}
                    }
                }
                change = local.recv() => match change {
                    Ok(m) => self.offer(session, &m).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.resync(session).await?,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = poll.tick() => self.poll(session, local).await?,
                _ = heartbeat.tick() => {
                    if heard.elapsed() > timeout {
                        return Ok(());
                    }
                    Self::send(session, json!({"type": "heartbeat"}).to_string()).await?;
                    session.ping(b"").await.map_err(|_| Gone)?;
                }
            }
        }
    }

    /// Sends `m` if the client does not have it (or a newer version).
    async fn offer(&mut self, session: &mut Session, m: &MoveRecord) -> Result<(), Gone> {
        if self.versions.offer(m) {
            Self::send(session, move_message(m)).await?;
        }
        Ok(())
    }

    /// The moves changed in the catalog since the last poll (other instances' runners). Local
    /// changes queued meanwhile go first, so a poll never overtakes them.
    async fn poll(
        &mut self,
        session: &mut Session,
        local: &mut broadcast::Receiver<MoveRecord>,
    ) -> Result<(), Gone> {
        let (now, changed) = match self.moves.changed_since(Some(self.since)).await {
            Ok(c) => c,
            Err(e) => {
                // The catalog is not answering: the next poll looks back further.
                tracing::debug!(error = %e, "moves live poll failed");
                return Ok(());
            }
        };
        loop {
            match local.try_recv() {
                Ok(m) => self.offer(session, &m).await?,
                Err(TryRecvError::Lagged(_)) => return self.resync(session).await,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        for m in &changed {
            self.offer(session, m).await?;
        }
        self.since = now - OVERLAP;
        Ok(())
    }

    /// A fresh snapshot (the client fell behind).
    async fn resync(&mut self, session: &mut Session) -> Result<(), Gone> {
        let moves = match snapshot(&self.moves).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "moves live snapshot failed; closing the socket");
                return Err(Gone);
            }
        };
        metrics::counter!("aries_moves_live_snapshots_resent_total").increment(1);
        self.versions.reset(&moves);
        Self::send(session, snapshot_message(&moves)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aries_tenants::ids::{ShardId, TenantId};

    fn record(state: MoveState, at: DateTime<Utc>, copied: i64) -> MoveRecord {
        MoveRecord {
            id: Uuid::nil(),
            tenant_id: TenantId(Uuid::nil()),
            tenant: "acme".into(),
            from_shard: ShardId(Uuid::nil()),
            from_shard_name: "shard-0".into(),
            to_shard: ShardId(Uuid::max()),
            to_shard_name: "shard-1".into(),
            state,
            from_epoch: 1,
            rows_total: 100,
            rows_copied: copied,
            catch_up_rounds: 0,
            changes_applied: 0,
            verification: None,
            pause_ms: None,
            error: None,
            requested_by: "operator".into(),
            runner: None,
            fence_token: 1,
            created_at: at,
            updated_at: at,
            frozen_at: None,
            flipped_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_version_is_sent_once_and_never_after_a_newer_one() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::TimeDelta::milliseconds(250);
        let mut v = Versions::default();
        assert!(v.offer(&record(MoveState::Copying, t0, 10)));
        assert!(!v.offer(&record(MoveState::Copying, t0, 10)), "a duplicate");
        assert!(v.offer(&record(MoveState::Copying, t1, 20)));
        assert!(
            !v.offer(&record(MoveState::Copying, t0, 10)),
            "an older one"
        );
        assert!(
            v.offer(&record(MoveState::Copying, t1, 30)),
            "same instant, counters changed"
        );
        assert!(v.offer(&record(MoveState::CatchingUp, t1, 30)));
        assert!(
            !v.offer(&record(MoveState::Copying, t1, 40)),
            "same instant, state behind"
        );
    }

    #[test]
    fn a_backlog_over_its_bound_is_dropped_for_a_snapshot() {
        let (tx, mut rx) = broadcast::channel(64);
        for i in 0..5 {
            let _ = tx.send(record(MoveState::Copying, Utc::now(), i));
        }
        assert!(!drop_backlog_over(&mut rx, 5), "at the bound: kept");
        let _ = tx.send(record(MoveState::Copying, Utc::now(), 5));
        assert!(drop_backlog_over(&mut rx, 5), "over it: dropped");
        assert_eq!(rx.len(), 0);
        let _ = tx.send(record(MoveState::CatchingUp, Utc::now(), 6));
        assert_eq!(
            rx.try_recv().map(|m| m.state).ok(),
            Some(MoveState::CatchingUp)
        );
    }

    #[test]
    fn a_snapshot_message_lists_views() {
        let m: serde_json::Value = serde_json::from_str(&snapshot_message(&[record(
            MoveState::Done,
            Utc::now(),
            100,
        )]))
        .unwrap_or_default();
        assert_eq!(m["type"], "snapshot");
        assert_eq!(m["moves"][0]["state"], "done");
        assert_eq!(m["moves"][0]["from_shard"], "shard-0");
        assert_eq!(m["moves"][0].get("fence_token"), None);
        let m: serde_json::Value =
            serde_json::from_str(&move_message(&record(MoveState::Copying, Utc::now(), 5)))
                .unwrap_or_default();
        assert_eq!(m["type"], "move");
        assert_eq!(m["move"]["rows_copied"], 5);
    }
}
