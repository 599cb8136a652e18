//! A dependency's database goes away. A shard: its tenants get 503 + Retry-After (from the open breaker, without
//! waiting on the dead server), the other shard's tenants are served, /health/ready names the
//! failed shard, and service resumes when the database returns. The catalog: active tenants keep
//! being served from their actors' state, catalog-bound calls answer 503, never 500 or a hang.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[actix_web::test]
async fn a_dead_shard_fails_fast_and_recovers() -> TestResult {
    let server = PgServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        shard1_server: Some(server.url()),
        ..Default::default()
    })
    .await;
    // Two tenants: placement puts one on each shard.
    let a = app.create_tenant("healthy").await;
    let b = app.create_tenant("doomed").await;
    let (up, down) = if TestApp::shard_index(&a) == 0 {
        ("healthy", "doomed")
    } else {
        ("doomed", "healthy")
    };
    assert_ne!(TestApp::shard_index(&a), TestApp::shard_index(&b));
    let up_loc = app.create_location(up, "MAIN").await;
    let down_loc = app.create_location(down, "MAIN").await;
    let up_path = format!(
        "/v1/tenants/{up}/locations/{}",
        up_loc["id"].as_str().unwrap_or("")
    );
    let down_path = format!(
        "/v1/tenants/{down}/locations/{}",
        down_loc["id"].as_str().unwrap_or("")
    );
    assert_eq!(app.get(&down_path).await.status(), 200);

    server.kill()?;

    // The first requests may see the connection die; soon every one is refused by the breaker.
    let mut refused = None;
    for _ in 0..200 {
        let res = app.get(&down_path).await;
        assert_ne!(
            res.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "a dead shard is not a 500"
        );
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refused = refused.ok_or("the dead shard's tenant never got a 503")?;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry_after >= 1, "Retry-After must be set");
    assert_problem(refused, 503, "shard_unavailable").await;
    // Writes too.
    let res = app
        .post_json(
            &format!("/v1/tenants/{down}/locations"),
            &location_body("NEW"),
        )
        .await;
    assert_problem(res, 503, "shard_unavailable").await;

    // Meanwhile the other shard's tenant is served, repeatedly.
    for _ in 0..20 {
        assert_eq!(app.get(&up_path).await.status(), 200);
    }
    assert_eq!(
        app.post_json(
            &format!("/v1/tenants/{up}/locations"),
            &location_body("MORE")
        )
        .await
        .status(),
        201
    );

    // Readiness names the failed shard (and stays 200: the instance still serves the others).
    let named = eventually(Duration::from_secs(10), || async {
        let res = app.get("/health/ready").await;
        let ok = res.status() == StatusCode::OK;
        let body: Value = res.json().await.unwrap_or_default();
        ok && body["status"] == "degraded"
            && body["shards"].as_array().is_some_and(|s| {
                s.iter().any(|s| {
                    s["name"] == "shard-1" && s["status"] == "down" && s["error"].is_string()
                }) && s
                    .iter()
                    .any(|s| s["name"] == "shard-0" && s["status"] == "up")
            })
    })
    .await;
    assert!(named, "/health/ready never named shard-1 as down");
    let shards: Value = app.get("/v1/platform/shards").await.json().await?;
    assert!(
        shards["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["name"] == "shard-1" && s["health"] == "down")
    );

    // Creating tenants: placement alternates, so the second new tenant is placed on the dead shard
    // (shard-0 was registered first, so it wins the tie). It gets 503, not 500, and stays
    // `provisioning` until a retry finishes it.
    let late1 = app
        .post_json(
            "/v1/platform/tenants",
            &json!({"slug": "late-one", "name": "Late", "plan": "standard"}),
        )
        .await;
    assert_eq!(late1.status(), StatusCode::CREATED);
    let body = json!({"slug": "late-two", "name": "Late", "plan": "standard"});
    let late2 = app.post_json("/v1/platform/tenants", &body).await;
    assert_problem(late2, 503, "shard_unavailable").await;
    let pending: Value = app
        .get("/v1/platform/tenants/late-two")
        .await
        .json()
        .await?;
    assert_eq!(
        (pending["status"].as_str(), pending["shard"].as_str()),
        (Some("provisioning"), Some("shard-1"))
    );
    let res = app
        .client
        .post(app.url("/v1/tenants/late-two/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ])
        .send()
        .await?;
    assert_eq!(
        res.json::<Value>().await?["error"],
        "unauthorized_client",
        "a provisioning tenant issues no tokens"
    );

    server.restart()?;
    let back = eventually(Duration::from_secs(30), || async {
        app.get(&down_path).await.status() == StatusCode::OK
    })
    .await;
    assert!(back, "service did not resume after the shard came back");
    let ready = eventually(Duration::from_secs(10), || async {
        let body: Value = app
            .get("/health/ready")
            .await
            .json()
            .await
            .unwrap_or_default();
        body["shards"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["status"] == "up"))
    })
    .await;
    assert!(ready);
    assert_eq!(
        app.post_json(
            &format!("/v1/tenants/{down}/locations"),
            &location_body("NEW")
        )
        .await
        .status(),
        201
    );
    // The interrupted creation finishes when retried.
    let finished = app.post_json("/v1/platform/tenants", &body).await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    assert_eq!(finished.json::<Value>().await?["status"], "active");
    app.bootstrap_key("late-two").await;
    assert_eq!(
        app.get("/v1/tenants/late-two/locations").await.status(),
        200
    );
    Ok(())
}

#[actix_web::test]
async fn a_dead_catalog_keeps_active_tenants_serving() -> TestResult {
    let server = PgServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        catalog_server: Some(server.url()),
        ..Default::default()
    })
    .await;
    app.create_tenant("steady").await;
    let loc = app.create_location("steady", "MAIN").await;
    let path = format!(
        "/v1/tenants/steady/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );

    server.kill()?;

    // The tenant's actor holds its profile: reads and writes go on (its shard is alive).
    for _ in 0..5 {
        assert_eq!(app.get(&path).await.status(), 200);
    }
    assert_eq!(
        app.post_json("/v1/tenants/steady/locations", &location_body("DURING"))
            .await
            .status(),
        201
    );
    // Calls that need the catalog say so.
    let res = app.get("/v1/platform/tenants").await;
    assert!(res.headers().get("retry-after").is_some());
    assert_problem(res, 503, "service_unavailable").await;
    // The token endpoint needs the catalog to find the tenant: OAuth's own "try later".
    let res = app
        .client
        .post(app.url("/v1/tenants/steady/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "a@b.co"),
            ("password", "whatever-long-enough"),
        ])
        .send()
        .await?;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.json::<Value>().await?["error"],
        "temporarily_unavailable"
    );
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await?;
    assert_eq!(
        (body["status"].as_str(), body["catalog"]["status"].as_str()),
        (Some("unavailable"), Some("down"))
    );

    server.restart()?;
    let back = eventually(Duration::from_secs(30), || async {
        app.get("/v1/platform/tenants").await.status() == StatusCode::OK
    })
    .await;
    assert!(back, "the catalog did not come back");
    assert_eq!(app.get("/health/ready").await.status(), 200);
    Ok(())
}
