//! Codes that appear on claims: HCPCS Level II (`^[A-V][0-9]{4}$`), two-character pricing
//! modifiers (up to four per line) and ICD-10-CM diagnoses (`G47.33`).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses after trimming and upper-casing; the error says what the code must look like.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let s = raw.trim().to_ascii_uppercase();
                let check: fn(&str) -> bool = $check;
                if check(&s) { Ok(Self(s)) } else { Err(format!("`{}` is not {}", raw.trim(), $what)) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(c: $name) -> String {
                c.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    /// A HCPCS Level II code: a letter A–V and four digits (`E0601`).
    Hcpcs,
    |s| {
        let b = s.as_bytes();
        b.len() == 5 && (b'A'..=b'V').contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit)
    },
    "a HCPCS Level II code (a letter A-V and four digits, e.g. E0601)"
);

code_type!(
    /// A pricing or payment modifier: two letters or digits (`RR`, `KX`, `NU`).
    Modifier,
    |s| s.len() == 2 && s.bytes().all(|c| c.is_ascii_alphanumeric()),
    "a two-character modifier such as RR"
);

code_type!(
    /// An ICD-10-CM diagnosis code: a letter, a digit, a letter or digit, then optionally a dot and
    /// one to four letters or digits (`G47.33`, `J44.9`, `E11`).
    Icd10,
    |s| {
        let (head, tail) = match s.split_once('.') {
            Some((h, t)) => (h, Some(t)),
            None => (s, None),
        };
        let h = head.as_bytes();
        let head_ok = h.len() == 3 && h[0].is_ascii_uppercase() && h[1].is_ascii_digit() && h[2].is_ascii_alphanumeric();
        let tail_ok = tail.is_none_or(|t| (1..=4).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_alphanumeric()));
        head_ok && tail_ok
    },
    "an ICD-10-CM code such as G47.33"
);

/// Checks a list of up to four modifiers, all distinct.
pub fn parse_modifiers(raw: &[String]) -> Result<Vec<Modifier>, String> {
    if raw.len() > 4 {
        return Err("at most four modifiers".into());
    }
    let mut out: Vec<Modifier> = Vec::with_capacity(raw.len());
    for m in raw {
        let m = Modifier::parse(m)?;
        if out.contains(&m) {
            return Err(format!("modifier {m} appears twice"));
        }
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcpcs() {
        for ok in ["E0601", "k0001", " A7030 ", "V5010"] {
            assert!(Hcpcs::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "E060", "E06011", "W0601", "0E601", "E06O1", "99213"] {
            assert!(Hcpcs::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Hcpcs::parse("k0001").map(|c| c.to_string()),
            Ok("K0001".into())
        );
    }

    #[test]
    fn icd10() {
        for ok in ["G47.33", "J44.9", "E11", "s72.001a", "Z99.81"] {
            assert!(Icd10::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "G4", "447.33", "G47.", "G47.33333", "G47-33", "GG7.33"] {
            assert!(Icd10::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modifiers() {
        let m =
            |v: &[&str]| parse_modifiers(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(m(&["RR", "kh", "KX"]).is_ok());
        assert!(m(&["RR", "RR"]).is_err());
        assert!(m(&["RR", "KH", "KX", "GA", "NU"]).is_err());
        assert!(m(&["R"]).is_err());
    }
}
