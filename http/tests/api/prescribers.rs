//! Prescribers over HTTP: NPI validation, uniqueness, idempotent create, conditional update,
//! filters, audit and outbox.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[actix_web::test]
async fn prescribers_end_to_end() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("docs").await;
    let body = json!({"first_name": "Ann", "last_name": "Lee", "npi": "1234567893", "credentials": "MD", "pecos_enrolled": true,
                      "license_expires": "2027-06-30"});
    let res = app
        .req(Method::POST, "/v1/tenants/docs/prescribers")
        .header("idempotency-key", "p-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: Value = res.json().await?;
    assert_eq!(created["license_expires"], "2027-06-30");
    let again = app
        .req(Method::POST, "/v1/tenants/docs/prescribers")
        .header("idempotency-key", "p-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await?["id"], created["id"]);
    assert_problem(
        app.post_json("/v1/tenants/docs/prescribers", &body).await,
        409,
        "prescriber_npi_taken",
    )
    .await;
    let bad = app
        .post_json(
            "/v1/tenants/docs/prescribers",
            &json!({"first_name": "B", "last_name": "C", "npi": "1234567890"}),
        )
        .await;
    assert_eq!(
        assert_problem(bad, 422, "validation_failed").await["errors"][0]["field"],
        "npi"
    );
    let bad_date = app
        .post_json("/v1/tenants/docs/prescribers", &json!({"first_name": "B", "last_name": "C", "npi": "1245319599", "license_expires": "2027-13-01"}))
        .await;
    assert_eq!(
        assert_problem(bad_date, 422, "validation_failed").await["errors"][0]["field"],
        "license_expires"
    );
    app.post_json(
        "/v1/tenants/docs/prescribers",
        &json!({"first_name": "Bo", "last_name": "Diaz", "npi": "1245319599"}),
    )
    .await;

    let id = created["id"].as_str().unwrap_or_default();
    let path = format!("/v1/tenants/docs/prescribers/{id}");
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"3\"")
        .json(&json!({"active": false}))
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"active": false, "fax": "512-555-0199"}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");

    let found: Value = app
        .get("/v1/tenants/docs/prescribers?q=lee")
        .await
        .json()
        .await?;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    let active: Value = app
        .get("/v1/tenants/docs/prescribers?active=true")
        .await
        .json()
        .await?;
    assert_eq!(active["data"][0]["last_name"], "Diaz");
    let by_npi: Value = app
        .get("/v1/tenants/docs/prescribers?npi=1245319599")
        .await
        .json()
        .await?;
    assert_eq!(by_npi["data"].as_array().map(Vec::len), Some(1));
    assert_problem(
        app.get("/v1/tenants/docs/prescribers/not-an-id").await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get("/v1/tenants/docs/prescribers?colour=red").await,
        422,
        "invalid_query",
    )
    .await;

    let audit: Value = app
        .get("/v1/tenants/docs/audit?target_type=prescriber")
        .await
        .json()
        .await?;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "prescriber.created",
            "prescriber.created",
            "prescriber.updated"
        ]
    );
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events = aries_tenants::outbox::list(&mut tx, TestApp::tenant_id(&tenant)).await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "prescriber.created",
            "prescriber.created",
            "prescriber.updated"
        ]
    );
    Ok(())
}
