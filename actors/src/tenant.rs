//! `TenantActor`: one per active tenant. It holds the tenant's profile and placement, runs the
//! tenant's operations (any [`TenantOp`]) in tenant transactions on its shard, refreshes its profile
//! from the catalog on a timer (so a suspension made through another instance takes effect here
//! within `profile_refresh`), and passivates after `idle_timeout` without messages.
//!
//! Supervision: an operation runs as a future detached from the actor (so one slow query does not
//! hold the tenant's other requests), wrapped in `catch_unwind`. If it panics, its caller gets
//! [`TenantError::Crashed`] at once and the actor is told to stop; the actix `Supervisor` restarts
//! it, `restarting` drops its state and `started` reloads it from the catalog before the next
//! message is handled. A panic in a handler's synchronous part kills the actor outright; the
//! [`Directory`] sees the dead address on the next request and activates a new one.
//!
//! Response cache: after an operation that is not read-only ([`TenantOp::READ_ONLY`]) commits,
//! the actor awaits [`crate::cache::ResponseCache::invalidate`] before the caller gets the answer;
//! [`Authorize`] lets a cached read check the caller without running (or opening) anything.
//!
//! Fast path: the actor publishes what [`Authorize`] reads — whether the tenant serves (its id and
//! shard) and its credential cache — in a [`Published`] the directory holds beside its address.
//! A cached read whose credential was resolved a moment ago is authorized from it on the caller's
//! thread, without a mailbox round trip (two thread wake-ups, the largest cost of a cached GET);
//! anything else (a credential to look up, a tenant not serving, an open breaker) goes to the
//! actor as before. The actor is the only writer: every change of its state is published.

use crate::auth::{Call, CredentialCache, Principal};
use crate::directory::Directory;
use crate::error::TenantError;
use crate::ops::{Access, OpContext, TenantOp};
use crate::shard::ShardHandle;
use actix::prelude::*;
use aries_shards::catalog::TenantRecord;
use aries_shards::{EnterError, Fence, enter_tenant_tx};
use aries_tenants::{DomainError, LocationId, TenantId, TenantSlug, TenantStatus};
use futures::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

// ---- messages ----

/// Run a tenant operation. `span` is the caller's tracing span (the HTTP request's, carrying the
/// request id): the operation runs on the actor's thread, where the caller's span is not current.
pub struct Exec<O: TenantOp> {
    /// The operation, run in a tenant transaction on the tenant's shard.
    pub op: O,
    /// Who is calling, and from where.
    pub call: Call,
    /// Entered around the operation, so its logs carry the caller's request id.
    pub span: tracing::Span,
}

impl<O: TenantOp> Message for Exec<O> {
    type Result = Result<O::Output, TenantError>;
}

/// Checks, without running any operation, that the tenant serves and that the caller may run an
/// operation needing `access`: what the response cache asks before answering from its store, so
/// authorization is never skipped. Opens no database transaction when the credential's
/// resolution is in the actor's [`CredentialCache`].
pub struct Authorize {
    /// The permission the route's operation needs (its `O::ACCESS`).
    pub access: Access,
    /// Who is calling.
    pub call: Call,
    /// Entered around a credential lookup, so its logs carry the caller's request id.
    pub span: tracing::Span,
}

impl Message for Authorize {
    type Result = Result<Authorized, TenantError>;
}

/// What [`Authorize`] answers: what a cached answer may depend on besides the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The tenant's id (the response cache's keys are scoped by it).
    pub tenant: TenantId,
    /// The locations the principal is limited to (`None`: all); answers differ by it.
    pub location_scope: Option<Vec<LocationId>>,
}

/// The tenant's profile as the actor holds it.
#[derive(Message)]
#[rtype(result = "Result<TenantRecord, TenantError>")]
pub struct GetProfile;

/// Reload the profile from the catalog now (after a local suspend or resume).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

/// Internal: a request found the tenant's rows on another shard (a move flipped the placement);
/// the actor serves from `0` from now on, unless it already holds a newer placement.
#[derive(Message)]
#[rtype(result = "()")]
struct Relocated(Loaded);

