//! Rebalance planning (pure): which tenants to move where so that every active shard carries a
//! load close to its fair share (`total load × weight / total weight`).
//!
//! - A tenant's **load** is the rows it holds on its shard (measured by the caller).
//! - **Draining** shards shed everything: each of their tenants, biggest first, goes to the active
//!   shard it leaves least loaded relative to weight.
//! - Then, greedily: from the active shard most over-loaded relative to weight to the one most
//!   under-loaded, move the biggest tenant that fits (neither shard crosses its fair share), or
//!   when none fits, the tenant whose move lowers the imbalance most; only moves that strictly
//!   lower the imbalance. Again, until the most loaded shard is within `threshold_pct` of its fair
//!   share (so small differences do not churn tenants) or no move from it helps. (Plain "biggest
//!   tenant that helps" overshoots: with 78 + 30 rows against 4 + 4 it moves the 78 and then the
//!   small tenants back; the fit rule moves the 30 once.)
//! - **Read-only and registered** shards (and active ones of weight 0) neither give nor take; their
//!   tenants are not counted in the fair shares.
//!
//! The imbalance is `Σ loadᵢ² / weightᵢ` over the active shards: for a fixed total it is smallest
//! when every shard's load is proportional to its weight, and a move of `t` from `a` to `b` lowers
//! it exactly when `t·(w_a + w_b) < 2·(l_a·w_b − l_b·w_a)`, which is checked in integers. Every
//! greedy move lowers it strictly and every tenant moves at most once, so planning terminates; the
//! input is sorted first, so the plan does not depend on the order shards or tenants are given in.

use aries_tenants::ids::ShardId;
use serde::Serialize;

/// What a shard may do in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShardRole {
    /// Gives and takes tenants (the `active` status).
    Active,
    /// Gives every tenant away, takes none (`draining`).
    Draining,
    /// Neither gives nor takes (`read_only`, `registered`, or a shard whose load is unknown).
    Frozen,
}

/// One tenant and its load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLoad<T> {
    /// The tenant (an id or a slug: anything ordered, for determinism).
    pub tenant: T,
    /// Rows it holds on its shard.
    pub load: u64,
}

/// A shard as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInput<T> {
    /// The shard; also the last tie-breaker (the smaller id first).
    pub shard_id: ShardId,
    /// Relative capacity; an active shard of weight 0 is treated as frozen.
    pub weight: u32,
    /// What it may do.
    pub role: ShardRole,
    /// Its tenants with their loads.
    pub tenants: Vec<TenantLoad<T>>,
}

/// One move of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMove<T> {
    /// The tenant to move.
    pub tenant: T,
    /// The shard it is on (active or draining).
    pub from: ShardId,
    /// The shard it goes to (always an active one).
    pub to: ShardId,
    /// The tenant's load (what the move shifts).
    pub load: u64,
}

/// A shard's load before and after the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardBalance {
    /// The shard.
    pub shard_id: ShardId,
    /// Its weight, as given.
    pub weight: u32,
    /// What it could do in this plan (an active shard of weight 0 shows as frozen).
    pub role: ShardRole,
    /// Rows on it now.
    pub before: u64,
    /// Rows on it once the plan has run.
    pub after: u64,
    /// Its fair share of the load (rounded down); absent for shards that take no tenants.
    pub fair_share: Option<u64>,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan<T> {
    /// The moves, in the order to run them.
    pub moves: Vec<PlannedMove<T>>,
    /// Every shard's load before and after, by id.
    pub shards: Vec<ShardBalance>,
    /// Tenants of draining shards that have nowhere to go (no active shard).
    pub unplaced: Vec<T>,
}

/// How eager the planner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSettings {
    /// The most loaded active shard may exceed its fair share by this many percent before
    /// tenants are moved off it.
    pub threshold_pct: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self { threshold_pct: 10 }
    }
}

