//! The operator API: tenants and shards.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[actix_web::test]
async fn create_places_migrates_and_activates() -> TestResult {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/v1/platform/tenants",
            &json!({"slug": "acme", "name": "Acme Medical", "plan": "enterprise"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["location"], "/v1/platform/tenants/acme");
    assert_eq!(res.headers()["etag"], "\"2\"");
    let t: Value = res.json().await?;
    assert_eq!(t["slug"], "acme");
    assert_eq!(t["status"], "active");
    assert_eq!(t["plan"], "enterprise");
    assert_eq!(t["placement_epoch"], 1);
    assert!(t["shard"].is_string());
    // The anchor row exists on its shard and only there.
    let id = TestApp::tenant_id(&t);
    let home = TestApp::shard_index(&t);
    for i in 0..2 {
        let pool = app.shard_pool(i);
        let mut tx = aries_shards::begin_tenant_tx(&pool, id).await?;
        let (n,): (i64,) = sqlx::query_as("select count(*) from tenant")
            .fetch_one(&mut *tx)
            .await?;
        assert_eq!(n, i64::from(i == home), "anchor rows on shard-{i}");
    }
    let shown: Value = app.get("/v1/platform/tenants/acme").await.json().await?;
    assert_eq!(shown, t);
    Ok(())
}

#[actix_web::test]
async fn placement_balances_tenants_over_both_shards() -> TestResult {
    let app = TestApp::spawn().await;
    let mut per_shard = [0, 0];
    for i in 0..4 {
        let t = app.create_tenant(&format!("bal-{i}")).await;
        per_shard[TestApp::shard_index(&t)] += 1;
    }
    assert_eq!(per_shard, [2, 2]);
    let shards: Value = app.get("/v1/platform/shards").await.json().await?;
    let counts: Vec<(String, u64)> = shards["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_owned(),
                        s["tenant_count"].as_u64().unwrap_or(99),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        counts,
        vec![("shard-0".to_owned(), 2), ("shard-1".to_owned(), 2)]
    );
    for s in shards["data"].as_array().into_iter().flatten() {
        assert_eq!(s["status"], "active");
        assert!(
            s["dsn"].as_str().is_some_and(|d| !d.contains('@')),
            "no credentials in {s}"
        );
    }
    Ok(())
}

#[actix_web::test]
async fn duplicate_and_concurrent_slugs() -> TestResult {
    let app = TestApp::spawn().await;
    let body = json!({"slug": "twin", "name": "Twin", "plan": "starter"});
    let (a, b) = tokio::join!(
        app.post_json("/v1/platform/tenants", &body),
        app.post_json("/v1/platform/tenants", &body)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    // Either the second saw the first's row (409) or both raced to the same provisioning tenant,
    // in which case the second finished the same creation (201 twice is allowed only then).
    assert!(
        statuses == [201, 409] || statuses == [201, 201],
        "{statuses:?}"
    );
    let again = app.post_json("/v1/platform/tenants", &body).await;
    assert_problem(again, 409, "tenant_slug_taken").await;
    let list: Value = app.get("/v1/platform/tenants?q=twin").await.json().await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[actix_web::test]
async fn create_validates_input() -> TestResult {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/v1/platform/tenants",
            &json!({"slug": "No_Good", "name": " ", "plan": "standard"}),
        )
        .await;
    let body = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["slug", "name"]);
    let res = app
        .post_json(
            "/v1/platform/tenants",
            &json!({"slug": "okay", "name": "x", "plan": "gold"}),
        )
        .await;
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "plan");
    Ok(())
}

