//! Notifications: the channel and rules through the API, and the consumer called directly with
//! events, against a local SMTP server and a local HTTP server speaking the SMS gateway's API
//! (both started by the test, recording what they receive).

use crate::helpers::*;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::events::notifications::{NotificationSender, NotificationSettings};
use aries_actors::events::{Delivery, Envelope, EventHandler, HandleError};
use aries_tenants::outbox;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

// ------------------------------------------------------------------------------------------
// A local SMTP server: enough of RFC 5321 for lettre (greeting, EHLO, MAIL, RCPT, DATA, QUIT).

/// One message as the SMTP server received it.
#[derive(Debug, Clone)]
struct Mail {
    /// `MAIL FROM` address.
    from: String,
    /// `RCPT TO` addresses.
    to: Vec<String>,
    /// The message text (headers and body) as sent after `DATA`.
    data: String,
}

/// What the SMTP server received, and its port.
struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("binding the SMTP server: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = mails.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(socket, store).await;
                });
            }
        });
        SmtpServer { port, mails }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

async fn smtp_session(
    socket: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.smtp ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let addr = |s: &str| {
            s.split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map(|(a, _)| a.to_owned())
                .unwrap_or_default()
        };
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-fake.smtp greets you\r\n250 8BITMIME\r\n")
                .await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 fake.smtp\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = addr(&cmd);
            to.clear();
            write.write_all(b"250 2.1.0 Ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(addr(&cmd));
            write.write_all(b"250 2.1.5 Ok\r\n").await?;
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            let n = {
                let mut mails = store.lock().map_err(|_| std::io::ErrorKind::Other)?;
                mails.push(Mail {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                mails.len()
            };
            write
                .write_all(format!("250 2.0.0 Ok: queued as FAKE{n}\r\n").as_bytes())
                .await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 2.0.0 Ok\r\n").await?;
        } else {
            write
                .write_all(b"502 5.5.2 Command not recognized\r\n")
                .await?;
        }
    }
}

// ------------------------------------------------------------------------------------------
// A local HTTP server speaking the gateway's Messages API.

/// A form the gateway received, with the status it answered.
type Post = (u16, HashMap<String, String>);

/// What the gateway received and how it answers.
#[derive(Clone)]
struct Gateway {
    /// Status of the next answers: 201 (accept), or 400 / 500 to test failures.
    answer: Arc<AtomicU16>,
    /// Every form posted with the right Basic credentials, with the status it was answered.
    posts: Arc<Mutex<Vec<Post>>>,
    /// Posts whose credentials were wrong (answered 401).
    unauthorized: Arc<AtomicU16>,
    /// `Basic base64(sid:token)` expected.
    expected_auth: String,
}

impl Gateway {
    fn posts(&self) -> Vec<Post> {
        self.posts.lock().map(|p| p.clone()).unwrap_or_default()
    }
    fn accepted(&self) -> Vec<HashMap<String, String>> {
        self.posts()
            .into_iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, f)| f)
            .collect()
    }
}

async fn gateway_messages(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
    gw: web::Data<Gateway>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != gw.expected_auth || path.into_inner() != "AC123" {
        gw.unauthorized.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::Unauthorized()
            .json(json!({"code": 20003, "message": "Authenticate"}));
    }
    let status = gw.answer.load(Ordering::SeqCst);
    let n = {
        let Ok(mut posts) = gw.posts.lock() else {
            return HttpResponse::InternalServerError().finish();
        };
        posts.push((status, form.into_inner()));
        posts.len()
    };
    match status {
        201 => {
            HttpResponse::Created().json(json!({"sid": format!("SM{n:032}"), "status": "queued"}))
        }
        400 => HttpResponse::BadRequest().json(
            json!({"code": 21211, "message": "The 'To' number is not a valid phone number."}),
        ),
        _ => HttpResponse::InternalServerError().json(json!({"message": "try later"})),
    }
}

/// Starts the gateway; returns it and its base URL.
fn start_gateway(token: &str) -> (Gateway, String) {
    let gw = Gateway {
        answer: Arc::new(AtomicU16::new(201)),
        posts: Arc::new(Mutex::new(Vec::new())),
        unauthorized: Arc::new(AtomicU16::new(0)),
        expected_auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("AC123:{token}"))
        ),
    };
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("binding the gateway: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let data = web::Data::new(gw.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(data.clone()).route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            web::post().to(gateway_messages),
        )
    })
    .workers(1)
    .listen(listener)
    .map(|s| s.run());
    match server {
        Ok(s) => drop(actix_rt::spawn(s)),
        Err(e) => panic!("starting the gateway: {e}"),
    }
    (gw, format!("http://127.0.0.1:{port}"))
}

// ------------------------------------------------------------------------------------------

