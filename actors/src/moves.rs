//! Tenant moves as this instance runs them (the steps are in `aries_shards::moves`).
//!
//! - **One runner per move, across instances**: a runner holds the Redis lease `move:<tenant id>`
//!   for the whole run (renewed in the background) and stamps its fencing token on the move in
//!   the catalog; every change it records is refused once a runner with a higher token claimed
//!   the move. The tenant's data is fenced by Postgres itself (row locks and the placement epoch).
//! - **Start** records the move (`pending`) and runs it in a task on this instance; **resume**
//!   takes over a move whose runner is gone (its lease expired) and continues from the recorded
//!   state; **cancel** rolls back a move that has not flipped (stopping this instance's runner
//!   first, if it has one).
//! - **Orphans**: every instance looks for unfinished moves whose lease is free (their runner
//!   died) every `moves.resume_orphans_ms` and resumes them itself, so a crash during a freeze
//!   holds the tenant's writes for about a lease's length, not until someone notices.
//! - **Progress**: every recorded change is sent to [`TenantMoves::subscribe`]rs (the operators'
//!   live socket; [`TenantMoves::changed_since`] is how it sees the other instances' runners);
//!   after the flip this instance's actor for the tenant reloads at once (other
//!   instances learn it from the source shard's fence on their next request).

