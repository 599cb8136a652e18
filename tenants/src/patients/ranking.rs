//! Policy ranks as pure functions over the patient's policies in rank order: a patient's policies
//! always hold the ranks 1..n (n at most [`MAX_POLICIES`]), contiguous, each once. Inserting at a
//! rank shifts the others down, removing closes the gap, re-ranking takes a complete new order.
//! The SQL applies the resulting order; these functions decide it.

/// At most this many policies per patient (legacy `Rank` 1–4; a claim carries four payers).
pub const MAX_POLICIES: usize = 4;

/// Why an order change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RankError {
    /// The patient already has [`MAX_POLICIES`] policies.
    #[error("a patient has at most {MAX_POLICIES} policies")]
    TooMany,
    /// The requested rank would leave a gap or exceed the limit: it must be 1..=`max`.
    #[error("rank must be from 1 to {max}")]
    OutOfRange {
        /// The largest rank allowed for this insertion.
        max: usize,
    },
    /// A re-ranking must list each of the patient's policies exactly once.
    #[error("the new order must list each of the patient's policies exactly once")]
    NotAPermutation,
}

/// The order after inserting `new` at 1-based `rank` (the policies from that rank on move down
/// one), or at the end when `rank` is `None`.
pub fn insert_at<T: Copy + Eq>(
    order: &[T],
    new: T,
    rank: Option<usize>,
) -> Result<Vec<T>, RankError> {
    if order.len() >= MAX_POLICIES {
        return Err(RankError::TooMany);
    }
    let max = order.len() + 1;
    let rank = rank.unwrap_or(max);
    if !(1..=max).contains(&rank) {
        return Err(RankError::OutOfRange { max });
    }
    let mut out = order.to_vec();
    out.insert(rank - 1, new);
    Ok(out)
}

/// The order after removing `id` (the policies below it move up one).
pub fn remove<T: Copy + Eq>(order: &[T], id: T) -> Vec<T> {
    order.iter().copied().filter(|x| *x != id).collect()
}

/// Checks that `requested` is a permutation of `current` and returns it as the new order.
pub fn reorder<T: Copy + Eq>(current: &[T], requested: &[T]) -> Result<Vec<T>, RankError> {
    let each_once = requested.len() == current.len()
        && current
            .iter()
            .all(|c| requested.iter().filter(|r| *r == c).count() == 1);
    if each_once {
        Ok(requested.to_vec())
    } else {
        Err(RankError::NotAPermutation)
    }
}

/// The (id, new rank) pairs of `new` whose rank differs from their rank in `old` (ids absent from
/// `old` are included): what the SQL must write.
pub fn changes<T: Copy + Eq>(old: &[T], new: &[T]) -> Vec<(T, i16)> {
    new.iter()
        .enumerate()
        .filter(|(i, id)| old.get(*i) != Some(*id))
        .map(|(i, id)| (*id, rank_of(i)))
        .collect()
}