/// A delivery of one event of `tenant`, as the consumer loop would hand it over.
fn delivery(tenant: &Value, event_type: &str, data: Value, attempt: u32, last: bool) -> Delivery {
    let envelope = Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: event_type.into(),
        tenant: tenant["slug"].as_str().unwrap_or_default().to_owned(),
        tenant_id: TestApp::tenant_id(tenant),
        occurred_at: chrono::Utc::now(),
        version: 1,
        sequence: 1,
        data,
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    Delivery {
        envelope,
        body,
        attempt,
        final_attempt: last,
    }
}

/// The same event, delivered again (`attempt`).
fn again(d: &Delivery, attempt: u32, last: bool) -> Delivery {
    Delivery {
        attempt,
        final_attempt: last,
        ..d.clone()
    }
}

fn sender(app: &TestApp) -> NotificationSender {
    NotificationSender::new(
        app.app_state.directory.clone(),
        NotificationSettings {
            smtp_timeout_ms: 5_000,
            sms_timeout_ms: 5_000,
        },
    )
}

async fn put_json(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.req(Method::PUT, path)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
}

fn email_channel(port: u16) -> Value {
    json!({"kind": "email", "email": {"host": "127.0.0.1", "port": port, "tls": "none",
        "from": "notify@acme.example", "username": "mailer", "password": "smtp-S3cret"}})
}

