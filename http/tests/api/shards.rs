//! Shard lifecycle through the operator API: register a shard on its own Postgres server, migrate,
//! activate, a tenant lands there; read-only closes a shard to writes until it is activated again;
//! transitions that make no sense answer their codes; the rebalance dry run lists moves by load;
//! drain and rebalance jobs run their moves through the move engine.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// The shard's name of a tenant, from the operator API.
async fn shard_of(app: &TestApp, slug: &str) -> Result<String, Box<dyn std::error::Error>> {
    let t: Value = app
        .get(&format!("/v1/platform/tenants/{slug}"))
        .await
        .json()
        .await?;
    Ok(t["shard"]
        .as_str()
        .ok_or("tenant without shard")?
        .to_owned())
}

async fn post_empty(app: &TestApp, path: &str) -> reqwest::Response {
    app.req(reqwest::Method::POST, path)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Waits until the shard job is no longer running and returns it.
async fn finished_job(app: &TestApp, id: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let mut job = Value::Null;
    for _ in 0..600 {
        job = app
            .get(&format!("/v1/platform/shard-jobs/{id}"))
            .await
            .json()
            .await?;
        if job["state"] != "running" {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("shard job still running: {job}").into())
}

#[actix_web::test]
async fn register_migrate_activate_then_a_tenant_lands_on_the_new_server() -> TestResult {
    let server = PgServer::start()?;
    let mut dbs = TestDbs::new();
    let dsn = dbs.create(&server.url(), "s2").await?;
    let app = TestApp::spawn().await;

    // Registered: recorded only, nothing done on its server.
    let res = app
        .post_json(
            "/v1/platform/shards",
            &json!({"name": "shard-2", "dsn": dsn, "weight": 1000}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["location"], "/v1/platform/shards/shard-2");
    let shard: Value = res.json().await?;
    assert_eq!(shard["status"], "registered");
    assert_eq!(shard["schema_current"], false);
    assert_eq!(shard["health"], "unknown");
    assert!(shard.get("schema_version").is_none());
    let shown: Value = app.get("/v1/platform/shards/shard-2").await.json().await?;
    assert_eq!(shown["status"], "registered");
    assert_eq!(shown["weight"], 1000);

    // Not migrated: it cannot take tenants, be marked read-only or drained.
    assert_problem(
        post_empty(&app, "/v1/platform/shards/shard-2/activate").await,
        409,
        "shard_not_migrated",
    )
    .await;
    assert_problem(
        post_empty(&app, "/v1/platform/shards/shard-2/read-only").await,
        409,
        "invalid_shard_transition",
    )
    .await;
    assert_problem(
        post_empty(&app, "/v1/platform/shards/shard-2/drain").await,
        409,
        "invalid_shard_transition",
    )
    .await;
    // A new tenant does not land on a registered shard, however heavy its weight.
    app.create_tenant("before-activation").await;
    assert_ne!(shard_of(&app, "before-activation").await?, "shard-2");

    // Migrate (twice: idempotent), then activate.
    for _ in 0..2 {
        let res = post_empty(&app, "/v1/platform/shards/shard-2/migrate").await;
        assert_eq!(res.status(), StatusCode::OK);
        let migrated: Value = res.json().await?;
        assert_eq!(migrated["status"], "registered");
        assert_eq!(migrated["schema_current"], true);
        assert!(migrated["schema_version"].as_i64().is_some_and(|v| v > 0));
        assert!(migrated["migrated_at"].is_string());
    }
    let res = post_empty(&app, "/v1/platform/shards/shard-2/activate").await;
    assert_eq!(res.status(), StatusCode::OK);
    let active: Value = res.json().await?;
    assert_eq!(active["status"], "active");

    // Weight 1000 against 100 and 100: the next tenant goes to the new shard, and its writes
    // and reads are served from the other server.
    app.create_tenant("on-new-server").await;
    assert_eq!(shard_of(&app, "on-new-server").await?, "shard-2");
    let loc = app.create_location("on-new-server", "MAIN").await;
    let path = format!(
        "/v1/tenants/on-new-server/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    let listed: Value = app.get("/v1/platform/shards").await.json().await?;
    let new = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == "shard-2")
        .cloned()
        .ok_or("shard-2 not listed")?;
    assert_eq!(new["tenant_count"], 1);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let s: Value = app
                .get("/v1/platform/shards/shard-2")
                .await
                .json()
                .await
                .unwrap_or_default();
            s["health"] == "up"
        })
        .await,
        "the new shard's actor probes it"
    );

    // Every step is on the operator trail.
    let audit: Value = app.get("/v1/platform/audit").await.json().await?;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["target_id"] == "shard-2")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in ["shard.registered", "shard.migrated", "shard.activated"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    drop(app);
    drop(dbs);
    Ok(())
}