/// Internal: an operation panicked (or failed with a database error the domain does not explain);
/// stop so the supervisor restarts with fresh state.
#[derive(Message)]
#[rtype(result = "()")]
struct Crashed;

/// Diagnostics for tests and operators.
#[derive(Message)]
#[rtype(result = "ActorStatus")]
pub struct GetStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorStatus {
    /// Times the supervisor restarted this actor.
    pub restarts: u32,
    /// Whether the profile is loaded.
    pub loaded: bool,
    /// The thread (arbiter) the actor runs on.
    pub thread: std::thread::ThreadId,
}

// ---- state ----

/// What a tenant actor publishes for [`Directory::authorize`]'s fast path (see the module
/// documentation). Written only by the actor (each change of its state), read by any thread.
pub(crate) struct Published {
    /// The tenant's id and shard while the actor holds a profile whose status is active; `None`
    /// while reloading, after a failed load, when the tenant does not serve, or once passivated.
    serving: std::sync::RwLock<Option<(TenantId, Arc<ShardHandle>)>>,
    /// Resolved credentials: the actor's own cache (it resolves, the fast path only reads).
    credentials: Arc<CredentialCache>,
    /// Origin of `last_used_ms`.
    born: Instant,
    /// Milliseconds after `born` of the last request authorized on the fast path: the actor's idle
    /// check counts it as use, so a tenant served only from the cache does not passivate.
    last_used_ms: AtomicU64,
}

impl Published {
    pub(crate) fn new(credential_ttl: Duration) -> Self {
        Self {
            serving: std::sync::RwLock::new(None),
            credentials: Arc::new(CredentialCache::new(credential_ttl)),
            born: Instant::now(),
            last_used_ms: AtomicU64::new(0),
        }
    }

    fn publish(&self, state: Option<&Loaded>) {
        let serving = state
            .filter(|l| l.tenant.status == TenantStatus::Active)
            .map(|l| (l.tenant.id, l.shard.clone()));
        if let Ok(mut guard) = self.serving.write() {
            *guard = serving;
        }
    }

    fn last_used(&self) -> Instant {
        self.born + Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed))
    }

    /// [`Authorize`] answered without the actor when everything it needs is at hand and allows
    /// the call; `None` sends the caller to the actor (which also explains a refusal).
    pub(crate) fn authorize(&self, access: Access, call: &Call) -> Option<Authorized> {
        let (tenant, shard) = self.serving.read().ok()?.clone()?;
        shard.breaker.check().ok()?;
        // Only a clean yes is answered here; a refusal is the actor's to explain.
        let principal = cached_access(&self.credentials, access, call)?.ok()?;
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_used_ms.fetch_max(ms, Ordering::Relaxed);
        Some(Authorized {
            tenant,
            location_scope: principal.and_then(|p| p.location_ids),
        })
    }
}

/// What the actor must know to serve: the profile and the shard holding the tenant's rows.
#[derive(Clone)]
pub struct Loaded {
    /// The catalog's view of the tenant: its status gates every operation, its id binds the
    /// tenant transaction.
    pub tenant: TenantRecord,
    /// The shard holding the tenant's rows. Shared (`Arc`) with the shard actor and every other
    /// tenant on the shard, so there is one pool and one breaker per shard.
    pub shard: Arc<ShardHandle>,
}

/// Timing of a tenant actor's life.
#[derive(Debug, Clone, Copy)]
pub struct TenantTimers {
    /// Stop after this long without a message.
    pub idle_timeout: Duration,
    /// Re-read the profile from the catalog this often.
    pub profile_refresh: Duration,
    /// How long a resolved credential stands before it is checked again (the revocation delay).
    pub credential_ttl: Duration,
    /// How long a request waits in the actor while the tenant is frozen by a move (its shard
    /// refuses it under the placement the actor holds and the catalog has not flipped yet) before
    /// it is answered `tenant_moving` with a retry delay. A move's freeze lasts well under a second;
    /// this bounds the wait when a move's runner dies while the tenant is frozen.
    pub move_wait: Duration,
}

