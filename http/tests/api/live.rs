//! Live dashboards over WebSocket (`GET /v1/tenants/{tenant}/live`) and `GET /dashboard`: the
//! snapshot then consecutive events, resume with `after=` on either instance, a write on one
//! instance reaching a socket on another, refusals before the upgrade, a slow client bounded and
//! resynced, heartbeats.

use crate::helpers::*;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How the test client presents its credential.
enum Cred<'a> {
    None,
    Bearer(&'a str),
    Protocol(&'a str),
}

fn ws_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.replacen("http://", "ws://", 1))
}

fn request(
    base: &str,
    path: &str,
    cred: &Cred<'_>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, Box<dyn std::error::Error>>
{
    let mut req = ws_url(base, path).into_client_request()?;
    match cred {
        Cred::None => {}
        Cred::Bearer(t) => {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}"))?,
            );
        }
        Cred::Protocol(t) => {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&format!("aries.v1, aries.bearer.{t}"))?,
            );
        }
    }
    Ok(req)
}

async fn connect(base: &str, path: &str, cred: Cred<'_>) -> Result<Ws, Box<dyn std::error::Error>> {
    let (ws, _) = tokio_tungstenite::connect_async(request(base, path, &cred)?).await?;
    Ok(ws)
}

/// The HTTP status a refused upgrade answered.
async fn refused(base: &str, path: &str, cred: Cred<'_>) -> u16 {
    let Ok(req) = request(base, path, &cred) else {
        return 0;
    };
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// The next JSON message (pings are answered by the client library while it reads).
async fn next(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// The next message that is neither a heartbeat nor a KPI update (those may follow any event),
/// within `within` in all.
async fn next_update(ws: &mut Ws, within: Duration) -> Option<Value> {
    next_but(ws, within, &["heartbeat", "kpis"]).await
}

/// The next message but a heartbeat (a `kpis` update included).
async fn next_message(ws: &mut Ws, within: Duration) -> Option<Value> {
    next_but(ws, within, &["heartbeat"]).await
}

/// The next message whose type is not in `skip`.
async fn next_but(ws: &mut Ws, within: Duration, skip: &[&str]) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = next(ws, left).await?;
        if !skip.iter().any(|t| m["type"] == *t) {
            return Some(m);
        }
    }
}

fn seq(m: &Value) -> i64 {
    m["seq"].as_i64().unwrap_or(-1)
}

const WAIT: Duration = Duration::from_secs(15);

/// Waits until the app's instance queue consumes (before, events miss this instance and a
/// socket would get a resync snapshot when it starts).
async fn consuming(app: &TestApp) {
    let hub = app.app_state.live.clone();
    assert!(eventually(Duration::from_secs(20), || async { hub.consuming() }).await);
}

/// On an instance whose readiness the test cannot see (a peer): writes until one event reaches
/// the socket (a snapshot may come first, when its queue started late). Returns the last seq.
async fn settle(app: &TestApp, slug: &str, ws: &mut Ws) -> Result<i64, Box<dyn std::error::Error>> {
    for i in 0..20 {
        app.create_location(slug, &format!("W{i}")).await;
        while let Some(m) = next_update(ws, Duration::from_millis(1000)).await {
            if m["type"] == "event" {
                // Drain what else is in flight.
                let mut last = seq(&m);
                while let Some(m) = next_update(ws, Duration::from_millis(500)).await {
                    last = seq(&m);
                }
                return Ok(last);
            }
        }
    }
    Err("no event ever reached the socket".into())
}