async fn log_of(app: &TestApp, slug: &str, query: &str) -> Vec<Value> {
    let page: Value = app
        .get(&format!("/v1/tenants/{slug}/notifications/log{query}"))
        .await
        .json()
        .await
        .unwrap_or_default();
    page["data"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn channel_and_rules_crud_with_validation_and_write_only_secrets() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("notif-crud").await;
    app.create_tenant("notif-other").await;
    let base = "/v1/tenants/notif-crud/notifications";

    assert_problem(app.get(&format!("{base}/channel")).await, 404, "not_found").await;
    let res = put_json(&app, &format!("{base}/channel"), &email_channel(2525)).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let text = res.text().await?;
    assert!(
        !text.contains("smtp-S3cret"),
        "the password is never returned: {text}"
    );
    let channel: Value = serde_json::from_str(&text)?;
    assert_eq!(channel["secret_set"], true);
    assert_eq!(channel["email"]["tls"], "none");
    assert!(channel["email"].get("password").is_none());

    // Replacing without a password keeps the stored one; a stale If-Match is refused.
    let mut without = email_channel(2526);
    without["email"]
        .as_object_mut()
        .map(|o| o.remove("password"));
    let res = app
        .req(Method::PUT, &format!("{base}/channel"))
        .header("if-match", "\"9\"")
        .json(&without)
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = put_json(&app, &format!("{base}/channel"), &without).await;
    assert_eq!(res.status(), 200);
    let channel: Value = res.json().await?;
    assert_eq!(
        (channel["secret_set"].clone(), channel["version"].clone()),
        (json!(true), json!(2))
    );
    let shown = app.get(&format!("{base}/channel")).await.text().await?;
    assert!(shown.contains("2526") && !shown.contains("smtp-S3cret"));

    // Validation: every problem at once, by field.
    let bad = json!({"kind": "email", "email": {"host": "bad host!", "port": 70000, "tls": "ssl", "from": "nobody"}});
    let body = assert_problem(
        put_json(&app, &format!("{base}/channel"), &bad).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        field_pairs(&[
            ("email.host", "invalid_format"),
            ("email.tls", "invalid_value"),
            ("email.port", "out_of_range"),
            ("email.from", "invalid_email")
        ])
    );
    let bad_sms = json!({"kind": "sms", "sms": {"base_url": "ftp://gw", "account_sid": "AC123", "from": "5125550100"}});
    let body = assert_problem(
        put_json(&app, &format!("{base}/channel"), &bad_sms).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        field_pairs(&[
            ("sms.base_url", "invalid_url"),
            ("sms.from", "invalid_phone"),
            ("sms.auth_token", "required")
        ])
    );
    let body = assert_problem(
        put_json(&app, &format!("{base}/channel"), &json!({"kind": "pigeon"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        field_pairs(&[("kind", "invalid_value")])
    );

    // Rules.
    let bad_rule = json!({"name": " ", "event_types": ["order", "order.*"], "recipients": ["nobody", "+15125550100"]});
    let body = assert_problem(
        app.post_json(&format!("{base}/rules"), &bad_rule).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&body),
        field_pairs(&[
            ("name", "required"),
            ("event_types[0]", "invalid_format"),
            ("recipients[0]", "invalid_recipient"),
            ("recipients[1]", "wrong_channel")
        ])
    );
    let rule = post_created(&app, &format!("{base}/rules"),
        &json!({"name": "Ops", "event_types": ["order.approved", "order.*"], "recipients": ["Ops@Acme.example"]})).await;
    assert_eq!(rule["recipients"], json!(["ops@acme.example"]));
    assert_eq!(rule["active"], true);
    let rule_path = format!("{base}/rules/{}", rule["id"].as_str().unwrap_or_default());
    assert_eq!(app.get(&rule_path).await.json::<Value>().await?, rule);
    let list: Value = app
        .get(&format!("{base}/rules?active=true"))
        .await
        .json()
        .await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

    let res = app
        .req(Method::PATCH, &rule_path)
        .header("if-match", "\"5\"")
        .json(&json!({"active": false}))
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = app
        .req(Method::PATCH, &rule_path)
        .header("if-match", "\"1\"")
        .json(&json!({"active": false}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let res = app
        .req(Method::PATCH, &rule_path)
        .json(&json!({"recipients": ["+15125550100"]}))
        .send()
        .await?;
    assert_problem(res, 422, "validation_failed").await;

    // Another tenant's credential sees nothing of this tenant; this tenant's rule is not under another.
    let other_key = app.tenant_key("notif-other").unwrap_or_default();
    let res = app
        .client
        .get(app.url(&rule_path))
        .bearer_auth(&other_key)
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    let foreign = rule_path.replace("notif-crud", "notif-other");
    assert_problem(app.get(&foreign).await, 404, "not_found").await;
    assert_problem(
        app.get("/v1/tenants/notif-other/notifications/channel")
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{base}/rules/not-a-uuid")).await,
        422,
        "invalid_id",
    )
    .await;

    let res = app
        .req(Method::DELETE, &rule_path)
        .header("if-match", "\"1\"")
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = app
        .req(Method::DELETE, &rule_path)
        .header("if-match", "\"2\"")
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_problem(app.get(&rule_path).await, 404, "not_found").await;

    // The secret is in no event and no audit row.
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events = outbox::list(&mut tx, TestApp::tenant_id(&tenant)).await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "notification_channel.updated",
            "notification_channel.updated",
            "notification_rule.created",
            "notification_rule.updated",
            "notification_rule.deleted"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| !e.payload.to_string().contains("smtp-S3cret"))
    );
    let audit = app.get("/v1/tenants/notif-crud/audit").await.text().await?;
    assert!(
        audit.contains("notification_channel.updated") && !audit.contains("smtp-S3cret"),
        "{audit}"
    );
    Ok(())
}

#[actix_web::test]
async fn email_sends_one_mail_per_recipient_once() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("notif-mail").await;
    let smtp = SmtpServer::start().await;
    let base = "/v1/tenants/notif-mail/notifications";
    let mut channel = email_channel(smtp.port);
    channel["email"].as_object_mut().map(|o| {
        o.remove("username");
        o.remove("password")
    });
    assert_eq!(
        put_json(&app, &format!("{base}/channel"), &channel)
            .await
            .status(),
        201
    );
    let rule = post_created(&app, &format!("{base}/rules"),
        &json!({"name": "Ops", "event_types": ["order.*"], "recipients": ["ops@acme.example", "driver@acme.example"]})).await;
    // A second rule naming one of the same people: they still get one mail.
    post_created(&app, &format!("{base}/rules"),
        &json!({"name": "Approvals", "event_types": ["order.approved"], "recipients": ["ops@acme.example"]})).await;
    post_created(&app, &format!("{base}/rules"),
        &json!({"name": "Off", "event_types": ["*"], "recipients": ["off@acme.example"], "active": false})).await;

    let sender = sender(&app);
    assert_eq!(sender.name(), "notifications");
    assert_eq!(sender.max_priority(), Some(10));
    let d = delivery(
        &tenant,
        "order.approved",
        json!({"id": "x", "order_number": "O000123", "state": "approved"}),
        1,
        false,
    );
    assert_eq!(sender.handle(&d).await, Ok(()));
    let mails = smtp.mails();
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["driver@acme.example", "ops@acme.example"], "{mails:?}");
    for m in &mails {
        assert_eq!(m.from, "notify@acme.example");
        assert!(
            m.data
                .contains("Subject: notif-mail DME: order O000123 approved"),
            "{}",
            m.data
        );
        assert!(
            m.data.contains("Event: order.approved") && m.data.contains("Status: approved"),
            "{}",
            m.data
        );
    }

    // Delivered again (a redelivery): nothing more is sent.
    assert_eq!(sender.handle(&again(&d, 2, false)).await, Ok(()));
    assert_eq!(smtp.mails().len(), 2);
    // An event no active rule selects sends nothing.
    let other = delivery(&tenant, "patient.created", json!({"id": "p"}), 1, false);
    assert_eq!(sender.handle(&other).await, Ok(()));
    assert_eq!(smtp.mails().len(), 2);

    let log = log_of(&app, "notif-mail", &format!("?event_id={}", d.envelope.id)).await;
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|l| l["status"] == "sent" && l["attempts"] == 1 && l["channel"] == "email")
    );
    assert!(log.iter().all(|l| l["rule_id"] == rule["id"]));
    assert!(log.iter().all(|l| {
        l["provider_message_id"]
            .as_str()
            .is_some_and(|s| s.contains("queued as FAKE"))
    }));
    assert_eq!(log_of(&app, "notif-mail", "?status=failed").await.len(), 0);
    let res = app.get(&format!("{base}/log?status=lost")).await;
    assert_problem(res, 422, "invalid_query").await;
    Ok(())
}