pub struct TenantActor {
    /// The tenant served, and the actor's key in the directory: used to reload the profile and to
    /// forget the entry on passivation.
    slug: TenantSlug,
    /// `None` while (re)loading or after a failed load; operations then answer `ActorUnavailable`.
    state: Option<Loaded>,
    /// To load state, and to forget this actor when it passivates.
    directory: Directory,
    /// When to passivate and how often to refresh the profile; copied from the directory's settings.
    timers: TenantTimers,
    /// Last message, for passivation.
    last_used: Instant,
    /// Last profile refresh started (one timer drives refresh and idle check).
    refreshed: Instant,
    /// Supervisor restarts so far.
    restarts: u32,
    /// Set once the actor has left the directory; from then on it only drains in-flight senders.
    passivated: bool,
    /// A blocking reload is under way: do not queue another (with the catalog down, each would
    /// hold the mailbox for a connection timeout).
    reloading: bool,
    /// Resolved credentials; shared with the operations' futures, which run detached, and with
    /// the directory's fast path (it is `published.credentials`).
    credentials: Arc<CredentialCache>,
    /// What the directory's fast path reads; republished on every change of `state`.
    published: Arc<Published>,
}

impl TenantActor {
    pub(crate) fn new(
        slug: TenantSlug,
        loaded: Loaded,
        directory: Directory,
        timers: TenantTimers,
        published: Arc<Published>,
    ) -> Self {
        published.publish(Some(&loaded));
        Self {
            slug,
            state: Some(loaded),
            directory,
            timers,
            last_used: Instant::now(),
            refreshed: Instant::now(),
            restarts: 0,
            passivated: false,
            reloading: false,
            credentials: published.credentials.clone(),
            published,
        }
    }

    /// Replaces the state and publishes it for the fast path.
    fn set_state(&mut self, state: Option<Loaded>) {
        self.published.publish(state.as_ref());
        self.state = state;
    }

    /// Loads state before any further message is handled.
    fn reload_blocking(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            return;
        }
        self.reloading = true;
        // Until the new profile is in, the fast path sends callers to the mailbox, which this
        // reload holds: nobody is authorized on the profile being replaced (e.g. just suspended).
        self.published.publish(None);
        let directory = self.directory.clone();
        let slug = self.slug.clone();
        ctx.wait(
            async move { directory.load(&slug).await }.into_actor(self).map(|res, act, _| {
                act.reloading = false;
                match res {
                    Ok(loaded) => act.set_state(Some(loaded)),
                    Err(e) => {
                        tracing::warn!(tenant = %act.slug, error = %e, "tenant state could not be loaded");
                        act.set_state(None);
                    }
                }
            }),
        );
    }

    /// Refreshes the profile without holding messages; keeps the old state if the catalog fails.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let directory = self.directory.clone();
        let slug = self.slug.clone();
        ctx.spawn(async move { directory.load(&slug).await }.into_actor(self).map(|res, act, _| match res {
            Ok(loaded) => act.set_state(Some(loaded)),
            Err(TenantError::TenantNotFound) => act.set_state(None),
            Err(e) => tracing::debug!(tenant = %act.slug, error = %e, "profile refresh failed; keeping the last one"),
        }));
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let last_used = self.last_used.max(self.published.last_used());
        if last_used.elapsed() < self.timers.idle_timeout {
            return;
        }
        tracing::debug!(tenant = %self.slug, "passivating");
        self.published.publish(None);
        self.directory.forget(&self.slug, &ctx.address());
        self.passivated = true;
        ctx.stop();
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::gauge!("aries_tenant_actors_active").increment(1.0);
        if self.state.is_none() && !self.passivated {
            self.reload_blocking(ctx);
        }
        // One timer for both duties (a timer costs a few hundred bytes, per active tenant): the
        // idle check every tick, the profile refresh on the ticks where it is due.
        let check_every =
            (self.timers.idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let tick = check_every.min(self.timers.profile_refresh.max(Duration::from_millis(10)));
        ctx.run_interval(tick, move |act, ctx| {
            // Half a tick early counts as due: ticks jitter, and a refresh a tick late is worse.
            if act.refreshed.elapsed() + tick / 2 >= act.timers.profile_refresh {
                act.refreshed = Instant::now();
                act.refresh(ctx);
            }
            act.check_idle(ctx);
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Stopped for good or about to restart: either way the fast path must ask the actor.
        self.published.publish(None);
        metrics::gauge!("aries_tenant_actors_active").decrement(1.0);
    }
}

impl Supervised for TenantActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        // A reload in flight was cancelled with the rest of the context's futures.
        self.reloading = false;
        if self.passivated {
            // Restarted only because a sender still holds our address: serve it, then go.
            self.last_used = Instant::now();
            return;
        }
        self.restarts += 1;
        metrics::counter!("aries_tenant_actor_restarts_total").increment(1);
        tracing::warn!(tenant = %self.slug, restarts = self.restarts, "tenant actor restarting");
        self.set_state(None);
    }
}

