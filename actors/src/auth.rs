//! Who is calling, as the tenant actor sees it. The HTTP layer authenticates the credential's
//! form (a JWT's signature and expiry, an API key's shape) and hands over a [`Credential`]; the
//! tenant actor resolves it against the tenant's data into a [`Principal`] with the permissions of
//! its *current* roles. Resolutions are cached for `credential_ttl`, so disabling a user, revoking
//! a key or a client, or changing roles takes effect on every instance within that time.

use aries_tenants::auth::permissions::{Permission, PermissionSet, RoleName};
use aries_tenants::auth::users::UserStatus;
use aries_tenants::auth::{api_keys, clients, roles, users};
use aries_tenants::ids::{ApiKeyId, UserId};
use aries_tenants::{DomainError, LocationId, TenantId};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A credential whose form the HTTP layer has checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// The subject of a valid user access token.
    User(UserId),
    /// The subject of a valid client-credentials access token.
    Client(String),
    /// SHA-256 of a presented API key.
    ApiKey([u8; 32]),
    /// The platform operator, on the operator API's tenant bootstrap routes only.
    Operator,
}

/// Where a call came from, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The HTTP request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub source_ip: Option<String>,
}

/// A call into a tenant: who (if anyone) and from where.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// The caller's credential (required by operations with `Access::Requires`).
    pub credential: Option<Credential>,
    /// Request id and address, recorded with audited changes.
    pub meta: RequestMeta,
}

/// Who a principal is, for audit and `created_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalId {
    User(UserId),
    Client(String),
    ApiKey(ApiKeyId),
    Operator,
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalId::User(id) => write!(f, "user:{id}"),
            PrincipalId::Client(id) => write!(f, "client:{id}"),
            PrincipalId::ApiKey(id) => write!(f, "api_key:{id}"),
            PrincipalId::Operator => f.write_str("operator"),
        }
    }
}

/// A resolved caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is.
    pub id: PrincipalId,
    /// What its current roles allow.
    pub permissions: PermissionSet,
    /// Locations it is limited to (`None`: all).
    pub location_ids: Option<Vec<LocationId>>,
}

impl Principal {
    /// Fails with `Forbidden` naming the permission when it is not held.
    pub fn require(&self, p: Permission) -> Result<(), DomainError> {
        if self.permissions.allows(p) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!("requires {p}")))
        }
    }

    /// Whether the principal may act in `location`.
    pub fn may_use_location(&self, location: LocationId) -> bool {
        self.location_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&location))
    }
}

/// A tenant's custom roles by name.
type CustomRoles = Arc<HashMap<String, Vec<Permission>>>;

/// Credentials a tenant's cache holds at most (resolved and refused together).
pub const CREDENTIALS_KEPT: usize = 1_024;

