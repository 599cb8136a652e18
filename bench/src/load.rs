//! `aries-load`: the load generator of `make bench` for what wrk cannot do.
//!
//! - `http`: requests at a **fixed rate** (open loop): request *i* is due at `start + i / rate` and
//!   its latency is measured from that due time, not from when it was sent, so a stalled server
//!   cannot hide its stall by slowing the generator down (no coordinated omission). Used for the
//!   "p99 at half of peak" rows; the peaks themselves come from wrk (closed loop).
//! - `provision`: creates tenants and an owner API key for each through the platform API, with a
//!   few requests in flight; writes `slug key` lines for the other modes.
//! - `activate`: the first request to each listed tenant, a few in flight: each one starts the
//!   tenant's actor on this instance (a cold activation), measured end to end.
//! - `ws`: opens live-dashboard sockets spread over the listed tenants, then creates events at a
//!   fixed rate through the API (POST locations, round robin over the tenants) and measures each
//!   event's delay from its `occurred_at` (commit time, same host clock) to its arrival on every
//!   socket of its tenant.
//!
//! Every mode prints one JSON object (and writes it to `--out`): counts, throughput and latency
//! percentiles in milliseconds. Percentiles are exact (all samples are kept and sorted).

use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser)]
#[command(about = "AriesOne's load generator for make bench")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Write the JSON summary here as well as to stdout.
    #[arg(long, global = true)]
    out: Option<String>,
}

#[derive(Subcommand)]
enum Mode {
    /// Requests at a fixed rate, latency from each request's due time.
    Http {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request body (a file); `{n}` in it is replaced by a per-request counter.
        #[arg(long)]
        body_file: Option<String>,
        /// `Name: value`, repeatable; `{n}` in a value is replaced by the request's counter (e.g.
        /// a distinct `Idempotency-Key` per request).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds measured (after the warm-up).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Seconds at the same rate before measuring.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Keep-alive connections at most (requests beyond wait for one).
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Creates `count` tenants with an owner API key each.
    Provision {
        #[arg(long)]
        base: String,
        #[arg(long)]
        operator_token: String,
        #[arg(long)]
        count: usize,
        /// Slugs are `<prefix><n>`.
        #[arg(long, default_value = "cold-")]
        prefix: String,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Where the `slug key` lines go.
        #[arg(long)]
        tenants: String,
    },
    /// The first request to each tenant of `--tenants` (cold activation).
    Activate {
        #[arg(long)]
        base: String,
        #[arg(long)]
        tenants: String,
        /// The tenant route requested (appended to `/v1/tenants/<slug>`).
        #[arg(long, default_value = "/locations?limit=1")]
        path: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Live sockets and events at a fixed rate; event-to-socket latency.
    Ws {
        #[arg(long)]
        base: String,
        #[arg(long)]
        tenants: String,
        /// Use only the first N tenants of the file.
        #[arg(long)]
        tenant_count: usize,
        #[arg(long, default_value_t = 5000)]
        sockets: usize,
        /// Events per second (all tenants together).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// `api`: create the events here (POST locations at `--rate`); `none`: another process
        /// commits them (make bench writes them straight into the outbox), only measure.
        #[arg(long, default_value = "api")]
        drive: String,
    },
}

/// Latency samples in microseconds and their summary.
#[derive(Default)]
struct Samples(Vec<u64>);

#[derive(Serialize)]
struct Summary {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    avg_ms: f64,
}

impl Samples {
    fn summary(mut self) -> Summary {
        self.0.sort_unstable();
        let n = self.0.len();
        let at = |q: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            self.0[i] as f64 / 1000.0
        };
        Summary {
            count: n,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: self.0.last().map_or(0.0, |v| *v as f64 / 1000.0),
            avg_ms: if n == 0 {
                0.0
            } else {
                self.0.iter().sum::<u64>() as f64 / n as f64 / 1000.0
            },
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn client(connections: usize) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
}

fn read_tenants(path: &str) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (slug, key) = l.split_once(' ')?;
            Some((slug.to_owned(), key.to_owned()))
        })
        .collect())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Http {
            url,
            method,
            body_file,
            headers,
            rate,
            duration,
            warmup,
            connections,
        } => {
            let body = body_file.map(std::fs::read_to_string).transpose()?;
            http_fixed_rate(HttpLoad {
                url,
                method: method.parse()?,
                body,
                headers,
                rate,
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                connections,
            })
            .await?
        }
        Mode::Provision {
            base,
            operator_token,
            count,
            prefix,
            concurrency,
            tenants,
        } => {
            provision(
                &base,
                &operator_token,
                count,
                &prefix,
                concurrency,
                &tenants,
            )
            .await?
        }
        Mode::Activate {
            base,
            tenants,
            path,
            concurrency,
        } => activate(&base, &read_tenants(&tenants)?, &path, concurrency).await?,
        Mode::Ws {
            base,
            tenants,
            tenant_count,
            sockets,
            rate,
            duration,
            warmup,
            drive,
        } => {
            let mut all = read_tenants(&tenants)?;
            all.truncate(tenant_count);
            ws(WsLoad {
                base,
                tenants: all,
                sockets,
                rate,
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                drive_api: match drive.as_str() {
                    "api" => true,
                    "none" => false,
                    other => return Err(format!("--drive api|none, not {other}").into()),
                },
            })
            .await?
        }
    };
    let text = serde_json::to_string_pretty(&result)?;
    println!("{text}");
    if let Some(out) = cli.out {
        std::fs::write(out, text)?;
    }
    Ok(())
}

