//! Billing end to end over HTTP: a seeded tenant with orders of several sale/rent types delivered
//! months ago → the worklist (a line with missing information excluded, with its codes) → billing
//! runs (each due month once, amounts, modifiers, dates of service; a rerun bills nothing; a later
//! run bills the next month; a capped rental closes after month 13) → AR postings moving the payer
//! cursor. Also: two instances starting a run at once (one runs, one 409), a stale fencing token
//! refused, the `invoice_line_once` constraint behind everything, and Redis down (503).

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or("")
}

async fn created(
    app: &TestApp,
    path: &str,
    body: Value,
) -> Result<Value, Box<dyn std::error::Error>> {
    let res = app.post_json(path, &body).await;
    let status = res.status();
    let v: Value = res.json().await?;
    assert_eq!(status, 201, "POST {path}: {v}");
    Ok(v)
}

pub(crate) async fn ok(res: reqwest::Response) -> Result<Value, Box<dyn std::error::Error>> {
    let status = res.status();
    let v: Value = res.json().await?;
    assert!(status.is_success(), "{status}: {v}");
    Ok(v)
}

/// The seeded tenant: the ids tests need.
pub(crate) struct World {
    pub(crate) t: String,
    pub(crate) tenant: Value,
    /// Capped rental, monthly rental, one-time sale, rent to purchase (lines 1–4).
    pub(crate) order: Value,
    /// A monthly rental whose CMN expired by the billing date.
    pub(crate) stale: Value,
}