/// `Σ loadᵢ² / weightᵢ` over `(load, weight)` pairs of active shards (weight 0 skipped): the
/// quantity every balancing move lowers. For reports and tests; the planner compares exactly.
pub fn imbalance(loads: &[(u64, u32)]) -> f64 {
    loads
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(l, w)| (*l as f64) * (*l as f64) / f64::from(*w))
        .sum()
}

/// Working state of one shard.
struct Working<T> {
    /// The shard; moves name it.
    shard_id: ShardId,
    /// Its weight (fair shares and relative loads use it).
    weight: u32,
    /// What it may do (an active shard of weight 0 is made frozen).
    role: ShardRole,
    /// Its load as given, for the answer's `before`.
    before: u128,
    /// Its load with the moves planned so far (`u128`: sums and products never overflow).
    load: u128,
    /// Tenants that may still move off it, biggest first (then by tenant).
    movable: Vec<TenantLoad<T>>,
}

/// `a.load / a.weight` compared with `b.load / b.weight`, without division.
fn cmp_relative<T>(a: &Working<T>, b: &Working<T>) -> std::cmp::Ordering {
    (a.load * u128::from(b.weight)).cmp(&(b.load * u128::from(a.weight)))
}

/// Plans the moves; see the module documentation for the rules.
pub fn plan<T: Clone + Ord>(shards: &[ShardInput<T>], settings: PlanSettings) -> Plan<T> {
    let mut work: Vec<Working<T>> = shards
        .iter()
        .map(|s| {
            let mut movable = s.tenants.clone();
            movable.sort_by(|a, b| b.load.cmp(&a.load).then_with(|| a.tenant.cmp(&b.tenant)));
            let load: u128 = s.tenants.iter().map(|t| u128::from(t.load)).sum();
            Working {
                shard_id: s.shard_id,
                weight: s.weight,
                role: if s.role == ShardRole::Active && s.weight == 0 {
                    ShardRole::Frozen
                } else {
                    s.role
                },
                before: load,
                load,
                movable,
            }
        })
        .collect();
    work.sort_by_key(|w| w.shard_id);
    let active: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].role == ShardRole::Active)
        .collect();
    let mut moves = Vec::new();
    let mut unplaced = Vec::new();

    // 1. Draining shards shed everything.
    for d in 0..work.len() {
        if work[d].role != ShardRole::Draining {
            continue;
        }
        for t in std::mem::take(&mut work[d].movable) {
            // The active shard that is least loaded relative to weight once it has the tenant;
            // ties to the larger weight, then the smaller id.
            let target = active.iter().copied().min_by(|&a, &b| {
                let (wa, wb) = (&work[a], &work[b]);
                let t = u128::from(t.load);
                ((wa.load + t) * u128::from(wb.weight))
                    .cmp(&((wb.load + t) * u128::from(wa.weight)))
                    .then(wb.weight.cmp(&wa.weight))
                    .then(wa.shard_id.cmp(&wb.shard_id))
            });
            let Some(to) = target else {
                unplaced.push(t.tenant);
                continue;
            };
            work[d].load -= u128::from(t.load);
            work[to].load += u128::from(t.load);
            moves.push(PlannedMove {
                tenant: t.tenant,
                from: work[d].shard_id,
                to: work[to].shard_id,
                load: t.load,
            });
        }
    }

    // 2. Greedy balancing among active shards. Each iteration moves a tenant of the input off its
    // own shard (or stops), so there are at most as many iterations as tenants.
    let total: u128 = active.iter().map(|&i| work[i].load).sum();
    let total_weight: u128 = active.iter().map(|&i| u128::from(work[i].weight)).sum();
    loop {
        let over = active.iter().copied().max_by(|&a, &b| {
            cmp_relative(&work[a], &work[b]).then(work[b].shard_id.cmp(&work[a].shard_id))
        });
        let under = active.iter().copied().min_by(|&a, &b| {
            cmp_relative(&work[a], &work[b]).then(work[a].shard_id.cmp(&work[b].shard_id))
        });
        let (Some(o), Some(u)) = (over, under) else {
            break;
        };
        if o == u {
            break;
        }
        // Within the threshold of its fair share: leave it.
        let pct = u128::from(settings.threshold_pct);
        if work[o].load * total_weight * 100 <= total * u128::from(work[o].weight) * (100 + pct) {
            break;
        }
        let (lo, wo) = (work[o].load, u128::from(work[o].weight));
        let (lu, wu) = (work[u].load, u128::from(work[u].weight));
        // `l_o·w_u − l_u·w_o`: ≥ 0, the over-loaded shard being heavier relative to weight.
        let gap = (lo * wu).saturating_sub(lu * wo);
        // Moves that strictly lower the imbalance, biggest tenant first.
        let helps = |t: u128| t > 0 && t * (wo + wu) < 2 * gap;
        // The biggest that fits: neither shard crosses its fair share (no overshoot to undo).
        let fits = |t: u128| {
            lo >= t
                && (lo - t) * total_weight >= total * wo
                && (lu + t) * total_weight <= total * wu
        };
        let movable = &work[o].movable;
        let pick = movable
            .iter()
            .position(|t| helps(u128::from(t.load)) && fits(u128::from(t.load)))
            .or_else(|| {
                // None fits: the move that lowers the imbalance most (by `2·t·gap − t²·(w_o + w_u)`,
                // the drop times `w_o·w_u`); ties to the bigger tenant, which comes first.
                let drop = |t: u128| 2 * t * gap - t * t * (wo + wu);
                movable
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| helps(u128::from(t.load)))
                    .fold(None::<(usize, u128)>, |best, (i, t)| {
                        let d = drop(u128::from(t.load));
                        match best {
                            Some((_, b)) if b >= d => best,
                            _ => Some((i, d)),
                        }
                    })
                    .map(|(i, _)| i)
            });
        let Some(at) = pick else {
            break;
        };
        // Only a shard's own tenants are in its `movable` list, and a moved one leaves it: no
        // tenant moves twice.
        let t = work[o].movable.remove(at);
        work[o].load -= u128::from(t.load);
        work[u].load += u128::from(t.load);
        moves.push(PlannedMove {
            tenant: t.tenant,
            from: work[o].shard_id,
            to: work[u].shard_id,
            load: t.load,
        });
    }

    let shards = work
        .iter()
        .map(|w| ShardBalance {
            shard_id: w.shard_id,
            weight: w.weight,
            role: w.role,
            before: clamp(w.before),
            after: clamp(w.load),
            fair_share: (w.role == ShardRole::Active && total_weight > 0)
                .then(|| clamp(total * u128::from(w.weight) / total_weight)),
        })
        .collect();
    Plan {
        moves,
        shards,
        unplaced,
    }
}

