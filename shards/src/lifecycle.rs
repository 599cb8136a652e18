//! A shard's life in the catalog: registered → (migrated) → active ⇄ read_only, active → draining
//! (its tenants moved away by a drain job) → active again if the operator changes their mind.
//!
//! The rules are one pure function, [`apply`], unit-tested here; the catalog methods below take
//! the shard rows `FOR UPDATE`, check the rule against what they read, write and audit in one
//! transaction. What happens on the shard's own database (the read-only flag, migrations) is done
//! by the caller (`aries_actors::platform`) before or after, each step idempotent.

use crate::catalog::{Catalog, CatalogError, SHARD_SELECT, ShardRecord, ShardStatus};
use crate::migrate::latest_shard_version;
use crate::shard_jobs::{self, JobKind, JobStep, ShardJob};
use aries_tenants::audit::{self, AuditActor, Trail};
use aries_tenants::ids::ShardId;
use uuid::Uuid;

/// An operator's action on a shard's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardAction {
    /// Take new tenants (and writes): from registered (once migrated), read-only or draining.
    Activate,
    /// Refuse writes and new tenants.
    MarkReadOnly,
    /// Take no new tenants and move every tenant away.
    Drain,
}

impl ShardAction {
    /// The audit trail's action (`shard.activated`…).
    pub fn audit_action(self) -> &'static str {
        match self {
            Self::Activate => "shard.activated",
            Self::MarkReadOnly => "shard.read_only",
            Self::Drain => "shard.draining",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Activate => "activated",
            Self::MarkReadOnly => "marked read-only",
            Self::Drain => "drained",
        }
    }
}

/// What [`apply`] needs to know besides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionFacts {
    /// The shard's recorded schema is this build's latest (or newer).
    pub schema_current: bool,
    /// Active shards other than this one.
    pub other_active: usize,
}

/// The status after `action`, or why it is refused. Repeating an action already in effect is
/// allowed and changes nothing.
pub fn apply(
    from: ShardStatus,
    action: ShardAction,
    facts: TransitionFacts,
) -> Result<ShardStatus, CatalogError> {
    use ShardStatus::*;
    let refuse = |why: &str| {
        Err(CatalogError::InvalidShardTransition(format!(
            "a shard that is {from} cannot be {}: {why}",
            action.verb()
        )))
    };
    match (action, from) {
        (ShardAction::Activate, _) if !facts.schema_current => Err(CatalogError::ShardNotMigrated(
            "run its migration first".into(),
        )),
        (ShardAction::Activate, _) => Ok(Active),
        (ShardAction::MarkReadOnly, Registered) => {
            refuse("it holds no tenants yet; migrate and activate it first")
        }
        (ShardAction::MarkReadOnly, _) => Ok(ReadOnly),
        (ShardAction::Drain, Draining) => Ok(Draining),
        (ShardAction::Drain, Registered) => refuse("it holds no tenants"),
        (ShardAction::Drain, ReadOnly) => {
            refuse("its tenants cannot be moved while it refuses writes; activate it first")
        }
        (ShardAction::Drain, Active) if facts.other_active == 0 => {
            refuse("it is the last active shard, so its tenants have nowhere to go")
        }
        (ShardAction::Drain, Active) => Ok(Draining),
    }
}

/// One row of the shard list as the transition reads it.
type StatusRow = (ShardId, String, String, Option<i64>);