use crate::directory::Directory;
use crate::locks::{Lease, LockError, Locks};
use aries_shards::moves::engine::{self, MoveContext, MoveTuning};
use aries_shards::moves::record::{MoveCreateError, Moves};
use aries_shards::moves::{MoveError, MoveRecord, MoveState};
use aries_shards::{CatalogError, ShardStatus};
use aries_tenants::TenantSlug;
use aries_tenants::audit::AuditActor;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Why a move request was refused.
#[derive(Debug, thiserror::Error)]
pub enum MovesError {
    #[error("no tenant {0}")]
    TenantNotFound(String),
    #[error("no shard {0}")]
    ShardNotFound(String),
    #[error("no move {0}")]
    MoveNotFound(Uuid),
    /// The request makes no sense for this move or tenant (same shard, target not active,
    /// already flipped); the string says which.
    #[error("{0}")]
    NotAllowed(String),
    /// The tenant has an unfinished move, or a runner is working on this one.
    #[error("{0}")]
    InProgress(String),
    /// Redis (the leases) is not answering.
    #[error("cannot take the move's lease: {0}")]
    LeaseUnavailable(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A runner on this instance.
struct Running {
    /// Set by a cancel: the runner stops between steps.
    stop: Arc<AtomicBool>,
    /// Ends when the runner has released the lease.
    done: tokio::sync::watch::Receiver<bool>,
}

/// The instance's side of tenant moves. Cheap to clone.
#[derive(Clone)]
pub struct TenantMoves {
    /// The catalog and shards (placements, shard DSNs) and the actors to reload after a flip.
    directory: Directory,
    /// The catalog's `tenant_move` table.
    moves: Moves,
    /// Where runners take their leases.
    locks: Locks,
    /// Copied into every run's context.
    tuning: MoveTuning,
    /// A runner's lease lasts this long without renewal (renewed every third of it).
    lease_ttl: Duration,
    /// This instance's name, recorded as the runner.
    instance: String,
    /// Live progress for subscribers (the operators' socket).
    progress: broadcast::Sender<MoveRecord>,
    /// Runners on this instance, by move.
    running: Arc<DashMap<Uuid, Running>>,
}

impl TenantMoves {
    pub fn new(
        directory: Directory,
        locks: Locks,
        tuning: MoveTuning,
        lease_ttl: Duration,
        instance: String,
    ) -> Self {
        let moves = Moves::new(directory.catalog().pool().clone());
        let (progress, _) = broadcast::channel(1024);
        Self {
            directory,
            moves,
            locks,
            tuning,
            lease_ttl,
            instance,
            progress,
            running: Arc::new(DashMap::new()),
        }
    }

    /// Every recorded change of every move this instance runs.
    pub fn subscribe(&self) -> broadcast::Receiver<MoveRecord> {
        self.progress.subscribe()
    }

    pub fn records(&self) -> &Moves {
        &self.moves
    }

    /// The catalog's clock now, and every move whose record changed at or after `since` (by that
    /// clock; none when `since` is absent): how the operators' socket follows moves run by other
    /// instances, whose changes this instance's [`TenantMoves::subscribe`] never carries.
    pub async fn changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<(DateTime<Utc>, Vec<MoveRecord>), MovesError> {
        let (now, ids): (DateTime<Utc>, Vec<Uuid>) = sqlx::query_as(
            "select now(), array(select move_id from tenant_move \
             where $1::timestamptz is not null and updated_at >= $1 order by move_id)",
        )
        .bind(since)
        .fetch_one(self.directory.catalog().pool())
        .await
        .map_err(CatalogError::from)?;
        let mut changed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.moves.find(id).await? {
                changed.push(m);
            }
        }
        Ok((now, changed))
    }

    pub async fn get(&self, id: Uuid) -> Result<MoveRecord, MovesError> {
        self.moves
            .find(id)
            .await?
            .ok_or(MovesError::MoveNotFound(id))
    }

    fn lease_name(tenant: aries_tenants::TenantId) -> String {
        format!("move:{tenant}")
    }

    async fn lease(&self, tenant: aries_tenants::TenantId) -> Result<Lease, MovesError> {
        match self
            .locks
            .acquire(&Self::lease_name(tenant), self.lease_ttl)
            .await
        {
            Ok(lease) => Ok(lease),
            Err(LockError::Held(_)) => Err(MovesError::InProgress(
                "a runner is working on the tenant's move".into(),
            )),
            Err(LockError::Unavailable(why)) => Err(MovesError::LeaseUnavailable(why)),
        }
    }

    /// Records a move of the tenant to `to_shard` and starts running it here.
    #[tracing::instrument(name = "moves.start", skip(self, by))]
    pub async fn start(
        &self,
        slug: &TenantSlug,
        to_shard: &str,
        by: AuditActor,
    ) -> Result<MoveRecord, MovesError> {
        let catalog = self.directory.catalog();
        let tenant = match catalog.tenant_by_slug(slug).await {
            Ok(t) => t,
            Err(CatalogError::TenantNotFound(s)) => return Err(MovesError::TenantNotFound(s)),
            Err(e) => return Err(e.into()),
        };
        let placement = tenant
            .placement
            .ok_or_else(|| CatalogError::Corrupt("tenant without placement".into()))?;
        let target = match catalog.shard_by_name(to_shard).await {
            Ok(s) => s,
            Err(CatalogError::ShardNotFound(s)) => return Err(MovesError::ShardNotFound(s)),
            Err(e) => return Err(e.into()),
        };
        if target.id == placement.shard_id {
            return Err(MovesError::NotAllowed(format!(
                "the tenant is already on {}",
                target.name
            )));
        }
        if target.status != ShardStatus::Active {
            return Err(MovesError::NotAllowed(format!(
                "shard {} does not take tenants (it is {:?})",
                target.name, target.status
            )));
        }
        if let Some(existing) = self.moves.unfinished_for(tenant.id).await? {
            return Err(MovesError::InProgress(format!(
                "the tenant has an unfinished move {}",
                existing.id
            )));
        }
        let lease = self.lease(tenant.id).await?;
        let record = match self
            .moves
            .create(
                tenant.id,
                placement.shard_id,
                target.id,
                placement.epoch,
                &by,
            )
            .await
        {
            Ok(r) => r,
            Err(MoveCreateError::InProgress(id)) => {
                let _ = self.locks.release(lease).await;
                return Err(MovesError::InProgress(format!(
                    "the tenant has an unfinished move{}",
                    id.map(|i| format!(" {i}")).unwrap_or_default()
                )));
            }
            Err(MoveCreateError::Catalog(e)) => {
                let _ = self.locks.release(lease).await;
                return Err(e.into());
            }
        };
        let _ = self.progress.send(record.clone());
        self.spawn(record.clone(), lease, by).await?;
        Ok(record)
    }

    /// Takes over a move whose runner is gone and continues it from its recorded state.
    #[tracing::instrument(name = "moves.resume", skip(self, by))]
    pub async fn resume(&self, id: Uuid, by: AuditActor) -> Result<MoveRecord, MovesError> {
        let m = self.get(id).await?;
        if m.state.is_finished() {
            return Err(MovesError::NotAllowed(format!(
                "the move is {}",
                m.state.as_str()
            )));
        }
        let lease = self.lease(m.tenant_id).await?;
        self.spawn(m.clone(), lease, by).await?;
        self.get(id).await
    }

    /// Rolls back a move that has not flipped. A runner on this instance is stopped first; one
    /// on another instance must stop (or die) before the cancel can take the lease.
    #[tracing::instrument(name = "moves.cancel", skip(self, by))]
    pub async fn cancel(&self, id: Uuid, by: AuditActor) -> Result<MoveRecord, MovesError> {
        let m = self.get(id).await?;
        if m.state.is_finished() {
            return Ok(m);
        }
        if m.state >= MoveState::Flipped {
            return Err(MovesError::NotAllowed(
                "the move has flipped; it can only finish (move the tenant back instead)".into(),
            ));
        }
        let local = self
            .running
            .get(&id)
            .map(|r| (r.stop.clone(), r.done.clone()));
        if let Some((stop, mut done)) = local {
            stop.store(true, Ordering::SeqCst);
            let _ = tokio::time::timeout(Duration::from_secs(60), done.wait_for(|d| *d)).await;
        }
        let lease = self.lease(m.tenant_id).await?;
        let m = self.get(id).await?;
        let result = async {
            self.moves
                .claim(id, lease.token, &self.instance)
                .await
                .map_err(|e| MovesError::NotAllowed(e.to_string()))?;
            let ctx = self
                .context(&m, lease.token, by, Arc::new(|| false))
                .await?;
            engine::cancel(&ctx, id)
                .await
                .map_err(|e| MovesError::NotAllowed(format!("the rollback failed: {e}")))
        }
        .await;
        let _ = self.locks.release(lease).await;
        let m = result?;
        self.directory.reload(&tenant_slug(&m)?).await;
        Ok(m)
    }

    async fn context(
        &self,
        m: &MoveRecord,
        token: i64,
        by: AuditActor,
        lease_lost: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Result<MoveContext, MovesError> {
        let shards = self.directory.shards();
        let source = shards.get(m.from_shard).await?;
        let target = shards.get(m.to_shard).await?;
        let progress = self.progress.clone();
        let directory = self.directory.clone();
        let observe = Arc::new(move |rec: &MoveRecord| {
            let _ = progress.send(rec.clone());
            if rec.state == MoveState::Flipped
                && let Ok(slug) = tenant_slug(rec)
            {
                let directory = directory.clone();
                tokio::spawn(async move { directory.reload(&slug).await });
            }
        });
        Ok(MoveContext {
            moves: self.moves.clone(),
            settings: shards.settings().clone(),
            source_dsn: source.dsn.clone(),
            target_dsn: target.dsn.clone(),
            tuning: self.tuning.clone(),
            by,
            token,
            lease_lost,
            observe,
        })
    }

    /// The "lease lost" check of one lease term: a cancel asked to stop, or a renewal failed.
    fn lost_check(stop: &Arc<AtomicBool>, lease: &Lease) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let stop = stop.clone();
        let shadow = lease.is_lost_flag();
        Arc::new(move || stop.load(Ordering::SeqCst) || shadow.load(Ordering::SeqCst))
    }

    async fn spawn(&self, m: MoveRecord, lease: Lease, by: AuditActor) -> Result<(), MovesError> {
        if let Err(e) = self.moves.claim(m.id, lease.token, &self.instance).await {
            let _ = self.locks.release(lease).await;
            return Err(MovesError::InProgress(e.to_string()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let first = match self
            .context(&m, lease.token, by.clone(), Self::lost_check(&stop, &lease))
            .await
        {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = self.locks.release(lease).await;
                return Err(e);
            }
        };
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        self.running.insert(
            m.id,
            Running {
                stop: stop.clone(),
                done: done_rx,
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            let mut lease = lease;
            let mut ctx = Some(first);
            // One lease term per turn: a renewal that failed (Redis slow for a moment) ends the
            // term; the runner takes the lease again if nobody else did and goes on from the
            // recorded state, else it leaves the move to whoever has it.
            let release = loop {
                let keep_alive = me.locks.keep_alive(&lease);
                let term = match ctx.take() {
                    Some(c) => c,
                    None => match me
                        .context(&m, lease.token, by.clone(), Self::lost_check(&stop, &lease))
                        .await
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(move_id = %m.id, error = %e, "tenant move cannot continue");
                            break Some(lease);
                        }
                    },
                };
                let outcome = engine::run(&term, m.id).await;
                drop(keep_alive);
                match outcome {
                    Ok(rec) => {
                        tracing::info!(move_id = %m.id, tenant = %m.tenant, state = rec.state.as_str(), "tenant move ended");
                        break Some(lease);
                    }
                    Err(MoveError::Injected(at)) => {
                        // A simulated crash: leave the lease to expire, as a dead process would.
                        tracing::warn!(move_id = %m.id, at, "tenant move runner stopped (fault injection)");
                        break None;
                    }
                    Err(MoveError::LeaseLost) if !stop.load(Ordering::SeqCst) => {
                        let _ = me.locks.release(lease).await;
                        // Our own stale key may still be there until it expires: wait that long.
                        let again = match me
                            .locks
                            .acquire_waiting(
                                &Self::lease_name(m.tenant_id),
                                me.lease_ttl,
                                me.lease_ttl * 2,
                                me.lease_ttl * 2,
                            )
                            .await
                        {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::warn!(move_id = %m.id, error = %e, "tenant move runner lost its lease; leaving the move to its new holder");
                                break None;
                            }
                        };
                        if me
                            .moves
                            .claim(m.id, again.token, &me.instance)
                            .await
                            .is_err()
                        {
                            break Some(again);
                        }
                        tracing::info!(move_id = %m.id, "tenant move runner took its lease again; going on");
                        lease = again;
                    }
                    Err(e) => {
                        tracing::warn!(move_id = %m.id, tenant = %m.tenant, error = %e, "tenant move stopped");
                        break Some(lease);
                    }
                }
            };
            if let Some(lease) = release {
                let _ = me.locks.release(lease).await;
            }
            me.running.remove(&m.id);
            let _ = done_tx.send(true);
            if let Ok(rec) = me.moves.get(m.id).await {
                let _ = me.progress.send(rec);
            }
        });
        Ok(())
    }

