//! Orders end to end over HTTP: intake → order → approve → deliver → pickup, with the serial's and
//! the stock's state checked at each step; the missing-information gate; cancellation releasing
//! stock; state conflicts; validation; idempotent creates and stale updates.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A tenant's reference data for orders: prescriber, Medicare payer with a default price list
/// pricing a CPAP (serialized, capped rental) and masks (supplies, sold), two warehouses, a
/// CPAP serial and ten masks in the first warehouse, and a patient with a Medicare policy.
struct World {
    t: String,
    prescriber: Value,
    payer: Value,
    list: Value,
    w1: Value,
    w2: Value,
    cpap: Value,
    mask: Value,
    serial: Value,
    patient: Value,
    policy: Value,
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or("")
}

async fn world(app: &TestApp, slug: &str) -> Result<World, Box<dyn std::error::Error>> {
    app.create_tenant(slug).await;
    let t = format!("/v1/tenants/{slug}");
    let prescriber = post_created(
        app,
        &format!("{t}/prescribers"),
        &json!({"first_name": "Ann", "last_name": "Lee", "npi": "1234567893", "pecos_enrolled": true}),
    )
    .await;
    let list = post_created(
        app,
        &format!("{t}/price-lists"),
        &json!({"name": "Medicare TX"}),
    )
    .await;
    let payer = post_created(
        app,
        &format!("{t}/payers"),
        &json!({"name": "Medicare DME MAC D", "payer_type": "medicare", "default_price_list_id": list["id"]}),
    )
    .await;
    let w1 = post_created(
        app,
        &format!("{t}/warehouses"),
        &json!({"code": "main", "name": "Main"}),
    )
    .await;
    let w2 = post_created(
        app,
        &format!("{t}/warehouses"),
        &json!({"code": "north", "name": "North"}),
    )
    .await;
    let cpap = post_created(
        app,
        &format!("{t}/items"),
        &json!({"code": "CPAP-1", "name": "CPAP machine", "serialized": true}),
    )
    .await;
    let mask = post_created(
        app,
        &format!("{t}/items"),
        &json!({"code": "MASK-1", "name": "Nasal mask"}),
    )
    .await;
    for (item, row) in [
        (
            &cpap,
            json!({"hcpcs": "E0601", "modifiers": ["RR"], "rent_billable": "120.00", "rent_allowable": "80.10",
                       "sale_billable": "1200.00", "sale_allowable": "801.00", "default_order_type": "rental",
                       "rental_type": "capped_rental", "billing_frequency": "monthly"}),
        ),
        (
            &mask,
            json!({"hcpcs": "A7034", "modifiers": ["NU"], "sale_billable": "45.00", "sale_allowable": "31.25",
                       "default_order_type": "sale", "taxable": true}),
        ),
    ] {
        let res = app
            .req(
                Method::PUT,
                &format!("{t}/price-lists/{}/items/{}", id(&list), id(item)),
            )
            .json(&row)
            .send()
            .await?;
        assert!(
            res.status().is_success(),
            "price row: {}",
            res.text().await?
        );
    }
    let serial = post_created(
        app,
        &format!("{t}/serials"),
        &json!({"item_id": cpap["id"], "serial_number": "CP-0001", "warehouse_id": w1["id"]}),
    )
    .await;
    let res = app
        .post_json(
            &format!("{t}/stock/movements"),
            &json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": cpap["id"], "quantity": 1}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await?);
    let res = app
        .post_json(
            &format!("{t}/stock/movements"),
            &json!({"kind": "receipt", "warehouse_id": w1["id"], "item_id": mask["id"], "quantity": 10}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await?);
    let patient = post_created(
        app,
        &format!("{t}/patients"),
        &json!({"first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1948-05-17",
               "address": {"line1": "12 Elm St", "city": "Austin", "state": "TX", "postal_code": "78701"},
               "primary_prescriber_id": prescriber["id"], "diagnosis_codes": ["G47.33"]}),
    )
    .await;
    let policy = post_created(
        app,
        &format!("{t}/patients/{}/policies", id(&patient)),
        &json!({"payer_id": payer["id"], "policy_number": "1EG4TE5MK72"}),
    )
    .await;
    Ok(World {
        t,
        prescriber,
        payer,
        list,
        w1,
        w2,
        cpap,
        mask,
        serial,
        patient,
        policy,
    })
}

/// The stock level of an item in a warehouse.
async fn level(
    app: &TestApp,
    w: &World,
    warehouse: &Value,
    item: &Value,
) -> Result<Value, Box<dyn std::error::Error>> {
    let levels: Value = app
        .get(&format!(
            "{}/stock?warehouse_id={}&item_id={}",
            w.t,
            id(warehouse),
            id(item)
        ))
        .await
        .json()
        .await?;
    Ok(levels["data"][0].clone())
}

fn counters(l: &Value) -> [i64; 5] {
    ["on_hand", "committed", "rented", "sold", "unavailable"].map(|k| l[k].as_i64().unwrap_or(-1))
}

fn codes(problem: &Value) -> Vec<String> {
    problem["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["code"].as_str().map(str::to_owned))
        .collect()
}

/// Records the patient's signature on file, one of the gates of approval.
async fn sign_on_file(app: &TestApp, w: &World) -> TestResult {
    let res = app
        .req(
            Method::PATCH,
            &format!("{}/patients/{}", w.t, id(&w.patient)),
        )
        .json(&json!({"signature_on_file": true}))
        .send()
        .await?;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    Ok(())
}

#[actix_web::test]
async fn intake_order_approve_deliver_pickup() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "oxy-care").await?;
    let t = &w.t;

    // The order: defaults from the patient (prescriber, diagnoses, policies) and from the payer's
    // default price list (HCPCS, modifiers, sale/rent type, prices of the line's kind).
    let res = app
        .req(Method::POST, &format!("{t}/orders"))
        .header("idempotency-key", "order-1")
        .json(&json!({"patient_id": w.patient["id"], "order_date": "2026-11-20",
                      "lines": [{"item_id": w.cpap["id"]}, {"item_id": w.mask["id"], "quantity": 2}]}))
        .send()
        .await?;
    assert_eq!(res.status(), 201);
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let order: Value = res.json().await?;
    assert_eq!(location, Some(format!("{t}/orders/{}", id(&order))));
    assert_eq!(order["state"], "new");
    assert_eq!(order["order_number"], "O000001");
    assert_eq!(order["prescriber_id"], w.prescriber["id"]);
    assert_eq!(order["diagnosis_codes"], json!(["G47.33"]));
    assert_eq!(order["policy_ids"], json!([w.policy["id"]]));
    let cpap_line = &order["lines"][0];
    assert_eq!(
        (
            &cpap_line["hcpcs"],
            &cpap_line["modifiers"],
            &cpap_line["sale_rent_type"],
            &cpap_line["billing_frequency"]
        ),
        (
            &json!("E0601"),
            &json!(["RR"]),
            &json!("capped_rental"),
            &json!("monthly")
        )
    );
    assert_eq!(
        (&cpap_line["billable_price"], &cpap_line["allowable_price"]),
        (&json!("120.00"), &json!("80.10"))
    );
    assert_eq!(cpap_line["price_list_id"], w.list["id"]);
    let mask_line = &order["lines"][1];
    assert_eq!(
        (
            &mask_line["sale_rent_type"],
            &mask_line["billing_frequency"],
            &mask_line["allowable_price"],
            &mask_line["taxable"]
        ),
        (
            &json!("one_time_sale"),
            &json!("one_time"),
            &json!("31.25"),
            &json!(true)
        )
    );
    // The same key and body: the first answer again; the same key, another body: refused.
    let again = app
        .req(Method::POST, &format!("{t}/orders"))
        .header("idempotency-key", "order-1")
        .json(&json!({"patient_id": w.patient["id"], "order_date": "2026-11-20",
                      "lines": [{"item_id": w.cpap["id"]}, {"item_id": w.mask["id"], "quantity": 2}]}))
        .send()
        .await?;
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again.json::<Value>().await?["id"], order["id"]);
    assert_problem(
        app.req(Method::POST, &format!("{t}/orders"))
            .header("idempotency-key", "order-1")
            .json(&json!({"patient_id": w.patient["id"]}))
            .send()
            .await?,
        422,
        "idempotency_key_reused",
    )
    .await;

    // Missing: the signature on file and the warehouse. Approval lists both and changes nothing.
    let path = format!("{t}/orders/{}", id(&order));
    let missing: Value = app
        .get(&format!("{path}/missing-information"))
        .await
        .json()
        .await?;
    let listed: Vec<&str> = missing["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["code"].as_str())
        .collect();
    assert_eq!(listed, ["missing_signature_on_file", "missing_warehouse"]);
    let refused = assert_problem(
        app.post_json(&format!("{path}/approve"), &json!({})).await,
        409,
        "missing_information",
    )
    .await;
    assert_eq!(
        codes(&refused),
        ["missing_signature_on_file", "missing_warehouse"]
    );
    assert_eq!(refused["missing"][0]["scope"], "patient");
    assert_eq!(app.get(&path).await.json::<Value>().await?["state"], "new");

    // An expired CMN shows as of a later day, on its line.
    let line_path = format!("{path}/lines/{}", id(cpap_line));
    let res = app
        .req(Method::PATCH, &line_path)
        .header("if-match", "\"1\"")
        .json(&json!({"cmn_reference": "CMN-484", "cmn_expires": "2027-11-19"}))
        .send()
        .await?;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let later: Value = app
        .get(&format!("{path}/missing-information?as_of=2027-12-01"))
        .await
        .json()
        .await?;
    assert!(
        later["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["code"] == "cmn_expired" && m["id"] == cpap_line["id"]),
        "{later}"
    );

    // Fix the gaps: a stale If-Match is refused, the current one accepted.
    assert_problem(
        app.req(Method::PATCH, &path)
            .header("if-match", "\"1\"")
            .json(&json!({"warehouse_id": w.w1["id"]}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let current: Value = app.get(&path).await.json().await?;
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", format!("\"{}\"", current["version"]))
        .json(&json!({"warehouse_id": w.w1["id"]}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    sign_on_file(&app, &w).await?;

    // Approve: stock committed in the order's warehouse.
    let res = app
        .req(Method::POST, &format!("{path}/approve"))
        .send()
        .await?;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let approved: Value = res.json().await?;
    assert_eq!(approved["state"], "approved");
    assert!(
        approved["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["state"] == "approved")
    );
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.cpap).await?),
        [1, 1, 0, 0, 0]
    );
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.mask).await?),
        [10, 2, 0, 0, 0]
    );
    // No more edits, no second approval.
    assert_problem(
        app.post_json(&format!("{path}/lines"), &json!({"item_id": w.mask["id"]}))
            .await,
        409,
        "order_state_conflict",
    )
    .await;
    assert_problem(
        app.post_json(&format!("{path}/approve"), &json!({})).await,
        409,
        "order_state_conflict",
    )
    .await;

    // Deliver: the serialized line needs its serial.
    let deliver = format!("{path}/deliver");
    let bad = assert_problem(
        app.post_json(&deliver, &json!({"delivery_date": "2026-11-21", "lines": [
            {"line_id": cpap_line["id"]}, {"line_id": mask_line["id"], "serial_id": w.serial["id"]}]}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<(&str, &str)> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["field"].as_str()?, e["code"].as_str()?)))
        .collect();
    assert_eq!(
        fields,
        [
            ("lines[0].serial_id", "required"),
            ("lines[1].serial_id", "not_serialized")
        ]
    );
    let res = app
        .post_json(&deliver, &json!({"delivery_date": "2026-11-21", "lines": [
            {"line_id": cpap_line["id"], "serial_id": w.serial["id"]}, {"line_id": mask_line["id"]}]}))
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let delivered: Value = res.json().await?;
    assert_eq!(
        (&delivered["delivery_date"], &delivered["bill_date"]),
        (&json!("2026-11-21"), &json!("2026-11-21"))
    );
    let l0 = &delivered["lines"][0];
    assert_eq!(
        (
            &l0["state"],
            &l0["serial_id"],
            &l0["dos_from"],
            &l0["next_bill_date"],
            &l0["billing_month"]
        ),
        (
            &json!("delivered"),
            &w.serial["id"],
            &json!("2026-11-21"),
            &json!("2026-11-21"),
            &json!(0)
        )
    );
    let serial: Value = app
        .get(&format!("{t}/serials/{}", id(&w.serial)))
        .await
        .json()
        .await?;
    assert_eq!(
        (
            &serial["state"]["status"],
            &serial["state"]["patient"],
            &serial["state"]["warehouse"]
        ),
        (&json!("rented"), &w.patient["id"], &Value::Null)
    );
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.cpap).await?),
        [0, 0, 1, 0, 0]
    );
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.mask).await?),
        [8, 0, 0, 2, 0]
    );
    assert_problem(
        app.post_json(&deliver, &json!({})).await,
        409,
        "order_state_conflict",
    )
    .await;
    assert_problem(
        app.post_json(
            &format!("{path}/cancel"),
            &json!({"reason": "changed mind"}),
        )
        .await,
        409,
        "order_state_conflict",
    )
    .await;

    // Pickup: sold masks are not picked up; the CPAP comes back into the other warehouse.
    assert_problem(
        app.post_json(
            &format!("{path}/lines/{}/pickup", id(mask_line)),
            &json!({}),
        )
        .await,
        409,
        "order_state_conflict",
    )
    .await;
    assert_problem(
        app.post_json(
            &format!("{line_path}/pickup"),
            &json!({"pickup_date": "2026-11-01", "warehouse_id": w.w2["id"]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let res = app
        .post_json(
            &format!("{line_path}/pickup"),
            &json!({"pickup_date": "2026-11-28", "warehouse_id": w.w2["id"]}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let picked: Value = res.json().await?;
    let l0 = &picked["lines"][0];
    assert_eq!(
        (
            &l0["state"],
            &l0["pickup_date"],
            &l0["end_date"],
            &l0["return_warehouse_id"]
        ),
        (
            &json!("pickup"),
            &json!("2026-11-28"),
            &json!("2026-11-28"),
            &w.w2["id"]
        )
    );
    let serial: Value = app
        .get(&format!("{t}/serials/{}", id(&w.serial)))
        .await
        .json()
        .await?;
    assert_eq!(
        (
            &serial["state"]["status"],
            &serial["state"]["warehouse"],
            &serial["state"]["last_patient"]
        ),
        (&json!("maintenance"), &w.w2["id"], &w.patient["id"])
    );
    let history: Value = app
        .get(&format!("{t}/serials/{}/history", id(&w.serial)))
        .await
        .json()
        .await?;
    let events: Vec<&str> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["event"]["type"].as_str())
        .collect();
    assert_eq!(events, ["received", "rent", "return"]);
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.cpap).await?),
        [0, 0, 0, 0, 0]
    );
    assert_eq!(
        counters(&level(&app, &w, &w.w2, &w.cpap).await?),
        [0, 0, 0, 0, 1]
    );
    assert_problem(
        app.post_json(&format!("{line_path}/pickup"), &json!({}))
            .await,
        409,
        "order_state_conflict",
    )
    .await;

    // Each level still equals the replay of its ledger.
    for (wh, item) in [(&w.w1, &w.cpap), (&w.w2, &w.cpap), (&w.w1, &w.mask)] {
        let ledger: Value = app
            .get(&format!(
                "{t}/stock/movements?warehouse_id={}&item_id={}",
                id(wh),
                id(item)
            ))
            .await
            .json()
            .await?;
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
        let l = level(&app, &w, wh, item).await?;
        assert_eq!(
            [
                replayed.on_hand,
                replayed.committed,
                replayed.rented,
                replayed.sold,
                replayed.unavailable
            ],
            counters(&l)
        );
    }

    // The outbox and the audit trail saw each step, in order.
    let tenant: Value = app
        .get(&format!("/v1/platform/tenants/{}", "oxy-care"))
        .await
        .json()
        .await?;
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events = aries_tenants::outbox::list(&mut tx, TestApp::tenant_id(&tenant)).await?;
    let order_events: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type.starts_with("order."))
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        order_events,
        [
            "order.created",
            "order.line_updated",
            "order.updated",
            "order.approved",
            "order.delivered",
            "order.line_picked_up"
        ]
    );
    let audit: Value = app
        .get(&format!("{t}/audit?target_type=order"))
        .await
        .json()
        .await?;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "order.created",
            "order.line_updated",
            "order.updated",
            "order.approved",
            "order.delivered",
            "order.line_picked_up"
        ]
    );
    Ok(())
}

