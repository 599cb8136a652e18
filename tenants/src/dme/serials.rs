//! Serial-numbered equipment (DOMAIN.md §3.4). A serial's state is the fold of its events in
//! order; an event the current state does not allow is an error naming the state (the legacy
//! system ignored such events silently, which let the history and the shelf disagree).
//!
//! Transitions:
//! - `received` starts a serial on hand in a warehouse (an oxygen tank may arrive empty);
//! - on hand → reserved → on hand (`reserve`, `cancel_reservation`);
//! - on hand | reserved → rented or sold (`rent`, `sell`): the patient holds it, no warehouse;
//!   rented → sold (rent-to-purchase, capped rental's title transfer);
//! - `return` (to a warehouse) from anything but maintenance, junked or on hand: lands in
//!   maintenance for cleaning, the patient becomes the last patient; an oxygen tank returns empty;
//! - on hand → maintenance → on hand (`out_for_maintenance`, `in_from_maintenance`);
//! - on hand → transferred out → on hand at the destination (`transfer_out`, `transfer_in`);
//! - oxygen tanks: empty → out for filling → on hand (`out_for_filling`, `in_from_filling`);
//! - `lost` from anything but junked; `junk` from anything but junked (junked is final; a lost
//!   serial that turns up comes back with `return`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a serial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SerialStatus {
    OnHand,
    Reserved,
    Rented,
    Sold,
    Maintenance,
    TransferredOut,
    /// An oxygen tank waiting to be filled.
    Empty,
    /// An oxygen tank at the filler.
    OutForFilling,
    Lost,
    Junked,
}

/// Something that happened to a serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SerialEvent {
    /// Entered stock (purchase receipt, opening balance).
    Received {
        #[schema(value_type = String, format = Uuid)]
        warehouse: Uuid,
        /// An oxygen tank that arrives empty.
        #[serde(default)]
        empty: bool,
    },
    Reserve,
    CancelReservation,
    Rent {
        #[schema(value_type = String, format = Uuid)]
        patient: Uuid,
    },
    Sell {
        #[schema(value_type = String, format = Uuid)]
        patient: Uuid,
    },
    Return {
        #[schema(value_type = String, format = Uuid)]
        warehouse: Uuid,
    },
    OutForMaintenance,
    InFromMaintenance,
    TransferOut {
        #[schema(value_type = String, format = Uuid)]
        to: Uuid,
    },
    TransferIn,
    OutForFilling,
    InFromFilling,
    Lost,
    Junk,
}

impl SerialEvent {
    /// The event's name, as in the API (`rent`, `return`…).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Received { .. } => "received",
            Self::Reserve => "reserve",
            Self::CancelReservation => "cancel_reservation",
            Self::Rent { .. } => "rent",
            Self::Sell { .. } => "sell",
            Self::Return { .. } => "return",
            Self::OutForMaintenance => "out_for_maintenance",
            Self::InFromMaintenance => "in_from_maintenance",
            Self::TransferOut { .. } => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::OutForFilling => "out_for_filling",
            Self::InFromFilling => "in_from_filling",
            Self::Lost => "lost",
            Self::Junk => "junk",
        }
    }
}

/// A serial's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SerialState {
    pub status: SerialStatus,
    /// Where it is, when on a shelf (on hand, reserved, maintenance, empty).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub warehouse: Option<Uuid>,
    /// Who has it (rented, sold).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub patient: Option<Uuid>,
    /// Who had it last (after a return).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub last_patient: Option<Uuid>,
    /// The destination of a transfer under way.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub transfer_to: Option<Uuid>,
    /// Whether it is an oxygen tank (returns empty, goes out for filling).
    pub oxygen_tank: bool,
}

/// The event is not allowed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a serial that is {from:?} cannot take `{event}`")]
pub struct IllegalTransition {
    /// The state it was in.
    pub from: SerialStatus,
    /// The event refused.
    pub event: &'static str,
}