    /// Resumes, on this instance, every unfinished move that no runner holds (its lease is free):
    /// runners renew their leases, so only moves whose runner died are taken. Returns how many.
    pub async fn resume_orphans(&self) -> Result<usize, MovesError> {
        let unfinished = self.moves.list(None, true, None, 100).await?;
        let mut resumed = 0;
        for m in unfinished {
            if self.running.contains_key(&m.id) {
                continue;
            }
            let Ok(lease) = self.lease(m.tenant_id).await else {
                continue;
            };
            // Re-read under the lease: the move may have finished in the meantime.
            let m = match self.moves.find(m.id).await? {
                Some(m) if !m.state.is_finished() => m,
                _ => {
                    let _ = self.locks.release(lease).await;
                    continue;
                }
            };
            tracing::warn!(move_id = %m.id, tenant = %m.tenant, state = m.state.as_str(), "resuming a move whose runner is gone");
            let by = AuditActor {
                actor: format!("system:{}", self.instance),
                ..AuditActor::default()
            };
            if self.spawn(m, lease, by).await.is_ok() {
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Runs [`TenantMoves::resume_orphans`] every `every`, for as long as the runtime lives.
    pub fn watch_orphans(&self, every: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = me.resume_orphans().await {
                    tracing::debug!(error = %e, "looking for orphaned moves failed");
                }
            }
        });
    }
}

fn tenant_slug(m: &MoveRecord) -> Result<TenantSlug, MovesError> {
    TenantSlug::parse(&m.tenant)
        .map_err(|_| MovesError::Catalog(CatalogError::Corrupt(format!("slug {}", m.tenant))))
}
