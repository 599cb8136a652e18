//! Permissions are (resource, action) pairs, written `resource:action` (`locations:edit`). A role is
//! a set of permissions; a principal's permissions are the union of its roles'. Built-in roles are
//! defined here; tenants add custom roles as stored lists of permissions.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)+ other => Err(format!("unknown {} `{other}`", stringify!($name).to_lowercase())) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

names!(
    /// What a permission is about: the tenant's resources (DOMAIN.md §1's services), present and coming.
    Resource {
        Locations => "locations",
        Users => "users",
        Roles => "roles",
        ApiKeys => "api_keys",
        OauthClients => "oauth_clients",
        Audit => "audit",
        Patients => "patients",
        Payers => "payers",
        Prescribers => "prescribers",
        Inventory => "inventory",
        PriceLists => "price_lists",
        Serials => "serials",
        Orders => "orders",
        Deliveries => "deliveries",
        Billing => "billing",
        Payments => "payments",
        Reports => "reports",
        Webhooks => "webhooks",
        Notifications => "notifications",
    }
);

names!(
    /// What may be done to a resource.
    Action {
        View => "view",
        Edit => "edit",
        Delete => "delete",
        /// Run a workflow on it: approve, deliver, bill, post a payment.
        Process => "process",
    }
);

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub resource: Resource,
    pub action: Action,
}

impl Permission {
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (r, a) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not resource:action"))?;
        Ok(Permission {
            resource: r.parse()?,
            action: a.parse()?,
        })
    }
}

names!(
    /// The roles every tenant has.
    RoleName {
        /// Everything, including users, roles and credentials.
        Owner => "owner",
        /// Everything but the tenant's credentials policy (owners manage roles).
        Admin => "admin",
        /// Claims, payments, reports and price lists (fee-schedule imports, adjustments); reads the rest.
        Billing => "billing",
        /// Patients, prescribers and orders; reads the rest it needs.
        Intake => "intake",
        /// Inventory, serials, deliveries and pickups.
        Warehouse => "warehouse",
        /// Reads everything operational, changes nothing.
        Viewer => "viewer",
    }
);

/// Resources that hold the tenant's security configuration.
const SECURITY: &[Resource] = &[
    Resource::Users,
    Resource::Roles,
    Resource::ApiKeys,
    Resource::OauthClients,
    Resource::Audit,
];

fn all_actions(resources: &[Resource]) -> impl Iterator<Item = Permission> + '_ {
    resources
        .iter()
        .flat_map(|r| Action::ALL.iter().map(move |a| Permission::new(*r, *a)))
}

fn view_of(resources: &[Resource]) -> impl Iterator<Item = Permission> + '_ {
    resources.iter().map(|r| Permission::new(*r, Action::View))
}

/// Operational resources (not security configuration).
fn operational() -> Vec<Resource> {
    Resource::ALL
        .iter()
        .copied()
        .filter(|r| !SECURITY.contains(r))
        .collect()
}

impl RoleName {
    /// The permissions of a built-in role.
    pub fn permissions(self) -> BTreeSet<Permission> {
        use Resource::*;
        let ops = operational();
        match self {
            RoleName::Owner => all_actions(Resource::ALL).collect(),
            RoleName::Admin => all_actions(&ops)
                .chain(all_actions(&[Users, ApiKeys, OauthClients]))
                .chain(view_of(&[Roles, Audit]))
                .collect(),
            RoleName::Billing => view_of(&ops)
                .chain(all_actions(&[Billing, Payments, Reports]))
                .chain(all_actions(&[PriceLists]))
                .collect(),
            RoleName::Intake => view_of(&ops)
                .chain(all_actions(&[Patients, Prescribers, Orders]))
                .chain([Permission::new(Payers, Action::Edit)])
                .collect(),
            RoleName::Warehouse => view_of(&ops)
                .chain(all_actions(&[Inventory, Serials, Deliveries]))
                .collect(),
            RoleName::Viewer => view_of(&ops).collect(),
        }
    }
}

