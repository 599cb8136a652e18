//! Drain and rebalance jobs as an instance runs them: tenant moves one at a time, progress
//! recorded in the catalog (`aries_shards::shard_jobs`) after every change.
//!
//! - **Drain**: while the shard is `draining`, take the next tenant still on it (by slug, each
//!   tenant tried once) and move it to the shard placement would choose for a new tenant
//!   (`placement::choose_shard` over the active shards, the drained one excluded). Activating the
//!   shard again stops the drain (`cancelled`) before its next move.
//! - **Rebalance**: the moves of the plan computed when the job started, in order; a step whose
//!   tenant has moved meanwhile, or whose target no longer takes tenants, is `skipped`.
//! - A failed move (refused, rolled back) is recorded on its step and the job goes on; the job
//!   ends `failed` when any step failed, `done` otherwise. An operator's cancel stops it before
//!   the next move (the move in flight finishes).
//!
//! The executor ([`execute`]) is written against two small traits so that its sequencing is
//! unit-tested without databases: [`MoveStarter`] (starting a tenant move and waiting for its
//! end; the real one is [`TenantMoves`]) and [`JobWorld`] (the catalog's view and the job's
//! record; the real one is [`CatalogWorld`]).

use crate::directory::Directory;
use crate::moves::TenantMoves;
use crate::platform::{Platform, PlatformError};
use crate::shard_load::{RebalancePlan, plan_rebalance};
use aries_shards::moves::MoveState;
use aries_shards::placement::{ShardLoad, choose_shard};
use aries_shards::rebalance::PlanSettings;
use aries_shards::shard_jobs::{JobKind, JobState, JobStep, ShardJob, ShardJobs, StepState};
use aries_shards::{Catalog, CatalogError, ShardId, ShardStatus};
use aries_tenants::TenantSlug;
use aries_tenants::audit::AuditActor;
use futures::future::BoxFuture;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How often a running job tells the catalog it is alive (a move can take long).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
/// How often `wait_move` looks at a running move's record.
const MOVE_POLL: Duration = Duration::from_millis(500);

// ---- the seams ----

/// A tenant move to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRequest {
    /// The tenant to move.
    pub tenant: TenantSlug,
    /// The shard to move it to.
    pub to_shard: ShardId,
    /// Its name (the move API takes names).
    pub to_shard_name: String,
    /// Recorded on the move (`drain:<shard>`, `rebalance:<job id>`).
    pub requested_by: String,
}

/// A started move, to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveTicket(pub Uuid);

/// How a move ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The tenant lives on the target now.
    Done,
    /// The move was rolled back (the tenant stays where it was); why.
    RolledBack(String),
}

/// Starts tenant moves and waits for them. Errors are strings: the job records them on the step.
pub trait MoveStarter: Send + Sync {
    fn start_move(&self, request: MoveRequest) -> BoxFuture<'static, Result<MoveTicket, String>>;
    fn wait_move(&self, ticket: MoveTicket) -> BoxFuture<'static, Result<MoveOutcome, String>>;
}

/// What a drain sees of the platform before each move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainView {
    /// The shard is still `draining` (activated again: the drain stops).
    pub draining: bool,
    /// Slugs of the tenants still on it, in the order to move them.
    pub tenants: Vec<String>,
    /// The other shards by name, with what placement needs.
    pub targets: Vec<(String, ShardLoad)>,
}

/// The executor's view of the catalog and its record of the job.
pub trait JobWorld: Send + Sync {
    /// Records the job's progress (also a heartbeat).
    fn save<'a>(&'a self, job: &'a ShardJob) -> BoxFuture<'a, Result<(), String>>;
    /// Whether an operator asked the job to stop.
    fn cancel_requested(&self, job: Uuid) -> BoxFuture<'_, Result<bool, String>>;
    /// The drained shard's state, tenants and the possible targets.
    fn drain_view<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<DrainView, String>>;
    /// The name of the shard the tenant is on now (`None`: no such tenant any more).
    fn shard_of<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Option<String>, String>>;
    /// Whether the shard takes tenants now (`active`).
    fn accepts_tenants<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<bool, String>>;
}

// ---- the executor ----

async fn save(world: &dyn JobWorld, job: &ShardJob) {
    if let Err(e) = world.save(job).await {
        // The moves matter more than their record: go on, the next save may pass.
        tracing::warn!(job = %job.id, error = %e, "could not record the shard job's progress");
    }
}

