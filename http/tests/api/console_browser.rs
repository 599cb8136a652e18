//! The web console in a real browser: `e2e/*.mjs` (playwright-core driving Debian's headless
//! Chromium, every request off 127.0.0.1 refused and reported) run against an app spawned here,
//! so each test has its own databases. Screenshots land in `target/e2e-artifacts/`.

use crate::helpers::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

const PASSWORD: &str = "operator passphrase 2026";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Runs `node e2e/<script> <args>` (installing the e2e dependencies when missing) and returns its
/// output; fails the test with the script's output when it does not exit 0.
async fn node(script: &str, args: Vec<String>) -> Result<String, String> {
    let root = repo_root();
    let script = script.to_owned();
    tokio::task::spawn_blocking(move || {
        let e2e = root.join("e2e");
        if !e2e.join("node_modules/playwright-core").exists() {
            // Tests run as separate processes: one installs under a file lock, the others wait.
            let out = Command::new("flock")
                .args([
                    ".npm-install.lock",
                    "sh",
                    "-c",
                    "[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund",
                ])
                .current_dir(&e2e)
                .output()
                .map_err(|e| format!("npm ci: {e}"))?;
            if !out.status.success() {
                return Err(format!("npm ci: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let out = Command::new("node")
            .arg(e2e.join(&script))
            .args(&args)
            .env("E2E_ARTIFACTS", root.join("target/e2e-artifacts"))
            .output()
            .map_err(|e| format!("node: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{script} failed:\n{text}"))
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

#[actix_web::test]
async fn operator_console_login_totp_tenant_lifecycle_in_chromium() -> TestResult {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/v1/platform/operators",
            &json!({"email": "ops@aries.test", "display_name": "Ops", "password": PASSWORD, "role": "platform_operator"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // More audit rows than one page of five.
    for slug in ["extra-one", "extra-two"] {
        let res = app
            .post_json(
                "/v1/platform/tenants",
                &json!({"slug": slug, "name": "Extra", "plan": "starter"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // A dead letter for the page to replay, as the archiver would store it, from a work queue
    // that exists on the broker (a replay to a missing queue is refused).
    let broker = app.app_state.broker.clone();
    let work = broker.names.work_queue("e2e-probe-work");
    let conn = broker.wait_connection().await;
    let ch = conn.create_channel().await?;
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-expires".into(),
        lapin::types::AMQPValue::LongUInt(10 * 60 * 1000),
    );
    ch.queue_declare(
        work.as_str().into(),
        lapin::options::QueueDeclareOptions::durable(),
        args,
    )
    .await?;
    aries_shards::dead_letters::archive(
        app.app_state.directory.catalog().pool(),
        &aries_shards::dead_letters::NewDeadLetter {
            queue: work.clone(),
            message_id: "msg-e2e-1".into(),
            routing_key: "tenant.acme.order.approved".into(),
            event_type: Some("order.approved".into()),
            tenant: Some("acme".into()),
            body: br#"{"probe":true}"#.to_vec(),
            headers: json!({}),
            error: "receiver answered 500".into(),
            attempts: 3,
        },
    )
    .await?;
    let out = node(
        "operator.mjs",
        vec![
            app.base.clone(),
            "ops@aries.test".into(),
            PASSWORD.into(),
            "e2e-clinic".into(),
        ],
    )
    .await?;
    assert!(out.contains("OK operator"), "{out}");
    // What the page showed happened: the tenant exists, active, created by the operator's session.
    let tenant: serde_json::Value = app
        .get("/v1/platform/tenants/e2e-clinic")
        .await
        .json()
        .await?;
    assert_eq!(tenant["status"], "active", "{tenant}");
    let audit: serde_json::Value = app
        .get("/v1/platform/audit?action=tenant.suspended&tenant=e2e-clinic")
        .await
        .json()
        .await?;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
    let letters: serde_json::Value = app
        .get("/v1/platform/dead-letters?status=replayed")
        .await
        .json()
        .await?;
    assert_eq!(letters["data"][0]["message_id"], "msg-e2e-1", "{letters}");
    // The story goes on in the tenant the page created: its console and live dashboard.
    app.bootstrap_key("e2e-clinic").await;
    tenant_console(&app, "e2e-clinic").await
}

#[actix_web::test]
async fn console_assets_are_served_from_the_binary_with_types_csp_and_etags() -> TestResult {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/console/")).send().await?;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str()?;
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["cache-control"], "no-cache");
    let etag = h["etag"].to_str()?.to_owned();
    let html = res.text().await?;
    assert!(
        html.contains("<script type=\"module\" src=\"app.js\">"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "an absolute URL in the page"
    );
    // Revalidation: the same ETag is a 304 without a body.
    let res = app
        .client
        .get(app.url("/console/"))
        .header("if-none-match", &etag)
        .send()
        .await?;
    assert_eq!(res.status(), 304);
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let res = app
            .client
            .get(app.url(&format!("/console/{file}")))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "{file}");
        assert_eq!(res.headers()["content-type"], ty, "{file}");
        assert!(res.headers().contains_key("etag"), "{file}");
        let body = res.text().await?;
        // Nothing is fetched from another host: no absolute URL but the SVG namespace.
        let stripped = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !stripped.contains("http://") && !stripped.contains("https://"),
            "{file} names another host"
        );
    }
    assert_problem(
        app.client
            .get(app.url("/console/../Cargo.toml"))
            .send()
            .await?,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.client.get(app.url("/console/nope.js")).send().await?,
        404,
        "not_found",
    )
    .await;
    let res = app.client.get(app.url("/console")).send().await?;
    assert_eq!(res.status(), 200, "the redirect leads to the page");
    Ok(())
}

/// Whether this build serves the live dashboard (`GET /v1/tenants/{t}/dashboard` is a route).
async fn has_live(app: &TestApp, slug: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let res = app.get(&format!("/v1/tenants/{slug}/dashboard")).await;
    if res.status() != 404 {
        return Ok(true);
    }
    let body: serde_json::Value = res.json().await?;
    Ok(body["detail"] != "no such route")
}

#[actix_web::test]
async fn tenant_console_dashboard_users_keys_webhooks_in_chromium() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("e2e-dme").await;
    tenant_console(&app, "e2e-dme").await
}

/// A tenant user of `slug` (which has a bootstrap key in `app.tenant_keys`) goes through
/// `e2e/tenant.mjs`: enrolment, dashboard with orders created through the API, users, keys, webhooks.
async fn tenant_console(app: &TestApp, slug: &str) -> TestResult {
    // The page's "Orders today" must count the orders dated today when they were created.
    clear_of_midnight(std::time::Duration::from_secs(180)).await;
    let t = format!("/v1/tenants/{slug}");
    let res = app
        .post_json(
            &format!("{t}/users"),
            &json!({"email": "admin@e2e.test", "display_name": "Admin", "password": PASSWORD, "roles": ["owner"]}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await?);
    // What an order needs: a patient and an item; the page's clients create the orders.
    let patient = post_created(
        app,
        &format!("{t}/patients"),
        &json!({"first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1948-05-17"}),
    )
    .await;
    let item = post_created(
        app,
        &format!("{t}/items"),
        &json!({"code": "MASK-1", "name": "Nasal mask"}),
    )
    .await;
    // Priced: the patient's payer bills from a price list that has the item.
    let list = post_created(
        app,
        &format!("{t}/price-lists"),
        &json!({"name": "Medicare TX"}),
    )
    .await;
    let payer = post_created(
        app,
        &format!("{t}/payers"),
        &json!({"name": "Medicare", "payer_type": "medicare", "default_price_list_id": list["id"]}),
    )
    .await;
    let priced = app
        .req(
            reqwest::Method::PUT,
            &format!(
                "{t}/price-lists/{}/items/{}",
                list["id"].as_str().unwrap_or(""),
                item["id"].as_str().unwrap_or("")
            ),
        )
        .json(
            &json!({"hcpcs": "A7034", "modifiers": ["NU"], "sale_billable": "45.00",
                      "sale_allowable": "31.25", "default_order_type": "sale"}),
        )
        .send()
        .await?;
    assert!(priced.status().is_success(), "{}", priced.text().await?);
    post_created(
        app,
        &format!(
            "{t}/patients/{}/policies",
            patient["id"].as_str().unwrap_or("")
        ),
        &json!({"payer_id": payer["id"], "policy_number": "1EG4TE5MK72"}),
    )
    .await;
    let today = chrono::Utc::now().date_naive().to_string();
    let order = json!({"patient_id": patient["id"], "order_date": today, "lines": [{"item_id": item["id"]}]});
    let key = app
        .tenant_keys
        .lock()
        .map_err(|e| e.to_string())?
        .get(slug)
        .cloned()
        .ok_or("no tenant key")?;
    let mode = if has_live(app, slug).await? {
        "live"
    } else {
        "nolive"
    };
    let out = node(
        "tenant.mjs",
        vec![
            app.base.clone(),
            slug.into(),
            "admin@e2e.test".into(),
            PASSWORD.into(),
            key,
            order.to_string(),
            mode.into(),
        ],
    )
    .await?;
    assert!(out.contains(&format!("OK tenant-{slug}")), "{out}");
    if mode == "nolive" {
        eprintln!(
            "no /live route in this build: the dashboard was checked to say live updates are unavailable"
        );
    }
    // The page's actions happened: the user it added and no webhook left.
    let users: serde_json::Value = app.get(&format!("{t}/users")).await.json().await?;
    assert!(users.to_string().contains("clerk@e2e.test"), "{users}");
    let hooks: serde_json::Value = app.get(&format!("{t}/webhooks")).await.json().await?;
    assert_eq!(hooks["data"].as_array().map(Vec::len), Some(0), "{hooks}");
    Ok(())
}

#[actix_web::test]
async fn dashboard_page_follows_the_live_protocol_in_chromium() -> TestResult {
    // The page against a scripted socket: sequence handling, resume, gap, duplicates.
    let app = TestApp::spawn().await;
    let out = node("dashboard-protocol.mjs", vec![app.base.clone()]).await?;
    assert!(out.contains("OK dashboard-protocol"), "{out}");
    Ok(())
}

#[actix_web::test]
async fn operator_moves_a_tenant_from_the_moves_panel_and_watches_it_live_in_chromium() -> TestResult
{
    // Shard-1 on a Postgres server of its own, as in production.
    let server = PgServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        shard1_server: Some(server.url()),
        ..Default::default()
    })
    .await;
    let res = app
        .post_json(
            "/v1/platform/operators",
            &json!({"email": "mover@aries.test", "display_name": "Mover", "password": PASSWORD, "role": "platform_operator"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let tenant = app.create_tenant("e2e-move").await;
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    // Enough rows for the copy to show its progress bar for a moment.
    crate::moves::seed_prescribers(&app.shard_pool(from), TestApp::tenant_id(&tenant), 40_000)
        .await?;
    // A second tenant whose move's runner (on another instance) dies right after it starts
    // copying: the page finds it in its first snapshot and cancels it.
    let stuck = app.create_tenant("e2e-stuck").await;
    let stuck_to = 1 - TestApp::shard_index(&stuck);
    let (crashing, _crashing_handle) = app
        .spawn_peer_with(|s| s.moves.stop_after = Some("copying".into()))
        .await;
    let res = app
        .client
        .post(format!("{crashing}/v1/platform/tenants/e2e-stuck/moves"))
        .bearer_auth(&app.token)
        .json(&json!({"to_shard": format!("shard-{stuck_to}")}))
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    let stuck_move: serde_json::Value = res.json().await?;
    let stuck_path = format!(
        "/v1/platform/moves/{}",
        stuck_move["id"].as_str().unwrap_or_default()
    );
    let copying = eventually(std::time::Duration::from_secs(30), || async {
        let m: serde_json::Value = app.get(&stuck_path).await.json().await.unwrap_or_default();
        m["state"] == "copying"
    })
    .await;
    assert!(copying, "the stuck move reached copying");
    let out = node(
        "moves.mjs",
        vec![
            app.base.clone(),
            "mover@aries.test".into(),
            PASSWORD.into(),
            "e2e-move".into(),
            format!("shard-{from}"),
            format!("shard-{to}"),
            "e2e-stuck".into(),
        ],
    )
    .await?;
    eprintln!("{out}");
    assert!(out.contains("OK moves"), "{out}");
    // What the page showed happened: the tenant lives on the other shard, moved by the operator.
    let tenant: serde_json::Value = app
        .get("/v1/platform/tenants/e2e-move")
        .await
        .json()
        .await?;
    assert_eq!(tenant["shard"], format!("shard-{to}"), "{tenant}");
    let moves: serde_json::Value = app
        .get("/v1/platform/tenants/e2e-move/moves")
        .await
        .json()
        .await?;
    assert_eq!(moves["data"].as_array().map(Vec::len), Some(1), "{moves}");
    assert_eq!(moves["data"][0]["state"], "done", "{moves}");
    assert!(
        moves["data"][0]["requested_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("operator:")),
        "{moves}"
    );
    let stuck_move: serde_json::Value = app.get(&stuck_path).await.json().await?;
    assert_eq!(stuck_move["state"], "rolled_back", "{stuck_move}");
    let stuck: serde_json::Value = app
        .get("/v1/platform/tenants/e2e-stuck")
        .await
        .json()
        .await?;
    assert_eq!(
        TestApp::shard_index(&stuck),
        1 - stuck_to,
        "the cancelled move left the tenant where it was: {stuck}"
    );
    Ok(())
}