// ---- handlers ----

impl<O: TenantOp> Handler<Exec<O>> for TenantActor {
    type Result = ResponseFuture<Result<O::Output, TenantError>>;

    fn handle(&mut self, msg: Exec<O>, ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let Some(loaded) = self.state.clone() else {
            self.reload_blocking(ctx);
            return Box::pin(async {
                Err(TenantError::ActorUnavailable(
                    "tenant state is reloading".into(),
                ))
            });
        };
        if loaded.tenant.status != TenantStatus::Active {
            let status = loaded.tenant.status;
            return Box::pin(async move { Err(TenantError::NotServing(status)) });
        }
        if let Err(rejected) = loaded.shard.breaker.check() {
            let shard = loaded.shard.name.clone();
            return Box::pin(async move {
                Err(TenantError::ShardUnavailable {
                    shard,
                    retry_after: rejected.retry_after,
                })
            });
        }
        let me = ctx.address();
        let Exec { op, call, span } = msg;
        let credentials = self.credentials.clone();
        let cache = self.directory.cache();
        let directory = self.directory.clone();
        let move_wait = self.timers.move_wait;
        let work = async move {
            let mut loaded = loaded;
            let mut op = op;
            let deadline = Instant::now() + move_wait;
            let mut pause = Duration::from_millis(5);
            // The shard refuses the tenant under our placement only while a move freezes it or
            // after one flipped it: follow the catalog and run the operation where it now lives.
            let outcome = loop {
                let attempt = AssertUnwindSafe(run_in_tenant_tx(
                    &loaded,
                    op,
                    call.clone(),
                    credentials.clone(),
                ))
                .catch_unwind()
                .await;
                match attempt {
                    Ok(Attempt::Moved(back)) => {
                        op = back;
                        match follow_placement(&directory, &loaded, deadline, &mut pause).await {
                            Ok(next) => {
                                if next.tenant.placement != loaded.tenant.placement {
                                    me.do_send(Relocated(next.clone()));
                                }
                                loaded = next;
                            }
                            Err(e) => break Ok(Err(e)),
                        }
                    }
                    Ok(Attempt::Done(result)) => break Ok(result),
                    Err(panic) => break Err(panic),
                }
            };
            // A committed write clears the tenant's cached answers before its own answer leaves.
            if let (Ok(Ok(_)), Some(cache), false) = (&outcome, &cache, O::READ_ONLY) {
                cache.invalidate(loaded.tenant.id).await;
            }
            match outcome {
                Ok(Err(TenantError::Domain(DomainError::Database(e)))) => {
                    // Not a rule of the domain and not an outage: a bug or a schema drift. Restart
                    // so whatever state led here is reloaded, as after a panic.
                    tracing::error!(tenant = %loaded.tenant.slug, op = O::NAME, error = %e, "tenant operation failed");
                    me.do_send(Crashed);
                    Err(TenantError::Domain(DomainError::Database(e)))
                }
                Ok(result) => result,
                Err(_) => {
                    tracing::error!(tenant = %loaded.tenant.slug, op = O::NAME, "tenant operation panicked");
                    me.do_send(Crashed);
                    Err(TenantError::Crashed)
                }
            }
        };
        Box::pin(work.instrument(span))
    }
}

