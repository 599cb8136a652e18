//! The SODA service end to end: a local HTTP server that speaks Socrata's SODA 2.x (`$select`,
//! `$where`, `$order`, `$limit`/`$offset`, `X-App-Token`, string-valued JSON, `{"code","message"}`
//! errors) and the CMS data API (`size`/`offset`/`filter[...]`), `aries reference sync` run as the
//! real binary against it, the catalog it fills, and the tenant read API over the result.

use crate::helpers::*;
use actix_web::{HttpRequest, HttpResponse, web};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

type Row = BTreeMap<String, String>;
/// A request the mock saw: path, decoded query pairs, `X-App-Token`.
type Seen = (String, HashMap<String, String>, Option<String>);

const TOKEN: &str = "soda-test-token";

/// What the mock serves and what it saw.
#[derive(Default)]
struct MockState {
    /// Socrata datasets by 4x4, rows in `:id` order.
    socrata: Mutex<HashMap<String, Vec<Row>>>,
    /// CMS datasets by UUID.
    cms: Mutex<HashMap<String, Vec<Row>>>,
    /// (dataset, offset) → how many more times that page answers 503.
    failures: Mutex<HashMap<(String, u64), u32>>,
    /// Every request: (path, decoded query pairs, X-App-Token).
    log: Mutex<Vec<Seen>>,
}

impl MockState {
    fn fail(&self, dataset: &str, offset: u64, times: u32) {
        if let Ok(mut f) = self.failures.lock() {
            f.insert((dataset.to_owned(), offset), times);
        }
    }

    fn should_fail(&self, dataset: &str, offset: u64) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return false;
        };
        match f.get_mut(&(dataset.to_owned(), offset)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn soda_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"code": code, "error": true, "message": message}))
}

/// One `column op 'literal'` of the SoQL subset the mock understands.
type Condition = (String, String, String);

/// Parses `a = 'x' AND b >= 'y'` (optionally parenthesised parts); `None` when it is not that.
fn parse_where(soql: &str) -> Option<Vec<Condition>> {
    let mut out = Vec::new();
    for part in soql.split(" AND ") {
        let mut p = part.trim();
        while p.starts_with('(') && p.ends_with(')') {
            p = p[1..p.len() - 1].trim();
        }
        let op = ["!=", ">=", "<=", "=", ">", "<"]
            .into_iter()
            .find(|op| p.contains(op))?;
        let (col, lit) = p.split_once(op)?;
        let lit = lit.trim();
        if !(lit.len() >= 2 && lit.starts_with('\'') && lit.ends_with('\'')) {
            return None;
        }
        let value = lit[1..lit.len() - 1].replace("''", "'");
        out.push((col.trim().to_owned(), op.to_owned(), value));
    }
    Some(out)
}

fn matches(row: &Row, conditions: &[Condition]) -> bool {
    conditions.iter().all(|(col, op, v)| {
        let cell = row.get(col).map(String::as_str).unwrap_or("");
        match op.as_str() {
            "=" => cell == v,
            "!=" => cell != v,
            ">=" => cell >= v.as_str(),
            "<=" => cell <= v.as_str(),
            ">" => cell > v.as_str(),
            _ => cell < v.as_str(),
        }
    })
}