fn clamp(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn id(n: u128) -> ShardId {
        ShardId(Uuid::from_u128(n))
    }

    fn shard(n: u128, role: ShardRole, weight: u32, loads: &[(&str, u64)]) -> ShardInput<String> {
        ShardInput {
            shard_id: id(n),
            weight,
            role,
            tenants: loads
                .iter()
                .map(|(t, l)| TenantLoad {
                    tenant: (*t).to_owned(),
                    load: *l,
                })
                .collect(),
        }
    }

    fn moves(p: &Plan<String>) -> Vec<(&str, u128, u128)> {
        p.moves
            .iter()
            .map(|m| (m.tenant.as_str(), m.from.0.as_u128(), m.to.0.as_u128()))
            .collect()
    }

    #[test]
    fn moves_the_biggest_tenant_that_fits_to_the_emptiest_shard() {
        let p = plan(
            &[
                shard(
                    1,
                    ShardRole::Active,
                    100,
                    &[("a", 500), ("b", 300), ("c", 100)],
                ),
                shard(2, ShardRole::Active, 100, &[("d", 100)]),
            ],
            PlanSettings::default(),
        );
        // Total 1000, fair 500 each: a (500) would overshoot (400/600); b (300) is the biggest
        // that fits (600/400), then c (500/500).
        assert_eq!(moves(&p), vec![("b", 1, 2), ("c", 1, 2)]);
        let after: Vec<u64> = p.shards.iter().map(|s| s.after).collect();
        assert_eq!(after, vec![500, 500]);
        assert_eq!(p.shards[0].fair_share, Some(500));
    }

    #[test]
    fn without_a_fitting_tenant_the_best_helpful_move() {
        // 220 + 80 against nothing, fair 150 each: 220 would overshoot, 80 fits (220/80); then
        // 220 alone cannot help.
        let p = plan(
            &[
                shard(1, ShardRole::Active, 100, &[("a", 220), ("b", 80)]),
                shard(2, ShardRole::Active, 100, &[]),
            ],
            PlanSettings::default(),
        );
        assert_eq!(moves(&p), vec![("b", 1, 2)]);
        // 30 + 29 against 21, fair 40 each: neither fits (either takes shard 2 past 40), both
        // help; 29 leaves 30/50, 30 leaves 29/51: 29 lowers the imbalance more. Then c (21)
        // would only swap the sides (29/51): it stays.
        let p = plan(
            &[
                shard(1, ShardRole::Active, 100, &[("a", 30), ("b", 29)]),
                shard(2, ShardRole::Active, 100, &[("c", 21)]),
            ],
            PlanSettings::default(),
        );
        assert_eq!(moves(&p), vec![("b", 1, 2)]);
    }

    #[test]
    fn balanced_shards_do_not_churn() {
        let p = plan(
            &[
                shard(1, ShardRole::Active, 100, &[("a", 105)]),
                shard(2, ShardRole::Active, 100, &[("b", 95), ("c", 1)]),
            ],
            PlanSettings::default(),
        );
        assert!(p.moves.is_empty());
    }

    #[test]
    fn weights_set_the_fair_share() {
        // Shard 2 has three times the capacity: 100 + 300 is balanced.
        let p = plan(
            &[
                shard(1, ShardRole::Active, 100, &[("a", 100)]),
                shard(2, ShardRole::Active, 300, &[("b", 150), ("c", 150)]),
            ],
            PlanSettings::default(),
        );
        assert!(p.moves.is_empty(), "{:?}", p.moves);
    }

    #[test]
    fn a_tenant_too_big_to_help_stays() {
        // Moving the only tenant just swaps which shard is overloaded.
        let p = plan(
            &[
                shard(1, ShardRole::Active, 100, &[("a", 1000)]),
                shard(2, ShardRole::Active, 100, &[]),
            ],
            PlanSettings::default(),
        );
        assert!(p.moves.is_empty());
    }

    #[test]
    fn draining_shards_shed_everything_and_frozen_ones_sit_still() {
        let p = plan(
            &[
                shard(
                    1,
                    ShardRole::Draining,
                    100,
                    &[("a", 10), ("b", 30), ("z", 0)],
                ),
                shard(2, ShardRole::Active, 100, &[("c", 20)]),
                shard(3, ShardRole::Active, 100, &[]),
                shard(4, ShardRole::Frozen, 100, &[("big", 10_000)]),
            ],
            PlanSettings::default(),
        );
        // Biggest first: b to the empty shard 3, then a to shard 2 (20+10 < 30+10), then z
        // (no load) to shard 2 (30 vs 30: larger weight ties, then the smaller id).
        assert_eq!(moves(&p), vec![("b", 1, 3), ("a", 1, 2), ("z", 1, 2)]);
        assert_eq!(p.shards[0].after, 0);
        assert_eq!(p.shards[3].after, 10_000);
        assert_eq!(p.shards[3].fair_share, None);
    }

    #[test]
    fn draining_without_an_active_shard_leaves_tenants_unplaced() {
        let p = plan(
            &[
                shard(1, ShardRole::Draining, 100, &[("a", 10)]),
                shard(2, ShardRole::Frozen, 100, &[]),
            ],
            PlanSettings::default(),
        );
        assert!(p.moves.is_empty());
        assert_eq!(p.unplaced, vec!["a".to_owned()]);
    }

    fn role() -> impl Strategy<Value = ShardRole> {
        prop_oneof![
            4 => Just(ShardRole::Active),
            1 => Just(ShardRole::Draining),
            1 => Just(ShardRole::Frozen),
        ]
    }

    prop_compose! {
        fn shards()(specs in proptest::collection::vec(
            (role(), 0u32..5, proptest::collection::vec(0u64..1_000, 0..8)), 1..6))
            -> Vec<ShardInput<String>> {
            specs.into_iter().enumerate().map(|(i, (role, w, loads))| ShardInput {
                shard_id: id(i as u128 + 1),
                weight: w * 50,
                role,
                tenants: loads.into_iter().enumerate().map(|(j, load)| TenantLoad {
                    tenant: format!("t{i}-{j}"),
                    load,
                }).collect(),
            }).collect()
        }
    }

    fn active_loads(
        shards: &[ShardInput<String>],
        p: &Plan<String>,
        after: bool,
    ) -> Vec<(u64, u32)> {
        p.shards
            .iter()
            .filter(|b| b.role == ShardRole::Active)
            .map(|b| (if after { b.after } else { b.before }, b.weight))
            .filter(|_| !shards.is_empty())
            .collect()
    }

    proptest! {
        #[test]
        fn plans_are_safe(input in shards(), pct in 0u32..50) {
            let settings = PlanSettings { threshold_pct: pct };
            let p = plan(&input, settings);
            let role_of = |s: ShardId| p.shards.iter().find(|b| b.shard_id == s).map(|b| b.role);
            let mut seen = std::collections::BTreeSet::new();
            for m in &p.moves {
                // Never targets a shard that does not take tenants, never takes from a frozen one.
                prop_assert_eq!(role_of(m.to), Some(ShardRole::Active));
                prop_assert_ne!(role_of(m.from), Some(ShardRole::Frozen));
                prop_assert_ne!(m.from, m.to);
                // Each tenant moves at most once (so planning terminates).
                prop_assert!(seen.insert(m.tenant.clone()));
            }
            // Draining shards end empty when any shard can take their tenants.
            let any_active = p.shards.iter().any(|b| b.role == ShardRole::Active);
            for b in &p.shards {
                if b.role == ShardRole::Draining && any_active {
                    prop_assert_eq!(b.after, 0);
                }
                if b.role == ShardRole::Frozen {
                    prop_assert_eq!(b.after, b.before);
                }
            }
            // Load is conserved.
            let before: u64 = p.shards.iter().map(|b| b.before).sum();
            let after: u64 = p.shards.iter().map(|b| b.after).sum();
            prop_assert_eq!(before, after);
            // Deterministic, whatever the input order.
            let mut reversed = input.clone();
            reversed.reverse();
            for s in &mut reversed {
                s.tenants.reverse();
            }
            prop_assert_eq!(&plan(&reversed, settings), &p);
        }

        /// Without draining shards the plan never increases the imbalance.
        #[test]
        fn balancing_never_increases_imbalance(input in shards(), pct in 0u32..50) {
            let input: Vec<_> = input.into_iter().filter(|s| s.role != ShardRole::Draining).collect();
            let p = plan(&input, PlanSettings { threshold_pct: pct });
            let before = imbalance(&active_loads(&input, &p, false));
            let after = imbalance(&active_loads(&input, &p, true));
            prop_assert!(after <= before * (1.0 + 1e-12), "{} -> {}", before, after);
            if !p.moves.is_empty() {
                prop_assert!(after < before);
            }
        }
    }
}