/// Runs step `i`: starts its move, waits for it, records each change.
async fn run_step(
    job: &mut ShardJob,
    i: usize,
    to_shard: ShardId,
    requested_by: &str,
    world: &dyn JobWorld,
    mover: &dyn MoveStarter,
) {
    job.steps[i].state = StepState::Running;
    save(world, job).await;
    let step = job.steps[i].clone();
    let outcome = async {
        let tenant = TenantSlug::parse(&step.tenant).map_err(|e| e.to_string())?;
        let ticket = mover
            .start_move(MoveRequest {
                tenant,
                to_shard,
                to_shard_name: step.to_shard.clone(),
                requested_by: requested_by.to_owned(),
            })
            .await?;
        job.steps[i].move_id = Some(ticket.0);
        save(world, job).await;
        match mover.wait_move(ticket).await? {
            MoveOutcome::Done => Ok(()),
            MoveOutcome::RolledBack(why) => Err(format!("the move was rolled back: {why}")),
        }
    }
    .await;
    match outcome {
        Ok(()) => job.steps[i].state = StepState::Done,
        Err(e) => {
            tracing::warn!(job = %job.id, tenant = %step.tenant, error = %e, "shard job: move failed");
            job.steps[i].state = StepState::Failed;
            job.steps[i].error = Some(e);
        }
    }
    save(world, job).await;
}

fn skip(step: &mut JobStep, why: String) {
    step.state = StepState::Skipped;
    step.error = Some(why);
}

/// Why the executor stopped before the end, if it did.
enum Stop {
    Cancelled(String),
    Failed(String),
}

async fn drain(job: &mut ShardJob, world: &dyn JobWorld, mover: &dyn MoveStarter) -> Option<Stop> {
    let Some(shard) = job.shard.clone() else {
        return Some(Stop::Failed("a drain job without its shard".into()));
    };
    let requested_by = format!("drain:{shard}");
    // Each tenant is tried once per job: a failed move is not retried in a loop.
    let mut tried: BTreeSet<String> = job.steps.iter().map(|s| s.tenant.clone()).collect();
    loop {
        match world.cancel_requested(job.id).await {
            Ok(true) => return Some(Stop::Cancelled("cancelled by an operator".into())),
            Ok(false) => {}
            Err(e) => return Some(Stop::Failed(format!("reading the job: {e}"))),
        }
        let view = match world.drain_view(&shard).await {
            Ok(v) => v,
            Err(e) => return Some(Stop::Failed(format!("reading the catalog: {e}"))),
        };
        if !view.draining {
            return Some(Stop::Cancelled(format!(
                "shard {shard} is no longer draining"
            )));
        }
        // No tenant left to try: the drain ran to its end (`None`: nothing stopped it).
        let tenant = view.tenants.iter().find(|t| !tried.contains(*t)).cloned()?;
        let loads: Vec<ShardLoad> = view
            .targets
            .iter()
            .filter(|(name, _)| *name != shard)
            .map(|(_, load)| *load)
            .collect();
        let Some(to) = choose_shard(&loads) else {
            return Some(Stop::Failed("no active shard can take the tenants".into()));
        };
        let to_name = view
            .targets
            .iter()
            .find(|(_, l)| l.shard_id == to)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        tried.insert(tenant.clone());
        job.steps.push(JobStep {
            tenant,
            from_shard: shard.clone(),
            to_shard: to_name,
            load: None,
            state: StepState::Pending,
            move_id: None,
            error: None,
        });
        let i = job.steps.len() - 1;
        run_step(job, i, to, &requested_by, world, mover).await;
    }
}

