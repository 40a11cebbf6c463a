//! Tokens for the PowerSync service: RS256 JWTs signed with the private JWK from
//! `JWKS_PRIVATE_KEY` (base64-encoded JSON, as in the harness's `.env`). The key never reaches a
//! log: neither this type's `Debug` nor any error message contains it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{BigUint, RsaPrivateKey};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::config::Secret;
use crate::error::{Error, Result};

/// Token lifetime: 5 minutes, as the Dart endpoint.
pub const TOKEN_LIFETIME_SECS: u64 = 300;

/// The audiences the tokens name (the service's dev and production audiences).
pub const AUDIENCE: [&str; 2] = ["powersync-dev", "powersync"];

/// Signs tokens for one user.
pub struct TokenSigner {
    kid: String,
    key: SigningKey<Sha256>,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    kid: Option<String>,
    n: String,
    e: String,
    d: String,
    p: String,
    q: String,
}

fn bad_key(message: &str) -> Error {
    Error::config("JWKS_PRIVATE_KEY", message)
}

fn big(field: &str, b64url: &str) -> Result<BigUint> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64url.trim_end_matches('='))
        .map_err(|_| bad_key(&format!("field {field} is not base64url")))?;
    Ok(BigUint::from_bytes_be(&bytes))
}

impl TokenSigner {
    /// Parses the base64-encoded private RSA JWK (`kty`, `n`, `e`, `d`, `p`, `q`, optional
    /// `kid`). Errors name the problem, never the key material.
    pub fn from_secret(secret: &Secret) -> Result<Self> {
        let json = STANDARD
            .decode(secret.expose().trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(secret.expose().trim().trim_end_matches('=')))
            .map_err(|_| bad_key("not base64"))?;
        let jwk: PrivateJwk = serde_json::from_slice(&json)
            .map_err(|_| bad_key("not a private RSA JWK (JSON with kty, n, e, d, p, q)"))?;
        if jwk.kty != "RSA" {
            return Err(bad_key("kty must be RSA"));
        }
        let key = RsaPrivateKey::from_components(
            big("n", &jwk.n)?,
            big("e", &jwk.e)?,
            big("d", &jwk.d)?,
            vec![big("p", &jwk.p)?, big("q", &jwk.q)?],
        )
        .map_err(|_| bad_key("the RSA components do not form a valid key"))?;
        key.validate()
            .map_err(|_| bad_key("the RSA key does not validate"))?;
        Ok(Self {
            kid: jwk.kid.unwrap_or_default(),
            key: SigningKey::new(key),
        })
    }

    /// A token for `sub`: `aud` both audiences, `iat` now, `exp` in 5 minutes, and the
    /// harness's `parameters`.
    pub fn token(&self, sub: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if !self.kid.is_empty() {
            header["kid"] = json!(self.kid);
        }
        let claims = json!({
            "iss": "powersync_endpoint",
            "sub": sub,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "parameters": {"sync_filter": "*"},
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes()).to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;

    fn decode_json(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks a token's signature against the public key (n, e) and returns (header, claims).
    fn verify(token: &str, n: &BigUint, e: &BigUint) -> (serde_json::Value, serde_json::Value) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let public = rsa::RsaPublicKey::new(n.clone(), e.clone()).unwrap();
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        VerifyingKey::<Sha256>::new(public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("RS256 signature verifies");
        (decode_json(parts[0]), decode_json(parts[1]))
    }

    #[test]
    fn the_compose_demo_key_signs_tokens_its_public_half_verifies() {
        let env = include_str!("../compose/demo-key.env");
        let blob = env
            .lines()
            .find_map(|l| l.strip_prefix("JWKS_PRIVATE_KEY="))
            .unwrap();
        let signer = TokenSigner::from_secret(&blob.parse::<Secret>().unwrap()).unwrap();
        let yaml = include_str!("../compose/config/powersync.yaml");
        let demo = yaml.split("kid: compose-demo-key").next().unwrap();
        let n = demo
            .rsplit("n: ")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim();
        let n = BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap());
        assert_eq!(
            &n,
            signer.key.as_ref().n(),
            "config/powersync.yaml holds the demo key's public half"
        );
        let (header, claims) = verify(&signer.token("userId"), &n, &BigUint::from(65537u32));
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "compose-demo-key"})
        );
        assert_eq!(claims["sub"], "userId");
        assert_eq!(claims["aud"], json!(["powersync-dev", "powersync"]));
        assert_eq!(claims["parameters"], json!({"sync_filter": "*"}));
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, TOKEN_LIFETIME_SECS);
    }

    #[test]
    fn malformed_keys_are_config_errors_that_never_echo_the_key() {
        for bad in ["not*base64", "bm90IGpzb24", "eyJrdHkiOiJFQyJ9"] {
            let err = TokenSigner::from_secret(&bad.parse::<Secret>().unwrap()).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("configuration: JWKS_PRIVATE_KEY"),
                "{message}"
            );
            assert!(!message.contains(bad), "{message}");
        }
    }
}