#[actix_web::test]
async fn a_snapshot_then_each_event_in_sequence() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("live-a").await;
    app.create_location("live-a", "L0").await;
    consuming(&app).await;
    let key = app.tenant_key("live-a").unwrap_or_default();
    let mut ws = connect(&app.base, "/v1/tenants/live-a/live", Cred::Bearer(&key)).await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    assert_eq!(snap["type"], "snapshot");
    let s = seq(&snap);
    assert!(s >= 1, "{snap}");
    for k in [
        "orders_today",
        "active_rentals",
        "deliveries_due",
        "pickups_due",
        "billed_this_month",
        "open_ar",
        "stock_at_reorder_point",
        "counters",
    ] {
        assert!(snap["kpis"].get(k).is_some(), "kpis lack {k}: {snap}");
    }
    assert_eq!(snap["kpis"]["open_ar"], "0.00");
    assert!(snap["recent"].as_array().is_some_and(|r| !r.is_empty()));

    for code in ["L1", "L2", "L3"] {
        app.create_location("live-a", code).await;
    }
    for (i, code) in ["L1", "L2", "L3"].iter().enumerate() {
        let m = next_update(&mut ws, WAIT).await.ok_or("no event")?;
        assert_eq!(m["type"], "event", "{m}");
        assert_eq!(seq(&m), s + 1 + i64::try_from(i)?, "{m}");
        assert_eq!(m["event"]["type"], "location.created");
        assert_eq!(m["event"]["summary"], format!("location.created {code}"));
        assert!(m["event"]["id"].is_string() && m["event"]["occurred_at"].is_string());
    }

    // The REST snapshot agrees.
    let res = app.get("/v1/tenants/live-a/dashboard").await;
    assert_eq!(res.status(), 200);
    let d: Value = res.json().await?;
    assert_eq!(seq(&d), s + 3);
    assert_eq!(d["recent"][0]["summary"], "location.created L3");
    Ok(())
}

#[actix_web::test]
async fn resume_sends_exactly_what_was_missed_on_either_instance() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("live-r").await;
    consuming(&app).await;
    let key = app.tenant_key("live-r").unwrap_or_default();
    let path = "/v1/tenants/live-r/live";
    let mut ws = connect(&app.base, path, Cred::Bearer(&key)).await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    app.create_location("live-r", "R1").await;
    let m = next_update(&mut ws, WAIT).await.ok_or("no event")?;
    let last = seq(&m);
    assert_eq!(last, seq(&snap) + 1);
    drop(ws);

    app.create_location("live-r", "R2").await;
    app.create_location("live-r", "R3").await;
    let mut ws = connect(
        &app.base,
        &format!("{path}?after={last}"),
        Cred::Bearer(&key),
    )
    .await?;
    let a = next_update(&mut ws, WAIT).await.ok_or("no resumed event")?;
    let b = next_update(&mut ws, WAIT).await.ok_or("no resumed event")?;
    assert_eq!(
        (a["type"].as_str(), seq(&a)),
        (Some("event"), last + 1),
        "{a}"
    );
    assert_eq!(
        (b["type"].as_str(), seq(&b)),
        (Some("event"), last + 2),
        "{b}"
    );
    assert_eq!(b["event"]["summary"], "location.created R3");
    // Nothing twice: the live copies of the same events are skipped.
    assert_eq!(
        next_update(&mut ws, Duration::from_millis(1500)).await,
        None
    );
    // Then live again.
    app.create_location("live-r", "R4").await;
    let c = next_update(&mut ws, WAIT).await.ok_or("no live event")?;
    assert_eq!(seq(&c), last + 3);
    drop(ws);

    // Through the other instance: the sequence is the tenant's, not the instance's.
    let (peer, _peer_handle) = app.spawn_peer().await;
    let mut ws = connect(&peer, path, Cred::Bearer(&key)).await?;
    let seen = settle(&app, "live-r", &mut ws).await?;
    drop(ws);
    app.create_location("live-r", "R5").await;
    let mut ws = connect(&peer, &format!("{path}?after={seen}"), Cred::Bearer(&key)).await?;
    let d = next_update(&mut ws, WAIT)
        .await
        .ok_or("no resumed event on the peer")?;
    assert_eq!(
        (d["type"].as_str(), seq(&d)),
        (Some("event"), seen + 1),
        "{d}"
    );
    assert_eq!(d["event"]["summary"], "location.created R5");
    assert!(
        d["kpis"].is_object(),
        "the last resumed event carries the KPIs: {d}"
    );
    assert_eq!(
        next_update(&mut ws, Duration::from_millis(1500)).await,
        None
    );

    // Too far behind (or ahead of the tenant): a snapshot instead.
    let mut ws = connect(&peer, &format!("{path}?after=999999"), Cred::Bearer(&key)).await?;
    let s = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    assert_eq!((s["type"].as_str(), seq(&s)), (Some("snapshot"), seen + 1));
    Ok(())
}

