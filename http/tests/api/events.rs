//! Events across instances: the outbox relay (order, confirms, one leader per shard, recovery
//! after a broker restart) and the dead letters (archive, list, replay). A test "probe" queue,
//! bound to the tenant's routing keys on the test app's own exchange, sees what any consumer
//! would.

use crate::helpers::*;
use aries_actors::events::Envelope;
use aries_actors::events::topology::Names;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

fn names(app: &TestApp) -> Names {
    Names {
        ns: app.settings.rabbitmq.namespace.clone(),
        queue_expires_ms: Some(10 * 60 * 1000),
    }
}

fn rabbit_url(app: &TestApp) -> String {
    use secrecy::ExposeSecret as _;
    app.settings.rabbitmq.url.expose_secret().to_owned()
}

/// A durable queue bound to `tenant.<slug>.#` on the app's events exchange.
async fn probe(app: &TestApp, slug: &str) -> Result<(Connection, Channel, String), lapin::Error> {
    let conn = Connection::connect(&rabbit_url(app), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let names = names(app);
    names.declare_events(&ch).await?;
    let queue = format!("{}.probe.{slug}", names.ns);
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongUInt(10 * 60 * 1000));
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args)
        .await?;
    ch.queue_bind(
        queue.as_str().into(),
        names.events_exchange().into(),
        format!("tenant.{slug}.#").into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok((conn, ch, queue))
}

/// A message as the probe got it.
struct Got {
    envelope: Envelope,
    props: BasicProperties,
    routing_key: String,
}