/// The permissions a principal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// The union of `roles`' permissions: built-in names first, then the tenant's custom roles.
    /// Unknown role names grant nothing (a deleted custom role must not fail logins).
    pub fn of_roles(roles: &[String], custom: &HashMap<String, Vec<Permission>>) -> Self {
        let mut set = BTreeSet::new();
        for role in roles {
            if let Ok(builtin) = role.parse::<RoleName>() {
                set.extend(builtin.permissions());
            } else if let Some(perms) = custom.get(role) {
                set.extend(perms.iter().copied());
            }
        }
        Self(set)
    }

    pub fn allows(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// True when every permission of `other` is in this set (a principal may only grant what it holds).
    pub fn covers(&self, other: &PermissionSet) -> bool {
        other.0.is_subset(&self.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Resource::*;

    fn set(roles: &[&str]) -> PermissionSet {
        let roles: Vec<String> = roles.iter().map(|s| (*s).to_owned()).collect();
        let mut custom = HashMap::new();
        custom.insert(
            "driver".to_owned(),
            vec![
                Permission::new(Deliveries, Process),
                Permission::new(Locations, View),
            ],
        );
        PermissionSet::of_roles(&roles, &custom)
    }

    #[test]
    fn builtin_roles() {
        let owner = set(&["owner"]);
        assert!(Resource::ALL.iter().all(|r| {
            Action::ALL
                .iter()
                .all(|a| owner.allows(Permission::new(*r, *a)))
        }));
        let admin = set(&["admin"]);
        assert!(
            admin.allows(Permission::new(Users, Edit))
                && admin.allows(Permission::new(Locations, Delete))
        );
        assert!(!admin.allows(Permission::new(Roles, Edit)));
        let viewer = set(&["viewer"]);
        assert!(viewer.allows(Permission::new(Locations, View)));
        assert!(!viewer.allows(Permission::new(Locations, Edit)));
        assert!(
            !viewer.allows(Permission::new(ApiKeys, View)),
            "viewers do not see credentials"
        );
        let billing = set(&["billing"]);
        assert!(
            billing.allows(Permission::new(Payments, Process))
                && !billing.allows(Permission::new(Orders, Edit))
        );
        assert!(
            billing.allows(Permission::new(PriceLists, Process))
                && billing.allows(Permission::new(PriceLists, Edit))
        );
        let intake = set(&["intake"]);
        assert!(
            intake.allows(Permission::new(Orders, Edit))
                && !intake.allows(Permission::new(Billing, Process))
        );
        let warehouse = set(&["warehouse"]);
        assert!(
            warehouse.allows(Permission::new(Serials, Process))
                && !warehouse.allows(Permission::new(Patients, Edit))
        );
        assert!(
            !intake.allows(Permission::new(PriceLists, Process))
                && !warehouse.allows(Permission::new(PriceLists, Edit))
                && intake.allows(Permission::new(PriceLists, View))
        );
    }

    #[test]
    fn custom_roles_and_unions() {
        let driver = set(&["driver"]);
        assert!(driver.allows(Permission::new(Deliveries, Process)));
        assert!(!driver.allows(Permission::new(Orders, View)));
        let both = set(&["driver", "billing"]);
        assert!(
            both.allows(Permission::new(Deliveries, Process))
                && both.allows(Permission::new(Payments, Edit))
        );
        assert_eq!(set(&["no-such-role"]), PermissionSet::default());
        assert!(set(&["owner"]).covers(&both));
        assert!(!set(&["viewer"]).covers(&both));
    }

    #[test]
    fn permission_text() {
        assert_eq!(
            "locations:edit".parse::<Permission>(),
            Ok(Permission::new(Locations, Edit))
        );
        assert_eq!(Permission::new(ApiKeys, View).to_string(), "api_keys:view");
        assert!("locations".parse::<Permission>().is_err());
        assert!("spaceships:view".parse::<Permission>().is_err());
        assert!("locations:fly".parse::<Permission>().is_err());
    }
}