/// The state after `event`, starting a serial when `state` is `None`.
pub fn apply(
    state: Option<SerialState>,
    event: &SerialEvent,
    oxygen_tank: bool,
) -> Result<SerialState, IllegalTransition> {
    use SerialEvent as E;
    use SerialStatus as S;
    let Some(s) = state else {
        return match event {
            E::Received { warehouse, empty } => Ok(SerialState {
                status: if *empty && oxygen_tank {
                    S::Empty
                } else {
                    S::OnHand
                },
                warehouse: Some(*warehouse),
                patient: None,
                last_patient: None,
                transfer_to: None,
                oxygen_tank,
            }),
            other => Err(IllegalTransition {
                from: S::OnHand,
                event: other.name(),
            }),
        };
    };
    let illegal = || IllegalTransition {
        from: s.status,
        event: event.name(),
    };
    let next = match (s.status, event) {
        (S::OnHand, E::Reserve) => SerialState {
            status: S::Reserved,
            ..s
        },
        (S::Reserved, E::CancelReservation) => SerialState {
            status: S::OnHand,
            ..s
        },
        (S::OnHand | S::Reserved, E::Rent { patient }) => SerialState {
            status: S::Rented,
            warehouse: None,
            patient: Some(*patient),
            ..s
        },
        (S::OnHand | S::Reserved | S::Rented, E::Sell { patient }) => SerialState {
            status: S::Sold,
            warehouse: None,
            patient: Some(*patient),
            ..s
        },
        (
            S::Reserved
            | S::Rented
            | S::Sold
            | S::TransferredOut
            | S::Empty
            | S::OutForFilling
            | S::Lost,
            E::Return { warehouse },
        ) => SerialState {
            status: if s.oxygen_tank {
                S::Empty
            } else {
                S::Maintenance
            },
            warehouse: Some(*warehouse),
            patient: None,
            last_patient: s.patient.or(s.last_patient),
            transfer_to: None,
            ..s
        },
        (S::OnHand, E::OutForMaintenance) => SerialState {
            status: S::Maintenance,
            ..s
        },
        (S::Maintenance, E::InFromMaintenance) => SerialState {
            status: S::OnHand,
            ..s
        },
        (S::OnHand, E::TransferOut { to }) if Some(*to) != s.warehouse => SerialState {
            status: S::TransferredOut,
            transfer_to: Some(*to),
            ..s
        },
        (S::TransferredOut, E::TransferIn) => SerialState {
            status: S::OnHand,
            warehouse: s.transfer_to,
            transfer_to: None,
            ..s
        },
        (S::Empty, E::OutForFilling) if s.oxygen_tank => SerialState {
            status: S::OutForFilling,
            ..s
        },
        (S::OutForFilling, E::InFromFilling) => SerialState {
            status: S::OnHand,
            ..s
        },
        (from, E::Lost) if !matches!(from, S::Junked | S::Lost) => SerialState {
            status: S::Lost,
            ..s
        },
        (from, E::Junk) if from != S::Junked => SerialState {
            status: S::Junked,
            warehouse: None,
            patient: None,
            transfer_to: None,
            ..s
        },
        _ => return Err(illegal()),
    };
    Ok(next)
}