/// Resolved credentials and the tenant's custom roles, each kept for `ttl`.
pub struct CredentialCache {
    /// How long a resolution stands before it is checked again.
    ttl: Duration,
    /// Resolved (or refused) credentials, at most [`CREDENTIALS_KEPT`]. A plain mutex, not a
    /// `DashMap`: one exists per active tenant, and an empty `DashMap` costs ~1 KiB (8 cache-padded
    /// shards) where its concurrency buys nothing (lookups are brief and per tenant).
    entries: Mutex<HashMap<Credential, (Instant, Option<Principal>)>>,
    /// The tenant's custom roles (shared by every resolution).
    custom_roles: Mutex<Option<(Instant, CustomRoles)>>,
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            custom_roles: Mutex::new(None),
        }
    }

    /// Forgets everything (after a change to users, keys, clients or roles made through this actor).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
        if let Ok(mut roles) = self.custom_roles.lock() {
            *roles = None;
        }
    }

    async fn custom_roles(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<CustomRoles, DomainError> {
        if let Ok(guard) = self.custom_roles.lock()
            && let Some((at, map)) = guard.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(map.clone());
        }
        let map = Arc::new(roles::load(conn, tenant).await?);
        if let Ok(mut guard) = self.custom_roles.lock() {
            *guard = Some((Instant::now(), map.clone()));
        }
        Ok(map)
    }

    /// The resolution of `credential` if it is cached and still fresh (no database needed):
    /// `Some(Ok(principal))`, `Some(Err(Unauthenticated))` for a refused credential, `None` when
    /// it must be looked up.
    pub fn cached(&self, credential: &Credential) -> Option<Result<Principal, DomainError>> {
        let entries = self.entries.lock().ok()?;
        let (at, principal) = entries.get(credential)?;
        if at.elapsed() >= self.ttl {
            return None;
        }
        Some(
            principal
                .clone()
                .ok_or(DomainError::Unauthenticated("credential refused")),
        )
    }

    /// The principal behind `credential`, or `Unauthenticated`.
    pub async fn resolve(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        credential: &Credential,
    ) -> Result<Principal, DomainError> {
        if let Some(cached) = self.cached(credential) {
            return cached;
        }
        let resolved = self.lookup(conn, tenant, credential).await?;
        self.remember(credential, resolved.clone());
        resolved.ok_or(DomainError::Unauthenticated("credential refused"))
    }

    /// Keeps a resolution (`None`: refused) for `ttl`, within [`CREDENTIALS_KEPT`] entries.
    fn remember(&self, credential: &Credential, resolved: Option<Principal>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CREDENTIALS_KEPT && !entries.contains_key(credential) {
            // Many distinct credentials (e.g. a flood of bad keys): drop the stale ones, and
            // everything if that is not enough; a dropped entry only costs a lookup.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= CREDENTIALS_KEPT {
                entries.clear();
            }
        }
        entries.insert(credential.clone(), (Instant::now(), resolved));
    }

    /// Credentials held now (resolved and refused).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether no credential is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn lookup(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        credential: &Credential,
    ) -> Result<Option<Principal>, DomainError> {
        let (id, role_names, location_ids) = match credential {
            Credential::Operator => {
                return Ok(Some(Principal {
                    id: PrincipalId::Operator,
                    permissions: PermissionSet::of_roles(
                        &[RoleName::Owner.as_str().to_owned()],
                        &HashMap::new(),
                    ),
                    location_ids: None,
                }));
            }
            Credential::User(user) => match users::standing(conn, tenant, *user).await? {
                Some((UserStatus::Active, roles, locations)) => {
                    (PrincipalId::User(*user), roles, locations)
                }
                _ => return Ok(None),
            },
            Credential::Client(client) => match clients::is_live(conn, tenant, client).await? {
                Some(roles) => (PrincipalId::Client(client.clone()), roles, None),
                None => return Ok(None),
            },
            Credential::ApiKey(hash) => match api_keys::authenticate(conn, tenant, hash).await? {
                Some(key) => (PrincipalId::ApiKey(key.id), key.roles, None),
                None => return Ok(None),
            },
        };
        let custom = self.custom_roles(conn, tenant).await?;
        Ok(Some(Principal {
            id,
            permissions: PermissionSet::of_roles(&role_names, &custom),
            location_ids,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Credential {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        Credential::ApiKey(k)
    }

    #[test]
    fn a_flood_of_distinct_credentials_keeps_the_cache_bounded() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        cache.remember(&Credential::Operator, None);
        for i in 0..3 * CREDENTIALS_KEPT as u32 {
            cache.remember(&key(i), None);
            assert!(cache.len() <= CREDENTIALS_KEPT, "{} kept", cache.len());
        }
        // The last one is still answered from the cache, as refused.
        let last = key(3 * CREDENTIALS_KEPT as u32 - 1);
        assert!(matches!(
            cache.cached(&last),
            Some(Err(DomainError::Unauthenticated(_)))
        ));
    }

    #[test]
    fn a_stale_resolution_is_looked_up_again() {
        let cache = CredentialCache::new(Duration::ZERO);
        cache.remember(&key(1), None);
        assert_eq!(cache.len(), 1);
        assert!(cache.cached(&key(1)).is_none());
        cache.clear();
        assert!(cache.is_empty());
    }
}
