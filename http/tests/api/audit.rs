//! The audit trail: every change recorded in its own transaction with actor, action, target,
//! time, request id and source address; filters; and tamper detection by hash chain.

use crate::helpers::*;
use aries_shards::connect::{Role, lazy_pool};
use reqwest::Method;
use serde_json::{Value, json};

#[actix_web::test]
async fn changes_are_audited_with_who_what_when_and_where() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("audited").await;
    let loc = app.create_location("audited", "MAIN").await;
    let id = loc["id"].as_str().unwrap_or_default();
    let res = app
        .req(
            Method::PATCH,
            &format!("/v1/tenants/audited/locations/{id}"),
        )
        .header("x-request-id", "req-patch-1")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.req(
            Method::DELETE,
            &format!("/v1/tenants/audited/locations/{id}")
        )
        .send()
        .await?
        .status(),
        204
    );
    // A failed write leaves no audit row (same transaction).
    app.create_location("audited", "DUP").await;
    assert_eq!(
        app.post_json("/v1/tenants/audited/locations", &location_body("DUP"))
            .await
            .status(),
        409
    );

    let page: Value = app.get("/v1/tenants/audited/audit").await.json().await?;
    let events = page["data"].as_array().cloned().unwrap_or_default();
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "api_key.created",
            "location.created",
            "location.updated",
            "location.deleted",
            "location.created"
        ]
    );
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let update = &events[2];
    assert_eq!(update["target_type"], "location");
    assert_eq!(update["target_id"], id);
    assert_eq!(update["request_id"], "req-patch-1");
    assert_eq!(update["source_ip"], "127.0.0.1");
    assert!(
        update["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("api_key:")),
        "{update}"
    );
    assert_eq!(update["details"]["patch"]["name"], "Renamed");
    assert!(update["occurred_at"].is_string());
    assert_eq!(update["prev_hash"], events[1]["hash"]);
    assert_eq!(
        events[0]["actor"], "operator",
        "the bootstrap key was made by the operator"
    );

    // Filters and paging.
    let filtered: Value = app
        .get(&format!(
            "/v1/tenants/audited/audit?action=location.created&target_id={id}"
        ))
        .await
        .json()
        .await?;
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(1));
    let first: Value = app
        .get("/v1/tenants/audited/audit?limit=2")
        .await
        .json()
        .await?;
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let second: Value = app
        .get(&format!(
            "/v1/tenants/audited/audit?limit=2&cursor={cursor}"
        ))
        .await
        .json()
        .await?;
    assert_eq!(second["data"][0]["seq"], 3);
    assert_problem(
        app.get("/v1/tenants/audited/audit?since=yesterday").await,
        422,
        "invalid_query",
    )
    .await;

    let verify: Value = app
        .get("/v1/tenants/audited/audit/verify")
        .await
        .json()
        .await?;
    assert_eq!(verify, json!({"intact": true, "checked": 5}));
    Ok(())
}

#[actix_web::test]
async fn logins_and_refusals_are_audited() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("logins").await;
    let res = app
        .post_json("/v1/tenants/logins/users", &json!({"email": "l@x.co", "display_name": "L", "password": "a long enough pass", "roles": ["viewer"]}))
        .await;
    assert_eq!(res.status(), 201);
    let url = app.url("/v1/tenants/logins/oauth/token");
    for pw in ["a long enough pass", "wrong password..."] {
        app.client
            .post(&url)
            .form(&[
                ("grant_type", "password"),
                ("username", "l@x.co"),
                ("password", pw),
            ])
            .send()
            .await?;
    }
    let page: Value = app
        .get("/v1/tenants/logins/audit?target_type=user")
        .await
        .json()
        .await?;
    let actions: Vec<(&str, &str)> = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["action"].as_str()?, e["actor"].as_str()?)))
        .collect();
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0].0, "user.created");
    assert_eq!(actions[1].0, "auth.login");
    assert!(actions[1].1.starts_with("user:"));
    assert_eq!(actions[2], ("auth.login_failed", "anonymous"));
    Ok(())
}

#[actix_web::test]
async fn a_row_altered_by_hand_is_found() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("tamper").await;
    for code in ["A", "B", "C"] {
        app.create_location("tamper", code).await;
    }
    // The application's role cannot change the trail at all.
    let shard = TestApp::shard_index(&tenant);
    let tid = TestApp::tenant_id(&tenant);
    let mut tx = aries_shards::begin_tenant_tx(&app.shard_pool(shard), tid).await?;
    let denied = sqlx::query("update audit_event set action = 'nothing' where seq = 2")
        .execute(&mut *tx)
        .await;
    assert!(
        denied.is_err(),
        "the app role must not update the audit trail"
    );
    drop(tx);
    // The owner can, by switching the guard off: the chain still tells.
    let owner = lazy_pool(&app.shard_dsns[shard], Role::Owner, &app.db)?;
    let mut tx = owner.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(tid.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("alter table audit_event disable trigger audit_event_append_only")
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("update audit_event set details = '{\"code\": \"Z\"}' where seq = 3")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    assert_eq!(n, 1);
    sqlx::query("alter table audit_event enable trigger audit_event_append_only")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    owner.close().await;
    let verify: Value = app
        .get("/v1/tenants/tamper/audit/verify")
        .await
        .json()
        .await?;
    assert_eq!(verify["intact"], false);
    assert_eq!(verify["first_broken_seq"], 3);
    Ok(())
}

#[actix_web::test]
async fn operator_actions_are_audited_in_the_catalog() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("op-a").await;
    app.req(Method::POST, "/v1/platform/tenants/op-a/suspend")
        .header("x-request-id", "susp-1")
        .send()
        .await?;
    app.req(Method::POST, "/v1/platform/tenants/op-a/suspend")
        .send()
        .await?; // no change, no row
    app.req(Method::POST, "/v1/platform/tenants/op-a/resume")
        .send()
        .await?;
    app.req(Method::POST, "/v1/platform/signing-keys/rotate")
        .send()
        .await?;
    let page: Value = app.get("/v1/platform/audit").await.json().await?;
    let actions: Vec<&str> = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "shard.added",
            "shard.added",
            "signing_key.rotated",
            "tenant.created",
            "tenant.suspended",
            "tenant.resumed",
            "signing_key.rotated"
        ]
    );
    let suspended = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["action"] == "tenant.suspended")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            suspended["actor"].as_str(),
            suspended["request_id"].as_str()
        ),
        (Some("operator"), Some("susp-1"))
    );
    let about: Value = app
        .get("/v1/platform/audit?tenant=op-a")
        .await
        .json()
        .await?;
    assert_eq!(about["data"].as_array().map(Vec::len), Some(3));
    let verify: Value = app.get("/v1/platform/audit/verify").await.json().await?;
    assert_eq!(verify["intact"], true);
    Ok(())
}
