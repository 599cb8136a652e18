//! Patient operations and their ranked policies. No patient delete (orders and claims will refer
//! to patients; set `inactive_date` instead). Every write is audited against the patient
//! (`target_type` `patient`), policy writes naming the policy in the details.

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::{PatientId, PolicyId};
use aries_tenants::page::PageRequest;
use aries_tenants::patients::policies::{self, RerankInput};
use aries_tenants::patients::{self, Patient, PatientFilter, PatientInput, Policy, PolicyInput};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Patients, action))
}

/// `POST /patients` (with optional embedded policies).
pub struct CreatePatient(pub PatientInput);

impl TenantOp for CreatePatient {
    type Output = Patient;
    const NAME: &'static str = "patient.create";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Patient, DomainError>> {
        Box::pin(async move {
            let p = patients::create(conn, ctx.tenant, &self.0).await?;
            let policy_ids: Vec<String> = p
                .policies
                .iter()
                .flatten()
                .map(|x| x.id.to_string())
                .collect();
            ctx.audit(
                conn,
                "patient.created",
                "patient",
                p.id,
                json!({"account_number": p.account_number, "policy_ids": policy_ids}),
            )
            .await?;
            Ok(p)
        })
    }
}

/// `GET /patients/{id}` (with policies).
pub struct GetPatient(pub PatientId);

impl TenantOp for GetPatient {
    type Output = Patient;
    const NAME: &'static str = "patient.get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Patient, DomainError>> {
        Box::pin(async move { patients::get(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /patients` (search).
pub struct ListPatients {
    /// Which page.
    pub page: PageRequest,
    /// Which patients.
    pub filter: PatientFilter,
}

impl TenantOp for ListPatients {
    type Output = Vec<Patient>;
    const NAME: &'static str = "patient.list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Patient>, DomainError>> {
        Box::pin(async move { patients::list(conn, ctx.tenant, self.page, &self.filter).await })
    }
}

/// `PATCH /patients/{id}` (JSON merge patch).
pub struct PatchPatient {
    /// Which patient.
    pub id: PatientId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchPatient {
    type Output = Patient;
    const NAME: &'static str = "patient.patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Patient, DomainError>> {
        Box::pin(async move {
            let (p, changed) =
                patients::patch(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "patient.updated",
                    "patient",
                    p.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(p)
        })
    }
}

/// `POST /patients/{id}/policies`.
pub struct AddPolicy {
    /// Whose policy.
    pub patient: PatientId,
    /// The policy, with an optional rank to insert at.
    pub input: PolicyInput,
}

impl TenantOp for AddPolicy {
    type Output = Policy;
    const NAME: &'static str = "patient.policy_add";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Policy, DomainError>> {
        Box::pin(async move {
            let p = policies::add(conn, ctx.tenant, self.patient, &self.input).await?;
            ctx.audit(
                conn,
                "patient.policy_added",
                "patient",
                self.patient,
                json!({"policy_id": p.id, "payer_id": p.payer_id, "rank": p.rank}),
            )
            .await?;
            Ok(p)
        })
    }
}

/// `GET /patients/{id}/policies`.
pub struct ListPolicies(pub PatientId);

impl TenantOp for ListPolicies {
    type Output = Vec<Policy>;
    const NAME: &'static str = "patient.policy_list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Policy>, DomainError>> {
        Box::pin(async move { policies::list(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /patients/{id}/policies/{policy_id}`.
pub struct GetPolicy {
    /// Whose policy.
    pub patient: PatientId,
    /// Which policy.
    pub id: PolicyId,
}

impl TenantOp for GetPolicy {
    type Output = Policy;
    const NAME: &'static str = "patient.policy_get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Policy, DomainError>> {
        Box::pin(async move { policies::get(conn, ctx.tenant, self.patient, self.id).await })
    }
}

/// `PATCH /patients/{id}/policies/{policy_id}` (JSON merge patch).
pub struct PatchPolicy {
    /// Whose policy.
    pub patient: PatientId,
    /// Which policy.
    pub id: PolicyId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchPolicy {
    type Output = Policy;
    const NAME: &'static str = "patient.policy_patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Policy, DomainError>> {
        Box::pin(async move {
            let (p, changed) = policies::patch(
                conn,
                ctx.tenant,
                self.patient,
                self.id,
                &self.patch,
                self.if_match,
            )
            .await?;
            if changed {
                ctx.audit(
                    conn,
                    "patient.policy_updated",
                    "patient",
                    self.patient,
                    json!({"policy_id": p.id, "patch": self.patch}),
                )
                .await?;
            }
            Ok(p)
        })
    }
}

/// `DELETE /patients/{id}/policies/{policy_id}`.
pub struct RemovePolicy {
    /// Whose policy.
    pub patient: PatientId,
    /// Which policy.
    pub id: PolicyId,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for RemovePolicy {
    type Output = ();
    const NAME: &'static str = "patient.policy_remove";
    const ACCESS: Access = needs(Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move {
            let p =
                policies::remove(conn, ctx.tenant, self.patient, self.id, self.if_match).await?;
            ctx.audit(
                conn,
                "patient.policy_removed",
                "patient",
                self.patient,
                json!({"policy_id": p.id, "payer_id": p.payer_id, "rank": p.rank}),
            )
            .await?;
            Ok(())
        })
    }
}

/// `POST /patients/{id}/policies/rank`.
pub struct RerankPolicies {
    /// Whose policies.
    pub patient: PatientId,
    /// The complete new order.
    pub input: RerankInput,
}

impl TenantOp for RerankPolicies {
    type Output = Vec<Policy>;
    const NAME: &'static str = "patient.policy_rerank";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Policy>, DomainError>> {
        Box::pin(async move {
            let (list, changed) =
                policies::rerank(conn, ctx.tenant, self.patient, &self.input).await?;
            if changed {
                let order: Vec<String> = list.iter().map(|p| p.id.to_string()).collect();
                ctx.audit(
                    conn,
                    "patient.policies_reranked",
                    "patient",
                    self.patient,
                    json!({"policy_ids": order}),
                )
                .await?;
            }
            Ok(list)
        })
    }
}
