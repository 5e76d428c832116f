//! HS256 JSON Web Tokens (RFC 7519) with an expiry.
//!
//! The users service signs a token at login ([`sign`]); the gateway checks it
//! on every guarded route ([`verify`]) with the same [`JwtSecret`], read from
//! `JWT_SECRET` (see [`crate::config`]). Only HS256 is accepted, whatever the
//! token's header claims, so a token cannot downgrade itself to `none`.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key shared by the signer and the verifier. Its `Debug` hides it.
#[derive(Clone)]
pub struct JwtSecret(Arc<[u8]>);

impl JwtSecret {
    /// A secret from raw bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(bytes.as_ref()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC is defined for keys of any length (long ones are hashed first).
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// What a shop token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id (the users service's `id`).
    pub sub: String,
    /// The user's name, for logs and greetings.
    pub username: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or parts that are not the expected JSON.
    #[error("token is malformed")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("token algorithm {0:?} is not accepted (only HS256)")]
    Algorithm(String),
    /// The signature does not match: another secret, or a tampered token.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token is past its `exp`.
    #[error("token has expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// The current time in seconds since the Unix epoch (0 if the clock is
/// before 1970, which makes every token look fresh rather than panicking).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs `claims` into a compact JWT: `header.payload.signature`.
pub fn sign(claims: &Claims, secret: &JwtSecret) -> String {
    let header = Header {
        alg: "HS256".to_owned(),
        typ: Some("JWT".to_owned()),
    };
    // Serializing these plain structs to JSON cannot fail: no maps with
    // non-string keys, no custom serializers.
    let header = serde_json::to_vec(&header).expect("a JWT header serializes");
    let payload = serde_json::to_vec(claims).expect("JWT claims serialize");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = secret.mac();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Checks `token`'s algorithm, signature and expiry at time `now` (seconds
/// since the epoch; pass [`now()`] outside tests) and returns its claims.
pub fn verify(token: &str, secret: &JwtSecret, now: u64) -> Result<Claims, JwtError> {
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return Err(JwtError::Malformed);
    };
    let Some((header, payload)) = signing_input.split_once('.') else {
        return Err(JwtError::Malformed);
    };
    if payload.contains('.') {
        return Err(JwtError::Malformed);
    }

    let header: Header = decode_json(header)?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm(header.alg));
    }

    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = secret.mac();
    mac.update(signing_input.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;

    let claims: Claims = decode_json(payload)?;
    if now >= claims.exp {
        return Err(JwtError::Expired);
    }
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u-1".into(),
            username: "ada".into(),
            exp,
        }
    }

    #[test]
    fn round_trip() {
        let secret = JwtSecret::new("s3cret");
        let token = sign(&claims(2_000), &secret);
        assert_eq!(verify(&token, &secret, 1_000), Ok(claims(2_000)));
    }

    #[test]
    fn expired_at_exp() {
        let secret = JwtSecret::new("s3cret");
        let token = sign(&claims(2_000), &secret);
        assert_eq!(verify(&token, &secret, 2_000), Err(JwtError::Expired));
    }

    #[test]
    fn other_secret_is_refused() {
        let token = sign(&claims(2_000), &JwtSecret::new("one"));
        assert_eq!(
            verify(&token, &JwtSecret::new("two"), 1_000),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let secret = JwtSecret::new("s3cret");
        let token = sign(&claims(2_000), &secret);
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","username":"x","exp":9999}"#);
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &secret, 1_000),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"u","username":"x","exp":9999}"#);
        assert_eq!(
            verify(&format!("{header}.{payload}."), &JwtSecret::new("k"), 1),
            Err(JwtError::Algorithm("none".into()))
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let secret = JwtSecret::new("k");
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(
                verify(token, &secret, 1),
                Err(JwtError::Malformed),
                "{token}"
            );
        }
    }

    /// A token whose signature was computed outside this crate (Python's
    /// `hmac` over the base64url header and payload, jwt.io's example key):
    /// proves the encoding is the standard one, not just self-consistent.
    #[test]
    fn interoperates_with_standard_hs256() {
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiI0MiIsInVzZXJuYW1lIjoiYWRhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.\
            eY_nEvqz6AZN6t1g_Ag055K6gt_QRNYw9VR6StnDgts";
        let secret = JwtSecret::new("your-256-bit-secret");
        let expected = Claims {
            sub: "42".into(),
            username: "ada".into(),
            exp: 4_102_444_800,
        };
        assert_eq!(verify(token, &secret, 1_700_000_000), Ok(expected.clone()));
        assert_eq!(sign(&expected, &secret), token);
    }
}
