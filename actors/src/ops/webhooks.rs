//! Webhook operations: endpoints (`webhooks:view|edit|delete`), their delivery log, and two
//! internal operations the dispatcher runs (`Access::Internal`, never routed): claiming the
//! endpoints an event goes to, and recording the attempts. The secret is returned by the create
//! and the rotation only; it is in no event, audit row or log.

use super::Access;
use aries_tenants::DomainError;
use aries_tenants::TenantId;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::WebhookEndpointId;
use aries_tenants::page::PageRequest;
use aries_tenants::webhooks::{
    self, AttemptOutcome, Claimed, DeliveryDetail, DeliveryStatus, WebhookDelivery,
    WebhookEndpoint, WebhookInput, WebhookWithSecret,
};
use serde_json::json;
use uuid::Uuid;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Webhooks, action))
}

/// What the audit trail keeps of an endpoint (never the secret).
fn summary(e: &WebhookEndpoint) -> serde_json::Value {
    json!({"url": e.url, "event_types": e.event_types, "active": e.active, "version": e.version})
}

tenant_op!(
    /// `POST /webhooks`: registers an endpoint; the answer carries its secret, once.
    CreateWebhook {
        /// The new endpoint.
        input: WebhookInput,
        /// `[webhooks] allow_private_networks`: whether an IP literal may be a private address.
        allow_private_networks: bool,
    } -> WebhookWithSecret, "webhook.create", needs(Action::Edit),
    |op, conn, ctx| {
        let created = webhooks::create(conn, ctx.tenant, &op.input, op.allow_private_networks).await?;
        ctx.audit(conn, "webhook_endpoint.created", "webhook_endpoint", created.endpoint.id,
            summary(&created.endpoint)).await?;
        Ok(created)
    }
);

tenant_op!(
    /// `GET /webhooks/{id}`.
    GetWebhook {
        /// Which endpoint.
        id: WebhookEndpointId,
    } -> WebhookEndpoint, "webhook.get", needs(Action::View),
    |op, conn, ctx| { webhooks::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /webhooks`.
    ListWebhooks {
        /// Which page.
        page: PageRequest,
        /// Only active (or inactive) endpoints.
        active: Option<bool>,
    } -> Vec<WebhookEndpoint>, "webhook.list", needs(Action::View),
    |op, conn, ctx| { webhooks::list(conn, ctx.tenant, op.page, op.active).await }
);

tenant_op!(
    /// `PATCH /webhooks/{id}` (JSON merge patch of url, description, event_types, active).
    PatchWebhook {
        /// Which endpoint.
        id: WebhookEndpointId,
        /// The merge patch (an object).
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
        /// As for the create.
        allow_private_networks: bool,
    } -> WebhookEndpoint, "webhook.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (e, changed) = webhooks::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match,
            op.allow_private_networks).await?;
        if changed {
            ctx.audit(conn, "webhook_endpoint.updated", "webhook_endpoint", e.id, summary(&e)).await?;
        }
        Ok(e)
    }
);

tenant_op!(
    /// `DELETE /webhooks/{id}` (its delivery log goes with it).
    DeleteWebhook {
        /// Which endpoint.
        id: WebhookEndpointId,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (), "webhook.delete", needs(Action::Delete),
    |op, conn, ctx| {
        webhooks::delete(conn, ctx.tenant, op.id, op.if_match).await?;
        ctx.audit(conn, "webhook_endpoint.deleted", "webhook_endpoint", op.id, json!({})).await
    }
);

tenant_op!(
    /// `POST /webhooks/{id}/rotate-secret`: a new secret, returned once; the old one stops
    /// signing at once.
    RotateWebhookSecret {
        /// Which endpoint.
        id: WebhookEndpointId,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> WebhookWithSecret, "webhook.rotate_secret", needs(Action::Edit),
    |op, conn, ctx| {
        let rotated = webhooks::rotate_secret(conn, ctx.tenant, op.id, op.if_match).await?;
        ctx.audit(conn, "webhook_endpoint.secret_rotated", "webhook_endpoint", op.id,
            json!({"version": rotated.endpoint.version})).await?;
        Ok(rotated)
    }
);

tenant_op!(
    /// `GET /webhooks/{id}/deliveries`.
    ListWebhookDeliveries {
        /// Which endpoint.
        endpoint: WebhookEndpointId,
        /// Which page (by event id).
        page: PageRequest,
        /// Only deliveries in this status.
        status: Option<DeliveryStatus>,
    } -> Vec<WebhookDelivery>, "webhook.delivery_list", needs(Action::View),
    |op, conn, ctx| {
        webhooks::list_deliveries(conn, ctx.tenant, op.endpoint, op.page, op.status).await
    }
);

tenant_op!(
    /// `GET /webhooks/{id}/deliveries/{event_id}`: one delivery with its attempts.
    GetWebhookDelivery {
        /// Which endpoint.
        endpoint: WebhookEndpointId,
        /// Which event.
        event: Uuid,
    } -> DeliveryDetail, "webhook.delivery_get", needs(Action::View),
    |op, conn, ctx| { webhooks::get_delivery(conn, ctx.tenant, op.endpoint, op.event).await }
);

/// The envelope named another tenant than the one that holds the slug now: the event cannot be
/// delivered (the dispatcher rejects it).
fn same_tenant(actual: TenantId, expected: TenantId) -> Result<(), DomainError> {
    if actual == expected {
        Ok(())
    } else {
        Err(DomainError::NotFound("tenant"))
    }
}

tenant_op!(
    /// Internal (the dispatcher): the active endpoints subscribed to an event's type that have
    /// not had it delivered, claimed for `claim_ms` so no other instance sends it meanwhile.
    ClaimWebhookDeliveries {
        /// The envelope's `tenant_id` (checked against the slug's tenant).
        tenant: TenantId,
        /// The event's id.
        event: Uuid,
        /// The event's type.
        event_type: String,
        /// How long the claim holds (longer than a send can take).
        claim_ms: i64,
    } -> Claimed, "webhook.claim", Access::Internal,
    |op, conn, ctx| {
        same_tenant(ctx.tenant, op.tenant)?;
        webhooks::claim_deliveries(conn, ctx.tenant, op.event, &op.event_type, op.claim_ms).await
    }
);

tenant_op!(
    /// Internal (the dispatcher): records a batch of attempts of one event and settles its
    /// delivery rows.
    RecordWebhookAttempts {
        /// The envelope's `tenant_id` (checked against the slug's tenant).
        tenant: TenantId,
        /// The event's id.
        event: Uuid,
        /// What each endpoint answered.
        outcomes: Vec<AttemptOutcome>,
        /// The broker's last attempt: failures become `failed`.
        final_attempt: bool,
    } -> (), "webhook.record", Access::Internal,
    |op, conn, ctx| {
        same_tenant(ctx.tenant, op.tenant)?;
        webhooks::record_attempts(conn, ctx.tenant, op.event, &op.outcomes, op.final_attempt).await
    }
);
