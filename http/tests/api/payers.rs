//! Payers over HTTP.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

#[actix_web::test]
async fn payers_end_to_end() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("billing-co").await;
    let t = "/v1/tenants/billing-co";
    let res = app
        .req(Method::POST, &format!("{t}/payers"))
        .header("idempotency-key", "payer-1")
        .json(&json!({"name": "Medicare Jurisdiction D", "payer_type": "medicare", "claim_channel": "Region D"}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let medicare: Value = res.json().await?;
    assert_eq!(
        (
            medicare["basis"].as_str(),
            medicare["participating"].as_bool()
        ),
        (Some("allowed"), Some(true))
    );
    let again = app
        .req(Method::POST, &format!("{t}/payers"))
        .header("idempotency-key", "payer-1")
        .json(&json!({"name": "Medicare Jurisdiction D", "payer_type": "medicare", "claim_channel": "Region D"}))
        .send()
        .await?;
    assert_eq!(again.json::<Value>().await?["id"], medicare["id"]);
    assert_problem(
        app.post_json(
            &format!("{t}/payers"),
            &json!({"name": "Medicare Jurisdiction D", "payer_type": "medicare"}),
        )
        .await,
        409,
        "payer_name_taken",
    )
    .await;
    let bad = app
        .post_json(
            &format!("{t}/payers"),
            &json!({"name": " ", "payer_type": "pirate", "basis": "vibes"}),
        )
        .await;
    let fields: Vec<String> = assert_problem(bad, 422, "validation_failed").await["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(fields, ["name", "payer_type", "basis"]);
    app.post_json(
        &format!("{t}/payers"),
        &json!({"name": "Blue Plan", "payer_type": "commercial"}),
    )
    .await;
    let path = format!("{t}/payers/{}", medicare["id"].as_str().unwrap_or(""));
    assert_problem(
        app.req(Method::PATCH, &path)
            .header("if-match", "\"9\"")
            .json(&json!({"participating": false}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"participating": false}))
        .send()
        .await?;
    assert_eq!(res.json::<Value>().await?["participating"], false);
    let commercial: Value = app
        .get(&format!("{t}/payers?payer_type=commercial"))
        .await
        .json()
        .await?;
    assert_eq!(commercial["data"][0]["name"], "Blue Plan");
    let found: Value = app
        .get(&format!("{t}/payers?q=jurisdiction"))
        .await
        .json()
        .await?;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    let audit: Value = app
        .get(&format!("{t}/audit?target_type=payer"))
        .await
        .json()
        .await?;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(3));
    Ok(())
}