#[actix_web::test]
async fn a_write_through_one_instance_reaches_a_socket_on_another() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("live-x").await;
    let key = app.tenant_key("live-x").unwrap_or_default();
    let (peer, _peer_handle) = app.spawn_peer().await;
    let mut ws = connect(&peer, "/v1/tenants/live-x/live", Cred::Protocol(&key)).await?;
    next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    let last = settle(&app, "live-x", &mut ws).await?;
    app.create_location("live-x", "X1").await; // served by the first instance
    let m = next_update(&mut ws, WAIT)
        .await
        .ok_or("no event on the peer")?;
    assert_eq!(seq(&m), last + 1);
    assert_eq!(m["event"]["summary"], "location.created X1");
    Ok(())
}

#[actix_web::test]
async fn refused_before_the_upgrade() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("live-p").await;
    app.create_tenant("live-q").await;
    let key = app.tenant_key("live-p").unwrap_or_default();
    let other = app.tenant_key("live-q").unwrap_or_default();
    let path = "/v1/tenants/live-p/live";
    assert_eq!(refused(&app.base, path, Cred::None).await, 401);
    // A credential in the query string is not one.
    let q = format!("{path}?access_token={key}&token={key}&api_key={key}");
    assert_eq!(refused(&app.base, &q, Cred::None).await, 401);
    assert_eq!(refused(&app.base, path, Cred::Bearer("garbage")).await, 401);
    assert_eq!(refused(&app.base, path, Cred::Protocol(&other)).await, 404);
    assert_eq!(refused(&app.base, path, Cred::Bearer(&other)).await, 404);

    let role = app
        .post_json(
            "/v1/tenants/live-p/roles",
            &json!({"name": "payers-only", "permissions": ["payers:view"]}),
        )
        .await;
    assert_eq!(role.status(), 201);
    let narrow = app
        .post_json(
            "/v1/tenants/live-p/api-keys",
            &json!({"name": "narrow", "roles": ["payers-only"]}),
        )
        .await
        .json::<Value>()
        .await?["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(refused(&app.base, path, Cred::Bearer(&narrow)).await, 403);
    let res = app
        .client
        .get(app.url("/v1/tenants/live-p/dashboard"))
        .bearer_auth(&narrow)
        .send()
        .await?;
    assert_problem(res, 403, "forbidden").await;

    // Not a WebSocket request: a problem, like any refusal.
    assert_problem(app.get(path).await, 400, "bad_request").await;

    // The subprotocol pair works, and the server names the protocol it speaks.
    let (mut ws, res) =
        tokio_tungstenite::connect_async(request(&app.base, path, &Cred::Protocol(&key))?).await?;
    assert_eq!(
        res.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("aries.v1")
    );
    assert_eq!(
        next(&mut ws, WAIT).await.ok_or("no snapshot")?["type"],
        "snapshot"
    );
    Ok(())
}

