//! Live dashboards: the [`LiveHub`] is an [`InstanceSink`] that hands each tenant's events to the
//! WebSocket sessions this instance holds for that tenant (`GET /v1/tenants/{tenant}/live`).
//!
//! - **Per tenant** (a room, alive while it has subscribers): the highest sequence seen (a
//!   duplicate or older event from the instance queue is dropped), and a pump task that fans the
//!   tenant's events out **at once** and recomputes its KPIs at most every `kpi_interval_ms`: right
//!   after a batch went out when the interval has passed, else by one trailing read at the
//!   interval's end; new KPIs (only when they changed) go out as a `kpis` message. So an event
//!   never waits for the KPI interval nor for a KPI read (a database transaction), and a burst
//!   costs one KPI read per interval.
//! - **Per socket**: a bounded queue (`queue_bound` messages). When it is full the hub never
//!   waits nor grows it: it marks the socket for a resync (one flag, so many overflows make one
//!   snapshot); the socket then drops its queue and sends a fresh snapshot.
//! - The socket itself keeps the last sequence it sent: it skips what is not newer and fills a
//!   gap from the outbox ([`crate::ops::dashboard::LiveOutbox`]).
//! - [`InstanceSink::on_reset`] (the instance queue was re-created, events may be lost): every
//!   socket gets a fresh snapshot.

use crate::Directory;
use crate::events::Envelope;
use crate::events::counters::LiveCounters;
use crate::events::instance::InstanceSink;
use crate::ops::dashboard::{Dashboard, DashboardKpisInternal, Kpis, LiveEvent, summary};
use aries_tenants::{TenantId, TenantSlug};
use bytestring::ByteString;
use dashmap::DashMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// `[live]`: the dashboards' sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveSettings {
    /// A heartbeat message and a WebSocket ping every this many milliseconds.
    pub heartbeat_ms: u64,
    /// A client not heard from (pong or any frame) for this long is closed.
    pub client_timeout_ms: u64,
    /// Messages a socket's queue holds before the socket is resynced with a snapshot.
    pub queue_bound: usize,
    /// KPIs are recomputed at most this often per tenant per instance.
    pub kpi_interval_ms: u64,
    /// A resume (or gap) longer than this many events gets a fresh snapshot instead.
    pub resume_max: i64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 15_000,
            client_timeout_ms: 45_000,
            queue_bound: 256,
            kpi_interval_ms: 250,
            resume_max: 1_000,
        }
    }
}

/// The `event` message of the live protocol:
/// `{"type":"event","seq":n,"event":{…},"kpis":{…}}` (`kpis` only when given).
#[derive(serde::Serialize)]
struct EventFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: i64,
    event: &'a LiveEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    kpis: Option<&'a Kpis>,
}

/// The text frame of an `event` message (see [`EventFrame`]).
pub fn event_frame(
    event: &LiveEvent,
    kpis: Option<&Kpis>,
) -> Result<ByteString, serde_json::Error> {
    serde_json::to_string(&EventFrame {
        kind: "event",
        seq: event.seq,
        event,
        kpis,
    })
    .map(ByteString::from)
}

/// What the hub queues for a socket.
#[derive(Debug, Clone)]
pub enum Push {
    /// An event, in the dashboard's shape.
    Event {
        event: Arc<LiveEvent>,
        /// The event's message ([`event_frame`] of `event`), serialized once by the hub and
        /// shared by every socket of the tenant (a clone is a reference count).
        frame: ByteString,
    },
    /// The tenant's KPIs changed after events already sent without them.
    Kpis {
        /// The tenant's last committed event when they were read.
        seq: i64,
        kpis: Arc<Kpis>,
    },
}

/// A socket's "send a fresh snapshot" mark: set by the hub, taken by the socket.
#[derive(Default)]
struct Resync {
    /// Set while a snapshot is owed (many overflows set it once: coalesced).
    flag: AtomicBool,
    /// Wakes the socket.
    notify: Notify,
}

struct Subscriber {
    /// The socket's bounded queue.
    tx: mpsc::Sender<Push>,
    /// Its resync mark.
    resync: Arc<Resync>,
}

/// One tenant's sockets on this instance.
struct Room {
    /// The sockets, by subscription id.
    subs: Mutex<HashMap<u64, Subscriber>>,
    /// Highest sequence handed to the pump: older or repeated events are dropped.
    last_seq: AtomicI64,
    /// The pump's input (bounded; when full every socket of the tenant is resynced).
    pump: mpsc::Sender<Arc<Envelope>>,
}

struct Inner {
    /// Runs the KPI recompute.
    directory: Directory,
    /// The Redis counters added to the KPIs.
    counters: LiveCounters,
    /// Intervals and bounds.
    settings: LiveSettings,
    /// Tenants with at least one socket here.
    rooms: DashMap<TenantId, Arc<Room>>,
    /// Subscription ids.
    next_id: AtomicU64,
    /// The deepest any socket queue has been (test-visible; never above `queue_bound`).
    max_depth: AtomicUsize,
    /// Resyncs requested (coalesced: one per flag set).
    resyncs: AtomicU64,
    /// Times the instance queue (re)started consuming: 0 until this instance receives events.
    resets: AtomicU64,
}

