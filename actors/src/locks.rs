//! Leases in Redis: at most one holder of a named lock across every instance, with a fencing
//! token that grows with each acquisition (billing runs now; migrations and tenant moves later).
//!
//! - acquire: `INCR <prefix>:lock-token:<name>` gives the token, then
//!   `SET <prefix>:lock:<name> <token> NX PX <ttl>`; a lock already held is [`LockError::Held`];
//! - renew: `PEXPIRE` only while the key still holds our token (a Lua compare-and-expire);
//! - release: `DEL` only while the key still holds our token (a Lua compare-and-delete), so a
//!   holder whose lease expired never deletes its successor's.
//!
//! A lease can expire under a holder that stalls; that is what the fencing token is for: the
//! protected resource remembers the highest token it saw and refuses older ones.
//!
//! Redis not answering within [`REDIS_TIMEOUT`] is [`LockError::Unavailable`]; callers must then
//! not do the work (never run unlocked).

use crate::links::RedisLink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A Redis call slower than this counts as Redis being down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Why a lease was not had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("the lock {0} is held")]
    Held(String),
    /// Redis did not answer (or answered with an error).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

/// Named leases under one key prefix (`redis.key_prefix`).
#[derive(Clone)]
pub struct Locks {
    /// Where the leases live.
    redis: RedisLink,
    /// Start of every key, so deployments can share a Redis.
    prefix: String,
}

/// A held lease. Release it with [`Locks::release`]; if dropped, it expires after its TTL.
#[derive(Debug)]
pub struct Lease {
    /// The lock's name (`billing:<tenant>`).
    pub name: String,
    /// The fencing token: larger than every earlier holder's.
    pub token: i64,
    /// How long it lasts without renewal.
    pub ttl: Duration,
    /// Set when a renewal found the lease gone (expired and maybe taken): stop working.
    lost: Arc<AtomicBool>,
}

impl Lease {
    /// Whether a renewal found the lease gone.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The flag behind [`Lease::is_lost`], for work that outlives a borrow of the lease.
    pub fn is_lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LockError> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LockError::Unavailable(e.to_string())),
        Err(_) => Err(LockError::Unavailable(format!(
            "no answer within {REDIS_TIMEOUT:?}"
        ))),
    }
}

impl Locks {
    pub fn new(redis: RedisLink, prefix: String) -> Self {
        Self { redis, prefix }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:lock:{name}", self.prefix)
    }

    async fn conn(&self) -> Result<redis::aio::ConnectionManager, LockError> {
        self.redis
            .connection()
            .await
            .ok_or_else(|| LockError::Unavailable("not connected".into()))
    }

