//! RS256 key pairs for tests: JWKS (public part) and token signing.
//!
//! The keys are **test-only fixtures** committed under `testkit/fixtures/` (see the README
//! there). They are public and must never protect anything real.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;

/// A test RSA key pair with its key id.
#[derive(Debug, Clone)]
pub struct TestKey {
    kid: String,
    private_pem: &'static str,
    modulus_b64url: &'static str,
}

/// Claims of a test token. `aud` may be a string or a list, as in real tokens.
#[derive(Debug, Clone, Serialize)]
pub struct TokenClaims {
    /// The user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience: a JSON string or array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    /// Issued at (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expiry (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

impl TokenClaims {
    /// Claims `{sub, aud, iat: now, exp: now + lifetime_secs}`.
    pub fn new(sub: &str, aud: &str, lifetime_secs: i64) -> Self {
        let now = now_secs();
        TokenClaims {
            sub: Some(sub.to_owned()),
            aud: Some(Value::String(aud.to_owned())),
            iat: Some(now),
            exp: Some(now + lifetime_secs),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The audience the test tokens use by default, as in the real service's dev setups.
pub const TEST_AUDIENCE: &str = "powersync-dev";

impl TestKey {
    /// The primary test key (kid `testkit-key-a`).
    pub fn primary() -> Self {
        TestKey {
            kid: "testkit-key-a".to_owned(),
            private_pem: include_str!("../fixtures/test_key_a.pem"),
            modulus_b64url: include_str!("../fixtures/test_key_a.n"),
        }
    }

    /// A second, unrelated test key (kid `testkit-key-b`), e.g. for "badly signed" cases.
    pub fn other() -> Self {
        TestKey {
            kid: "testkit-key-b".to_owned(),
            private_pem: include_str!("../fixtures/test_key_b.pem"),
            modulus_b64url: include_str!("../fixtures/test_key_b.n"),
        }
    }

    /// The same key material under another key id.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// The key id (`kid`) put in JWKS entries and token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as one JWK object (`kty`, `n`, `e`, `alg`, `kid`, `use`).
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "n": self.modulus_b64url.trim(),
            "e": "AQAB",
            "alg": "RS256",
            "kid": self.kid,
            "use": "sig",
        })
    }

    /// A JWKS `{"keys":[<this key>]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// Signs `claims` as an RS256 JWT whose header carries this key's `kid`.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes())?;
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }

    /// A valid token for `sub` with audience [`TEST_AUDIENCE`] that expires in `lifetime_secs`.
    pub fn token(&self, sub: &str, lifetime_secs: i64) -> Result<String, Error> {
        self.sign(&TokenClaims::new(sub, TEST_AUDIENCE, lifetime_secs))
    }
}

/// The primary test key ([`TestKey::primary`], kid `testkit-key-a`) as a **private** JWK
/// (`kty n e d p q dp dq qi alg kid use`), e.g. for an endpoint's `JWKS_PRIVATE_KEY`. Its public
/// part is [`TestKey::public_jwk`] of the primary key, so tokens it signs verify against
/// `TestKey::primary().jwks()`.
pub fn primary_private_jwk() -> Result<Value, Error> {
    serde_json::from_str(include_str!("../fixtures/test_key_a.private.jwk.json"))
        .map_err(|e| Error::Fixture(format!("test_key_a.private.jwk.json: {e}")))
}

/// A JWKS holding the public parts of several keys.
pub fn jwks_of(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn signed_token_verifies_against_the_jwk_and_not_the_other_key() {
        let key = TestKey::primary();
        let token = key.token("user-1", 300).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("testkit-key-a"));
        let jwk = key.public_jwk();
        let decoding = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[TEST_AUDIENCE]);
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["sub"], "user-1");

        let other = TestKey::other().public_jwk();
        let other_key = DecodingKey::from_rsa_components(
            other["n"].as_str().unwrap(),
            other["e"].as_str().unwrap(),
        )
        .unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &other_key, &validation).is_err());
    }

    #[test]
    fn private_jwk_is_the_primary_key() {
        let private = primary_private_jwk().unwrap();
        let public = TestKey::primary().public_jwk();
        for field in ["kty", "n", "e", "alg", "kid"] {
            assert_eq!(private[field], public[field], "{field}");
        }
        for field in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                private[field].as_str().is_some_and(|v| v.len() > 100),
                "{field}"
            );
        }
    }
}
