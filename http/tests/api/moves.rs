//! Online tenant moves between two Postgres servers (issue 8): a tenant with 100,000 rows moves
//! while a writer keeps writing through two instances; a move whose runner dies part-way is
//! resumed (or cancelled) by another instance and ends consistent; the API's refusals.

use crate::helpers::*;
use aries_tenants::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Inserts `n` prescribers for the tenant straight into its shard (fast bulk data).
pub(crate) async fn seed_prescribers(
    pool: &PgPool,
    tenant: TenantId,
    n: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into prescriber (tenant_id, prescriber_id, first_name, last_name, npi, credentials, \
         license_expires, pecos_enrolled) \
         select $1, gen_random_uuid(), 'First' || i, 'Last ' || md5(i::text), lpad(i::text, 10, '0'), \
                case when i % 3 = 0 then 'MD' end, date '2027-01-01' + (i % 400)::int, i % 2 = 0 \
         from generate_series(1::bigint, $2) i",
    )
    .bind(tenant)
    .bind(n)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A test app whose shard-1 lives on a second Postgres server (kept alive by the returned handle).
pub(crate) async fn two_servers() -> Result<(PgServer, TestApp), Box<dyn std::error::Error>> {
    let server = PgServer::start()?;
    let app = TestApp::spawn_with(AppOptions {
        shard1_server: Some(server.url()),
        ..Default::default()
    })
    .await;
    Ok((server, app))
}

/// Every tenant table of a shard (the app role's view).
async fn tenant_tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "select distinct table_name::text from information_schema.columns \
         where table_schema = 'public' and column_name = 'tenant_id' \
           and table_name not like 'aries\\_%' order by 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// `table → (rows, checksum)` of the tenant on a shard; the anchor row is left out (a move changes
/// its bookkeeping columns by design).
async fn fingerprint(
    pool: &PgPool,
    tenant: TenantId,
    only: Option<&str>,
) -> Result<BTreeMap<String, (i64, String)>, sqlx::Error> {
    let mut out = BTreeMap::new();
    for table in tenant_tables(pool).await? {
        if table == "tenant" || only.is_some_and(|o| o != table) {
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::query("select set_config('aries.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("set local timezone to 'UTC'")
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "select count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text \
             from \"{table}\" t where tenant_id = $1"
        );
        let (rows, sum): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        out.insert(table, (rows, sum));
    }
    Ok(out)
}

/// What a writer did.
#[derive(Default, Debug)]
struct WriteLog {
    /// Locations created and still expected to exist (id).
    kept: Vec<String>,
    /// Locations created, then deleted (id).
    deleted: Vec<String>,
    /// Any request that did not succeed: status and body.
    failures: Vec<String>,
    /// Requests made.
    requests: usize,
    /// The slowest request: the longest a write waited (the freeze).
    slowest: Duration,
}

/// Creates locations through `bases` in turn (and deletes every fifth one right after) until
/// `stop`; every request must succeed.
async fn writer(bases: Vec<String>, key: String, slug: String, stop: Arc<AtomicBool>) -> WriteLog {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut log = WriteLog::default();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let base = &bases[i % bases.len()];
        let code = format!("W{i}");
        let started = Instant::now();
        let res = client
            .post(format!("{base}/v1/tenants/{slug}/locations"))
            .bearer_auth(&key)
            .json(&location_body(&code))
            .send()
            .await;
        log.slowest = log.slowest.max(started.elapsed());
        log.requests += 1;
        let id = match res {
            Ok(r) if r.status() == StatusCode::CREATED => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned)),
            Ok(r) => {
                let status = r.status();
                log.failures.push(format!(
                    "POST {status}: {}",
                    r.text().await.unwrap_or_default()
                ));
                None
            }
            Err(e) => {
                log.failures.push(format!("POST: {e}"));
                None
            }
        };
        if let Some(id) = id {
            if i % 5 == 4 {
                let started = Instant::now();
                let res = client
                    .delete(format!("{base}/v1/tenants/{slug}/locations/{id}"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                log.slowest = log.slowest.max(started.elapsed());
                log.requests += 1;
                match res {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => log.deleted.push(id),
                    Ok(r) => {
                        let status = r.status();
                        log.failures.push(format!(
                            "DELETE {status}: {}",
                            r.text().await.unwrap_or_default()
                        ));
                        log.kept.push(id);
                    }
                    Err(e) => {
                        log.failures.push(format!("DELETE: {e}"));
                        log.kept.push(id);
                    }
                }
            } else {
                log.kept.push(id);
            }
        }
        i += 1;
    }
    log
}

