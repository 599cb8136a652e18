//! Locations end to end: HTTP → Directory → TenantActor → shard, with outbox rows.

use crate::helpers::*;
use aries_tenants::outbox;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[actix_web::test]
async fn crud_with_etags_and_outbox() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("crud").await;
    let res = app
        .post_json("/v1/tenants/crud/locations", &location_body("main"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: Value = res.json().await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(created["code"], "MAIN", "codes are stored upper-case");
    assert_eq!(created["pos_type"], "12");
    assert_eq!(created["version"], 1);
    let path = format!("/v1/tenants/crud/locations/{id}");

    let res = app.get(&path).await;
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.json::<Value>().await?, created);

    // Conditional update: stale If-Match is refused, current one applies; null removes.
    let patch =
        json!({"name": "Main street branch", "address": {"line2": "Suite 5"}, "phone": null});
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"7\"")
        .json(&patch)
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .header("content-type", "application/merge-patch+json")
        .body(patch.to_string())
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let updated: Value = res.json().await?;
    assert_eq!(updated["name"], "Main street branch");
    assert_eq!(updated["address"]["line2"], "Suite 5");
    assert_eq!(updated["address"]["city"], "Austin");
    assert!(updated.get("phone").is_none());
    assert_eq!(updated["version"], 2);
    // A patch that changes nothing bumps nothing.
    let same: Value = app
        .req(Method::PATCH, &path)
        .json(&json!({"name": "Main street branch"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(same["version"], 2);
    // A patch that breaks a rule names the field.
    let res = app
        .req(Method::PATCH, &path)
        .json(&json!({"address": {"state": "ZZ"}}))
        .send()
        .await?;
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "address.state");

    // Unique code per tenant.
    assert_problem(
        app.post_json("/v1/tenants/crud/locations", &location_body("MAIN"))
            .await,
        409,
        "location_code_taken",
    )
    .await;

    let res = app
        .req(Method::DELETE, &path)
        .header("if-match", "\"1\"")
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = app
        .req(Method::DELETE, &path)
        .header("if-match", "\"2\"")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path).await, 404, "not_found").await;
    assert_problem(
        app.req(Method::DELETE, &path).send().await?,
        404,
        "not_found",
    )
    .await;

    // Each change wrote its event in the same transaction.
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events = outbox::list(&mut tx, TestApp::tenant_id(&tenant)).await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["location.created", "location.updated", "location.deleted"]
    );
    assert!(events.iter().all(|e| e.aggregate_id.to_string() == id));
    assert_eq!(events[1].payload["name"], "Main street branch");
    Ok(())
}

#[actix_web::test]
async fn failed_write_leaves_no_event() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("atomic").await;
    app.create_location("atomic", "A").await;
    assert_eq!(
        app.post_json("/v1/tenants/atomic/locations", &location_body("A"))
            .await
            .status(),
        409
    );
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    assert_eq!(
        outbox::list(&mut tx, TestApp::tenant_id(&tenant))
            .await?
            .len(),
        1
    );
    Ok(())
}

#[actix_web::test]
async fn list_pages_and_filters() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("many").await;
    for code in ["A1", "B2", "C3", "D4", "E5"] {
        app.create_location("many", code).await;
    }
    let mut codes = Vec::new();
    let mut path = "/v1/tenants/many/locations?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = app.get(&path).await.json().await?;
        pages += 1;
        codes.extend(
            page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["code"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/tenants/many/locations?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(codes, ["A1", "B2", "C3", "D4", "E5"]);
    let found: Value = app
        .get("/v1/tenants/many/locations?q=c3")
        .await
        .json()
        .await?;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    // LIKE wildcards in q are literal.
    let none: Value = app
        .get("/v1/tenants/many/locations?q=%25")
        .await
        .json()
        .await?;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    Ok(())
}

#[actix_web::test]
async fn tenants_never_see_each_others_locations() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("alpha").await;
    app.create_tenant("bravo").await;
    let a = app.create_location("alpha", "MAIN").await;
    app.create_location("bravo", "MAIN").await; // same code: uniqueness is per tenant
    let a_id = a["id"].as_str().unwrap_or_default();
    // bravo's URL with alpha's id: 404, same as a random id.
    assert_problem(
        app.get(&format!("/v1/tenants/bravo/locations/{a_id}"))
            .await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .req(
            Method::PATCH,
            &format!("/v1/tenants/bravo/locations/{a_id}"),
        )
        .json(&json!({"name": "x"}))
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    let res = app
        .req(
            Method::DELETE,
            &format!("/v1/tenants/bravo/locations/{a_id}"),
        )
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    let list: Value = app.get("/v1/tenants/bravo/locations").await.json().await?;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_ne!(list["data"][0]["id"], a["id"]);
    assert_eq!(
        app.get(&format!("/v1/tenants/alpha/locations/{a_id}"))
            .await
            .status(),
        200
    );
    Ok(())
}

#[actix_web::test]
async fn idempotency_keys_make_creates_safe_to_retry() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("retry").await;
    let path = "/v1/tenants/retry/locations";
    let body = location_body("ONCE");
    let send = |key: &'static str, body: Value| {
        app.req(Method::POST, path)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };

    let first = send("k-1", body.clone()).await?;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await?;
    // The same key and body: the first response again, nothing created twice.
    let again = send("k-1", body.clone()).await?;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.headers()["location"],
        format!("{path}/{}", first_body["id"].as_str().unwrap_or(""))
    );
    assert_eq!(again.json::<Value>().await?, first_body);
    // The same key with another body is refused.
    assert_problem(
        send("k-1", location_body("OTHER")).await?,
        422,
        "idempotency_key_reused",
    )
    .await;
    // Concurrent duplicates with a fresh key: one creation, both get it.
    let b2 = location_body("TWICE");
    let (x, y) = tokio::join!(send("k-2", b2.clone()), send("k-2", b2.clone()));
    let (x, y) = (x?, y?);
    assert_eq!((x.status().as_u16(), y.status().as_u16()), (201, 201));
    let (x, y): (Value, Value) = (x.json().await?, y.json().await?);
    assert_eq!(x["id"], y["id"]);
    // A create that failed stores nothing: the same request fails the same way again, and the key
    // is free for a corrected request.
    let bad = json!({"code": "", "name": "x", "address": {"line1": "a", "city": "b", "state": "TX", "postal_code": "78701"}});
    assert_problem(send("k-3", bad.clone()).await?, 422, "validation_failed").await;
    assert_problem(send("k-3", bad).await?, 422, "validation_failed").await;
    assert_eq!(send("k-3", location_body("FIXED")).await?.status(), 201);
    assert_problem(
        app.req(Method::POST, path)
            .header("idempotency-key", "has space")
            .json(&body)
            .send()
            .await?,
        400,
        "bad_request",
    )
    .await;

    let list: Value = app.get(path).await.json().await?;
    let codes: Vec<&str> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["code"].as_str())
        .collect();
    assert_eq!(codes, ["ONCE", "TWICE", "FIXED"]);
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    assert_eq!(
        outbox::list(&mut tx, TestApp::tenant_id(&tenant))
            .await?
            .len(),
        3,
        "one event per creation"
    );
    Ok(())
}