/// Replays a serial's whole history; fails at the first event its state does not allow.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a SerialEvent>,
    oxygen_tank: bool,
) -> Result<SerialState, IllegalTransition> {
    let mut state = None;
    for e in events {
        state = Some(apply(state, e, oxygen_tank)?);
    }
    state.ok_or(IllegalTransition {
        from: SerialStatus::OnHand,
        event: "nothing",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SerialEvent as E;
    use SerialStatus as S;
    use proptest::prelude::*;

    const W1: Uuid = Uuid::from_u128(1);
    const W2: Uuid = Uuid::from_u128(2);
    const P1: Uuid = Uuid::from_u128(10);

    #[test]
    fn rental_life() -> Result<(), IllegalTransition> {
        let events = [
            E::Received {
                warehouse: W1,
                empty: false,
            },
            E::Reserve,
            E::Rent { patient: P1 },
            E::Return { warehouse: W2 },
            E::InFromMaintenance,
        ];
        let s = fold(&events, false)?;
        assert_eq!(
            (s.status, s.warehouse, s.patient, s.last_patient),
            (S::OnHand, Some(W2), None, Some(P1))
        );
        let rented = fold(&events[..3], false)?;
        assert_eq!(
            (rented.status, rented.warehouse, rented.patient),
            (S::Rented, None, Some(P1))
        );
        Ok(())
    }

    #[test]
    fn illegal_transitions_name_the_state() {
        let start = [E::Received {
            warehouse: W1,
            empty: false,
        }];
        let cases: Vec<(Vec<E>, E, S)> = vec![
            (start.to_vec(), E::CancelReservation, S::OnHand),
            (start.to_vec(), E::InFromMaintenance, S::OnHand),
            (
                vec![start[0].clone(), E::OutForMaintenance],
                E::Return { warehouse: W1 },
                S::Maintenance,
            ),
            (vec![start[0].clone(), E::Junk], E::Lost, S::Junked),
            (
                vec![start[0].clone(), E::Sell { patient: P1 }],
                E::Rent { patient: P1 },
                S::Sold,
            ),
            (start.to_vec(), E::TransferOut { to: W1 }, S::OnHand),
            (start.to_vec(), E::OutForFilling, S::OnHand),
        ];
        for (history, event, from) in cases {
            let mut all = history.clone();
            all.push(event.clone());
            assert_eq!(
                fold(&all, false),
                Err(IllegalTransition {
                    from,
                    event: event.name()
                }),
                "{event:?}"
            );
        }
        assert!(
            fold(&[E::Reserve], false).is_err(),
            "a serial starts with `received`"
        );
        assert!(fold(&[], false).is_err());
    }

    #[test]
    fn transfers_and_oxygen_tanks() -> Result<(), IllegalTransition> {
        let t = fold(
            &[
                E::Received {
                    warehouse: W1,
                    empty: false,
                },
                E::TransferOut { to: W2 },
                E::TransferIn,
            ],
            false,
        )?;
        assert_eq!((t.status, t.warehouse), (S::OnHand, Some(W2)));
        let tank = [
            E::Received {
                warehouse: W1,
                empty: true,
            },
            E::OutForFilling,
            E::InFromFilling,
            E::Rent { patient: P1 },
            E::Return { warehouse: W1 },
        ];
        let s = fold(&tank, true)?;
        assert_eq!(
            (s.status, s.last_patient),
            (S::Empty, Some(P1)),
            "a tank comes back empty"
        );
        assert_eq!(fold(&tank[..1], true)?.status, S::Empty);
        Ok(())
    }

    fn any_event() -> impl Strategy<Value = SerialEvent> {
        let id = prop_oneof![Just(W1), Just(W2)];
        prop_oneof![
            Just(E::Reserve),
            Just(E::CancelReservation),
            Just(E::Rent { patient: P1 }),
            Just(E::Sell { patient: P1 }),
            id.clone().prop_map(|warehouse| E::Return { warehouse }),
            Just(E::OutForMaintenance),
            Just(E::InFromMaintenance),
            id.prop_map(|to| E::TransferOut { to }),
            Just(E::TransferIn),
            Just(E::OutForFilling),
            Just(E::InFromFilling),
            Just(E::Lost),
            Just(E::Junk),
        ]
    }

    proptest! {
        /// Whatever happens, a serial on a shelf has a warehouse and no patient, one with a patient
        /// has no warehouse, and the state is the fold of the accepted events.
        #[test]
        fn shelf_and_patient_never_both(events in proptest::collection::vec(any_event(), 0..40), tank in any::<bool>()) {
            let mut accepted = vec![E::Received { warehouse: W1, empty: tank }];
            let mut state = fold(&accepted, tank).ok();
            for e in events {
                if let Ok(next) = apply(state, &e, tank) {
                    accepted.push(e);
                    state = Some(next);
                }
                let s = state.unwrap_or_else(|| unreachable!());
                match s.status {
                    S::OnHand | S::Reserved | S::Maintenance | S::Empty | S::OutForFilling | S::TransferredOut => {
                        prop_assert!(s.warehouse.is_some() && s.patient.is_none(), "{s:?}")
                    }
                    S::Rented | S::Sold => prop_assert!(s.patient.is_some() && s.warehouse.is_none(), "{s:?}"),
                    S::Lost | S::Junked => {}
                }
                prop_assert_eq!(fold(&accepted, tank).ok(), Some(s));
            }
        }
    }
}