/// How one try of an operation ended.
enum Attempt<O: TenantOp> {
    /// It ran (or failed for a reason retrying elsewhere would not change).
    Done(Result<O::Output, TenantError>),
    /// The shard does not serve the tenant under the actor's placement: the operation did not
    /// start, and comes back to be run where the tenant now lives.
    Moved(O),
}

/// The fence an operation passes: reads (`view` operations) look at the placement; everything else, internal operations included (consumers record deliveries), holds
/// the tenant's anchor row so a move's freeze waits for it.
fn fence_for<O: TenantOp>(loaded: &Loaded) -> Fence {
    let epoch = loaded.tenant.placement.map(|p| p.epoch);
    if O::READ_ONLY && !matches!(O::ACCESS, Access::Internal) {
        Fence::Read { epoch }
    } else {
        Fence::Write { epoch }
    }
}

/// Opens the tenant's fenced transaction on its shard. `Ok(None)`: the placement moved on.
async fn enter(
    loaded: &Loaded,
    fence: Fence,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, TenantError> {
    let shard = &loaded.shard;
    match enter_tenant_tx(&shard.pool, loaded.tenant.id, fence).await {
        Ok(tx) => Ok(Some(tx)),
        Err(EnterError::PlacementChanged) => Ok(None),
        Err(EnterError::ShardReadOnly) => Err(TenantError::ShardReadOnly {
            shard: shard.name.clone(),
        }),
        Err(EnterError::Database(e)) => Err(unavailable(shard, e)),
    }
}

/// Connection failures are reported to the shard's breaker and become `ShardUnavailable`, so the
/// caller answers 503 with a retry delay; other database errors stay what they are.
fn unavailable(shard: &ShardHandle, e: sqlx::Error) -> TenantError {
    if crate::breaker::is_unavailability(&e) {
        shard.breaker.record_failure();
        TenantError::ShardUnavailable {
            shard: shard.name.clone(),
            retry_after: Duration::from_secs(1),
        }
    } else {
        TenantError::Domain(DomainError::Database(e))
    }
}

/// After the shard refused the tenant under `loaded`'s placement: the state to retry with. The
/// catalog's placement when a move flipped it; otherwise (a move froze the tenant, or a cancelled
/// move is about to unfreeze it) the same state after a short pause, so the caller retries where
/// it was. Past `deadline`, the caller is told the tenant is moving.
async fn follow_placement(
    directory: &Directory,
    loaded: &Loaded,
    deadline: Instant,
    pause: &mut Duration,
) -> Result<Loaded, TenantError> {
    match directory.load(&loaded.tenant.slug).await {
        Ok(next) if next.tenant.placement != loaded.tenant.placement => return Ok(next),
        Ok(_) => {}
        Err(TenantError::TenantNotFound) => return Err(TenantError::TenantNotFound),
        Err(e) => {
            tracing::debug!(tenant = %loaded.tenant.slug, error = %e, "placement reload failed; retrying");
        }
    }
    if Instant::now() + *pause > deadline {
        return Err(TenantError::TenantMoving {
            retry_after: Duration::from_secs(1),
        });
    }
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(Duration::from_millis(50));
    Ok(loaded.clone())
}

/// Begin, run, commit. A shard that no longer serves the tenant under the actor's placement gives
/// the operation back ([`Attempt::Moved`]) before it started.
#[tracing::instrument(name = "tenant.op", skip_all, fields(tenant = %loaded.tenant.slug, op = O::NAME))]
async fn run_in_tenant_tx<O: TenantOp>(
    loaded: &Loaded,
    op: O,
    call: Call,
    credentials: Arc<CredentialCache>,
) -> Attempt<O> {
    let shard = &loaded.shard;
    let unavailable = |e: sqlx::Error| unavailable(shard, e);
    let mut tx = match enter(loaded, fence_for::<O>(loaded)).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return Attempt::Moved(op),
        Err(e) => return Attempt::Done(Err(e)),
    };
    let tenant = loaded.tenant.id;
    let principal = match resolve_principal(
        &mut tx,
        tenant,
        O::ACCESS,
        &call,
        &credentials,
        &unavailable,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return Attempt::Done(Err(e)),
    };
    let ctx = OpContext {
        tenant,
        principal,
        credentials,
        meta: call.meta,
    };
    Attempt::Done(match op.run(&mut tx, &ctx).await {
        Ok(out) => match tx.commit().await {
            Ok(()) => {
                shard.breaker.record_success();
                Ok(out)
            }
            Err(e) => Err(unavailable(e)),
        },
        Err(DomainError::Database(e)) => Err(unavailable(e)),
        Err(e) => Err(TenantError::Domain(e)),
    })
}

