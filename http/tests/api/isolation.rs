//! Row-level security: the policy bites for the role the application uses, a query without a
//! tenant filter still sees one tenant, and the tenant setting never survives its transaction.

use crate::helpers::*;
use aries_shards::begin_tenant_tx;
use aries_shards::connect::{Role, options};
use aries_tenants::TenantId;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Row};

/// Two tenants on the same shard (placement alternates, so create until two share one).
async fn two_tenants_on_one_shard(app: &TestApp) -> (usize, TenantId, TenantId) {
    let mut by_shard: [Vec<TenantId>; 2] = [Vec::new(), Vec::new()];
    for i in 0..4 {
        let slug = format!("rls-{i}");
        let t = app.create_tenant(&slug).await;
        app.create_location(&slug, "MAIN").await;
        app.create_location(&slug, &format!("X{i}")).await;
        by_shard[TestApp::shard_index(&t)].push(TestApp::tenant_id(&t));
    }
    (0, by_shard[0][0], by_shard[0][1])
}

#[actix_web::test]
async fn the_app_role_is_bound_by_the_policy() -> TestResult {
    let app = TestApp::spawn().await;
    let (shard, a, b) = two_tenants_on_one_shard(&app).await;
    let pool = app.shard_pool(shard);

    let mut conn = pool.acquire().await?;
    let row = sqlx::query("select rolsuper, rolbypassrls, current_user::text as who from pg_roles where rolname = current_user")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(row.get::<String, _>("who"), "aries_app");
    assert!(!row.get::<bool, _>("rolsuper") && !row.get::<bool, _>("rolbypassrls"));
    // No tenant set: nothing visible at all, even with no filter.
    let (n,): (i64,) = sqlx::query_as("select count(*) from location")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(n, 0);
    drop(conn);

    for t in [a, b] {
        let mut tx = begin_tenant_tx(&pool, t).await?;
        // A query that forgets `where tenant_id` still sees only this tenant's rows.
        let rows: Vec<(uuid::Uuid,)> = sqlx::query_as("select tenant_id from location")
            .fetch_all(&mut *tx)
            .await?;
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|(id,)| *id == t.as_uuid()));
        let (events,): (i64,) = sqlx::query_as("select count(*) from outbox_event")
            .fetch_one(&mut *tx)
            .await?;
        assert_eq!(events, 2);
        // Writing another tenant's row is refused by the policy's WITH CHECK.
        let other = if t == a { b } else { a };
        let err = sqlx::query(
            "insert into location (tenant_id, location_id, code, name, address_line1, city, state, postal_code) \
             values ($1, $2, 'EVIL', 'x', 'x', 'x', 'TX', '78701')",
        )
        .bind(other.as_uuid())
        .bind(uuid::Uuid::now_v7())
        .execute(&mut *tx)
        .await;
        assert!(err.is_err(), "inserting a row of another tenant must fail");
        tx.rollback().await?;
    }
    // Updates without a filter touch only the current tenant's rows.
    let mut tx = begin_tenant_tx(&pool, a).await?;
    let touched = sqlx::query("update location set name = name")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    assert_eq!(touched, 2);
    tx.rollback().await?;
    Ok(())
}

async fn pid_of(c: &mut sqlx::PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_as::<_, (i32,)>("select pg_backend_pid()")
        .fetch_one(c)
        .await
        .map(|r| r.0)
}

#[actix_web::test]
async fn the_tenant_setting_never_outlives_its_transaction() -> TestResult {
    let app = TestApp::spawn().await;
    let (shard, a, _) = two_tenants_on_one_shard(&app).await;
    // One connection, so every use below is the same pooled connection.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options(&app.shard_dsns[shard], Role::App, &app.db)?)
        .await?;

    let mut tx = begin_tenant_tx(&pool, a).await?;
    let pid = pid_of(&mut tx).await?;
    let (setting,): (String,) = sqlx::query_as("select current_setting('aries.tenant_id')")
        .fetch_one(&mut *tx)
        .await?;
    assert_eq!(setting, a.to_string());
    tx.commit().await?;

    let check_clean = |label: &'static str| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await?;
            assert_eq!(
                pid_of(&mut conn).await?,
                pid,
                "{label}: expected the same pooled connection"
            );
            let (setting,): (Option<String>,) =
                sqlx::query_as("select nullif(current_setting('aries.tenant_id', true), '')")
                    .fetch_one(&mut *conn)
                    .await?;
            assert_eq!(setting, None, "{label}: the tenant setting leaked");
            let (n,): (i64,) = sqlx::query_as("select count(*) from location")
                .fetch_one(&mut *conn)
                .await?;
            assert_eq!(n, 0, "{label}: rows visible without a tenant");
            Ok::<(), Box<dyn std::error::Error>>(())
        }
    };
    check_clean("after commit").await?;

    let mut tx = begin_tenant_tx(&pool, a).await?;
    sqlx::query("select 1").execute(&mut *tx).await?;
    tx.rollback().await?;
    check_clean("after rollback").await?;

    // A transaction dropped mid-way (as when a handler panics) is rolled back before reuse.
    {
        let mut tx = begin_tenant_tx(&pool, a).await?;
        sqlx::query("select 1").execute(&mut *tx).await?;
    }
    check_clean("after drop").await?;

    // Even a plain SET inside the transaction would persist; the app never does it, and SET LOCAL
    // semantics are what set_config(..., true) gives. Prove the difference on this connection.
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, false)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let (leaked,): (String,) = sqlx::query_as("select current_setting('aries.tenant_id')")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(
        leaked,
        a.to_string(),
        "a session-level setting does leak: which is why the app uses is_local = true"
    );
    sqlx::query("reset aries.tenant_id")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[actix_web::test]
async fn rows_land_only_in_their_tenants_shard() -> TestResult {
    let app = TestApp::spawn().await;
    let t0 = app.create_tenant("land-a").await;
    let t1 = app.create_tenant("land-b").await;
    assert_ne!(
        TestApp::shard_index(&t0),
        TestApp::shard_index(&t1),
        "two tenants go to different shards"
    );
    for (slug, t) in [("land-a", &t0), ("land-b", &t1)] {
        app.create_location(slug, "MAIN").await;
        app.create_location(slug, "SECOND").await;
        let id = TestApp::tenant_id(t);
        for shard in 0..2 {
            let mut tx = begin_tenant_tx(&app.shard_pool(shard), id).await?;
            let (locations,): (i64,) = sqlx::query_as("select count(*) from location")
                .fetch_one(&mut *tx)
                .await?;
            let (events,): (i64,) = sqlx::query_as("select count(*) from outbox_event")
                .fetch_one(&mut *tx)
                .await?;
            let home = shard == TestApp::shard_index(t);
            assert_eq!(
                (locations, events),
                if home { (2, 2) } else { (0, 0) },
                "{slug} on shard-{shard}"
            );
        }
    }
    Ok(())
}