#[actix_web::test]
async fn registration_is_validated() -> TestResult {
    let app = TestApp::spawn().await;
    let dsn = "postgres://127.0.0.1:5432/aries_not_there";
    // Operator routes: no credential, no shard.
    for (method, path) in [
        (reqwest::Method::POST, "/v1/platform/shards"),
        (
            reqwest::Method::POST,
            "/v1/platform/shards/shard-0/read-only",
        ),
        (reqwest::Method::GET, "/v1/platform/rebalance"),
        (reqwest::Method::GET, "/v1/platform/shard-jobs"),
    ] {
        let res = app
            .client
            .request(method, app.url(path))
            .json(&json!({"name": "shard-x", "dsn": dsn}))
            .send()
            .await?;
        assert_problem(res, 401, "unauthenticated").await;
    }
    for (body, field) in [
        (json!({"name": "Bad_Name", "dsn": dsn}), "name"),
        (json!({"name": "s", "dsn": dsn}), "name"),
        (
            json!({"name": "shard-9", "dsn": "postgres://u:p@127.0.0.1/x"}),
            "dsn",
        ),
        (json!({"name": "shard-9", "dsn": "mysql://h/x"}), "dsn"),
        (
            json!({"name": "shard-9", "dsn": dsn, "weight": 0}),
            "weight",
        ),
    ] {
        let problem = assert_problem(
            app.post_json("/v1/platform/shards", &body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            field_errors(&problem).first().map(|e| e.0.as_str()),
            Some(field),
            "{body}"
        );
    }
    assert_problem(
        app.post_json(
            "/v1/platform/shards",
            &json!({"name": "shard-0", "dsn": dsn}),
        )
        .await,
        409,
        "shard_name_taken",
    )
    .await;
    // A retry with the same Idempotency-Key gets the same answer; another body with it is refused.
    let body = json!({"name": "shard-idem", "dsn": dsn});
    let send = |body: &Value| {
        app.req(reqwest::Method::POST, "/v1/platform/shards")
            .header("idempotency-key", "register-idem-1")
            .json(body)
            .send()
    };
    let first = send(&body).await?;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await?;
    let again = send(&body).await?;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await?;
    assert_eq!(again["id"], first["id"]);
    assert_problem(
        send(&json!({"name": "shard-other", "dsn": dsn})).await?,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/platform/shards",
            &json!({"name": "shard-9", "dsn": dsn, "extra": 1}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(app.get("/v1/platform/shards/nope").await, 404, "not_found").await;

    // The weight is the one writable field.
    let patch = |name: &str, body: Value| {
        app.req(
            reqwest::Method::PATCH,
            &format!("/v1/platform/shards/{name}"),
        )
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
    };
    let res = patch("shard-0", json!({"weight": 300})).await?;
    assert_eq!(res.status(), StatusCode::OK);
    let s: Value = res.json().await?;
    assert_eq!(s["weight"], 300);
    assert_problem(
        patch("shard-0", json!({"weight": 0})).await?,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        patch("shard-0", json!({"status": "active"})).await?,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(patch("nope", json!({"weight": 5})).await?, 404, "not_found").await;
    // Placement follows it: shard-0 takes three tenants for each of shard-1's.
    let mut on_zero = 0;
    for i in 0..4 {
        app.create_tenant(&format!("weighted-{i}")).await;
        on_zero += usize::from(shard_of(&app, &format!("weighted-{i}")).await? == "shard-0");
    }
    assert_eq!(on_zero, 3);
    assert_problem(
        post_empty(&app, "/v1/platform/shards/nope/activate").await,
        404,
        "not_found",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn migrating_an_unreachable_shard_is_503_with_retry_after() -> TestResult {
    let app = TestApp::spawn().await;
    let dsn = format!("postgres://127.0.0.1:{}/aries_nowhere", free_port());
    let res = app
        .post_json(
            "/v1/platform/shards",
            &json!({"name": "shard-far", "dsn": dsn}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "registering needs no server"
    );
    let res = post_empty(&app, "/v1/platform/shards/shard-far/migrate").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "shard_unavailable").await;
    let shown: Value = app
        .get("/v1/platform/shards/shard-far")
        .await
        .json()
        .await?;
    assert_eq!(shown["status"], "registered");
    assert_eq!(shown["schema_current"], false);
    // The instance keeps serving (a registered shard has no actor, /health/ready ignores it).
    let ready: Value = app.get("/health/ready").await.json().await?;
    assert!(
        ready["shards"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["name"] != "shard-far"),
        "{ready}"
    );
    // Nor does the platform report count it as missing.
    let report: Value = app
        .get("/v1/platform/reports/tenants?month=2026-11")
        .await
        .json()
        .await?;
    assert_eq!(report["partial"], false, "{report}");
    Ok(())
}

#[actix_web::test]
async fn read_only_refuses_writes_until_activated() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("frozen-dme").await;
    let shard = shard_of(&app, "frozen-dme").await?;
    let loc = app.create_location("frozen-dme", "MAIN").await;
    let loc_path = format!(
        "/v1/tenants/frozen-dme/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );

    // Twice: idempotent.
    for _ in 0..2 {
        let res = post_empty(&app, &format!("/v1/platform/shards/{shard}/read-only")).await;
        assert_eq!(res.status(), StatusCode::OK);
        let s: Value = res.json().await?;
        assert_eq!(s["status"], "read_only");
    }
    // Reads work; writes get 503 shard_read_only with Retry-After.
    assert_eq!(app.get(&loc_path).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/v1/tenants/frozen-dme/locations").await.status(),
        StatusCode::OK
    );
    let res = app
        .post_json("/v1/tenants/frozen-dme/locations", &location_body("SECOND"))
        .await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "shard_read_only").await;
    // New tenants go elsewhere.
    app.create_tenant("elsewhere-dme").await;
    assert_ne!(shard_of(&app, "elsewhere-dme").await?, shard);
    // A read-only shard is not drained (its tenants could not be moved while it refuses writes).
    assert_problem(
        post_empty(&app, &format!("/v1/platform/shards/{shard}/drain")).await,
        409,
        "invalid_shard_transition",
    )
    .await;

    let res = post_empty(&app, &format!("/v1/platform/shards/{shard}/activate")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let s: Value = res.json().await?;
    assert_eq!(s["status"], "active");
    let res = app
        .post_json("/v1/tenants/frozen-dme/locations", &location_body("SECOND"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    Ok(())
}

#[actix_web::test]
async fn drain_transitions_and_an_empty_drain() -> TestResult {
    let app = TestApp::spawn().await;
    // shard-1 read-only: shard-0 is the last active shard and cannot be drained.
    assert_eq!(
        post_empty(&app, "/v1/platform/shards/shard-1/read-only")
            .await
            .status(),
        StatusCode::OK
    );
    let problem = assert_problem(
        post_empty(&app, "/v1/platform/shards/shard-0/drain").await,
        409,
        "invalid_shard_transition",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("last active shard")),
        "{problem}"
    );
    assert_eq!(
        post_empty(&app, "/v1/platform/shards/shard-1/activate")
            .await
            .status(),
        StatusCode::OK
    );

    // Draining a shard without tenants: a job that ends at once with no moves.
    let res = post_empty(&app, "/v1/platform/shards/shard-0/drain").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str()?.to_owned();
    let job: Value = res.json().await?;
    assert_eq!(job["kind"], "drain");
    assert_eq!(job["shard"], "shard-0");
    let id = job["id"].as_str().ok_or("job id")?.to_owned();
    assert_eq!(location, format!("/v1/platform/shard-jobs/{id}"));
    let job = finished_job(&app, &id).await?;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["steps"], json!([]));
    let s: Value = app.get("/v1/platform/shards/shard-0").await.json().await?;
    assert_eq!(s["status"], "draining");
    // The draining shard takes no tenants.
    for i in 0..2 {
        app.create_tenant(&format!("after-drain-{i}")).await;
        assert_eq!(
            shard_of(&app, &format!("after-drain-{i}")).await?,
            "shard-1"
        );
    }
    // The other shard is now the last active one.
    assert_problem(
        post_empty(&app, "/v1/platform/shards/shard-1/drain").await,
        409,
        "invalid_shard_transition",
    )
    .await;
    let jobs: Value = app.get("/v1/platform/shard-jobs").await.json().await?;
    assert_eq!(jobs["data"][0]["id"], id.as_str());
    // Cancelling a finished job changes nothing.
    let res = post_empty(&app, &format!("/v1/platform/shard-jobs/{id}/cancel")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cancelled: Value = res.json().await?;
    assert_eq!(cancelled["state"], "done");
    assert_eq!(cancelled["cancel_requested"], false);
    assert_problem(
        app.get("/v1/platform/shard-jobs/not-a-uuid").await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/platform/shard-jobs/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    // Activated again, it takes tenants.
    assert_eq!(
        post_empty(&app, "/v1/platform/shards/shard-0/activate")
            .await
            .status(),
        StatusCode::OK
    );
    app.create_tenant("back-again").await;
    assert_eq!(shard_of(&app, "back-again").await?, "shard-0");
    Ok(())
}

#[actix_web::test]
async fn the_rebalance_dry_run_lists_moves_by_load() -> TestResult {
    let app = TestApp::spawn().await;
    // Four tenants, two on each shard; the two on one shard get many rows.
    let mut on: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for slug in ["rb-one", "rb-two", "rb-three", "rb-four"] {
        app.create_tenant(slug).await;
        on.entry(shard_of(&app, slug).await?)
            .or_default()
            .push(slug.to_owned());
    }
    assert_eq!(on.len(), 2, "{on:?}");
    let (heavy_shard, heavies) = on.iter().next().ok_or("no shard")?;
    let light_shard = on.keys().nth(1).ok_or("no second shard")?;
    let (big, small) = (&heavies[0], &heavies[1]);
    for i in 0..24 {
        app.create_location(big, &format!("B{i}")).await;
    }
    for i in 0..8 {
        app.create_location(small, &format!("S{i}")).await;
    }

    assert_problem(
        app.get("/v1/platform/rebalance?threshold_pct=lots").await,
        422,
        "invalid_query",
    )
    .await;
    let res = app.get("/v1/platform/rebalance").await;
    assert_eq!(res.status(), StatusCode::OK);
    let plan: Value = res.json().await?;
    assert_eq!(plan["partial"], false, "{plan}");
    assert_eq!(plan["threshold_pct"], 10);
    let shards = plan["shards"].as_array().ok_or("shards")?;
    let load = |name: &str, field: &str| {
        shards
            .iter()
            .find(|s| s["shard"] == name)
            .and_then(|s| s[field].as_u64())
            .unwrap_or(0)
    };
    let (hb, lb) = (
        load(heavy_shard, "load_before"),
        load(light_shard, "load_before"),
    );
    let (ha, la) = (
        load(heavy_shard, "load_after"),
        load(light_shard, "load_after"),
    );
    assert!(hb > lb + 24, "{plan}");
    assert_eq!(hb + lb, ha + la, "load is conserved");
    assert!(ha.abs_diff(la) < hb.abs_diff(lb), "{plan}");
    let moves = plan["moves"].as_array().ok_or("moves")?;
    assert!(!moves.is_empty(), "{plan}");
    for m in moves {
        assert_eq!(m["from_shard"], heavy_shard.as_str(), "{m}");
        assert_eq!(m["to_shard"], light_shard.as_str(), "{m}");
        assert!(m["load"].as_u64().is_some_and(|l| l > 0), "{m}");
    }
    // The biggest tenant whose move helps goes first; the loads of the moves are the tenants'.
    let first = moves[0]["tenant"].as_str().ok_or("tenant")?;
    assert!(first == big || first == small, "{plan}");
    if first == small {
        // Then the big one could not help: moving it would overload the light shard.
        assert!(moves.iter().all(|m| m["tenant"] != big.as_str()), "{plan}");
    }
    // Nothing moved by the dry run.
    assert_eq!(&shard_of(&app, big).await?, heavy_shard);
    // A high threshold leaves it alone.
    let lax: Value = app
        .get("/v1/platform/rebalance?threshold_pct=1000")
        .await
        .json()
        .await?;
    assert_eq!(lax["moves"], json!([]), "{lax}");

    // Executed: the same moves, one at a time, through the move engine.
    let res = app
        .post_json("/v1/platform/rebalance", &json!({"threshold_pct": 10}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let job: Value = res.json().await?;
    assert_eq!(job["kind"], "rebalance");
    let planned: Vec<(&Value, &Value)> = moves
        .iter()
        .map(|m| (&m["tenant"], &m["to_shard"]))
        .collect();
    let listed: Vec<(&Value, &Value)> = job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (&s["tenant"], &s["to_shard"]))
        .collect();
    assert_eq!(listed, planned);
    let job = finished_job(&app, job["id"].as_str().ok_or("job id")?).await?;
    assert_eq!(job["state"], "done", "{job}");
    for m in moves {
        let slug = m["tenant"].as_str().unwrap_or("");
        assert_eq!(&shard_of(&app, slug).await?, light_shard);
    }
    // Balanced now: the dry run has nothing left to do.
    let after: Value = app.get("/v1/platform/rebalance").await.json().await?;
    assert_eq!(after["moves"], json!([]), "{after}");
    Ok(())
}

/// The drain job through the real move engine (the lead's end-to-end drain tests go further:
/// writes during the move, failures, crashes).
#[actix_web::test]
async fn a_drain_moves_its_tenants_with_the_move_engine() -> TestResult {
    let app = TestApp::spawn().await;
    let mut on_zero = Vec::new();
    for slug in ["dr-one", "dr-two", "dr-three"] {
        app.create_tenant(slug).await;
        if shard_of(&app, slug).await? == "shard-0" {
            on_zero.push(slug);
        }
    }
    assert!(!on_zero.is_empty());
    let loc = app.create_location(on_zero[0], "MAIN").await;
    let res = post_empty(&app, "/v1/platform/shards/shard-0/drain").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let job: Value = res.json().await?;
    // A second drain while it runs returns the same job; a rebalance waits for it.
    let again: Value = post_empty(&app, "/v1/platform/shards/shard-0/drain")
        .await
        .json()
        .await?;
    if again["state"] == "running" {
        assert_eq!(again["id"], job["id"]);
        assert_problem(
            post_empty(&app, "/v1/platform/rebalance").await,
            409,
            "shard_job_in_progress",
        )
        .await;
    }
    let job = finished_job(&app, job["id"].as_str().ok_or("job id")?).await?;
    assert_eq!(job["state"], "done", "{job}");
    let steps = job["steps"].as_array().ok_or("steps")?;
    assert_eq!(steps.len(), on_zero.len(), "{job}");
    for step in steps {
        assert_eq!(step["state"], "done", "{step}");
        assert_eq!(step["to_shard"], "shard-1");
        let moved: Value = app
            .get(&format!(
                "/v1/platform/moves/{}",
                step["move_id"].as_str().unwrap_or("")
            ))
            .await
            .json()
            .await?;
        assert_eq!(moved["state"], "done", "{moved}");
        assert_eq!(moved["requested_by"], "drain:shard-0");
    }
    for slug in &on_zero {
        assert_eq!(shard_of(&app, slug).await?, "shard-1");
    }
    let path = format!(
        "/v1/tenants/{}/locations/{}",
        on_zero[0],
        loc["id"].as_str().unwrap_or("")
    );
    assert_eq!(app.get(&path).await.status(), StatusCode::OK);
    assert_eq!(
        app.post_json(
            &format!("/v1/tenants/{}/locations", on_zero[0]),
            &location_body("AFTER")
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let s: Value = app.get("/v1/platform/shards/shard-0").await.json().await?;
    assert_eq!(s["tenant_count"], 0);
    assert_eq!(s["status"], "draining");
    Ok(())
}

fn cli_ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[actix_web::test]
async fn the_lifecycle_from_the_command_line() -> TestResult {
    let app = TestApp::spawn().await;
    let mut dbs = TestDbs::new();
    let dsn = dbs.create(MAIN_SERVER, "s5").await?;
    let out = cli_ok(&app.cli(&["shards", "register", "shard-5", &dsn, "--weight", "50"]));
    assert!(out.contains("shard-5 registered"), "{out}");
    let refused = app.cli(&["shards", "activate", "shard-5"]);
    assert!(
        !refused.status.success(),
        "an unmigrated shard is not activated"
    );
    let out = cli_ok(&app.cli(&["shards", "migrate", "shard-5"]));
    assert!(out.contains("migrated to schema version"), "{out}");
    let out = cli_ok(&app.cli(&["shards", "activate", "shard-5"]));
    assert!(out.contains("shard-5 is active"), "{out}");
    let out = cli_ok(&app.cli(&["shards", "read-only", "shard-5"]));
    assert!(out.contains("shard-5 is read_only"), "{out}");
    let out = cli_ok(&app.cli(&["shards", "list"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("shard-5") && l.contains("read_only")),
        "{out}"
    );
    let shown: Value = serde_json::from_str(&cli_ok(&app.cli(&["shards", "show", "shard-5"])))?;
    assert_eq!(shown["status"], "read_only");
    assert_eq!(shown["weight"], 50);
    let out = cli_ok(&app.cli(&["shards", "rebalance"]));
    assert!(out.contains("shard-5") && out.contains("no moves"), "{out}");
    // A drain runs in the command's process until its job ends (no tenants here: at once); so
    // does an executed rebalance.
    let out = cli_ok(&app.cli(&["shards", "drain", "shard-0"]));
    assert!(
        out.contains("shard shard-0 is draining") && out.contains(" done"),
        "{out}"
    );
    let out = cli_ok(&app.cli(&["shards", "rebalance", "--execute"]));
    assert!(
        out.contains("rebalance job") && out.contains(" done"),
        "{out}"
    );
    let out = cli_ok(&app.cli(&["shards", "weight", "shard-1", "250"]));
    assert!(out.contains("weight 250"), "{out}");
    // The API sees what the command line did.
    let s: Value = app.get("/v1/platform/shards/shard-5").await.json().await?;
    assert_eq!(s["status"], "read_only");
    assert_eq!(s["schema_current"], true);
    drop(app);
    drop(dbs);
    Ok(())
}
