//! Patient operations and their ranked policies. No patient delete (orders and claims will refer
//! to patients; set `inactive_date` instead). Every write is audited against the patient
//! (`target_type` `patient`), policy writes naming the policy in the details.

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::{PatientId, PolicyId};
use aries_tenants::page::PageRequest;
use aries_tenants::patients::policies::{self, RerankInput};
use aries_tenants::patients::{self, Patient, PatientFilter, PatientInput, Policy, PolicyInput};
use serde_json::json;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Patients, action))
}

tenant_op!(
    /// `POST /patients` (with optional embedded policies).
    CreatePatient {
        /// The new patient and its policies.
        input: PatientInput,
    } -> Patient, "patient.create", needs(Action::Edit),
    |op, conn, ctx| {
        let p = patients::create(conn, ctx.tenant, &op.input).await?;
        let policy_ids: Vec<String> = p.policies.iter().flatten().map(|x| x.id.to_string()).collect();
        ctx.audit(conn, "patient.created", "patient", p.id,
            json!({"account_number": p.account_number, "policy_ids": policy_ids}))
            .await?;
        Ok(p)
    }
);

tenant_op!(
    /// `GET /patients/{id}` (with policies).
    GetPatient {
        /// Which patient.
        id: PatientId,
    } -> Patient, "patient.get", needs(Action::View),
    |op, conn, ctx| { patients::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /patients` (search).
    ListPatients {
        /// Which page.
        page: PageRequest,
        /// Which patients.
        filter: PatientFilter,
    } -> Vec<Patient>, "patient.list", needs(Action::View),
    |op, conn, ctx| { patients::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `PATCH /patients/{id}` (JSON merge patch).
    PatchPatient {
        /// Which patient.
        id: PatientId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Patient, "patient.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (p, changed) = patients::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "patient.updated", "patient", p.id, json!({"patch": op.patch})).await?;
        }
        Ok(p)
    }
);

tenant_op!(
    /// `POST /patients/{id}/policies`.
    AddPolicy {
        /// Whose policy.
        patient: PatientId,
        /// The policy, with an optional rank to insert at.
        input: PolicyInput,
    } -> Policy, "patient.policy_add", needs(Action::Edit),
    |op, conn, ctx| {
        let p = policies::add(conn, ctx.tenant, op.patient, &op.input).await?;
        ctx.audit(conn, "patient.policy_added", "patient", op.patient,
            json!({"policy_id": p.id, "payer_id": p.payer_id, "rank": p.rank}))
            .await?;
        Ok(p)
    }
);

tenant_op!(
    /// `GET /patients/{id}/policies`.
    ListPolicies {
        /// Whose policies.
        patient: PatientId,
    } -> Vec<Policy>, "patient.policy_list", needs(Action::View),
    |op, conn, ctx| { policies::list(conn, ctx.tenant, op.patient).await }
);

tenant_op!(
    /// `GET /patients/{id}/policies/{policy_id}`.
    GetPolicy {
        /// Whose policy.
        patient: PatientId,
        /// Which policy.
        id: PolicyId,
    } -> Policy, "patient.policy_get", needs(Action::View),
    |op, conn, ctx| { policies::get(conn, ctx.tenant, op.patient, op.id).await }
);

tenant_op!(
    /// `PATCH /patients/{id}/policies/{policy_id}` (JSON merge patch).
    PatchPolicy {
        /// Whose policy.
        patient: PatientId,
        /// Which policy.
        id: PolicyId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Policy, "patient.policy_patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (p, changed) =
            policies::patch(conn, ctx.tenant, op.patient, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "patient.policy_updated", "patient", op.patient,
                json!({"policy_id": p.id, "patch": op.patch}))
                .await?;
        }
        Ok(p)
    }
);

tenant_op!(
    /// `DELETE /patients/{id}/policies/{policy_id}`.
    RemovePolicy {
        /// Whose policy.
        patient: PatientId,
        /// Which policy.
        id: PolicyId,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (), "patient.policy_remove", needs(Action::Delete),
    |op, conn, ctx| {
        let p = policies::remove(conn, ctx.tenant, op.patient, op.id, op.if_match).await?;
        ctx.audit(conn, "patient.policy_removed", "patient", op.patient,
            json!({"policy_id": p.id, "payer_id": p.payer_id, "rank": p.rank}))
            .await?;
        Ok(())
    }
);

tenant_op!(
    /// `POST /patients/{id}/policies/rank`.
    RerankPolicies {
        /// Whose policies.
        patient: PatientId,
        /// The complete new order.
        input: RerankInput,
    } -> Vec<Policy>, "patient.policy_rerank", needs(Action::Edit),
    |op, conn, ctx| {
        let (list, changed) = policies::rerank(conn, ctx.tenant, op.patient, &op.input).await?;
        if changed {
            let order: Vec<String> = list.iter().map(|p| p.id.to_string()).collect();
            ctx.audit(conn, "patient.policies_reranked", "patient", op.patient, json!({"policy_ids": order}))
                .await?;
        }
        Ok(list)
    }
);
