//! The directory of tenant actors: finds the actor for a tenant, activating it on first use.
//!
//! Activation is single-flight: the map holds one `OnceCell` per tenant, and every concurrent
//! first request awaits the same initialisation, so two requests never make two actors. A failed
//! activation (unknown tenant, catalog down) leaves no entry behind, so probing random slugs cannot
//! grow the map. Actors are spread round-robin over one arbiter (thread) per core.
//!
//! Keyed by slug, not id: the slug is what every tenant URL carries and it is immutable, so
//! keying by it saves a catalog lookup per request.
//!
//! Each entry keeps, beside the actor's address, what the actor publishes for
//! [`Directory::authorize`]'s fast path (see [`crate::tenant`]): a cached read by a credential
//! resolved a moment ago is authorized on the caller's thread, without a mailbox round trip.

use crate::auth::Call;
use crate::cache::ResponseCache;
use crate::error::TenantError;
use crate::ops::Access;
use crate::ops::TenantOp;
use crate::shard::ShardRegistry;
use crate::tenant::{
    Authorize, Authorized, Exec, Loaded, Published, Reload, TenantActor, TenantTimers,
};
use actix::prelude::*;
use aries_shards::Catalog;
use aries_tenants::TenantSlug;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Tunables of tenant actors.
#[derive(Debug, Clone, Copy)]
pub struct DirectorySettings {
    /// Arbiters (threads) tenant actors are spread over; 0 means one per core.
    pub arbiters: usize,
    /// Idle timeout and profile refresh, handed to every tenant actor this directory activates.
    pub timers: TenantTimers,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            arbiters: 0,
            timers: TenantTimers {
                idle_timeout: Duration::from_secs(300),
                profile_refresh: Duration::from_secs(5),
                credential_ttl: Duration::from_millis(500),
                move_wait: Duration::from_secs(30),
            },
        }
    }
}

/// An activated tenant: its actor, and what the actor publishes for the fast path.
struct Activated {
    /// The actor.
    addr: Addr<TenantActor>,
    /// Written by the actor, read by [`Directory::authorize`].
    published: Arc<Published>,
}

type Slot = Arc<OnceCell<Activated>>;

struct Inner {
    /// One slot per active (or activating) tenant.
    actors: DashMap<TenantSlug, Slot>,
    /// Threads tenant actors run on; stopped when the directory is dropped.
    arbiters: Vec<Arbiter>,
    /// Round-robin cursor over `arbiters`.
    next_arbiter: AtomicUsize,
    /// Source of tenant profiles and placements (activation, each actor's refresh); also lent to
    /// `Platform` and the readiness check through `catalog()`.
    catalog: Catalog,
    /// Turns a placement's shard id into the shared handle (pool, breaker) a tenant actor keeps.
    shards: ShardRegistry,
    /// Kept for the timers each activation hands its actor (`arbiters` is only read by `new`).
    settings: DirectorySettings,
    /// The response cache tenant actors invalidate after a committed write; set once at start-up
    /// by the HTTP server (the CLI runs without one).
    cache: std::sync::OnceLock<ResponseCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for a in &self.arbiters {
            a.stop();
        }
    }
}

/// Cheap to clone; all clones share one map.
#[derive(Clone)]
pub struct Directory {
    /// One `Arc`, so a clone (the platform, the app state and every tenant actor hold one) is a
    /// pointer copy and all clones share one map and one set of arbiters.
    inner: Arc<Inner>,
}

