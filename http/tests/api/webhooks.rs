//! Webhooks: endpoints over HTTP (CRUD, validation, the secret shown once, isolation) and the
//! dispatcher called directly against a local receiver that verifies each signature with
//! `aries_tenants::webhooks::verify`.

use crate::helpers::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aries_actors::events::webhooks::{WebhookDispatcher, WebhookSettings};
use aries_actors::events::{Delivery, Envelope, EventHandler, HandleError};
use aries_tenants::webhooks::verify;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// Which endpoint (each endpoint has its own path).
    pub(crate) path: String,
    /// Header names lower-cased.
    pub(crate) headers: HashMap<String, String>,
    /// The raw body.
    pub(crate) body: Vec<u8>,
    /// `Aries-Signature` verified with the secret registered for the path, within 5 minutes.
    pub(crate) signature_ok: bool,
}

/// What the receiver's handler shares with the test.
#[derive(Default)]
struct ReceiverState {
    /// Every request, in arrival order.
    got: Mutex<Vec<Received>>,
    /// The status it answers with.
    status: AtomicU16,
    /// The secret to verify with, per path.
    secrets: Mutex<HashMap<String, String>>,
}

/// A webhook receiver on 127.0.0.1 (a third party, started by the test).
pub(crate) struct Receiver {
    pub(crate) base: String,
    state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, st: web::Data<ReceiverState>) -> HttpResponse {
    let path = req.path().to_owned();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let secret = st.secrets.lock().ok().and_then(|s| s.get(&path).cloned());
    let signature = headers.get("aries-signature").cloned().unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let signature_ok = secret.is_some_and(|s| verify(&signature, &s, &body, now, 300).is_ok());
    if let Ok(mut got) = st.got.lock() {
        got.push(Received {
            path,
            headers,
            body: body.to_vec(),
            signature_ok,
        });
    }
    let status = actix_web::http::StatusCode::from_u16(st.status.load(Ordering::SeqCst))
        .unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status).body(format!("receiver answered {status}"))
}