/// The caller's principal, checked against `access` (`None` for anonymous operations).
async fn resolve_principal(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    access: Access,
    call: &Call,
    credentials: &CredentialCache,
    unavailable: &impl Fn(sqlx::Error) -> TenantError,
) -> Result<Option<Principal>, TenantError> {
    let credential = match (access, &call.credential) {
        (Access::Anonymous | Access::Internal, _) => return Ok(None),
        (_, None) => {
            return Err(TenantError::Domain(DomainError::Unauthenticated(
                "no credential",
            )));
        }
        (_, Some(c)) => c,
    };
    let p = match credentials.resolve(conn, tenant, credential).await {
        Ok(p) => p,
        Err(DomainError::Database(e)) => return Err(unavailable(e)),
        Err(e) => return Err(TenantError::Domain(e)),
    };
    check_access(access, p).map(Some)
}

/// Whether `principal` may run an operation needing `access`.
/// What `call` may do for `access`, decided from `credentials` alone: `Some(Ok(None))` needs no
/// principal, `Some(Ok(Some(p)))` allowed, `Some(Err(_))` refused, `None` the credential must be
/// looked up. Shared by [`Authorize`] and the directory's fast path ([`Published::authorize`]).
fn cached_access(
    credentials: &CredentialCache,
    access: Access,
    call: &Call,
) -> Option<Result<Option<Principal>, TenantError>> {
    match (access, &call.credential) {
        (Access::Anonymous | Access::Internal, _) => Some(Ok(None)),
        (_, None) => Some(Err(TenantError::Domain(DomainError::Unauthenticated(
            "no credential",
        )))),
        (access, Some(c)) => credentials.cached(c).map(|r| {
            r.map_err(TenantError::Domain)
                .and_then(|p| check_access(access, p))
                .map(Some)
        }),
    }
}

fn check_access(access: Access, principal: Principal) -> Result<Principal, TenantError> {
    if let Access::Requires(needed) = access {
        principal.require(needed).map_err(TenantError::Domain)?;
    }
    Ok(principal)
}

/// [`Authorize`] when the credential is not cached: resolves it in a tenant transaction (a read),
/// following the placement if a move flipped it.
async fn authorize_in_tx(
    directory: Directory,
    me: Addr<TenantActor>,
    mut loaded: Loaded,
    access: Access,
    call: Call,
    credentials: Arc<CredentialCache>,
    move_wait: Duration,
) -> Result<Option<Principal>, TenantError> {
    let deadline = Instant::now() + move_wait;
    let mut pause = Duration::from_millis(5);
    let mut tx = loop {
        let epoch = loaded.tenant.placement.map(|p| p.epoch);
        match enter(&loaded, Fence::Read { epoch }).await? {
            Some(tx) => break tx,
            None => {
                let next = follow_placement(&directory, &loaded, deadline, &mut pause).await?;
                if next.tenant.placement != loaded.tenant.placement {
                    me.do_send(Relocated(next.clone()));
                }
                loaded = next;
            }
        }
    };
    let shard = &loaded.shard;
    let unavailable = |e: sqlx::Error| unavailable(shard, e);
    let principal = resolve_principal(
        &mut tx,
        loaded.tenant.id,
        access,
        &call,
        &credentials,
        &unavailable,
    )
    .await?;
    tx.commit().await.map_err(unavailable)?;
    shard.breaker.record_success();
    Ok(principal)
}

