//! Drain and rebalance jobs as the catalog records them (`shard_job`): an ordered list of tenant
//! moves run one at a time by one instance, kept in the catalog so that every instance can show
//! their progress. At most one job runs on the platform at a time; a runner that stops
//! heart-beating (its instance died) has its job failed by the next job that starts.
//!
//! The runner itself (what moves, in which order, when it stops) is `aries_actors::shard_jobs`.

use crate::catalog::CatalogError;
use aries_tenants::ids::ShardId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use std::str::FromStr;
use uuid::Uuid;

/// A running job whose heartbeat is older than this is taken for dead.
pub const STALE_AFTER_SECS: i64 = 120;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Moves every tenant off one shard (targets chosen as it goes, by placement).
    Drain,
    /// Runs the moves of a rebalance plan, computed when the job started.
    Rebalance,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drain => "drain",
            Self::Rebalance => "rebalance",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Its runner is working through the steps.
    Running,
    /// Every step ran and every move ended `done` (or was skipped as no longer needed).
    Done,
    /// At least one move failed, the runner died, or no shard could take the tenants;
    /// `error` says which.
    Failed,
    /// An operator cancelled it, or (a drain) the shard was activated again; the move in
    /// flight, if any, was let finish.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for JobState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, CatalogError> {
        match s {
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            "failed" => Ok(Self::Failed),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(CatalogError::Corrupt(format!("shard job state {other}"))),
        }
    }
}

/// Where one move of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started yet.
    Pending,
    /// The move is running (`move_id` names it).
    Running,
    /// The move ended `done`: the tenant lives on `to_shard`.
    Done,
    /// The move could not start or was rolled back; `error` says why. The job goes on with
    /// the next step.
    Failed,
    /// No longer needed when its turn came (the tenant moved elsewhere, the target stopped taking
    /// tenants, or the job was cancelled first).
    Skipped,
}

