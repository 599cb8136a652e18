//! Reports over HTTP on one seeded tenant: each report's exact rows, parameter validation,
//! pagination, CSV (parsed and compared with the JSON rows), the permission; and the operator's
//! platform report across two shards, then with one shard's server killed (partial, within the
//! deadline, naming the shard) and with a shard that never answers (timed out at the deadline).

use crate::helpers::*;
use aries_shards::tenant_tx::begin_tenant_tx;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or("").to_owned()
}

async fn created(app: &TestApp, path: &str, body: Value) -> R<Value> {
    let res = app.post_json(path, &body).await;
    let status = res.status();
    let v: Value = res.json().await?;
    assert_eq!(status, 201, "POST {path}: {v}");
    Ok(v)
}

async fn ok(res: reqwest::Response, what: &str) -> R<Value> {
    let status = res.status();
    let text = res.text().await?;
    assert_eq!(status, 200, "{what}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// The seeded tenant's ids.
struct Seed {
    t: String,
    w1: Value,
    w2: Value,
    cpap: Value,
    mask: Value,
    bed: Value,
    cp1: Value,
    cp2: Value,
    cp3: Value,
    bd1: Value,
    rosa: Value,
    ben: Value,
    /// Rosa: CPAP (CP-1) + bed (BD-1), delivered 2026-11-21; the bed picked up 2026-11-25.
    o1: Value,
    /// Rosa: two masks, approved, awaiting delivery.
    o2: Value,
    /// Ben: a CPAP, new; Ben has no signature on file and the order no warehouse.
    o3: Value,
    /// Rosa: CPAP (CP-2), delivered 2026-11-10, then (as twelve billing runs would leave it)
    /// 12 months billed.
    o5: Value,
}

/// A PUT that creates (201) or replaces (200).
async fn put(app: &TestApp, path: &str, body: Value) -> R<Value> {
    let res = app.req(Method::PUT, path).json(&body).send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    assert!(
        status == 200 || status == 201,
        "PUT {path}: {status} {text}"
    );
    Ok(serde_json::from_str(&text)?)
}

async fn seed(app: &TestApp, slug: &str) -> R<Seed> {
    let tenant = app.create_tenant(slug).await;
    let t = format!("/v1/tenants/{slug}");
    let prescriber = created(
        app,
        &format!("{t}/prescribers"),
        json!({"first_name": "Ann", "last_name": "Lee", "npi": "1234567893", "pecos_enrolled": true}),
    )
    .await?;
    let list = created(
        app,
        &format!("{t}/price-lists"),
        json!({"name": "Medicare TX"}),
    )
    .await?;
    let payer = created(
        app,
        &format!("{t}/payers"),
        json!({"name": "Medicare DME MAC D", "payer_type": "medicare", "default_price_list_id": list["id"]}),
    )
    .await?;
    let w1 = created(
        app,
        &format!("{t}/warehouses"),
        json!({"code": "main", "name": "Main"}),
    )
    .await?;
    let w2 = created(
        app,
        &format!("{t}/warehouses"),
        json!({"code": "north", "name": "North"}),
    )
    .await?;
    let cpap = created(
        app,
        &format!("{t}/items"),
        json!({"code": "CPAP-1", "name": "CPAP machine", "serialized": true}),
    )
    .await?;
    let mask = created(
        app,
        &format!("{t}/items"),
        json!({"code": "MASK-1", "name": "Nasal mask"}),
    )
    .await?;
    let bed = created(
        app,
        &format!("{t}/items"),
        json!({"code": "BED-1", "name": "Hospital bed", "serialized": true}),
    )
    .await?;
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
                   "default_order_type": "sale"}),
        ),
        (
            &bed,
            json!({"hcpcs": "E0250", "modifiers": ["RR"], "rent_billable": "200.00", "rent_allowable": "150.00",
                   "default_order_type": "rental", "rental_type": "monthly_rental", "billing_frequency": "monthly"}),
        ),
    ] {
        put(
            app,
            &format!("{t}/price-lists/{}/items/{}", id(&list), id(item)),
            row,
        )
        .await?;
    }
    let serial = |item: &Value, number: &str, w: &Value| json!({"item_id": item["id"], "serial_number": number, "warehouse_id": w["id"]});
    let cp1 = created(app, &format!("{t}/serials"), serial(&cpap, "CP-1", &w1)).await?;
    let cp2 = created(app, &format!("{t}/serials"), serial(&cpap, "CP-2", &w1)).await?;
    let bd1 = created(app, &format!("{t}/serials"), serial(&bed, "BD-1", &w1)).await?;
    let cp3 = created(app, &format!("{t}/serials"), serial(&cpap, "CP-3", &w2)).await?;
    for (w, item, n) in [
        (&w1, &cpap, 2),
        (&w1, &bed, 1),
        (&w1, &mask, 10),
        (&w2, &cpap, 1),
    ] {
        created(
            app,
            &format!("{t}/stock/movements"),
            json!({"kind": "receipt", "warehouse_id": w["id"], "item_id": item["id"], "quantity": n}),
        )
        .await?;
    }
    let address =
        json!({"line1": "12 Elm St", "city": "Austin", "state": "TX", "postal_code": "78701"});
    let rosa = created(
        app,
        &format!("{t}/patients"),
        json!({"first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1948-05-17", "address": address,
               "signature_on_file": true, "primary_prescriber_id": prescriber["id"], "diagnosis_codes": ["G47.33"]}),
    )
    .await?;
    let ben = created(
        app,
        &format!("{t}/patients"),
        json!({"first_name": "Ben", "last_name": "Ortiz", "date_of_birth": "1950-02-03", "address": address,
               "primary_prescriber_id": prescriber["id"], "diagnosis_codes": ["G47.33"]}),
    )
    .await?;
    for p in [&rosa, &ben] {
        created(
            app,
            &format!("{t}/patients/{}/policies", id(p)),
            json!({"payer_id": payer["id"], "policy_number": "1EG4TE5MK72"}),
        )
        .await?;
    }
    let order = |patient: &Value, date: &str, lines: Value, warehouse: Option<&Value>| {
        let mut o = json!({"patient_id": patient["id"], "order_date": date, "lines": lines});
        if let Some(w) = warehouse {
            o["warehouse_id"] = w["id"].clone();
        }
        o
    };
    let o1 = created(
        app,
        &format!("{t}/orders"),
        order(
            &rosa,
            "2026-11-20",
            json!([{"item_id": cpap["id"]}, {"item_id": bed["id"]}]),
            Some(&w1),
        ),
    )
    .await?;
    let o2 = created(
        app,
        &format!("{t}/orders"),
        order(
            &rosa,
            "2026-11-22",
            json!([{"item_id": mask["id"], "quantity": 2}]),
            Some(&w1),
        ),
    )
    .await?;
    let o3 = created(
        app,
        &format!("{t}/orders"),
        order(&ben, "2026-11-23", json!([{"item_id": cpap["id"]}]), None),
    )
    .await?;
    let o5 = created(
        app,
        &format!("{t}/orders"),
        order(
            &rosa,
            "2026-11-09",
            json!([{"item_id": cpap["id"]}]),
            Some(&w1),
        ),
    )
    .await?;
    for o in [&o1, &o2, &o5] {
        ok(
            app.post_json(&format!("{t}/orders/{}/approve", id(o)), &json!({}))
                .await,
            "approve",
        )
        .await?;
    }
    let line = |o: &Value, i: usize| o["lines"][i]["id"].clone();
    ok(
        app.post_json(
            &format!("{t}/orders/{}/deliver", id(&o1)),
            &json!({"delivery_date": "2026-11-21", "lines": [
                {"line_id": line(&o1, 0), "serial_id": cp1["id"]}, {"line_id": line(&o1, 1), "serial_id": bd1["id"]}]}),
        )
        .await,
        "deliver o1",
    )
    .await?;
    ok(
        app.post_json(
            &format!("{t}/orders/{}/deliver", id(&o5)),
            &json!({"delivery_date": "2026-11-10", "lines": [{"line_id": line(&o5, 0), "serial_id": cp2["id"]}]}),
        )
        .await,
        "deliver o5",
    )
    .await?;
    ok(
        app.post_json(
            &format!(
                "{t}/orders/{}/lines/{}/pickup",
                id(&o1),
                line(&o1, 1).as_str().unwrap_or("")
            ),
            &json!({"pickup_date": "2026-11-25", "warehouse_id": w2["id"]}),
        )
        .await,
        "pickup",
    )
    .await?;
    // Twelve months billed on o5's line, as billing runs would leave its cursor.
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    sqlx::query(
        "update order_line set billing_month = 12, dos_from = '2027-11-10', dos_to = '2027-12-09', \
         next_bill_date = '2027-11-10' where order_line_id = $1::uuid",
    )
    .bind(line(&o5, 0).as_str().unwrap_or(""))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Read back the orders as they are now.
    let mut now = Vec::new();
    for o in [&o1, &o2, &o3, &o5] {
        now.push(
            app.get(&format!("{t}/orders/{}", id(o)))
                .await
                .json::<Value>()
                .await?,
        );
    }
    let [o1, o2, o3, o5]: [Value; 4] = now.try_into().map_err(|_| "four orders")?;
    Ok(Seed {
        t,
        w1,
        w2,
        cpap,
        mask,
        bed,
        cp1,
        cp2,
        cp3,
        bd1,
        rosa,
        ben,
        o1,
        o2,
        o3,
        o5,
    })
}

