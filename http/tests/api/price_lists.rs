//! Price lists over HTTP: rows put through the API, the fee-schedule fixture imported into one
//! list (exact allowables, the returned diff, other lists untouched, dry run, rural column, bad
//! files), percentage adjustments to the cent, idempotent creates and bulk operations, If-Match,
//! permissions, and a payer's default price list.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../../../fixtures/dmepos_fee_schedule_sample.csv");

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

async fn item(app: &TestApp, t: &str, code: &str) -> Result<String, Box<dyn std::error::Error>> {
    let body = json!({"code": code, "name": format!("Item {code}")});
    let created = post_created(app, &format!("{t}/items"), &body).await;
    Ok(s(&created["id"]).to_owned())
}

async fn new_list(
    app: &TestApp,
    t: &str,
    name: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let created = post_created(app, &format!("{t}/price-lists"), &json!({"name": name})).await;
    Ok(s(&created["id"]).to_owned())
}

async fn put_row(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.req(Method::PUT, path)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
}

/// (rent_billable, rent_allowable, sale_billable, sale_allowable) of a row, `None` when unpriced.
type Four = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn four(row: &Value) -> Four {
    let p = |k: &str| row[k].as_str().map(str::to_owned);
    (
        p("rent_billable"),
        p("rent_allowable"),
        p("sale_billable"),
        p("sale_allowable"),
    )
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

async fn rows(
    app: &TestApp,
    list_path: &str,
) -> Result<Vec<(String, Four)>, Box<dyn std::error::Error>> {
    let page: Value = app.get(&format!("{list_path}/items")).await.json().await?;
    Ok(page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (s(&r["hcpcs"]).to_owned(), four(r)))
        .collect())
}

fn row<'a>(rows: &'a [(String, Four)], code: &str) -> &'a Four {
    rows.iter()
        .find(|(c, _)| c == code)
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no row {code} in {rows:?}"))
}

struct Fixture {
    tenant: Value,
    t: String,
    list1: String,
    list2: String,
}

/// A tenant with five items and two lists pricing them the same way (rows put through the API).
async fn two_lists(app: &TestApp, slug: &str) -> Result<Fixture, Box<dyn std::error::Error>> {
    let tenant = app.create_tenant(slug).await;
    let t = format!("/v1/tenants/{slug}");
    let items = [
        ("CPAP", "E0601"),
        ("BED", "E0260"),
        ("O2", "E1390"),
        ("CHAIR", "K0001"),
        ("STRIPS", "A4253"),
    ];
    let mut ids = Vec::new();
    for (code, _) in items {
        ids.push(item(app, &t, code).await?);
    }
    let bodies = [
        json!({"hcpcs": "E0601", "modifiers": ["RR"], "rent_billable": "100.00", "rent_allowable": "70.00",
               "sale_billable": "1000.00", "sale_allowable": "700.00", "default_order_type": "rental",
               "rental_type": "capped_rental"}),
        json!({"hcpcs": "E0260", "rent_billable": "145.55", "rent_allowable": "120.00", "default_order_type": "rental"}),
        json!({"hcpcs": "E1390", "rent_billable": "199.99", "rental_type": "medicare_oxygen_rental"}),
        json!({"hcpcs": "K0001", "sale_billable": "650.05"}),
        json!({"hcpcs": "A4253", "sale_billable": "35.00", "sale_allowable": "30.00",
               "rental_type": "reoccurring_sale", "billing_frequency": "one_time"}),
    ];
    let mut lists = Vec::new();
    for name in ["Medicare TX", "Commercial"] {
        let list = new_list(app, &t, name).await?;
        for (id, body) in ids.iter().zip(&bodies) {
            let res = put_row(app, &format!("{t}/price-lists/{list}/items/{id}"), body).await;
            assert_eq!(res.status(), 201, "{name} {body}");
        }
        lists.push(list);
    }
    Ok(Fixture {
        tenant,
        t,
        list1: lists[0].clone(),
        list2: lists[1].clone(),
    })
}