/// Takes what the probe queue holds until `want` messages arrived or `limit` passed.
async fn take(ch: &Channel, queue: &str, want: usize, limit: Duration) -> Vec<Got> {
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while got.len() < want && start.elapsed() < limit {
        match ch.basic_get(queue.into(), BasicGetOptions::default()).await {
            Ok(Some(m)) => {
                let _ = m.delivery.ack(BasicAckOptions::default()).await;
                let envelope: Envelope = match serde_json::from_slice(&m.delivery.data) {
                    Ok(e) => e,
                    Err(e) => panic!("not an envelope: {e}"),
                };
                got.push(Got {
                    envelope,
                    props: m.delivery.properties.clone(),
                    routing_key: m.delivery.routing_key.as_str().to_owned(),
                });
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    got
}

/// The tenant's outbox: (event id, sequence, published?) in sequence order.
async fn outbox(app: &TestApp, tenant: &Value) -> Vec<(uuid::Uuid, i64, bool)> {
    let pool = app.shard_pool(TestApp::shard_index(tenant));
    let tid = TestApp::tenant_id(tenant);
    let Ok(mut tx) = aries_shards::begin_tenant_tx(&pool, tid).await else {
        return Vec::new();
    };
    sqlx::query_as::<_, (uuid::Uuid, i64, bool)>(
        "select event_id, seq, published_at is not null from outbox_event where tenant_id = $1 order by seq",
    )
    .bind(tid)
    .fetch_all(&mut *tx)
    .await
    .unwrap_or_default()
}

#[actix_web::test]
async fn the_relay_publishes_each_tenants_events_once_in_commit_order_with_two_instances_running()
-> TestResult {
    let app = TestApp::spawn().await;
    // A second instance runs relays for the same shards: only one may lead per shard.
    let (_peer, _peer_handle) = app.spawn_peer().await;
    let (_conn, ch, queue) = probe(&app, "relayco").await?;
    let tenant = app.create_tenant("relayco").await;
    // Concurrent writes: the sequence must still be the commit order, without gaps.
    let bodies: Vec<Value> = (0..30)
        .map(|i| location_body(&format!("R{i:02}")))
        .collect();
    let mut writes = Vec::new();
    for body in &bodies {
        writes.push(app.post_json("/v1/tenants/relayco/locations", body));
    }
    for res in futures::future::join_all(writes).await {
        assert_eq!(res.status(), 201);
    }
    let stored = outbox(&app, &tenant).await;
    assert!(stored.len() >= 30, "{} events stored", stored.len());
    let got = take(&ch, &queue, stored.len(), Duration::from_secs(30)).await;
    // Nothing more arrives (no duplicate from a second relay).
    let extra = take(&ch, &queue, 1, Duration::from_millis(1500)).await;
    assert!(extra.is_empty(), "a duplicate was published");
    let ids: Vec<uuid::Uuid> = got.iter().map(|g| g.envelope.id).collect();
    let want: Vec<uuid::Uuid> = stored.iter().map(|s| s.0).collect();
    assert_eq!(ids, want, "published in sequence order, each once");
    let seqs: Vec<i64> = got.iter().map(|g| g.envelope.sequence).collect();
    assert_eq!(seqs, (1..=got.len() as i64).collect::<Vec<_>>());
    for g in &got {
        assert_eq!(
            g.props.message_id().as_ref().map(|s| s.as_str().to_owned()),
            Some(g.envelope.id.to_string())
        );
        assert_eq!(*g.props.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            g.routing_key,
            format!("tenant.relayco.{}", g.envelope.event_type)
        );
        assert_eq!(g.envelope.tenant, "relayco");
        assert_eq!(g.envelope.tenant_id, TestApp::tenant_id(&tenant));
        assert_eq!(g.envelope.version, 1);
        // The priority the notification queue orders by.
        assert_eq!(
            *g.props.priority(),
            Some(aries_actors::events::notifications::priority_of(
                &g.envelope.event_type
            ))
        );
    }
    let created: Vec<&Got> = got
        .iter()
        .filter(|g| g.envelope.event_type == "location.created")
        .collect();
    assert_eq!(created.len(), 30);
    assert!(created[0].envelope.data["code"].is_string());
    // Marked sent once confirmed.
    let marked = eventually(Duration::from_secs(10), || async {
        outbox(&app, &tenant).await.iter().all(|e| e.2)
    })
    .await;
    assert!(marked, "every event is marked published");
    Ok(())
}

#[actix_web::test]
async fn a_broker_restart_in_the_middle_of_a_stream_of_writes_loses_no_event() -> TestResult {
    let broker = Arc::new(RabbitServer::start()?);
    let app = TestApp::spawn_with(AppOptions {
        rabbit_url: Some(broker.url()),
        ..Default::default()
    })
    .await;
    // The probe is durable on the private broker: it keeps what reached it across the restart.
    let (probe_conn, _ch, queue) = loop {
        match probe(&app, "restartco").await {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    drop(probe_conn);
    let tenant = app.create_tenant("restartco").await;
    // A webhook receiver counts what the consumers did with the stream, too.
    let receiver = crate::webhooks::Receiver::start()?;
    let (_endpoint, secret) = crate::webhooks::register(
        &app,
        "restartco",
        &json!({"url": format!("{}/hook", receiver.base), "event_types": ["location.created"]}),
    )
    .await?;
    receiver.trust("/hook", &secret);
    let mut acknowledged = 0;
    for i in 0..120 {
        if i == 40 {
            let b = broker.clone();
            tokio::task::spawn_blocking(move || b.stop()).await?;
        }
        if i == 80 {
            let b = broker.clone();
            tokio::task::spawn_blocking(move || b.boot().map_err(|e| e.to_string())).await??;
        }
        let res = app
            .post_json(
                "/v1/tenants/restartco/locations",
                &location_body(&format!("S{i:03}")),
            )
            .await;
        assert_eq!(res.status(), 201, "writes do not depend on the broker");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 120);
    // The relay reconnects by itself and resumes where it stopped.
    let published = eventually(Duration::from_secs(60), || async {
        let o = outbox(&app, &tenant).await;
        !o.is_empty() && o.iter().all(|e| e.2)
    })
    .await;
    assert!(published, "every event was published after the restart");
    let stored = outbox(&app, &tenant).await;
    let conn = Connection::connect(&broker.url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let got = take(&ch, &queue, stored.len(), Duration::from_secs(30)).await;
    let mut seen: HashMap<uuid::Uuid, usize> = HashMap::new();
    for g in &got {
        *seen.entry(g.envelope.id).or_default() += 1;
    }
    let want: HashSet<uuid::Uuid> = stored.iter().map(|s| s.0).collect();
    let have: HashSet<uuid::Uuid> = seen.keys().copied().collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "{} of {} events lost: {missing:?}",
        missing.len(),
        want.len()
    );
    let locations_created = got
        .iter()
        .filter(|g| g.envelope.event_type == "location.created")
        .map(|g| g.envelope.id)
        .collect::<HashSet<_>>()
        .len();
    assert_eq!(locations_created, 120, "one event per acknowledged write");
    // Every event reached the webhook receiver (consumers reconnected by themselves).
    let hooked = eventually(Duration::from_secs(60), || async {
        crate::webhooks::received_ids(&receiver, "/hook").len() >= 120
    })
    .await;
    assert!(
        hooked,
        "{} of 120 events reached the webhook receiver",
        crate::webhooks::received_ids(&receiver, "/hook").len()
    );
    Ok(())
}

#[actix_web::test]
async fn a_dead_letter_is_archived_listed_and_replayed_to_its_queue_once() -> TestResult {
    let app = TestApp::spawn().await;
    let names = names(&app);
    let conn = Connection::connect(&rabbit_url(&app), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    names.declare_dead_letters(&ch).await?;
    // A work queue of a consumer, here played by the test.
    let work = format!("{}.probe-work", names.ns);
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongUInt(10 * 60 * 1000));
    ch.queue_declare(work.as_str().into(), QueueDeclareOptions::durable(), args)
        .await?;
    // What a consumer publishes when it gives up.
    let body = br#"{"id":"not really an event"}"#;
    let mut headers = FieldTable::default();
    headers.insert(
        "x-aries-queue".into(),
        AMQPValue::LongString(work.as_str().into()),
    );
    headers.insert(
        "x-aries-error".into(),
        AMQPValue::LongString("receiver answered 500".into()),
    );
    headers.insert("x-aries-attempt".into(), AMQPValue::LongUInt(3));
    headers.insert(
        "x-aries-routing-key".into(),
        AMQPValue::LongString("tenant.acme.order.approved".into()),
    );
    headers.insert(
        "x-aries-tenant".into(),
        AMQPValue::LongString("acme".into()),
    );
    ch.basic_publish(
        names.dead_letter_exchange().into(),
        "tenant.acme.order.approved".into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default()
            .with_message_id("msg-1".into())
            .with_type("order.approved".into())
            .with_delivery_mode(2)
            .with_headers(headers),
    )
    .await?;
    // Archived into the catalog and listed.
    let mut listed = Value::Null;
    for _ in 0..200 {
        let res = app.get("/v1/platform/dead-letters?status=dead").await;
        listed = res.json().await.unwrap_or(Value::Null);
        if listed["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed["data"].as_array().is_some_and(|d| !d.is_empty()),
        "archived: {listed}"
    );
    let letter = &listed["data"][0];
    assert_eq!(letter["queue"], work.as_str());
    assert_eq!(letter["message_id"], "msg-1");
    assert_eq!(letter["error"], "receiver answered 500");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["tenant"], "acme");
    assert_eq!(letter["event_type"], "order.approved");
    assert_eq!(letter["routing_key"], "tenant.acme.order.approved");
    assert_eq!(letter["body"], String::from_utf8_lossy(body).as_ref());
    let id = letter["id"].as_str().unwrap_or_default().to_owned();
    let by_queue = app
        .get("/v1/platform/dead-letters?queue=probe-work")
        .await
        .json::<Value>()
        .await?;
    assert_eq!(by_queue["data"].as_array().map(Vec::len), Some(1));
    let none = app
        .get("/v1/platform/dead-letters?queue=webhooks")
        .await
        .json::<Value>()
        .await?;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    // Replay: back to the work queue only, as a first attempt, byte for byte.
    let res = app
        .post_json(
            &format!("/v1/platform/dead-letters/{id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let replayed: Value = res.json().await?;
    assert_eq!(replayed["status"], "replayed");
    assert_eq!(replayed["replays"], 1);
    let mut got = None;
    for _ in 0..100 {
        if let Some(m) = ch
            .basic_get(work.as_str().into(), BasicGetOptions::default())
            .await?
        {
            m.delivery.ack(BasicAckOptions::default()).await?;
            got = Some(m.delivery);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.ok_or("the replay reached the work queue")?;
    assert_eq!(got.data, body);
    assert_eq!(
        got.properties.message_id().as_ref().map(|s| s.as_str()),
        Some("msg-1")
    );
    let attempt = got
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-aries-attempt").cloned());
    assert_eq!(attempt, Some(AMQPValue::LongUInt(1)));
    // Once.
    let again = app
        .post_json(
            &format!("/v1/platform/dead-letters/{id}/replay"),
            &json!({}),
        )
        .await;
    assert_problem(again, 409, "dead_letter_already_replayed").await;
    // The operator's audit trail says who replayed it.
    let audit = app.get("/v1/platform/audit").await.json::<Value>().await?;
    assert!(
        audit["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "dead_letter.replayed" && e["target_id"] == id.as_str()),
        "{audit}"
    );
    // A dead letter whose queue is gone is refused, not confirmed into the void, and stays dead.
    let mut gone_headers = FieldTable::default();
    gone_headers.insert(
        "x-aries-queue".into(),
        AMQPValue::LongString(format!("{}.no-such-consumer", names.ns).as_str().into()),
    );
    gone_headers.insert("x-aries-error".into(), AMQPValue::LongString("boom".into()));
    ch.basic_publish(
        names.dead_letter_exchange().into(),
        "tenant.acme.order.approved".into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default()
            .with_message_id("msg-gone".into())
            .with_delivery_mode(2)
            .with_headers(gone_headers),
    )
    .await?;
    let mut orphan = Value::Null;
    for _ in 0..200 {
        let page: Value = app
            .get("/v1/platform/dead-letters?queue=no-such-consumer")
            .await
            .json()
            .await?;
        if let Some(l) = page["data"].as_array().and_then(|d| d.first()) {
            orphan = l.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let orphan_id = orphan["id"].as_str().ok_or("archived orphan")?.to_owned();
    let res = app
        .post_json(
            &format!("/v1/platform/dead-letters/{orphan_id}/replay"),
            &json!({}),
        )
        .await;
    assert_problem(res, 409, "dead_letter_queue_missing").await;
    let still: Value = app
        .get(&format!("/v1/platform/dead-letters/{orphan_id}"))
        .await
        .json()
        .await?;
    assert_eq!(
        (&still["status"], &still["replays"]),
        (&json!("dead"), &json!(0))
    );
    // Bad ids and filters are problems, not 500s.
    assert_problem(
        app.get("/v1/platform/dead-letters/nope").await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!(
            "/v1/platform/dead-letters/{}",
            uuid::Uuid::now_v7()
        ))
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/platform/dead-letters?status=zombie").await,
        422,
        "invalid_query",
    )
    .await;
    Ok(())
}

/// A consumer played by the test: fails events of locations whose code starts with `F` until
/// `fixed`, fails those starting with `T` on their first attempt only, handles the rest.
struct Flaky {
    name: &'static str,
    fixed: std::sync::atomic::AtomicBool,
    /// (event id, location code, attempt, final attempt?) of every call, on any "instance".
    calls: std::sync::Mutex<Vec<(uuid::Uuid, String, u32, bool)>>,
}

impl aries_actors::events::EventHandler for Flaky {
    fn name(&self) -> &'static str {
        self.name
    }
    fn bindings(&self) -> Vec<String> {
        vec!["tenant.flakyco.location.created".into()]
    }
    fn handle<'a>(
        &'a self,
        d: &'a aries_actors::events::Delivery,
    ) -> futures::future::BoxFuture<'a, Result<(), aries_actors::events::HandleError>> {
        Box::pin(async move {
            let code = d.envelope.data["code"].as_str().unwrap_or("").to_owned();
            if let Ok(mut calls) = self.calls.lock() {
                calls.push((d.envelope.id, code.clone(), d.attempt, d.final_attempt));
            }
            let fixed = self.fixed.load(std::sync::atomic::Ordering::SeqCst);
            if code.starts_with('F') && !fixed {
                return Err(aries_actors::events::HandleError::Retry(format!(
                    "receiver refused {code}"
                )));
            }
            if code.starts_with('T') && d.attempt == 1 {
                return Err(aries_actors::events::HandleError::Retry("try later".into()));
            }
            Ok(())
        })
    }
}

#[actix_web::test]
async fn consumers_retry_with_backoff_dead_letter_after_the_last_attempt_and_replay_after_a_fix()
-> TestResult {
    let app = TestApp::spawn().await;
    let broker = app.app_state.broker.clone();
    let handler = Arc::new(Flaky {
        name: "flaky",
        fixed: false.into(),
        calls: Default::default(),
    });
    let config = app.settings.events.consumer();
    assert_eq!(config.max_attempts, 3);
    // Two "instances" compete for the queue.
    for instance in ["a", "b"] {
        aries_actors::events::consumer::spawn(
            broker.clone(),
            handler.clone(),
            config,
            instance.into(),
        );
    }
    // The queue must be bound before the events are published.
    let bound = eventually(Duration::from_secs(20), || async {
        let Some(conn) = broker.rabbit.connection().await else {
            return false;
        };
        let Ok(ch) = conn.create_channel().await else {
            return false;
        };
        ch.queue_declare(
            broker.names.work_queue("flaky").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok_and(|q| q.consumer_count() == 2)
    })
    .await;
    assert!(bound, "both consumers are up");
    app.create_tenant("flakyco").await;
    for code in ["OK1", "OK2", "OK3", "T1", "T2", "F1"] {
        app.create_location("flakyco", code).await;
    }
    let calls_of = |code: &str| -> Vec<(u32, bool)> {
        handler
            .calls
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|x| x.1 == code)
                    .map(|x| (x.2, x.3))
                    .collect()
            })
            .unwrap_or_default()
    };
    let settled = eventually(Duration::from_secs(30), || async {
        calls_of("F1").len() == 3 && calls_of("T1").len() == 2 && calls_of("T2").len() == 2
    })
    .await;
    assert!(
        settled,
        "calls: {:?}",
        handler.calls.lock().map(|c| c.clone())
    );
    // Handled once each (across both instances), retried once, dead after three attempts.
    for ok in ["OK1", "OK2", "OK3"] {
        assert_eq!(calls_of(ok), vec![(1, false)], "{ok}");
    }
    assert_eq!(calls_of("T1"), vec![(1, false), (2, false)]);
    assert_eq!(calls_of("F1"), vec![(1, false), (2, false), (3, true)]);
    // The dead letter is archived with the handler's error.
    let mut letter = Value::Null;
    for _ in 0..200 {
        let page: Value = app
            .get("/v1/platform/dead-letters?queue=flaky&status=dead")
            .await
            .json()
            .await?;
        if let Some(l) = page["data"].as_array().and_then(|d| d.first()) {
            letter = l.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letter["error"], "receiver refused F1", "{letter}");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["event_type"], "location.created");
    assert_eq!(letter["tenant"], "flakyco");
    assert_eq!(letter["queue"], broker.names.work_queue("flaky").as_str());
    // Fixed, then replayed: handled again as a first attempt, and only by this consumer.
    handler
        .fixed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let id = letter["id"].as_str().unwrap_or_default();
    let res = app
        .post_json(
            &format!("/v1/platform/dead-letters/{id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let replayed = eventually(Duration::from_secs(20), || async {
        calls_of("F1").len() == 4
    })
    .await;
    assert!(replayed);
    assert_eq!(calls_of("F1")[3], (1, false));
    // It stays replayed: it did not die again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Value = app
        .get(&format!("/v1/platform/dead-letters/{id}"))
        .await
        .json()
        .await?;
    assert_eq!(after["status"], "replayed");
    assert_eq!(after["deaths"], 1);
    assert_eq!(calls_of("OK1").len(), 1, "others were not handled again");
    Ok(())
}

#[actix_web::test]
async fn an_instance_waits_for_the_migrations_lease_another_one_holds() -> TestResult {
    let app = TestApp::spawn().await;
    let locks = app.app_state.locks.clone();
    let lease = locks
        .acquire_waiting(
            "migrations",
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| e.to_string())?;
    let peer = app.spawn_peer();
    tokio::pin!(peer);
    tokio::select! {
        _ = &mut peer => panic!("the peer migrated while another instance held the lease"),
        _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
    }
    locks.release(lease).await.map_err(|e| e.to_string())?;
    let started = tokio::time::timeout(Duration::from_secs(30), &mut peer).await;
    assert!(started.is_ok(), "the peer started once the lease was free");
    Ok(())
}

#[actix_web::test]
async fn the_notification_queue_is_a_priority_queue_and_the_work_queues_dead_letter() -> TestResult
{
    let app = TestApp::spawn().await;
    let broker = app.app_state.broker.clone();
    let conn = broker.wait_connection().await;
    // Declared by the instance at start-up: wait for it.
    let queue = broker.names.work_queue("notifications");
    let declared = eventually(Duration::from_secs(20), || async {
        let Ok(ch) = conn.create_channel().await else {
            return false;
        };
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .is_ok()
    })
    .await;
    assert!(declared);
    // Re-declaring with the very arguments the platform uses is accepted...
    let ch = conn.create_channel().await?;
    broker
        .names
        .declare_consumer(&ch, "notifications", &["tenant.#".to_owned()], Some(10))
        .await?;
    // ...and with any other `x-max-priority` (or none) the broker refuses: the queue has it.
    for other in [Some(5), None] {
        let ch = conn.create_channel().await?;
        let res = broker
            .names
            .declare_consumer(&ch, "notifications", &["tenant.#".to_owned()], other)
            .await;
        assert!(res.is_err(), "x-max-priority {other:?} was accepted");
    }
    Ok(())
}