async fn report(app: &TestApp, s: &Seed, query: &str) -> R<Value> {
    ok(app.get(&format!("{}/reports/{query}", s.t)).await, query).await
}

/// `field` of every row.
fn col(page: &Value, field: &str) -> Vec<Value> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r[field].clone())
        .collect()
}

fn strs(v: &[&str]) -> Vec<Value> {
    v.iter().map(|s| json!(s)).collect()
}

/// A minimal RFC 4180 reader: records of fields, quotes doubled inside quoted fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the CSV ends with CRLF"
    );
    records
}

/// A JSON row as the CSV writes it.
fn as_cells(row: &Value, columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &row[c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

#[actix_web::test]
async fn each_report_on_a_seeded_tenant() -> TestResult {
    clear_of_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let s = seed(&app, "report-co").await?;
    let t = &s.t;
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let line = |o: &Value, i: usize| o["lines"][i]["id"].clone();

    // The catalogue.
    let cat = ok(app.get(&format!("{t}/reports")).await, "catalogue").await?;
    let names: Vec<Value> = col(&cat, "name");
    assert_eq!(
        names,
        strs(&[
            "missing-information",
            "rentals-due",
            "serial-locations",
            "maintenance-due",
            "reorder",
            "deliveries",
            "pickups",
            "capped-rental-month-13",
            "billing-worklist",
            "ar-aging"
        ])
    );
    assert_eq!(
        cat["data"][0]["parameters"],
        json!([{"name": "as_of", "type": "date", "required": false, "default": "today",
                "description": "the day the report is made for"}])
    );

    // missing-information: only Ben's new order lacks anything; one row per problem, paged.
    let page1 = report(&app, &s, "missing-information?limit=1").await?;
    assert_eq!(col(&page1, "code"), strs(&["missing_signature_on_file"]));
    assert_eq!(page1["data"][0]["order_id"], s.o3["id"]);
    assert_eq!(page1["data"][0]["order_number"], s.o3["order_number"]);
    assert_eq!(page1["data"][0]["patient_name"], "Ortiz, Ben");
    assert_eq!(page1["data"][0]["scope"], "patient");
    assert_eq!(page1["parameters"], json!({"as_of": today}));
    let cursor = page1["next_cursor"].as_str().unwrap_or_default();
    let page2 = report(
        &app,
        &s,
        &format!("missing-information?limit=1&cursor={cursor}"),
    )
    .await?;
    assert_eq!(col(&page2, "code"), strs(&["missing_warehouse"]));
    assert_eq!(page2["data"][0]["scope"], "order");
    assert!(page2.get("next_cursor").is_none(), "{page2}");
    // A cursor of another report is refused.
    assert_problem(
        app.get(&format!("{t}/reports/rentals-due?cursor={cursor}"))
            .await,
        422,
        "invalid_query",
    )
    .await;

    // rentals-due: o1's CPAP (due since delivery); the bed was picked up; o5's CPAP is due
    // 2027-11-10 only.
    let due = report(&app, &s, "rentals-due?as_of=2026-11-30").await?;
    assert_eq!(col(&due, "order_line_id"), vec![line(&s.o1, 0)]);
    let row = &due["data"][0];
    assert_eq!(
        (
            &row["next_bill_date"],
            &row["months_billed"],
            &row["next_billing_month"],
            &row["serial_number"],
            &row["sale_rent_type"],
            &row["patient_account_number"]
        ),
        (
            &json!("2026-11-21"),
            &json!(0),
            &json!(1),
            &json!("CP-1"),
            &json!("capped_rental"),
            &s.rosa["account_number"]
        )
    );
    let later = report(&app, &s, "rentals-due?as_of=2027-12-01&limit=1").await?;
    assert_eq!(col(&later, "order_line_id"), vec![line(&s.o1, 0)]);
    let cursor = later["next_cursor"].as_str().unwrap_or_default();
    let later2 = report(
        &app,
        &s,
        &format!("rentals-due?as_of=2027-12-01&limit=1&cursor={cursor}"),
    )
    .await?;
    assert_eq!(col(&later2, "order_line_id"), vec![line(&s.o5, 0)]);
    assert_eq!(later2["data"][0]["next_bill_date"], "2027-11-10");
    assert!(later2.get("next_cursor").is_none());

    // serial-locations: everything, then filtered.
    let all = report(&app, &s, "serial-locations").await?;
    assert_eq!(
        col(&all, "serial_number"),
        strs(&["CP-1", "CP-2", "BD-1", "CP-3"])
    );
    assert_eq!(
        col(&all, "status"),
        strs(&["rented", "rented", "maintenance", "on_hand"])
    );
    assert_eq!(
        col(&all, "warehouse_code"),
        vec![Value::Null, Value::Null, json!("NORTH"), json!("NORTH")]
    );
    assert_eq!(
        col(&all, "patient_name"),
        vec![
            json!("Diaz, Rosa"),
            json!("Diaz, Rosa"),
            Value::Null,
            Value::Null
        ]
    );
    let rented = report(&app, &s, "serial-locations?status=rented").await?;
    assert_eq!(
        col(&rented, "serial_id"),
        vec![s.cp1["id"].clone(), s.cp2["id"].clone()]
    );
    let north = report(
        &app,
        &s,
        &format!(
            "serial-locations?warehouse_id={}&item_id={}",
            id(&s.w2),
            id(&s.cpap)
        ),
    )
    .await?;
    assert_eq!(col(&north, "serial_id"), vec![s.cp3["id"].clone()]);

    // maintenance-due: set the dates with PATCH (If-Match checked, the version bumped).
    let cp3_path = format!("{t}/serials/{}", id(&s.cp3));
    let stale = app
        .req(Method::PATCH, &cp3_path)
        .header("if-match", "\"7\"")
        .json(&json!({"next_maintenance_date": "2026-11-15"}))
        .send()
        .await?;
    assert_problem(stale, 412, "version_mismatch").await;
    let bad = app
        .req(Method::PATCH, &cp3_path)
        .json(&json!({"next_maintenance_date": "soon", "status": "lost"}))
        .send()
        .await?;
    let bad = assert_problem(bad, 422, "validation_failed").await;
    assert!(
        bad["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{bad}"
    );
    let res = app
        .req(Method::PATCH, &cp3_path)
        .header("if-match", format!("\"{}\"", s.cp3["version"]))
        .json(&json!({"next_maintenance_date": "2026-11-15"}))
        .send()
        .await?;
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let patched = ok(res, "patch serial").await?;
    assert_eq!(patched["next_maintenance_date"], "2026-11-15");
    assert_eq!(
        patched["version"],
        json!(s.cp3["version"].as_i64().unwrap_or(0) + 1)
    );
    assert_eq!(etag, Some(format!("\"{}\"", patched["version"])));
    let res = app
        .req(Method::PATCH, &format!("{t}/serials/{}", id(&s.bd1)))
        .json(&json!({"next_maintenance_date": "2026-12-20"}))
        .send()
        .await?;
    ok(res, "patch bd1").await?;
    let res = app
        .req(Method::PATCH, &format!("{t}/serials/{}", id(&s.cp1)))
        .json(&json!({"next_maintenance_date": "2026-11-01"}))
        .send()
        .await?;
    ok(res, "patch cp1").await?;
    let m = report(&app, &s, "maintenance-due?as_of=2026-12-01").await?;
    assert_eq!(
        col(&m, "serial_id"),
        vec![s.cp1["id"].clone(), s.cp3["id"].clone()]
    );
    assert_eq!(col(&m, "days_overdue"), vec![json!(30), json!(16)]);
    let m = report(
        &app,
        &s,
        &format!(
            "maintenance-due?as_of=2026-12-31&warehouse_id={}",
            id(&s.w2)
        ),
    )
    .await?;
    assert_eq!(col(&m, "serial_number"), strs(&["CP-3", "BD-1"]));
    assert_eq!(
        col(&m, "next_maintenance_date"),
        strs(&["2026-11-15", "2026-12-20"])
    );

    // reorder: set points (validated, all or nothing), then the levels at or below them.
    let res = app
        .req(Method::PUT, &format!("{t}/stock/reorder-points"))
        .json(&json!({"levels": [
            {"warehouse_id": s.w1["id"], "item_id": s.mask["id"], "reorder_point": 12},
            {"warehouse_id": s.w1["id"], "item_id": s.w2["id"], "reorder_point": -1}]}))
        .send()
        .await?;
    let bad = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["levels[1].reorder_point", "levels[1].item_id"]);
    let set = put(
        &app,
        &format!("{t}/stock/reorder-points"),
        json!({"levels": [
            {"warehouse_id": s.w1["id"], "item_id": s.mask["id"], "reorder_point": 12},
            {"warehouse_id": s.w2["id"], "item_id": s.cpap["id"], "reorder_point": 1},
            {"warehouse_id": s.w2["id"], "item_id": s.bed["id"], "reorder_point": 3},
            {"warehouse_id": s.w1["id"], "item_id": s.cpap["id"], "reorder_point": 0}]}),
    )
    .await?;
    // w1/cpap already had 0: unchanged, not listed; w2/bed had no level: created.
    assert_eq!(
        col(&set, "reorder_point"),
        vec![json!(12), json!(1), json!(3)]
    );
    let r = report(&app, &s, &format!("reorder?warehouse_id={}", id(&s.w1))).await?;
    assert_eq!(col(&r, "item_code"), strs(&["MASK-1"]));
    assert_eq!(
        (
            &r["data"][0]["on_hand"],
            &r["data"][0]["committed"],
            &r["data"][0]["available"],
            &r["data"][0]["shortfall"]
        ),
        (&json!(10), &json!(2), &json!(8), &json!(4))
    );
    let r = report(&app, &s, "reorder").await?;
    let mut got: Vec<(Value, Value, Value)> = r["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            (
                x["warehouse_code"].clone(),
                x["item_code"].clone(),
                x["shortfall"].clone(),
            )
        })
        .collect();
    got.sort_by_key(|x| x.0.to_string() + &x.1.to_string());
    assert_eq!(
        got,
        vec![
            (json!("MAIN"), json!("MASK-1"), json!(4)),
            (json!("NORTH"), json!("BED-1"), json!(3)),
            (json!("NORTH"), json!("CPAP-1"), json!(0)),
        ]
    );

    // deliveries: the awaiting mask line first (dated its approval, today), then the lines
    // delivered in the range.
    let d = report(&app, &s, &format!("deliveries?from=2026-11-15&to={today}")).await?;
    assert_eq!(
        col(&d, "kind"),
        strs(&["awaiting_delivery", "delivered", "delivered"])
    );
    assert_eq!(col(&d, "order_line_id")[0], line(&s.o2, 0));
    assert_eq!(d["data"][0]["date"], json!(today));
    assert_eq!(d["data"][0]["quantity"], 2);
    assert_eq!(d["data"][0]["address"], "12 Elm St, Austin, TX 78701");
    let mut delivered: Vec<Value> = col(&d, "order_line_id")[1..].to_vec();
    delivered.sort_by_key(|v| v.to_string());
    let mut expected = vec![line(&s.o1, 0), line(&s.o1, 1)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(delivered, expected);
    assert_eq!(col(&d, "date")[1..], strs(&["2026-11-21", "2026-11-21"]));
    assert_eq!(d["parameters"], json!({"from": "2026-11-15", "to": today}));
    let d = report(&app, &s, "deliveries?date=2026-11-10").await?;
    assert_eq!(col(&d, "order_line_id"), vec![line(&s.o5, 0)]);
    assert_eq!(col(&d, "serial_number"), strs(&["CP-2"]));

    // pickups.
    let p = report(&app, &s, "pickups?date=2026-11-25").await?;
    assert_eq!(col(&p, "order_line_id"), vec![line(&s.o1, 1)]);
    assert_eq!(
        (
            &p["data"][0]["serial_number"],
            &p["data"][0]["return_warehouse_code"],
            &p["data"][0]["end_date"]
        ),
        (&json!("BD-1"), &json!("NORTH"), &json!("2026-11-25"))
    );
    assert_eq!(
        report(&app, &s, "pickups?date=2026-11-24").await?["data"],
        json!([])
    );

    // capped-rental-month-13: o5 (12 months billed) by default; o1 too looking 12 months ahead.
    let c = report(&app, &s, "capped-rental-month-13").await?;
    assert_eq!(col(&c, "order_line_id"), vec![line(&s.o5, 0)]);
    assert_eq!(
        (
            &c["data"][0]["months_billed"],
            &c["data"][0]["month_13_from"],
            &c["data"][0]["serial_number"]
        ),
        (&json!(12), &json!("2027-11-10"), &json!("CP-2"))
    );
    assert_eq!(c["parameters"], json!({"within_months": "1"}));
    let c = report(&app, &s, "capped-rental-month-13?within_months=12").await?;
    assert_eq!(
        col(&c, "order_line_id"),
        vec![line(&s.o5, 0), line(&s.o1, 0)]
    );
    assert_eq!(
        col(&c, "month_13_from"),
        strs(&["2027-11-10", "2027-11-21"])
    );
    let _ = (&s.ben, &s.o3);
    Ok(())
}

#[actix_web::test]
async fn parameters_csv_and_permission() -> TestResult {
    let app = TestApp::spawn().await;
    let s = seed(&app, "report-csv").await?;
    let t = &s.t;

    // Parameters: unknown, malformed, repeated, conflicting: 422 invalid_query naming each.
    for (query, field, code) in [
        ("rentals-due?as_of=2026-11-31", "as_of", "invalid_value"),
        ("rentals-due?bogus=1", "bogus", "unknown_parameter"),
        ("rentals-due?limit=501", "limit", "out_of_range"),
        ("serial-locations?status=gone", "status", "invalid_value"),
        ("serial-locations?item_id=42", "item_id", "invalid_value"),
        (
            "deliveries?date=2026-11-21&from=2026-11-01",
            "date",
            "conflict",
        ),
        (
            "deliveries?from=2026-11-21&to=2026-11-01",
            "to",
            "out_of_range",
        ),
        (
            "capped-rental-month-13?within_months=x",
            "within_months",
            "invalid_value",
        ),
        (
            "rentals-due?as_of=2026-11-30&as_of=2026-12-01",
            "as_of",
            "repeated",
        ),
        ("rentals-due?cursor=zzz", "cursor", "invalid_cursor"),
        ("rentals-due?format=xml", "format", "invalid_value"),
        ("rentals-due?format=csv&limit=5", "limit", "not_with_csv"),
    ] {
        let p = assert_problem(
            app.get(&format!("{t}/reports/{query}")).await,
            422,
            "invalid_query",
        )
        .await;
        assert_eq!(
            (
                p["errors"][0]["field"].as_str(),
                p["errors"][0]["code"].as_str()
            ),
            (Some(field), Some(code)),
            "{query}: {p}"
        );
    }
    assert_problem(
        app.get(&format!("{t}/reports/no-such-report")).await,
        404,
        "not_found",
    )
    .await;

    // CSV: every row (here more than one internal page is not needed; the cursor is honoured),
    // header first, the same values as the JSON rows.
    let json_rows = report(&app, &s, "serial-locations").await?;
    let res = app
        .get(&format!("{t}/reports/serial-locations?format=csv"))
        .await;
    assert_eq!(res.status(), 200);
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        ct.as_deref(),
        Some("text/csv; charset=utf-8; header=present")
    );
    let disposition = res
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"serial-locations-"),
        "{disposition}"
    );
    let records = parse_csv(&res.text().await?);
    let header = records[0].clone();
    assert_eq!(
        header,
        [
            "serial_id",
            "serial_number",
            "item_id",
            "item_code",
            "item_name",
            "status",
            "warehouse_id",
            "warehouse_code",
            "patient_id",
            "patient_account_number",
            "patient_name",
            "next_maintenance_date"
        ]
    );
    let expected: Vec<Vec<String>> = json_rows["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| as_cells(r, &header))
        .collect();
    assert_eq!(records[1..].to_vec(), expected);
    // The patient name holds a comma: it is quoted in the raw text.
    assert_eq!(records[1][10], "Diaz, Rosa");
    // Accept: text/csv works too; a cursor starts the export after that row.
    let page1 = report(&app, &s, "serial-locations?limit=2").await?;
    let cursor = page1["next_cursor"].as_str().unwrap_or_default();
    let res = app
        .req(
            Method::GET,
            &format!("{t}/reports/serial-locations?cursor={cursor}"),
        )
        .header("accept", "text/csv")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let records = parse_csv(&res.text().await?);
    assert_eq!(records.len(), 3, "header and the last two serials");
    assert_eq!(records[1][1], "BD-1");
    assert_eq!(records[2][1], "CP-3");

    // Without reports:view: 403, on the catalogue and on a report.
    app.post_json(
        &format!("{t}/roles"),
        &json!({"name": "clerk", "permissions": ["locations:view"]}),
    )
    .await;
    let key: Value = app
        .post_json(
            &format!("{t}/api-keys"),
            &json!({"name": "clerk", "roles": ["clerk"]}),
        )
        .await
        .json()
        .await?;
    let secret = key["secret"].as_str().unwrap_or_default();
    for path in [format!("{t}/reports"), format!("{t}/reports/rentals-due")] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(secret)
            .send()
            .await?;
        assert_problem(res, 403, "forbidden").await;
    }
    Ok(())
}

