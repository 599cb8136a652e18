//! Typed identifiers. All ids are UUIDv7: sortable by creation time (so they make stable cursor
//! order) and random enough in their low bits not to be guessable in practice.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            /// Accepts only the hyphenated 36-character form, the one the API prints.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Uuid::parse_str also takes the simple, braced and URN forms; an API has one spelling.
                if s.len() != 36 {
                    return Err(InvalidId);
                }
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId)
            }
        }
    };
}

/// The text is not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID in its hyphenated form (8-4-4-4-12 hex digits)")]
pub struct InvalidId;

typed_id!(
    /// A tenant (a DME provider company). The shard key.
    TenantId
);
typed_id!(
    /// A location (branch) of a tenant.
    LocationId
);
typed_id!(
    /// A shard (one Postgres database holding many tenants' rows).
    ShardId
);
typed_id!(
    /// A warehouse (stock location).
    WarehouseId
);
typed_id!(
    /// An inventory item (a product the provider rents or sells).
    ItemId
);
typed_id!(
    /// One serial-numbered unit of an item.
    SerialId
);
typed_id!(
    /// A payer (insurer or program).
    PayerId
);
typed_id!(
    /// A prescriber (ordering physician, NP, PA).
    PrescriberId
);
typed_id!(
    /// A patient (the legacy "customer").
    PatientId
);
typed_id!(
    /// One of a patient's insurance policies (ranked 1–4).
    PolicyId
);
typed_id!(
    /// A price list (per payer, or retail).
    PriceListId
);
typed_id!(
    /// An order (a patient's request for equipment).
    OrderId
);
typed_id!(
    /// One line of an order (one item, sold or rented).
    OrderLineId
);
typed_id!(
    /// A tenant user (staff member who logs in).
    UserId
);
typed_id!(
    /// A tenant's API key.
    ApiKeyId
);
typed_id!(
    /// A refresh-token family: every token rotated from one login.
    FamilyId
);
typed_id!(
    /// An outbox event; becomes the RabbitMQ `message_id`, so consumers can deduplicate.
    EventId
);
typed_id!(
    /// An invoice (claim): one order's lines billed for one month.
    InvoiceId
);
typed_id!(
    /// One line of an invoice: an order line billed for one month.
    InvoiceLineId
);
typed_id!(
    /// One accounts-receivable transaction on an invoice line (append-only).
    ArTransactionId
);
typed_id!(
    /// One billing run.
    BillingRunId
);
typed_id!(
    /// A tenant's webhook endpoint (a URL that receives the tenant's events).
    WebhookEndpointId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_hyphenated_form() {
        let id = TenantId::new();
        assert_eq!(id.to_string().parse::<TenantId>().ok(), Some(id));
        assert!(
            id.as_uuid()
                .simple()
                .to_string()
                .parse::<TenantId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<TenantId>().is_err());
        assert!("".parse::<TenantId>().is_err());
        assert!(
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"
                .parse::<TenantId>()
                .is_err()
        );
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = LocationId::new();
        let b = LocationId::new();
        assert!(a < b);
    }
}