/// 1-based rank of the policy at index `i` (always <= MAX_POLICIES, so it fits).
fn rank_of(i: usize) -> i16 {
    i16::try_from(i + 1).unwrap_or(i16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_shifts_down_and_remove_closes_up() {
        let order = insert_at(&[1, 2, 3], 9, Some(2));
        assert_eq!(order, Ok(vec![1, 9, 2, 3]));
        assert_eq!(insert_at(&[1, 2], 9, None), Ok(vec![1, 2, 9]));
        assert_eq!(insert_at(&[1, 2], 9, Some(3)), Ok(vec![1, 2, 9]));
        assert_eq!(
            insert_at(&[1, 2], 9, Some(4)),
            Err(RankError::OutOfRange { max: 3 })
        );
        assert_eq!(
            insert_at(&[1], 9, Some(0)),
            Err(RankError::OutOfRange { max: 2 })
        );
        assert_eq!(insert_at(&[1, 2, 3, 4], 9, None), Err(RankError::TooMany));
        assert_eq!(remove(&[1, 9, 2, 3], 9), vec![1, 2, 3]);
        assert_eq!(
            changes(&[1, 2, 3], &[1, 9, 2, 3]),
            vec![(9, 2), (2, 3), (3, 4)]
        );
        assert_eq!(changes(&[1, 9, 2, 3], &[1, 2, 3]), vec![(2, 2), (3, 3)]);
    }

    #[test]
    fn reorder_wants_a_permutation() {
        assert_eq!(reorder(&[1, 2, 3], &[3, 1, 2]), Ok(vec![3, 1, 2]));
        for bad in [&[1, 2][..], &[1, 2, 2], &[1, 2, 4], &[1, 2, 3, 3], &[]] {
            assert_eq!(reorder(&[1, 2, 3], bad), Err(RankError::NotAPermutation));
        }
        assert_eq!(
            changes(&[1, 2, 3], &[3, 1, 2]),
            vec![(3, 1), (1, 2), (2, 3)]
        );
        assert_eq!(changes(&[1, 2, 3], &[1, 3, 2]), vec![(3, 2), (2, 3)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Option<usize>),
        Remove(usize),
        Reorder(Vec<usize>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::option::of(0usize..7).prop_map(Op::Insert),
            (0usize..6).prop_map(Op::Remove),
            proptest::collection::vec(0usize..6, 0..6).prop_map(Op::Reorder),
        ]
    }

    /// The ranks a table would hold after applying `changes` to `old`'s ranks.
    fn stored_ranks(old: &[u32], new: &[u32]) -> Vec<(u32, i16)> {
        let mut ranks: Vec<(u32, i16)> = old
            .iter()
            .enumerate()
            .filter(|(_, id)| new.contains(id))
            .map(|(i, id)| (*id, rank_of(i)))
            .collect();
        for (id, r) in changes(old, new) {
            match ranks.iter_mut().find(|(x, _)| *x == id) {
                Some(slot) => slot.1 = r,
                None => ranks.push((id, r)),
            }
        }
        ranks.sort_by_key(|(_, r)| *r);
        ranks
    }

    proptest! {
        /// Whatever sequence of inserts, removals and re-rankings (accepted or refused), the stored
        /// ranks are 1..n, contiguous, each policy once, n <= 4; a refused change changes nothing.
        #[test]
        fn ranks_stay_contiguous(ops in proptest::collection::vec(op(), 0..40)) {
            let mut order: Vec<u32> = Vec::new();
            let mut next_id = 0u32;
            for op in ops {
                let before = order.clone();
                let result = match op {
                    Op::Insert(rank) => {
                        next_id += 1;
                        insert_at(&order, next_id, rank)
                    }
                    Op::Remove(i) => Ok(match order.get(i) {
                        Some(id) => remove(&order, *id),
                        None => order.clone(),
                    }),
                    Op::Reorder(idx) => {
                        let requested: Vec<u32> =
                            idx.iter().filter_map(|i| order.get(*i).copied()).collect();
                        reorder(&order, &requested)
                    }
                };
                match result {
                    Ok(new) => {
                        let ranks = stored_ranks(&before, &new);
                        let expected: Vec<i16> = (1..=rank_of(new.len().saturating_sub(1))).collect();
                        let got: Vec<i16> = ranks.iter().map(|(_, r)| *r).collect();
                        if new.is_empty() {
                            prop_assert!(got.is_empty());
                        } else {
                            prop_assert_eq!(got, expected);
                        }
                        let ids: Vec<u32> = ranks.iter().map(|(id, _)| *id).collect();
                        prop_assert_eq!(&ids, &new);
                        prop_assert!(new.len() <= MAX_POLICIES);
                        // A permutation of what was there, plus at most the one inserted.
                        prop_assert!(before.iter().filter(|b| new.contains(b)).count() + 1 >= new.len());
                        order = new;
                    }
                    Err(_) => prop_assert_eq!(&order, &before),
                }
            }
        }
    }
}