async fn rebalance(
    job: &mut ShardJob,
    targets: &(dyn Fn(&str) -> Option<ShardId> + Sync),
    world: &dyn JobWorld,
    mover: &dyn MoveStarter,
) -> Option<Stop> {
    let requested_by = format!("rebalance:{}", job.id);
    for i in 0..job.steps.len() {
        if job.steps[i].state != StepState::Pending {
            continue;
        }
        match world.cancel_requested(job.id).await {
            Ok(false) => {}
            Ok(true) => {
                for s in job
                    .steps
                    .iter_mut()
                    .filter(|s| s.state == StepState::Pending)
                {
                    skip(s, "the job was cancelled".into());
                }
                return Some(Stop::Cancelled("cancelled by an operator".into()));
            }
            Err(e) => return Some(Stop::Failed(format!("reading the job: {e}"))),
        }
        let step = job.steps[i].clone();
        match world.shard_of(&step.tenant).await {
            Ok(Some(at)) if at == step.from_shard => {}
            Ok(at) => {
                let where_ = at.unwrap_or_else(|| "nowhere".into());
                skip(
                    &mut job.steps[i],
                    format!("the tenant is on {where_}, not {}", step.from_shard),
                );
                save(world, job).await;
                continue;
            }
            Err(e) => return Some(Stop::Failed(format!("reading the catalog: {e}"))),
        }
        let to = match (
            world.accepts_tenants(&step.to_shard).await,
            targets(&step.to_shard),
        ) {
            (Ok(true), Some(id)) => id,
            (Ok(_), _) => {
                skip(
                    &mut job.steps[i],
                    format!("shard {} does not take tenants now", step.to_shard),
                );
                save(world, job).await;
                continue;
            }
            (Err(e), _) => return Some(Stop::Failed(format!("reading the catalog: {e}"))),
        };
        run_step(job, i, to, &requested_by, world, mover).await;
    }
    None
}

/// Runs the job to its end and returns it as last recorded. `shard_ids` maps shard names to ids
/// (a rebalance's targets).
pub async fn execute(
    mut job: ShardJob,
    shard_ids: &(dyn Fn(&str) -> Option<ShardId> + Sync),
    world: &dyn JobWorld,
    mover: &dyn MoveStarter,
) -> ShardJob {
    let stop = match job.kind {
        JobKind::Drain => drain(&mut job, world, mover).await,
        JobKind::Rebalance => rebalance(&mut job, shard_ids, world, mover).await,
    };
    let failed = job.count(StepState::Failed);
    (job.state, job.error) = match stop {
        Some(Stop::Cancelled(why)) => (JobState::Cancelled, Some(why)),
        Some(Stop::Failed(why)) => (JobState::Failed, Some(why)),
        None if failed > 0 => (
            JobState::Failed,
            Some(format!("{failed} of {} moves failed", job.steps.len())),
        ),
        None => (JobState::Done, None),
    };
    save(world, &job).await;
    tracing::info!(job = %job.id, kind = job.kind.as_str(), state = job.state.as_str(), "shard job ended");
    job
}

// ---- the real seams ----

/// The catalog as [`JobWorld`].
#[derive(Clone)]
pub struct CatalogWorld {
    /// Shards, tenants and placements.
    catalog: Catalog,
    /// The job records.
    jobs: ShardJobs,
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl JobWorld for CatalogWorld {
    fn save<'a>(&'a self, job: &'a ShardJob) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.jobs.save(job).await.map_err(text) })
    }

