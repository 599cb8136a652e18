//! Placement of a new tenant: the least-loaded active shard, load measured relative to weight.

use aries_tenants::ids::ShardId;

/// What placement needs to know about a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLoad {
    /// What `choose_shard` returns; also the last tie-breaker (the smaller id wins).
    pub shard_id: ShardId,
    /// Only active shards take new tenants (draining and read-only ones do not).
    pub accepts_tenants: bool,
    /// Relative capacity (> 0).
    pub weight: u32,
    /// Tenants placed on the shard now.
    pub tenants: u64,
}

/// The shard with the lowest `tenants / weight` among those accepting tenants; ties go to the
/// larger weight, then the smaller id, so the choice is deterministic. `None` when no shard accepts.
pub fn choose_shard(shards: &[ShardLoad]) -> Option<ShardId> {
    shards
        .iter()
        .filter(|s| s.accepts_tenants && s.weight > 0)
        .min_by(|a, b| {
            // Compare a.tenants / a.weight with b.tenants / b.weight without division.
            let left = u128::from(a.tenants) * u128::from(b.weight);
            let right = u128::from(b.tenants) * u128::from(a.weight);
            left.cmp(&right)
                .then(b.weight.cmp(&a.weight))
                .then(a.shard_id.cmp(&b.shard_id))
        })
        .map(|s| s.shard_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn shard(n: u128, accepts: bool, weight: u32, tenants: u64) -> ShardLoad {
        ShardLoad {
            shard_id: ShardId(Uuid::from_u128(n)),
            accepts_tenants: accepts,
            weight,
            tenants,
        }
    }

    #[test]
    fn picks_least_loaded_by_weight() {
        let a = shard(1, true, 100, 10);
        let b = shard(2, true, 100, 9);
        assert_eq!(choose_shard(&[a, b]), Some(b.shard_id));
        // b has twice the capacity: 19/200 < 10/100.
        let b = shard(2, true, 200, 19);
        assert_eq!(choose_shard(&[a, b]), Some(b.shard_id));
    }

    #[test]
    fn skips_shards_not_accepting() {
        let a = shard(1, false, 100, 0);
        let b = shard(2, true, 100, 50);
        assert_eq!(choose_shard(&[a, b]), Some(b.shard_id));
        assert_eq!(choose_shard(&[a]), None);
        assert_eq!(choose_shard(&[]), None);
    }

    #[test]
    fn ties_are_deterministic() {
        let a = shard(1, true, 100, 0);
        let b = shard(2, true, 100, 0);
        assert_eq!(choose_shard(&[b, a]), Some(a.shard_id));
        let big = shard(3, true, 300, 0);
        assert_eq!(choose_shard(&[a, b, big]), Some(big.shard_id));
    }

    proptest! {
        /// Placing tenants one by one keeps every shard within one tenant of its fair share.
        #[test]
        fn repeated_placement_stays_balanced(weights in proptest::collection::vec(1u32..5, 1..6), n in 0u64..200) {
            let mut shards: Vec<ShardLoad> =
                weights.iter().enumerate().map(|(i, w)| shard(i as u128, true, *w * 100, 0)).collect();
            for _ in 0..n {
                let chosen = choose_shard(&shards);
                prop_assert!(chosen.is_some());
                if let Some(s) = shards.iter_mut().find(|s| Some(s.shard_id) == chosen) {
                    s.tenants += 1;
                }
            }
            let total_w: u64 = weights.iter().map(|w| u64::from(*w)).sum();
            for (s, w) in shards.iter().zip(&weights) {
                let fair = n as f64 * f64::from(*w) / total_w as f64;
                prop_assert!((s.tenants as f64 - fair).abs() <= f64::from(*w) + 1.0,
                    "shard with weight {} holds {} of {} (fair {})", w, s.tenants, n, fair);
            }
        }
    }
}