impl Receiver {
    pub(crate) fn start() -> Result<Receiver, Box<dyn std::error::Error>> {
        let state = Arc::new(ReceiverState {
            status: AtomicU16::new(200),
            ..Default::default()
        });
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Receiver {
            base: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        })
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.state.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub(crate) fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn trust(&self, path: &str, secret: &str) {
        if let Ok(mut s) = self.state.secrets.lock() {
            s.insert(path.to_owned(), secret.to_owned());
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// An event of `tenant` as the relay would publish it.
fn envelope(tenant: &Value, event_type: &str) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        tenant: tenant["slug"].as_str().unwrap_or_default().to_owned(),
        tenant_id: TestApp::tenant_id(tenant),
        occurred_at: chrono::Utc::now(),
        version: 1,
        sequence: 1,
        data: json!({"id": Uuid::now_v7(), "status": "approved"}),
    }
}

/// Attempt `attempt` of the message carrying `env`.
fn delivery(env: &Envelope, attempt: u32, final_attempt: bool) -> Delivery {
    Delivery {
        envelope: env.clone(),
        body: serde_json::to_vec(env).unwrap_or_default(),
        attempt,
        final_attempt,
    }
}

fn dispatcher(app: &TestApp, allow_private_networks: bool) -> WebhookDispatcher {
    WebhookDispatcher::new(
        app.app_state.directory.clone(),
        WebhookSettings {
            timeout_ms: 3_000,
            allow_private_networks,
            ..Default::default()
        },
    )
}

/// Registers an endpoint and returns (id, secret).
pub(crate) async fn register(
    app: &TestApp,
    slug: &str,
    body: &Value,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    let created = post_created(app, &format!("/v1/tenants/{slug}/webhooks"), body).await;
    let id = created["id"].as_str().ok_or("endpoint id")?.to_owned();
    let secret = created["secret"].as_str().ok_or("secret")?.to_owned();
    Ok((id, secret))
}

async fn json_of(res: reqwest::Response, status: u16) -> Result<Value, Box<dyn std::error::Error>> {
    assert_eq!(res.status().as_u16(), status, "{}", res.url());
    Ok(res.json().await?)
}

#[actix_web::test]
async fn endpoints_crud_validation_and_the_secret_shown_once() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("hooked").await;
    let t = "/v1/tenants/hooked";
    let body = json!({"url": "https://hooks.example.com/aries", "description": "ERP",
                      "event_types": ["order.*", "patient.created", "order.*"]});
    let res = app
        .req(Method::POST, &format!("{t}/webhooks"))
        .header("idempotency-key", "wh-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some("\"1\"")
    );
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let created: Value = res.json().await?;
    let id = created["id"].as_str().ok_or("id")?.to_owned();
    assert_eq!(location, format!("{t}/webhooks/{id}"));
    assert_eq!(
        created["event_types"],
        json!(["order.*", "patient.created"])
    );
    assert_eq!(created["active"], true);
    let secret = created["secret"].as_str().ok_or("secret")?.to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 49,
        "{secret}"
    );
    // The same key and body: the first answer again.
    let again = app
        .req(Method::POST, &format!("{t}/webhooks"))
        .header("idempotency-key", "wh-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(again.json::<Value>().await?["id"], created["id"]);

    // Reads never show the secret.
    let one = app.get(&format!("{t}/webhooks/{id}")).await;
    let one_text = one.text().await?;
    assert!(
        !one_text.contains("whsec_") && !one_text.contains("\"secret\""),
        "{one_text}"
    );
    let list = app.get(&format!("{t}/webhooks")).await;
    let list: Value = json_of(list, 200).await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert!(!list.to_string().contains("whsec_"));

    // Validation: every problem at once, named by field.
    let bad = app
        .post_json(
            &format!("{t}/webhooks"),
            &json!({"url": "ftp://files.example.com/", "event_types": ["Order.Approved", "order.*"]}),
        )
        .await;
    let problem = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(
        field_errors(&problem),
        field_pairs(&[("url", "invalid_url"), ("event_types[0]", "invalid_format")])
    );
    let empty = app
        .post_json(
            &format!("{t}/webhooks"),
            &json!({"url": "https://x.example.com/", "event_types": []}),
        )
        .await;
    let problem = assert_problem(empty, 422, "validation_failed").await;
    assert_eq!(
        field_errors(&problem),
        field_pairs(&[("event_types", "required")])
    );
    let unknown = app
        .post_json(
            &format!("{t}/webhooks"),
            &json!({"url": "https://x.example.com/", "event_types": ["*"], "secret": "mine"}),
        )
        .await;
    assert_problem(unknown, 422, "validation_failed").await;

    // Merge patch with If-Match.
    let path = format!("{t}/webhooks/{id}");
    let stale = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"7\"")
        .json(&json!({"active": false}))
        .send()
        .await?;
    assert_problem(stale, 412, "version_mismatch").await;
    let patched = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"active": false, "event_types": ["*"], "description": null}))
        .send()
        .await?;
    let patched = json_of(patched, 200).await?;
    assert_eq!(
        (
            &patched["active"],
            &patched["event_types"],
            &patched["version"]
        ),
        (&json!(false), &json!(["*"]), &json!(2))
    );
    assert!(patched.get("description").is_none() && patched.get("secret").is_none());
    let bad_patch = app
        .req(Method::PATCH, &path)
        .json(&json!({"url": "not a url"}))
        .send()
        .await?;
    assert_problem(bad_patch, 422, "validation_failed").await;

    // Rotation: a new secret, shown once, and a new version.
    let rotated = app
        .req(Method::POST, &format!("{path}/rotate-secret"))
        .header("if-match", "\"2\"")
        .send()
        .await?;
    let rotated = json_of(rotated, 200).await?;
    let new_secret = rotated["secret"].as_str().ok_or("new secret")?.to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert_eq!(rotated["version"], 3);
    let text = app.get(&path).await.text().await?;
    assert!(!text.contains(&new_secret) && !text.contains("whsec_"));

    // The delivery log of an endpoint that has none; unknown ids.
    let deliveries = json_of(app.get(&format!("{path}/deliveries")).await, 200).await?;
    assert_eq!(deliveries["data"], json!([]));
    assert_problem(
        app.get(&format!("{path}/deliveries?status=lost")).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{path}/deliveries/{}", Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/webhooks/{}/deliveries", Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/webhooks/nope")).await,
        422,
        "invalid_id",
    )
    .await;

    // Delete with If-Match.
    let stale = app
        .req(Method::DELETE, &path)
        .header("if-match", "\"1\"")
        .send()
        .await?;
    assert_problem(stale, 412, "version_mismatch").await;
    let gone = app
        .req(Method::DELETE, &path)
        .header("if-match", "\"3\"")
        .send()
        .await?;
    assert_eq!(gone.status(), 204);
    assert_problem(app.get(&path).await, 404, "not_found").await;

    // Events and audit rows: one per change, never a secret.
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events: Vec<_> = aries_tenants::outbox::list(&mut tx, TestApp::tenant_id(&tenant))
        .await?
        .into_iter()
        .filter(|e| e.event_type.starts_with("webhook_endpoint."))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "webhook_endpoint.created",
            "webhook_endpoint.updated",
            "webhook_endpoint.secret_rotated",
            "webhook_endpoint.deleted"
        ]
    );
    for e in &events {
        assert!(!e.payload.to_string().contains("whsec_"), "{}", e.payload);
    }
    let audit = json_of(
        app.get(&format!("{t}/audit?target_type=webhook_endpoint"))
            .await,
        200,
    )
    .await?;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(4));
    assert!(!audit.to_string().contains("whsec_"));
    Ok(())
}