#[actix_web::test]
async fn cancellation_releases_stock_and_approval_needs_stock() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "care-plus").await?;
    let t = &w.t;
    sign_on_file(&app, &w).await?;
    let order = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": w.patient["id"], "warehouse_id": w.w1["id"], "lines": [{"item_id": w.mask["id"], "quantity": 4}]}),
    )
    .await;
    let path = format!("{t}/orders/{}", id(&order));
    // The order bills the patient's policy: removing it would lose the claim's payer.
    assert_problem(
        app.req(
            Method::DELETE,
            &format!("{t}/patients/{}/policies/{}", id(&w.patient), id(&w.policy)),
        )
        .send()
        .await?,
        409,
        "policy_in_use",
    )
    .await;
    let res = app.post_json(&format!("{path}/approve"), &json!({})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.mask).await?),
        [10, 4, 0, 0, 0]
    );
    // Another order wanting more than what is left is refused and commits nothing.
    let greedy = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": w.patient["id"], "warehouse_id": w.w1["id"], "lines": [{"item_id": w.mask["id"], "quantity": 7}]}),
    )
    .await;
    assert_problem(
        app.post_json(&format!("{t}/orders/{}/approve", id(&greedy)), &json!({}))
            .await,
        409,
        "insufficient_stock",
    )
    .await;
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.mask).await?),
        [10, 4, 0, 0, 0]
    );
    assert_problem(
        app.post_json(&format!("{path}/cancel"), &json!({"reason": " "}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let res = app
        .post_json(
            &format!("{path}/cancel"),
            &json!({"reason": "patient moved away"}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let canceled: Value = res.json().await?;
    assert_eq!(
        (&canceled["state"], &canceled["lines"][0]["state"]),
        (&json!("canceled"), &json!("canceled"))
    );
    assert_eq!(canceled["cancel_reason"], "patient moved away");
    assert_eq!(
        counters(&level(&app, &w, &w.w1, &w.mask).await?),
        [10, 0, 0, 0, 0]
    );
    assert_problem(
        app.post_json(&format!("{path}/cancel"), &json!({"reason": "again"}))
            .await,
        409,
        "order_state_conflict",
    )
    .await;
    // Listing and filters.
    let approved_orders: Value = app
        .get(&format!("{t}/orders?state=canceled"))
        .await
        .json()
        .await?;
    assert_eq!(approved_orders["data"].as_array().map(Vec::len), Some(1));
    let all: Value = app
        .get(&format!("{t}/orders?patient_id={}&limit=1", id(&w.patient)))
        .await
        .json()
        .await?;
    assert_eq!(all["data"][0]["id"], order["id"]);
    let cursor = all["next_cursor"].as_str().unwrap_or("");
    let next: Value = app
        .get(&format!(
            "{t}/orders?patient_id={}&limit=1&cursor={cursor}",
            id(&w.patient)
        ))
        .await
        .json()
        .await?;
    assert_eq!(next["data"][0]["id"], greedy["id"]);
    assert!(next.get("next_cursor").is_none());
    assert_problem(
        app.get(&format!("{t}/orders?state=shipped")).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/orders?from=2026-13-01")).await,
        422,
        "invalid_query",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn order_input_is_validated_field_by_field() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "strict-dme").await?;
    let t = &w.t;
    let bad = assert_problem(
        app.post_json(
            &format!("{t}/orders"),
            &json!({"patient_id": w.patient["id"], "diagnosis_codes": ["G47.33", "XYZ", "G47.33"], "place_of_service": "home",
                    "policy_ids": [w.payer["id"]], "lines": [
                        {"item_id": w.cpap["id"], "modifiers": ["RR", "r!"], "dx_pointers": [0], "billable_price": "-1.00"}]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "diagnosis_codes[1]",
            "diagnosis_codes[2]",
            "place_of_service",
            "policy_ids[0]"
        ]
    );
    let order = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": w.patient["id"]}),
    )
    .await;
    let lines = format!("{t}/orders/{}/lines", id(&order));
    let bad = assert_problem(
        app.post_json(&lines, &json!({"item_id": w.cpap["id"], "modifiers": ["RR", "r!"], "dx_pointers": [0], "billable_price": "-1.00"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["modifiers", "dx_pointers[0]", "billable_price"]);
    // An item not on the list, an unknown list, an unknown patient, a malformed id.
    let stray = post_created(
        &app,
        &format!("{t}/items"),
        &json!({"code": "BED-1", "name": "Bed"}),
    )
    .await;
    let bad = assert_problem(
        app.post_json(&lines, &json!({"item_id": stray["id"]}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (&bad["errors"][0]["field"], &bad["errors"][0]["code"]),
        (&json!("item_id"), &json!("not_priced"))
    );
    let bad = assert_problem(
        app.post_json(
            &lines,
            &json!({"item_id": w.cpap["id"], "price_list_id": w.payer["id"]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (&bad["errors"][0]["field"], &bad["errors"][0]["code"]),
        (&json!("price_list_id"), &json!("not_found"))
    );
    let bad = assert_problem(
        app.post_json(
            &format!("{t}/orders"),
            &json!({"patient_id": w.payer["id"]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(bad["errors"][0]["field"], "patient_id");
    assert_problem(
        app.get(&format!("{t}/orders/not-a-uuid")).await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!("{t}/orders/{}", id(&w.payer))).await,
        404,
        "not_found",
    )
    .await;
    // A line added, changed and removed while the order is new; its own ETag guards it.
    let res = app
        .post_json(&lines, &json!({"item_id": w.mask["id"], "quantity": 3}))
        .await;
    assert_eq!(res.status(), 201);
    let line: Value = res.json().await?;
    assert_eq!(line["line_number"], 1);
    let line_path = format!("{lines}/{}", id(&line));
    assert_problem(
        app.req(Method::PATCH, &line_path)
            .header("if-match", "\"7\"")
            .json(&json!({"quantity": 5}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::PATCH, &line_path)
        .header("if-match", "\"1\"")
        .json(&json!({"quantity": 5}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await?;
    assert_eq!(
        (&changed["quantity"], &changed["version"]),
        (&json!(5), &json!(2))
    );
    assert_problem(
        app.req(Method::PATCH, &line_path)
            .json(&json!({"sale_rent_type": "lease"}))
            .send()
            .await?,
        422,
        "validation_failed",
    )
    .await;
    let res = app
        .req(Method::DELETE, &line_path)
        .header("if-match", "\"2\"")
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_problem(app.get(&line_path).await, 404, "not_found").await;
    // Another tenant's credential sees nothing.
    app.create_tenant("other-dme").await;
    let foreign = app
        .req(
            Method::GET,
            &format!("/v1/tenants/other-dme/orders/{}", id(&order)),
        )
        .send()
        .await?;
    assert_eq!(foreign.status(), 404);
    Ok(())
}

#[actix_web::test]
async fn a_fee_schedule_import_can_reprice_new_lines() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "reprice-dme").await?;
    let t = &w.t;
    sign_on_file(&app, &w).await?;
    let open = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": w.patient["id"], "warehouse_id": w.w1["id"],
               "lines": [{"item_id": w.cpap["id"]}, {"item_id": w.mask["id"]}]}),
    )
    .await;
    let approved = post_created(
        &app,
        &format!("{t}/orders"),
        &json!({"patient_id": w.patient["id"], "warehouse_id": w.w1["id"], "lines": [{"item_id": w.mask["id"]}]}),
    )
    .await;
    let res = app
        .post_json(&format!("{t}/orders/{}/approve", id(&approved)), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let csv = "HCPCS,Mod,Mod2,JURIS,CATG,Ceiling,Floor,TX (NR),TX (R),Description\n\
               E0601,RR,,D,CR,90.00,70.00,82.00,84.30,CPAP device\n\
               E0601,NU,,D,CR,900.00,700.00,820.00,843.00,CPAP device\n\
               A7034,NU,,D,SU,50.00,30.00,33.50,35.00,Nasal mask\n";
    let import = format!("{t}/price-lists/{}/fee-schedule-import", id(&w.list));
    let mut expected = vec![
        open["lines"][0]["id"].clone(),
        open["lines"][1]["id"].clone(),
    ];
    expected.sort_by_key(|v| v.as_str().unwrap_or("").to_owned());
    // A dry run names the lines it would re-price and changes nothing.
    let res = app
        .post_json(
            &import,
            &json!({"csv": csv, "state": "TX", "dry_run": true, "cascade_to_open_lines": true}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let dry: Value = res.json().await?;
    assert_eq!(dry["lines_repriced"], json!(expected));
    let unchanged: Value = app
        .get(&format!("{t}/orders/{}", id(&open)))
        .await
        .json()
        .await?;
    assert_eq!(unchanged["lines"][0]["allowable_price"], "80.10");
    // The import itself: new lines follow (rent for the rental, sale for the sale), the approved
    // order keeps the price it was approved with, and the order's version moves.
    let res = app
        .post_json(
            &import,
            &json!({"csv": csv, "state": "TX", "cascade_to_open_lines": true}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await?);
    let done: Value = res.json().await?;
    assert_eq!(done["lines_repriced"], json!(expected));
    let repriced: Value = app
        .get(&format!("{t}/orders/{}", id(&open)))
        .await
        .json()
        .await?;
    assert_eq!(
        (
            &repriced["lines"][0]["allowable_price"],
            &repriced["lines"][1]["allowable_price"]
        ),
        (&json!("82.00"), &json!("33.50"))
    );
    assert_eq!(
        repriced["lines"][0]["billable_price"], "120.00",
        "billable prices are not the schedule's"
    );
    assert_eq!(
        repriced["version"].as_i64(),
        open["version"].as_i64().map(|v| v + 1)
    );
    let kept: Value = app
        .get(&format!("{t}/orders/{}", id(&approved)))
        .await
        .json()
        .await?;
    assert_eq!(kept["lines"][0]["allowable_price"], "31.25");
    // Without the flag, order lines are left alone.
    let again = "HCPCS,Mod,Mod2,JURIS,CATG,Ceiling,Floor,TX (NR),TX (R),Description\n\
                 A7034,NU,,D,SU,50.00,30.00,34.00,35.00,Nasal mask\n";
    let res = app
        .post_json(&import, &json!({"csv": again, "state": "TX"}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await?["lines_repriced"], json!([]));
    let still: Value = app
        .get(&format!("{t}/orders/{}", id(&open)))
        .await
        .json()
        .await?;
    assert_eq!(still["lines"][1]["allowable_price"], "33.50");
    Ok(())
}
