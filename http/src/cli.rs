//! The `aries` command line.

use crate::settings::Settings;
use crate::startup::{Application, Core};
use anyhow::Context as _;
use aries_actors::platform::PlatformError;
use aries_shards::CatalogError;
use aries_shards::catalog::{TenantFilter, TenantRecord};
use aries_shards::migrate::{migrate_catalog, migrate_shard};
use aries_tenants::audit::AuditActor;
use aries_tenants::page::{MAX_LIMIT, PageRequest};
use aries_tenants::tenant::StatusAction;
use aries_tenants::{Plan, TenantSlug, TenantStatus};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "aries",
    version,
    about = "AriesOne: the multi-tenant platform for HME/DME providers"
)]
pub struct Cli {
    /// A TOML configuration file (default: ./aries.toml when present). `ARIES__…` variables override it.
    #[arg(long, global = true, env = "ARIES_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP server.
    Serve,
    /// Migrate the catalog and every registered shard.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage shards.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Manage operator accounts.
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// Global reference data (HCPCS catalogue, fee schedules) from public APIs.
    #[command(subcommand)]
    Reference(ReferenceCommand),
}

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Create an operator account; without --password-stdin a password is generated and printed.
    Create {
        /// Login e-mail.
        #[arg(long)]
        email: String,
        /// Name shown in the console.
        #[arg(long, default_value = "Operator")]
        name: String,
        /// platform_viewer, platform_operator or platform_admin.
        #[arg(long, default_value = "platform_admin")]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Succeed without change when the e-mail exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List operator accounts.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant (placed on the least-loaded active shard, provisioned, active).
    Create {
        /// URL name: a lowercase letter, then lowercase letters, digits or hyphens (3 to 63).
        #[arg(long)]
        slug: String,
        /// The provider company's name.
        #[arg(long)]
        name: String,
        /// starter, standard or enterprise.
        #[arg(long, default_value = "standard")]
        plan: String,
        /// Succeed without change when the slug exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List tenants.
    List {
        /// Only tenants in this status (provisioning, active, suspended, archived).
        #[arg(long)]
        status: Option<String>,
        /// Only tenants on this shard (by name).
        #[arg(long)]
        shard: Option<String>,
    },
    /// Show one tenant as JSON.
    Show { slug: String },
    /// Suspend a tenant (its API answers 403).
    Suspend { slug: String },
    /// Resume a suspended tenant.
    Resume { slug: String },
    /// Give a tenant an API key (the operator's bootstrap credential); prints the secret once.
    ApiKey {
        /// The tenant.
        slug: String,
        /// What the key is for.
        #[arg(long, default_value = "bootstrap")]
        name: String,
        /// Roles of the key (repeat or comma-separate).
        #[arg(long, value_delimiter = ',', default_value = "owner")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// List shards with tenant counts.
    List,
    /// Register, migrate and activate a shard in one go (its database is migrated first).
    Add {
        /// Operator-facing name, unique (`shard-2`).
        name: String,
        /// postgres://host:port/database, without credentials (they come from the configuration).
        dsn: String,
        /// Relative capacity (1 to 10000): placement fills shards in proportion to it.
        #[arg(long, default_value_t = 100)]
        weight: u32,
        /// Succeed without change when a shard with this name exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Show one shard as JSON.
    Show { name: String },
    /// Record a shard as `registered` (nothing is done on its server, which need not be up).
    Register {
        /// Operator-facing name, unique (`shard-2`).
        name: String,
        /// postgres://host:port/database, without credentials (they come from the configuration).
        dsn: String,
        /// Relative capacity (1 to 10000).
        #[arg(long, default_value_t = 100)]
        weight: u32,
    },
    /// Run the shard migrations on a shard's database and record its schema version.
    Migrate { name: String },
    /// Activate a migrated shard (it takes tenants and writes again).
    Activate { name: String },
    /// Mark a shard read-only (reads work, writes are refused, no new tenants).
    ReadOnly { name: String },
    /// Change a shard's relative capacity (1 to 10000).
    Weight { name: String, weight: u32 },
    /// Drain a shard: no new tenants, and move every tenant away (runs here until done).
    Drain { name: String },
    /// Show the rebalance plan (a dry run); with --execute, run it (here, until done).
    Rebalance {
        /// How far (percent) the most loaded shard may exceed its fair share.
        #[arg(long, default_value_t = 10)]
        threshold_pct: u32,
        /// Run the plan's moves, one at a time.
        #[arg(long)]
        execute: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    crate::telemetry::init_tracing(&settings.log);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings.clone()).await?;
            tracing::info!(bind = %settings.http.bind, port = app.port(), "serving");
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let lease = crate::startup::migration_lease(&settings).await;
            migrate_catalog(&settings.database).await?;
            println!("catalog migrated");
            let core = Core::build(&settings, false).await?;
            for shard in core.directory.catalog().shards().await? {
                if shard.status == aries_shards::ShardStatus::Registered {
                    println!(
                        "shard {} is registered only: migrate it with `aries shards migrate {}`",
                        shard.name, shard.name
                    );
                    continue;
                }
                migrate_shard(&shard.dsn, &settings.database).await?;
                core.directory
                    .catalog()
                    .record_shard_migrated(
                        &shard.name,
                        aries_shards::migrate::latest_shard_version(),
                        None,
                    )
                    .await?;
                println!("shard {} migrated", shard.name);
            }
            if let Some((locks, lease, keep_alive)) = lease {
                drop(keep_alive);
                let _ = locks.release(lease).await;
            }
        }
        Command::Tenants(cmd) => tenants(&settings, cmd).await?,
        Command::Shards(cmd) => shards(&settings, cmd).await?,
        Command::Operators(cmd) => operators(&settings, cmd).await?,
        Command::Reference(cmd) => reference(&settings, cmd).await?,
    }
    Ok(())
}

/// The audit trail's actor for a command-line action: the OS user who ran it.
fn cli_actor() -> AuditActor {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    AuditActor {
        actor: format!("cli:{user}"),
        request_id: None,
        source_ip: None,
    }
}

fn print_tenant_line(t: &TenantRecord) {
    println!(
        "{:<24} {:<12} {:<10} {:<10} {}",
        t.slug,
        t.status.as_str(),
        t.plan.as_str(),
        t.shard_name.as_deref().unwrap_or("-"),
        t.name
    );
}

async fn tenants(settings: &Settings, cmd: TenantsCommand) -> anyhow::Result<()> {
    let core = Core::build(settings, false).await?;
    let slug_of = |s: &str| TenantSlug::parse(s).map_err(|e| anyhow::anyhow!("{s}: {e}"));
    match cmd {
        TenantsCommand::Create {
            slug,
            name,
            plan,
            if_not_exists,
        } => {
            let slug = slug_of(&slug)?;
            let plan: Plan = plan.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            match core
                .platform
                .create_tenant(&slug, &name, plan, &cli_actor())
                .await
            {
                Ok(t) => print_tenant_line(&t),
                Err(PlatformError::Catalog(CatalogError::SlugTaken(_))) if if_not_exists => {
                    println!("tenant {slug} exists");
                }
                Err(e) => return Err(e.into()),
            }
        }
        TenantsCommand::List { status, shard } => {
            let status = status
                .map(|s| s.parse::<TenantStatus>())
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let filter = TenantFilter {
                status,
                shard,
                q: None,
            };
            let mut page = PageRequest {
                limit: MAX_LIMIT,
                after: None,
            };
            loop {
                let rows = core.platform.tenants(&filter, page).await?;
                let more = rows.len() > page.limit as usize;
                for t in rows.iter().take(page.limit as usize) {
                    print_tenant_line(t);
                }
                match rows.get(page.limit as usize - 1) {
                    Some(last) if more => page.after = Some(last.id.as_uuid()),
                    _ => break,
                }
            }
        }
        TenantsCommand::Show { slug } => {
            let t = core.platform.tenant(&slug_of(&slug)?).await?;
            println!("{}", serde_json::to_string_pretty(&t)?);
        }
        TenantsCommand::Suspend { slug } => print_tenant_line(
            &core
                .platform
                .change_status(&slug_of(&slug)?, StatusAction::Suspend, &cli_actor())
                .await?,
        ),
        TenantsCommand::Resume { slug } => print_tenant_line(
            &core
                .platform
                .change_status(&slug_of(&slug)?, StatusAction::Resume, &cli_actor())
                .await?,
        ),
        TenantsCommand::ApiKey { slug, name, roles } => {
            let slug = slug_of(&slug)?;
            let call = aries_actors::auth::Call {
                credential: Some(aries_actors::auth::Credential::Operator),
                meta: Default::default(),
            };
            let op = aries_actors::ops::security::CreateApiKey {
                slug: slug.to_string(),
                name,
                roles,
            };
            let (key, secret) = core
                .directory
                .exec_as(&slug, call, op)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "api key {} ({}) for {slug}; the secret is shown once:",
                key.id, key.prefix
            );
            println!("{secret}");
        }
    }
    Ok(())
}

