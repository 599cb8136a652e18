//! Stock levels and their ledger (DOMAIN.md §2 "Stock level", §3.5). Every change to a warehouse's
//! stock of an item is a movement; each kind of movement moves the counters by fixed multipliers,
//! and the counters are always the replay of the ledger (the legacy `inventory_refresh`).

use serde::{Deserialize, Serialize};

/// The most units one movement may move.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Counters of one item in one warehouse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockCounters {
    /// On the shelf, available or committed.
    pub on_hand: i64,
    /// On the shelf but promised to approved orders.
    pub committed: i64,
    /// Ordered from vendors, not yet received.
    pub on_order: i64,
    /// Out with patients on rental.
    pub rented: i64,
    /// Sold to patients (cumulative).
    pub sold: i64,
    /// Out of service (maintenance, damaged).
    pub unavailable: i64,
}

impl StockCounters {
    /// On hand and not promised: what can still be committed.
    pub fn available(&self) -> i64 {
        self.on_hand - self.committed
    }
}

/// Kinds of movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Ordered from a vendor.
    Ordered,
    /// Received into the warehouse (from an order when `on_order` covers it, else directly).
    Received,
    /// A manual correction of the shelf count (quantity signed).
    Adjustment,
    /// Promised to an approved order line.
    Committed,
    /// Promise released (order canceled).
    Uncommitted,
    /// Delivered on rental (leaves the shelf, and the commitment).
    RentedOut,
    /// Delivered as a sale.
    SoldOut,
    /// A rental came back, into maintenance.
    Returned,
    /// Back on the shelf after maintenance.
    Repaired,
    /// A rental delivered from this warehouse came back to another one (paired with
    /// `ReturnedFromOther` there): it leaves this warehouse's rented count.
    ReturnedToOther,
    /// A rental delivered from another warehouse came back here, into maintenance.
    ReturnedFromOther,
    /// Leaves for another warehouse (paired with `TransferredIn` there).
    TransferredOut,
    /// Arrives from another warehouse.
    TransferredIn,
}

/// Multipliers of a kind on (on_hand, committed, on_order, rented, sold, unavailable).
fn multipliers(kind: MovementKind) -> [i64; 6] {
    use MovementKind::*;
    match kind {
        Ordered => [0, 0, 1, 0, 0, 0],
        Received => [1, 0, -1, 0, 0, 0],
        Adjustment => [1, 0, 0, 0, 0, 0],
        Committed => [0, 1, 0, 0, 0, 0],
        Uncommitted => [0, -1, 0, 0, 0, 0],
        RentedOut => [-1, -1, 0, 1, 0, 0],
        SoldOut => [-1, -1, 0, 0, 1, 0],
        Returned => [0, 0, 0, -1, 0, 1],
        Repaired => [1, 0, 0, 0, 0, -1],
        ReturnedToOther => [0, 0, 0, -1, 0, 0],
        ReturnedFromOther => [0, 0, 0, 0, 0, 1],
        TransferredOut => [-1, 0, 0, 0, 0, 0],
        TransferredIn => [1, 0, 0, 0, 0, 0],
    }
}

/// A movement that would leave a counter negative, or a non-positive quantity where one is needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    #[error("quantity must be positive for {0:?}")]
    NonPositive(MovementKind),
    /// Beyond what one movement may move (and what the counters can add without overflow).
    #[error("quantity must be at most {MAX_QUANTITY} units")]
    TooLarge,
    #[error("{counter} would become {value} (it cannot go below zero)")]
    WouldGoNegative { counter: &'static str, value: i64 },
}

const NAMES: [&str; 6] = [
    "on_hand",
    "committed",
    "on_order",
    "rented",
    "sold",
    "unavailable",
];

impl StockCounters {
    fn as_array(self) -> [i64; 6] {
        [
            self.on_hand,
            self.committed,
            self.on_order,
            self.rented,
            self.sold,
            self.unavailable,
        ]
    }

    fn from_array(a: [i64; 6]) -> Self {
        Self {
            on_hand: a[0],
            committed: a[1],
            on_order: a[2],
            rented: a[3],
            sold: a[4],
            unavailable: a[5],
        }
    }

