//! The words price lists, orders and billing share (DOMAIN.md §2, §3.2): how a line is sold or
//! rented, how often it bills, on which day an invoice is dated, and a list row's default order
//! type. Stored as their snake_case names in `text` columns (checked by the database) and sent
//! the same way in JSON.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! term {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// The names, joined for an error message.
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("one of {}", Self::names()))
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(s.parse::<$name>()?)
            }
        }
    };
}

term!(
    /// How a line is sold or rented (legacy SaleRentType); it decides the billing rule (§3.2).
    SaleRentType {
        /// Billed once, month 1.
        OneTimeSale => "one_time_sale",
        /// A sale repeated by generating the next order (supplies).
        ReoccurringSale => "reoccurring_sale",
        /// Billed once, month 1.
        OneTimeRental => "one_time_rental",
        /// Every period until an end date.
        MonthlyRental => "monthly_rental",
        /// Months 1–13 with RR + KH/KI/KJ (+KX from month 12), then closed.
        CappedRental => "capped_rental",
        /// Like capped rental (parenteral/enteral pumps).
        ParentalCappedRental => "parental_capped_rental",
        /// Months 1–9 rent, month 10 the rest of the sale price, then closed.
        RentToPurchase => "rent_to_purchase",
        /// Medicare oxygen: up to month 60 ("bill 36, contract 60").
        MedicareOxygenRental => "medicare_oxygen_rental",
    }
);

impl SaleRentType {
    /// Whether the line is a rental (the serial is rented, the rent price applies).
    pub fn is_rental(self) -> bool {
        !matches!(
            self,
            SaleRentType::OneTimeSale | SaleRentType::ReoccurringSale
        )
    }
}

term!(
    /// How often a line bills (legacy "When"/frequency), and so how a date of service advances.
    BillingFrequency {
        OneTime => "one_time",
        Daily => "daily",
        Weekly => "weekly",
        /// Same day each month as the delivery.
        Monthly => "monthly",
        /// From the 1st of each month (the first period runs to the end of the delivery month).
        CalendarMonthly => "calendar_monthly",
        Quarterly => "quarterly",
        SemiAnnually => "semi_annually",
        Annually => "annually",
    }
);

term!(
    /// Which day an invoice for a period is dated (legacy BillItemOn).
    BillItemOn {
        /// The period's first day (the delivery day for month 1).
        DayOfDelivery => "day_of_delivery",
        /// The last day of the calendar month the period starts in.
        LastDayOfMonth => "last_day_of_month",
        /// The period's last day.
        LastDayOfPeriod => "last_day_of_period",
        /// The day of pickup (billed in arrears when the equipment comes back).
        DayOfPickup => "day_of_pickup",
    }
);

term!(
    /// A price-list row's default for new order lines.
    OrderType {
        Sale => "sale",
        Rental => "rental",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for t in SaleRentType::ALL {
            assert_eq!(t.as_str().parse::<SaleRentType>(), Ok(*t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::Value::from(t.as_str()))
            );
        }
        for f in BillingFrequency::ALL {
            assert_eq!(f.as_str().parse::<BillingFrequency>(), Ok(*f));
            assert_eq!(
                serde_json::to_value(f).ok(),
                Some(serde_json::Value::from(f.as_str()))
            );
        }
        for b in BillItemOn::ALL {
            assert_eq!(b.as_str().parse::<BillItemOn>(), Ok(*b));
        }
        assert!("capped".parse::<SaleRentType>().is_err());
        assert!(!SaleRentType::OneTimeSale.is_rental());
        assert!(SaleRentType::CappedRental.is_rental());
    }
}