async fn start_move(app: &TestApp, base: &str, slug: &str, to: &str) -> Value {
    let res = app
        .client
        .post(format!("{base}/v1/platform/tenants/{slug}/moves"))
        .bearer_auth(&app.token)
        .json(&json!({"to_shard": to}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("starting the move: {e}"));
    assert_eq!(
        res.status(),
        StatusCode::ACCEPTED,
        "starting a move of {slug}"
    );
    assert!(res.headers().get("location").is_some());
    res.json().await.unwrap_or_default()
}

/// Polls the move until it is in one of `states` (or `limit` passes); returns its last view.
async fn wait_move(app: &TestApp, id: &str, states: &[&str], limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let m: Value = app
            .get(&format!("/v1/platform/moves/{id}"))
            .await
            .json()
            .await
            .unwrap_or_default();
        let state = m["state"].as_str().unwrap_or("");
        if states.contains(&state) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Location ids of the tenant on a shard.
async fn location_ids(pool: &PgPool, tenant: TenantId) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(uuid::Uuid,)> =
        sqlx::query_as("select location_id from location where tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|(id,)| id.to_string()).collect())
}

/// The tenant's anchor row on a shard: `(epoch, serving)`.
async fn anchor(pool: &PgPool, tenant: TenantId) -> Result<Option<(i64, bool)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query_as("select epoch, serving from tenant where tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// After a move from `from` to `to`: the source holds nothing of the tenant but its tombstone,
/// the target holds every acknowledged write exactly once and none of the deleted ones, the
/// move's verification matched on every table, and the tenant's audit chain still verifies.
async fn assert_moved(
    app: &TestApp,
    slug: &str,
    tenant: TenantId,
    from: usize,
    to: usize,
    m: &Value,
    log: &WriteLog,
) -> TestResult {
    assert_eq!(m["state"], "done", "the move ended {m}");
    let checks = m["verification"].as_array().ok_or("no verification")?;
    assert!(
        checks.len() > 20,
        "every tenant table is verified: {checks:?}"
    );
    for c in checks {
        assert_eq!(c["source_rows"], c["target_rows"], "{c}");
        assert_eq!(c["source_checksum"], c["target_checksum"], "{c}");
    }
    let (src, dst) = (app.shard_pool(from), app.shard_pool(to));
    for (table, (rows, _)) in fingerprint(&src, tenant, None).await? {
        assert_eq!(rows, 0, "the source still holds rows of {table}");
    }
    assert_eq!(
        anchor(&src, tenant).await?.map(|a| a.1),
        Some(false),
        "the source keeps a tombstone that does not serve"
    );
    let (epoch, serving) = anchor(&dst, tenant)
        .await?
        .ok_or("no anchor on the target")?;
    assert!(serving);
    assert_eq!(epoch, m["from_epoch"].as_i64().unwrap_or(0) + 1);
    let on_target = location_ids(&dst, tenant).await?;
    let mut sorted = on_target.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), on_target.len(), "no location twice");
    for id in &log.kept {
        assert!(
            on_target.contains(id),
            "acknowledged location {id} is missing"
        );
    }
    for id in &log.deleted {
        assert!(!on_target.contains(id), "deleted location {id} came back");
    }
    let tenant_view: Value = app
        .get(&format!("/v1/platform/tenants/{slug}"))
        .await
        .json()
        .await?;
    assert_eq!(tenant_view["shard"], format!("shard-{to}"));
    let verify: Value = app
        .get(&format!("/v1/tenants/{slug}/audit/verify"))
        .await
        .json()
        .await?;
    assert_eq!(
        verify["intact"], true,
        "the audit chain survives the move: {verify}"
    );
    Ok(())
}

#[actix_web::test]
async fn a_tenant_with_100k_rows_moves_while_written_to_through_two_instances() -> TestResult {
    let (_server, app) = two_servers().await?;
    // A second instance that never refreshes profiles on its own: it can only learn of the move
    // from the source shard's fence.
    let (peer, _peer_handle) = app
        .spawn_peer_with(|s| s.tenants.profile_refresh_ms = 3_600_000)
        .await;
    let tenant = app.create_tenant("big-move").await;
    let id = TestApp::tenant_id(&tenant);
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    seed_prescribers(&app.shard_pool(from), id, 100_000).await?;
    let seeded = fingerprint(&app.shard_pool(from), id, Some("prescriber")).await?;
    assert_eq!(seeded["prescriber"].0, 100_000);
    let key = app.tenant_key("big-move").unwrap_or_default();
    // Both instances serve the tenant before the move (their actors hold the old placement).
    for base in [&app.base, &peer] {
        let res = app
            .client
            .get(format!("{base}/v1/tenants/big-move/prescribers?limit=5"))
            .bearer_auth(&key)
            .send()
            .await?;
        assert_eq!(res.status(), StatusCode::OK);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writing = actix_rt::spawn(writer(
        vec![app.base.clone(), peer.clone()],
        key.clone(),
        "big-move".into(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let m = start_move(&app, &app.base, "big-move", &format!("shard-{to}")).await;
    assert_eq!(m["state"], "pending");
    let move_id = m["id"].as_str().unwrap_or("").to_owned();
    let m = wait_move(
        &app,
        &move_id,
        &["done", "rolled_back"],
        Duration::from_secs(240),
    )
    .await;
    let took = started.elapsed();
    // The writer goes on a little on the new shard, through both instances.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let log = writing.await?;
    eprintln!(
        "moved 100,000 rows in {took:?}; freeze {} ms; {} writes, the slowest {:?}; {} changes replayed in {} rounds",
        m["pause_ms"], log.requests, log.slowest, m["changes_applied"], m["catch_up_rounds"]
    );
    assert!(log.failures.is_empty(), "failed writes: {:?}", log.failures);
    assert!(
        log.requests > 20,
        "the writer kept writing ({})",
        log.requests
    );
    assert!(
        m["changes_applied"].as_i64().unwrap_or(0) > 0,
        "writes made during the move were replayed: {m}"
    );
    assert!(
        m["pause_ms"].as_i64().is_some(),
        "the freeze is recorded: {m}"
    );
    assert_eq!(m["rows_total"].as_i64(), m["rows_copied"].as_i64());
    assert!(m["rows_total"].as_i64().unwrap_or(0) >= 100_000);
    assert_moved(&app, "big-move", id, from, to, &m, &log).await?;
    // The seeded rows arrived unchanged.
    assert_eq!(
        fingerprint(&app.shard_pool(to), id, Some("prescriber")).await?,
        seeded
    );
    // The peer's actor (old placement, no refresh) routes to the new shard at once: its writes
    // land there.
    let res = app
        .client
        .post(format!("{peer}/v1/tenants/big-move/locations"))
        .bearer_auth(&key)
        .json(&location_body("AFTER"))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::CREATED);
    let after: Value = res.json().await?;
    let after = after["id"].as_str().unwrap_or("").to_owned();
    assert!(
        location_ids(&app.shard_pool(to), id)
            .await?
            .contains(&after)
    );
    assert!(
        !location_ids(&app.shard_pool(from), id)
            .await?
            .contains(&after)
    );
    // The move is in the tenant's list and the operator's trail.
    let list: Value = app
        .get("/v1/platform/tenants/big-move/moves")
        .await
        .json()
        .await?;
    assert_eq!(list["data"][0]["id"], move_id.as_str());
    let trail: Value = app
        .get("/v1/platform/audit?action=tenant.moved")
        .await
        .json()
        .await?;
    assert!(trail.to_string().contains(&move_id), "{trail}");
    Ok(())
}

/// A runner stops dead after `stop` (as a killed instance would: no clean-up, its lease left to
/// expire); another instance resumes the move, which ends consistent, and writes made meanwhile
/// all succeed.
async fn killed_and_resumed(app: &TestApp, slug: &str, stop_at: &'static str) -> TestResult {
    let tenant = app.create_tenant(slug).await;
    let id = TestApp::tenant_id(&tenant);
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    seed_prescribers(&app.shard_pool(from), id, 2_000).await?;
    let seeded = fingerprint(&app.shard_pool(from), id, Some("prescriber")).await?;
    let (crashing, crashing_handle) = app
        .spawn_peer_with(|s| s.moves.stop_after = Some(stop_at.into()))
        .await;
    let key = app.tenant_key(slug).unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = actix_rt::spawn(writer(
        vec![app.base.clone()],
        key,
        slug.into(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = start_move(app, &crashing, slug, &format!("shard-{to}")).await;
    let move_id = m["id"].as_str().unwrap_or("").to_owned();
    let m = wait_move(app, &move_id, &[stop_at], Duration::from_secs(60)).await;
    assert_eq!(m["state"], stop_at, "{m}");
    // The instance that ran it goes away.
    crashing_handle.stop(false).await;
    // Another instance resumes it once the dead runner's lease has expired.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app
            .req(
                Method::POST,
                &format!("/v1/platform/moves/{move_id}/resume"),
            )
            .send()
            .await?;
        match res.status() {
            StatusCode::ACCEPTED => break,
            StatusCode::CONFLICT if Instant::now() < deadline => {
                let p: Value = res.json().await?;
                assert_eq!(p["code"], "move_in_progress", "{p}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return Err(format!("resume answered {other}: {}", res.text().await?).into()),
        }
    }
    let m = wait_move(
        app,
        &move_id,
        &["done", "rolled_back"],
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let log = writing.await?;
    assert!(
        log.failures.is_empty(),
        "{stop_at}: failed writes: {:?}",
        log.failures
    );
    assert_moved(app, slug, id, from, to, &m, &log).await?;
    assert_eq!(
        fingerprint(&app.shard_pool(to), id, Some("prescriber")).await?,
        seeded
    );
    Ok(())
}

#[actix_web::test]
async fn a_move_killed_half_way_is_resumed_by_another_instance_and_ends_consistent() -> TestResult {
    let (_server, app) = two_servers().await?;
    killed_and_resumed(&app, "crash-copy", "copying").await?;
    killed_and_resumed(&app, "crash-frozen", "frozen").await?;
    killed_and_resumed(&app, "crash-flipped", "flipped").await?;
    Ok(())
}

#[actix_web::test]
async fn a_move_killed_while_frozen_can_be_cancelled_and_the_tenant_serves_again() -> TestResult {
    let (_server, app) = two_servers().await?;
    let tenant = app.create_tenant("cancelled").await;
    let id = TestApp::tenant_id(&tenant);
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    seed_prescribers(&app.shard_pool(from), id, 1_000).await?;
    let before = fingerprint(&app.shard_pool(from), id, None).await?;
    let (crashing, crashing_handle) = app
        .spawn_peer_with(|s| s.moves.stop_after = Some("frozen".into()))
        .await;
    let m = start_move(&app, &crashing, "cancelled", &format!("shard-{to}")).await;
    let move_id = m["id"].as_str().unwrap_or("").to_owned();
    let m = wait_move(&app, &move_id, &["frozen"], Duration::from_secs(60)).await;
    assert_eq!(m["state"], "frozen");
    crashing_handle.stop(false).await;
    // While frozen, a write waits in the tenant's actor; the cancel (once the dead runner's lease
    // expired) unfreezes the source, and the waiting write completes there.
    let key = app.tenant_key("cancelled").unwrap_or_default();
    let base = app.base.clone();
    let waiting = actix_rt::spawn(async move {
        reqwest::Client::new()
            .post(format!("{base}/v1/tenants/cancelled/locations"))
            .bearer_auth(key)
            .json(&location_body("WAITED"))
            .send()
            .await
            .map(|r| r.status())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let cancelled: Value = loop {
        let res = app
            .req(
                Method::POST,
                &format!("/v1/platform/moves/{move_id}/cancel"),
            )
            .send()
            .await?;
        match res.status() {
            StatusCode::OK => break res.json().await?,
            StatusCode::CONFLICT if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return Err(format!("cancel answered {other}: {}", res.text().await?).into()),
        }
    };
    assert_eq!(cancelled["state"], "rolled_back", "{cancelled}");
    assert_eq!(waiting.await??, StatusCode::CREATED);
    // The source serves as before; the target holds nothing of the tenant.
    let (src, dst) = (app.shard_pool(from), app.shard_pool(to));
    assert_eq!(anchor(&src, id).await?, Some((1, true)));
    assert_eq!(anchor(&dst, id).await?, None);
    for (table, (rows, _)) in fingerprint(&dst, id, None).await? {
        assert_eq!(rows, 0, "the target still holds rows of {table}");
    }
    let after = fingerprint(&src, id, None).await?;
    assert_eq!(after["prescriber"], before["prescriber"]);
    assert_eq!(after["location"].0, before["location"].0 + 1);
    let tenant_view: Value = app
        .get("/v1/platform/tenants/cancelled")
        .await
        .json()
        .await?;
    assert_eq!(tenant_view["shard"], format!("shard-{from}"));
    // Cancelling again is harmless; resuming a finished move is refused.
    let res = app
        .req(
            Method::POST,
            &format!("/v1/platform/moves/{move_id}/cancel"),
        )
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(
        app.req(
            Method::POST,
            &format!("/v1/platform/moves/{move_id}/resume"),
        )
        .send()
        .await?,
        409,
        "move_not_allowed",
    )
    .await;
    Ok(())
}

#[actix_web::test]
async fn moves_that_make_no_sense_are_refused_with_their_codes() -> TestResult {
    let app = TestApp::spawn().await;
    let tenant = app.create_tenant("stay-put").await;
    let here = format!("shard-{}", TestApp::shard_index(&tenant));
    let there = format!("shard-{}", 1 - TestApp::shard_index(&tenant));
    let path = "/v1/platform/tenants/stay-put/moves";
    assert_problem(
        app.post_json(path, &json!({"to_shard": here})).await,
        409,
        "move_not_allowed",
    )
    .await;
    let p = assert_problem(
        app.post_json(path, &json!({"to_shard": "shard-9"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        field_errors(&p),
        field_pairs(&[("to_shard", "unknown_shard")])
    );
    assert_problem(
        app.post_json(path, &json!({"to_shard": ""})).await,
        422,
        "validation_failed",
    )
    .await;
    let p = assert_problem(
        app.post_json(path, &json!({"shard": there})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(field_errors(&p), field_pairs(&[("shard", "unknown_field")]));
    assert_problem(
        app.post_json(
            "/v1/platform/tenants/nobody-here/moves",
            &json!({"to_shard": there}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/platform/moves/not-a-uuid").await,
        422,
        "invalid_id",
    )
    .await;
    assert_problem(
        app.get(&format!("/v1/platform/moves/{}", uuid::Uuid::now_v7()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/platform/moves?state=bogus").await,
        422,
        "invalid_query",
    )
    .await;
    // A tenant's requests need the operator: a tenant key cannot move it.
    let key = app.tenant_key("stay-put").unwrap_or_default();
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&json!({"to_shard": there}))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // One unfinished move per tenant.
    let m = start_move(&app, &app.base, "stay-put", &there).await;
    let second = app.post_json(path, &json!({"to_shard": there})).await;
    if second.status() != StatusCode::CONFLICT {
        // The first move may have finished already (a tiny tenant moves fast): then the tenant
        // is on `there`, and moving it there again makes no sense.
        assert_problem(second, 409, "move_not_allowed").await;
    } else {
        let p: Value = second.json().await?;
        assert!(
            p["code"] == "move_in_progress" || p["code"] == "move_not_allowed",
            "{p}"
        );
    }
    let done = wait_move(
        &app,
        m["id"].as_str().unwrap_or(""),
        &["done"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["state"], "done");
    Ok(())
}

#[actix_web::test]
async fn a_move_whose_runner_died_while_frozen_is_finished_by_another_instance_unasked()
-> TestResult {
    let (_server, app) = two_servers().await?;
    // An instance that resumes orphaned moves on its own, every 300 ms.
    let (watcher, _watcher_handle) = app
        .spawn_peer_with(|s| s.moves.resume_orphans_ms = 300)
        .await;
    let tenant = app.create_tenant("orphan").await;
    let id = TestApp::tenant_id(&tenant);
    let from = TestApp::shard_index(&tenant);
    let to = 1 - from;
    seed_prescribers(&app.shard_pool(from), id, 1_000).await?;
    let (crashing, crashing_handle) = app
        .spawn_peer_with(|s| s.moves.stop_after = Some("frozen".into()))
        .await;
    let m = start_move(&app, &crashing, "orphan", &format!("shard-{to}")).await;
    let move_id = m["id"].as_str().unwrap_or("").to_owned();
    let m = wait_move(
        &app,
        &move_id,
        &["frozen", "flipped", "done"],
        Duration::from_secs(60),
    )
    .await;
    assert_ne!(m["state"], "pending", "{m}");
    crashing_handle.stop(false).await;
    // A write arriving while the tenant is frozen and nobody runs the move waits, then completes
    // on the new shard once the watcher has finished the move.
    let res = app
        .client
        .post(format!("{watcher}/v1/tenants/orphan/locations"))
        .bearer_auth(app.tenant_key("orphan").unwrap_or_default())
        .json(&location_body("PATIENT"))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::CREATED);
    let m = wait_move(
        &app,
        &move_id,
        &["done", "rolled_back"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(m["state"], "done", "{m}");
    assert!(
        m["runner"].as_str().is_some(),
        "the move records who finished it: {m}"
    );
    let created: Value = res.json().await?;
    let created = created["id"].as_str().unwrap_or("").to_owned();
    assert!(
        location_ids(&app.shard_pool(to), id)
            .await?
            .contains(&created)
    );
    Ok(())
}