impl Catalog {
    /// Records a shard as `registered`: not migrated, taking no tenants. Its server need not be up.
    #[tracing::instrument(name = "catalog.register_shard", skip(self, by))]
    pub async fn register_shard(
        &self,
        name: &str,
        dsn: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, CatalogError> {
        self.insert_shard(
            name,
            dsn,
            weight,
            "registered",
            None,
            "shard.registered",
            by,
        )
        .await
    }

    /// Records that the shard's schema is at `version` now (after a migration run). `by` audits
    /// an operator's run; start-up and `aries migrate` record silently.
    pub async fn record_shard_migrated(
        &self,
        name: &str,
        version: i64,
        by: Option<&AuditActor>,
    ) -> Result<ShardRecord, CatalogError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "update shard set schema_version = $2, migrated_at = now(), updated_at = now() where name = $1",
        )
        .bind(name)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(CatalogError::ShardNotFound(name.to_owned()));
        }
        if let Some(by) = by {
            let event = by.event(
                "shard.migrated",
                "shard",
                name,
                serde_json::json!({"schema_version": version}),
                None,
            );
            audit::append(&mut tx, Trail::Platform, &event)
                .await
                .map_err(crate::catalog::domain_to_catalog)?;
        }
        tx.commit().await?;
        self.shard_by_name(name).await
    }

    /// Checks `action` against the shard as it is now, without changing anything (callers that
    /// must act on the shard's database first use it to refuse early).
    pub async fn check_shard_action(
        &self,
        name: &str,
        action: ShardAction,
    ) -> Result<(ShardRecord, ShardStatus), CatalogError> {
        let shard = self.shard_by_name(name).await?;
        let others: (i64,) =
            sqlx::query_as("select count(*) from shard where status = 'active' and shard_id <> $1")
                .bind(shard.id)
                .fetch_one(self.pool())
                .await?;
        let to = apply(
            shard.status,
            action,
            TransitionFacts {
                schema_current: shard
                    .schema_version
                    .is_some_and(|v| v >= latest_shard_version()),
                other_active: usize::try_from(others.0).unwrap_or(0),
            },
        )?;
        Ok((shard, to))
    }

    /// Applies `action` (activate or mark read-only; drains go through [`Catalog::start_drain`])
    /// to the shard's status: rows locked, rule checked, audited.
    pub async fn change_shard_status(
        &self,
        name: &str,
        action: ShardAction,
        by: &AuditActor,
    ) -> Result<ShardRecord, CatalogError> {
        Ok(self.transition(name, action, by, "").await?.0)
    }

    /// Marks the shard `draining` and records its drain job in the same transaction (`runner` is
    /// the instance that will run it). A drain of a shard that is draining already returns its
    /// running job when there is one (`false`: not created now), else starts a new one for the
    /// tenants still there (`true`).
    pub async fn start_drain(
        &self,
        name: &str,
        by: &AuditActor,
        runner: &str,
    ) -> Result<(ShardRecord, ShardJob, bool), CatalogError> {
        let (record, job) = self
            .transition(name, ShardAction::Drain, by, runner)
            .await?;
        let (job, created) =
            job.ok_or_else(|| CatalogError::Corrupt("a drain without its job".into()))?;
        Ok((record, job, created))
    }

    #[tracing::instrument(name = "catalog.shard_transition", skip(self, by))]
    async fn transition(
        &self,
        name: &str,
        action: ShardAction,
        by: &AuditActor,
        runner: &str,
    ) -> Result<(ShardRecord, Option<(ShardJob, bool)>), CatalogError> {
        let mut tx = self.pool().begin().await?;
        // Every shard row, locked: two concurrent drains must not both count the other as active.
        let rows: Vec<StatusRow> = sqlx::query_as(
            "select shard_id, name, status, schema_version from shard order by shard_id for update",
        )
        .fetch_all(&mut *tx)
        .await?;
        let (shard_id, _, status, schema_version) = rows
            .iter()
            .find(|r| r.1 == name)
            .cloned()
            .ok_or_else(|| CatalogError::ShardNotFound(name.to_owned()))?;
        let from: ShardStatus = status.parse()?;
        let other_active = rows
            .iter()
            .filter(|r| r.0 != shard_id && r.2 == "active")
            .count();
        let to = apply(
            from,
            action,
            TransitionFacts {
                schema_current: schema_version.is_some_and(|v| v >= latest_shard_version()),
                other_active,
            },
        )
        .map_err(|e| match e {
            CatalogError::ShardNotMigrated(_) => CatalogError::ShardNotMigrated(name.to_owned()),
            other => other,
        })?;
        if to != from {
            sqlx::query("update shard set status = $2, updated_at = now() where shard_id = $1")
                .bind(shard_id)
                .bind(to.as_str())
                .execute(&mut *tx)
                .await?;
            let details = serde_json::json!({"from": from.as_str(), "to": to.as_str()});
            let event = by.event(action.audit_action(), "shard", name, details, None);
            audit::append(&mut tx, Trail::Platform, &event)
                .await
                .map_err(crate::catalog::domain_to_catalog)?;
        }
        let job = if action == ShardAction::Drain {
            let running = shard_jobs::running_in(&mut tx).await?;
            match running {
                Some(job) if job.kind == JobKind::Drain && job.shard.as_deref() == Some(name) => {
                    Some((job, false))
                }
                Some(job) => return Err(CatalogError::ShardJobInProgress(job.id)),
                None => {
                    let id = shard_jobs::insert_in(
                        &mut tx,
                        JobKind::Drain,
                        Some(shard_id),
                        &[] as &[JobStep],
                        &by.actor,
                        runner,
                    )
                    .await?;
                    Some((shard_jobs::get_in(&mut tx, id).await?, true))
                }
            }
        } else {
            None
        };
        tx.commit().await?;
        Ok((self.shard_by_name(name).await?, job))
    }

    /// Changes a shard's weight (placement and the rebalance plan follow it from then on).
    pub async fn set_shard_weight(
        &self,
        name: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, CatalogError> {
        let weight =
            i32::try_from(weight).map_err(|_| CatalogError::Corrupt("weight too large".into()))?;
        let mut tx = self.pool().begin().await?;
        let before: Option<(i32,)> =
            sqlx::query_as("select weight from shard where name = $1 for update")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let (before,) = before.ok_or_else(|| CatalogError::ShardNotFound(name.to_owned()))?;
        if before != weight {
            sqlx::query("update shard set weight = $2, updated_at = now() where name = $1")
                .bind(name)
                .bind(weight)
                .execute(&mut *tx)
                .await?;
            let details = serde_json::json!({"from": before, "to": weight});
            let event = by.event("shard.weight_changed", "shard", name, details, None);
            audit::append(&mut tx, Trail::Platform, &event)
                .await
                .map_err(crate::catalog::domain_to_catalog)?;
        }
        tx.commit().await?;
        self.shard_by_name(name).await
    }

    /// Every shard by id, for the rebalance planner and the drain job.
    pub async fn shard_by_id(&self, id: ShardId) -> Result<ShardRecord, CatalogError> {
        let sql = format!("{SHARD_SELECT} where s.shard_id = $1");
        let row: Option<crate::catalog::ShardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.ok_or_else(|| CatalogError::ShardNotFound(id.to_string()))?
            .try_into()
    }

    /// The tenants the catalog places on a shard, by slug (every status but `provisioning`, whose
    /// creation may still be writing its anchor row).
    pub async fn tenants_on_shard(
        &self,
        shard: ShardId,
    ) -> Result<Vec<(aries_tenants::TenantId, String)>, CatalogError> {
        Ok(sqlx::query_as(
            "select t.tenant_id, t.slug from placement p join tenant t using (tenant_id) \
             where p.shard_id = $1 and t.status <> 'provisioning' order by t.slug",
        )
        .bind(shard)
        .fetch_all(self.pool())
        .await?)
    }

    /// Starts a rebalance job with these moves (one job at a time on the platform).
    pub async fn start_rebalance(
        &self,
        steps: &[JobStep],
        by: &AuditActor,
        runner: &str,
    ) -> Result<ShardJob, CatalogError> {
        let mut tx = self.pool().begin().await?;
        let id: Uuid =
            shard_jobs::insert_in(&mut tx, JobKind::Rebalance, None, steps, &by.actor, runner)
                .await?;
        let details = serde_json::json!({"job_id": id, "moves": steps.len()});
        let event = by.event("shard.rebalance_started", "shard_job", id, details, None);
        audit::append(&mut tx, Trail::Platform, &event)
            .await
            .map_err(crate::catalog::domain_to_catalog)?;
        let job = shard_jobs::get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShardStatus::*;

    fn facts(schema_current: bool, other_active: usize) -> TransitionFacts {
        TransitionFacts {
            schema_current,
            other_active,
        }
    }

    #[test]
    fn activation_needs_a_current_schema() {
        for from in [Registered, Active, Draining, ReadOnly] {
            assert!(matches!(
                apply(from, ShardAction::Activate, facts(false, 3)),
                Err(CatalogError::ShardNotMigrated(_))
            ));
            assert_eq!(
                apply(from, ShardAction::Activate, facts(true, 0)).ok(),
                Some(Active)
            );
        }
    }

    #[test]
    fn read_only_from_anything_but_registered() {
        for from in [Active, Draining, ReadOnly] {
            assert_eq!(
                apply(from, ShardAction::MarkReadOnly, facts(true, 0)).ok(),
                Some(ReadOnly)
            );
        }
        assert!(matches!(
            apply(Registered, ShardAction::MarkReadOnly, facts(true, 1)),
            Err(CatalogError::InvalidShardTransition(_))
        ));
    }

    #[test]
    fn drain_needs_somewhere_to_go() {
        assert_eq!(
            apply(Active, ShardAction::Drain, facts(true, 1)).ok(),
            Some(Draining)
        );
        assert_eq!(
            apply(Draining, ShardAction::Drain, facts(true, 0)).ok(),
            Some(Draining)
        );
        for (from, others) in [(Active, 0), (Registered, 2), (ReadOnly, 2)] {
            assert!(
                matches!(
                    apply(from, ShardAction::Drain, facts(true, others)),
                    Err(CatalogError::InvalidShardTransition(_))
                ),
                "{from} with {others} other active"
            );
        }
    }
}