async fn shards(settings: &Settings, cmd: ShardsCommand) -> anyhow::Result<()> {
    let core = Core::build(settings, false).await?;
    match cmd {
        ShardsCommand::List => {
            for s in core.platform.shard_overview().await? {
                let r = s.record;
                println!(
                    "{:<16} {:<10} weight {:<5} tenants {:<6} {}",
                    r.name,
                    r.status.as_str(),
                    r.weight,
                    r.tenant_count,
                    r.dsn
                );
            }
        }
        ShardsCommand::Add {
            name,
            dsn,
            weight,
            if_not_exists,
        } => match core
            .platform
            .add_shard(&name, &dsn, weight, &cli_actor())
            .await
        {
            Ok(r) => println!("shard {} added ({})", r.name, r.dsn),
            Err(PlatformError::Catalog(CatalogError::ShardNameTaken(_))) if if_not_exists => {
                println!("shard {name} exists");
            }
            Err(e) => return Err(e.into()),
        },
        ShardsCommand::Show { name } => {
            let r = core.platform.shard(&name).await?.record;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        ShardsCommand::Register { name, dsn, weight } => {
            let r = core
                .platform
                .register_shard(&name, &dsn, weight, &cli_actor())
                .await?;
            println!(
                "shard {} registered ({}); next: aries shards migrate {}",
                r.name, r.dsn, r.name
            );
        }
        ShardsCommand::Migrate { name } => {
            let r = core.platform.migrate_shard(&name, &cli_actor()).await?;
            println!(
                "shard {} migrated to schema version {}",
                r.name,
                r.schema_version.unwrap_or_default()
            );
        }
        ShardsCommand::Activate { name } => {
            let r = core.platform.activate_shard(&name, &cli_actor()).await?;
            println!("shard {} is {}", r.name, r.status);
        }
        ShardsCommand::ReadOnly { name } => {
            let r = core
                .platform
                .mark_shard_read_only(&name, &cli_actor())
                .await?;
            println!("shard {} is {}", r.name, r.status);
        }
        ShardsCommand::Weight { name, weight } => {
            let r = core
                .platform
                .set_shard_weight(&name, weight, &cli_actor())
                .await?;
            println!("shard {} has weight {}", r.name, r.weight);
        }
        ShardsCommand::Drain { name } => {
            let runner = job_runner(settings, &core)?;
            let job = runner.drain(&name, &cli_actor()).await?;
            println!("shard {name} is draining: job {}", job.id);
            follow_job(&runner, job.id).await?;
        }
        ShardsCommand::Rebalance {
            threshold_pct,
            execute,
        } => {
            let runner = job_runner(settings, &core)?;
            let plan_settings = aries_shards::rebalance::PlanSettings { threshold_pct };
            let deadline = std::time::Duration::from_secs(30);
            let plan = if execute {
                let (plan, job) = runner
                    .rebalance(plan_settings, deadline, &cli_actor())
                    .await?;
                print_plan(&plan);
                println!("rebalance job {}", job.id);
                follow_job(&runner, job.id).await?;
                return Ok(());
            } else {
                runner.plan(plan_settings, deadline).await?
            };
            print_plan(&plan);
        }
    }
    Ok(())
}

/// Drains and rebalances from the command line run in this process, with the moves of an
/// instance (Redis leases, the catalog's move records).
fn job_runner(
    settings: &Settings,
    core: &Core,
) -> anyhow::Result<aries_actors::shard_jobs::ShardJobRunner> {
    use secrecy::ExposeSecret as _;
    let instance = format!("cli-{}", uuid::Uuid::now_v7().simple());
    let locks = aries_actors::locks::Locks::new(
        aries_actors::links::RedisLink::start(settings.redis.url.expose_secret().to_owned()),
        settings.redis.key_prefix.clone(),
    );
    let moves = aries_actors::moves::TenantMoves::new(
        core.directory.clone(),
        locks,
        settings.moves.tuning()?,
        std::time::Duration::from_millis(settings.moves.lease_ttl_ms),
        instance.clone(),
    );
    Ok(aries_actors::shard_jobs::ShardJobRunner::new(
        core.platform.clone(),
        core.directory.clone(),
        std::sync::Arc::new(moves),
        instance,
    ))
}

/// Prints each step of a job as it changes, until the job ends.
async fn follow_job(
    runner: &aries_actors::shard_jobs::ShardJobRunner,
    id: uuid::Uuid,
) -> anyhow::Result<()> {
    use aries_shards::shard_jobs::JobState;
    let mut shown: Vec<String> = Vec::new();
    loop {
        let job = runner.get(id).await?;
        for (i, step) in job.steps.iter().enumerate() {
            let line = format!(
                "  {} {} -> {}: {:?}{}",
                step.tenant,
                step.from_shard,
                step.to_shard,
                step.state,
                step.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
            .to_lowercase();
            if shown.get(i) != Some(&line) {
                println!("{line}");
                if i < shown.len() {
                    shown[i] = line;
                } else {
                    shown.push(line);
                }
            }
        }
        if job.state != JobState::Running {
            println!(
                "job {} {}{}",
                job.id,
                job.state.as_str(),
                job.error.map(|e| format!(": {e}")).unwrap_or_default()
            );
            if job.state == JobState::Done {
                return Ok(());
            }
            anyhow::bail!("the job did not finish cleanly");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn print_plan(plan: &aries_actors::shard_load::RebalancePlan) {
    println!(
        "{:<16} {:<10} {:>6} {:>8} {:>12} {:>12} {:>12}",
        "SHARD", "STATUS", "WEIGHT", "TENANTS", "LOAD BEFORE", "LOAD AFTER", "FAIR SHARE"
    );
    for s in &plan.shards {
        println!(
            "{:<16} {:<10} {:>6} {:>8} {:>12} {:>12} {:>12}{}",
            s.shard,
            s.status,
            s.weight,
            s.tenants,
            s.load_before,
            s.load_after,
            s.fair_share
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            s.error
                .as_deref()
                .map(|e| format!("  (not measured: {e})"))
                .unwrap_or_default()
        );
    }
    if plan.moves.is_empty() {
        println!(
            "no moves: the shards are within {}% of their fair share",
            plan.threshold_pct
        );
    }
    for m in &plan.moves {
        println!(
            "move {} {} -> {} ({} rows)",
            m.tenant, m.from_shard, m.to_shard, m.load
        );
    }
    for t in &plan.unplaced {
        println!("unplaced (no active shard): {t}");
    }
}

async fn operators(settings: &Settings, cmd: OperatorsCommand) -> anyhow::Result<()> {
    let core = Core::build(settings, false).await?;
    let catalog = core.directory.catalog();
    match cmd {
        OperatorsCommand::Create {
            email,
            name,
            role,
            password_stdin,
            if_not_exists,
        } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (
                    aries_tenants::auth::secrets::generate("")
                        .chars()
                        .take(24)
                        .collect(),
                    true,
                )
            };
            let input = crate::routes::operators::NewOperator {
                email: email.clone(),
                display_name: name,
                password: password.clone(),
                role,
            };
            match crate::routes::operators::create_account(catalog, input).await {
                Ok(account) => {
                    eprintln!(
                        "operator {} ({}) created",
                        account.email,
                        account.role.as_str()
                    );
                    if generated {
                        println!("{password}");
                    }
                }
                Err(e)
                    if if_not_exists && e.code == crate::error::ErrorCode::OperatorEmailTaken =>
                {
                    eprintln!("operator {email} exists");
                }
                Err(e) => anyhow::bail!("{}: {}", e.code.code(), e.detail),
            }
        }
        OperatorsCommand::List => {
            for a in catalog.operators().await? {
                println!(
                    "{:<32} {:<18} totp {:<5} {}",
                    a.email,
                    a.role.as_str(),
                    a.totp_enabled,
                    if a.active { "active" } else { "disabled" }
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReferenceCommand {
    /// Fetch a dataset page by page and upsert it into the catalog (idempotent; run it again to
    /// finish a failed run). Never runs on a request's path.
    Sync {
        /// `hcpcs` or `fee-schedule`.
        #[arg(value_parser = ["hcpcs", "fee-schedule"])]
        kind: String,
        /// `socrata` (SODA 2.x) or `cms` (data.cms.gov data API).
        #[arg(long, value_parser = ["socrata", "cms"])]
        source: String,
        /// The API's base URL (default: reference.socrata_base_url / reference.cms_base_url).
        #[arg(long)]
        base_url: Option<String>,
        /// Socrata 4x4 (`abcd-1234`) or CMS dataset UUID.
        #[arg(long)]
        dataset: String,
        /// A SoQL condition (`$where`), Socrata only.
        #[arg(long = "where")]
        soql_where: Option<String>,
        /// An equality filter COLUMN=VALUE (repeatable): SoQL `column = 'value'` or CMS `filter[COLUMN]=value`.
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Map a field to another column, FIELD=COLUMN (repeatable; `FIELD=` unmaps an optional one).
        #[arg(long = "map")]
        maps: Vec<String>,
        /// Fee schedules: the year when the dataset has no year column (always for `cms`).
        #[arg(long)]
        year: Option<i16>,
        /// Fee schedules: the quarter (1-4) when the dataset has no quarter column.
        #[arg(long)]
        quarter: Option<i16>,
        /// Read the Socrata app token from this environment variable (default: reference.socrata_app_token).
        #[arg(long)]
        app_token_env: Option<String>,
        /// Rows per request (default: reference.page_size).
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// List recent sync runs, newest first.
    Status {
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// `A=B` → `("A", "B")`.
fn pair(raw: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = raw
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{what} `{raw}` is not NAME=VALUE"))?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

async fn reference(settings: &Settings, cmd: ReferenceCommand) -> anyhow::Result<()> {
    use aries_reference::mapping::{DatasetKind, Mapping};
    use aries_reference::{CmsDataApi, HttpFetcher, Query, RetryPolicy, Socrata, SyncPlan};
    use aries_shards::connect::{Role, lazy_pool};
    use secrecy::ExposeSecret as _;
    use std::time::Duration;

    // Writes to the reference tables are the owner role's: the app role only reads them.
    let pool = lazy_pool(
        &settings.database.catalog_url,
        Role::Owner,
        &settings.database,
    )?;
    let cfg = &settings.reference;
    match cmd {
        ReferenceCommand::Status { limit } => {
            println!(
                "{:<25} {:<12} {:<8} {:<9} {:>8} {:>8} {:>8}  DATASET / ERROR",
                "STARTED", "KIND", "SOURCE", "STATUS", "FETCHED", "UPSERTED", "REJECTED"
            );
            for r in aries_reference::store::recent_runs(&pool, limit.clamp(1, 1000)).await? {
                println!(
                    "{:<25} {:<12} {:<8} {:<9} {:>8} {:>8} {:>8}  {}{}",
                    r.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.dataset_kind,
                    r.source,
                    r.status,
                    r.rows_fetched,
                    r.rows_upserted,
                    r.rows_rejected,
                    r.dataset,
                    r.error.map(|e| format!(" / {e}")).unwrap_or_default()
                );
            }
        }
        ReferenceCommand::Sync {
            kind,
            source,
            base_url,
            dataset,
            soql_where,
            filters,
            maps,
            year,
            quarter,
            app_token_env,
            page_size,
        } => {
            let kind = if kind == "hcpcs" {
                DatasetKind::Hcpcs
            } else {
                DatasetKind::FeeSchedule
            };
            let mut mapping = Mapping::default_for(kind, &source);
            for m in &maps {
                let (field, column) = pair(m, "--map")?;
                mapping
                    .set_column(&field, &column)
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            if let Mapping::FeeSchedule(m) = &mut mapping {
                m.year = year
                    .map(|y| aries_reference::mapping::year(&y.to_string()))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--year: {e}"))?;
                m.quarter = quarter
                    .map(|q| aries_reference::mapping::quarter(&q.to_string()))
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--quarter: {e}"))?;
            } else if year.is_some() || quarter.is_some() {
                anyhow::bail!("--year and --quarter are for fee schedules");
            }
            let query = Query {
                dataset,
                select: Vec::new(),
                soql_where,
                filters: filters
                    .iter()
                    .map(|f| pair(f, "--filter"))
                    .collect::<anyhow::Result<_>>()?,
            };
            let http = HttpFetcher::new(RetryPolicy {
                max_retries: cfg.max_retries,
                base_delay: Duration::from_millis(cfg.retry_base_ms),
                max_delay: Duration::from_secs(30),
                timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
            })?;
            let page_size = page_size.unwrap_or(cfg.page_size);
            let result = if source == "socrata" {
                let token = match &app_token_env {
                    Some(var) => Some(std::env::var(var).map_err(|_| {
                        anyhow::anyhow!(
                            "--app-token-env: the environment variable {var} is not set"
                        )
                    })?),
                    None => cfg
                        .socrata_app_token
                        .as_ref()
                        .map(|t| t.expose_secret().to_owned()),
                };
                let base = base_url.unwrap_or_else(|| cfg.socrata_base_url.clone());
                let api = Socrata::new(&base, token, http)?;
                let plan = SyncPlan {
                    mapping,
                    query,
                    page_size,
                    base_url: base,
                };
                aries_reference::sync::run(&pool, &api, &plan).await
            } else {
                if app_token_env.is_some() {
                    anyhow::bail!("the CMS data API takes no app token");
                }
                let base = base_url.unwrap_or_else(|| cfg.cms_base_url.clone());
                let api = CmsDataApi::new(&base, http)?;
                let plan = SyncPlan {
                    mapping,
                    query,
                    page_size,
                    base_url: base,
                };
                aries_reference::sync::run(&pool, &api, &plan).await
            };
            let report = result?;
            println!(
                "sync {} succeeded: fetched {}, upserted {}, rejected {}, pages {}",
                report.sync_id, report.fetched, report.upserted, report.rejected, report.pages
            );
            for r in &report.rejections {
                println!("  rejected record {}: {}", r.record, r.reason);
            }
        }
    }
    pool.close().await;
    Ok(())
}
