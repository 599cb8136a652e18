//! The words price lists, orders and billing share (DOMAIN.md §2, §3.2): how a line is sold or
//! rented, how often it bills, on which day an invoice is dated, and a list row's default order
//! type. Stored as their snake_case names in `text` columns (checked by the database) and sent
//! the same way in JSON.

text_enum!(
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

text_enum!(
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

text_enum!(
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

text_enum!(
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
