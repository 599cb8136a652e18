//! Every kind of bad input gets its documented 4xx problem, never a 500.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    code: &'static str,
    /// Expected `errors[0].field`, when the problem lists fields.
    field: Option<&'static str>,
}

fn case(name: &'static str, method: Method, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        content_type: None,
        body: None,
        headers: vec![],
        status,
        code,
        field: None,
    }
}

impl Case {
    fn json(mut self, body: &str) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.as_bytes().to_vec());
        self
    }
    fn raw(mut self, content_type: Option<&'static str>, body: Vec<u8>) -> Self {
        self.content_type = content_type;
        self.body = Some(body);
        self
    }
    fn header(mut self, k: &'static str, v: &'static str) -> Self {
        self.headers.push((k, v));
        self
    }
    fn field(mut self, f: &'static str) -> Self {
        self.field = Some(f);
        self
    }
}

/// Sends each case and returns a line for each answer that is not the expected problem.
async fn run_cases(
    app: &TestApp,
    cases: Vec<Case>,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut failures = Vec::new();
    for c in cases {
        let mut req = app.req(c.method.clone(), &c.path);
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in &c.headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = c.body.clone() {
            req = req.body(b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let field = body["errors"][0]["field"].as_str();
        let ok = status == c.status
            && body["code"] == c.code
            && ct == "application/problem+json"
            && body["type"] == format!("/problems/{}", c.code)
            && c.field.is_none_or(|f| field == Some(f));
        if !ok {
            failures.push(format!(
                "{}: expected {} {} {:?}, got {} {}",
                c.name, c.status, c.code, c.field, status, body
            ));
        }
    }
    Ok(failures)
}

#[actix_web::test]
async fn malformed_input_gets_the_documented_problem() -> TestResult {
    let app = TestApp::spawn_with(AppOptions {
        body_limit: Some(16 * 1024),
        ..Default::default()
    })
    .await;
    app.create_tenant("strict").await;
    let loc = app.create_location("strict", "MAIN").await;
    let one = format!(
        "/v1/tenants/strict/locations/{}",
        loc["id"].as_str().unwrap_or("")
    );
    let coll = "/v1/tenants/strict/locations";
    let good = location_body("NEW").to_string();
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(20 * 1024));
    let cases = vec![
        case("truncated JSON", Method::POST, coll, 422, "malformed_json").json("{\"code\": "),
        case("not JSON at all", Method::POST, coll, 422, "malformed_json").json("code=MAIN"),
        case("empty body", Method::POST, coll, 422, "malformed_json").json(""),
        case("trailing garbage", Method::POST, coll, 422, "malformed_json").json(&format!("{good} x")),
        case("wrong type", Method::POST, coll, 422, "validation_failed")
            .json(r#"{"code": 5, "name": "x", "address": {"line1": "a", "city": "b", "state": "TX", "postal_code": "78701"}}"#)
            .field("code"),
        case("nested wrong type", Method::POST, coll, 422, "validation_failed")
            .json(r#"{"code": "A", "name": "x", "address": {"line1": "a", "city": "b", "state": "TX", "postal_code": 78701}}"#)
            .field("address.postal_code"),
        case("unknown field", Method::POST, coll, 422, "validation_failed")
            .json(r#"{"code": "A", "nme": "x"}"#)
            .field("nme"),
        case("unknown nested field", Method::POST, coll, 422, "validation_failed")
            .json(r#"{"code": "A", "name": "x", "address": {"line1": "a", "city": "b", "state": "TX", "postal_code": "78701", "zip4": "1"}}"#)
            .field("address.zip4"),
        case("missing field", Method::POST, coll, 422, "validation_failed").json(r#"{"code": "A"}"#).field("name"),
        case("array instead of object", Method::POST, coll, 422, "validation_failed").json("[1, 2]"),
        case("rule: bad NPI", Method::POST, coll, 422, "validation_failed")
            .json(&location_body("NPI").as_object().map(|o| { let mut o = o.clone(); o.insert("npi".into(), json!("1234567890")); Value::Object(o).to_string() }).unwrap_or_default())
            .field("npi"),
        case("no content type", Method::POST, coll, 415, "unsupported_media_type").raw(None, good.clone().into_bytes()),
        case("text/plain", Method::POST, coll, 415, "unsupported_media_type").raw(Some("text/plain"), good.clone().into_bytes()),
        case("body too large", Method::POST, coll, 413, "payload_too_large").json(&big),
        case("bad uuid", Method::GET, "/v1/tenants/strict/locations/not-a-uuid", 422, "invalid_id").field("location_id"),
        case("uuid without hyphens", Method::GET, &format!("/v1/tenants/strict/locations/{}", uuid::Uuid::now_v7().simple()), 422, "invalid_id"),
        case("bad slug", Method::GET, "/v1/tenants/Not_A_Slug/locations", 422, "invalid_id").field("tenant"),
        case("unknown id", Method::GET, &format!("/v1/tenants/strict/locations/{}", uuid::Uuid::now_v7()), 404, "not_found"),
        case("operator token on a tenant URL", Method::GET, "/v1/tenants/nobody-here/locations", 401, "unauthenticated"),
        case("limit zero", Method::GET, &format!("{coll}?limit=0"), 422, "invalid_query").field("limit"),
        case("limit too big", Method::GET, &format!("{coll}?limit=501"), 422, "invalid_query").field("limit"),
        case("limit not a number", Method::GET, &format!("{coll}?limit=ten"), 422, "invalid_query").field("limit"),
        case("bad cursor", Method::GET, &format!("{coll}?cursor=%21%21"), 422, "invalid_query").field("cursor"),
        case("unknown query parameter", Method::GET, &format!("{coll}?colour=red"), 422, "invalid_query").field("colour"),
        case("bad boolean filter", Method::GET, &format!("{coll}?active=yes"), 422, "invalid_query").field("active"),
        case("malformed If-Match", Method::PATCH, &one, 400, "bad_request").json("{}").header("if-match", "W/nonsense"),
        case("stale If-Match", Method::PATCH, &one, 412, "version_mismatch").json(r#"{"name": "y"}"#).header("if-match", "\"9\""),
        case("merge patch not an object", Method::PATCH, &one, 422, "validation_failed").json("[]"),
        case("merge patch with unknown field", Method::PATCH, &one, 422, "validation_failed").json(r#"{"colour": "red"}"#).field("colour"),
        case("merge patch nulling a required field", Method::PATCH, &one, 422, "validation_failed").json(r#"{"name": null}"#).field("name"),
        case("wrong method", Method::PUT, coll, 405, "method_not_allowed").json(&good),
        case("unknown route", Method::GET, "/v1/nothing-here", 404, "not_found"),
        case("operator body wrong type", Method::POST, "/v1/platform/tenants", 422, "validation_failed").json(r#"{"slug": ["a"], "name": "x", "plan": "standard"}"#).field("slug"),
        case("unknown problem type", Method::GET, "/problems/no_such_code", 404, "not_found"),
    ];
    let failures = run_cases(&app, cases).await?;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // This tenant's key on another (here: non-existent) tenant's URL: 404, not a hint.
    let key = app.tenant_key("strict").unwrap_or_default();
    let res = app
        .client
        .get(app.url("/v1/tenants/nobody-here/locations"))
        .bearer_auth(&key)
        .send()
        .await?;
    assert_problem(res, 404, "not_found").await;
    // The good body still works (the cases above changed nothing).
    assert_eq!(
        app.post_json(coll, &location_body("NEW")).await.status(),
        201
    );
    Ok(())
}

/// U+0000, which PostgreSQL text cannot hold, in a JSON string, a query parameter, a path segment
/// or an OAuth form: each a 4xx naming where it was, never the 500 of a failed query (found by
/// `make fuzz`: an operator login with a NUL in the e-mail answered 500).
#[actix_web::test]
async fn nul_characters_are_refused_by_name() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("nul-test").await;
    let t = "/v1/tenants/nul-test";
    let cases = vec![
        case("login e-mail", Method::POST, "/v1/platform/sessions", 422, "validation_failed")
            .json(r#"{"email": "a\u0000b@example.com", "password": "whatever-password"}"#)
            .field("email"),
        case("tenant login e-mail", Method::POST, &format!("{t}/sessions"), 422, "validation_failed")
            .json(r#"{"email": "a\u0000b@example.com", "password": "whatever-password"}"#)
            .field("email"),
        case("nested body field", Method::POST, &format!("{t}/locations"), 422, "validation_failed")
            .json(r#"{"code": "N", "name": "x", "address": {"line1": "1\u0000", "city": "b", "state": "TX", "postal_code": "78701"}}"#)
            .field("address.line1"),
        case("location search", Method::GET, &format!("{t}/locations?q=a%00b"), 422, "invalid_query").field("q"),
        case("tenant search", Method::GET, "/v1/platform/tenants?q=a%00b", 422, "invalid_query").field("q"),
        case("platform audit filter", Method::GET, "/v1/platform/audit?action=%00", 422, "invalid_query").field("action"),
        case("tenant audit filter", Method::GET, &format!("{t}/audit?actor=x%00"), 422, "invalid_query").field("actor"),
        case("notification log filter", Method::GET, &format!("{t}/notifications/log?recipient=%00"), 422, "invalid_query").field("recipient"),
        case("hcpcs search", Method::GET, &format!("{t}/reference/hcpcs?q=%00"), 422, "invalid_query").field("q"),
        case("shard name", Method::GET, "/v1/platform/shards/a%00b", 422, "invalid_id").field("shard"),
        case("role name", Method::DELETE, &format!("{t}/roles/a%00b"), 422, "invalid_id").field("role"),
    ];
    let failures = run_cases(&app, cases).await?;
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The OAuth endpoints answer in RFC 6749's shape.
    for form in [
        "grant_type=password&username=a%00b&password=x",
        "grant_type=client_credentials&client_id=a%00b&client_secret=x",
    ] {
        let res = app
            .client
            .post(app.url(&format!("{t}/oauth/token")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        assert_eq!(res.status(), 400, "{form}");
        let body: Value = res.json().await?;
        assert_eq!(body["error"], "invalid_request", "{form}: {body}");
    }
    Ok(())
}