    /// Takes the lock `name` for `ttl`, or says who has it / that Redis is down.
    pub async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, LockError> {
        let mut conn = self.conn().await?;
        let token: i64 = timed(
            redis::cmd("INCR")
                .arg(format!("{}:lock-token:{name}", self.prefix))
                .query_async(&mut conn),
        )
        .await?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = timed(
            redis::cmd("SET")
                .arg(self.key(name))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn),
        )
        .await?;
        match set {
            Some(_) => Ok(Lease {
                name: name.to_owned(),
                token,
                ttl,
                lost: Arc::new(AtomicBool::new(false)),
            }),
            None => Err(LockError::Held(name.to_owned())),
        }
    }

    /// Takes the lock `name`, waiting while another holder has it (polling) for at most
    /// `wait_held`, and while Redis does not answer for at most `wait_unavailable`; then says why
    /// not.
    pub async fn acquire_waiting(
        &self,
        name: &str,
        ttl: Duration,
        wait_held: Duration,
        wait_unavailable: Duration,
    ) -> Result<Lease, LockError> {
        let start = std::time::Instant::now();
        loop {
            match self.acquire(name, ttl).await {
                Ok(lease) => return Ok(lease),
                Err(LockError::Held(n)) if start.elapsed() >= wait_held => {
                    return Err(LockError::Held(n));
                }
                Err(LockError::Unavailable(why)) if start.elapsed() >= wait_unavailable => {
                    return Err(LockError::Unavailable(why));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Extends the lease by its TTL; false (and the lease marked lost) when it is no longer ours.
    pub async fn renew(&self, lease: &Lease) -> Result<bool, LockError> {
        let mut conn = self.conn().await?;
        let ms = u64::try_from(lease.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let n: i64 = timed(
            redis::Script::new(RENEW)
                .prepare_invoke()
                .key(self.key(&lease.name))
                .arg(lease.token)
                .arg(ms)
                .invoke_async(&mut conn),
        )
        .await?;
        if n == 0 {
            lease.lost.store(true, Ordering::SeqCst);
        }
        Ok(n == 1)
    }

    /// Gives the lease back; false when it had expired already (nothing of a successor's is
    /// touched).
    pub async fn release(&self, lease: Lease) -> Result<bool, LockError> {
        let mut conn = self.conn().await?;
        let n: i64 = timed(
            redis::Script::new(RELEASE)
                .prepare_invoke()
                .key(self.key(&lease.name))
                .arg(lease.token)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(n == 1)
    }

    /// Renews `lease` every third of its TTL until the returned guard is dropped; a failed or
    /// refused renewal marks the lease lost (check [`Lease::is_lost`] between units of work).
    pub fn keep_alive(&self, lease: &Lease) -> KeepAlive {
        let locks = self.clone();
        let shadow = Lease {
            name: lease.name.clone(),
            token: lease.token,
            ttl: lease.ttl,
            lost: lease.lost.clone(),
        };
        let every = (lease.ttl / 3).max(Duration::from_millis(50));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match locks.renew(&shadow).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(lock = %shadow.name, error = %e, "lease renewal failed");
                        shadow.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        KeepAlive(task)
    }
}

/// Stops renewing when dropped.
pub struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Against the real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`); each test under its
/// own key prefix, so tests running at once never share a lock.
#[cfg(test)]
mod tests {
    use super::*;

    async fn locks() -> Locks {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let link = RedisLink::start(url);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while link.connection().await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis did not connect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Locks::new(
            link,
            format!("aries-locktest-{}", uuid::Uuid::now_v7().simple()),
        )
    }

    #[tokio::test]
    async fn a_second_acquire_while_held_fails() -> Result<(), LockError> {
        let l = locks().await;
        let a = l.acquire("billing:t", Duration::from_secs(10)).await?;
        assert_eq!(
            l.acquire("billing:t", Duration::from_secs(10))
                .await
                .map(|x| x.token),
            Err(LockError::Held("billing:t".into()))
        );
        // Another name is another lock.
        let other = l.acquire("billing:u", Duration::from_secs(10)).await?;
        assert!(l.release(a).await?);
        let b = l.acquire("billing:t", Duration::from_secs(10)).await?;
        // The failed attempt took a token too: tokens only grow.
        assert_eq!(b.token, 3);
        assert!(l.release(b).await?);
        assert!(l.release(other).await?);
        Ok(())
    }

    #[tokio::test]
    async fn release_by_a_non_holder_does_nothing() -> Result<(), LockError> {
        let l = locks().await;
        let held = l.acquire("x", Duration::from_secs(10)).await?;
        let impostor = Lease {
            name: "x".into(),
            token: held.token + 7,
            ttl: held.ttl,
            lost: Arc::new(AtomicBool::new(false)),
        };
        assert!(!l.release(impostor).await?);
        assert!(matches!(
            l.acquire("x", Duration::from_secs(10)).await,
            Err(LockError::Held(_))
        ));
        assert!(l.release(held).await?);
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_with_a_higher_token() -> Result<(), LockError> {
        let l = locks().await;
        let first = l.acquire("x", Duration::from_millis(150)).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = l.acquire("x", Duration::from_secs(10)).await?;
        assert!(second.token > first.token);
        // The old holder can neither renew nor release the successor's lease.
        assert!(!l.renew(&first).await?);
        assert!(first.is_lost());
        let first_token = first.token;
        assert!(!l.release(first).await?);
        assert!(matches!(
            l.acquire("x", Duration::from_secs(10)).await,
            Err(LockError::Held(_))
        ));
        assert!(second.token > first_token);
        assert!(l.release(second).await?);
        Ok(())
    }

    #[tokio::test]
    async fn renewal_keeps_a_lease_past_its_ttl() -> Result<(), LockError> {
        let l = locks().await;
        let lease = l.acquire("x", Duration::from_millis(300)).await?;
        // Renewed by hand, three times over its TTL.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(l.renew(&lease).await?);
        }
        assert!(matches!(
            l.acquire("x", Duration::from_secs(1)).await,
            Err(LockError::Held(_))
        ));
        // Kept alive in the background, likewise.
        let guard = l.keep_alive(&lease);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(!lease.is_lost());
        assert!(matches!(
            l.acquire("x", Duration::from_secs(1)).await,
            Err(LockError::Held(_))
        ));
        drop(guard);
        // Without renewal it lapses.
        tokio::time::sleep(Duration::from_millis(450)).await;
        let next = l.acquire("x", Duration::from_secs(1)).await?;
        assert!(next.token > lease.token);
        assert!(l.release(next).await?);
        Ok(())
    }
}
