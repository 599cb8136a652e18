//! Patients and their ranked policies over HTTP: create with addresses, diagnoses and policies,
//! search, idempotent create, conditional updates, insert-at-rank, re-rank, removal, the limits
//! (4 policies, active payers), validation of every identifier, tenant isolation, audit and outbox.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

const T: &str = "/v1/tenants/clinic";

async fn created(res: reqwest::Response) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(status, 201, "{body}");
    body
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

async fn payer(app: &TestApp, name: &str, active: bool) -> String {
    let body = json!({"name": name, "payer_type": "commercial", "active": active});
    id(&created(app.post_json(&format!("{T}/payers"), &body).await).await)
}

/// (payer id, rank) of each policy of a `{data: [...]}` answer, in order.
fn order(list: &Value) -> Vec<(String, i64)> {
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["payer_id"].as_str().unwrap_or_default().to_owned(),
                p["rank"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["first_name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_web::test]
async fn patients_create_search_update_and_isolation() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("clinic").await;
    app.create_tenant("other").await;
    let loc = id(&app.create_location("clinic", "MAIN").await);
    let doc = id(&created(
        app.post_json(
            &format!("{T}/prescribers"),
            &json!({"first_name": "Ann", "last_name": "Cho", "npi": "1234567893"}),
        )
        .await,
    )
    .await);
    let medicare = payer(&app, "Medicare", true).await;
    let blue = payer(&app, "Blue Plan", true).await;

    let body = json!({
        "first_name": "Ann", "last_name": "Lee", "date_of_birth": "1950-03-04", "gender": "female",
        "phone": "512-555-0100", "email": "ann@example.com",
        "address": {"line1": "1 Main St", "city": "Austin", "state": "tx", "postal_code": "787011234"},
        "bill_to": {"name": "Jo Lee", "line1": "9 Elm St", "city": "Dallas", "state": "TX", "postal_code": "75201"},
        "ship_to": {"line1": "2 Oak Ave", "line2": "Apt 3", "city": "Austin", "state": "TX", "postal_code": "78702"},
        "delivery_directions": "ring twice", "location_id": loc, "primary_prescriber_id": doc,
        "diagnosis_codes": ["g47.33", "J44.9"], "signature_on_file": true,
        "policies": [
            {"payer_id": medicare, "policy_number": "1EG4-TE5-MK72", "payment_percent": "80"},
            {"payer_id": blue, "policy_number": "B-77", "relationship": "spouse", "insured_first_name": "Jo",
             "insured_last_name": "Lee", "insured_date_of_birth": "1948-05-06"}
        ]
    });
    let res = app
        .req(Method::POST, &format!("{T}/patients"))
        .header("idempotency-key", "pat-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(res.headers()["etag"], "\"1\"");
    let location = res.headers()["location"].to_str()?.to_owned();
    let ann = created(res).await;
    let ann_id = id(&ann);
    assert_eq!(location, format!("{T}/patients/{ann_id}"));
    assert_eq!(ann["account_number"], "P000001");
    assert_eq!(ann["diagnosis_codes"], json!(["G47.33", "J44.9"]));
    assert_eq!(
        ann["address"],
        json!({"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701-1234"})
    );
    assert_eq!(ann["bill_to"]["name"], "Jo Lee");
    assert_eq!(ann["ship_to"]["line2"], "Apt 3");
    assert_eq!(ann["location_id"], loc.as_str());
    assert_eq!(ann["primary_prescriber_id"], doc.as_str());
    assert_eq!(
        (ann["active"].as_bool(), ann["hardship"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        order(&json!({"data": ann["policies"]})),
        [(medicare.clone(), 1), (blue.clone(), 2)]
    );
    assert_eq!(ann["policies"][0]["payment_percent"], "80.00");
    assert_eq!(ann["policies"][1]["insured_date_of_birth"], "1948-05-06");

    // Idempotent create: same key and body → the first answer; another body → 422.
    let again = app
        .req(Method::POST, &format!("{T}/patients"))
        .header("idempotency-key", "pat-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(created(again).await["id"], ann["id"]);
    let mut other_body = body.clone();
    other_body["first_name"] = json!("Anne");
    assert_problem(
        app.req(Method::POST, &format!("{T}/patients"))
            .header("idempotency-key", "pat-1")
            .json(&other_body)
            .send()
            .await?,
        422,
        "idempotency_key_reused",
    )
    .await;

    let bob = created(app.post_json(&format!("{T}/patients"), &json!({"first_name": "Bob", "last_name": "Leeds", "date_of_birth": "1950-03-04", "account_number": "acc-7"})).await).await;
    assert_eq!(bob["account_number"], "ACC-7");
    assert_eq!(bob["gender"], "unknown");
    assert_eq!(bob["diagnosis_codes"], json!([]));
    assert_problem(
        app.post_json(&format!("{T}/patients"), &json!({"first_name": "B", "last_name": "B", "date_of_birth": "1950-03-04", "account_number": "ACC-7"})).await,
        409,
        "account_number_taken",
    )
    .await;
    let cara = created(
        app.post_json(
            &format!("{T}/patients"),
            &json!({"first_name": "Cara", "last_name": "Smith", "date_of_birth": "1960-01-01"}),
        )
        .await,
    )
    .await;
    // The refused create above did not consume a number: the counter moved with its transaction.
    assert_eq!(cara["account_number"], "P000002");
    let dan = created(app.post_json(&format!("{T}/patients"), &json!({"first_name": "Dan", "last_name": "Ollee", "date_of_birth": "1950-03-04", "inactive_date": "2020-01-01"})).await).await;
    assert_eq!(
        (dan["account_number"].as_str(), dan["active"].as_bool()),
        (Some("P000003"), Some(false))
    );
    assert!(
        dan.get("policies").is_some(),
        "create answers with policies"
    );

    // Search: name substring (either name, any case), account number, birth date, active, pages.
    let get = |q: String| {
        let app = &app;
        async move {
            app.get(&format!("{T}/patients?{q}"))
                .await
                .json::<Value>()
                .await
        }
    };
    assert_eq!(names(&get("q=LEE".into()).await?), ["Ann", "Bob", "Dan"]);
    assert_eq!(names(&get("q=smi".into()).await?), ["Cara"]);
    assert_eq!(
        names(&get("q=lee&active=true".into()).await?),
        ["Ann", "Bob"]
    );
    assert_eq!(names(&get("active=false".into()).await?), ["Dan"]);
    assert_eq!(names(&get("account_number=acc-7".into()).await?), ["Bob"]);
    assert_eq!(names(&get("account_number=P000001".into()).await?), ["Ann"]);
    assert_eq!(
        names(&get("date_of_birth=1960-01-01".into()).await?),
        ["Cara"]
    );
    assert_eq!(
        names(&get("date_of_birth=1950-03-04&q=leeds".into()).await?),
        ["Bob"]
    );
    assert_eq!(
        names(&get("date_of_birth=1950-03-04&account_number=P000002".into()).await?),
        Vec::<String>::new()
    );
    assert_eq!(names(&get("q=%25".into()).await?), Vec::<String>::new());
    let bad = app.get(&format!("{T}/patients?q=a%00b")).await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "invalid_query").await),
        field_pairs(&[("q", "invalid_value")])
    );
    let page1 = get("date_of_birth=1950-03-04&limit=2".into()).await?;
    assert_eq!(names(&page1), ["Ann", "Bob"]);
    assert!(
        page1["data"][0].get("policies").is_none(),
        "lists carry no policies"
    );
    let cursor = page1["next_cursor"].as_str().unwrap_or_default().to_owned();
    let page2 = get(format!("date_of_birth=1950-03-04&limit=2&cursor={cursor}")).await?;
    assert_eq!(names(&page2), ["Dan"]);
    assert!(page2.get("next_cursor").is_none());
    let bad = app
        .get(&format!("{T}/patients?date_of_birth=1950-13-01"))
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "invalid_query").await),
        field_pairs(&[("date_of_birth", "invalid_date")])
    );

    // Get with policies; conditional merge patch.
    let path = format!("{T}/patients/{ann_id}");
    let got: Value = app.get(&path).await.json().await?;
    assert_eq!(got["policies"].as_array().map(Vec::len), Some(2));
    assert_problem(
        app.req(Method::PATCH, &path)
            .header("if-match", "\"9\"")
            .json(&json!({"phone": "512-555-0199"}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::PATCH, &path)
        .header("if-match", "\"1\"")
        .json(&json!({"phone": "512-555-0199", "ship_to": {"city": "Round Rock", "line2": null}, "hardship": true}))
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let patched: Value = res.json().await?;
    assert_eq!(
        patched["ship_to"],
        json!({"line1": "2 Oak Ave", "city": "Round Rock", "state": "TX", "postal_code": "78702"})
    );
    assert_eq!(
        (patched["phone"].as_str(), patched["hardship"].as_bool()),
        (Some("512-555-0199"), Some(true))
    );
    assert_eq!(patched["policies"].as_array().map(Vec::len), Some(2));
    // The same patch again changes nothing (no new version).
    let res = app
        .req(Method::PATCH, &path)
        .json(&json!({"hardship": true}))
        .send()
        .await?;
    assert_eq!(res.headers()["etag"], "\"2\"");
    let bad = app
        .req(Method::PATCH, &path)
        .json(&json!({"policies": [], "diagnosis_codes": ["G47.33", "g47.33"], "account_number": null}))
        .send()
        .await?;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[
            ("policies", "not_patchable"),
            ("account_number", "required"),
            ("diagnosis_codes[1]", "duplicate")
        ])
    );
    assert_problem(
        app.req(Method::PATCH, &path)
            .json(&json!({"account_number": "ACC-7"}))
            .send()
            .await?,
        409,
        "account_number_taken",
    )
    .await;

    // Unknown ids in a body: 422 naming the field (`unknown_id`); unknown patient in a URL: 404.
    let nobody = uuid::Uuid::now_v7().to_string();
    let bad = app
        .req(Method::PATCH, &path)
        .json(&json!({"location_id": nobody}))
        .send()
        .await?;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("location_id", "unknown_id")])
    );
    for field in ["primary_prescriber_id", "secondary_prescriber_id"] {
        let bad = app
            .post_json(&format!("{T}/patients"), &json!({"first_name": "X", "last_name": "Y", "date_of_birth": "1970-01-01", field: nobody}))
            .await;
        assert_eq!(
            field_errors(&assert_problem(bad, 422, "validation_failed").await),
            field_pairs(&[(field, "unknown_id")])
        );
    }
    assert_problem(
        app.get(&format!("{T}/patients/{nobody}")).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{T}/patients/{nobody}/policies")).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("{T}/patients/P000001")).await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!("{T}/patients?colour=red")).await,
        422,
        "invalid_query",
    )
    .await;

    // Every malformed identifier at once, each named.
    let bad = app
        .post_json(
            &format!("{T}/patients"),
            &json!({
                "first_name": "X", "last_name": "Y", "date_of_birth": "1950-02-30", "phone": "call me",
                "email": "x@y", "account_number": "P 1",
                "address": {"line1": "1 A St", "city": "Austin", "state": "XX", "postal_code": "7870"},
                "ship_to": {"line1": "1 A St", "city": "Austin", "state": "TX", "postal_code": "78701-12"},
                "location_id": "nope", "primary_prescriber_id": "0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4",
                "diagnosis_codes": ["J44.9", "447.33"],
                "policies": [{"payer_id": "bad", "policy_number": "1", "payment_percent": "100.5"}]
            }),
        )
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[
            ("account_number", "invalid_format"),
            ("date_of_birth", "invalid_date"),
            ("phone", "invalid_format"),
            ("email", "invalid_email"),
            ("address.state", "invalid_state"),
            ("address.postal_code", "invalid_format"),
            ("ship_to.postal_code", "invalid_format"),
            ("location_id", "invalid_uuid"),
            ("primary_prescriber_id", "invalid_uuid"),
            ("diagnosis_codes[1]", "invalid_icd10"),
            ("policies[0].payer_id", "invalid_uuid"),
            ("policies[0].payment_percent", "out_of_range"),
        ])
    );
    for (dob, code) in [
        ("2999-01-01", "out_of_range"),
        ("1899-12-31", "out_of_range"),
        ("04/03/1950", "invalid_date"),
    ] {
        let bad = app
            .post_json(
                &format!("{T}/patients"),
                &json!({"first_name": "X", "last_name": "Y", "date_of_birth": dob}),
            )
            .await;
        assert_eq!(
            field_errors(&assert_problem(bad, 422, "validation_failed").await),
            field_pairs(&[("date_of_birth", code)])
        );
    }
    let bad = app
        .post_json(&format!("{T}/patients"), &json!({"first_name": "X", "last_name": "Y", "date_of_birth": "1970-01-01", "policies": [{"payer_id": nobody, "policy_number": "1"}]}))
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("policies[0].payer_id", "unknown_id")])
    );
    // Nothing of the refused creates was kept.
    assert_eq!(names(&get("q=x".into()).await?), Vec::<String>::new());

    // Another tenant sees none of it, even with the right ids.
    assert_problem(
        app.get(&format!("/v1/tenants/other/patients/{ann_id}"))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/tenants/other/patients/{ann_id}/policies"))
            .await,
        404,
        "not_found",
    )
    .await;
    let policy = ann["policies"][0]["id"].as_str().unwrap_or_default();
    assert_problem(
        app.req(
            Method::DELETE,
            &format!("/v1/tenants/other/patients/{ann_id}/policies/{policy}"),
        )
        .send()
        .await?,
        404,
        "not_found",
    )
    .await;
    let theirs: Value = app.get("/v1/tenants/other/patients").await.json().await?;
    assert_eq!(theirs["data"], json!([]));
    // …and a patient created there gets that tenant's first number.
    let theirs = created(
        app.post_json(
            "/v1/tenants/other/patients",
            &json!({"first_name": "Zed", "last_name": "Q", "date_of_birth": "1970-01-01"}),
        )
        .await,
    )
    .await;
    assert_eq!(theirs["account_number"], "P000001");

    // Deleting a branch detaches its patients (the patient keeps its version).
    let res = app
        .req(Method::DELETE, &format!("{T}/locations/{loc}"))
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    let detached: Value = app.get(&path).await.json().await?;
    assert!(detached.get("location_id").is_none(), "{detached}");
    assert_eq!(detached["primary_prescriber_id"], doc.as_str());

    let audit: Value = app
        .get(&format!("{T}/audit?target_type=patient&target_id={ann_id}"))
        .await
        .json()
        .await?;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["patient.created", "patient.updated"]);
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let mut tx = aries_shards::begin_tenant_tx(&pool, TestApp::tenant_id(&tenant)).await?;
    let events = aries_tenants::outbox::list(&mut tx, TestApp::tenant_id(&tenant)).await?;
    let ann_events: Vec<&str> = events
        .iter()
        .filter(|e| e.aggregate_id.to_string() == ann_id)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(ann_events, ["patient.created", "patient.updated"]);
    let created_event = events
        .iter()
        .find(|e| e.event_type == "patient.created")
        .map(|e| e.payload.clone())
        .unwrap_or_default();
    assert_eq!(created_event["policies"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[actix_web::test]
async fn policies_are_ranked_one_to_four() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("clinic").await;
    let [medicare, blue, aetna, cigna, humana] = [
        payer(&app, "Medicare", true).await,
        payer(&app, "Blue Plan", true).await,
        payer(&app, "Aetna", true).await,
        payer(&app, "Cigna", true).await,
        payer(&app, "Humana", true).await,
    ];
    let retired = payer(&app, "Retired Plan", false).await;
    let ann = id(&created(
        app.post_json(
            &format!("{T}/patients"),
            &json!({"first_name": "Ann", "last_name": "Lee", "date_of_birth": "1950-03-04"}),
        )
        .await,
    )
    .await);
    let cara = id(&created(
        app.post_json(
            &format!("{T}/patients"),
            &json!({"first_name": "Cara", "last_name": "Smith", "date_of_birth": "1960-01-01"}),
        )
        .await,
    )
    .await);
    let policies = format!("{T}/patients/{ann}/policies");
    let add = |body: Value| {
        let app = &app;
        let policies = policies.clone();
        async move { app.post_json(&policies, &body).await }
    };

    // Next free rank when none is given.
    let res = app
        .req(Method::POST, &policies)
        .header("idempotency-key", "pol-1")
        .json(&json!({"payer_id": medicare, "policy_number": "M-1"}))
        .send()
        .await?;
    let location = res.headers()["location"].to_str()?.to_owned();
    let m = created(res).await;
    assert_eq!(location, format!("{policies}/{}", id(&m)));
    assert_eq!(
        (
            m["rank"].as_i64(),
            m["relationship"].as_str(),
            m["active"].as_bool()
        ),
        (Some(1), Some("self"), Some(true))
    );
    let replay = app
        .req(Method::POST, &policies)
        .header("idempotency-key", "pol-1")
        .json(&json!({"payer_id": medicare, "policy_number": "M-1"}))
        .send()
        .await?;
    assert_eq!(created(replay).await["id"], m["id"]);
    let b = created(
        add(json!({"payer_id": blue, "policy_number": "B-1", "payment_percent": "20.5"})).await,
    )
    .await;
    assert_eq!(
        (b["rank"].as_i64(), b["payment_percent"].as_str()),
        (Some(2), Some("20.50"))
    );
    // Insert at rank 1: the others shift down (and get new versions).
    let a = created(add(json!({"payer_id": aetna, "policy_number": "A-1", "rank": 1})).await).await;
    assert_eq!(a["rank"], 1);
    let list: Value = app.get(&policies).await.json().await?;
    assert_eq!(
        order(&list),
        [(aetna.clone(), 1), (medicare.clone(), 2), (blue.clone(), 3)]
    );
    assert_eq!(list["data"][1]["version"], 2);
    let c = created(add(json!({"payer_id": cigna, "policy_number": "C-1", "rank": 3})).await).await;
    assert_eq!(c["rank"], 3);
    let list: Value = app.get(&policies).await.json().await?;
    assert_eq!(
        order(&list),
        [
            (aetna.clone(), 1),
            (medicare.clone(), 2),
            (cigna.clone(), 3),
            (blue.clone(), 4)
        ]
    );
    // A fifth is refused, whatever its rank.
    assert_problem(
        add(json!({"payer_id": humana, "policy_number": "H-1"})).await,
        409,
        "too_many_policies",
    )
    .await;
    assert_problem(
        add(json!({"payer_id": humana, "policy_number": "H-1", "rank": 2})).await,
        409,
        "too_many_policies",
    )
    .await;

    // Cara: a rank beyond the next free one, an inactive payer, an unknown payer.
    let cara_policies = format!("{T}/patients/{cara}/policies");
    let bad = app
        .post_json(
            &cara_policies,
            &json!({"payer_id": humana, "policy_number": "H-1", "rank": 2}),
        )
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("rank", "out_of_range")])
    );
    assert_problem(
        app.post_json(
            &cara_policies,
            &json!({"payer_id": retired, "policy_number": "R-1"}),
        )
        .await,
        409,
        "payer_inactive",
    )
    .await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let bad = app
        .post_json(
            &cara_policies,
            &json!({"payer_id": nobody, "policy_number": "R-1"}),
        )
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("payer_id", "unknown_id")])
    );
    let bad = app
        .post_json(
            &cara_policies,
            &json!({"payer_id": humana, "policy_number": "H-1", "relationship": "child"}),
        )
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[
            ("insured_first_name", "required"),
            ("insured_last_name", "required"),
            ("insured_date_of_birth", "required")
        ])
    );
    let cara_h = created(
        app.post_json(
            &cara_policies,
            &json!({"payer_id": humana, "policy_number": "H-1"}),
        )
        .await,
    )
    .await;
    assert_problem(
        app.post_json(
            &format!("{T}/patients/{nobody}/policies"),
            &json!({"payer_id": humana, "policy_number": "H-1"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Re-rank: a complete new order.
    let rank_url = format!("{policies}/rank");
    let new_order = json!({"policy_ids": [id(&b), id(&c), id(&a), id(&m)]});
    let res = app.post_json(&rank_url, &new_order).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await?;
    assert_eq!(
        order(&list),
        [
            (blue.clone(), 1),
            (cigna.clone(), 2),
            (aetna.clone(), 3),
            (medicare.clone(), 4)
        ]
    );
    let stored: Value = app.get(&policies).await.json().await?;
    assert_eq!(order(&stored), order(&list));
    // Anything but a permutation of the patient's policies.
    for ids in [
        json!([id(&b), id(&c), id(&a)]),
        json!([id(&b), id(&c), id(&a), id(&a)]),
        json!([id(&b), id(&c), id(&a), id(&m), id(&cara_h)]),
        json!([id(&b), id(&c), id(&a), id(&cara_h)]),
    ] {
        let bad = app.post_json(&rank_url, &json!({"policy_ids": ids})).await;
        assert_eq!(
            field_errors(&assert_problem(bad, 422, "validation_failed").await),
            field_pairs(&[("policy_ids", "not_a_permutation")])
        );
    }
    let bad = app
        .post_json(&rank_url, &json!({"policy_ids": ["nope"]}))
        .await;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("policy_ids[0]", "invalid_uuid")])
    );
    let unchanged: Value = app.get(&policies).await.json().await?;
    assert_eq!(order(&unchanged), order(&list));

    // Patch a policy: conditional; the rank is not patchable; a new payer must be active.
    let m_url = format!("{policies}/{}", id(&m));
    let current: Value = app.get(&m_url).await.json().await?;
    let v = current["version"].as_i64().unwrap_or_default();
    assert_eq!(current["rank"], 4);
    assert_problem(
        app.req(Method::PATCH, &m_url)
            .header("if-match", format!("\"{}\"", v - 1))
            .json(&json!({"group_number": "G1"}))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let bad = app
        .req(Method::PATCH, &m_url)
        .json(&json!({"rank": 1}))
        .send()
        .await?;
    assert_eq!(
        field_errors(&assert_problem(bad, 422, "validation_failed").await),
        field_pairs(&[("rank", "not_patchable")])
    );
    assert_problem(
        app.req(Method::PATCH, &m_url)
            .json(&json!({"payer_id": retired}))
            .send()
            .await?,
        409,
        "payer_inactive",
    )
    .await;
    let res = app
        .req(Method::PATCH, &m_url)
        .header("if-match", format!("\"{v}\""))
        .json(&json!({"group_number": "G1", "payment_percent": "90.5", "inactive_date": "2020-01-01"}))
        .send()
        .await?;
    assert_eq!(res.headers()["etag"].to_str()?, format!("\"{}\"", v + 1));
    let pm: Value = res.json().await?;
    assert_eq!(
        (
            pm["group_number"].as_str(),
            pm["payment_percent"].as_str(),
            pm["active"].as_bool()
        ),
        (Some("G1"), Some("90.50"), Some(false))
    );

    // Remove: conditional; the ranks below close up.
    let c_url = format!("{policies}/{}", id(&c));
    let cv = app.get(&c_url).await.json::<Value>().await?["version"]
        .as_i64()
        .unwrap_or_default();
    assert_problem(
        app.req(Method::DELETE, &c_url)
            .header("if-match", format!("\"{}\"", cv + 1))
            .send()
            .await?,
        412,
        "version_mismatch",
    )
    .await;
    let res = app
        .req(Method::DELETE, &c_url)
        .header("if-match", format!("\"{cv}\""))
        .send()
        .await?;
    assert_eq!(res.status(), 204);
    assert_problem(app.get(&c_url).await, 404, "not_found").await;
    let list: Value = app.get(&policies).await.json().await?;
    assert_eq!(
        order(&list),
        [(blue.clone(), 1), (aetna.clone(), 2), (medicare.clone(), 3)]
    );
    // A policy is reached only through its own patient.
    assert_problem(
        app.get(&format!("{cara_policies}/{}", id(&a))).await,
        404,
        "not_found",
    )
    .await;

    // What the order code will call: the active policies in rank order.
    let pool = app.shard_pool(TestApp::shard_index(&tenant));
    let tid = TestApp::tenant_id(&tenant);
    let mut tx = aries_shards::begin_tenant_tx(&pool, tid).await?;
    let ann_id: aries_tenants::ids::PatientId = ann.parse()?;
    let in_force = aries_tenants::patients::policies_by_rank(&mut tx, tid, ann_id).await?;
    let payers: Vec<(String, i16)> = in_force
        .iter()
        .map(|p| (p.payer_id.to_string(), p.rank))
        .collect();
    assert_eq!(payers, [(blue.clone(), 1), (aetna.clone(), 2)]);
    let on = chrono::NaiveDate::from_ymd_opt(2019, 6, 1).unwrap_or_default();
    let then = aries_tenants::patients::policies_in_force_on(&mut tx, tid, ann_id, on).await?;
    assert_eq!(then.len(), 3);

    let audit: Value = app
        .get(&format!("{T}/audit?target_type=patient&target_id={ann}"))
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
            "patient.created",
            "patient.policy_added",
            "patient.policy_added",
            "patient.policy_added",
            "patient.policy_added",
            "patient.policies_reranked",
            "patient.policy_updated",
            "patient.policy_removed"
        ]
    );
    let events = aries_tenants::outbox::list(&mut tx, tid).await?;
    let types: Vec<&str> = events
        .iter()
        .filter(|e| e.aggregate_id.to_string() == ann)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, actions);
    let removed = events
        .iter()
        .find(|e| e.event_type == "patient.policy_removed")
        .map(|e| e.payload.clone())
        .unwrap_or_default();
    assert_eq!(removed["id"], c["id"]);
    Ok(())
}