#[actix_web::test]
async fn sms_through_the_gateway_retries_5xx_and_logs_4xx() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("notif-sms").await;
    let (gw, gw_url) = start_gateway("tok-S3cret");
    let base = "/v1/tenants/notif-sms/notifications";
    let channel = json!({"kind": "sms", "sms": {"base_url": format!("{gw_url}/"), "account_sid": "AC123",
        "auth_token": "tok-S3cret", "from": "+15125550199"}});
    let res = put_json(&app, &format!("{base}/channel"), &channel).await;
    assert_eq!(res.status(), 201);
    assert!(!res.text().await?.contains("tok-S3cret"));
    post_created(&app, &format!("{base}/rules"),
        &json!({"name": "Driver", "event_types": ["order.delivered", "order.approved"], "recipients": ["+15125550100"]})).await;
    let sender = sender(&app);

    // The gateway fails: retry, and the log says so.
    gw.answer.store(500, Ordering::SeqCst);
    let d = delivery(
        &tenant,
        "order.delivered",
        json!({"order_number": "O000042", "state": "delivered"}),
        1,
        false,
    );
    assert!(matches!(
        sender.handle(&d).await,
        Err(HandleError::Retry(_))
    ));
    let log = log_of(&app, "notif-sms", "").await;
    assert_eq!(
        (log.len(), log[0]["status"].clone()),
        (1, json!("retrying"))
    );
    // Fixed: the retry sends it, once.
    gw.answer.store(201, Ordering::SeqCst);
    assert_eq!(sender.handle(&again(&d, 2, false)).await, Ok(()));
    assert_eq!(sender.handle(&again(&d, 3, false)).await, Ok(()));
    let sent = gw.accepted();
    assert_eq!(sent.len(), 1, "{:?}", gw.posts());
    assert_eq!(sent[0]["To"], "+15125550100");
    assert_eq!(sent[0]["From"], "+15125550199");
    assert!(
        sent[0]["Body"].starts_with("notif-sms DME: order O000042 delivered"),
        "{}",
        sent[0]["Body"]
    );
    assert_eq!(
        gw.unauthorized.load(Ordering::SeqCst),
        0,
        "Basic auth is account sid and token"
    );
    let log = log_of(&app, "notif-sms", "").await;
    assert_eq!(
        (log[0]["status"].clone(), log[0]["attempts"].clone()),
        (json!("sent"), json!(2))
    );
    assert!(
        log[0]["provider_message_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("SM"))
    );

    // The gateway refuses (4xx): logged failed, not retried, not sent again.
    gw.answer.store(400, Ordering::SeqCst);
    let refused = delivery(
        &tenant,
        "order.approved",
        json!({"order_number": "O000043"}),
        1,
        false,
    );
    assert_eq!(sender.handle(&refused).await, Ok(()));
    assert_eq!(sender.handle(&again(&refused, 2, false)).await, Ok(()));
    assert_eq!(gw.posts().len(), 3, "500, 201, then one 400 and no more");
    let failed = log_of(&app, "notif-sms", "?status=failed").await;
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("400")),
        "{failed:?}"
    );

    // A 5xx on the final attempt: no more retries, logged failed.
    gw.answer.store(500, Ordering::SeqCst);
    let last = delivery(
        &tenant,
        "order.delivered",
        json!({"order_number": "O000044"}),
        5,
        true,
    );
    assert_eq!(sender.handle(&last).await, Ok(()));
    let log = log_of(
        &app,
        "notif-sms",
        &format!("?event_id={}", last.envelope.id),
    )
    .await;
    assert_eq!(log[0]["status"], "failed");

    // Non-matching type: nothing.
    let before = gw.posts().len();
    assert_eq!(
        sender
            .handle(&delivery(&tenant, "stock.changed", json!({}), 1, false))
            .await,
        Ok(())
    );
    assert_eq!(gw.posts().len(), before);
    Ok(())
}