#[actix_web::test]
async fn heartbeats_arrive_at_the_configured_interval() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        live: Some(aries_actors::live::LiveSettings {
            heartbeat_ms: 200,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    app.create_tenant("live-h").await;
    consuming(&app).await;
    let key = app.tenant_key("live-h").unwrap_or_default();
    let mut ws = connect(&app.base, "/v1/tenants/live-h/live", Cred::Bearer(&key)).await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    let hb = next(&mut ws, Duration::from_secs(2))
        .await
        .ok_or("no heartbeat")?;
    assert_eq!(hb, json!({"type": "heartbeat", "seq": seq(&snap)}));
    ws.close(None).await?;
    Ok(())
}

#[actix_web::test]
async fn a_slow_client_is_bounded_then_resynced() -> TestResult {
    // A small queue: events go out as they come (the kernel's buffers can take a good part of
    // the burst), so the bound must be small for the burst to overflow it for sure.
    let app = TestApp::spawn_with(AppOptions {
        live: Some(aries_actors::live::LiveSettings {
            queue_bound: 32,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let tenant = app.create_tenant("live-s").await;
    let key = app.tenant_key("live-s").unwrap_or_default();
    consuming(&app).await;
    // A client with a tiny receive buffer, so the server cannot park the burst in the kernel.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse()?;
    let stream = socket.connect(addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(
        request(&app.base, "/v1/tenants/live-s/live", &Cred::Bearer(&key))?,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    let start = seq(&snap);

    // 5,000 events committed at once (through the outbox, like any write), while the client
    // reads nothing.
    let id = TestApp::tenant_id(&tenant);
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    for i in 0..5000 {
        aries_tenants::outbox::record(
            &mut tx,
            id,
            uuid::Uuid::now_v7(),
            "location.updated",
            &json!({"code": format!("S{i}"), "padding": "x".repeat(200)}),
        )
        .await?;
    }
    tx.commit().await?;
    let end = start + 5000;
    let hub = app.app_state.live.clone();
    assert!(
        eventually(Duration::from_secs(60), || async { hub.resyncs() > 0 }).await,
        "the queue never overflowed (max depth {})",
        hub.max_queue_depth()
    );
    // Let the relay finish the burst.
    let done = eventually(Duration::from_secs(60), || async {
        let published: Option<i64> =
            sqlx::query_scalar("select published_seq from outbox_cursor where tenant_id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        published == Some(end)
    })
    .await;
    assert!(done);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bound = hub.settings().queue_bound;
    assert!(
        hub.max_queue_depth() <= bound,
        "queue depth {} above its bound {bound}",
        hub.max_queue_depth()
    );

    // Now it reads: whatever was in flight is consecutive, then a snapshot, then consecutive
    // events up to the last one.
    let mut last = start;
    let mut snapshots = 0;
    let mut events = 0;
    while last < end {
        let m = next_update(&mut ws, WAIT)
            .await
            .ok_or("the stream stopped")?;
        match m["type"].as_str() {
            Some("snapshot") => {
                snapshots += 1;
                assert!(
                    seq(&m) >= last,
                    "a snapshot went back: {} < {last}",
                    seq(&m)
                );
                last = seq(&m);
            }
            Some("event") => {
                events += 1;
                assert_eq!(seq(&m), last + 1, "a gap or a duplicate");
                last = seq(&m);
            }
            Some("kpis") => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(snapshots >= 1, "no snapshot after the overflow");
    assert!(snapshots <= 3, "resyncs not coalesced: {snapshots}");
    assert!(
        events < 5000,
        "every event was buffered for the slow client"
    );
    assert_eq!(last, end);
    Ok(())
}

#[actix_web::test]
async fn an_order_created_through_the_api_moves_the_kpis_live() -> TestResult {
    clear_of_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    app.create_tenant("live-k").await;
    consuming(&app).await;
    let t = "/v1/tenants/live-k";
    let prescriber = post_created(
        &app,
        &format!("{t}/prescribers"),
        &json!({"first_name": "Ann", "last_name": "Lee", "npi": "1234567893", "pecos_enrolled": true}),
    )
    .await;
    let list = post_created(
        &app,
        &format!("{t}/price-lists"),
        &json!({"name": "Medicare TX"}),
    )
    .await;
    let payer = post_created(
        &app,
        &format!("{t}/payers"),
        &json!({"name": "Medicare", "payer_type": "medicare", "default_price_list_id": list["id"]}),
    )
    .await;
    let mask = post_created(
        &app,
        &format!("{t}/items"),
        &json!({"code": "MASK-1", "name": "Nasal mask"}),
    )
    .await;
    let res = app
        .req(
            reqwest::Method::PUT,
            &format!(
                "{t}/price-lists/{}/items/{}",
                list["id"].as_str().unwrap_or(""),
                mask["id"].as_str().unwrap_or("")
            ),
        )
        .json(
            &json!({"hcpcs": "A7034", "modifiers": ["NU"], "sale_billable": "45.00",
                      "sale_allowable": "31.25", "default_order_type": "sale"}),
        )
        .send()
        .await?;
    assert!(res.status().is_success());
    let patient = post_created(
        &app,
        &format!("{t}/patients"),
        &json!({"first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1948-05-17",
               "address": {"line1": "12 Elm St", "city": "Austin", "state": "TX", "postal_code": "78701"},
               "primary_prescriber_id": prescriber["id"], "diagnosis_codes": ["G47.33"]}),
    )
    .await;
    post_created(
        &app,
        &format!(
            "{t}/patients/{}/policies",
            patient["id"].as_str().unwrap_or("")
        ),
        &json!({"payer_id": payer["id"], "policy_number": "1EG4TE5MK72"}),
    )
    .await;

    let key = app.tenant_key("live-k").unwrap_or_default();
    let mut ws = connect(&app.base, &format!("{t}/live"), Cred::Bearer(&key)).await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    assert_eq!(snap["kpis"]["orders_today"], 0);
    let today = chrono::Utc::now().date_naive().to_string();
    let order = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": patient["id"], "order_date": today,
                "lines": [{"item_id": mask["id"], "quantity": 1}]}),
    )
    .await;
    let m = next_update(&mut ws, WAIT).await.ok_or("no event")?;
    assert_eq!(seq(&m), seq(&snap) + 1);
    assert_eq!(
        m["event"]["summary"],
        format!(
            "order.created {}",
            order["order_number"].as_str().unwrap_or("?")
        )
    );
    // The event goes out without waiting for a KPI read; the new KPIs follow in a `kpis`
    // message (read right after the event went out, or at the KPI interval's end).
    assert!(m.get("kpis").is_none(), "{m}");
    let mut kpis = Value::Null;
    while kpis.is_null() {
        let u = next_message(&mut ws, WAIT).await.ok_or("no KPI update")?;
        assert_eq!(u["type"], "kpis", "{u}");
        assert!(seq(&u) >= seq(&m), "{u}");
        kpis = u["kpis"].clone();
    }
    assert_eq!(kpis["orders_today"], 1, "{kpis}");
    let res = app.get(&format!("{t}/dashboard")).await;
    assert_eq!(res.json::<Value>().await?["kpis"]["orders_today"], 1);
    Ok(())
}

/// An event is sent as soon as it arrives, never held back until the KPIs may be read again: with
/// a KPI interval longer than the wait, events committed one after another all arrive.
#[actix_web::test]
async fn events_are_not_held_back_for_the_kpi_interval() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        live: Some(aries_actors::live::LiveSettings {
            kpi_interval_ms: 120_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let tenant = app.create_tenant("live-n").await;
    consuming(&app).await;
    let key = app.tenant_key("live-n").unwrap_or_default();
    let mut ws = connect(&app.base, "/v1/tenants/live-n/live", Cred::Bearer(&key)).await?;
    let mut last = seq(&next(&mut ws, WAIT).await.ok_or("no snapshot")?);
    for i in 0..3 {
        commit_events(&app, &tenant, &[format!("N{i}")]).await?;
        let m = next_update(&mut ws, WAIT)
            .await
            .ok_or(format!("event {i} was held back"))?;
        assert_eq!(m["type"], "event", "{m}");
        assert_eq!(seq(&m), last + 1, "{m}");
        last = seq(&m);
    }
    Ok(())
}

/// Commits `codes.len()` events in the tenant's outbox (like any write, the relay publishes them).
async fn commit_events(app: &TestApp, tenant: &Value, codes: &[String]) -> TestResult {
    let id = TestApp::tenant_id(tenant);
    let pool = app.shard_pool(TestApp::shard_index(tenant));
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    for code in codes {
        aries_tenants::outbox::record(
            &mut tx,
            id,
            uuid::Uuid::now_v7(),
            "location.updated",
            &json!({ "code": code }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[actix_web::test]
async fn a_gap_in_the_instance_queue_is_filled_from_the_outbox() -> TestResult {
    use aries_actors::events::instance::InstanceSink as _;
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("live-g").await;
    consuming(&app).await;
    let key = app.tenant_key("live-g").unwrap_or_default();
    let mut ws = connect(&app.base, "/v1/tenants/live-g/live", Cred::Bearer(&key)).await?;
    let mut last = seq(&next(&mut ws, WAIT).await.ok_or("no snapshot")?);
    let mut filled = false;
    for attempt in 0..5 {
        // Two events commit; the hub hears of the second before the relay brings either (as
        // when the instance queue lost one): the socket must fetch the first from the outbox.
        let codes = [format!("G{attempt}a"), format!("G{attempt}b")];
        commit_events(&app, &tenant, &codes).await?;
        app.app_state
            .live
            .on_event(&aries_actors::events::Envelope {
                id: uuid::Uuid::now_v7(),
                event_type: "location.updated".into(),
                tenant: "live-g".into(),
                tenant_id: TestApp::tenant_id(&tenant),
                occurred_at: chrono::Utc::now(),
                version: 1,
                sequence: last + 2,
                data: json!({"code": "injected"}),
            });
        let a = next_update(&mut ws, WAIT).await.ok_or("no event")?;
        let b = next_update(&mut ws, WAIT).await.ok_or("no event")?;
        assert_eq!((seq(&a), seq(&b)), (last + 1, last + 2), "{a} {b}");
        assert_eq!(
            a["event"]["summary"],
            format!("location.updated {}", codes[0])
        );
        last += 2;
        if b["event"]["summary"] == "location.updated injected" {
            // The relay's copy of the first event came after the second: only the outbox read
            // can have sent it, in its place.
            filled = true;
            break;
        }
    }
    assert!(filled, "the injected event never beat the relay");
    // No event twice (the relay's late copies are skipped).
    assert_eq!(
        next_update(&mut ws, Duration::from_millis(1500)).await,
        None
    );
    Ok(())
}

#[actix_web::test]
async fn a_reset_resyncs_and_a_silent_client_is_closed() -> TestResult {
    use aries_actors::events::instance::InstanceSink as _;
    let app = TestApp::spawn_with(AppOptions {
        live: Some(aries_actors::live::LiveSettings {
            heartbeat_ms: 100,
            client_timeout_ms: 400,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    app.create_tenant("live-t").await;
    consuming(&app).await;
    let key = app.tenant_key("live-t").unwrap_or_default();
    let mut ws = connect(&app.base, "/v1/tenants/live-t/live", Cred::Bearer(&key)).await?;
    let snap = next(&mut ws, WAIT).await.ok_or("no snapshot")?;
    // The instance queue was re-created (events may have been lost): a fresh snapshot.
    app.app_state.live.on_reset();
    let again = next_update(&mut ws, WAIT).await.ok_or("no resync")?;
    assert_eq!(
        (again["type"].as_str(), seq(&again)),
        (Some("snapshot"), seq(&snap))
    );

    // A client that answers nothing (it does not read, so it does not answer pings) is closed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = next(&mut ws, Duration::from_secs(5)).await {
            assert_eq!(m["type"], "heartbeat");
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent client was not closed");
    Ok(())
}