#[actix_web::test]
async fn private_targets_refused_foreign_tenants_see_nothing_failures_classified() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        refuse_private_webhooks: true,
        ..Default::default()
    })
    .await;
    let alpha = app.create_tenant("alpha-co").await;
    app.create_tenant("beta-co").await;
    for url in [
        "http://127.0.0.1:9/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
    ] {
        let res = app
            .post_json(
                "/v1/tenants/alpha-co/webhooks",
                &json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(
            field_errors(&problem),
            field_pairs(&[("url", "private_address")])
        );
    }
    // A host name passes registration; it is checked when a delivery resolves it.
    let receiver = Receiver::start()?;
    let port = receiver
        .base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (id, secret) = register(
        &app,
        "alpha-co",
        &json!({"url": format!("http://localhost:{port}/alpha"), "event_types": ["order.*"]}),
    )
    .await?;
    receiver.trust("/alpha", &secret);

    // Beta sees none of alpha's endpoint, under its own URL or alpha's.
    let beta_key = app.tenant_key("beta-co").unwrap_or_default();
    for (method, path) in [
        (Method::GET, format!("/v1/tenants/beta-co/webhooks/{id}")),
        (Method::PATCH, format!("/v1/tenants/beta-co/webhooks/{id}")),
        (Method::DELETE, format!("/v1/tenants/beta-co/webhooks/{id}")),
        (
            Method::POST,
            format!("/v1/tenants/beta-co/webhooks/{id}/rotate-secret"),
        ),
        (
            Method::GET,
            format!("/v1/tenants/beta-co/webhooks/{id}/deliveries"),
        ),
        (Method::GET, format!("/v1/tenants/alpha-co/webhooks/{id}")),
        (Method::GET, "/v1/tenants/alpha-co/webhooks".to_owned()),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&beta_key)
            .json(&json!({}))
            .send()
            .await?;
        assert_problem(res, 404, "not_found").await;
    }
    let beta_list = json_of(app.get("/v1/tenants/beta-co/webhooks").await, 200).await?;
    assert_eq!(beta_list["data"], json!([]));

    // Delivery to a host that resolves to loopback is refused before any request.
    let env = envelope(&alpha, "order.approved");
    let strict = dispatcher(&app, false);
    let out = strict.handle(&delivery(&env, 1, false)).await;
    assert!(matches!(out, Err(HandleError::Retry(_))), "{out:?}");
    assert!(receiver.got().is_empty());
    let log = json_of(
        app.get(&format!(
            "/v1/tenants/alpha-co/webhooks/{id}/deliveries/{}",
            env.id
        ))
        .await,
        200,
    )
    .await?;
    assert_eq!(log["attempts_log"][0]["status_code"], Value::Null);
    let error = log["attempts_log"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("non-public"), "{error}");
    // The same endpoint with private networks allowed: delivered, signed.
    let lax = dispatcher(&app, true);
    assert_eq!(lax.handle(&delivery(&env, 2, false)).await, Ok(()));
    assert_eq!(
        receiver
            .got()
            .iter()
            .map(|r| r.signature_ok)
            .collect::<Vec<_>>(),
        [true]
    );

    // Nobody listening: a failed attempt without a status code.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let closed_port = closed.local_addr()?.port();
    drop(closed);
    let (dead, _) = register(
        &app,
        "alpha-co",
        &json!({"url": format!("http://localhost:{closed_port}/"), "event_types": ["payer.created"]}),
    )
    .await?;
    let env = envelope(&alpha, "payer.created");
    let out = lax.handle(&delivery(&env, 1, false)).await;
    assert!(matches!(out, Err(HandleError::Retry(_))), "{out:?}");
    let log = json_of(
        app.get(&format!(
            "/v1/tenants/alpha-co/webhooks/{dead}/deliveries/{}",
            env.id
        ))
        .await,
        200,
    )
    .await?;
    assert_eq!(
        (
            &log["status"],
            &log["attempts"],
            &log["attempts_log"][0]["status_code"]
        ),
        (&json!("pending"), &json!(1), &Value::Null)
    );
    assert!(
        log["attempts_log"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection")),
        "{log}"
    );

    // A tenant that does not exist: rejected (dead-lettered at once), not retried.
    let mut ghost = envelope(&alpha, "order.approved");
    ghost.tenant = "no-such-tenant".into();
    let out = lax.handle(&delivery(&ghost, 1, false)).await;
    assert!(matches!(out, Err(HandleError::Reject(_))), "{out:?}");
    // The envelope's tenant id must be the slug's tenant.
    let mut forged = envelope(&alpha, "order.approved");
    forged.tenant_id = aries_tenants::TenantId::new();
    let out = lax.handle(&delivery(&forged, 1, false)).await;
    assert!(matches!(out, Err(HandleError::Reject(_))), "{out:?}");
    assert_eq!(receiver.got().len(), 1);
    Ok(())
}

