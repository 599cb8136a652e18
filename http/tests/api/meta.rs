//! Cross-cutting HTTP behaviour: request ids, security headers, health, metrics, OpenAPI, docs,
//! problem-type pages.

use crate::helpers::*;
use serde_json::Value;

#[actix_web::test]
async fn request_ids_are_echoed_or_made_and_appear_in_problems() -> TestResult {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/v1/nowhere"))
        .header("x-request-id", "abc-123")
        .send()
        .await?;
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let body = assert_problem(res, 404, "not_found").await;
    assert_eq!(body["instance"], "abc-123");
    // An unacceptable id (too long / odd characters) is replaced by a fresh one.
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "a b\tc")
        .send()
        .await?;
    let id = res.headers()["x-request-id"].to_str()?.to_owned();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "{id}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    Ok(())
}

#[actix_web::test]
async fn health_reports_every_dependency() -> TestResult {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    let ready = eventually(std::time::Duration::from_secs(10), || async {
        let body: Value = app
            .get("/health/ready")
            .await
            .json()
            .await
            .unwrap_or_default();
        body["status"] == "ready"
    })
    .await;
    assert!(ready, "never ready");
    let body: Value = app.get("/health/ready").await.json().await?;
    assert_eq!(body["catalog"]["status"], "up");
    assert_eq!(body["redis"]["status"], "up");
    assert_eq!(body["rabbitmq"]["status"], "up");
    let names: Vec<&str> = body["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["shard-0", "shard-1"]);
    Ok(())
}

#[actix_web::test]
async fn metrics_cover_routes_actors_pools_and_breakers() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("metered").await;
    app.create_location("metered", "MAIN").await;
    app.get("/v1/tenants/metered/locations").await;
    let text = app.get("/metrics").await.text().await?;
    for needle in [
        "http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/tenants/{tenant}/locations\",status=\"200\"",
        "aries_tenant_actors_active",
        "aries_tenant_activations_total",
        "aries_shard_pool_connections{shard=\"shard-0\",state=\"idle\"}",
        "aries_shard_breaker_state{shard=\"shard-1\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // Route labels are templates, never raw paths (bounded cardinality).
    assert!(!text.contains("route=\"/v1/tenants/metered"));
    Ok(())
}

#[actix_web::test]
async fn openapi_lists_every_route_and_docs_work_offline() -> TestResult {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json").await.json().await?;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for (path, method) in [
        ("/v1/platform/tenants", "post"),
        ("/v1/platform/tenants", "get"),
        ("/v1/platform/tenants/{tenant}", "get"),
        ("/v1/platform/tenants/{tenant}/suspend", "post"),
        ("/v1/platform/tenants/{tenant}/resume", "post"),
        ("/v1/platform/tenants/{tenant}/archive", "post"),
        ("/v1/platform/shards", "get"),
        ("/v1/tenants/{tenant}/locations", "post"),
        ("/v1/tenants/{tenant}/locations", "get"),
        ("/v1/tenants/{tenant}/locations/{location_id}", "get"),
        ("/v1/tenants/{tenant}/locations/{location_id}", "patch"),
        ("/v1/tenants/{tenant}/locations/{location_id}", "delete"),
        ("/health/ready", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Location"].is_object());

    let res = app.client.get(app.url("/docs")).send().await?;
    assert_eq!(res.status(), 200, "/docs redirects to the UI");
    let html = res.text().await?;
    // Every asset the page loads is a relative URL this server answers: nothing from a CDN.
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap_or("").to_owned());
        }
    }
    assert!(!assets.is_empty(), "{html}");
    for a in &assets {
        assert!(
            !a.starts_with("http") && !a.starts_with("//"),
            "external asset {a}"
        );
        let res = app
            .client
            .get(app.url(&format!("/docs/{}", a.trim_start_matches("./"))))
            .send()
            .await?;
        assert_eq!(res.status(), 200, "asset {a}");
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await?
        .text()
        .await?;
    assert!(init.contains("/openapi.json"), "{init}");
    Ok(())
}

#[actix_web::test]
async fn problem_types_are_documented() -> TestResult {
    let app = TestApp::spawn().await;
    for code in aries_http::error::ErrorCode::ALL {
        let res = app
            .client
            .get(app.url(&format!("/problems/{}", code.code())))
            .send()
            .await?;
        assert_eq!(res.status(), 200);
        let html = res.text().await?;
        assert!(html.contains(code.title()) && html.contains(code.code()));
    }
    Ok(())
}

#[actix_web::test]
async fn cors_answers_only_configured_origins() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        cors_origins: vec!["https://console.example.com".into()],
        ..Default::default()
    })
    .await;
    app.create_tenant("corsy").await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                app.url("/v1/tenants/corsy/locations"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let ok = preflight("https://console.example.com").await?;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://console.example.com"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()?
        .to_lowercase();
    assert!(
        allowed.contains("idempotency-key") && allowed.contains("authorization"),
        "{allowed}"
    );
    let other = preflight("https://evil.example.net").await?;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // An actual request from the allowed origin can read the headers it needs.
    let res = app
        .req(reqwest::Method::GET, "/v1/tenants/corsy/locations")
        .header("origin", "https://console.example.com")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()?
        .to_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("ratelimit-remaining"),
        "{exposed}"
    );
    // Without configured origins there are no CORS headers at all.
    let plain = TestApp::spawn().await;
    let res = plain
        .client
        .get(plain.url("/health/live"))
        .header("origin", "https://console.example.com")
        .send()
        .await?;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    Ok(())
}
