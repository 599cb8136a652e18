//! Moves as the catalog records them (`tenant_move`). Every change a runner makes carries its
//! fencing token (from its Redis lease): the update applies only while no runner with a higher
//! token has claimed the move, so a runner whose lease expired under it can change nothing.

use super::MoveError;
use super::verify::TableCheck;
use crate::CatalogError;
use aries_tenants::audit::{self, AuditActor, Trail};
use aries_tenants::ids::{ShardId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use std::str::FromStr;
use uuid::Uuid;

/// Where a move is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MoveState {
    /// Recorded; no runner has started it.
    Pending,
    /// Capture installed; the bulk copy runs.
    Copying,
    /// Replaying changes made since the copy's snapshot.
    CatchingUp,
    /// The tenant's writes are frozen; final delta and verification.
    Frozen,
    /// The catalog places the tenant on the target; the source's rows are being removed.
    Flipped,
    /// Finished: the tenant lives on the target, the source holds only its tombstone.
    Done,
    /// Abandoned before the flip: the source serves, the target's copy is gone.
    RolledBack,
}

impl MoveState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Copying => "copying",
            Self::CatchingUp => "catching_up",
            Self::Frozen => "frozen",
            Self::Flipped => "flipped",
            Self::Done => "done",
            Self::RolledBack => "rolled_back",
        }
    }

    /// Whether nothing more will happen to the move.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::RolledBack)
    }
}

impl FromStr for MoveState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, CatalogError> {
        Ok(match s {
            "pending" => Self::Pending,
            "copying" => Self::Copying,
            "catching_up" => Self::CatchingUp,
            "frozen" => Self::Frozen,
            "flipped" => Self::Flipped,
            "done" => Self::Done,
            "rolled_back" => Self::RolledBack,
            other => return Err(CatalogError::Corrupt(format!("move state {other}"))),
        })
    }
}

/// A move with everything an operator watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveRecord {
    /// The move's key (URLs, events).
    pub id: Uuid,
    /// The tenant moved.
    pub tenant_id: TenantId,
    /// Its slug, for people.
    pub tenant: String,
    /// Shard it leaves (id and name).
    pub from_shard: ShardId,
    pub from_shard_name: String,
    /// Shard it goes to.
    pub to_shard: ShardId,
    pub to_shard_name: String,
    /// Where the move is.
    pub state: MoveState,
    /// The placement epoch at the start; the flip makes it `from_epoch + 1`.
    pub from_epoch: i64,
    /// Rows in the bulk copy's snapshot.
    pub rows_total: i64,
    /// Rows the bulk copy has sent so far.
    pub rows_copied: i64,
    /// Catch-up rounds run (the final delta included).
    pub catch_up_rounds: i32,
    /// Logged changes replayed on the target.
    pub changes_applied: i64,
    /// Per-table counts and checksums, once verified.
    pub verification: Option<Vec<TableCheck>>,
    /// How long the tenant's writes were frozen, in milliseconds.
    pub pause_ms: Option<i64>,
    /// Why it was rolled back (`None` for a cancelled move or one that did not fail).
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// The instance running it now (or last).
    pub runner: Option<String>,
    /// The highest fencing token seen; internal, not shown to clients.
    #[serde(skip)]
    pub fence_token: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub frozen_at: Option<DateTime<Utc>>,
    pub flipped_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct MoveRow {
    move_id: Uuid,
    tenant_id: TenantId,
    slug: String,
    from_shard: ShardId,
    from_name: String,
    to_shard: ShardId,
    to_name: String,
    state: String,
    from_epoch: i64,
    rows_total: i64,
    rows_copied: i64,
    catch_up_rounds: i32,
    changes_applied: i64,
    verification: Option<Json<Vec<TableCheck>>>,
    pause_ms: Option<i64>,
    error: Option<String>,
    requested_by: String,
    runner: Option<String>,
    fence_token: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    frozen_at: Option<DateTime<Utc>>,
    flipped_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<MoveRow> for MoveRecord {
    type Error = CatalogError;
    fn try_from(r: MoveRow) -> Result<Self, CatalogError> {
        Ok(MoveRecord {
            id: r.move_id,
            tenant_id: r.tenant_id,
            tenant: r.slug,
            from_shard: r.from_shard,
            from_shard_name: r.from_name,
            to_shard: r.to_shard,
            to_shard_name: r.to_name,
            state: r.state.parse()?,
            from_epoch: r.from_epoch,
            rows_total: r.rows_total,
            rows_copied: r.rows_copied,
            catch_up_rounds: r.catch_up_rounds,
            changes_applied: r.changes_applied,
            verification: r.verification.map(|j| j.0),
            pause_ms: r.pause_ms,
            error: r.error,
            requested_by: r.requested_by,
            runner: r.runner,
            fence_token: r.fence_token,
            created_at: r.created_at,
            updated_at: r.updated_at,
            frozen_at: r.frozen_at,
            flipped_at: r.flipped_at,
            finished_at: r.finished_at,
        })
    }
}

const SELECT: &str = "select m.move_id, m.tenant_id, t.slug, m.from_shard, sf.name as from_name, \
     m.to_shard, st.name as to_name, m.state, m.from_epoch, m.rows_total, m.rows_copied, \
     m.catch_up_rounds, m.changes_applied, m.verification, m.pause_ms, m.error, m.requested_by, \
     m.runner, m.fence_token, m.created_at, m.updated_at, m.frozen_at, m.flipped_at, m.finished_at \
     from tenant_move m join tenant t using (tenant_id) join shard sf on sf.shard_id = m.from_shard \
     join shard st on st.shard_id = m.to_shard";

/// The catalog's moves table.
#[derive(Debug, Clone)]
pub struct Moves {
    /// The catalog (app role).
    pool: PgPool,
}

/// What a runner records as it goes.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub rows_total: Option<i64>,
    pub rows_copied: Option<i64>,
    /// Added to the recorded counts.
    pub rounds: i32,
    pub changes: i64,
}