/// Writes an invoice for `line` dated `date` with one line billable `billable`, tax `tax`, and
/// a payment of `paid` (directly, as a billing run and payment posting would).
async fn invoice(
    app: &TestApp,
    tenant: &Value,
    order: &Value,
    date: &str,
    billable: &str,
    tax: &str,
    paid: &str,
) -> TestResult {
    let pool = app.shard_pool(TestApp::shard_index(tenant));
    let tid = TestApp::tenant_id(tenant);
    let mut tx = begin_tenant_tx(&pool, tid).await?;
    let run = uuid::Uuid::now_v7();
    let inv = uuid::Uuid::now_v7();
    let line = uuid::Uuid::now_v7();
    let order_line: uuid::Uuid = order["lines"][0]["id"].as_str().unwrap_or("").parse()?;
    let month: i32 = sqlx::query_scalar(
        "select coalesce(max(billing_month), 0) + 1 from invoice_line where order_line_id = $1",
    )
    .bind(order_line)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("insert into billing_run (tenant_id, billing_run_id, as_of, fencing_token, started_by) values ($1, $2, $3::date, 1, 'test')")
        .bind(tid).bind(run).bind(date).execute(&mut *tx).await?;
    sqlx::query(
        "insert into invoice (tenant_id, invoice_id, invoice_number, order_id, patient_id, billing_month, flags, invoice_date, \
         place_of_service, accept_assignment, billing_run_id) values ($1, $2, $3, $4::uuid, $5::uuid, $6, 1, $7::date, '12', true, $8)",
    )
    .bind(tid).bind(inv).bind(format!("I{}", &inv.simple().to_string()[20..])).bind(order["id"].as_str().unwrap_or(""))
    .bind(order["patient_id"].as_str().unwrap_or("")).bind(month).bind(date).bind(run)
    .execute(&mut *tx).await?;
    sqlx::query(
        "insert into invoice_line (tenant_id, invoice_line_id, invoice_id, order_line_id, billing_month, dos_from, dos_to, \
         hcpcs, quantity, billable, allowable, tax, rule_version) values ($1, $2, $3, $4, $5, $6::date, $6::date, 'E0601', 1, \
         $7::numeric, 0, $8::numeric, 'test')",
    )
    .bind(tid).bind(line).bind(inv).bind(order_line).bind(month).bind(date).bind(billable).bind(tax)
    .execute(&mut *tx).await?;
    for (kind, amount) in [("submit", "0"), ("payment", paid)] {
        sqlx::query(
            "insert into ar_transaction (tenant_id, ar_transaction_id, invoice_line_id, kind, payer, amount, posted_on, created_by) \
             values ($1, $2, $3, $4, 'ins1', $5::numeric, $6::date, 'test')",
        )
        .bind(tid).bind(uuid::Uuid::now_v7()).bind(line).bind(kind).bind(amount).bind(date)
        .execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn by_slug<'a>(report: &'a Value, slug: &str) -> &'a Value {
    report["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["slug"] == slug))
        .unwrap_or(&Value::Null)
}

#[actix_web::test]
async fn platform_report_across_shards() -> TestResult {
    let app = TestApp::spawn().await;
    // The seeded tenant goes to one shard, an empty one to the other.
    let s = seed(&app, "plat-busy").await?;
    let quiet = app.create_tenant("plat-quiet").await;
    let busy: Value = app
        .get("/v1/platform/tenants/plat-busy")
        .await
        .json()
        .await?;
    assert_ne!(TestApp::shard_index(&busy), TestApp::shard_index(&quiet));
    // Two invoices in November (one half paid), one in October.
    invoice(&app, &busy, &s.o1, "2026-11-21", "120.00", "9.90", "60.00").await?;
    invoice(&app, &busy, &s.o5, "2026-11-10", "120.00", "0.00", "0.00").await?;
    invoice(&app, &busy, &s.o5, "2026-10-10", "100.00", "0.00", "100.00").await?;

    let r = ok(
        app.get("/v1/platform/reports/tenants?month=2026-11").await,
        "platform",
    )
    .await?;
    assert_eq!(
        (&r["month"], &r["partial"], &r["missing_shards"]),
        (&json!("2026-11"), &json!(false), &json!([]))
    );
    assert_eq!(col(&r, "slug"), strs(&["plat-busy", "plat-quiet"]));
    let b = by_slug(&r, "plat-busy");
    // Active rentals: o1's CPAP and o5's CPAP (the bed was picked up).
    assert_eq!(
        (
            &b["active_rentals"],
            &b["billed"],
            &b["open_ar"],
            &b["status"],
            &b["shard"]
        ),
        (
            &json!(2),
            &json!("240.00"),
            &json!("189.90"),
            &json!("active"),
            &busy["shard"]
        )
    );
    let q = by_slug(&r, "plat-quiet");
    assert_eq!(
        (&q["active_rentals"], &q["billed"], &q["open_ar"]),
        (&json!(0), &json!("0.00"), &json!("0.00"))
    );
    assert_eq!(
        r["totals"],
        json!({"tenants": 2, "active_rentals": 2, "billed": "240.00", "open_ar": "189.90"})
    );
    let shards: Vec<(Value, Value, Value)> = r["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            (
                x["shard"].clone(),
                x["answer"].clone(),
                x["tenants"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shards,
        vec![
            (json!("shard-0"), json!("ok"), json!(1)),
            (json!("shard-1"), json!("ok"), json!(1))
        ]
    );
    let oct = ok(
        app.get("/v1/platform/reports/tenants?month=2026-10").await,
        "october",
    )
    .await?;
    assert_eq!(by_slug(&oct, "plat-busy")["billed"], "100.00");
    // Validation and operator auth.
    assert_problem(
        app.get("/v1/platform/reports/tenants?month=2026-13").await,
        422,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get("/v1/platform/reports/tenants?shard=x").await,
        422,
        "invalid_query",
    )
    .await;
    let res = app
        .client
        .get(app.url("/v1/platform/reports/tenants"))
        .bearer_auth(app.tenant_key("plat-quiet").unwrap_or_default())
        .send()
        .await?;
    assert_eq!(res.status(), 401);
    let _ = (
        &s.w1, &s.o2, &s.o3, &s.mask, &s.bed, &s.cp1, &s.cp2, &s.cp3, &s.bd1, &s.rosa, &s.ben,
    );
    Ok(())
}

#[actix_web::test]
async fn platform_report_is_partial_when_a_shard_is_down() -> TestResult {
    let server = PgServer::start()?;
    // A deadline below the pool's acquire timeout (1.5 s in tests), so a silent shard is cut by
    // the deadline, not by the pool.
    let app = TestApp::spawn_with(AppOptions {
        shard1_server: Some(server.url()),
        report_deadline_ms: Some(1_000),
        ..Default::default()
    })
    .await;
    let a = app.create_tenant("up-tenant").await;
    let b = app.create_tenant("down-tenant").await;
    assert_ne!(TestApp::shard_index(&a), TestApp::shard_index(&b));
    let (up, down_shard) = if TestApp::shard_index(&a) == 0 {
        ("up-tenant", "shard-1")
    } else {
        ("down-tenant", "shard-1")
    };
    let whole = ok(app.get("/v1/platform/reports/tenants").await, "before").await?;
    assert_eq!(whole["partial"], false);
    assert_eq!(col(&whole, "slug"), strs(&["down-tenant", "up-tenant"]));

    server.kill()?;
    let started = Instant::now();
    let r = ok(
        app.get("/v1/platform/reports/tenants").await,
        "after the kill",
    )
    .await?;
    let took = started.elapsed();
    // Within the deadline (1 s) and a margin for the request itself.
    assert!(took < Duration::from_millis(1_500), "answered in {took:?}");
    assert_eq!(
        (&r["partial"], &r["missing_shards"]),
        (&json!(true), &json!([down_shard]))
    );
    assert_eq!(col(&r, "slug"), strs(&[up]));
    let missing = r["shards"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["shard"] == down_shard))
        .cloned()
        .unwrap_or_default();
    // Refused connections fail at once; a pool still retrying them is cut by the deadline.
    assert!(
        missing["answer"] == "failed" || missing["answer"] == "timed_out",
        "{missing}"
    );
    assert_eq!(missing["tenants"], 1);
    assert!(missing["error"].is_string(), "{missing}");

    // A shard that accepts connections and never answers: left out at the deadline.
    let hole = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = hole.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hole.incoming().flatten() {
            held.push(conn);
        }
    });
    app.registry()
        .catalog()
        .add_shard(
            "shard-hole",
            &format!("postgres://127.0.0.1:{port}/nothing"),
            1,
            &aries_tenants::audit::AuditActor {
                actor: "test".into(),
                ..Default::default()
            },
        )
        .await?;
    let started = Instant::now();
    let r = ok(
        app.get("/v1/platform/reports/tenants").await,
        "with a silent shard",
    )
    .await?;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_millis(1_500),
        "the deadline is 1 s; answered in {took:?}"
    );
    assert_eq!(r["missing_shards"], json!([down_shard, "shard-hole"]));
    let hole_row = r["shards"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["shard"] == "shard-hole"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&hole_row["answer"], &hole_row["tenants"]),
        (&json!("timed_out"), &json!(0))
    );
    assert_eq!(col(&r, "slug"), strs(&[up]));
    Ok(())
}