/// The instance's live-dashboard hub (cheap to clone).
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

/// One socket's side of the hub; unsubscribes when dropped.
pub struct Subscription {
    /// The tenant.
    tenant: TenantId,
    /// Its id in the room.
    id: u64,
    /// The socket's queue.
    rx: mpsc::Receiver<Push>,
    /// Its resync mark.
    resync: Arc<Resync>,
    /// To leave the room.
    hub: LiveHub,
}

impl Subscription {
    /// The next queued event (`None` when the hub is gone).
    pub async fn recv(&mut self) -> Option<Push> {
        self.rx.recv().await
    }

    /// What wakes the socket when a resync may be owed (check [`Self::take_resync`]).
    pub fn resync_signal(&self) -> ResyncSignal {
        ResyncSignal(self.resync.clone())
    }

    /// `true` once per owed resync; the queue is dropped then (the snapshot replaces it).
    pub fn take_resync(&mut self) -> bool {
        if !self.resync.flag.swap(false, Ordering::AcqRel) {
            return false;
        }
        while self.rx.try_recv().is_ok() {}
        true
    }
}

/// Wakes a socket owed a resync (held apart from its [`Subscription`], which it receives from).
pub struct ResyncSignal(Arc<Resync>);

impl ResyncSignal {
    /// Resolves when a resync may be owed.
    pub async fn requested(&self) {
        self.0.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let inner = &self.hub.inner;
        if let Some(room) = inner.rooms.get(&self.tenant)
            && let Ok(mut subs) = room.subs.lock()
        {
            subs.remove(&self.id);
        }
        inner.rooms.remove_if(&self.tenant, |_, room| {
            room.subs.lock().is_ok_and(|s| s.is_empty())
        });
    }
}

fn mark(resync: &Resync, hub: &Inner) {
    if !resync.flag.swap(true, Ordering::AcqRel) {
        hub.resyncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("aries_live_resyncs_total").increment(1);
    }
    resync.notify.notify_one();
}

impl LiveHub {
    pub fn new(directory: Directory, counters: LiveCounters, settings: LiveSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                directory,
                counters,
                settings,
                rooms: DashMap::new(),
                next_id: AtomicU64::new(1),
                max_depth: AtomicUsize::new(0),
                resyncs: AtomicU64::new(0),
                resets: AtomicU64::new(0),
            }),
        }
    }

    /// The intervals and bounds.
    pub fn settings(&self) -> &LiveSettings {
        &self.inner.settings
    }

    /// The deepest any socket's queue has been on this instance.
    pub fn max_queue_depth(&self) -> usize {
        self.inner.max_depth.load(Ordering::Relaxed)
    }

    /// Resyncs requested on this instance so far.
    pub fn resyncs(&self) -> u64 {
        self.inner.resyncs.load(Ordering::Relaxed)
    }

    /// Whether the instance's event queue has started consuming (events reach the sockets).
    pub fn consuming(&self) -> bool {
        self.inner.resets.load(Ordering::Relaxed) > 0
    }

    /// Joins the tenant's room (creating it and its pump if needed). Subscribe before reading the
    /// snapshot, so nothing committed after it is missed.
    pub fn subscribe(&self, tenant: TenantId, slug: &TenantSlug) -> Subscription {
        let bound = self.inner.settings.queue_bound.max(1);
        let (tx, rx) = mpsc::channel(bound);
        let resync = Arc::new(Resync::default());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let room = self
            .inner
            .rooms
            .entry(tenant)
            .or_insert_with(|| self.open_room(tenant, slug.clone()));
        if let Ok(mut subs) = room.subs.lock() {
            subs.insert(
                id,
                Subscriber {
                    tx,
                    resync: resync.clone(),
                },
            );
        }
        drop(room);
        Subscription {
            tenant,
            id,
            rx,
            resync,
            hub: self.clone(),
        }
    }

    fn open_room(&self, tenant: TenantId, slug: TenantSlug) -> Arc<Room> {
        let (pump, input) = mpsc::channel(10_000);
        let room = Arc::new(Room {
            subs: Mutex::new(HashMap::new()),
            last_seq: AtomicI64::new(0),
            pump,
        });
        tokio::spawn(run_pump(
            Arc::downgrade(&self.inner),
            Arc::downgrade(&room),
            tenant,
            slug,
            input,
        ));
        room
    }

    /// The tenant's snapshot read without a caller (the hub's own recompute), with the Redis
    /// counters (left empty when Redis does not answer).
    pub async fn read_internal(&self, tenant: TenantId, slug: &TenantSlug) -> Option<Dashboard> {
        read_internal(&self.inner, tenant, slug).await
    }

    /// The tenant's live counters for today (empty when Redis does not answer).
    pub async fn counters(&self, tenant: TenantId) -> std::collections::BTreeMap<String, i64> {
        let today = chrono::Utc::now().date_naive();
        self.inner
            .counters
            .read(tenant, today)
            .await
            .unwrap_or_default()
    }
}