/// A tenant with a branch taxing 8.25 %, two payers (Medicare rank 1, a commercial plan rank 2),
/// a price list pricing four items, a patient with both policies, an order of four lines
/// delivered on 2026-06-15, and a second order whose CMN expires on 2026-09-30.
pub(crate) async fn world(app: &TestApp, slug: &str) -> Result<World, Box<dyn std::error::Error>> {
    let tenant = app.create_tenant(slug).await;
    let t = format!("/v1/tenants/{slug}");
    let mut branch = location_body("MAIN");
    branch["tax_rate"] = json!("8.25");
    let branch = created(app, &format!("{t}/locations"), branch).await?;
    assert_eq!(branch["tax_rate"], "8.25");
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
    let medicare = created(
        app,
        &format!("{t}/payers"),
        json!({"name": "Medicare DME MAC D", "payer_type": "medicare", "default_price_list_id": list["id"]}),
    )
    .await?;
    let plan = created(
        app,
        &format!("{t}/payers"),
        json!({"name": "Blue Plan", "payer_type": "commercial"}),
    )
    .await?;
    let warehouse = created(
        app,
        &format!("{t}/warehouses"),
        json!({"code": "main", "name": "Main"}),
    )
    .await?;
    let mut items = Vec::new();
    for (code, row) in [
        (
            "CPAP-1",
            json!({"hcpcs": "E0601", "modifiers": ["RR"], "rent_billable": "120.00", "rent_allowable": "80.10",
                   "sale_billable": "1200.00", "sale_allowable": "801.00", "default_order_type": "rental",
                   "rental_type": "capped_rental", "billing_frequency": "monthly"}),
        ),
        (
            "BED-1",
            json!({"hcpcs": "E0260", "modifiers": ["RR"], "rent_billable": "200.00", "rent_allowable": "150.00",
                   "default_order_type": "rental", "rental_type": "monthly_rental", "billing_frequency": "monthly"}),
        ),
        (
            "MASK-1",
            json!({"hcpcs": "A7034", "modifiers": ["NU"], "sale_billable": "45.00", "sale_allowable": "31.25",
                   "default_order_type": "sale", "taxable": true}),
        ),
        (
            "WALK-1",
            json!({"hcpcs": "E0143", "modifiers": ["RR"], "rent_billable": "20.00", "rent_allowable": "15.00",
                   "sale_billable": "300.00", "sale_allowable": "240.00", "default_order_type": "rental",
                   "rental_type": "rent_to_purchase", "billing_frequency": "monthly"}),
        ),
    ] {
        let item = created(
            app,
            &format!("{t}/items"),
            json!({"code": code, "name": code}),
        )
        .await?;
        let res = app
            .req(
                Method::PUT,
                &format!("{t}/price-lists/{}/items/{}", id(&list), id(&item)),
            )
            .json(&row)
            .send()
            .await?;
        assert!(res.status().is_success(), "{}", res.text().await?);
        let res = app
            .post_json(
                &format!("{t}/stock/movements"),
                &json!({"kind": "receipt", "warehouse_id": warehouse["id"], "item_id": item["id"], "quantity": 10}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await?);
        items.push(item);
    }
    let patient = created(
        app,
        &format!("{t}/patients"),
        json!({"first_name": "Rosa", "last_name": "Diaz", "date_of_birth": "1948-05-17",
               "address": {"line1": "12 Elm St", "city": "Austin", "state": "TX", "postal_code": "78701"},
               "primary_prescriber_id": prescriber["id"], "diagnosis_codes": ["G47.33"],
               "signature_on_file": true, "location_id": branch["id"]}),
    )
    .await?;
    for (payer, number) in [(&medicare, "1EG4TE5MK72"), (&plan, "BP-1234")] {
        created(
            app,
            &format!("{t}/patients/{}/policies", id(&patient)),
            json!({"payer_id": payer["id"], "policy_number": number}),
        )
        .await?;
    }
    let order = created(
        app,
        &format!("{t}/orders"),
        json!({"patient_id": patient["id"], "order_date": "2026-06-01", "warehouse_id": warehouse["id"],
               "lines": [{"item_id": items[0]["id"]}, {"item_id": items[1]["id"]},
                         {"item_id": items[2]["id"], "quantity": 2}, {"item_id": items[3]["id"]}]}),
    )
    .await?;
    let stale = created(
        app,
        &format!("{t}/orders"),
        json!({"patient_id": patient["id"], "order_date": "2026-06-01", "warehouse_id": warehouse["id"],
               "lines": [{"item_id": items[1]["id"], "cmn_reference": "CMN-1", "cmn_expires": "2026-09-30"}]}),
    )
    .await?;
    for o in [&order, &stale] {
        let path = format!("{t}/orders/{}", id(o));
        ok(app
            .post_json(&format!("{path}/approve"), &json!({"as_of": "2026-06-01"}))
            .await)
        .await?;
        ok(app
            .post_json(
                &format!("{path}/deliver"),
                &json!({"delivery_date": "2026-06-15"}),
            )
            .await)
        .await?;
    }
    let order = ok(app.get(&format!("{t}/orders/{}", id(&order))).await).await?;
    let stale = ok(app.get(&format!("{t}/orders/{}", id(&stale))).await).await?;
    Ok(World {
        t,
        tenant,
        order,
        stale,
    })
}

pub(crate) async fn run(
    app: &TestApp,
    w: &World,
    as_of: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    created(
        app,
        &format!("{}/billing/runs", w.t),
        json!({"as_of": as_of}),
    )
    .await
}

pub(crate) async fn invoices(
    app: &TestApp,
    w: &World,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let page = ok(app
        .get(&format!(
            "{}/invoices?order_id={}&limit=500",
            w.t,
            id(&w.order)
        ))
        .await)
    .await?;
    Ok(page["data"].as_array().cloned().unwrap_or_default())
}

/// (month, dos_from, dos_to, modifiers, billable, allowable, tax) of the invoice lines of one
/// order line, in month order.
fn billed(
    invoices: &[Value],
    line: &Value,
) -> Vec<(i64, String, String, Value, String, String, String)> {
    let mut out: Vec<_> = invoices
        .iter()
        .flat_map(|i| i["lines"].as_array().cloned().unwrap_or_default())
        .filter(|l| l["order_line_id"] == line["id"])
        .map(|l| {
            (
                l["billing_month"].as_i64().unwrap_or(0),
                l["dos_from"].as_str().unwrap_or("").to_owned(),
                l["dos_to"].as_str().unwrap_or("").to_owned(),
                l["modifiers"].clone(),
                l["billable"].as_str().unwrap_or("").to_owned(),
                l["allowable"].as_str().unwrap_or("").to_owned(),
                l["tax"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// Invoice lines of the tenant, counted in the database (the constraint's view).
async fn invoice_line_rows(app: &TestApp, w: &World) -> Result<i64, Box<dyn std::error::Error>> {
    let pool = app.shard_pool(TestApp::shard_index(&w.tenant));
    let mut conn = pool.acquire().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, false)")
        .bind(id(&w.tenant))
        .execute(&mut *conn)
        .await?;
    let n: i64 = sqlx::query_scalar(
        "select count(*) from (select distinct order_line_id, billing_month from invoice_line) x",
    )
    .fetch_one(&mut *conn)
    .await?;
    let all: i64 = sqlx::query_scalar("select count(*) from invoice_line")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(n, all, "a (line, month) was billed twice");
    Ok(all)
}

/// Runs SQL as the app role in the tenant's RLS context (to simulate failures).
async fn tenant_sql(
    app: &TestApp,
    w: &World,
    sql: &str,
    arg: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let pool = app.shard_pool(TestApp::shard_index(&w.tenant));
    let mut conn = pool.acquire().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, false)")
        .bind(id(&w.tenant))
        .execute(&mut *conn)
        .await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(arg)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("select set_config('aries.tenant_id', '', false)")
        .execute(&mut *conn)
        .await?;
    Ok(n)
}

#[actix_web::test]
async fn worklist_runs_invoices_and_closing() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "bill-care").await?;
    let t = &w.t;
    let [cpap, bed, mask, walker] = [0, 1, 2, 3].map(|i| w.order["lines"][i].clone());

    // The worklist as of 2026-12-01: the four lines of the order, with six months each (one for
    // the sale); the other order's line is excluded because its CMN expired.
    let list = ok(app
        .get(&format!("{t}/billing/worklist?as_of=2026-12-01"))
        .await)
    .await?;
    let due: Vec<(Value, usize)> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["order_line_id"].clone(),
                l["charges"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    let mut want = vec![
        (cpap["id"].clone(), 6),
        (bed["id"].clone(), 6),
        (mask["id"].clone(), 1),
        (walker["id"].clone(), 6),
    ];
    want.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    assert_eq!(due, want);
    assert_eq!(list["excluded"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        list["excluded"][0]["order_line_id"],
        w.stale["lines"][0]["id"]
    );
    assert_eq!(list["excluded"][0]["missing"][0]["code"], "cmn_expired");
    let mask_due = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["order_line_id"] == mask["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &mask_due["charges"][0]["billable"],
            &mask_due["charges"][0]["tax"],
            &mask_due["closes"]
        ),
        (&json!("90.00"), &json!("5.16"), &json!(true))
    );
    // Pages of one walk the same candidates.
    let first = ok(app
        .get(&format!("{t}/billing/worklist?as_of=2026-12-01&limit=1"))
        .await)
    .await?;
    assert!(first["next_cursor"].is_string());

    // The first run bills months 1–6: six invoices (one per month, same flags), 19 lines.
    let r1 = run(&app, &w, "2026-12-01").await?;
    assert_eq!(
        (
            &r1["status"],
            &r1["lines_billed"],
            &r1["invoices_created"],
            &r1["lines_closed"]
        ),
        (&json!("completed"), &json!(19), &json!(6), &json!(1))
    );
    let inv = invoices(&app, &w).await?;
    assert_eq!(inv.len(), 6);
    let months: Vec<i64> = inv
        .iter()
        .map(|i| i["billing_month"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(months, [1, 2, 3, 4, 5, 6]);
    // Ins1 + Ins2 + accept assignment; the branch's rate.
    assert!(
        inv.iter()
            .all(|i| i["flags"] == 19 && i["tax_rate"] == "8.25")
    );
    assert_eq!(inv[0]["lines"].as_array().map(Vec::len), Some(4));
    assert_eq!(inv[0]["invoice_date"], "2026-06-15");
    // 120.00 + 200.00 + 90.00 (+ 5.16 tax) + 20.00.
    assert_eq!(inv[0]["total"], "435.16");
    let rr = |m: &[&str]| json!(m);
    assert_eq!(
        billed(&inv, &cpap),
        vec![
            (
                1,
                s("2026-06-15"),
                s("2026-07-14"),
                rr(&["RR", "KH"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
            (
                2,
                s("2026-07-15"),
                s("2026-08-14"),
                rr(&["RR", "KI"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
            (
                3,
                s("2026-08-15"),
                s("2026-09-14"),
                rr(&["RR", "KI"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
            (
                4,
                s("2026-09-15"),
                s("2026-10-14"),
                rr(&["RR", "KJ"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
            (
                5,
                s("2026-10-15"),
                s("2026-11-14"),
                rr(&["RR", "KJ"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
            (
                6,
                s("2026-11-15"),
                s("2026-12-14"),
                rr(&["RR", "KJ"]),
                s("120.00"),
                s("80.10"),
                s("0.00")
            ),
        ]
    );
    assert_eq!(
        billed(&inv, &mask),
        vec![(
            1,
            s("2026-06-15"),
            s("2026-06-15"),
            rr(&["NU"]),
            s("90.00"),
            s("62.50"),
            s("5.16")
        )]
    );
    assert_eq!(billed(&inv, &bed).len(), 6);
    assert_eq!(billed(&inv, &bed)[5].4, "200.00");
    let order = ok(app.get(&format!("{t}/orders/{}", id(&w.order))).await).await?;
    assert_eq!(order["lines"][0]["billing_month"], 6);
    assert_eq!(order["lines"][0]["dos_from"], "2026-12-15");
    assert_eq!(order["lines"][0]["next_bill_date"], "2026-12-15");
    assert_eq!(order["lines"][2]["state"], "closed");
    assert_eq!(order["lines"][2]["close_reason"], "one_time");
    assert_eq!(order["state"], "approved");

    // The same date again: nothing new.
    let r2 = run(&app, &w, "2026-12-01").await?;
    assert_eq!(
        (&r2["lines_billed"], &r2["invoices_created"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(invoices(&app, &w).await?.len(), 6);
    assert_eq!(invoice_line_rows(&app, &w).await?, 19);

    // A month later: month 7 of the three rentals, one invoice.
    let r3 = run(&app, &w, "2027-01-01").await?;
    assert_eq!(
        (&r3["lines_billed"], &r3["invoices_created"]),
        (&json!(3), &json!(1))
    );
    let inv = invoices(&app, &w).await?;
    assert_eq!(billed(&inv, &cpap)[6].0, 7);
    assert_eq!(billed(&inv, &cpap)[6].1, "2026-12-15");

    // By mid-2027 the capped rental has billed month 13 (KX from month 12) and closed; the
    // rent-to-purchase line billed month 10 as the rest of the sale price and closed.
    let r4 = run(&app, &w, "2027-07-01").await?;
    assert_eq!(r4["lines_closed"], 2);
    let inv = invoices(&app, &w).await?;
    let c = billed(&inv, &cpap);
    assert_eq!(c.len(), 13);
    assert_eq!(c[10].3, rr(&["RR", "KJ"]));
    assert_eq!(c[11].3, rr(&["RR", "KJ", "KX"]));
    assert_eq!(
        (c[12].0, c[12].1.as_str(), &c[12].3),
        (13, "2027-06-15", &rr(&["RR", "KJ", "KX"]))
    );
    let wk = billed(&inv, &walker);
    assert_eq!(wk.len(), 10);
    assert_eq!((wk[9].4.as_str(), wk[9].5.as_str()), ("120.00", "105.00"));
    let order = ok(app.get(&format!("{t}/orders/{}", id(&w.order))).await).await?;
    assert_eq!(
        (
            &order["lines"][0]["state"],
            &order["lines"][0]["close_reason"]
        ),
        (&json!("closed"), &json!("last_month_billed"))
    );
    assert_eq!(order["lines"][1]["state"], "delivered");
    assert_eq!(order["lines"][1]["billing_month"], 13);
    assert_eq!(order["state"], "approved");
    // Later still: the capped rental bills nothing more.
    run(&app, &w, "2027-09-01").await?;
    assert_eq!(billed(&invoices(&app, &w).await?, &cpap).len(), 13);

    // Runs are listed, each with its totals.
    let runs = ok(app.get(&format!("{t}/billing/runs")).await).await?;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(5));
    let one = ok(app.get(&format!("{t}/billing/runs/{}", id(&r1))).await).await?;
    assert_eq!(one["lines_billed"], 19);
    Ok(())
}

#[actix_web::test]
async fn payments_move_the_payer_cursor() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "ar-care").await?;
    let t = &w.t;
    run(&app, &w, "2026-07-01").await?;
    let inv = invoices(&app, &w).await?;
    assert_eq!(inv.len(), 1);
    let cpap_line = inv[0]["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["order_line_id"] == w.order["lines"][0]["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &cpap_line["ar"]["balance"],
            &cpap_line["ar"]["current_payer"],
            &cpap_line["ar"]["status"]
        ),
        (&json!("120.00"), &json!("ins1"), &json!("pending"))
    );
    let path = format!("{t}/invoice-lines/{}/transactions", id(&cpap_line));
    let post = |body: Value| {
        let app = &app;
        let path = path.clone();
        async move { app.post_json(&path, &body).await }
    };
    let ar = |v: &Value| {
        (
            v["ar"]["balance"].as_str().unwrap_or("").to_owned(),
            v["ar"]["current_payer"].as_str().unwrap_or("").to_owned(),
            v["ar"]["status"].as_str().unwrap_or("").to_owned(),
        )
    };
    let p = ok(post(json!({"kind": "submit"})).await).await?;
    assert_eq!(ar(&p), (s("120.00"), s("ins1"), s("submitted")));
    assert_eq!(p["transaction"]["payer"], "ins1");
    // Ins2 cannot pay before Ins1 has.
    assert_problem(
        post(json!({"kind": "payment", "payer": "ins2", "amount": "10.00"})).await,
        409,
        "ar_payer_not_current",
    )
    .await;
    let p = ok(post(json!({"kind": "payment", "amount": "96.00", "allowed": "96.00", "posted_on": "2026-08-01", "batch": "ERA-1"})).await).await?;
    assert_eq!(ar(&p), (s("24.00"), s("ins2"), s("partially_paid")));
    assert_problem(
        post(json!({"kind": "payment", "amount": "30.00"})).await,
        409,
        "ar_overpayment",
    )
    .await;
    let p = ok(post(json!({"kind": "payment", "payer": "ins2", "amount": "19.20"})).await).await?;
    assert_eq!(ar(&p), (s("4.80"), s("patient"), s("partially_paid")));
    let p = ok(post(json!({"kind": "payment", "amount": "4.80"})).await).await?;
    assert_eq!(ar(&p), (s("0.00"), s("settled"), s("paid")));
    assert_problem(
        post(json!({"kind": "submit"})).await,
        409,
        "ar_line_settled",
    )
    .await;
    // Validation: a write-off needs an amount; a submission carries none.
    assert_problem(
        post(json!({"kind": "balance_writeoff"})).await,
        422,
        "validation_failed",
    )
    .await;

    // The invoice shows the derived AR; the history lists four transactions.
    let invoice = ok(app.get(&format!("{t}/invoices/{}", id(&inv[0]))).await).await?;
    let line = invoice["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["id"] == cpap_line["id"])
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (
            &line["ar"]["paid"],
            &line["ar"]["balance"],
            &line["ar"]["current_payer"]
        ),
        (&json!("120.00"), &json!("0.00"), &json!("settled"))
    );
    let txs = ok(app.get(&path).await).await?;
    let kinds: Vec<&str> = txs["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["submit", "payment", "payment", "payment"]);
    // Still open: the other lines of the invoice (and the other order's month 1, whose CMN was
    // still valid on 2026-07-01).
    let open = ok(app.get(&format!("{t}/invoices?open=true")).await).await?;
    assert_eq!(open["data"].as_array().map(Vec::len), Some(2));
    let settled = ok(app.get(&format!("{t}/invoices?open=false")).await).await?;
    assert_eq!(settled["data"], json!([]));

    // A remittance is all or nothing: the second entry overpays, so the first is not kept.
    let bed_line = invoice["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["order_line_id"] == w.order["lines"][1]["id"])
        .cloned()
        .unwrap_or_default();
    let refused = assert_problem(
        app.post_json(
            &format!("{t}/ar/remittances"),
            &json!({"transactions": [
                {"invoice_line_id": bed_line["id"], "kind": "payment", "amount": "150.00"},
                {"invoice_line_id": bed_line["id"], "kind": "payment", "amount": "60.00"}]}),
        )
        .await,
        409,
        "ar_overpayment",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("transactions[1]"))
    );
    let bed_txs = ok(app
        .get(&format!("{t}/invoice-lines/{}/transactions", id(&bed_line)))
        .await)
    .await?;
    assert_eq!(bed_txs["data"].as_array().map(Vec::len), Some(0));
    let posted = ok(app
        .post_json(
            &format!("{t}/ar/remittances"),
            &json!({"transactions": [
                {"invoice_line_id": bed_line["id"], "kind": "payment", "amount": "150.00"},
                {"invoice_line_id": bed_line["id"], "kind": "contractual_writeoff", "payer": "ins2", "amount": "50.00"}]}),
        )
        .await)
    .await?;
    assert_eq!(posted[1]["ar"]["balance"], "0.00");
    assert_eq!(posted[1]["ar"]["current_payer"], "settled");
    Ok(())
}

#[actix_web::test]
async fn two_instances_bill_each_line_month_once() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "twin-care").await?;
    let (peer, handle) = app.spawn_peer().await;
    // The peer connects to Redis in the background; until it has, a run there is a 503.
    let ready = eventually(Duration::from_secs(10), || async {
        match app.client.get(format!("{peer}/health/ready")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|b| b["redis"]["status"] == "up"),
            Err(_) => false,
        }
    })
    .await;
    assert!(ready, "the peer never reached Redis");
    let key = app.tenant_key("twin-care").unwrap_or_default();
    let path = format!("{}/billing/runs", w.t);
    let body = json!({"as_of": "2026-12-01"});
    let a = app
        .client
        .post(app.url(&path))
        .bearer_auth(&key)
        .json(&body)
        .send();
    let b = app
        .client
        .post(format!("{peer}{path}"))
        .bearer_auth(&key)
        .json(&body)
        .send();
    let (a, b) = futures::join!(a, b);
    let mut statuses = [a?.status().as_u16(), b?.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    assert_eq!(invoice_line_rows(&app, &w).await?, 19);
    handle.stop(true).await;

    // A fencing token older than the last one seen is refused: pretend a newer run wrote one.
    let n = tenant_sql(
        &app,
        &w,
        "update billing_fence set last_token = 1000000000 where tenant_id = $1::uuid",
        id(&w.tenant),
    )
    .await?;
    assert_eq!(n, 1);
    assert_problem(
        app.post_json(&path, &json!({"as_of": "2027-01-01"})).await,
        409,
        "billing_run_superseded",
    )
    .await;
    assert_eq!(invoice_line_rows(&app, &w).await?, 19);
    tenant_sql(
        &app,
        &w,
        "update billing_fence set last_token = 0 where tenant_id = $1::uuid",
        id(&w.tenant),
    )
    .await?;

    // Everything else bypassed: a cursor set back (as a run that lost its lock and its fence
    // would see it) still cannot bill month 1 again — invoice_line_once stops it, and the order
    // is left as it was.
    tenant_sql(
        &app,
        &w,
        "update order_line set billing_month = 0, dos_from = delivery_date where order_line_id = $1::uuid",
        id(&w.order["lines"][0]),
    )
    .await?;
    let r = run(&app, &w, "2026-12-01").await?;
    assert_eq!(
        (&r["lines_billed"], &r["invoices_created"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(invoice_line_rows(&app, &w).await?, 19);
    let order = ok(app.get(&format!("{}/orders/{}", w.t, id(&w.order))).await).await?;
    assert_eq!(order["lines"][0]["billing_month"], 0);
    Ok(())
}

#[actix_web::test]
async fn with_redis_down_no_run_starts() -> TestResult {
    let mut redis = RedisServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        redis_url: Some(redis.url()),
        ..Default::default()
    })
    .await;
    let ready = eventually(Duration::from_secs(10), || async {
        app.get("/health/ready")
            .await
            .json::<Value>()
            .await
            .is_ok_and(|b| b["redis"]["status"] == "up")
    })
    .await;
    assert!(ready);
    app.create_tenant("lockless").await;
    redis.kill();
    assert_problem(
        app.post_json(
            "/v1/tenants/lockless/billing/runs",
            &json!({"as_of": "2026-12-01"}),
        )
        .await,
        503,
        "service_unavailable",
    )
    .await;
    let runs = ok(app.get("/v1/tenants/lockless/billing/runs").await).await?;
    assert_eq!(runs["data"], json!([]));
    Ok(())
}

/// The tenant's outbox events, oldest first: (aggregate id, event type, payload).
async fn outbox_events(
    app: &TestApp,
    w: &World,
) -> Result<Vec<(String, String, Value)>, Box<dyn std::error::Error>> {
    let pool = app.shard_pool(TestApp::shard_index(&w.tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&w.tenant)).await?;
    let events = aries_tenants::outbox::list(&mut tx, TestApp::tenant_id(&w.tenant)).await?;
    Ok(events
        .into_iter()
        .map(|e| (e.aggregate_id.to_string(), e.event_type, e.payload))
        .collect())
}

#[actix_web::test]
async fn reoccurring_sale_spawns_its_next_order_once_with_exact_events() -> TestResult {
    let app = TestApp::spawn().await;
    let w = world(&app, "reorder-care").await?;
    let t = &w.t;
    let mask_item = w.order["lines"][2]["item_id"].clone();
    let sale = created(
        &app,
        &format!("{t}/orders"),
        json!({"patient_id": w.order["patient_id"], "order_date": "2026-06-01",
               "warehouse_id": w.order["warehouse_id"],
               "lines": [{"item_id": mask_item, "sale_rent_type": "reoccurring_sale",
                          "billing_frequency": "monthly"}]}),
    )
    .await?;
    let path = format!("{t}/orders/{}", id(&sale));
    ok(app
        .post_json(&format!("{path}/approve"), &json!({"as_of": "2026-06-01"}))
        .await)
    .await?;
    ok(app
        .post_json(
            &format!("{path}/deliver"),
            &json!({"delivery_date": "2026-06-15"}),
        )
        .await)
    .await?;

    // The run bills month 1 of the sale and creates the next order, dated the start of the
    // second monthly period, for the same patient and line.
    let r1 = run(&app, &w, "2026-07-01").await?;
    assert_eq!(r1["status"], "completed");
    let spawned = |orders: &Value| -> Vec<Value> {
        orders["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| {
                o["notes"]
                    .as_str()
                    .is_some_and(|n| n.contains(sale["order_number"].as_str().unwrap_or("?")))
            })
            .cloned()
            .collect()
    };
    let list_path = format!(
        "{t}/orders?patient_id={}&limit=100",
        w.order["patient_id"].as_str().unwrap_or("")
    );
    let orders = ok(app.get(&list_path).await).await?;
    let next = spawned(&orders);
    assert_eq!(next.len(), 1, "{orders}");
    let next = ok(app.get(&format!("{t}/orders/{}", id(&next[0]))).await).await?;
    assert_eq!(
        (
            &next["state"],
            &next["order_date"],
            &next["patient_id"],
            &next["warehouse_id"],
            &next["lines"][0]["item_id"],
            &next["lines"][0]["sale_rent_type"],
            &next["lines"][0]["billing_frequency"],
            &next["lines"][0]["quantity"],
            &next["lines"][0]["state"],
        ),
        (
            &json!("new"),
            &json!("2026-07-15"),
            &w.order["patient_id"],
            &w.order["warehouse_id"],
            &sale["lines"][0]["item_id"],
            &json!("reoccurring_sale"),
            &json!("monthly"),
            &sale["lines"][0]["quantity"],
            &sale["lines"][0]["state"],
        )
    );
    assert_eq!(next["lines"].as_array().map(Vec::len), Some(1));
    let sale_now = ok(app.get(&path).await).await?;
    let sale_invoices = ok(app
        .get(&format!("{t}/invoices?order_id={}", id(&sale)))
        .await)
    .await?;
    let sale_invoices = sale_invoices["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sale_invoices.len(), 1);
    assert_eq!(sale_invoices[0]["billing_month"], 1);

    // Runs again (the same day, and a month later) do not create it twice.
    let r2 = run(&app, &w, "2026-07-01").await?;
    let r3 = run(&app, &w, "2026-08-01").await?;
    let orders = ok(app.get(&list_path).await).await?;
    assert_eq!(spawned(&orders).len(), 1, "{orders}");
    let sale_invoices2 = ok(app
        .get(&format!("{t}/invoices?order_id={}", id(&sale)))
        .await)
    .await?;
    assert_eq!(sale_invoices2["data"].as_array().map(Vec::len), Some(1));

    // AR posting on the sale's line.
    let line = sale_invoices[0]["lines"][0].clone();
    let posted = ok(app
        .post_json(
            &format!("{t}/invoice-lines/{}/transactions", id(&line)),
            &json!({"kind": "payment", "amount": "10.00", "posted_on": "2026-07-20"}),
        )
        .await)
    .await?;

    // The outbox, exactly: per aggregate, in order.
    let events = outbox_events(&app, &w).await?;
    let of = |agg: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(a, _, _)| a == agg)
            .map(|(_, e, _)| e.clone())
            .collect()
    };
    let sale_state = sale_now["state"].as_str().unwrap_or("").to_owned();
    let last = if sale_state == "closed" {
        "order.closed"
    } else {
        "order.billed"
    };
    assert_eq!(
        of(id(&sale)),
        ["order.created", "order.approved", "order.delivered", last]
    );
    assert_eq!(sale_state, "closed");
    assert_eq!(of(id(&next)), ["order.created"]);
    assert_eq!(of(id(&sale_invoices[0])), ["invoice.created"]);
    let invoice_event = events
        .iter()
        .find(|(a, e, _)| *a == id(&sale_invoices[0]) && e == "invoice.created")
        .map(|(_, _, p)| p.clone())
        .unwrap_or_default();
    assert_eq!(invoice_event["total"], sale_invoices[0]["total"]);
    assert_eq!(invoice_event["order_id"], sale["id"]);
    for r in [&r1, &r2, &r3] {
        assert_eq!(of(id(r)), ["billing_run.completed"]);
    }
    let run_events: Vec<&Value> = events
        .iter()
        .filter(|(_, e, _)| e.starts_with("billing_run."))
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(run_events.len(), 3);
    assert_eq!(
        run_events
            .iter()
            .map(|p| p["invoices_created"].clone())
            .collect::<Vec<_>>(),
        [
            r1["invoices_created"].clone(),
            json!(0),
            r3["invoices_created"].clone()
        ]
    );
    let ar_events: Vec<&(String, String, Value)> = events
        .iter()
        .filter(|(_, e, _)| e.starts_with("ar_"))
        .collect();
    assert_eq!(ar_events.len(), 1);
    assert_eq!(
        (
            &ar_events[0].0,
            ar_events[0].1.as_str(),
            &ar_events[0].2["ar"]
        ),
        (
            &id(&line).to_owned(),
            "ar_transaction.posted",
            &posted["ar"]
        )
    );
    // Every invoice a run wrote has exactly one invoice.created.
    let all_invoices = ok(app.get(&format!("{t}/invoices?limit=500")).await).await?;
    let mut created_ids: Vec<String> = events
        .iter()
        .filter(|(_, e, _)| e == "invoice.created")
        .map(|(a, _, _)| a.clone())
        .collect();
    created_ids.sort();
    let mut invoice_ids: Vec<String> = all_invoices["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| id(i).to_owned())
        .collect();
    invoice_ids.sort();
    assert_eq!(created_ids, invoice_ids);
    Ok(())
}
