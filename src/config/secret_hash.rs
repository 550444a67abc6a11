//! Client secrets are stored only as PBKDF2-HMAC-SHA256 hashes and compared in constant
//! time. Format: `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>` (standard
//! alphabet, padding optional); `node bin/pms-events.mjs config hash-secret` produces one (secret on stdin).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Fewer rounds than this make a leaked configuration cheap to brute-force.
pub const MIN_ITERATIONS: u32 = 1_000;
/// More rounds than this would blow the Worker's CPU budget on every token request.
pub const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

// Never print hash material, not even in a debug dump of the configuration.
impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash(pbkdf2-sha256, {} iterations)", self.iterations)
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).or_else(|_| STANDARD_NO_PAD.decode(s)).ok()
}

impl SecretHash {
    /// Parses the stored form; the error says what is wrong, never echoes the value.
    pub fn parse(s: &str) -> Result<SecretHash, &'static str> {
        let parts: Vec<&str> = s.split('$').collect();
        let [scheme, iterations, salt, hash] = parts[..] else {
            return Err("is not of the form pbkdf2-sha256$<iterations>$<salt>$<hash> (is it a plain secret?)");
        };
        if scheme != "pbkdf2-sha256" {
            return Err("uses an unknown scheme (expected pbkdf2-sha256)");
        }
        let iterations: u32 = iterations.parse().map_err(|_| "has a non-numeric iteration count")?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err("has an iteration count outside 1000..=1000000");
        }
        let salt = b64(salt).ok_or("has a salt that is not base64")?;
        if salt.len() < 8 {
            return Err("has a salt shorter than 8 bytes");
        }
        let hash = b64(hash).ok_or("has a hash that is not base64")?;
        if hash.len() != 32 {
            return Err("has a hash that is not 32 bytes (SHA-256)");
        }
        Ok(SecretHash { iterations, salt, hash })
    }

    pub fn new(secret: &str, salt: &[u8], iterations: u32) -> SecretHash {
        SecretHash { iterations, salt: salt.to_vec(), hash: derive(secret, salt, iterations).to_vec() }
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn encode(&self) -> String {
        format!("pbkdf2-sha256${}${}${}", self.iterations, STANDARD.encode(&self.salt), STANDARD.encode(&self.hash))
    }

    /// Constant-time in the secret's content: the whole derived key is compared.
    pub fn verify(&self, secret: &str) -> bool {
        let derived = derive(secret, &self.salt, self.iterations);
        derived.ct_eq(self.hash.as_slice()).into()
    }
}

fn derive(secret: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, iterations, &mut out);
    out
}

/// Used when the client id is unknown, so that an unknown id costs the same time as a
/// wrong secret and the two cannot be told apart.
pub fn decoy_verify(secret: &str, iterations: u32) -> bool {
    let decoy = SecretHash::new("decoy", b"pms-events-decoy", iterations);
    std::hint::black_box(decoy.verify(secret));
    false
}