async fn read_internal(inner: &Inner, tenant: TenantId, slug: &TenantSlug) -> Option<Dashboard> {
    let today = chrono::Utc::now().date_naive();
    let mut d = inner
        .directory
        .exec(slug, DashboardKpisInternal { today })
        .await
        .map_err(|e| tracing::warn!(error = %e, "live KPIs not recomputed"))
        .ok()?;
    d.kpis.counters = inner.counters.read(tenant, today).await.unwrap_or_default();
    Some(d)
}

/// Fans a tenant's events out as they come and recomputes its KPIs at most every
/// `kpi_interval_ms` (see the module documentation). Ends when the room closes.
async fn run_pump(
    inner: std::sync::Weak<Inner>,
    room: std::sync::Weak<Room>,
    tenant: TenantId,
    slug: TenantSlug,
    mut input: mpsc::Receiver<Arc<Envelope>>,
) {
    let mut last_kpis: Option<Kpis> = None;
    // When the KPIs may be read again.
    let mut next = tokio::time::Instant::now();
    // Events went out without a KPI read after them: one is due at `next`.
    let mut owed = false;
    loop {
        let first = if owed {
            tokio::select! {
                e = input.recv() => match e {
                    Some(e) => Some(e),
                    None => return,
                },
                () = tokio::time::sleep_until(next) => None,
            }
        } else {
            match input.recv().await {
                Some(e) => Some(e),
                None => return,
            }
        };
        let (Some(inner), Some(room)) = (inner.upgrade(), room.upgrade()) else {
            return;
        };
        let interval = Duration::from_millis(inner.settings.kpi_interval_ms);
        let Some(first) = first else {
            // The trailing read for events sent without KPIs.
            owed = false;
            next = tokio::time::Instant::now() + interval;
            send_kpis(&inner, &room, tenant, &slug, &mut last_kpis).await;
            continue;
        };
        let mut batch = vec![first];
        while let Ok(e) = input.try_recv() {
            batch.push(e);
        }
        // The events go out first, whatever the KPIs: a KPI read is a database transaction, and
        // under load it would hold every event of the batch for as long as it takes.
        let mut pushes = Vec::with_capacity(batch.len());
        for env in batch {
            let event = Arc::new(LiveEvent {
                id: env.id,
                summary: summary(&env.event_type, &env.data),
                event_type: env.event_type.clone(),
                occurred_at: env.occurred_at,
                seq: env.sequence,
            });
            match event_frame(&event, None) {
                Ok(frame) => pushes.push(Push::Event { event, frame }),
                // Not expected (plain structs); the sockets fill the gap from the outbox.
                Err(e) => tracing::error!(error = %e, seq = event.seq, "live event not serialized"),
            }
        }
        fan_out(&inner, &room, &pushes);
        drop(pushes);
        if tokio::time::Instant::now() < next {
            // Read at the interval's end (the trailing read above).
            owed = true;
            continue;
        }
        owed = false;
        next = tokio::time::Instant::now() + interval;
        send_kpis(&inner, &room, tenant, &slug, &mut last_kpis).await;
    }
}

/// Reads the tenant's KPIs and, when they differ from `last` (the last sent), sends them to every
/// socket of the room as a `kpis` message.
async fn send_kpis(
    inner: &Inner,
    room: &Room,
    tenant: TenantId,
    slug: &TenantSlug,
    last: &mut Option<Kpis>,
) {
    if let Some(d) = read_internal(inner, tenant, slug).await
        && last.as_ref() != Some(&d.kpis)
    {
        *last = Some(d.kpis.clone());
        fan_out(
            inner,
            room,
            &[Push::Kpis {
                seq: d.seq,
                kpis: Arc::new(d.kpis),
            }],
        );
    }
}

/// Queues `pushes` on every socket of the room; a full socket is marked for a resync instead.
fn fan_out(inner: &Inner, room: &Room, pushes: &[Push]) {
    let bound = inner.settings.queue_bound.max(1);
    let Ok(subs) = room.subs.lock() else {
        return;
    };
    for sub in subs.values() {
        for push in pushes {
            match sub.tx.try_send(push.clone()) {
                Ok(()) => {
                    let depth = bound.saturating_sub(sub.tx.capacity());
                    inner.max_depth.fetch_max(depth, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    mark(&sub.resync, inner);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
}

impl InstanceSink for LiveHub {
    fn on_event(&self, event: &Envelope) {
        let Some(room) = self.inner.rooms.get(&event.tenant_id).map(|r| r.clone()) else {
            return;
        };
        if room.last_seq.fetch_max(event.sequence, Ordering::AcqRel) >= event.sequence {
            return; // a duplicate or an older event: the sockets have it, or will fill it in
        }
        if room.pump.try_send(Arc::new(event.clone())).is_err()
            && let Ok(subs) = room.subs.lock()
        {
            for sub in subs.values() {
                mark(&sub.resync, &self.inner);
            }
        }
    }

    fn on_reset(&self) {
        self.inner.resets.fetch_add(1, Ordering::Relaxed);
        for room in &self.inner.rooms {
            if let Ok(subs) = room.subs.lock() {
                for sub in subs.values() {
                    mark(&sub.resync, &self.inner);
                }
            }
        }
    }
}