fn query_pairs(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

async fn soda(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let q = query_pairs(&req);
    let token = req
        .headers()
        .get("X-App-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Ok(mut log) = state.log.lock() {
        log.push((req.path().to_owned(), q.clone(), token.clone()));
    }
    match token.as_deref() {
        None => {
            return soda_error(
                403,
                "permission_denied",
                "An app token is required for this dataset",
            );
        }
        Some(TOKEN) => {}
        Some(_) => return soda_error(403, "invalid_app_token", "Invalid app_token specified"),
    }
    let file = req.match_info().get("file").unwrap_or_default();
    let Some(dataset) = file.strip_suffix(".json") else {
        return soda_error(404, "not_found", "Not found");
    };
    let Some(rows) = state
        .socrata
        .lock()
        .ok()
        .and_then(|d| d.get(dataset).cloned())
    else {
        return soda_error(404, "not_found", &format!("Dataset {dataset} not found"));
    };
    let num = |k: &str, default: u64| -> Option<u64> {
        q.get(k).map_or(Some(default), |v| v.parse().ok())
    };
    let (Some(limit), Some(offset)) = (num("$limit", 1000), num("$offset", 0)) else {
        return soda_error(
            400,
            "query.soql.type-mismatch",
            "$limit and $offset must be numbers",
        );
    };
    let conditions = match q.get("$where").map(|w| parse_where(w)) {
        None => Vec::new(),
        Some(Some(c)) => c,
        Some(None) => {
            return soda_error(
                400,
                "query.compiler.malformed",
                "Could not parse SoQL query",
            );
        }
    };
    let mut selected: Vec<(usize, Row)> = rows
        .into_iter()
        .enumerate()
        .filter(|(_, r)| matches(r, &conditions))
        .collect();
    match q.get("$order").map(String::as_str) {
        Some(":id") | None => {}
        Some(col) => selected.sort_by(|a, b| a.1.get(col).cmp(&b.1.get(col))),
    }
    if state.should_fail(dataset, offset) {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "0"))
            .body("upstream temporarily unavailable");
    }
    let columns: Option<Vec<String>> = q
        .get("$select")
        .map(|s| s.split(',').map(|c| c.trim().to_owned()).collect());
    let page: Vec<Value> = selected
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(_, r)| match &columns {
            Some(cols) => json!(
                r.iter()
                    .filter(|(k, _)| cols.contains(k))
                    .collect::<BTreeMap<_, _>>()
            ),
            None => json!(r),
        })
        .collect();
    HttpResponse::Ok().json(page)
}

async fn cms(req: HttpRequest, state: web::Data<MockState>) -> HttpResponse {
    let q = query_pairs(&req);
    if let Ok(mut log) = state.log.lock() {
        log.push((req.path().to_owned(), q.clone(), None));
    }
    let dataset = req.match_info().get("uuid").unwrap_or_default().to_owned();
    let Some(rows) = state.cms.lock().ok().and_then(|d| d.get(&dataset).cloned()) else {
        return HttpResponse::NotFound().json(json!({"message": "dataset not found"}));
    };
    let mut filters = Vec::new();
    for (k, v) in &q {
        if let Some(col) = k.strip_prefix("filter[").and_then(|c| c.strip_suffix(']')) {
            filters.push((col.to_owned(), "=".to_owned(), v.clone()));
        } else if k != "size" && k != "offset" {
            return HttpResponse::BadRequest()
                .json(json!({"message": format!("unknown parameter {k}")}));
        }
    }
    let size: usize = q.get("size").and_then(|s| s.parse().ok()).unwrap_or(1000);
    let offset: usize = q.get("offset").and_then(|s| s.parse().ok()).unwrap_or(0);
    if state.should_fail(&dataset, offset as u64) {
        return HttpResponse::ServiceUnavailable().body("busy");
    }
    let page: Vec<&Row> = rows
        .iter()
        .filter(|r| matches(r, &filters))
        .skip(offset)
        .take(size)
        .collect();
    HttpResponse::Ok().json(page)
}

/// Starts the mock on 127.0.0.1 on a thread of its own (the test thread blocks on the CLI).
fn start_mock() -> (String, Arc<MockState>) {
    let state = Arc::new(MockState::default());
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("binding the mock: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let data = web::Data::from(state.clone());
    std::thread::spawn(move || {
        let sys = actix_rt::System::new();
        sys.block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(data.clone())
                    .route("/resource/{file}", web::get().to(soda))
                    .route("/data-api/v1/dataset/{uuid}/data", web::get().to(cms))
            })
            .workers(1)
            .listen(listener);
            match server {
                Ok(s) => {
                    let _ = s.run().await;
                }
                Err(e) => panic!("mock server: {e}"),
            }
        });
    });
    (format!("http://127.0.0.1:{port}"), state)
}

