//! Credentials: random secrets with a recognisable prefix, their SHA-256 (what is stored for
//! high-entropy secrets), and Argon2id for passwords (low entropy, so slow hashing).

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A new secret: `prefix` + 43 base64url characters (256 random bits).
pub fn generate(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Argon2id PHC string of `password` (random salt, the crate's recommended parameters).
pub fn hash_password(password: &str) -> Result<String, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string. Malformed stored hashes never match.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Minimum password rules: 12 to 256 characters, not all the same character.
pub fn check_password_rules(password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if !(12..=256).contains(&n) {
        return Err("a password is 12 to 256 characters");
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err("a password cannot repeat one character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = generate("ak_");
        let b = generate("ak_");
        assert!(a.starts_with("ak_") && a.len() == 46);
        assert_ne!(a, b);
        assert_ne!(sha256(&a), sha256(&b));
    }

    #[test]
    fn passwords_hash_with_argon2id() -> Result<(), String> {
        let h = hash_password("correct horse battery")?;
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("anything", "not a phc string"));
        assert!(check_password_rules("short").is_err());
        assert!(check_password_rules("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_password_rules("a fine long passphrase").is_ok());
        Ok(())
    }
}