// ---- billing-worklist and ar-aging, on a tenant billed by real runs ----

/// (kind, payer_name, lines, 0–30, 31–60, 61–90, 90+, total) of an ar-aging row.
type AgingCells = (
    String,
    String,
    Value,
    String,
    String,
    String,
    String,
    String,
);

/// GET a report of the billing world's tenant.
async fn billing_report(app: &TestApp, t: &str, query: &str) -> R<Value> {
    ok(app.get(&format!("{t}/reports/{query}")).await, query).await
}

/// The invoice line billing `order_line` for `month`.
fn invoice_line(invoices: &[Value], order_line: &Value, month: i64) -> Value {
    invoices
        .iter()
        .flat_map(|i| i["lines"].as_array().cloned().unwrap_or_default())
        .find(|l| l["order_line_id"] == order_line["id"] && l["billing_month"] == month)
        .unwrap_or_default()
}

/// (kind, payer_name, lines, 0–30, 31–60, 61–90, 90+, total) of every row.
fn aging(page: &Value) -> Vec<AgingCells> {
    let text = |r: &Value, f: &str| r[f].as_str().unwrap_or("").to_owned();
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                text(r, "kind"),
                text(r, "payer_name"),
                r["lines"].clone(),
                text(r, "days_0_30"),
                text(r, "days_31_60"),
                text(r, "days_61_90"),
                text(r, "days_over_90"),
                text(r, "total"),
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn payer_row(
    name: &str,
    lines: i64,
    b0: &str,
    b31: &str,
    b61: &str,
    b90: &str,
    total: &str,
) -> AgingCells {
    (
        "payer".into(),
        name.into(),
        json!(lines),
        b0.into(),
        b31.into(),
        b61.into(),
        b90.into(),
        total.into(),
    )
}

#[actix_web::test]
async fn billing_worklist_and_ar_aging_reports() -> TestResult {
    use crate::billing::{invoices, run, world};
    let app = TestApp::spawn().await;
    let w = world(&app, "aging-care").await?;
    let t = w.t.clone();
    let [cpap, bed, mask, walker] = [0, 1, 2, 3].map(|i| w.order["lines"][i].clone());

    // billing-worklist as of 2026-10-01: months 1–4 of the three rentals and the sale (13 rows,
    // in line then month order); the stale order's CMN expired on 2026-09-30, so it shows only
    // with include=excluded, with its code.
    let wl = billing_report(&app, &t, "billing-worklist?as_of=2026-10-01&limit=500").await?;
    let mut want: Vec<(Value, i64)> = Vec::new();
    let mut lines = vec![(&cpap, 4), (&bed, 4), (&mask, 1), (&walker, 4)];
    lines.sort_by(|a, b| a.0["id"].as_str().cmp(&b.0["id"].as_str()));
    for (l, months) in &lines {
        for m in 1..=*months {
            want.push((l["id"].clone(), m));
        }
    }
    let got: Vec<(Value, i64)> = wl["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["order_line_id"].clone(),
                r["billing_month"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(col(&wl, "kind").iter().all(|k| k == "due"));
    let mask_row = wl["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["order_line_id"] == mask["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &mask_row["billable"],
            &mask_row["allowable"],
            &mask_row["tax"],
            &mask_row["quantity"],
            &mask_row["modifiers"],
            &mask_row["closes"],
            &mask_row["dos_from"],
            &mask_row["invoice_date"],
            &mask_row["missing_codes"],
        ),
        (
            &json!("90.00"),
            &json!("62.50"),
            &json!("5.16"),
            &json!("2.00"),
            &json!("NU"),
            &json!(true),
            &json!("2026-06-15"),
            &json!("2026-06-15"),
            &Value::Null
        )
    );
    let cpap_rows: Vec<Value> = wl["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["order_line_id"] == cpap["id"])
        .cloned()
        .collect();
    assert_eq!(
        cpap_rows
            .iter()
            .map(|r| r["modifiers"].clone())
            .collect::<Vec<_>>(),
        strs(&["RR KH", "RR KI", "RR KI", "RR KJ"])
    );
    assert!(
        cpap_rows
            .iter()
            .all(|r| r["closes"] == false && r["billable"] == "120.00")
    );
    let all = billing_report(
        &app,
        &t,
        "billing-worklist?as_of=2026-10-01&include=excluded&limit=500",
    )
    .await?;
    let excluded: Vec<Value> = all["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "excluded")
        .cloned()
        .collect();
    assert_eq!(excluded.len(), 1);
    assert_eq!(all["data"].as_array().map(Vec::len), Some(14));
    assert_eq!(
        (
            &excluded[0]["order_line_id"],
            &excluded[0]["missing_codes"],
            &excluded[0]["billable"]
        ),
        (
            &w.stale["lines"][0]["id"],
            &json!("cmn_expired"),
            &Value::Null
        )
    );
    // Pages of 5 (cursors in the middle of a line's months) walk the same 14 rows.
    let mut walked = Vec::new();
    let mut query = "billing-worklist?as_of=2026-10-01&include=excluded&limit=5".to_owned();
    loop {
        let p = billing_report(&app, &t, &query).await?;
        walked.extend(p["data"].as_array().cloned().unwrap_or_default());
        match p["next_cursor"].as_str() {
            Some(c) => {
                query =
                    format!("billing-worklist?as_of=2026-10-01&include=excluded&limit=5&cursor={c}")
            }
            None => break,
        }
    }
    assert_eq!(Some(&walked), all["data"].as_array());
    // CSV: the same rows.
    let res = app
        .get(&format!(
            "{t}/reports/billing-worklist?as_of=2026-10-01&include=excluded&format=csv"
        ))
        .await;
    assert_eq!(res.status(), 200);
    let records = parse_csv(&res.text().await?);
    let columns = records.first().cloned().unwrap_or_default();
    assert_eq!(columns.len(), 18);
    let rows: Vec<Vec<String>> = walked.iter().map(|r| as_cells(r, &columns)).collect();
    assert_eq!(records[1..].to_vec(), rows);

    // Bill it: four invoices (2026-06-15, 07-15, 08-15, 09-15) of 435.16, 340.00 × 3.
    let r = run(&app, &w, "2026-10-01").await?;
    assert_eq!(
        (&r["lines_billed"], &r["invoices_created"]),
        (&json!(13), &json!(4))
    );
    let after = billing_report(&app, &t, "billing-worklist?as_of=2026-10-01").await?;
    assert_eq!(after["data"], json!([]));
    let inv = invoices(&app, &w).await?;

    // Payments and write-offs, through the API.
    let post = |line: Value, body: Value| {
        let app = &app;
        let path = format!(
            "{t}/invoice-lines/{}/transactions",
            line["id"].as_str().unwrap_or("")
        );
        async move {
            let res = app.post_json(&path, &body).await;
            assert_eq!(
                res.status(),
                201,
                "{}",
                res.text().await.unwrap_or_default()
            );
        }
    };
    // Month 1 CPAP: Medicare pays 96.00 → 24.00 with the Blue Plan.
    post(
        invoice_line(&inv, &cpap, 1),
        json!({"kind": "payment", "amount": "96.00", "posted_on": "2026-08-01"}),
    )
    .await;
    // Month 1 masks: Medicare 70.00, the Blue Plan 5.00 → 20.16 with the patient.
    post(
        invoice_line(&inv, &mask, 1),
        json!({"kind": "payment", "amount": "70.00", "posted_on": "2026-08-01"}),
    )
    .await;
    post(
        invoice_line(&inv, &mask, 1),
        json!({"kind": "payment", "amount": "5.00", "posted_on": "2026-08-20"}),
    )
    .await;
    // Month 2 bed: paid in full → settled.
    post(
        invoice_line(&inv, &bed, 2),
        json!({"kind": "payment", "amount": "200.00", "posted_on": "2026-09-01"}),
    )
    .await;
    // Month 4 bed: a 50.00 contractual write-off (stays with Medicare).
    post(
        invoice_line(&inv, &bed, 4),
        json!({"kind": "contractual_writeoff", "amount": "50.00", "posted_on": "2026-09-20"}),
    )
    .await;
    // Month 3 walker: paid on 2026-10-05, after the first as_of.
    post(
        invoice_line(&inv, &walker, 3),
        json!({"kind": "payment", "amount": "20.00", "posted_on": "2026-10-05"}),
    )
    .await;

    // As of 2026-10-01 (ages 108, 78, 48 and 16 days): Medicare keeps the bed and walker of
    // month 1, CPAP and walker of month 2, all of month 3 (the walker's payment is later), and
    // month 4 less the write-off.
    let a = billing_report(&app, &t, "ar-aging?as_of=2026-10-01").await?;
    assert_eq!(
        aging(&a),
        vec![
            payer_row("Blue Plan", 1, "0.00", "0.00", "0.00", "24.00", "24.00"),
            payer_row(
                "Medicare DME MAC D",
                10,
                "290.00",
                "340.00",
                "140.00",
                "220.00",
                "990.00"
            ),
            payer_row("Patient", 1, "0.00", "0.00", "0.00", "20.16", "20.16"),
        ]
    );
    assert_eq!(a["data"][2]["payer_id"], Value::Null);
    // As of 2026-10-10 the walker's month 3 is settled and gone; ages move on (117, 87, 56, 25).
    let b = billing_report(&app, &t, "ar-aging?as_of=2026-10-10").await?;
    assert_eq!(
        aging(&b)[1],
        payer_row(
            "Medicare DME MAC D",
            9,
            "290.00",
            "320.00",
            "140.00",
            "220.00",
            "970.00"
        )
    );
    // One payer, with its lines.
    let plan_id = a["data"][0]["payer_id"].as_str().unwrap_or("").to_owned();
    let d = billing_report(
        &app,
        &t,
        &format!("ar-aging?as_of=2026-10-01&payer_id={plan_id}&detail=lines"),
    )
    .await?;
    assert_eq!(d["data"].as_array().map(Vec::len), Some(2));
    let line = &d["data"][1];
    let cpap1 = invoice_line(&inv, &cpap, 1);
    assert_eq!(
        (
            &line["kind"],
            &line["invoice_line_id"],
            &line["current_payer"],
            &line["days_outstanding"],
            &line["days_over_90"],
            &line["days_0_30"],
            &line["total"],
            &line["invoice_date"],
        ),
        (
            &json!("line"),
            &cpap1["id"],
            &json!("ins2"),
            &json!(108),
            &json!("24.00"),
            &json!("0.00"),
            &json!("24.00"),
            &json!("2026-06-15")
        )
    );
    // Detail of everything, paged by 4: 3 payer rows + 12 lines; the settled bed of month 2 is
    // not among them.
    let mut walked = Vec::new();
    let mut query = "ar-aging?as_of=2026-10-01&detail=lines&limit=4".to_owned();
    loop {
        let p = billing_report(&app, &t, &query).await?;
        walked.extend(p["data"].as_array().cloned().unwrap_or_default());
        match p["next_cursor"].as_str() {
            Some(c) => query = format!("ar-aging?as_of=2026-10-01&detail=lines&limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked.len(), 15);
    let kinds: Vec<&str> = walked.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "payer").count(), 3);
    let bed2 = invoice_line(&inv, &bed, 2);
    assert!(walked.iter().all(|r| r["invoice_line_id"] != bed2["id"]));
    let medicare_lines: Vec<&Value> = walked
        .iter()
        .filter(|r| r["kind"] == "line" && r["payer_name"] == "Medicare DME MAC D")
        .collect();
    assert_eq!(medicare_lines.len(), 10);
    let bed4 = invoice_line(&inv, &bed, 4);
    let bed4_row = medicare_lines
        .iter()
        .find(|r| r["invoice_line_id"] == bed4["id"])
        .cloned()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &bed4_row["days_0_30"],
            &bed4_row["total"],
            &bed4_row["current_payer"]
        ),
        (&json!("150.00"), &json!("150.00"), &json!("ins1"))
    );
    let patient_line = walked.last().cloned().unwrap_or_default();
    assert_eq!(
        (
            &patient_line["payer_name"],
            &patient_line["invoice_line_id"],
            &patient_line["current_payer"],
            &patient_line["total"]
        ),
        (
            &json!("Patient"),
            &invoice_line(&inv, &mask, 1)["id"],
            &json!("patient"),
            &json!("20.16")
        )
    );
    // The operator's open AR is plain SQL over the same transactions; it must equal the sum of the
    // fold's balances, which the aging report gives as of today (every posting is in the past).
    let today = chrono::Utc::now().date_naive();
    let now = billing_report(&app, &t, &format!("ar-aging?as_of={today}&limit=500")).await?;
    let cents = |v: &Value| -> i64 {
        v.as_str()
            .and_then(|s| s.replace('.', "").parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    };
    let folded: i64 = now["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "payer")
        .map(|r| cents(&r["total"]))
        .sum();
    assert!(folded > 0, "{now}");
    let platform = ok(
        app.get(&format!(
            "/v1/platform/reports/tenants?month={}",
            today.format("%Y-%m")
        ))
        .await,
        "platform",
    )
    .await?;
    assert_eq!(cents(&by_slug(&platform, "aging-care")["open_ar"]), folded);
    // Bad parameters are named.
    assert_problem(
        app.get(&format!("{t}/reports/ar-aging?detail=all")).await,
        422,
        "invalid_query",
    )
    .await;
    Ok(())
}