fn row(pairs: &[(&str, &str)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// 2,345 HCPCS rows in SODA's string-valued shape; four are malformed (records 101, 1000, 1501
/// and 2301), the rest have distinct codes.
fn hcpcs_dataset() -> Vec<Row> {
    (0..2345)
        .map(|i| {
            let letter = ["A", "E", "K", "L"][i % 4];
            let code = if i == 0 {
                "E0601".to_owned()
            } else {
                format!("{letter}{}", 1000 + i / 4)
            };
            let mut r = row(&[
                ("hcpcs", &code),
                ("short_description", &format!("Item {i}")),
                ("long_description", &format!("Long description of item {i}")),
                ("effective_date", "2026-01-01T00:00:00.000"),
                ("action_cd", "N"),
            ]);
            if i == 0 {
                r.insert("short_description".into(), "Cpap device".into());
                r.insert(
                    "long_description".into(),
                    "Continuous positive airway pressure (CPAP) device".into(),
                );
                r.insert("termination_date".into(), "2027-12-31T00:00:00.000".into());
            }
            match i {
                100 => {
                    r.insert("hcpcs".into(), "W0100".into());
                }
                999 => {
                    r.insert("hcpcs".into(), "E12".into());
                }
                1500 => {
                    r.insert("effective_date".into(), "2026-02-30".into());
                }
                2300 => {
                    r.remove("short_description");
                }
                _ => {}
            }
            r
        })
        .collect()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let r: Result<(i64,), _> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(app.app_state.directory.catalog().pool())
        .await;
    match r {
        Ok((n,)) => n,
        Err(e) => panic!("{sql}: {e}"),
    }
}

const FAST_RETRIES: (&str, &str) = ("ARIES__REFERENCE__RETRY_BASE_MS", "5");

fn sync_hcpcs_args<'a>(base: &'a str, dataset: &'a str) -> Vec<&'a str> {
    vec![
        "reference",
        "sync",
        "hcpcs",
        "--source",
        "socrata",
        "--base-url",
        base,
        "--dataset",
        dataset,
        "--app-token-env",
        "SODA_TOKEN",
        "--page-size",
        "500",
    ]
}

#[actix_web::test]
async fn a_socrata_sync_fills_the_catalog_once_retries_a_503_and_a_rerun_changes_nothing()
-> TestResult {
    let app = TestApp::spawn().await;
    let (base, mock) = start_mock();
    if let Ok(mut d) = mock.socrata.lock() {
        d.insert("hcpc-2026".into(), hcpcs_dataset());
    }
    // The third page fails once with 503.
    mock.fail("hcpc-2026", 1000, 1);

    let out = app.cli_env(
        &sync_hcpcs_args(&base, "hcpc-2026"),
        &[("SODA_TOKEN", TOKEN), FAST_RETRIES],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("succeeded: fetched 2345, upserted 2341, rejected 4, pages 5"),
        "{text}"
    );
    for reason in [
        "rejected record 101: bad HCPCS: `W0100` is not a HCPCS Level II code",
        "rejected record 1000: bad HCPCS: `E12` is not",
        "rejected record 1501: A1375: bad date `2026-02-30`",
        "rejected record 2301: A1575: no short description in `short_description`",
    ] {
        assert!(text.contains(reason), "missing `{reason}` in {text}");
    }
    // Every valid row once.
    assert_eq!(count(&app, "select count(*) from hcpcs_code").await, 2341);
    assert_eq!(
        count(&app, "select count(distinct code) from hcpcs_code").await,
        2341
    );
    let (short, long, eff, term, source, dataset): (
        String,
        Option<String>,
        Option<chrono::NaiveDate>,
        Option<chrono::NaiveDate>,
        String,
        String,
    ) = sqlx::query_as(
        "select short_description, long_description, effective_date, termination_date, source, dataset \
         from hcpcs_code where code = 'E0601'",
    )
    .fetch_one(app.app_state.directory.catalog().pool())
    .await?;
    assert_eq!(
        (
            short.as_str(),
            long.as_deref(),
            source.as_str(),
            dataset.as_str()
        ),
        (
            "Cpap device",
            Some("Continuous positive airway pressure (CPAP) device"),
            "socrata",
            "hcpc-2026"
        )
    );
    assert_eq!(eff, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
    assert_eq!(term, chrono::NaiveDate::from_ymd_opt(2027, 12, 31));

    // What went over the wire: SoQL paging with a stable order and the token, the failed page twice.
    let reqs = mock.requests();
    let offsets: Vec<&str> = reqs
        .iter()
        .map(|(_, q, _)| q.get("$offset").map(String::as_str).unwrap_or("?"))
        .collect();
    assert_eq!(offsets, vec!["0", "500", "1000", "1000", "1500", "2000"]);
    for (path, q, token) in &reqs {
        assert_eq!(path, "/resource/hcpc-2026.json");
        assert_eq!(q.get("$order").map(String::as_str), Some(":id"));
        assert_eq!(q.get("$limit").map(String::as_str), Some("500"));
        assert_eq!(
            q.get("$select").map(String::as_str),
            Some("hcpcs,short_description,long_description,effective_date,termination_date")
        );
        assert_eq!(token.as_deref(), Some(TOKEN));
    }

    // A rerun fetches everything again and writes nothing.
    let out = app.cli_env(
        &sync_hcpcs_args(&base, "hcpc-2026"),
        &[("SODA_TOKEN", TOKEN), FAST_RETRIES],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fetched 2345, upserted 0, rejected 4, pages 5"),
        "{}",
        stdout(&out)
    );
    // One changed row upstream is exactly one upsert.
    if let Ok(mut d) = mock.socrata.lock()
        && let Some(rows) = d.get_mut("hcpc-2026")
    {
        rows[1].insert("short_description".into(), "Renamed".into());
    }
    let out = app.cli_env(
        &sync_hcpcs_args(&base, "hcpc-2026"),
        &[("SODA_TOKEN", TOKEN), FAST_RETRIES],
    );
    assert!(
        stdout(&out).contains("fetched 2345, upserted 1, rejected 4"),
        "{}",
        stdout(&out)
    );
    assert_eq!(count(&app, "select count(*) from hcpcs_code").await, 2341);

    // The runs are recorded, with a sample of rejections.
    assert_eq!(
        count(
            &app,
            "select count(*) from reference_sync where status = 'succeeded' and rows_fetched = 2345 and rows_rejected = 4"
        )
        .await,
        3
    );
    let (upserted, sample): (Vec<i64>, Value) = (
        sqlx::query_as::<_, (i64,)>("select rows_upserted from reference_sync order by started_at")
            .fetch_all(app.app_state.directory.catalog().pool())
            .await?
            .into_iter()
            .map(|r| r.0)
            .collect(),
        sqlx::query_as::<_, (Value,)>(
            "select rejections from reference_sync order by started_at limit 1",
        )
        .fetch_one(app.app_state.directory.catalog().pool())
        .await?
        .0,
    );
    assert_eq!(upserted, vec![2341, 0, 1]);
    assert_eq!(sample.as_array().map(Vec::len), Some(4));
    assert_eq!(sample[0]["record"], 101);
    let status = app.cli(&["reference", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let lines: Vec<String> = stdout(&status).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[3].contains("hcpcs") && lines[3].contains("succeeded") && lines[3].contains("2341"),
        "{lines:?}"
    );
    // The application role only reads the reference tables.
    let denied = sqlx::query("delete from hcpcs_code")
        .execute(app.app_state.directory.catalog().pool())
        .await;
    assert!(
        denied.is_err(),
        "the app role must not write reference data"
    );
    Ok(())
}

#[actix_web::test]
async fn a_bad_token_or_a_dead_source_fails_clearly_and_is_recorded() -> TestResult {
    let app = TestApp::spawn().await;
    let (base, mock) = start_mock();
    if let Ok(mut d) = mock.socrata.lock() {
        d.insert("hcpc-2026".into(), hcpcs_dataset());
    }
    let out = app.cli_env(
        &sync_hcpcs_args(&base, "hcpc-2026"),
        &[("SODA_TOKEN", "wrong-token"), FAST_RETRIES],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("socrata answered 403 invalid_app_token: Invalid app_token specified (check the app token"),
        "{err}"
    );
    assert!(!err.contains("wrong-token"), "the token leaked: {err}");
    // Without any token: the server's own words.
    let mut args = sync_hcpcs_args(&base, "hcpc-2026");
    args.truncate(args.len() - 4);
    let out = app.cli_env(&args, &[FAST_RETRIES]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("403 permission_denied: An app token is required"),
        "{}",
        stderr(&out)
    );
    // A token variable that is not set is refused before anything is sent.
    let before = mock.requests().len();
    let out = app.cli_env(&sync_hcpcs_args(&base, "hcpc-2026"), &[FAST_RETRIES]);
    assert!(
        stderr(&out).contains("the environment variable SODA_TOKEN is not set"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mock.requests().len(), before);
    // A source that keeps failing: bounded retries, then a failed run.
    mock.fail("hcpc-2026", 0, 100);
    let before = mock.requests().len();
    let out = app.cli_env(
        &sync_hcpcs_args(&base, "hcpc-2026"),
        &[
            ("SODA_TOKEN", TOKEN),
            FAST_RETRIES,
            ("ARIES__REFERENCE__MAX_RETRIES", "2"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "socrata still failing after 3 attempts: 503 http_503: upstream temporarily unavailable"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(mock.requests().len() - before, 3);

    // Requests that cannot work are refused before a run is opened or anything is sent.
    let before = mock.requests().len();
    for (args, says) in [
        (
            vec![
                "--source",
                "cms",
                "--dataset",
                CMS_HCPCS,
                "--where",
                "a = 'b'",
            ],
            "the CMS data API takes no SoQL",
        ),
        (
            vec!["--source", "socrata", "--dataset", "NOT-A-4X4"],
            "is not a Socrata dataset id",
        ),
        (
            vec![
                "--source",
                "cms",
                "--dataset",
                CMS_HCPCS,
                "--page-size",
                "5001",
            ],
            "the page size must be 1 to 5000",
        ),
    ] {
        let mut all = vec!["reference", "sync", "hcpcs", "--base-url", &base];
        all.extend(args);
        let out = app.cli_env(&all, &[FAST_RETRIES]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert_eq!(mock.requests().len(), before);

    assert_eq!(count(&app, "select count(*) from hcpcs_code").await, 0);
    let runs: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "select status, error, rows_fetched from reference_sync order by started_at",
    )
    .fetch_all(app.app_state.directory.catalog().pool())
    .await?;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|(s, _, n)| s == "failed" && *n == 0));
    assert!(
        runs[0]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("invalid_app_token")),
        "{runs:?}"
    );
    let status = stdout(&app.cli(&["reference", "status"]));
    assert!(
        status.contains("failed") && status.contains("invalid_app_token"),
        "{status}"
    );
    Ok(())
}

/// The long (Socrata) fee shape: 30 codes × RR/NU × TX/FL × rural/non-rural for 2025 Q1, plus a
/// TX row with a bad amount and a row with a bad state.
fn long_fee_dataset() -> Vec<Row> {
    let mut rows = Vec::new();
    for i in 0..30 {
        let code = format!("E{}", 2000 + i);
        for m in ["RR", "NU"] {
            for st in ["TX", "FL"] {
                for rural in ["N", "Y"] {
                    let cents = 10_000 + i * 100 + if rural == "Y" { 7 } else { 0 };
                    rows.push(row(&[
                        ("year", "2025"),
                        ("quarter", "1"),
                        ("hcpcs", &code),
                        ("mod", m),
                        ("state", st),
                        ("rural", rural),
                        ("fee", &format!("{}.{:02}", cents / 100, cents % 100)),
                        ("catg", "cr"),
                    ]));
                }
            }
        }
    }
    rows.push(row(&[
        ("year", "2025"),
        ("quarter", "1"),
        ("hcpcs", "E0100"),
        ("mod", "RR"),
        ("state", "TX"),
        ("rural", "N"),
        ("fee", "12.3.4"),
    ]));
    rows.push(row(&[
        ("year", "2025"),
        ("quarter", "1"),
        ("hcpcs", "E0100"),
        ("state", "Texas"),
        ("rural", "N"),
        ("fee", "1.00"),
    ]));
    rows
}

/// The wide (CMS DMEPOS) shape: DOMAIN.md §5's fixture rows, 196 generated rows (half with
/// JURIS L), and a row with a CPT code.
fn wide_fee_dataset() -> Vec<Row> {
    let fixture = |h: &str, m: &str, cat: &str, tx: (&str, &str), fl_r: &str, desc: &str| {
        row(&[
            ("HCPCS", h),
            ("Mod", m),
            ("Mod2", ""),
            ("JURIS", "D"),
            ("CATG", cat),
            ("Ceiling", "0.00"),
            ("Floor", "0.00"),
            ("TX (NR)", tx.0),
            ("TX (R)", tx.1),
            ("FL (NR)", ""),
            ("FL (R)", fl_r),
            ("Description", desc),
        ])
    };
    let mut rows = vec![
        fixture("E0601", "RR", "CR", ("80.10", "84.30"), "", "CPAP device"),
        fixture("E0601", "NU", "CR", ("801.00", "843.00"), "", "CPAP device"),
        fixture(
            "E0260",
            "RR",
            "CR",
            ("125.40", "131.00"),
            "n/a",
            "Hospital bed, semi-electric",
        ),
        fixture(
            "E1390",
            "",
            "OX",
            ("150.20", "158.00"),
            "",
            "Oxygen concentrator",
        ),
        fixture(
            "K0001",
            "UE",
            "CR",
            ("450.00", "470.00"),
            "",
            "Standard wheelchair",
        ),
    ];
    for i in 0..196 {
        rows.push(row(&[
            ("HCPCS", &format!("L{}", 3000 + i)),
            ("Mod", ""),
            ("Mod2", ""),
            ("JURIS", if i % 2 == 0 { "D" } else { "L" }),
            ("CATG", "PO"),
            ("TX (NR)", "10.00"),
            ("TX (R)", "11.00"),
            ("FL (NR)", "12.00"),
            ("FL (R)", "13.00"),
        ]));
    }
    rows.push(row(&[
        ("HCPCS", "99213"),
        ("JURIS", "D"),
        ("TX (NR)", "1.00"),
    ]));
    rows
}

const CMS_FEES: &str = "6a0b3c1e-2d4f-4e5a-9b8c-7d6e5f4a3b21";
const CMS_HCPCS: &str = "0f1e2d3c-4b5a-4697-8877-665544332211";

#[actix_web::test]
async fn fee_schedules_sync_from_both_shapes_and_read_back() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("feeread").await;
    let (base, mock) = start_mock();
    if let Ok(mut d) = mock.socrata.lock() {
        d.insert("fees-2025".into(), long_fee_dataset());
    }
    if let Ok(mut d) = mock.cms.lock() {
        d.insert(CMS_FEES.into(), wide_fee_dataset());
    }
    // Socrata, long shape, only Texas through $where: 120 good rows and the bad amount.
    let out = app.cli_env(
        &[
            "reference",
            "sync",
            "fee-schedule",
            "--source",
            "socrata",
            "--base-url",
            &base,
            "--dataset",
            "fees-2025",
            "--where",
            "state = 'TX'",
            "--app-token-env",
            "SODA_TOKEN",
            "--page-size",
            "50",
        ],
        &[("SODA_TOKEN", TOKEN), FAST_RETRIES],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fetched 121, upserted 120, rejected 1, pages 3"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("E0100: bad amount `12.3.4`"),
        "{}",
        stdout(&out)
    );
    let wheres: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|(_, q, _)| q.get("$where").cloned())
        .collect();
    assert_eq!(wheres, vec!["state = 'TX'"; 3]);

    // CMS, wide shape, JURIS=D only, 2026 Q1.
    let out = app.cli_env(
        &[
            "reference",
            "sync",
            "fee-schedule",
            "--source",
            "cms",
            "--base-url",
            &base,
            "--dataset",
            CMS_FEES,
            "--filter",
            "JURIS=D",
            "--year",
            "2026",
            "--quarter",
            "1",
            "--page-size",
            "40",
        ],
        &[FAST_RETRIES],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fetched 104, upserted 402, rejected 2, pages 3"),
        "{}",
        stdout(&out)
    );
    let cms_reqs: Vec<HashMap<String, String>> = mock
        .requests()
        .into_iter()
        .filter(|(p, _, _)| p.starts_with("/data-api/"))
        .map(|(_, q, _)| q)
        .collect();
    assert_eq!(cms_reqs.len(), 3);
    assert_eq!(
        cms_reqs
            .iter()
            .map(|q| (
                q.get("size").cloned().unwrap_or_default(),
                q.get("offset").cloned().unwrap_or_default(),
                q.get("filter[JURIS]").cloned().unwrap_or_default()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("40".into(), "0".into(), "D".into()),
            ("40".into(), "40".into(), "D".into()),
            ("40".into(), "80".into(), "D".into())
        ]
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from fee_schedule_entry where year = 2025"
        )
        .await,
        120
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from fee_schedule_entry where year = 2026"
        )
        .await,
        402
    );
    // Rerunning the wide sync writes nothing.
    let out = app.cli_env(
        &[
            "reference",
            "sync",
            "fee-schedule",
            "--source",
            "cms",
            "--base-url",
            &base,
            "--dataset",
            CMS_FEES,
            "--filter",
            "JURIS=D",
            "--year",
            "2026",
            "--quarter",
            "1",
            "--page-size",
            "40",
        ],
        &[FAST_RETRIES],
    );
    assert!(
        stdout(&out).contains("fetched 104, upserted 0, rejected 2"),
        "{}",
        stdout(&out)
    );

    // The read API.
    let list = |q: &str| format!("/v1/tenants/feeread/reference/fee-schedule?{q}");
    let body: Value = app
        .get(&list("hcpcs=E0601&state=TX&year=2026"))
        .await
        .json()
        .await?;
    let got: Vec<(Value, Value, Value)> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["modifier"].clone(),
                e["rural"].clone(),
                e["amount"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("NU"), json!(false), json!("801.00")),
            (json!("RR"), json!(false), json!("80.10")),
            (json!("NU"), json!(true), json!("843.00")),
            (json!("RR"), json!(true), json!("84.30")),
        ]
    );
    assert!(body.get("next_cursor").is_none(), "{body}");
    let e = &body["data"][0];
    assert_eq!(
        (
            &e["year"],
            &e["quarter"],
            &e["hcpcs"],
            &e["state"],
            &e["category"],
            &e["source"]
        ),
        (
            &json!(2026),
            &json!(1),
            &json!("E0601"),
            &json!("TX"),
            &json!("CR"),
            &json!("cms")
        )
    );
    // The blank-modifier oxygen row (no `modifier` member), and the used-equipment rural fee.
    let body: Value = app
        .get(&list("hcpcs=e1390&state=tx&rural=false&modifier="))
        .await
        .json()
        .await?;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(body["data"][0].get("modifier").is_none(), "{body}");
    assert_eq!(body["data"][0]["amount"], "150.20");
    assert_eq!(body["data"][0]["category"], "OX");
    let body: Value = app
        .get(&list("hcpcs=K0001&modifier=UE&rural=true"))
        .await
        .json()
        .await?;
    assert_eq!(body["data"][0]["amount"], "470.00", "{body}");
    // Paging through Texas 2025: every row once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "year=2025&state=TX&limit=50".to_owned();
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let body: Value = app.get(&list(&q)).await.json().await?;
        for e in body["data"].as_array().into_iter().flatten() {
            seen.push(format!(
                "{}/{}/{}/{}",
                e["hcpcs"].as_str().unwrap_or(""),
                e["rural"],
                e["modifier"].as_str().unwrap_or(""),
                e["amount"].as_str().unwrap_or("")
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 120);
    assert_eq!(seen[0], "E2000/false/NU/100.00");
    assert_eq!(seen[3], "E2000/true/RR/100.07");
    // Bad filters are 422 naming the parameter.
    for (q, field) in [
        ("state=Texas", "state"),
        ("hcpcs=99213", "hcpcs"),
        ("year=1999", "year"),
        ("quarter=5", "quarter"),
        ("rural=maybe", "rural"),
        ("modifier=RRR", "modifier"),
        ("cursor=garbage", "cursor"),
        ("limit=0", "limit"),
    ] {
        let body = assert_problem(app.get(&list(q)).await, 422, "invalid_query").await;
        assert_eq!(body["errors"][0]["field"], field, "{q}: {body}");
    }
    assert_problem(app.get(&list("bogus=1")).await, 422, "invalid_query").await;
    Ok(())
}

#[actix_web::test]
async fn tenants_read_hcpcs_with_any_role_and_only_with_their_credential() -> TestResult {
    let app = TestApp::spawn().await;
    app.create_tenant("refread").await;
    app.create_tenant("other").await;
    let (base, mock) = start_mock();
    let mut rows: Vec<Row> = (0..29)
        .map(|i| {
            row(&[
                ("HCPCS_Cd", &format!("A{}", 4200 + i)),
                ("HCPCS_Short_Desc", &format!("Supply {i}")),
                ("HCPCS_Efctv_Dt", "20250101"),
            ])
        })
        .collect();
    rows.insert(
        5,
        row(&[
            ("HCPCS_Cd", "E0601"),
            ("HCPCS_Short_Desc", "Cpap device"),
            (
                "HCPCS_Long_Desc",
                "Continuous positive airway pressure (CPAP) device",
            ),
            ("HCPCS_Efctv_Dt", "01/01/2026"),
        ]),
    );
    if let Ok(mut d) = mock.cms.lock() {
        d.insert(CMS_HCPCS.into(), rows);
    }
    let out = app.cli_env(
        &[
            "reference",
            "sync",
            "hcpcs",
            "--source",
            "cms",
            "--base-url",
            &base,
            "--dataset",
            CMS_HCPCS,
            "--page-size",
            "7",
        ],
        &[FAST_RETRIES],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fetched 30, upserted 30, rejected 0, pages 5"),
        "{}",
        stdout(&out)
    );

    let res = app.get("/v1/tenants/refread/reference/hcpcs/e0601").await;
    assert_eq!(res.status(), 200);
    let mut body: Value = res.json().await?;
    assert!(body["synced_at"].is_string(), "{body}");
    if let Some(o) = body.as_object_mut() {
        o.remove("synced_at");
    }
    assert_eq!(
        body,
        json!({
            "code": "E0601",
            "short_description": "Cpap device",
            "long_description": "Continuous positive airway pressure (CPAP) device",
            "effective_date": "2026-01-01",
            "source": "cms",
            "dataset": CMS_HCPCS,
        })
    );
    assert_problem(
        app.get("/v1/tenants/refread/reference/hcpcs/E9999").await,
        404,
        "not_found",
    )
    .await;
    let bad = assert_problem(
        app.get("/v1/tenants/refread/reference/hcpcs/99213").await,
        422,
        "invalid_id",
    )
    .await;
    assert_eq!(bad["errors"][0]["field"], "code");

    // No credential, a forged key of this tenant: 401. Another tenant's key: 404.
    let url = app.url("/v1/tenants/refread/reference/hcpcs/E0601");
    assert_problem(app.client.get(&url).send().await?, 401, "unauthenticated").await;
    assert_problem(
        app.client
            .get(&url)
            .bearer_auth("ak_refread.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .send()
            .await?,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        app.client
            .get(&url)
            .bearer_auth(app.tenant_key("other").unwrap_or_default())
            .send()
            .await?,
        404,
        "not_found",
    )
    .await;
    // Any role reads, even a custom one that holds nothing but locations:view.
    let role = app
        .post_json(
            "/v1/tenants/refread/roles",
            &json!({"name": "clerk", "permissions": ["locations:view"]}),
        )
        .await;
    assert_eq!(role.status(), 201);
    let key: Value = app
        .post_json(
            "/v1/tenants/refread/api-keys",
            &json!({"name": "clerk", "roles": ["clerk"]}),
        )
        .await
        .json()
        .await?;
    let clerk = key["secret"].as_str().unwrap_or_default().to_owned();
    let res = app.client.get(&url).bearer_auth(&clerk).send().await?;
    assert_eq!(res.status(), 200);

    // Search and paging.
    let body: Value = app
        .get("/v1/tenants/refread/reference/hcpcs?q=cpap")
        .await
        .json()
        .await?;
    let codes: Vec<&str> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["E0601"]);
    let mut all = Vec::new();
    let mut path = "/v1/tenants/refread/reference/hcpcs?limit=8".to_owned();
    loop {
        let res = app.req(Method::GET, &path).send().await?;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await?;
        all.extend(
            body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["code"].as_str().map(str::to_owned)),
        );
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/tenants/refread/reference/hcpcs?limit=8&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 30);
    assert_eq!(all.first().map(String::as_str), Some("A4200"));
    assert_eq!(all.last().map(String::as_str), Some("E0601"));
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    Ok(())
}