    fn cancel_requested(&self, job: Uuid) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { self.jobs.cancel_requested(job).await.map_err(text) })
    }

    fn drain_view<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<DrainView, String>> {
        Box::pin(async move {
            let record = self.catalog.shard_by_name(shard).await.map_err(text)?;
            let tenants = self
                .catalog
                .tenants_on_shard(record.id)
                .await
                .map_err(text)?;
            let targets = self
                .catalog
                .shards()
                .await
                .map_err(text)?
                .into_iter()
                .filter(|s| s.id != record.id)
                .map(|s| {
                    let load = ShardLoad {
                        shard_id: s.id,
                        accepts_tenants: s.status == ShardStatus::Active,
                        weight: s.weight,
                        tenants: s.tenant_count,
                    };
                    (s.name, load)
                })
                .collect();
            Ok(DrainView {
                draining: record.status == ShardStatus::Draining,
                tenants: tenants.into_iter().map(|t| t.1).collect(),
                targets,
            })
        })
    }

    fn shard_of<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Option<String>, String>> {
        Box::pin(async move {
            let Ok(slug) = TenantSlug::parse(tenant) else {
                return Ok(None);
            };
            match self.catalog.tenant_by_slug(&slug).await {
                Ok(t) => Ok(t.shard_name),
                Err(CatalogError::TenantNotFound(_)) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn accepts_tenants<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            match self.catalog.shard_by_name(shard).await {
                Ok(s) => Ok(s.status == ShardStatus::Active),
                Err(CatalogError::ShardNotFound(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// The online tenant moves as [`MoveStarter`]: a move is started as an operator's would be
/// (recorded, leased, run on this instance) and followed through its catalog record.
impl MoveStarter for TenantMoves {
    fn start_move(&self, request: MoveRequest) -> BoxFuture<'static, Result<MoveTicket, String>> {
        let moves = self.clone();
        Box::pin(async move {
            let by = AuditActor {
                actor: request.requested_by,
                ..Default::default()
            };
            moves
                .start(&request.tenant, &request.to_shard_name, by)
                .await
                .map(|m| MoveTicket(m.id))
                .map_err(text)
        })
    }

    fn wait_move(&self, ticket: MoveTicket) -> BoxFuture<'static, Result<MoveOutcome, String>> {
        let moves = self.clone();
        Box::pin(async move {
            let mut failures = 0;
            loop {
                match moves.get(ticket.0).await {
                    Ok(m) if m.state == MoveState::Done => return Ok(MoveOutcome::Done),
                    Ok(m) if m.state == MoveState::RolledBack => {
                        return Ok(MoveOutcome::RolledBack(
                            m.error.unwrap_or_else(|| "cancelled".into()),
                        ));
                    }
                    Ok(_) => failures = 0,
                    // The catalog blinked: keep waiting a while, the move runs on regardless.
                    Err(e) if failures < 20 => {
                        failures += 1;
                        tracing::warn!(move_id = %ticket.0, error = %e, "reading a move failed");
                    }
                    Err(e) => return Err(e.to_string()),
                }
                tokio::time::sleep(MOVE_POLL).await;
            }
        })
    }
}

// ---- the instance's runner ----

/// Starts drains and rebalances on this instance and answers for every job. Cheap to clone.
#[derive(Clone)]
pub struct ShardJobRunner {
    /// Shards (registry, catalog) for the plans and the status changes.
    platform: Platform,
    /// Catalog and shard handles for measuring loads.
    directory: Directory,
    /// The job records.
    jobs: ShardJobs,
    /// What moves tenants.
    mover: Arc<dyn MoveStarter>,
    /// This instance's name, recorded as the runner.
    instance: String,
}

impl ShardJobRunner {
    pub fn new(
        platform: Platform,
        directory: Directory,
        mover: Arc<dyn MoveStarter>,
        instance: String,
    ) -> Self {
        let jobs = ShardJobs::new(directory.catalog().pool().clone());
        Self {
            platform,
            directory,
            jobs,
            mover,
            instance,
        }
    }

    pub fn records(&self) -> &ShardJobs {
        &self.jobs
    }

    pub async fn get(&self, id: Uuid) -> Result<ShardJob, CatalogError> {
        self.jobs.get(id).await
    }

    /// Marks the shard `draining` and starts its drain job here (or returns the one running).
    pub async fn drain(&self, shard: &str, by: &AuditActor) -> Result<ShardJob, PlatformError> {
        let (_, job, created) = self.platform.drain_shard(shard, by, &self.instance).await?;
        if created {
            self.spawn(job.clone());
        }
        Ok(job)
    }

    /// The dry run: loads measured now, the moves that would even them out.
    pub async fn plan(
        &self,
        settings: PlanSettings,
        deadline: Duration,
    ) -> Result<RebalancePlan, CatalogError> {
        plan_rebalance(&self.directory, settings, deadline).await
    }

    /// Plans as [`ShardJobRunner::plan`] and starts a job running the moves here.
    pub async fn rebalance(
        &self,
        settings: PlanSettings,
        deadline: Duration,
        by: &AuditActor,
    ) -> Result<(RebalancePlan, ShardJob), CatalogError> {
        let plan = self.plan(settings, deadline).await?;
        let steps: Vec<JobStep> = plan
            .moves
            .iter()
            .map(|m| JobStep {
                tenant: m.tenant.clone(),
                from_shard: m.from_shard.clone(),
                to_shard: m.to_shard.clone(),
                load: Some(m.load),
                state: StepState::Pending,
                move_id: None,
                error: None,
            })
            .collect();
        let job = self
            .directory
            .catalog()
            .start_rebalance(&steps, by, &self.instance)
            .await?;
        self.spawn(job.clone());
        Ok((plan, job))
    }

    /// Asks a running job to stop before its next move.
    pub async fn cancel(&self, id: Uuid) -> Result<ShardJob, CatalogError> {
        self.jobs.request_cancel(id).await
    }

    /// Runs the job to its end here, with a heartbeat.
    #[tracing::instrument(name = "shard_job.run", skip(self, job), fields(job_id = %job.id, kind = job.kind.as_str()))]
    pub async fn run(&self, job: ShardJob) -> ShardJob {
        let world = CatalogWorld {
            catalog: self.directory.catalog().clone(),
            jobs: self.jobs.clone(),
        };
        let heartbeat = {
            let jobs = self.jobs.clone();
            let id = job.id;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
                loop {
                    tick.tick().await;
                    if let Err(e) = jobs.heartbeat(id).await {
                        tracing::warn!(job = %id, error = %e, "shard job heartbeat failed");
                    }
                }
            })
        };
        let shards = match self.directory.catalog().shards().await {
            Ok(shards) => shards,
            Err(e) => {
                // The steps' targets are then unknown: each is skipped, the job says why.
                tracing::warn!(error = %e, "shard job: the shard list could not be read");
                Vec::new()
            }
        };
        let ids = move |name: &str| shards.iter().find(|s| s.name == name).map(|s| s.id);
        let done = execute(job, &ids, &world, self.mover.as_ref()).await;
        heartbeat.abort();
        done
    }

    fn spawn(&self, job: ShardJob) {
        let me = self.clone();
        tokio::spawn(async move {
            me.run(job).await;
        });
    }
}

#[cfg(test)]
mod tests {
    //! The executor's sequencing against an in-memory platform and a fake mover.
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct State {
        /// name → (id, status, weight, tenants)
        shards: BTreeMap<String, (ShardId, ShardStatus, u32, Vec<String>)>,
        cancel: bool,
        saves: usize,
        started: Vec<(String, String)>,
        in_flight: usize,
        max_in_flight: usize,
        /// Tenants whose move rolls back.
        failing: Vec<String>,
        /// Status the drained shard gets once the first move ends (an operator activating it).
        after_first: Option<(String, ShardStatus)>,
        /// Cancel the job once the first move ends.
        cancel_after_first: bool,
    }

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<State>>);

    impl Fake {
        fn with(&self, f: impl FnOnce(&mut State)) {
            if let Ok(mut s) = self.0.lock() {
                f(&mut s);
            }
        }
        fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
            match self.0.lock() {
                Ok(s) => f(&s),
                Err(p) => f(&p.into_inner()),
            }
        }
        fn shard(&self, n: u128, name: &str, status: ShardStatus, tenants: &[&str]) {
            self.with(|s| {
                s.shards.insert(
                    name.into(),
                    (
                        ShardId(Uuid::from_u128(n)),
                        status,
                        100,
                        tenants.iter().map(|t| (*t).to_owned()).collect(),
                    ),
                );
            });
        }
        fn ids(&self) -> impl Fn(&str) -> Option<ShardId> + Sync + use<> {
            let map: BTreeMap<String, ShardId> =
                self.read(|s| s.shards.iter().map(|(n, v)| (n.clone(), v.0)).collect());
            move |name: &str| map.get(name).copied()
        }
    }

    impl JobWorld for Fake {
        fn save<'a>(&'a self, _: &'a ShardJob) -> BoxFuture<'a, Result<(), String>> {
            self.with(|s| s.saves += 1);
            Box::pin(async { Ok(()) })
        }
        fn cancel_requested(&self, _: Uuid) -> BoxFuture<'_, Result<bool, String>> {
            let c = self.read(|s| s.cancel);
            Box::pin(async move { Ok(c) })
        }
        fn drain_view<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<DrainView, String>> {
            let view = self.read(|s| {
                let (_, status, _, tenants) = s.shards.get(shard).cloned().unwrap_or((
                    ShardId(Uuid::nil()),
                    ShardStatus::Active,
                    0,
                    Vec::new(),
                ));
                let mut tenants = tenants;
                tenants.sort();
                DrainView {
                    draining: status == ShardStatus::Draining,
                    tenants,
                    targets: s
                        .shards
                        .iter()
                        .filter(|(n, _)| n.as_str() != shard)
                        .map(|(n, (id, st, w, ts))| {
                            (
                                n.clone(),
                                ShardLoad {
                                    shard_id: *id,
                                    accepts_tenants: *st == ShardStatus::Active,
                                    weight: *w,
                                    tenants: ts.len() as u64,
                                },
                            )
                        })
                        .collect(),
                }
            });
            Box::pin(async move { Ok(view) })
        }
        fn shard_of<'a>(
            &'a self,
            tenant: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, String>> {
            let at = self.read(|s| {
                s.shards
                    .iter()
                    .find(|(_, v)| v.3.iter().any(|t| t == tenant))
                    .map(|(n, _)| n.clone())
            });
            Box::pin(async move { Ok(at) })
        }
        fn accepts_tenants<'a>(&'a self, shard: &'a str) -> BoxFuture<'a, Result<bool, String>> {
            let ok = self.read(|s| {
                s.shards
                    .get(shard)
                    .is_some_and(|v| v.1 == ShardStatus::Active)
            });
            Box::pin(async move { Ok(ok) })
        }
    }

    impl MoveStarter for Fake {
        fn start_move(&self, r: MoveRequest) -> BoxFuture<'static, Result<MoveTicket, String>> {
            let me = self.clone();
            Box::pin(async move {
                let n = me.read(|s| s.started.len());
                me.with(|s| {
                    s.started
                        .push((r.tenant.to_string(), r.to_shard_name.clone()));
                    s.in_flight += 1;
                    s.max_in_flight = s.max_in_flight.max(s.in_flight);
                });
                // The ticket carries the request's index; the move is applied when awaited.
                Ok(MoveTicket(Uuid::from_u128(n as u128 + 1)))
            })
        }
        fn wait_move(&self, t: MoveTicket) -> BoxFuture<'static, Result<MoveOutcome, String>> {
            let me = self.clone();
            Box::pin(async move {
                tokio::task::yield_now().await;
                let i = (t.0.as_u128() - 1) as usize;
                let mut outcome = Ok(MoveOutcome::Done);
                me.with(|s| {
                    s.in_flight -= 1;
                    let (tenant, to) = s.started[i].clone();
                    if s.failing.contains(&tenant) {
                        outcome = Ok(MoveOutcome::RolledBack("verification failed".into()));
                    } else {
                        for v in s.shards.values_mut() {
                            v.3.retain(|x| *x != tenant);
                        }
                        if let Some(v) = s.shards.get_mut(&to) {
                            v.3.push(tenant);
                        }
                    }
                    if i == 0 {
                        if let Some((name, st)) = s.after_first.take()
                            && let Some(v) = s.shards.get_mut(&name)
                        {
                            v.1 = st;
                        }
                        if s.cancel_after_first {
                            s.cancel = true;
                        }
                    }
                });
                outcome
            })
        }
    }

    fn job(kind: JobKind, shard: Option<&str>, steps: Vec<JobStep>) -> ShardJob {
        let now = chrono::Utc::now();
        ShardJob {
            id: Uuid::now_v7(),
            kind,
            shard: shard.map(str::to_owned),
            state: JobState::Running,
            steps,
            error: None,
            cancel_requested: false,
            requested_by: "test".into(),
            runner: "test".into(),
            heartbeat_at: now,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    fn step(tenant: &str, from: &str, to: &str) -> JobStep {
        JobStep {
            tenant: tenant.into(),
            from_shard: from.into(),
            to_shard: to.into(),
            load: Some(1),
            state: StepState::Pending,
            move_id: None,
            error: None,
        }
    }

    fn summary(job: &ShardJob) -> Vec<(&str, &str, StepState)> {
        job.steps
            .iter()
            .map(|s| (s.tenant.as_str(), s.to_shard.as_str(), s.state))
            .collect()
    }

    fn drain_world() -> Fake {
        let w = Fake::default();
        w.shard(1, "s0", ShardStatus::Draining, &["acme", "beta", "core"]);
        w.shard(2, "s1", ShardStatus::Active, &[]);
        w.shard(3, "s2", ShardStatus::Active, &["zed"]);
        w.shard(4, "s3", ShardStatus::ReadOnly, &[]);
        w.shard(5, "s4", ShardStatus::Registered, &[]);
        w
    }

    #[tokio::test]
    async fn a_drain_moves_every_tenant_one_at_a_time_where_placement_says() {
        let w = drain_world();
        let ids = w.ids();
        let done = execute(job(JobKind::Drain, Some("s0"), vec![]), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Done, "{:?}", done.error);
        // acme to the empty s1; beta ties s1/s2 at one tenant each: the smaller id; core to s2.
        assert_eq!(
            summary(&done),
            vec![
                ("acme", "s1", StepState::Done),
                ("beta", "s1", StepState::Done),
                ("core", "s2", StepState::Done)
            ]
        );
        assert!(done.steps.iter().all(|s| s.move_id.is_some()));
        assert_eq!(w.read(|s| s.max_in_flight), 1);
        assert!(w.read(|s| s.shards["s0"].3.is_empty()));
        assert!(w.read(|s| s.saves) >= 3 * 3);
    }

    #[tokio::test]
    async fn a_failed_move_is_recorded_tried_once_and_the_drain_goes_on() {
        let w = drain_world();
        w.with(|s| s.failing.push("beta".into()));
        let ids = w.ids();
        let done = execute(job(JobKind::Drain, Some("s0"), vec![]), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Failed);
        assert_eq!(done.error.as_deref(), Some("1 of 3 moves failed"));
        assert_eq!(
            summary(&done),
            vec![
                ("acme", "s1", StepState::Done),
                ("beta", "s1", StepState::Failed),
                ("core", "s1", StepState::Done)
            ]
        );
        assert!(
            done.steps[1]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("rolled back"))
        );
        assert_eq!(
            w.read(|s| s.shards["s0"].3.clone()),
            vec!["beta".to_owned()]
        );
    }

    #[tokio::test]
    async fn activating_the_shard_stops_its_drain() {
        let w = drain_world();
        w.with(|s| s.after_first = Some(("s0".into(), ShardStatus::Active)));
        let ids = w.ids();
        let done = execute(job(JobKind::Drain, Some("s0"), vec![]), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Cancelled);
        assert_eq!(done.steps.len(), 1);
        assert_eq!(w.read(|s| s.started.len()), 1);
    }

    #[tokio::test]
    async fn a_drain_with_nowhere_to_go_fails_without_moving() {
        let w = Fake::default();
        w.shard(1, "s0", ShardStatus::Draining, &["acme"]);
        w.shard(2, "s1", ShardStatus::ReadOnly, &[]);
        let ids = w.ids();
        let done = execute(job(JobKind::Drain, Some("s0"), vec![]), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Failed);
        assert!(done.steps.is_empty());
        assert!(w.read(|s| s.started.is_empty()));
    }

    #[tokio::test]
    async fn a_rebalance_runs_its_plan_in_order_and_skips_stale_steps() {
        let w = Fake::default();
        w.shard(1, "s0", ShardStatus::Active, &["acme", "beta"]);
        w.shard(2, "s1", ShardStatus::Active, &[]);
        w.shard(3, "s2", ShardStatus::ReadOnly, &["core"]);
        let steps = vec![
            step("acme", "s0", "s1"),
            step("beta", "s0", "s2"),
            step("core", "s0", "s1"),
            step("beta", "s0", "s1"),
        ];
        let ids = w.ids();
        let done = execute(job(JobKind::Rebalance, None, steps), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Done);
        assert_eq!(
            summary(&done),
            vec![
                ("acme", "s1", StepState::Done),
                ("beta", "s2", StepState::Skipped),
                ("core", "s1", StepState::Skipped),
                ("beta", "s1", StepState::Done)
            ]
        );
        assert_eq!(
            w.read(|s| s.started.clone()),
            vec![
                ("acme".to_owned(), "s1".to_owned()),
                ("beta".to_owned(), "s1".to_owned())
            ]
        );
        assert_eq!(w.read(|s| s.max_in_flight), 1);
    }

    #[tokio::test]
    async fn a_cancelled_rebalance_skips_what_is_left() {
        let w = Fake::default();
        w.shard(1, "s0", ShardStatus::Active, &["acme", "beta"]);
        w.shard(2, "s1", ShardStatus::Active, &[]);
        w.with(|s| s.cancel_after_first = true);
        let steps = vec![step("acme", "s0", "s1"), step("beta", "s0", "s1")];
        let ids = w.ids();
        let done = execute(job(JobKind::Rebalance, None, steps), &ids, &w, &w).await;
        assert_eq!(done.state, JobState::Cancelled);
        assert_eq!(
            summary(&done),
            vec![
                ("acme", "s1", StepState::Done),
                ("beta", "s1", StepState::Skipped)
            ]
        );
    }
}