    /// The counters after a movement of `quantity` (signed for adjustments, positive otherwise).
    /// A receipt beyond what was on order only adds to the shelf; nothing may go below zero, and
    /// commitments may not exceed the shelf.
    pub fn apply(self, kind: MovementKind, quantity: i64) -> Result<Self, StockError> {
        if kind != MovementKind::Adjustment && quantity <= 0 {
            return Err(StockError::NonPositive(kind));
        }
        if quantity.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
            return Err(StockError::TooLarge);
        }
        let mut m = multipliers(kind);
        let mut c = self.as_array();
        if kind == MovementKind::Received {
            // Only what was on order comes off the order; the rest is an unordered receipt.
            let from_order = quantity.min(self.on_order);
            c[2] -= from_order;
            m[2] = 0;
        }
        if matches!(kind, MovementKind::RentedOut | MovementKind::SoldOut) {
            // Delivering releases a commitment when there is one (a walk-in sale has none).
            let released = quantity.min(self.committed);
            c[1] -= released;
            m[1] = 0;
        }
        for (slot, mult) in c.iter_mut().zip(m) {
            *slot = slot
                .checked_add(mult * quantity)
                .ok_or(StockError::TooLarge)?;
        }
        for (i, value) in c.iter().enumerate() {
            if *value < 0 {
                return Err(StockError::WouldGoNegative {
                    counter: NAMES[i],
                    value: *value,
                });
            }
        }
        if c[1] > c[0] {
            return Err(StockError::WouldGoNegative {
                counter: "available",
                value: c[0] - c[1],
            });
        }
        Ok(Self::from_array(c))
    }

    /// Replays a ledger from zero.
    pub fn replay<'a>(
        movements: impl IntoIterator<Item = &'a (MovementKind, i64)>,
    ) -> Result<Self, StockError> {
        movements
            .into_iter()
            .try_fold(Self::default(), |c, (k, q)| c.apply(*k, *q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MovementKind::*;
    use proptest::prelude::*;

    #[test]
    fn a_rental_cycle() -> Result<(), StockError> {
        let c = StockCounters::replay(&[
            (Ordered, 5),
            (Received, 5),
            (Committed, 2),
            (RentedOut, 1),
            (SoldOut, 1),
        ])?;
        assert_eq!(
            c,
            StockCounters {
                on_hand: 3,
                committed: 0,
                on_order: 0,
                rented: 1,
                sold: 1,
                unavailable: 0
            }
        );
        let c = c.apply(Returned, 1)?.apply(Repaired, 1)?;
        assert_eq!((c.on_hand, c.rented, c.unavailable), (4, 0, 0));
        // Returned to another warehouse: the pair moves the unit from rented here to maintenance there.
        let here = c.apply(RentedOut, 1)?.apply(ReturnedToOther, 1)?;
        let there = StockCounters::default().apply(ReturnedFromOther, 1)?;
        assert_eq!(
            (here.rented, here.unavailable, there.unavailable),
            (0, 0, 1)
        );
        Ok(())
    }

    #[test]
    fn refusals() {
        assert_eq!(
            StockCounters::default().apply(RentedOut, 1),
            Err(StockError::WouldGoNegative {
                counter: "on_hand",
                value: -1
            })
        );
        assert!(StockCounters::default().apply(Received, 0).is_err());
        assert!(StockCounters::default().apply(Adjustment, -1).is_err());
        assert_eq!(
            StockCounters::default().apply(Received, i64::MAX),
            Err(StockError::TooLarge)
        );
        assert_eq!(
            StockCounters::default().apply(Adjustment, i64::MIN),
            Err(StockError::TooLarge)
        );
        let one = StockCounters {
            on_hand: 1,
            ..Default::default()
        };
        assert!(
            one.apply(Committed, 2).is_err(),
            "cannot promise more than the shelf holds"
        );
        // An unordered receipt only adds to the shelf.
        assert_eq!(
            StockCounters::default()
                .apply(Received, 3)
                .map(|c| (c.on_hand, c.on_order)),
            Ok((3, 0))
        );
    }

    fn movement() -> impl Strategy<Value = (MovementKind, i64)> {
        let kind = prop_oneof![
            Just(Ordered),
            Just(Received),
            Just(Adjustment),
            Just(Committed),
            Just(Uncommitted),
            Just(RentedOut),
            Just(SoldOut),
            Just(Returned),
            Just(Repaired),
            Just(ReturnedToOther),
            Just(ReturnedFromOther),
            Just(TransferredOut),
            Just(TransferredIn)
        ];
        (kind, -3i64..6)
    }

    proptest! {
        /// Applying the accepted movements one by one always equals replaying them, and no counter
        /// is ever negative nor more committed than on hand.
        #[test]
        fn counters_are_the_replay_of_the_ledger(moves in proptest::collection::vec(movement(), 0..60)) {
            let mut ledger = Vec::new();
            let mut c = StockCounters::default();
            for (k, q) in moves {
                if let Ok(next) = c.apply(k, q) {
                    ledger.push((k, q));
                    c = next;
                }
                prop_assert!(c.as_array().iter().all(|v| *v >= 0) && c.committed <= c.on_hand, "{c:?}");
                prop_assert_eq!(StockCounters::replay(&ledger), Ok(c));
            }
        }
    }
}