#[actix_web::test]
async fn one_event_one_signed_post_to_subscribers_only_and_never_twice() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("hook-house").await;
    let receiver = Receiver::start()?;
    let mut endpoints = HashMap::new();
    for (name, types, active) in [
        ("orders", json!(["order.*"]), true),
        ("exact", json!(["order.approved"]), true),
        ("patients", json!(["patient.created"]), false),
        ("sleeping", json!(["*"]), false),
        ("other", json!(["payer.*", "order.cancelled"]), true),
    ] {
        let (id, secret) = register(
            &app,
            "hook-house",
            &json!({"url": format!("{}/{name}", receiver.base), "event_types": types, "active": active}),
        )
        .await?;
        receiver.trust(&format!("/{name}"), &secret);
        endpoints.insert(name, id);
    }
    let env = envelope(&tenant, "order.approved");
    let d = delivery(&env, 1, false);
    let dispatcher = dispatcher(&app, true);
    assert_eq!(dispatcher.handle(&d).await, Ok(()));
    let got = receiver.got();
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/exact", "/orders"]);
    for r in &got {
        assert!(r.signature_ok, "{:?}", r.headers);
        assert_eq!(r.body, d.body, "the exact bytes of the message");
        let h = |k: &str| r.headers.get(k).map(String::as_str);
        assert_eq!(h("content-type"), Some("application/json"));
        assert_eq!(h("aries-event-id"), Some(env.id.to_string().as_str()));
        assert_eq!(h("aries-event-type"), Some("order.approved"));
        assert_eq!(h("aries-delivery-attempt"), Some("1"));
        assert_eq!(h("user-agent"), Some("AriesOne-Webhooks/1"));
        assert!(h("aries-signature").is_some_and(|s| s.starts_with("t=") && s.contains(",v1=")));
    }
    // Tampered body: the receiver's check would refuse it.
    let signature = got[0]
        .headers
        .get("aries-signature")
        .cloned()
        .unwrap_or_default();
    let (secret_path, _) = (&got[0].path, ());
    let secret = receiver
        .state
        .secrets
        .lock()
        .ok()
        .and_then(|s| s.get(secret_path).cloned())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    assert!(verify(&signature, &secret, b"{}", now, 300).is_err());
    assert!(verify(&signature, &secret, &got[0].body, now + 301, 300).is_err());

    // The same message again (redelivered, or published twice): nothing more is sent.
    assert_eq!(dispatcher.handle(&d).await, Ok(()));
    assert_eq!(dispatcher.handle(&delivery(&env, 2, true)).await, Ok(()));
    assert_eq!(receiver.got().len(), 2);

    // The log: delivered once to each subscriber, nothing for the others.
    let t = "/v1/tenants/hook-house/webhooks";
    for name in ["orders", "exact"] {
        let list = json_of(
            app.get(&format!("{t}/{}/deliveries", endpoints[name]))
                .await,
            200,
        )
        .await?;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{name}");
        let row = &list["data"][0];
        assert_eq!(
            (
                &row["event_id"],
                &row["status"],
                &row["attempts"],
                &row["last_status_code"]
            ),
            (&json!(env.id), &json!("delivered"), &json!(1), &json!(200))
        );
        assert!(row["delivered_at"].is_string());
        let failed = json_of(
            app.get(&format!("{t}/{}/deliveries?status=failed", endpoints[name]))
                .await,
            200,
        )
        .await?;
        assert_eq!(failed["data"], json!([]));
    }
    for name in ["patients", "sleeping", "other"] {
        let list = json_of(
            app.get(&format!("{t}/{}/deliveries", endpoints[name]))
                .await,
            200,
        )
        .await?;
        assert_eq!(list["data"], json!([]), "{name}");
    }
    // An event nobody subscribed to (patient.created only goes to the inactive endpoint).
    let env = envelope(&tenant, "patient.created");
    assert_eq!(dispatcher.handle(&delivery(&env, 1, false)).await, Ok(()));
    assert_eq!(receiver.got().len(), 2);
    Ok(())
}