/// One tenant move of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStep {
    /// The tenant's slug.
    pub tenant: String,
    /// The shard it leaves (by name).
    pub from_shard: String,
    /// The shard it goes to (by name).
    pub to_shard: String,
    /// Its load (rows on its shard) when planned; absent in drains, which do not measure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u64>,
    /// Where the move is.
    pub state: StepState,
    /// The tenant move running it (`/v1/platform/moves/{id}`), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub move_id: Option<Uuid>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A drain or rebalance job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ShardJob {
    /// Identifier of the job (`/v1/platform/shard-jobs/{id}`).
    pub id: Uuid,
    /// `drain` or `rebalance`.
    pub kind: JobKind,
    /// The shard being drained (by name); absent for a rebalance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Where the job is.
    pub state: JobState,
    /// Its moves in order (a drain appends each as it chooses the target).
    pub steps: Vec<JobStep>,
    /// Why it failed or stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An operator asked it to stop before its next move.
    pub cancel_requested: bool,
    /// Who asked for it.
    pub requested_by: String,
    /// The instance running it.
    pub runner: String,
    /// The runner's last sign of life.
    pub heartbeat_at: DateTime<Utc>,
    /// When the job was started.
    pub created_at: DateTime<Utc>,
    /// When its record last changed (a step, its state).
    pub updated_at: DateTime<Utc>,
    /// When it ended (absent while running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl ShardJob {
    /// Steps in `state`.
    pub fn count(&self, state: StepState) -> usize {
        self.steps.iter().filter(|s| s.state == state).count()
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    /// The job's key.
    shard_job_id: Uuid,
    /// Text as stored (`drain`, `rebalance`).
    kind: String,
    /// The drained shard's name, joined in; `NULL` for a rebalance.
    shard_name: Option<String>,
    /// Text as stored; parsed into `JobState`.
    state: String,
    /// The steps as JSON; parsed into `Vec<JobStep>`.
    steps: serde_json::Value,
    /// Why it failed.
    error: Option<String>,
    /// Set by a cancel.
    cancel_requested: bool,
    /// Who asked.
    requested_by: String,
    /// The running instance.
    runner: String,
    /// Its last sign of life.
    heartbeat_at: DateTime<Utc>,
    /// When recorded.
    created_at: DateTime<Utc>,
    /// Last change.
    updated_at: DateTime<Utc>,
    /// When it ended.
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for ShardJob {
    type Error = CatalogError;
    fn try_from(r: JobRow) -> Result<Self, CatalogError> {
        Ok(ShardJob {
            id: r.shard_job_id,
            kind: match r.kind.as_str() {
                "drain" => JobKind::Drain,
                "rebalance" => JobKind::Rebalance,
                other => return Err(CatalogError::Corrupt(format!("shard job kind {other}"))),
            },
            shard: r.shard_name,
            state: r.state.parse()?,
            steps: serde_json::from_value(r.steps)
                .map_err(|e| CatalogError::Corrupt(format!("shard job steps: {e}")))?,
            error: r.error,
            cancel_requested: r.cancel_requested,
            requested_by: r.requested_by,
            runner: r.runner,
            heartbeat_at: r.heartbeat_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

const JOB_SELECT: &str = "select j.shard_job_id, j.kind, s.name as shard_name, j.state, j.steps, j.error, \
     j.cancel_requested, j.requested_by, j.runner, j.heartbeat_at, j.created_at, j.updated_at, j.finished_at \
     from shard_job j left join shard s using (shard_id)";

/// The running job, if any, after failing one whose runner stopped heart-beating.
pub(crate) async fn running_in(conn: &mut PgConnection) -> Result<Option<ShardJob>, CatalogError> {
    sqlx::query(
        "update shard_job set state = 'failed', error = 'its runner stopped (no heartbeat)', \
         updated_at = now(), finished_at = now() \
         where state = 'running' and heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(STALE_AFTER_SECS as f64)
    .execute(&mut *conn)
    .await?;
    let sql = format!("{JOB_SELECT} where j.state = 'running'");
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await?;
    row.map(TryInto::try_into).transpose()
}

/// Records a new running job; `ShardJobInProgress` when another one runs.
pub(crate) async fn insert_in(
    conn: &mut PgConnection,
    kind: JobKind,
    shard: Option<ShardId>,
    steps: &[JobStep],
    requested_by: &str,
    runner: &str,
) -> Result<Uuid, CatalogError> {
    if let Some(job) = running_in(conn).await? {
        return Err(CatalogError::ShardJobInProgress(job.id));
    }
    let id = Uuid::now_v7();
    let steps = serde_json::to_value(steps)
        .map_err(|e| CatalogError::Corrupt(format!("shard job steps: {e}")))?;
    sqlx::query(
        "insert into shard_job (shard_job_id, kind, shard_id, steps, requested_by, runner) \
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(shard)
    .bind(steps)
    .bind(requested_by)
    .bind(runner)
    .execute(&mut *conn)
    .await
    .map_err(|e| match aries_tenants::error::unique_violation(&e) {
        Some("shard_job_running_key") => CatalogError::ShardJobInProgress(Uuid::nil()),
        _ => CatalogError::Database(e),
    })?;
    Ok(id)
}

pub(crate) async fn get_in(conn: &mut PgConnection, id: Uuid) -> Result<ShardJob, CatalogError> {
    let sql = format!("{JOB_SELECT} where j.shard_job_id = $1");
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or(CatalogError::ShardJobNotFound(id))?.try_into()
}

/// The `shard_job` table.
#[derive(Debug, Clone)]
pub struct ShardJobs {
    /// The catalog, as the app role.
    pool: PgPool,
}

impl ShardJobs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn get(&self, id: Uuid) -> Result<ShardJob, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        get_in(&mut conn, id).await
    }

    /// The newest jobs first (`limit + 1` rows, so the caller can tell whether more exist),
    /// after the cursor (a job id) when given.
    pub async fn list(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ShardJob>, CatalogError> {
        let sql = format!(
            "{JOB_SELECT} where ($1::uuid is null or j.shard_job_id < $1) \
             order by j.shard_job_id desc limit $2"
        );
        let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Writes the runner's view of the job (steps, state, error); a finished state stamps
    /// `finished_at`. Also a heartbeat. Only a running job is written: one already finished (failed
    /// for a stale heartbeat while its runner was merely slow) is not brought back.
    pub async fn save(&self, job: &ShardJob) -> Result<(), CatalogError> {
        let steps = serde_json::to_value(&job.steps)
            .map_err(|e| CatalogError::Corrupt(format!("shard job steps: {e}")))?;
        sqlx::query(
            "update shard_job set steps = $2, state = $3, error = $4, updated_at = now(), \
             heartbeat_at = now(), finished_at = case when $3 = 'running' then null else now() end \
             where shard_job_id = $1 and state = 'running'",
        )
        .bind(job.id)
        .bind(steps)
        .bind(job.state.as_str())
        .bind(job.error.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The runner is alive (long moves run between two saves).
    pub async fn heartbeat(&self, id: Uuid) -> Result<(), CatalogError> {
        sqlx::query(
            "update shard_job set heartbeat_at = now() where shard_job_id = $1 and state = 'running'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Asks the runner to stop before its next move; returns the job.
    pub async fn request_cancel(&self, id: Uuid) -> Result<ShardJob, CatalogError> {
        sqlx::query(
            "update shard_job set cancel_requested = true, updated_at = now() \
             where shard_job_id = $1 and state = 'running'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.get(id).await
    }

    /// Whether an operator asked the job to stop.
    pub async fn cancel_requested(&self, id: Uuid) -> Result<bool, CatalogError> {
        let row: Option<(bool,)> =
            sqlx::query_as("select cancel_requested from shard_job where shard_job_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some_and(|r| r.0))
    }
}