#[actix_web::test]
async fn list_paginates_and_filters() -> TestResult {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.create_tenant(&format!("page-{i}")).await;
    }
    app.req(Method::POST, "/v1/platform/tenants/page-3/suspend")
        .send()
        .await?;
    let mut seen = Vec::new();
    let mut path = "/v1/platform/tenants?limit=2".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .filter_map(|t| t["slug"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/platform/tenants?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
    let suspended: Value = app
        .get("/v1/platform/tenants?status=suspended")
        .await
        .json()
        .await?;
    assert_eq!(suspended["data"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(suspended["data"][0]["slug"], "page-3");
    let on0: Value = app
        .get("/v1/platform/tenants?shard=shard-0")
        .await
        .json()
        .await?;
    let on1: Value = app
        .get("/v1/platform/tenants?shard=shard-1")
        .await
        .json()
        .await?;
    let n0 = on0["data"].as_array().map_or(0, Vec::len);
    let n1 = on1["data"].as_array().map_or(0, Vec::len);
    assert_eq!(n0 + n1, 5);
    assert!(
        on0["data"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|t| t["shard"] == "shard-0")
    );
    assert_problem(
        app.get("/v1/platform/tenants?status=paused").await,
        422,
        "invalid_query",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn suspend_resume_archive() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("life").await;
    let loc = app.create_location("life", "MAIN").await;
    let path = format!(
        "/v1/tenants/life/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );

    let res = app
        .req(Method::POST, "/v1/platform/tenants/life/suspend")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await?["status"], "suspended");
    assert_problem(app.get(&path).await, 403, "tenant_suspended").await;
    assert_problem(
        app.post_json("/v1/tenants/life/locations", &location_body("X"))
            .await,
        403,
        "tenant_suspended",
    )
    .await;
    // Suspending again is harmless.
    assert_eq!(
        app.req(Method::POST, "/v1/platform/tenants/life/suspend")
            .send()
            .await?
            .status(),
        200
    );

    let res = app
        .req(Method::POST, "/v1/platform/tenants/life/resume")
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["status"], "active");
    assert_eq!(app.get(&path).await.status(), 200);

    let res = app
        .req(Method::POST, "/v1/platform/tenants/life/archive")
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["status"], "archived");
    assert_problem(app.get(&path).await, 403, "tenant_archived").await;
    let res = app
        .req(Method::POST, "/v1/platform/tenants/life/resume")
        .send()
        .await?;
    assert_problem(res, 409, "invalid_status_transition").await;

    assert_problem(
        app.req(Method::POST, "/v1/platform/tenants/nobody/suspend")
            .send()
            .await?,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/platform/tenants/nobody").await,
        404,
        "not_found",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn suspension_through_the_catalog_reaches_an_active_actor() -> TestResult {
    // Another instance suspends the tenant: only the catalog changes here. The tenant's actor on
    // this instance must pick it up at its next profile refresh.
    let app = TestApp::spawn().await;
    app.create_tenant("remote").await;
    app.create_location("remote", "A").await;
    let slug = aries_tenants::TenantSlug::parse("remote")?;
    app.app_state
        .directory
        .catalog()
        .change_status(
            &slug,
            aries_tenants::tenant::StatusAction::Suspend,
            &aries_tenants::audit::AuditActor {
                actor: "another-instance".into(),
                ..Default::default()
            },
        )
        .await?;
    let ok = eventually(std::time::Duration::from_secs(15), || async {
        app.get("/v1/tenants/remote/locations").await.status() == StatusCode::FORBIDDEN
    })
    .await;
    assert!(ok, "the suspension never reached the tenant actor");
    Ok(())
}

#[actix_web::test]
async fn operator_routes_need_the_operator_token() -> TestResult {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/v1/platform/tenants"),
        (Method::GET, "/v1/platform/shards"),
        (Method::POST, "/v1/platform/tenants"),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await?;
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"aries\"")
        );
        assert_problem(res, 401, "unauthenticated").await;
        let res = app
            .client
            .request(method, app.url(path))
            .bearer_auth("wrong")
            .send()
            .await?;
        assert_problem(res, 401, "unauthenticated").await;
    }
    Ok(())
}

#[actix_web::test]
async fn tenant_creation_with_an_idempotency_key_replays() -> TestResult {
    let app = TestApp::spawn().await;
    let body = json!({"slug": "keyed", "name": "Keyed", "plan": "standard"});
    let send = |body: Value| {
        app.req(Method::POST, "/v1/platform/tenants")
            .header("idempotency-key", "create-keyed")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await?;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await?;
    let again = send(body.clone()).await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await?["id"], first["id"]);
    let other = send(json!({"slug": "keyed-2", "name": "Keyed", "plan": "standard"})).await?;
    assert_problem(other, 422, "idempotency_key_reused").await;
    // Without a key the same body is a duplicate.
    assert_problem(
        app.post_json("/v1/platform/tenants", &body).await,
        409,
        "tenant_slug_taken",
    )
    .await;
    Ok(())
}