#[actix_web::test]
async fn failing_receiver_is_retried_logged_failed_then_delivered_on_replay() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("flaky-co").await;
    let receiver = Receiver::start()?;
    receiver.answer(500);
    let (id, secret) = register(
        &app,
        "flaky-co",
        // Not `*`: the endpoint's own `webhook_endpoint.created` event, relayed for real, would
        // reach it too.
        &json!({"url": format!("{}/in", receiver.base), "event_types": ["order.*"]}),
    )
    .await?;
    receiver.trust("/in", &secret);
    let dispatcher = dispatcher(&app, true);
    let env = envelope(&tenant, "order.approved");
    let log_path = format!("/v1/tenants/flaky-co/webhooks/{id}/deliveries/{}", env.id);

    let out = dispatcher.handle(&delivery(&env, 1, false)).await;
    assert!(matches!(out, Err(HandleError::Retry(_))), "{out:?}");
    let log = json_of(app.get(&log_path).await, 200).await?;
    assert_eq!(
        (&log["status"], &log["attempts"], &log["last_status_code"]),
        (&json!("pending"), &json!(1), &json!(500))
    );
    assert_eq!(log["attempts_log"][0]["status_code"], 500);
    assert_eq!(log["attempts_log"][0]["error"], "HTTP 500");
    assert!(
        log["attempts_log"][0]["response_excerpt"]
            .as_str()
            .is_some_and(|s| s.contains("receiver answered 500"))
    );

    // The broker's last attempt fails too: the delivery is marked failed, and still Retry (the
    // consumer dead-letters it).
    let out = dispatcher.handle(&delivery(&env, 2, true)).await;
    assert!(matches!(out, Err(HandleError::Retry(_))), "{out:?}");
    let log = json_of(app.get(&log_path).await, 200).await?;
    assert_eq!(
        (&log["status"], &log["attempts"]),
        (&json!("failed"), &json!(2))
    );
    let failed = json_of(
        app.get(&format!(
            "/v1/tenants/flaky-co/webhooks/{id}/deliveries?status=failed"
        ))
        .await,
        200,
    )
    .await?;
    assert_eq!(failed["data"][0]["event_id"], json!(env.id));

    // The receiver is fixed; the dead letter is replayed: delivered, and the log has all three.
    receiver.answer(204);
    assert_eq!(dispatcher.handle(&delivery(&env, 1, false)).await, Ok(()));
    let log = json_of(app.get(&log_path).await, 200).await?;
    assert_eq!(
        (&log["status"], &log["attempts"], &log["last_status_code"]),
        (&json!("delivered"), &json!(3), &json!(204))
    );
    let codes: Vec<&Value> = log["attempts_log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(204)]);
    assert!(log["attempts_log"][2].get("error").is_none());
    let attempts: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| {
            r.headers
                .get("aries-delivery-attempt")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(receiver.got().iter().all(|r| r.signature_ok));
    // Delivered is final.
    assert_eq!(dispatcher.handle(&delivery(&env, 2, false)).await, Ok(()));
    assert_eq!(receiver.got().len(), 3);
    Ok(())
}

/// The ids of the tenant's outbox events of `prefix`* types.
async fn outbox_ids(app: &TestApp, tenant: &Value, prefix: &str) -> Vec<Uuid> {
    let pool = app.shard_pool(TestApp::shard_index(tenant));
    let tid = TestApp::tenant_id(tenant);
    let Ok(mut tx) = aries_shards::begin_tenant_tx(&pool, tid).await else {
        return Vec::new();
    };
    sqlx::query_scalar(
        "select event_id from outbox_event where tenant_id = $1 and event_type like $2 || '%' order by seq",
    )
    .bind(tid)
    .bind(prefix)
    .fetch_all(&mut *tx)
    .await
    .unwrap_or_default()
}

/// Event ids the receiver got at `path`, with how many times each came.
pub(crate) fn received_ids(receiver: &Receiver, path: &str) -> HashMap<Uuid, usize> {
    let mut seen = HashMap::new();
    for r in receiver.got().iter().filter(|r| r.path == path) {
        if let Some(id) = r
            .headers
            .get("aries-event-id")
            .and_then(|v| v.parse::<Uuid>().ok())
        {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

#[actix_web::test]
async fn every_event_reaches_the_receiver_once_across_two_instances() -> TestResult {
    let app = TestApp::spawn().await;
    // The peer relays, consumes and serves like the first instance.
    let (peer, _peer_handle) = app.spawn_peer().await;
    let tenant = app.create_tenant("twin-hooks").await;
    let receiver = Receiver::start()?;
    let (_id, secret) = register(
        &app,
        "twin-hooks",
        &json!({"url": format!("{}/hook", receiver.base), "event_types": ["location.*"]}),
    )
    .await?;
    receiver.trust("/hook", &secret);
    let key = app.tenant_key("twin-hooks").unwrap_or_default();
    for i in 0..40 {
        let base = if i % 2 == 0 { &app.base } else { &peer };
        let res = app
            .client
            .post(format!("{base}/v1/tenants/twin-hooks/locations"))
            .bearer_auth(&key)
            .json(&location_body(&format!("W{i:02}")))
            .send()
            .await?;
        assert_eq!(res.status(), 201);
    }
    let want: Vec<Uuid> = outbox_ids(&app, &tenant, "location.").await;
    assert_eq!(want.len(), 40);
    let all_in = eventually(Duration::from_secs(30), || async {
        received_ids(&receiver, "/hook").len() >= want.len()
    })
    .await;
    let seen = received_ids(&receiver, "/hook");
    assert!(all_in, "{} of {} delivered", seen.len(), want.len());
    let want_set: std::collections::HashSet<Uuid> = want.iter().copied().collect();
    let seen_set: std::collections::HashSet<Uuid> = seen.keys().copied().collect();
    assert_eq!(
        seen_set, want_set,
        "every event, and only the subscribed ones"
    );
    // Settle, then count: no event was sent twice (the delivery rows fence both instances).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let seen = received_ids(&receiver, "/hook");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert!(
        receiver.got().iter().all(|r| r.signature_ok),
        "signatures verify"
    );
    // The delivery log agrees.
    let endpoints: Value = app
        .get("/v1/tenants/twin-hooks/webhooks")
        .await
        .json()
        .await?;
    let endpoint = endpoints["data"][0]["id"].as_str().unwrap_or_default();
    let log: Value = app
        .get(&format!(
            "/v1/tenants/twin-hooks/webhooks/{endpoint}/deliveries?status=delivered&limit=100"
        ))
        .await
        .json()
        .await?;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(40));
    Ok(())
}

#[actix_web::test]
async fn a_poison_event_is_dead_lettered_then_delivered_after_the_fix_and_a_replay() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("poison-co").await;
    let receiver = Receiver::start()?;
    receiver.answer(500);
    let (endpoint, secret) = register(
        &app,
        "poison-co",
        &json!({"url": format!("{}/hook", receiver.base), "event_types": ["location.created"]}),
    )
    .await?;
    receiver.trust("/hook", &secret);
    app.create_location("poison-co", "P1").await;
    let event = outbox_ids(&app, &tenant, "location.created").await;
    let event = *event.first().ok_or("the event")?;
    // Three attempts (the test apps' max_attempts), then the dead letters.
    let mut letter = Value::Null;
    for _ in 0..300 {
        let page: Value = app
            .get("/v1/platform/dead-letters?queue=webhooks&tenant=poison-co")
            .await
            .json()
            .await?;
        if let Some(l) = page["data"].as_array().and_then(|d| d.first()) {
            letter = l.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(letter["message_id"], event.to_string(), "{letter}");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["status"], "dead");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("webhook endpoint(s) failed")),
        "{letter}"
    );
    let log_path = format!("/v1/tenants/poison-co/webhooks/{endpoint}/deliveries/{event}");
    let log: Value = app.get(&log_path).await.json().await?;
    assert_eq!(
        (&log["status"], &log["attempts"]),
        (&json!("failed"), &json!(3))
    );
    assert_eq!(received_ids(&receiver, "/hook").get(&event), Some(&3));
    // The receiver is fixed; the operator replays.
    receiver.answer(200);
    let id = letter["id"].as_str().unwrap_or_default();
    let res = app
        .post_json(
            &format!("/v1/platform/dead-letters/{id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let delivered = eventually(Duration::from_secs(20), || async {
        let log: Value = app.get(&log_path).await.json().await.unwrap_or_default();
        log["status"] == "delivered"
    })
    .await;
    assert!(delivered, "delivered after the replay");
    let log: Value = app.get(&log_path).await.json().await?;
    let codes: Vec<&Value> = log["attempts_log"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| &a["status_code"])
        .collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(500), &json!(200)]);
    assert_eq!(received_ids(&receiver, "/hook").get(&event), Some(&4));
    assert!(receiver.got().iter().all(|r| r.signature_ok));
    Ok(())
}