impl Moves {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Records a new move (pending). `Err(InProgress)` when the tenant has an unfinished one.
    pub async fn create(
        &self,
        tenant: TenantId,
        from: ShardId,
        to: ShardId,
        from_epoch: i64,
        by: &AuditActor,
    ) -> Result<MoveRecord, MoveCreateError> {
        let id = Uuid::now_v7();
        let mut tx = self.pool.begin().await.map_err(CatalogError::from)?;
        let inserted = sqlx::query(
            "insert into tenant_move (move_id, tenant_id, from_shard, to_shard, from_epoch, requested_by) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(from_epoch)
        .bind(&by.actor)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            if aries_tenants::error::unique_violation(&e) == Some("tenant_move_unfinished_key") {
                drop(tx);
                let existing = self.unfinished_for(tenant).await?;
                return Err(MoveCreateError::InProgress(existing.map(|m| m.id)));
            }
            return Err(CatalogError::from(e).into());
        }
        let event = by.event(
            "tenant.move_requested",
            "tenant_move",
            id,
            serde_json::json!({"from_shard": from, "to_shard": to}),
            Some(tenant),
        );
        audit::append(&mut tx, Trail::Platform, &event)
            .await
            .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        tx.commit().await.map_err(CatalogError::from)?;
        Ok(self.get(id).await?)
    }

    /// The move, which the caller knows exists (a missing one is `Corrupt`).
    pub async fn get(&self, id: Uuid) -> Result<MoveRecord, CatalogError> {
        self.find(id)
            .await?
            .ok_or_else(|| CatalogError::Corrupt(format!("no move {id}")))
    }