/// The headers of request `n` (`{n}` in a value replaced by `n`).
fn headers_for(
    raw: &[String],
    n: u64,
) -> Result<reqwest::header::HeaderMap, Box<dyn std::error::Error + Send + Sync>> {
    let mut map = reqwest::header::HeaderMap::new();
    for h in raw {
        let (name, value) = h.split_once(':').ok_or("a header is `Name: value`")?;
        map.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().replace("{n}", &n.to_string()).parse()?,
        );
    }
    Ok(map)
}

struct HttpLoad {
    url: String,
    method: reqwest::Method,
    body: Option<String>,
    headers: Vec<String>,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
}

/// Open loop at `rate`: request i is due at start + i/rate; its latency counts from then.
async fn http_fixed_rate(load: HttpLoad) -> Result<Value, Box<dyn std::error::Error>> {
    headers_for(&load.headers, 0).map_err(|e| e.to_string())?;
    let client = client(load.connections)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(load.connections));
    let samples = Arc::new(std::sync::Mutex::new(Samples::default()));
    let failures = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        u64,
    >::new()));
    let counter = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / load.rate.max(0.001));
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let mut i: u64 = 0;
    loop {
        let due = start + interval.mul_f64(i as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        i += 1;
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut req = client
            .request(load.method.clone(), &load.url)
            .headers(headers_for(&load.headers, n).map_err(|e| e.to_string())?);
        if let Some(body) = &load.body {
            req = req.body(body.replace("{n}", &n.to_string()));
        }
        let (samples, failures) = (Arc::clone(&samples), Arc::clone(&failures));
        tasks.spawn(async move {
            let outcome = req.send().await;
            let outcome = match outcome {
                Ok(res) => {
                    let status = res.status();
                    match res.bytes().await {
                        Ok(_) if status.is_success() => Ok(()),
                        Ok(_) => Err(status.as_u16().to_string()),
                        Err(e) => Err(format!("body: {e}")),
                    }
                }
                Err(e) => Err(format!("send: {e}")),
            };
            drop(permit);
            if due < measure_from {
                return;
            }
            let took = micros(due.elapsed());
            match outcome {
                Ok(()) => samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
                    .push(took),
                Err(why) => {
                    *failures
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(why)
                        .or_default() += 1;
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let samples = std::mem::take(
        &mut *samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let failures = failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let summary = samples.summary();
    Ok(json!({
        "mode": "http", "url": load.url, "method": load.method.as_str(), "target_rps": load.rate,
        "rps": summary.count as f64 / load.duration.as_secs_f64(),
        "latency": summary, "failed": failures.values().sum::<u64>(), "failures": failures,
    }))
}

async fn provision(
    base: &str,
    token: &str,
    count: usize,
    prefix: &str,
    concurrency: usize,
    out: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    let client = client(concurrency)?;
    let started = Instant::now();
    let results: Vec<Result<String, String>> = futures::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                let slug = format!("{prefix}{i}");
                let res = client
                    .post(format!("{base}/v1/platform/tenants"))
                    .bearer_auth(token)
                    .json(
                        &json!({"slug": slug, "name": format!("Cold DME {i}"), "plan": "standard"}),
                    )
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if res.status() != 201 {
                    return Err(format!("tenant {slug}: {}", res.status()));
                }
                let res = client
                    .post(format!("{base}/v1/platform/tenants/{slug}/api-keys"))
                    .bearer_auth(token)
                    .json(&json!({"name": "bench", "roles": ["owner"]}))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if res.status() != 201 {
                    return Err(format!("key of {slug}: {}", res.status()));
                }
                let key: Value = res.json().await.map_err(|e| e.to_string())?;
                let key = key["secret"].as_str().ok_or("no secret")?.to_owned();
                Ok(format!("{slug} {key}"))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(l) => lines.push(l),
            Err(e) => failures.push(e),
        }
    }
    lines.sort();
    std::fs::write(out, lines.join("\n") + "\n")?;
    let took = started.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Err(format!(
            "{} tenants failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        )
        .into());
    }
    Ok(
        json!({"mode": "provision", "tenants": lines.len(), "seconds": took,
              "per_second": lines.len() as f64 / took}),
    )
}

async fn activate(
    base: &str,
    tenants: &[(String, String)],
    path: &str,
    concurrency: usize,
) -> Result<Value, Box<dyn std::error::Error>> {
    let client = client(concurrency)?;
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = futures::stream::iter(tenants)
        .map(|(slug, key)| {
            let client = client.clone();
            async move {
                let t0 = Instant::now();
                let res = client
                    .get(format!("{base}/v1/tenants/{slug}{path}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = res.status();
                res.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("{slug}: {status}"));
                }
                Ok(micros(t0.elapsed()))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed().as_secs_f64();
    let mut samples = Samples::default();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(us) => samples.0.push(us),
            Err(e) => failures.push(e),
        }
    }
    let summary = samples.summary();
    Ok(
        json!({"mode": "activate", "tenants": tenants.len(), "rps": summary.count as f64 / took,
              "latency": summary, "failed": failures.len(),
              "failures": &failures[..failures.len().min(10)]}),
    )
}

/// What the generator reads of a live socket's message (the rest is skipped unparsed).
#[derive(serde::Deserialize)]
struct WsFrame {
    #[serde(rename = "type")]
    kind: String,
    event: Option<WsEvent>,
}

#[derive(serde::Deserialize)]
struct WsEvent {
    occurred_at: String,
}

struct WsLoad {
    base: String,
    tenants: Vec<(String, String)>,
    sockets: usize,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    /// Create the events here (else another process does).
    drive_api: bool,
}

/// What the sockets saw, shared by their tasks.
#[derive(Default)]
struct WsSeen {
    /// Event-to-socket delays (µs) of events that arrived during the measured window.
    latency: Samples,
    /// Event frames received in the window.
    events: u64,
    /// Snapshots after the first (a socket was resynced: it fell behind or the hub reset).
    resyncs: u64,
    /// Sockets that closed or failed before the end.
    dropped: u64,
}

async fn ws(load: WsLoad) -> Result<Value, Box<dyn std::error::Error>> {
    if load.tenants.is_empty() {
        return Err("no tenants".into());
    }
    let ws_base = load.base.replacen("http", "ws", 1);
    let seen = Arc::new(Mutex::new(WsSeen::default()));
    // Events that committed within this (wall-clock) window are measured.
    let window = Arc::new(std::sync::OnceLock::<(
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )>::new());
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicU64::new(0));
    // Open the sockets, 100 handshakes in flight at a time; each waits for its snapshot.
    let opened = Instant::now();
    let mut sockets = tokio::task::JoinSet::new();
    let open_slots = Arc::new(tokio::sync::Semaphore::new(100));
    for i in 0..load.sockets {
        let (slug, key) = load.tenants[i % load.tenants.len()].clone();
        let url = format!("{ws_base}/v1/tenants/{slug}/live");
        let (seen, window, stop, connected, open_slots) = (
            Arc::clone(&seen),
            Arc::clone(&window),
            Arc::clone(&stop),
            Arc::clone(&connected),
            Arc::clone(&open_slots),
        );
        sockets.spawn(async move {
            let permit = open_slots
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let mut request = url.into_client_request().map_err(|e| e.to_string())?;
            request.headers_mut().insert(
                "Authorization",
                format!("Bearer {key}")
                    .parse()
                    .map_err(|_| "header".to_owned())?,
            );
            // A small read buffer: tungstenite zeroes its whole read buffer (128 KiB by default)
            // before each read, which at 5,000 sockets cost the generator more than the parsing.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(8 * 1024);
            // As the console's dashboard does: an overloaded server (503, 429) is asked again
            // after a pause, until the open deadline; anything else fails the socket.
            let give_up = Instant::now() + Duration::from_secs(110);
            let mut stream = loop {
                match tokio_tungstenite::connect_async_with_config(
                    request.clone(),
                    Some(config),
                    false,
                )
                .await
                {
                    Ok((stream, _)) => break stream,
                    Err(tokio_tungstenite::tungstenite::Error::Http(res))
                        if matches!(res.status().as_u16(), 429 | 503)
                            && Instant::now() < give_up =>
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            };
            let mut snapshots = 0u64;
            let mut local = Vec::new();
            let mut events = 0u64;
            let mut permit = Some(permit);
            loop {
                let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(next) = next else { continue };
                let Some(Ok(msg)) = next else {
                    seen.lock().await.dropped += 1;
                    break;
                };
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Ping(p) => {
                        let _ = stream.send(Message::Pong(p)).await;
                        continue;
                    }
                    _ => continue,
                };
                let arrived = chrono::Utc::now();
                let frame: WsFrame = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                match frame.kind.as_str() {
                    "snapshot" => {
                        snapshots += 1;
                        if snapshots == 1 {
                            connected.fetch_add(1, Ordering::Relaxed);
                            permit.take();
                        }
                    }
                    "event" => {
                        let at = frame
                            .event
                            .and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.occurred_at).ok())
                            .map(|at| at.with_timezone(&chrono::Utc));
                        let in_window = |at: &chrono::DateTime<chrono::Utc>| {
                            window.get().is_some_and(|(from, to)| from <= at && at < to)
                        };
                        if let Some(at) = at.filter(in_window) {
                            let delay = (arrived - at).num_microseconds().unwrap_or(0).max(0);
                            local.push(u64::try_from(delay).unwrap_or(0));
                            events += 1;
                        }
                    }
                    _ => {}
                }
            }
            let mut s = seen.lock().await;
            s.latency.0.extend(local);
            s.events += events;
            s.resyncs += snapshots.saturating_sub(1);
            let _ = stream.close(None).await;
            Ok::<(), String>(())
        });
    }
    // Wait until every socket has its snapshot (or failed).
    let open_deadline = Instant::now() + Duration::from_secs(120);
    while connected.load(Ordering::Relaxed) < load.sockets as u64 && Instant::now() < open_deadline
    {
        if sockets.len() < load.sockets {
            // Some task ended already: a failed handshake.
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_secs = opened.elapsed().as_secs_f64();
    let sockets_open = connected.load(Ordering::Relaxed);
    if sockets_open < load.sockets as u64 {
        let mut why = Vec::new();
        while let Some(r) = sockets.try_join_next() {
            if let Ok(Err(e)) = r {
                why.push(e);
            }
        }
        stop.store(true, Ordering::Relaxed);
        return Err(format!(
            "only {sockets_open} of {} sockets opened in {open_secs:.1} s: {:?}",
            load.sockets,
            &why[..why.len().min(3)]
        )
        .into());
    }
    // Drive events: POST a location, round robin over the tenants, at a fixed rate.
    let client = client(64)?;
    let interval = Duration::from_secs_f64(1.0 / load.rate.max(0.001));
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let utc_from = chrono::Utc::now() + load.warmup;
    let _ = window.set((utc_from, utc_from + load.duration));
    let posted_in_window = Arc::new(AtomicU64::new(0));
    let post_failed = Arc::new(AtomicU64::new(0));
    let mut posts = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    let mut i: u64 = 0;
    let per_tenant = load.sockets / load.tenants.len();
    if !load.drive_api {
        // Ready: the driver (another process) may start. It runs for warm-up + duration.
        eprintln!("sockets ready");
        if let Some(ready) = std::env::var_os("ARIES_LOAD_READY_FILE") {
            std::fs::write(ready, "ready\n")?;
        }
        tokio::time::sleep_until(end.into()).await;
    } else {
        loop {
            let due = start + interval.mul_f64(i as f64);
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let (slug, key) = load.tenants[(i as usize) % load.tenants.len()].clone();
            let permit = Arc::clone(&slots).acquire_owned().await?;
            let req = client
            .post(format!("{}/v1/tenants/{slug}/locations", load.base))
            .bearer_auth(key)
            .json(&json!({"code": format!("W{i}"), "name": format!("Branch {i}"),
                "address": {"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"}}));
            let (posted, failed) = (Arc::clone(&posted_in_window), Arc::clone(&post_failed));
            let in_window = due >= measure_from;
            posts.spawn(async move {
                let ok = matches!(req.send().await, Ok(r) if r.status() == 201);
                drop(permit);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                } else if in_window {
                    posted.fetch_add(1, Ordering::Relaxed);
                }
            });
            while posts.try_join_next().is_some() {}
            i += 1;
        }
    }
    while posts.join_next().await.is_some() {}
    // Let the last events arrive, then stop the sockets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    while sockets.join_next().await.is_some() {}
    let seen = std::mem::take(&mut *seen.lock().await);
    let posted = posted_in_window.load(Ordering::Relaxed);
    // Approximate: the POSTs are counted by due time, the frames by commit time. Unknown (0) when
    // the events are driven elsewhere.
    let expected = posted * per_tenant as u64;
    let summary = seen.latency.summary();
    Ok(json!({
        "mode": "ws", "sockets": load.sockets, "tenants": load.tenants.len(),
        "sockets_per_tenant": per_tenant, "open_seconds": open_secs,
        "target_events_per_second": load.rate,
        "events_posted": posted,
        // Driven elsewhere: the events that reached the sockets (each reaches every socket of its tenant).
        "events_per_second": if load.drive_api {
            posted as f64 / load.duration.as_secs_f64()
        } else {
            seen.events as f64 / per_tenant.max(1) as f64 / load.duration.as_secs_f64()
        },
        "post_failed": post_failed.load(Ordering::Relaxed),
        "frames_expected": expected, "frames_received": seen.events,
        "frames_per_second": seen.events as f64 / load.duration.as_secs_f64(),
        "resyncs": seen.resyncs, "sockets_dropped": seen.dropped,
        "latency": summary,
    }))
}