#[actix_web::test]
async fn lists_and_rows_over_http() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("pricer").await;
    let t = "/v1/tenants/pricer";
    // Idempotent create, unique names.
    let create = |key: &'static str| {
        app.req(Method::POST, &format!("{t}/price-lists"))
            .header("idempotency-key", key)
            .json(&json!({"name": "Retail", "description": "cash customers"}))
            .send()
    };
    let first = create("list-1").await?;
    assert_eq!(
        (first.status().as_u16(), first.headers()["etag"].to_str()?),
        (201, "\"1\"")
    );
    let location = first.headers()["location"].to_str()?.to_owned();
    let retail: Value = first.json().await?;
    let again = create("list-1").await?;
    assert_eq!(again.headers()["idempotent-replayed"].to_str()?, "true");
    assert_eq!(again.json::<Value>().await?["id"], retail["id"]);
    assert_eq!(location, format!("{t}/price-lists/{}", s(&retail["id"])));
    assert_problem(
        app.post_json(&format!("{t}/price-lists"), &json!({"name": "Retail"}))
            .await,
        409,
        "price_list_name_taken",
    )
    .await;
    let list = s(&retail["id"]).to_owned();
    let lp = format!("{t}/price-lists/{list}");
    // Patch with If-Match.
    assert_problem(
        app.req(Method::PATCH, &lp)
            .header("if-match", "\"5\"")
            .json(&json!({"active": false}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let patched: Value = app
        .req(Method::PATCH, &lp)
        .header("if-match", "\"1\"")
        .json(&json!({"description": null, "name": "Retail 2027"}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (
            &patched["name"],
            patched.get("description"),
            &patched["version"]
        ),
        (&json!("Retail 2027"), None, &json!(2))
    );

    // Rows: validation names every field.
    let cpap = item(&app, t, "CPAP").await?;
    let rp = format!("{lp}/items/{cpap}");
    let bad = put_row(
        &app,
        &rp,
        &json!({"hcpcs": "X0601", "modifiers": ["RR", "R", "rr"], "rent_billable": "-1.00",
                "sale_billable": "10.005", "sale_allowable": 12.5, "rental_type": "capped"}),
    )
    .await;
    let body = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "sale_allowable", "{body}");
    let bad = put_row(
        &app,
        &rp,
        &json!({"hcpcs": "X0601", "modifiers": ["RR", "R", "rr"], "rent_billable": "-1.00",
                "sale_billable": "10.005", "rental_type": "capped", "bill_item_on": "never"}),
    )
    .await;
    let errors = field_errors(&assert_problem(bad, 422, "validation_failed").await);
    let want = field_pairs(&[
        ("hcpcs", "invalid_format"),
        ("modifiers[1]", "invalid_format"),
        ("modifiers[2]", "duplicate"),
        ("rent_billable", "negative"),
        ("sale_billable", "too_many_decimals"),
        ("rental_type", "invalid_value"),
        ("bill_item_on", "invalid_value"),
    ]);
    assert_eq!(errors, want);
    // Unknown item or list: 404; malformed id: 422.
    assert_problem(
        put_row(
            &app,
            &format!("{lp}/items/{list}"),
            &json!({"hcpcs": "E0601"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        put_row(
            &app,
            &format!("{t}/price-lists/{cpap}/items/{cpap}"),
            &json!({"hcpcs": "E0601"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        put_row(
            &app,
            &format!("{lp}/items/nope"),
            &json!({"hcpcs": "E0601"}),
        )
        .await,
        422,
        "invalid_id",
    )
    .await;
    // If-Match on a row that does not exist yet: 412.
    assert_problem(
        app.req(Method::PUT, &rp)
            .header("if-match", "\"1\"")
            .json(&json!({"hcpcs": "E0601"}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    // Create (201), same again (200, unchanged), replace with If-Match (200, version 2).
    let body = json!({"hcpcs": "e0601", "modifiers": ["rr"], "rent_billable": "125.4", "sale_allowable": "801"});
    let res = put_row(&app, &rp, &body).await;
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers()["etag"].to_str()?.to_owned(),
            res.headers()["location"].to_str()?.to_owned()
        ),
        (201, "\"1\"".to_owned(), rp.clone())
    );
    let created: Value = res.json().await?;
    assert_eq!(
        (
            &created["hcpcs"],
            &created["modifiers"],
            four(&created),
            &created["default_order_type"],
            &created["rental_type"],
            &created["billing_frequency"],
            &created["bill_item_on"],
            &created["taxable"],
        ),
        (
            &json!("E0601"),
            &json!(["RR"]),
            (some("125.40"), None, None, some("801.00")),
            &json!("sale"),
            &json!("monthly_rental"),
            &json!("monthly"),
            &json!("day_of_delivery"),
            &json!(false),
        )
    );
    let res = put_row(&app, &rp, &body).await;
    assert_eq!(
        (res.status().as_u16(), res.headers()["etag"].to_str()?),
        (200, "\"1\"")
    );
    assert_problem(
        app.req(Method::PUT, &rp)
            .header("if-match", "\"3\"")
            .json(&json!({"hcpcs": "E0601", "taxable": true}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::PUT, &rp)
        .header("if-match", "\"1\"")
        .json(&json!({"hcpcs": "E0601", "taxable": true, "rent_allowable": "80.10"}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await?;
    assert_eq!(
        (
            four(&replaced),
            &replaced["taxable"],
            &replaced["version"],
            &replaced["modifiers"]
        ),
        (
            (None, some("80.10"), None, None),
            &json!(true),
            &json!(2),
            &json!([])
        )
    );
    let shown = app.get(&rp).await;
    assert_eq!(shown.headers()["etag"].to_str()?, "\"2\"");
    // List with a code filter; delete with If-Match.
    let page: Value = app
        .get(&format!("{lp}/items?hcpcs=e0601"))
        .await
        .json()
        .await?;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let page: Value = app
        .get(&format!("{lp}/items?hcpcs=E0260"))
        .await
        .json()
        .await?;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(0));
    assert_problem(
        app.get(&format!("{lp}/items?hcpcs=bad")).await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.req(Method::DELETE, &rp)
            .header("if-match", "\"1\"")
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::DELETE, &rp)
        .header("if-match", "\"2\"")
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_problem(app.get(&rp).await, 404, "not_found").await;
    // The item rows' writes are audited: put (created), put (replaced), deleted.
    let audit: Value = app
        .get(&format!(
            "{t}/audit?target_type=price_list&target_id={list}"
        ))
        .await
        .json()
        .await?;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| s(&e["action"]))
        .collect();
    let mut sorted = actions.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "price_list.created",
            "price_list.item_deleted",
            "price_list.item_put",
            "price_list.item_put",
            "price_list.updated"
        ]
    );
    Ok(())
}

#[actix_web::test]
async fn fee_schedule_import_into_one_list() -> TestResult {
    let app = TestApp::spawn().await;
    let f = two_lists(&app, "importer").await?;
    let (l1, l2) = (
        format!("{}/price-lists/{}", f.t, f.list1),
        format!("{}/price-lists/{}", f.t, f.list2),
    );
    let before = rows(&app, &l1).await?;
    let import = |list: String, body: Value| {
        let app = &app;
        async move {
            app.post_json(&format!("{list}/fee-schedule-import"), &body)
                .await
        }
    };

    // Dry run: the diff, nothing written.
    let res = import(
        l1.clone(),
        json!({"csv": FIXTURE, "state": "tx", "dry_run": true}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let dry: Value = res.json().await?;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(rows(&app, &l1).await?, before, "a dry run writes nothing");

    let res = import(
        l1.clone(),
        json!({"csv": FIXTURE, "state": "TX", "rural": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await?;
    let expected_diff = json!({
        "price_list_id": f.list1, "state": "TX", "rural": false, "dry_run": false,
        "rows_read": 14, "rows_ignored": 3, "codes_in_file": 7, "rows_changed": 4,
        "codes_not_in_file": 1, "missing_codes": ["A4253"],
    });
    for (k, v) in expected_diff.as_object().into_iter().flatten() {
        assert_eq!(&out[k], v, "{k} in {out}");
    }
    // The diff, per row (items were created in the order of the codes, so item-id order is it).
    let changes: Vec<Value> = out["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!([
                c["hcpcs"],
                c.get("rent_allowable_before"),
                c.get("rent_allowable_after"),
                c.get("sale_allowable_before"),
                c.get("sale_allowable_after")
            ])
        })
        .collect();
    assert_eq!(
        changes,
        [
            json!(["E0601", "70.00", "80.10", "700.00", "801.00"]),
            json!(["E0260", "120.00", "125.40", null, "1254.00"]),
            json!(["E1390", null, "150.20", null, null]),
            json!(["K0001", null, "52.55", null, "525.50"]),
        ]
    );
    // The dry run showed the same diff.
    assert_eq!(dry["changes"], out["changes"]);
    assert_eq!(dry["file_sha256"], out["file_sha256"]);

    // The list's allowables are exactly the fixture's; billables and the file's absent codes untouched.
    let after = rows(&app, &l1).await?;
    assert_eq!(
        row(&after, "E0601"),
        &(
            some("100.00"),
            some("80.10"),
            some("1000.00"),
            some("801.00")
        )
    );
    assert_eq!(
        row(&after, "E0260"),
        &(some("145.55"), some("125.40"), None, some("1254.00")),
        "no purchase row: sale = 10 × rent"
    );
    assert_eq!(
        row(&after, "E1390"),
        &(some("199.99"), some("150.20"), None, None),
        "oxygen's blank-modifier row is the rent (our rule, not the legacy quirk)"
    );
    assert_eq!(
        row(&after, "K0001"),
        &(None, some("52.55"), some("650.05"), some("525.50")),
        "the UE row (394.10) is ignored"
    );
    assert_eq!(row(&after, "A4253"), row(&before, "A4253"));
    // The other list with the same codes is untouched.
    let other_before: Vec<(String, Four)> = before.clone();
    assert_eq!(rows(&app, &l2).await?, other_before);
    // Re-importing changes nothing more.
    let again: Value = import(l1.clone(), json!({"csv": FIXTURE, "state": "TX"}))
        .await
        .json()
        .await?;
    assert_eq!(
        (&again["rows_changed"], &again["changes"]),
        (&json!(0), &json!([]))
    );

    // The rural column, sent as text/csv with the options in the query.
    let res = app
        .req(
            Method::POST,
            &format!("{l2}/fee-schedule-import?state=TX&rural=true"),
        )
        .header("content-type", "text/csv")
        .body(FIXTURE)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let rural: Value = res.json().await?;
    assert_eq!(
        (&rural["rural"], &rural["rows_changed"]),
        (&json!(true), &json!(4))
    );
    let l2_rows = rows(&app, &l2).await?;
    assert_eq!(
        row(&l2_rows, "E0601"),
        &(
            some("100.00"),
            some("84.30"),
            some("1000.00"),
            some("843.00")
        )
    );
    assert_eq!(
        row(&l2_rows, "E0260"),
        &(some("145.55"), some("131.00"), None, some("1310.00"))
    );
    assert_eq!(row(&l2_rows, "E1390").1, some("158.00"));
    // ...and list 1 did not move.
    assert_eq!(rows(&app, &l1).await?, after);

    // Bad files and states: 422 fee_schedule_invalid with the reader's message.
    let body = assert_problem(
        import(l1.clone(), json!({"csv": FIXTURE, "state": "ZZ"})).await,
        422,
        "fee_schedule_invalid",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "state");
    assert!(
        s(&body["detail"]).contains("ZZ") && s(&body["detail"]).contains("TX (NR)"),
        "{body}"
    );
    let body = assert_problem(
        import(
            l1.clone(),
            json!({"csv": "hello,world\n1,2\n", "state": "TX"}),
        )
        .await,
        422,
        "fee_schedule_invalid",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "csv");
    let body = assert_problem(
        import(
            l1.clone(),
            json!({"csv": "HCPCS,Mod,Mod2,CATG,TX (NR)\nE0601,RR,,CR,80.10\nE0601,NU,,CR,lots\n", "state": "TX"}),
        )
        .await,
        422,
        "fee_schedule_invalid",
    )
    .await;
    assert!(s(&body["detail"]).starts_with("line 3:"), "{body}");
    assert_problem(
        import(l1.clone(), json!({"csv": FIXTURE, "state": "Texas"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.req(Method::POST, &format!("{l1}/fee-schedule-import"))
            .header("content-type", "text/plain")
            .body(FIXTURE)
            .send()
            .await?,
        415,
        "unsupported_media_type",
    )
    .await;
    assert_problem(
        app.req(Method::POST, &format!("{l1}/fee-schedule-import"))
            .header("content-type", "text/csv")
            .body(FIXTURE)
            .send()
            .await?,
        422,
        "invalid_query",
    )
    .await;
    assert_eq!(
        rows(&app, &l1).await?,
        after,
        "refused imports write nothing"
    );
    // One audit row per import that wrote (two), none for the dry run or the refusals.
    let audit: Value = app
        .get(&format!(
            "{}/audit?action=price_list.fee_schedule_imported",
            f.t
        ))
        .await
        .json()
        .await?;
    let audited: Vec<(&str, bool, i64)> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                s(&e["target_id"]),
                e["details"]["rural"].as_bool().unwrap_or_default(),
                e["details"]["rows_changed"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    let mut audited = audited;
    audited.sort_unstable();
    let mut want = vec![
        (f.list1.as_str(), false, 4),
        (f.list1.as_str(), false, 0),
        (f.list2.as_str(), true, 4),
    ];
    want.sort_unstable();
    assert_eq!(audited, want);
    // And one outbox event each, carrying the diff.
    let id = TestApp::tenant_id(&f.tenant);
    let pool = app.shard_pool(TestApp::shard_index(&f.tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, id).await?;
    let events = aries_tenants::outbox::list(&mut tx, id).await?;
    let imports: Vec<(String, Value)> = events
        .iter()
        .filter(|e| e.event_type == "price_list.fee_schedule_imported")
        .map(|e| {
            (
                e.aggregate_id.to_string(),
                e.payload["rows_changed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        imports,
        [
            (f.list1.clone(), json!(4)),
            (f.list1.clone(), json!(0)),
            (f.list2.clone(), json!(4))
        ]
    );
    assert_eq!(
        events
            .iter()
            .find(|e| e.event_type == "price_list.fee_schedule_imported")
            .map(|e| e.payload["changes"].clone()),
        Some(out["changes"].clone())
    );
    Ok(())
}

#[actix_web::test]
async fn adjusting_a_list_by_a_percentage() -> TestResult {
    let app = TestApp::spawn().await;
    let f = two_lists(&app, "adjuster").await?;
    let l1 = format!("{}/price-lists/{}", f.t, f.list1);
    let l2 = format!("{}/price-lists/{}", f.t, f.list2);
    let before = rows(&app, &l1).await?;
    let adjust = |body: Value, key: &'static str| {
        app.req(Method::POST, &format!("{l1}/adjust"))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    // +10% on both billables (the default), sent twice with one key: applied once.
    let res = adjust(json!({"percent": "10"}), "raise").await?;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await?;
    let res = adjust(json!({"percent": "10"}), "raise").await?;
    assert_eq!(res.headers()["idempotent-replayed"].to_str()?, "true");
    assert_eq!(res.json::<Value>().await?, out);
    assert_eq!(
        (&out["percent"], &out["prices"], &out["rows_changed"]),
        (
            &json!("10"),
            &json!(["rent_billable", "sale_billable"]),
            &json!(5)
        )
    );
    assert_eq!(
        (
            &out["changes"][1]["hcpcs"],
            &out["changes"][1]["before"],
            &out["changes"][1]["after"]
        ),
        (
            &json!("E0260"),
            &json!({"rent_billable": "145.55", "rent_allowable": "120.00"}),
            &json!({"rent_billable": "160.11", "rent_allowable": "120.00"})
        )
    );
    let after = rows(&app, &l1).await?;
    let expect = [
        (
            "E0601",
            (
                some("110.00"),
                some("70.00"),
                some("1100.00"),
                some("700.00"),
            ),
        ),
        ("E0260", (some("160.11"), some("120.00"), None, None)), // 160.105 half-up
        ("E1390", (some("219.99"), None, None, None)),           // 219.989
        ("K0001", (None, None, some("715.06"), None)),           // 715.055 half-up
        ("A4253", (None, None, some("38.50"), some("30.00"))),
    ];
    for (code, want) in &expect {
        assert_eq!(row(&after, code), want, "{code} after +10%");
    }
    // −3.333% on the same billables.
    let out: Value = adjust(
        json!({"percent": "-3.333", "prices": ["sale_billable", "rent_billable"]}),
        "cut",
    )
    .await?
    .json()
    .await?;
    assert_eq!(out["rows_changed"], 5);
    let after = rows(&app, &l1).await?;
    for (code, want) in [
        (
            "E0601",
            (
                some("106.33"),
                some("70.00"),
                some("1063.34"),
                some("700.00"),
            ),
        ),
        ("E0260", (some("154.77"), some("120.00"), None, None)),
        ("E1390", (some("212.66"), None, None, None)),
        ("K0001", (None, None, some("691.23"), None)),
        ("A4253", (None, None, some("37.22"), some("30.00"))),
    ] {
        assert_eq!(row(&after, code), &want, "{code} after -3.333%");
    }
    // Allowables of one code only.
    let out: Value = adjust(
        json!({"percent": "5", "prices": ["rent_allowable", "sale_allowable"], "hcpcs": "e0601"}),
        "allowables",
    )
    .await?
    .json()
    .await?;
    assert_eq!(out["rows_changed"], 1);
    let after2 = rows(&app, &l1).await?;
    assert_eq!(
        row(&after2, "E0601"),
        &(
            some("106.33"),
            some("73.50"),
            some("1063.34"),
            some("735.00")
        )
    );
    assert_eq!(row(&after2, "E0260"), row(&after, "E0260"));
    // The other list never moved.
    assert_eq!(rows(&app, &l2).await?, before);
    // Refusals name the field; nothing changes.
    let body = assert_problem(
        adjust(json!({"percent": "-100", "prices": ["bills"]}), "bad-1").await?,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "prices[0]", "{body}");
    let body = assert_problem(
        adjust(
            json!({"percent": "-100", "prices": [], "hcpcs": "Z1"}),
            "bad-2",
        )
        .await?,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| s(&e["field"]))
        .collect();
    assert_eq!(fields, ["percent", "prices", "hcpcs"]);
    assert_problem(
        adjust(json!({"percent": 5}), "bad-3").await?,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(rows(&app, &l1).await?, after2);
    assert_problem(
        app.post_json(
            &format!("{}/price-lists/{}/adjust", f.t, uuid::Uuid::now_v7()),
            &json!({"percent": "1"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Repricing a whole list is price_lists:process: billing has it, intake does not.
    for (role, status) in [("billing", 200), ("intake", 403)] {
        let key: Value = app
            .post_json(
                &format!("{}/api-keys", f.t),
                &json!({"name": role, "roles": [role]}),
            )
            .await
            .json()
            .await?;
        let res = app
            .client
            .post(app.url(&format!("{l2}/adjust")))
            .bearer_auth(s(&key["secret"]))
            .json(&json!({"percent": "1", "hcpcs": "A4253"}))
            .send()
            .await?;
        assert_eq!(res.status(), status, "{role}");
    }
    Ok(())
}

#[actix_web::test]
async fn a_payers_default_price_list() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("payer-prices").await;
    let t = "/v1/tenants/payer-prices";
    let medicare = new_list(&app, t, "Medicare TX").await?;
    let other = new_list(&app, t, "Commercial").await?;
    let res = app
        .post_json(
            &format!("{t}/payers"),
            &json!({"name": "Medicare D", "payer_type": "medicare", "default_price_list_id": medicare}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let payer: Value = res.json().await?;
    assert_eq!(payer["default_price_list_id"], json!(medicare));
    let path = format!("{t}/payers/{}", s(&payer["id"]));
    let shown: Value = app.get(&path).await.json().await?;
    assert_eq!(shown["default_price_list_id"], json!(medicare));
    // Unknown or malformed ids are refused on the field, on create and on patch.
    let unknown = uuid::Uuid::now_v7().to_string();
    let body = assert_problem(
        app.post_json(
            &format!("{t}/payers"),
            &json!({"name": "Blue", "payer_type": "commercial", "default_price_list_id": unknown}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        (&body["errors"][0]["field"], &body["errors"][0]["code"]),
        (&json!("default_price_list_id"), &json!("not_found"))
    );
    let body = assert_problem(
        app.post_json(
            &format!("{t}/payers"),
            &json!({"name": "Blue", "payer_type": "commercial", "default_price_list_id": "nope"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "default_price_list_id");
    let body = assert_problem(
        app.req(Method::PATCH, &path)
            .json(&json!({"default_price_list_id": unknown}))
            .send()
            .await?,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "default_price_list_id");
    // Change it, then clear it with null.
    let changed: Value = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"default_price_list_id": other}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (&changed["default_price_list_id"], &changed["version"]),
        (&json!(other), &json!(2))
    );
    let cleared: Value = app
        .req(Method::PATCH, &path)
        .json(&json!({"default_price_list_id": null}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (cleared.get("default_price_list_id"), &cleared["version"]),
        (None, &json!(3))
    );
    // A tenant's list is not another tenant's: the id is unknown there.
    app.create_tenant("payer-other").await;
    let body = assert_problem(
        app.post_json(
            "/v1/tenants/payer-other/payers",
            &json!({"name": "X", "payer_type": "other", "default_price_list_id": medicare}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "default_price_list_id");
    Ok(())
}
