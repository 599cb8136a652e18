//! The move's state machine. [`run`] takes a claimed move from whatever state the catalog records
//! and drives it to `done` or `rolled_back`; every transition is recorded (fenced by the runner's
//! token) before the step that depends on it, so a rerun after a crash knows where to resume:
//!
//! | recorded state | a rerun…                                                              |
//! |----------------|-----------------------------------------------------------------------|
//! | pending, copying, catching_up | starts the copy again (the target's partial copy is deleted) |
//! | frozen         | freezes again (idempotent), replays the rest, verifies, flips          |
//! | flipped        | finishes the clean-up of the source                                    |
//!
//! Failures before the flip roll the move back when the shards answer; when they do not, the
//! state stays for a rerun (or a cancel) to finish.

use super::MoveError;
use super::capture;
use super::copy::{self, begin};
use super::purge::{self, Anchor};
use super::record::{MoveRecord, MoveState, Moves, Progress};
use super::schema::{self, TenantSchema};
use super::verify;
use crate::connect::{Role, options};
use crate::settings::DatabaseSettings;
use aries_tenants::TenantId;
use aries_tenants::audit::AuditActor;
use sqlx::{ConnectOptions as _, PgConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Knobs of a move (`[moves]` in the configuration).
#[derive(Debug, Clone)]
pub struct MoveTuning {
    /// Logged changes replayed per catch-up round.
    pub catch_up_batch: i64,
    /// Freeze once a round leaves at most this many changes pending (the final delta's size, so
    /// the freeze's length).
    pub freeze_at_pending: u64,
    /// Freeze after this many rounds even if writers keep the log from shrinking.
    pub max_rounds: u32,
    /// How long the freeze waits for writes in flight to finish before giving up (and retrying).
    pub freeze_lock_timeout: Duration,
    /// After the flip, how long the clean-up waits for transactions that began before the freeze.
    pub drain_wait: Duration,
    /// Tests of crash recovery: the runner stops dead right after recording this state.
    pub stop_after: Option<MoveState>,
}

impl Default for MoveTuning {
    fn default() -> Self {
        Self {
            catch_up_batch: 2_000,
            freeze_at_pending: 200,
            max_rounds: 50,
            freeze_lock_timeout: Duration::from_secs(5),
            drain_wait: Duration::from_secs(30),
            stop_after: None,
        }
    }
}

/// What a runner needs.
pub struct MoveContext {
    /// The catalog's moves.
    pub moves: Moves,
    /// Roles and passwords (the move works as the owner role; row-level security still binds it).
    pub settings: DatabaseSettings,
    /// Source and target shards (host, port, database).
    pub source_dsn: String,
    pub target_dsn: String,
    pub tuning: MoveTuning,
    /// Recorded in the platform's trail with the flip.
    pub by: AuditActor,
    /// The runner's fencing token (its Redis lease's).
    pub token: i64,
    /// Whether the runner's lease was lost (checked between steps).
    pub lease_lost: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Told about every recorded change (state, progress), for live progress.
    pub observe: Arc<dyn Fn(&MoveRecord) + Send + Sync>,
}

impl MoveContext {
    async fn record(&self, id: Uuid) -> Result<MoveRecord, MoveError> {
        let m = self.moves.get(id).await?;
        (self.observe)(&m);
        Ok(m)
    }

    async fn set_state(
        &self,
        m: &MoveRecord,
        state: MoveState,
        error: Option<&str>,
    ) -> Result<MoveRecord, MoveError> {
        self.moves.set_state(m.id, self.token, state, error).await?;
        tracing::info!(move_id = %m.id, tenant = %m.tenant, state = state.as_str(), "tenant move");
        self.record(m.id).await
    }

    fn check(&self, after: MoveState) -> Result<(), MoveError> {
        if (self.lease_lost)() {
            return Err(MoveError::LeaseLost);
        }
        if self.tuning.stop_after == Some(after) {
            return Err(MoveError::Injected(after.as_str()));
        }
        Ok(())
    }
}

async fn connect(dsn: &str, settings: &DatabaseSettings) -> Result<PgConnection, MoveError> {
    let mut conn = options(dsn, Role::Owner, settings)?
        .application_name("aries-move")
        .connect()
        .await?;
    // A bulk copy of a large tenant may take longer than a request's statement timeout.
    sqlx::raw_sql("set statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// Both shards' tenant tables; they must be the same (the target is migrated like the source).
async fn schemas(
    source: &mut PgConnection,
    target: &mut PgConnection,
) -> Result<TenantSchema, MoveError> {
    let s = schema::load(source).await?;
    let t = schema::load(target).await?;
    if s != t {
        return Err(MoveError::Schema(
            "the target shard's schema differs from the source's: migrate both to the same version"
                .into(),
        ));
    }
    Ok(s)
}

/// Runs the move from its recorded state to the end (see the module's table).
pub async fn run(ctx: &MoveContext, id: Uuid) -> Result<MoveRecord, MoveError> {
    let mut m = ctx.record(id).await?;
    if m.state.is_finished() {
        return Ok(m);
    }
    let mut source = connect(&ctx.source_dsn, &ctx.settings).await?;
    let mut target = connect(&ctx.target_dsn, &ctx.settings).await?;
    let schema = match schemas(&mut source, &mut target).await {
        Ok(s) => s,
        Err(e) if m.state < MoveState::Flipped => {
            // Nothing was copied under a schema we refuse; roll back what an earlier run did
            // with the source's schema, which is still the right one for cleaning up.
            let s = schema::load(&mut source).await?;
            return roll_back(ctx, &m, &mut source, &mut target, &s, Some(&e.to_string())).await;
        }
        Err(e) => return Err(e),
    };
    let mut frozen_at: Option<Instant> = None;
    loop {
        if (ctx.lease_lost)() {
            return Err(MoveError::LeaseLost);
        }
        let step = match m.state {
            MoveState::Pending | MoveState::Copying | MoveState::CatchingUp => {
                copy_and_catch_up(ctx, &m, &mut source, &mut target, &schema).await
            }
            MoveState::Frozen => {
                finish_frozen(ctx, &m, &mut source, &mut target, &schema, &mut frozen_at).await
            }
            MoveState::Flipped => clean_up(ctx, &m, &mut source, &schema).await,
            MoveState::Done | MoveState::RolledBack => return Ok(m),
        };
        match step {
            Ok(next) => m = next,
            Err(e @ (MoveError::Fenced | MoveError::LeaseLost | MoveError::Injected(_))) => {
                return Err(e);
            }
            Err(e) if m.state < MoveState::Flipped => {
                tracing::warn!(move_id = %m.id, tenant = %m.tenant, error = %e, "tenant move failed; rolling back");
                let why = e.to_string();
                return match roll_back(ctx, &m, &mut source, &mut target, &schema, Some(&why)).await
                {
                    Ok(_) => Err(e),
                    Err(rollback) => {
                        tracing::error!(move_id = %m.id, error = %rollback, "rollback failed; rerun or cancel the move");
                        Err(e)
                    }
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// Capture, bulk copy, catch-up rounds, then the freeze.
async fn copy_and_catch_up(
    ctx: &MoveContext,
    m: &MoveRecord,
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
) -> Result<MoveRecord, MoveError> {
    let tenant = m.tenant_id;
    let m = ctx.set_state(m, MoveState::Copying, None).await?;
    // A fresh start: whatever an earlier run left on the target goes, the log restarts, and the
    // snapshot taken after both holds everything logged before.
    purge::purge(target, schema, tenant, Anchor::Delete).await?;
    capture::install(source, schema, tenant).await?;
    capture::clear_log(source, tenant).await?;
    ctx.moves.restart_copy(m.id, ctx.token).await?;
    let copied_so_far = Arc::new(AtomicU64::new(0));
    let snapshot_rows = Arc::new(AtomicU64::new(0));
    let ticker = {
        let copied = copied_so_far.clone();
        let total = snapshot_rows.clone();
        let moves = ctx.moves.clone();
        let observe = ctx.observe.clone();
        let (id, token) = (m.id, ctx.token);
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = copied.load(Ordering::Relaxed);
                let of = total.load(Ordering::Relaxed);
                if now != last || (of > 0 && last == 0) {
                    last = now;
                    let p = Progress {
                        rows_total: Some(of as i64),
                        rows_copied: Some(now as i64),
                        ..Progress::default()
                    };
                    if moves.progress(id, token, &p).await.is_err() {
                        return;
                    }
                    if let Ok(rec) = moves.get(id).await {
                        observe(&rec);
                    }
                }
            }
        })
    };
    let copied = {
        let counter = copied_so_far.clone();
        let of = snapshot_rows.clone();
        let mut report = move |n: u64| counter.store(n, Ordering::Relaxed);
        let mut total = move |n: u64| of.store(n, Ordering::Relaxed);
        copy::copy_tenant(source, target, schema, tenant, &mut total, &mut report).await
    };
    ticker.abort();
    let copied = copied?;
    ctx.moves
        .progress(
            m.id,
            ctx.token,
            &Progress {
                rows_total: Some(snapshot_rows.load(Ordering::Relaxed) as i64),
                rows_copied: Some(copied as i64),
                ..Progress::default()
            },
        )
        .await?;
    ctx.record(m.id).await?;
    ctx.check(MoveState::Copying)?;
    let m = ctx.set_state(&m, MoveState::CatchingUp, None).await?;
    let mut rounds = 0u32;
    loop {
        catch_up(ctx, &m, source, target, schema).await?;
        rounds += 1;
        ctx.record(m.id).await?;
        if (ctx.lease_lost)() {
            return Err(MoveError::LeaseLost);
        }
        let left = capture::pending(source, tenant).await?;
        if left <= ctx.tuning.freeze_at_pending || rounds >= ctx.tuning.max_rounds {
            break;
        }
    }
    ctx.check(MoveState::CatchingUp)?;
    ctx.set_state(&m, MoveState::Frozen, None).await
}

/// One catch-up round, counted in the move's progress; returns the log entries it applied.
async fn catch_up(
    ctx: &MoveContext,
    m: &MoveRecord,
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
) -> Result<u64, MoveError> {
    let applied = capture::catch_up_round(
        source,
        target,
        schema,
        m.tenant_id,
        ctx.tuning.catch_up_batch,
    )
    .await?;
    let p = Progress {
        rounds: 1,
        changes: applied as i64,
        ..Progress::default()
    };
    ctx.moves.progress(m.id, ctx.token, &p).await?;
    Ok(applied)
}

/// Freezes the tenant's writes on the source: takes the tenant's move-fence lock exclusive, which
/// waits for writes in flight (they hold it shared) while new ones queue behind it, then marks the
/// anchor row not serving. Idempotent. Retries a few times when a long transaction keeps the lock
/// past the timeout.
pub async fn freeze(
    source: &mut PgConnection,
    tenant: TenantId,
    lock_timeout: Duration,
) -> Result<(), MoveError> {
    let mut tries = 0;
    loop {
        let mut tx = begin(source, tenant, "read committed").await?;
        let timeout = format!("set local lock_timeout = '{}ms'", lock_timeout.as_millis());
        sqlx::raw_sql(sqlx::AssertSqlSafe(timeout))
            .execute(&mut *tx)
            .await?;
        let locked = sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text, 0))")
            .bind(tenant)
            .execute(&mut *tx)
            .await;
        match locked {
            Ok(_) => {}
            Err(e)
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "55P03") =>
            {
                drop(tx);
                tries += 1;
                if tries >= 3 {
                    return Err(MoveError::FreezeTimeout(format!(
                        "the tenant's writes did not finish within {lock_timeout:?}, {tries} times"
                    )));
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query("update tenant set serving = false where tenant_id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(());
    }
}

/// Frozen: freeze (again), final delta, verification, flip.
async fn finish_frozen(
    ctx: &MoveContext,
    m: &MoveRecord,
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
    frozen_at: &mut Option<Instant>,
) -> Result<MoveRecord, MoveError> {
    let tenant = m.tenant_id;
    let started = Instant::now();
    freeze(source, tenant, ctx.tuning.freeze_lock_timeout).await?;
    frozen_at.get_or_insert(started);
    ctx.check(MoveState::Frozen)?;
    // The final delta: nothing can be written any more, so this empties the log.
    loop {
        if catch_up(ctx, m, source, target, schema).await? == 0 {
            break;
        }
    }
    let checks = verify::compare(source, target, schema, tenant).await?;
    ctx.moves.verified(m.id, ctx.token, &checks).await?;
    ctx.record(m.id).await?;
    if let Some(bad) = checks.iter().find(|c| !c.matches()) {
        return Err(MoveError::VerificationFailed(format!(
            "{}: {} rows / {} on the source, {} rows / {} on the target",
            bad.table, bad.source_rows, bad.source_checksum, bad.target_rows, bad.target_checksum
        )));
    }
    // The target serves the tenant under the next epoch; the catalog then points there.
    let mut tx = begin(target, tenant, "read committed").await?;
    sqlx::query("update tenant set serving = true, epoch = $2 where tenant_id = $1")
        .bind(tenant)
        .bind(m.from_epoch + 1)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let pause = match (frozen_at, m.frozen_at) {
        (Some(t), _) if t.elapsed() < Duration::from_secs(3600) => t.elapsed().as_millis() as i64,
        (_, Some(at)) => (chrono::Utc::now() - at).num_milliseconds(),
        _ => 0,
    };
    ctx.moves.flip(m, ctx.token, pause, &ctx.by).await?;
    tracing::info!(move_id = %m.id, tenant = %m.tenant, pause_ms = pause, to = %m.to_shard_name, "tenant move flipped");
    let m = ctx.record(m.id).await?;
    ctx.check(MoveState::Flipped)?;
    Ok(m)
}

/// Flipped: the source's rows go (its tombstone stays), once older transactions are done.
async fn clean_up(
    ctx: &MoveContext,
    m: &MoveRecord,
    source: &mut PgConnection,
    schema: &TenantSchema,
) -> Result<MoveRecord, MoveError> {
    capture::remove(source, schema, m.tenant_id).await?;
    if !purge::wait_for_older_transactions(source, ctx.tuning.drain_wait).await? {
        tracing::warn!(move_id = %m.id, "transactions older than the flip still run; removing the source's rows anyway");
    }
    purge::purge(source, schema, m.tenant_id, Anchor::Tombstone).await?;
    ctx.set_state(m, MoveState::Done, None).await
}

/// Before the flip: the source serves again, capture stops, the target's copy goes.
pub async fn roll_back(
    ctx: &MoveContext,
    m: &MoveRecord,
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
    error: Option<&str>,
) -> Result<MoveRecord, MoveError> {
    if m.state >= MoveState::Flipped {
        return Err(MoveError::Schema(
            "a flipped move cannot be rolled back; move the tenant back instead".into(),
        ));
    }
    let mut tx = begin(source, m.tenant_id, "read committed").await?;
    sqlx::query("update tenant set serving = true where tenant_id = $1 and epoch = $2")
        .bind(m.tenant_id)
        .bind(m.from_epoch)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    capture::remove(source, schema, m.tenant_id).await?;
    purge::purge(target, schema, m.tenant_id, Anchor::Delete).await?;
    ctx.set_state(m, MoveState::RolledBack, error).await
}

/// Cancels a move before its flip (a runner must hold the move's lease).
pub async fn cancel(ctx: &MoveContext, id: Uuid) -> Result<MoveRecord, MoveError> {
    let m = ctx.record(id).await?;
    if m.state.is_finished() {
        return Ok(m);
    }
    let mut source = connect(&ctx.source_dsn, &ctx.settings).await?;
    let mut target = connect(&ctx.target_dsn, &ctx.settings).await?;
    let schema = schema::load(&mut source).await?;
    roll_back(ctx, &m, &mut source, &mut target, &schema, None).await
}
