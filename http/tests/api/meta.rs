//! Cross-cutting HTTP behaviour: request ids, security headers, health, metrics, OpenAPI, docs,
//! problem-type pages.

use crate::helpers::*;
use reqwest::Method;
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

/// The operation `method path` of the OpenAPI document (path as a template).
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    &doc["paths"][path][method]
}

/// The name of the component schema a `$ref` points to (`#/components/schemas/<name>`).
fn ref_name(schema: &Value) -> &str {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or("")
}

/// Sends `req`, then checks what schemathesis checks (`make fuzz`, docs/FUZZING.md): the status is
/// documented for `method path`, the answer's content type is the documented one, and an error's
/// body has the documented schema's required members. Returns the body.
async fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    req: reqwest::RequestBuilder,
    want: u16,
) -> Result<Value, Box<dyn std::error::Error>> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, want, "{method} {path}: {body}");
    let documented = &operation(doc, method, path)["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which its OpenAPI operation does not list: {body}"
    );
    let content = &documented["content"];
    assert!(
        content[&ct].is_object(),
        "{method} {path} {status}: content type {ct} is not the documented one ({content})"
    );
    let schema = &doc["components"]["schemas"][ref_name(&content[&ct]["schema"])];
    for member in schema["required"].as_array().into_iter().flatten() {
        let m = member.as_str().unwrap_or("");
        assert!(
            !body[m].is_null(),
            "{method} {path} {status}: no {m} in {body}"
        );
    }
    Ok(body)
}

/// Findings of `make fuzz` (docs/FUZZING.md), each an answer the document did not describe: 401
/// and 403 on secured routes, 400 for a malformed header, 415 for a body of another type, the
/// console-session routes' 401, the OAuth endpoints' RFC 6749 error bodies (application/json, not
/// problem+json), and the notification log's page (`{data, next_cursor?}`, documented as a bare
/// array).
#[actix_web::test]
async fn openapi_documents_what_the_routes_answer() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("documented").await;
    let loc = app.create_location("documented", "MAIN").await;
    let loc_id = loc["id"].as_str().unwrap_or("");
    let doc: Value = app.get("/openapi.json").await.json().await?;
    let t = "/v1/tenants/documented";
    let locations = "/v1/tenants/{tenant}/locations";
    let location = "/v1/tenants/{tenant}/locations/{location_id}";

    // No credential at all, and a credential the route does not take.
    let body = conforms(
        &doc,
        "get",
        locations,
        app.client.get(app.url(&format!("{t}/locations"))),
        401,
    )
    .await?;
    assert_eq!(body["code"], "unauthenticated");
    let body = conforms(
        &doc,
        "get",
        "/v1/platform/sessions",
        app.req(Method::GET, "/v1/platform/sessions"),
        403,
    )
    .await?;
    assert_eq!(body["code"], "forbidden");
    // The console-session routes: a bearer key is not a session.
    let body = conforms(
        &doc,
        "get",
        "/v1/tenants/{tenant}/sessions",
        app.req(Method::GET, &format!("{t}/sessions")),
        401,
    )
    .await?;
    assert_eq!(body["code"], "unauthenticated");
    // A malformed header, a body of another type.
    let req = app
        .req(Method::DELETE, &format!("{t}/locations/{loc_id}"))
        .header("if-match", "");
    let body = conforms(&doc, "delete", location, req, 400).await?;
    assert_eq!(body["code"], "bad_request");
    let req = app
        .req(Method::POST, &format!("{t}/locations"))
        .header("content-type", "text/plain")
        .body(location_body("TXT").to_string());
    let body = conforms(&doc, "post", locations, req, 415).await?;
    assert_eq!(body["code"], "unsupported_media_type");
    // OAuth answers in RFC 6749's shape.
    let body = conforms(
        &doc,
        "post",
        "/v1/tenants/{tenant}/oauth/token",
        app.client.post(app.url(&format!("{t}/oauth/token"))),
        400,
    )
    .await?;
    assert_eq!(body["error"], "invalid_request");
    let body = conforms(
        &doc,
        "post",
        "/v1/tenants/{tenant}/oauth/revoke",
        app.client.post(app.url(&format!("{t}/oauth/revoke"))),
        400,
    )
    .await?;
    assert_eq!(body["error"], "invalid_request");
    let revoke_body = &operation(&doc, "post", "/v1/tenants/{tenant}/oauth/revoke")["requestBody"]
        ["content"]["application/x-www-form-urlencoded"]["schema"];
    assert!(
        doc["components"]["schemas"][ref_name(revoke_body)]["properties"]["token"].is_object(),
        "the revocation form is documented as a form with `token`: {revoke_body}"
    );
    // The notification log is a page.
    let log = "/v1/tenants/{tenant}/notifications/log";
    let body = conforms(
        &doc,
        "get",
        log,
        app.req(Method::GET, &format!("{t}/notifications/log")),
        200,
    )
    .await?;
    assert!(body["data"].is_array(), "{body}");
    let page = &doc["components"]["schemas"][ref_name(
        &operation(&doc, "get", log)["responses"]["200"]["content"]["application/json"]["schema"],
    )];
    assert_eq!(page["properties"]["data"]["type"], "array", "{page}");
    // Removing a policy an order bills (orders.rs tests the answer itself).
    assert!(
        operation(
            &doc,
            "delete",
            "/v1/tenants/{tenant}/patients/{patient_id}/policies/{policy_id}"
        )["responses"]["409"]
            .is_object()
    );

    // Across the document: every secured operation lists 401 and 403; every error answer has its
    // content; operation ids are unique (tools address operations by them).
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = op["operationId"].as_str().unwrap_or("");
            assert!(
                ids.insert(id.to_owned()),
                "operationId {id} is used twice ({method} {path})"
            );
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            for status in ["401", "403"] {
                assert!(
                    !secured || op["responses"][status].is_object(),
                    "{method} {path} is secured but does not list {status}"
                );
            }
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object();
                    assert!(
                        content.is_some_and(|c| !c.is_empty()),
                        "{method} {path} {status} has no documented content"
                    );
                }
            }
        }
    }
    Ok(())
}
