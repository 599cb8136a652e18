//! Warehouses, items and serials over HTTP: a serial's life with its state checked at each step,
//! illegal events refused with the state named, the history, and validation of every identifier.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn receive(
    app: &TestApp,
    t: &str,
    item: &Value,
    warehouse: &Value,
    number: &str,
) -> reqwest::Response {
    let body =
        json!({"item_id": item["id"], "serial_number": number, "warehouse_id": warehouse["id"]});
    app.post_json(&format!("{t}/serials"), &body).await
}

#[actix_web::test]
async fn a_serials_life_over_http() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("stockist").await;
    let t = "/v1/tenants/stockist";
    let w1: Value = app
        .post_json(
            &format!("{t}/warehouses"),
            &json!({"code": "main", "name": "Main"}),
        )
        .await
        .json()
        .await?;
    let w2: Value = app
        .post_json(
            &format!("{t}/warehouses"),
            &json!({"code": "north", "name": "North"}),
        )
        .await
        .json()
        .await?;
    assert_problem(
        app.post_json(
            &format!("{t}/warehouses"),
            &json!({"code": "MAIN", "name": "Again"}),
        )
        .await,
        409,
        "warehouse_code_taken",
    )
    .await;
    let cpap: Value = app
        .post_json(
            &format!("{t}/items"),
            &json!({"code": "CPAP-1", "name": "CPAP", "serialized": true}),
        )
        .await
        .json()
        .await?;
    let cane: Value = app
        .post_json(
            &format!("{t}/items"),
            &json!({"code": "CANE", "name": "Cane"}),
        )
        .await
        .json()
        .await?;
    // Updates: conditional, and what serials depend on cannot change.
    let cpap_path = format!("{t}/items/{}", cpap["id"].as_str().unwrap_or(""));
    let res = app
        .req(Method::PATCH, &cpap_path)
        .header("if-match", "\"1\"")
        .json(&json!({"manufacturer": "ResMed"}))
        .send()
        .await?;
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers()["etag"].to_str()?.to_owned()
        ),
        (200, "\"2\"".to_owned())
    );
    assert_problem(
        app.req(Method::PATCH, &cpap_path)
            .header("if-match", "\"1\"")
            .json(&json!({"name": "x"}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let immutable = app
        .req(Method::PATCH, &cpap_path)
        .json(&json!({"serialized": false}))
        .send()
        .await?;
    assert_eq!(
        assert_problem(immutable, 422, "validation_failed").await["errors"][0]["field"],
        "serialized"
    );
    let w2_path = format!("{t}/warehouses/{}", w2["id"].as_str().unwrap_or(""));
    let renamed: Value = app
        .req(Method::PATCH, &w2_path)
        .json(&json!({"name": "North depot"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (renamed["name"].as_str(), renamed["version"].as_i64()),
        (Some("North depot"), Some(2))
    );
    assert_problem(
        app.req(Method::PATCH, &w2_path)
            .json(&json!({"code": "MAIN"}))
            .send()
            .await?,
        409,
        "warehouse_code_taken",
    )
    .await;
    let items: Value = app.get(&format!("{t}/items?limit=1")).await.json().await?;
    assert!(items["next_cursor"].is_string(), "two items, pages of one");
    let warehouses: Value = app.get(&format!("{t}/warehouses")).await.json().await?;
    assert_eq!(warehouses["data"].as_array().map(Vec::len), Some(2));
    let shown = app.get(&w2_path).await;
    assert_eq!(shown.headers()["etag"], "\"2\"");
    let bad_tank = app
        .post_json(
            &format!("{t}/items"),
            &json!({"code": "O2", "name": "Tank", "oxygen_tank": true}),
        )
        .await;
    assert_eq!(
        assert_problem(bad_tank, 422, "validation_failed").await["errors"][0]["field"],
        "oxygen_tank"
    );

    let res = receive(&app, t, &cpap, &w1, "SN-1").await;
    assert_eq!(res.status(), 201);
    let serial: Value = res.json().await?;
    assert_eq!(
        (
            serial["state"]["status"].as_str(),
            &serial["state"]["warehouse"]
        ),
        (Some("on_hand"), &w1["id"])
    );
    assert_problem(
        receive(&app, t, &cpap, &w1, "SN-1").await,
        409,
        "serial_number_taken",
    )
    .await;
    assert_eq!(
        assert_problem(
            receive(&app, t, &cane, &w1, "X").await,
            422,
            "validation_failed"
        )
        .await["errors"][0]["field"],
        "item_id"
    );

    let path = format!("{t}/serials/{}", serial["id"].as_str().unwrap_or(""));
    let event = |body: Value| {
        app.req(Method::POST, &format!("{path}/events"))
            .json(&body)
            .send()
    };
    let patient = uuid::Uuid::now_v7().to_string();
    let steps = [
        (json!({"type": "reserve"}), "reserved"),
        (json!({"type": "rent", "patient": patient}), "rented"),
        (
            json!({"type": "return", "warehouse": w2["id"]}),
            "maintenance",
        ),
        (json!({"type": "in_from_maintenance"}), "on_hand"),
    ];
    for (body, status) in steps {
        let res = event(body.clone()).await?;
        assert_eq!(res.status(), 200, "{body}");
        let s: Value = res.json().await?;
        assert_eq!(s["state"]["status"], status, "{body}");
    }
    let now: Value = app.get(&path).await.json().await?;
    assert_eq!(
        (
            &now["state"]["warehouse"],
            now["state"]["last_patient"].as_str()
        ),
        (&w2["id"], Some(patient.as_str()))
    );
    assert_eq!(now["version"], 5);

    // Illegal events are refused, naming the state, and change nothing.
    let res = event(json!({"type": "in_from_maintenance"})).await?;
    let body = assert_problem(res, 409, "illegal_transition").await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("on_hand")),
        "{body}"
    );
    let res = app
        .req(Method::POST, &format!("{path}/events"))
        .header("if-match", "\"2\"")
        .json(&json!({"type": "reserve"}))
        .send()
        .await?;
    assert_problem(res, 412, "version_mismatch").await;
    assert_eq!(
        assert_problem(
            event(json!({"type": "teleport"})).await?,
            422,
            "validation_failed"
        )
        .await["code"],
        "validation_failed"
    );
    assert_eq!(
        assert_problem(
            event(json!({"type": "return", "warehouse": uuid::Uuid::now_v7()})).await?,
            422,
            "validation_failed"
        )
        .await["errors"][0]["field"],
        "warehouse"
    );
    let history: Value = app.get(&format!("{path}/history")).await.json().await?;
    let names: Vec<&str> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["event"]["type"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "received",
            "reserve",
            "rent",
            "return",
            "in_from_maintenance"
        ]
    );

    let on_hand: Value = app
        .get(&format!("{t}/serials?status=on_hand"))
        .await
        .json()
        .await?;
    assert_eq!(on_hand["data"].as_array().map(Vec::len), Some(1));
    assert_problem(
        app.get(&format!("{t}/serials?status=flying")).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/serials/abc")).await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/items/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    // Viewers may look but not move equipment.
    let viewer: Value = app
        .post_json(
            &format!("{t}/api-keys"),
            &json!({"name": "v", "roles": ["viewer"]}),
        )
        .await
        .json()
        .await?;
    let res = app
        .client
        .post(app.url(&format!("{path}/events")))
        .bearer_auth(viewer["secret"].as_str().unwrap_or(""))
        .json(&json!({"type": "reserve"}))
        .send()
        .await?;
    assert_problem(res, 403, "forbidden").await;
    Ok(())
}

#[actix_web::test]
async fn stock_moves_and_the_counters_replay_the_ledger() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("shelves").await;
    let t = "/v1/tenants/shelves";
    let w1: Value = app
        .post_json(
            &format!("{t}/warehouses"),
            &json!({"code": "A", "name": "A"}),
        )
        .await
        .json()
        .await?;
    let w2: Value = app
        .post_json(
            &format!("{t}/warehouses"),
            &json!({"code": "B", "name": "B"}),
        )
        .await
        .json()
        .await?;
    let item: Value = app
        .post_json(
            &format!("{t}/items"),
            &json!({"code": "MASK", "name": "Mask"}),
        )
        .await
        .json()
        .await?;
    let mv = |body: Value| {
        app.req(Method::POST, &format!("{t}/stock/movements"))
            .json(&body)
            .send()
    };
    let res = mv(
        json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": item["id"], "quantity": 10}),
    )
    .await?;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await?["data"][0]["on_hand"], 10);
    let res = mv(json!({"kind": "transfer", "from_warehouse_id": w1["id"], "to_warehouse_id": w2["id"], "item_id": item["id"], "quantity": 4})).await?;
    let levels: Value = res.json().await?;
    assert_eq!(
        (
            levels["data"][0]["on_hand"].as_i64(),
            levels["data"][1]["on_hand"].as_i64()
        ),
        (Some(6), Some(4))
    );
    let adjust = json!({"kind": "adjustment", "warehouse_id": w2["id"], "item_id": item["id"], "quantity": -1, "note": "broken in storage"});
    let keyed = || {
        app.req(Method::POST, &format!("{t}/stock/movements"))
            .header("idempotency-key", "adjust-1")
            .json(&adjust)
            .send()
    };
    let res = keyed().await?;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("idempotent-replayed").is_none());
    // A retry with the same key is the first answer again and moves nothing.
    let res = keyed().await?;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(res.json::<Value>().await?["data"][0]["on_hand"], 3);
    // Refusals: more than on hand, zero, missing note, same warehouse, unknown item, unknown kind.
    assert_problem(mv(json!({"kind": "transfer", "from_warehouse_id": w2["id"], "to_warehouse_id": w1["id"], "item_id": item["id"], "quantity": 9})).await?, 409, "insufficient_stock").await;
    assert_problem(mv(json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": item["id"], "quantity": 0})).await?, 422, "validation_failed").await;
    let no_note = assert_problem(mv(json!({"kind": "adjustment", "warehouse_id": w1["id"], "item_id": item["id"], "quantity": 1})).await?, 422, "validation_failed").await;
    assert_eq!(no_note["errors"][0]["field"], "note");
    let same = assert_problem(mv(json!({"kind": "transfer", "from_warehouse_id": w1["id"], "to_warehouse_id": w1["id"], "item_id": item["id"], "quantity": 1})).await?, 422, "validation_failed").await;
    assert_eq!(same["errors"][0]["field"], "to_warehouse_id");
    let unknown = assert_problem(mv(json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": uuid::Uuid::now_v7(), "quantity": 1})).await?, 422, "validation_failed").await;
    assert_eq!(unknown["errors"][0]["field"], "item_id");
    assert_problem(
        mv(json!({"kind": "gift", "warehouse_id": w1["id"]})).await?,
        422,
        "validation_failed",
    )
    .await;
    let huge = mv(json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": item["id"], "quantity": i64::MAX})).await?;
    assert_eq!(
        assert_problem(huge, 422, "validation_failed").await["errors"][0]["field"],
        "quantity"
    );

    // The counters equal the replay of each ledger.
    let levels: Value = app
        .get(&format!(
            "{t}/stock?item_id={}",
            item["id"].as_str().unwrap_or("")
        ))
        .await
        .json()
        .await?;
    for level in levels["data"].as_array().cloned().unwrap_or_default() {
        let url = format!(
            "{t}/stock/movements?warehouse_id={}&item_id={}",
            level["warehouse_id"].as_str().unwrap_or(""),
            item["id"].as_str().unwrap_or("")
        );
        let ledger: Value = app.get(&url).await.json().await?;
        let moves: Vec<(aries_tenants::dme::stock::MovementKind, i64)> = ledger["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    serde_json::from_value(m["kind"].clone()).ok()?,
                    m["quantity"].as_i64()?,
                ))
            })
            .collect();
        let replayed =
            aries_tenants::dme::stock::StockCounters::replay(&moves).map_err(|e| e.to_string())?;
        assert_eq!(Some(replayed.on_hand), level["on_hand"].as_i64(), "{level}");
        assert_eq!(Some(replayed.available()), level["available"].as_i64());
    }
    let on_hand: Vec<i64> = levels["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["on_hand"].as_i64())
        .collect();
    assert_eq!(
        on_hand.iter().sum::<i64>(),
        9,
        "10 received, 1 written off; transfers move, they do not create"
    );
    assert_problem(
        app.get(&format!(
            "{t}/stock/movements?warehouse_id={}",
            w1["id"].as_str().unwrap_or("")
        ))
        .await,
        422,
        "invalid_query",
    )
    .await;
    Ok(())
}
