//! The `aries` command line against the same databases as a running app.

use crate::helpers::*;
use serde_json::Value;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[actix_web::test]
async fn tenants_and_shards_from_the_command_line() -> TestResult {
    let app = TestApp::spawn().await;
    let out = stdout(&app.cli(&[
        "tenants", "create", "--slug", "cli-co", "--name", "CLI Co", "--plan", "starter",
    ]));
    assert!(out.contains("cli-co") && out.contains("active"), "{out}");
    // Created through the CLI, served through the API.
    let t: Value = app.get("/v1/platform/tenants/cli-co").await.json().await?;
    assert_eq!(t["plan"], "starter");
    assert!(
        !app.cli(&["tenants", "create", "--slug", "cli-co", "--name", "again"])
            .status
            .success()
    );
    stdout(&app.cli(&[
        "tenants",
        "create",
        "--slug",
        "cli-co",
        "--name",
        "again",
        "--if-not-exists",
    ]));
    assert!(stdout(&app.cli(&["tenants", "list"])).contains("cli-co"));
    let shown: Value = serde_json::from_str(&stdout(&app.cli(&["tenants", "show", "cli-co"])))?;
    assert_eq!(shown["slug"], "cli-co");
    assert!(stdout(&app.cli(&["tenants", "suspend", "cli-co"])).contains("suspended"));
    assert!(stdout(&app.cli(&["tenants", "list", "--status", "suspended"])).contains("cli-co"));
    assert!(stdout(&app.cli(&["tenants", "resume", "cli-co"])).contains("active"));
    // The operator's bootstrap key, printed once, works on the tenant's API.
    let secret = stdout(&app.cli(&["tenants", "api-key", "cli-co", "--roles", "viewer"]))
        .trim()
        .to_owned();
    assert!(secret.starts_with("ak_cli-co."), "{secret}");
    let res = app
        .client
        .get(app.url("/v1/tenants/cli-co/locations"))
        .bearer_auth(&secret)
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    let shards = stdout(&app.cli(&["shards", "list"]));
    assert!(
        shards.contains("shard-0") && shards.contains("shard-1"),
        "{shards}"
    );
    let bad = app.cli(&["tenants", "show", "Bad Slug"]);
    assert!(!bad.status.success());
    Ok(())
}

#[actix_web::test]
async fn a_shard_added_later_is_migrated_and_takes_tenants() -> TestResult {
    let app = TestApp::spawn().await;
    // Fill the two shards so the new, empty one is the least loaded.
    app.create_tenant("old-a").await;
    app.create_tenant("old-b").await;
    let mut dbs = TestDbs::new();
    let dsn = dbs.create(MAIN_SERVER, "s2").await?;
    stdout(&app.cli(&["shards", "add", "shard-2", &dsn, "--weight", "100"]));
    stdout(&app.cli(&["shards", "add", "shard-2", &dsn, "--if-not-exists"]));
    assert!(
        !app.cli(&["shards", "add", "shard-3", "postgres://user:pw@127.0.0.1/x"])
            .status
            .success(),
        "credentials in a DSN are refused"
    );
    // Its schema is current.
    let pool = aries_shards::connect::lazy_pool(&dsn, aries_shards::connect::Role::Owner, &app.db)?;
    let (applied,): (i64,) = sqlx::query_as("select count(*) from _sqlx_migrations where success")
        .fetch_one(&pool)
        .await?;
    assert_eq!(applied, aries_shards::migrate::SHARD.iter().count() as i64);
    pool.close().await;
    stdout(&app.cli(&["migrate"]));
    // The running instance learns the shard when a tenant is placed on it.
    let t = app.create_tenant("new-c").await;
    assert_eq!(t["shard"], "shard-2");
    assert_eq!(
        app.post_json("/v1/tenants/new-c/locations", &location_body("MAIN"))
            .await
            .status(),
        201
    );
    drop(app);
    Ok(())
}