impl Handler<Authorize> for TenantActor {
    type Result = ResponseFuture<Result<Authorized, TenantError>>;

    fn handle(&mut self, msg: Authorize, ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let Some(loaded) = self.state.clone() else {
            self.reload_blocking(ctx);
            return Box::pin(async {
                Err(TenantError::ActorUnavailable(
                    "tenant state is reloading".into(),
                ))
            });
        };
        if loaded.tenant.status != TenantStatus::Active {
            let status = loaded.tenant.status;
            return Box::pin(async move { Err(TenantError::NotServing(status)) });
        }
        if let Err(rejected) = loaded.shard.breaker.check() {
            let shard = loaded.shard.name.clone();
            return Box::pin(async move {
                Err(TenantError::ShardUnavailable {
                    shard,
                    retry_after: rejected.retry_after,
                })
            });
        }
        let tenant = loaded.tenant.id;
        let answer = move |p: Option<Principal>| Authorized {
            tenant,
            location_scope: p.and_then(|p| p.location_ids),
        };
        // The common case: the credential was resolved a moment ago; no database.
        let cached = cached_access(&self.credentials, msg.access, &msg.call);
        if let Some(result) = cached {
            return Box::pin(async move { result.map(answer) });
        }
        let credentials = self.credentials.clone();
        let Authorize { access, call, span } = msg;
        let directory = self.directory.clone();
        let me = ctx.address();
        let move_wait = self.timers.move_wait;
        Box::pin(
            async move {
                authorize_in_tx(directory, me, loaded, access, call, credentials, move_wait)
                    .await
                    .map(answer)
            }
            .instrument(span),
        )
    }
}

impl Handler<GetProfile> for TenantActor {
    type Result = Result<TenantRecord, TenantError>;

    fn handle(&mut self, _: GetProfile, _: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        self.state
            .as_ref()
            .map(|l| l.tenant.clone())
            .ok_or_else(|| TenantError::ActorUnavailable("tenant state is reloading".into()))
    }
}

impl Handler<Relocated> for TenantActor {
    type Result = ();

    fn handle(&mut self, Relocated(next): Relocated, _: &mut Self::Context) {
        let newer = match (&self.state, next.tenant.placement) {
            (Some(current), Some(p)) => current.tenant.placement.is_none_or(|c| p.epoch > c.epoch),
            (None, _) => true,
            (Some(_), None) => false,
        };
        if newer {
            tracing::info!(tenant = %self.slug, shard = %next.shard.name, "tenant relocated by a move");
            self.set_state(Some(next));
        }
    }
}

impl Handler<Reload> for TenantActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        self.reload_blocking(ctx);
    }
}

impl Handler<Crashed> for TenantActor {
    type Result = ();

    fn handle(&mut self, _: Crashed, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Test-only: panics in the handler's synchronous part, which kills the actor outright (the
/// supervisor cannot catch it); the directory must replace it on the next request.
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct PanicInHandler;

#[cfg(feature = "fault-injection")]
impl Handler<PanicInHandler> for TenantActor {
    type Result = ();

    #[allow(clippy::panic)]
    fn handle(&mut self, _: PanicInHandler, _: &mut Self::Context) {
        panic!("injected panic in a handler");
    }
}

impl Handler<GetStatus> for TenantActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(ActorStatus {
            restarts: self.restarts,
            loaded: self.state.is_some(),
            thread: std::thread::current().id(),
        })
    }
}