impl Directory {
    /// Must be called inside a running actix system (it starts the arbiters).
    pub fn new(catalog: Catalog, shards: ShardRegistry, settings: DirectorySettings) -> Self {
        let n = if settings.arbiters == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            settings.arbiters
        };
        let arbiters = (0..n).map(|_| Arbiter::new()).collect();
        Self {
            inner: Arc::new(Inner {
                actors: DashMap::new(),
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                catalog,
                shards,
                settings,
                cache: std::sync::OnceLock::new(),
            }),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn shards(&self) -> &ShardRegistry {
        &self.inner.shards
    }

    /// Tenant actors alive in this directory.
    pub fn active_count(&self) -> usize {
        self.inner
            .actors
            .iter()
            .filter(|e| e.value().get().is_some_and(|a| a.addr.connected()))
            .count()
    }

    /// Reads a tenant's profile and shard from the catalog.
    pub(crate) async fn load(&self, slug: &TenantSlug) -> Result<Loaded, TenantError> {
        let tenant = self.inner.catalog.tenant_by_slug(slug).await?;
        let placement = tenant.placement.ok_or(TenantError::TenantNotFound)?;
        let shard = self.inner.shards.get(placement.shard_id).await?;
        Ok(Loaded { tenant, shard })
    }

    /// The tenant's actor, activating it if needed.
    #[tracing::instrument(name = "directory.get", skip(self), fields(tenant = %slug))]
    pub async fn get(&self, slug: &TenantSlug) -> Result<Addr<TenantActor>, TenantError> {
        // Two rounds: the second replaces an actor found dead (killed by a panic in a handler).
        for _ in 0..2 {
            let slot: Slot = self.inner.actors.entry(slug.clone()).or_default().clone();
            let activated = slot.get_or_try_init(|| self.activate(slug)).await;
            match activated {
                Ok(a) if a.addr.connected() => return Ok(a.addr.clone()),
                Ok(_) => {
                    tracing::warn!(tenant = %slug, "tenant actor found dead; activating a new one");
                }
                Err(e) => {
                    self.inner
                        .actors
                        .remove_if(slug, |_, s| Arc::ptr_eq(s, &slot));
                    return Err(e);
                }
            }
            self.inner
                .actors
                .remove_if(slug, |_, s| Arc::ptr_eq(s, &slot));
        }
        Err(TenantError::ActorUnavailable(
            "the tenant's actor keeps dying".into(),
        ))
    }

    async fn activate(&self, slug: &TenantSlug) -> Result<Activated, TenantError> {
        let loaded = self.load(slug).await?;
        let i = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed)
            % self.inner.arbiters.len().max(1);
        let arbiter = self
            .inner
            .arbiters
            .get(i)
            .map(Arbiter::handle)
            .unwrap_or_else(Arbiter::current);
        let directory = self.clone();
        let slug = slug.clone();
        let timers = self.inner.settings.timers;
        metrics::counter!("aries_tenant_activations_total").increment(1);
        tracing::debug!(tenant = %slug, arbiter = i, "activating tenant actor");
        let published = Arc::new(Published::new(timers.credential_ttl));
        let theirs = published.clone();
        let addr = Supervisor::start_in_arbiter(&arbiter, move |_| {
            TenantActor::new(slug, loaded, directory, timers, theirs)
        });
        Ok(Activated { addr, published })
    }

    /// Removes the tenant's entry if it still points at `addr` (called by a passivating actor).
    pub(crate) fn forget(&self, slug: &TenantSlug, addr: &Addr<TenantActor>) {
        self.inner
            .actors
            .remove_if(slug, |_, slot| slot.get().is_some_and(|a| &a.addr == addr));
    }

    /// Whether the tenant has an actor now (tests and diagnostics).
    pub fn is_active(&self, slug: &TenantSlug) -> bool {
        self.inner
            .actors
            .get(slug)
            .is_some_and(|s| s.get().is_some_and(|a| a.addr.connected()))
    }

    /// Runs `op` for the tenant with no caller (operations with `Access::Anonymous` or
    /// `Access::Internal`).
    pub async fn exec<O: TenantOp>(
        &self,
        slug: &TenantSlug,
        op: O,
    ) -> Result<O::Output, TenantError> {
        self.exec_as(slug, Call::default(), op).await
    }

    /// Runs `op` for the tenant on behalf of `credential`'s principal.
    pub async fn exec_as<O: TenantOp>(
        &self,
        slug: &TenantSlug,
        call: Call,
        op: O,
    ) -> Result<O::Output, TenantError> {
        let addr = self.get(slug).await?;
        addr.send(Exec {
            op,
            call,
            span: tracing::Span::current(),
        })
        .await?
    }

    /// Hands tenant actors the response cache to invalidate after writes (once; later calls are
    /// ignored).
    pub fn set_cache(&self, cache: ResponseCache) {
        let _ = self.inner.cache.set(cache);
    }

    /// The response cache, if the server set one.
    pub fn cache(&self) -> Option<ResponseCache> {
        self.inner.cache.get().cloned()
    }

    /// Checks that the tenant serves and that `call`'s principal may run an operation needing
    /// `access`, without running one (see [`Authorize`]).
    pub async fn authorize(
        &self,
        slug: &TenantSlug,
        call: Call,
        access: Access,
    ) -> Result<Authorized, TenantError> {
        if let Some(done) = self.authorize_here(slug, access, &call) {
            return Ok(done);
        }
        let addr = self.get(slug).await?;
        addr.send(Authorize {
            access,
            call,
            span: tracing::Span::current(),
        })
        .await?
    }

    /// [`Self::authorize`]'s fast path: answered from what the tenant's running actor published,
    /// or `None` (ask the actor).
    fn authorize_here(&self, slug: &TenantSlug, access: Access, call: &Call) -> Option<Authorized> {
        let slot = self.inner.actors.get(slug)?;
        let activated = slot.get().filter(|a| a.addr.connected())?;
        let done = activated.published.authorize(access, call);
        if done.is_some() {
            metrics::counter!("aries_authorize_fast_total").increment(1);
        }
        done
    }

    /// Tells the tenant's actor, if it is active here, to re-read its profile now.
    pub async fn reload(&self, slug: &TenantSlug) {
        let addr = self
            .inner
            .actors
            .get(slug)
            .and_then(|s| s.get().map(|a| a.addr.clone()));
        if let Some(addr) = addr {
            let _ = addr.send(Reload).await;
        }
    }
}
