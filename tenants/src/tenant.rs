//! The tenant as the platform sees it. A tenant is a DME provider company; its slug names it in URLs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The tenant's URL name: `^[a-z][a-z0-9-]{2,62}$`. Immutable once created, so URLs and routing
/// keys never change under a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

/// The slug does not match `^[a-z][a-z0-9-]{2,62}$`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a slug is 3 to 63 characters: a lowercase letter, then lowercase letters, digits or hyphens"
)]
pub struct InvalidSlug;

impl TenantSlug {
    pub fn parse(s: &str) -> Result<Self, InvalidSlug> {
        let b = s.as_bytes();
        let ok = (3..=63).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidSlug)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantSlug {
    type Error = InvalidSlug;
    fn try_from(s: String) -> Result<Self, InvalidSlug> {
        Self::parse(&s)
    }
}

impl From<TenantSlug> for String {
    fn from(s: TenantSlug) -> String {
        s.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_enum!(
    /// Where a tenant is in its life. Only `active` tenants are served by the tenant API.
    TenantStatus {
        /// Created in the catalog, being placed and set up on its shard.
        Provisioning => "provisioning",
        /// Serving.
        Active => "active",
        /// Temporarily closed by the operator (unpaid bill, abuse); data kept, API answers 403.
        Suspended => "suspended",
        /// Closed for good; data kept for retention, API answers 403, cannot be resumed.
        Archived => "archived",
    }
);

text_enum!(
    /// The commercial plan; later issues hang limits (rate, users, storage) on it.
    Plan {
        Starter => "starter",
        Standard => "standard",
        Enterprise => "enterprise",
    }
);

/// An operator's action on a tenant's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    /// Close the tenant's API until resumed; allowed from `active` or `suspended`.
    Suspend,
    /// Reopen a suspended tenant; allowed from `suspended` or `active`.
    Resume,
    /// Close the tenant for good; allowed from any status but `provisioning`, and irreversible.
    Archive,
}

impl TenantStatus {
    /// The status after `action`, or `None` when the action is not allowed from this status.
    /// Suspending a suspended tenant (or resuming an active one) is allowed and changes nothing, so
    /// operators and scripts can retry safely.
    pub fn apply(self, action: StatusAction) -> Option<TenantStatus> {
        use StatusAction::*;
        use TenantStatus::*;
        match (self, action) {
            (Active | Suspended, Suspend) => Some(Suspended),
            (Active | Suspended, Resume) => Some(Active),
            (Active | Suspended | Archived, Archive) => Some(Archived),
            (Provisioning, _) | (Archived, Suspend | Resume) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in [
            "abc",
            "demo",
            "acme-medical-2",
            &format!("a{}", "b".repeat(62)),
        ] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "1abc",
            "-abc",
            "Abc",
            "ab_c",
            "abc ",
            "ab\u{e9}c",
            &"a".repeat(64),
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_transitions() {
        use StatusAction::*;
        use TenantStatus::*;
        assert_eq!(Active.apply(Suspend), Some(Suspended));
        assert_eq!(Suspended.apply(Suspend), Some(Suspended));
        assert_eq!(Suspended.apply(Resume), Some(Active));
        assert_eq!(Active.apply(Archive), Some(Archived));
        assert_eq!(Archived.apply(Resume), None);
        assert_eq!(Archived.apply(Archive), Some(Archived));
        assert_eq!(Provisioning.apply(Suspend), None);
    }

    #[test]
    fn enum_text_round_trips() {
        for s in TenantStatus::ALL {
            assert_eq!(s.as_str().parse::<TenantStatus>().ok(), Some(*s));
        }
        assert!("paused".parse::<TenantStatus>().is_err());
    }
}