    /// The move, or `None`.
    pub async fn find(&self, id: Uuid) -> Result<Option<MoveRecord>, CatalogError> {
        let sql = format!("{SELECT} where m.move_id = $1");
        let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    pub async fn unfinished_for(
        &self,
        tenant: TenantId,
    ) -> Result<Option<MoveRecord>, CatalogError> {
        let sql =
            format!("{SELECT} where m.tenant_id = $1 and m.state not in ('done', 'rolled_back')");
        let row: Option<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Newest first; `limit + 1` rows so the caller can tell whether more exist. `before` is the
    /// last move id of the previous page (ids are UUIDv7, so id order is creation order).
    pub async fn list(
        &self,
        tenant: Option<TenantId>,
        unfinished_only: bool,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<MoveRecord>, CatalogError> {
        let sql = format!(
            "{SELECT} where ($1::uuid is null or m.tenant_id = $1) \
             and (not $2 or m.state not in ('done', 'rolled_back')) \
             and ($3::uuid is null or m.move_id < $3) order by m.move_id desc limit $4"
        );
        let rows: Vec<MoveRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(unfinished_only)
            .bind(before)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Takes the move for a runner holding `token`. Refused (`Fenced`) when a runner with a
    /// higher token already took it, or when it is finished.
    pub async fn claim(&self, id: Uuid, token: i64, runner: &str) -> Result<MoveRecord, MoveError> {
        let n = sqlx::query(
            "update tenant_move set fence_token = $2, runner = $3, updated_at = now() \
             where move_id = $1 and fence_token <= $2 and state not in ('done', 'rolled_back')",
        )
        .bind(id)
        .bind(token)
        .bind(runner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n)?;
        Ok(self.get(id).await?)
    }

    /// Moves to `state` (stamping `frozen_at` / `finished_at` as it goes).
    pub async fn set_state(
        &self,
        id: Uuid,
        token: i64,
        state: MoveState,
        error: Option<&str>,
    ) -> Result<(), MoveError> {
        let n = sqlx::query(
            "update tenant_move set state = $3, error = coalesce($4, error), updated_at = now(), \
               frozen_at = case when $3 = 'frozen' then coalesce(frozen_at, now()) else frozen_at end, \
               finished_at = case when $3 in ('done', 'rolled_back') then now() else finished_at end \
             where move_id = $1 and fence_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(state.as_str())
        .bind(error)
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n)
    }

    /// A bulk copy starts (again): its counters go back to zero.
    pub async fn restart_copy(&self, id: Uuid, token: i64) -> Result<(), MoveError> {
        let n = sqlx::query(
            "update tenant_move set rows_total = 0, rows_copied = 0, updated_at = now() \
             where move_id = $1 and fence_token = $2",
        )
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n)
    }

    /// Records progress counters. The copy's counters only grow (a late report from the copy's
    /// ticker never takes them back).
    pub async fn progress(&self, id: Uuid, token: i64, p: &Progress) -> Result<(), MoveError> {
        let n = sqlx::query(
            "update tenant_move set rows_total = greatest(rows_total, coalesce($3, rows_total)), \
               rows_copied = greatest(rows_copied, coalesce($4, rows_copied)), \
               catch_up_rounds = catch_up_rounds + $5, \
               changes_applied = changes_applied + $6, updated_at = now() \
             where move_id = $1 and fence_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(p.rows_total)
        .bind(p.rows_copied)
        .bind(p.rounds)
        .bind(p.changes)
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n)
    }

    /// Records the verification.
    pub async fn verified(
        &self,
        id: Uuid,
        token: i64,
        checks: &[TableCheck],
    ) -> Result<(), MoveError> {
        let n = sqlx::query(
            "update tenant_move set verification = $3, updated_at = now() \
             where move_id = $1 and fence_token = $2",
        )
        .bind(id)
        .bind(token)
        .bind(Json(checks))
        .execute(&self.pool)
        .await?
        .rows_affected();
        fenced(n)
    }

    /// The flip, in one catalog transaction: the placement moves to the target with epoch + 1
    /// (only from the placement the move started from), the tenant's version is bumped, the move
    /// becomes `flipped` with its pause, and the platform trail records it.
    pub async fn flip(
        &self,
        m: &MoveRecord,
        token: i64,
        pause_ms: i64,
        by: &AuditActor,
    ) -> Result<(), MoveError> {
        let mut tx = self.pool.begin().await?;
        let placed = sqlx::query(
            "update placement set shard_id = $2, epoch = epoch + 1, placed_at = now() \
             where tenant_id = $1 and shard_id = $3 and epoch = $4",
        )
        .bind(m.tenant_id)
        .bind(m.to_shard)
        .bind(m.from_shard)
        .bind(m.from_epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if placed != 1 {
            return Err(MoveError::PlacementChanged);
        }
        let n = sqlx::query(
            "update tenant_move set state = 'flipped', flipped_at = now(), pause_ms = $3, \
             updated_at = now() where move_id = $1 and fence_token = $2 and state = 'frozen'",
        )
        .bind(m.id)
        .bind(token)
        .bind(pause_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(MoveError::Fenced);
        }
        sqlx::query(
            "update tenant set version = version + 1, updated_at = now() where tenant_id = $1",
        )
        .bind(m.tenant_id)
        .execute(&mut *tx)
        .await?;
        let event = by.event(
            "tenant.moved",
            "tenant",
            &m.tenant,
            serde_json::json!({
                "move_id": m.id, "from_shard": m.from_shard_name, "to_shard": m.to_shard_name,
                "epoch": m.from_epoch + 1, "pause_ms": pause_ms,
            }),
            Some(m.tenant_id),
        );
        audit::append(&mut tx, Trail::Platform, &event)
            .await
            .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        tx.commit().await?;
        Ok(())
    }
}

/// An update fenced by a runner's token changed `rows` rows: none means a runner with a higher
/// token owns the move now (or it finished), and the caller must stop.
fn fenced(rows: u64) -> Result<(), MoveError> {
    if rows == 0 {
        Err(MoveError::Fenced)
    } else {
        Ok(())
    }
}

/// Why a move could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum MoveCreateError {
    /// The tenant has an unfinished move (its id, when it could be read).
    #[error("the tenant has an unfinished move")]
    InProgress(Option<Uuid>),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
