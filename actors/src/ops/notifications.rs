//! Notification operations: the routed ones (the channel, rules and log, under the
//! `notifications` permission) and the internal ones the notification consumer runs
//! (`Access::Internal`, never routed): what to send for an event, and what came of it.

use super::Access;
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::notifications::{
    self as store, Attempt, Channel, ChannelInput, LogEntry, LogFilter, Rule, RuleInput, Secret,
};
use aries_tenants::page::PageRequest;
use serde_json::json;
use uuid::Uuid;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Notifications, action))
}

tenant_op!(
    /// `GET /notifications/channel`.
    GetNotificationChannel {} -> Channel, "notification_channel.get", needs(Action::View),
    |_op, conn, ctx| { store::get_channel(conn, ctx.tenant).await }
);

tenant_op!(
    /// `PUT /notifications/channel`: creates or replaces the channel. The audit row names the kind
    /// and whether a secret changed, never the secret.
    PutNotificationChannel {
        /// The whole channel.
        input: ChannelInput,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (Channel, bool), "notification_channel.put", needs(Action::Edit),
    |op, conn, ctx| {
        let secret_changed = match op.input.kind.as_str() {
            "email" => op.input.email.as_ref().is_some_and(|e| e.password.is_some()),
            _ => op.input.sms.as_ref().is_some_and(|s| s.auth_token.is_some()),
        };
        let (channel, created) = store::put_channel(conn, ctx.tenant, &op.input, op.if_match).await?;
        ctx.audit(
            conn,
            "notification_channel.updated",
            "notification_channel",
            ctx.tenant,
            json!({"kind": channel.kind, "active": channel.active, "secret_changed": secret_changed}),
        )
        .await?;
        Ok((channel, created))
    }
);

tenant_op!(
    /// `POST /notifications/rules`.
    CreateNotificationRule {
        /// The new rule.
        input: RuleInput,
    } -> Rule, "notification_rule.create", needs(Action::Edit),
    |op, conn, ctx| {
        let rule = store::create_rule(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "notification_rule.created", "notification_rule", rule.id, json!({"name": rule.name}))
            .await?;
        Ok(rule)
    }
);

tenant_op!(
    /// `GET /notifications/rules/{id}`.
    GetNotificationRule {
        /// Which rule.
        id: Uuid,
    } -> Rule, "notification_rule.get", needs(Action::View),
    |op, conn, ctx| { store::get_rule(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /notifications/rules`.
    ListNotificationRules {
        /// Which page.
        page: PageRequest,
        /// Only active (or inactive) rules.
        active: Option<bool>,
    } -> Vec<Rule>, "notification_rule.list", needs(Action::View),
    |op, conn, ctx| { store::list_rules(conn, ctx.tenant, op.page, op.active).await }
);

tenant_op!(
    /// `PATCH /notifications/rules/{id}` (JSON merge patch).
    PatchNotificationRule {
        /// Which rule.
        id: Uuid,
        /// The merge patch (an object).
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Rule, "notification_rule.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (rule, changed) = store::patch_rule(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "notification_rule.updated", "notification_rule", rule.id, json!({"patch": op.patch}))
                .await?;
        }
        Ok(rule)
    }
);

tenant_op!(
    /// `DELETE /notifications/rules/{id}`.
    DeleteNotificationRule {
        /// Which rule.
        id: Uuid,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (), "notification_rule.delete", needs(Action::Delete),
    |op, conn, ctx| {
        store::delete_rule(conn, ctx.tenant, op.id, op.if_match).await?;
        ctx.audit(conn, "notification_rule.deleted", "notification_rule", op.id, json!({})).await
    }
);

tenant_op!(
    /// `GET /notifications/log`.
    ListNotificationLog {
        /// Which page.
        page: PageRequest,
        /// Which entries.
        filter: LogFilter,
    } -> Vec<LogEntry>, "notification_log.list", needs(Action::View),
    |op, conn, ctx| { store::list_log(conn, ctx.tenant, op.page, &op.filter).await }
);

/// What the consumer needs to notify one event: the channel with its secret, the rules that
/// fire, and what earlier deliveries of the same event already did.
#[derive(Debug)]
pub struct NotificationPlan {
    /// The tenant's channel and secret; `None` when no channel is set.
    pub channel: Option<(Channel, Option<Secret>)>,
    /// Active rules whose patterns select the event type.
    pub rules: Vec<Rule>,
    /// Log rows of this event (a redelivery skips the final ones).
    pub log: Vec<LogEntry>,
}

tenant_op!(
    /// Internal (the notification consumer): the plan for one event.
    PlanNotifications {
        /// The event's id.
        event_id: Uuid,
        /// The event's type.
        event_type: String,
    } -> NotificationPlan, "notification.plan", Access::Internal,
    |op, conn, ctx| {
        let channel = store::channel_for_sending(conn, ctx.tenant).await?;
        if channel.as_ref().is_none_or(|(c, _)| !c.active) {
            return Ok(NotificationPlan { channel, rules: Vec::new(), log: Vec::new() });
        }
        let rules = store::rules_matching(conn, ctx.tenant, &op.event_type).await?;
        let log = if rules.is_empty() {
            Vec::new()
        } else {
            store::log_of_event(conn, ctx.tenant, op.event_id).await?
        };
        Ok(NotificationPlan { channel, rules, log })
    }
);

tenant_op!(
    /// Internal (the notification consumer): records what came of the attempts for one event.
    RecordNotificationAttempts {
        /// One per recipient tried.
        attempts: Vec<Attempt>,
    } -> (), "notification.record", Access::Internal,
    |op, conn, ctx| {
        for a in &op.attempts {
            store::record_attempt(conn, ctx.tenant, a).await?;
        }
        Ok::<(), DomainError>(())
    }
);
