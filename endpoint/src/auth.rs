//! Tokens for the PowerSync service: RS256 JWTs signed with the private JWK from
//! `JWKS_PRIVATE_KEY` (base64-encoded JSON, as in the harness's `.env`), or, when that is unset,
//! with the public development key built into jepsen-powersync's Dart endpoint (as the Dart
//! endpoint does). A configured key never reaches a log: neither this type's `Debug` nor any
//! error message contains it.

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

/// The public DEVELOPMENT key pair jepsen-powersync's own service configuration trusts (RS256,
/// kid `powersync-e928374396`): the base64 private JWK built into the Dart endpoint,
/// `powersync_endpoint/lib/auth.dart` of the public repository `nurturenature/jepsen-powersync`
/// (identical at 470f1ac, 47f845d and b77a3d0); its public half is in that repository's
/// `config/powersync.yaml`. It is public: never use it in production.
pub const DEVELOPMENT_PRIVATE_JWK: &str = "eyJrdHkiOiJSU0EiLCJuIjoid3A2M0ZlVWhqc0pmZzJhUjBQNFNNWjR0VVdDa1FhRFVaUTY2QkhiUkxmUTRGMFZWc1J5UnM1VEJtbnRWVkNDRXZjYnJmcGZVaE5mU1I2MzRaeHZLLTFVUnJaT0pNOTIwVHFvQzI4dnJETG4tMmk3UnNLVTk0aFFvWW9ET2lFdFVZMlV2ZVNjYzNuOFdJZDA4TDFlRWJ3V0lpb0VZWGpuM0h3R2RrMmN6X0NuYWdlQVhMS1RZVEtpVGpMT2d4TUJwUV9DdVJCUGN1eG5vZXBtcnQ5S3piYWpPcTNvb1BtbGhqYTBfME45U0s3cUU4R2RFTVZUTVBUTUNqN0tYb3cycGp3a3ZMUVQ3TzItc0FUc2hHVTNOQTVPTlpPSTVsVzVxSWdTYmp3X2dUOFBxVEhadmdHckNabG03VVo3R3o0a0I2UUFzS2lvM05NVnA5NlFxTlVTV3hRIiwiZSI6IkFRQUIiLCJkIjoiRHRqc1owbDJkSzFyLTNxTy04WnlUV0lfbTFKMzNZRGZTMEZqSEJXVGNrSE1LS3hUdEFJVnRJRlBfdERUYXVwYkxoNDNsNDRPT3I4N1RkZ2VHQUdsQy1VS3h2YjNNLU9CVHJJR0swNEVoZEZIdWMzeUZkdVpXNzdGY1BSYUxVZ3Y3VEJLUGFBb0FlcG9uaGRDY09zb2tZNjJ3cmhFQzJZNUxkNmg3cDJrTi1PNGFyMjgwSnkxNW1abTJxdlpBQURlZ0NKeDc0UHgyTmNBMXZQVmU2UGxxRUZCZHcwZDRJWHpoMUpwVVhOX2tJSkd3VW05TWVwRS16NVFsRWlJeHJMWHg2Ul9FQmMwak96THI3X0YyVEptOUpucEl5UEdmRjI4MTVNakt5UGg1NlN3MW9yUEFkU3lMdWtRUFR6bU5YMUtyQkdVTXFhWE1yUGpqZ3JpS1F6Z0VRIiwicCI6IjYwZGM3MHFBWHBZeE5KOWJzYUpXanlKdTY1SnFrYzZVeGxlejFRQkZwT3ZVNV9adDdha09yUzFsRHVXSTZDQlpCZ0lqd0F0cTB1REotNTRrQ25HRDBZaWl2d0U2TWIteDVONTV6OEhnTWR5czlMSGxjdkdVeENkNFpLTFBXb2V1b051MDVGRkU5OF9aVzJPbUhsZ2pjTmo3NjlIME5tS1BtSnhOVzR2bjh0VSIsInEiOiIwOEttNnZ4UmlIZGJRcWpaaUNYcUxhUmU0QXhCN3o1enFnRXNDbTdTNjQyNVYyYXczSTQ0YUxYWU5EUUtzcGtlSUJaazRDTnV0WTRwLXZIQmZyckxLcWRrZUJwZW1nTU5UWE5abldEOWZZRm9mRFBPQWo3UTY2TDNmejY4bkJRM2FoSDF0Q29vWTZCOGN6ZXU0TDVqbVpIQVJDeEtQR2ZveFRabVRHZllyREUiLCJkcCI6ImpQZ1dLOTNrcWtldE5jMWhvRDRYUk8ycHJnWHRTbTJQWUlPOTRScW5uOWdabWQ1aUlTclEtMXdlbDkxWnVWTmdZNlEyaldPSjNzNEcxM2I2T3pPbWVvNDJqT0VNWURCdVF5WTFzQkNHNXZsRXU5dzNFVGJFSHY5VE9HRUFna3FYakJQM18zRGVOT2paWDlPRl9kcHJhYnJvdm5QdXNnTTk3SC1DTGg3V21fMCIsImRxIjoiT0g1Wm9aOG04VTFHWDRaRVlub2EtNG82ZFhOUHM4X3BjNVZVZG9RU2FSMHFNUk1JWkE3ZEpiSTl0OC1hZXdNMmNrRUhNSFREZUZReEJ1MndQV3NBQUtVZnZKcnNXaEl1WGxkRHRTVEctOUNtVzF4R3ZYcWNxZ0NVSHJKU0J5R3RsdktycGlFSkhXc1hTSFcyaGViRkU1YzZ2X1ZBNk5TZjJOMG1kWVBPM2tFIiwicWkiOiJkQjBUTElvWDBGUTI5Ny1jNEhzQm5IUzlZdXBHTG5saDlHVkVkZnh6UDNBZDhHWEFULWxNT1cza0xfYVlxZnVNNmdJWXhhMGZSc0NlcWoxdXhGNXltYUFYaV84NUxxOG8wSDljcnJKQVdOVm1Yc2VPLXhKNDctRmhpbVV4TXl6aHdYMVJMZFQ5MHNZZm1VSHN1aDVxdndkQmtJNWlXd2hhYlprVzlqQVk3YlkiLCJhbGciOiJSUzI1NiIsImtpZCI6InBvd2Vyc3luYy1lOTI4Mzc0Mzk2In0=";

/// The kid of [`DEVELOPMENT_PRIVATE_JWK`].
pub const DEVELOPMENT_KID: &str = "powersync-e928374396";

/// The signer of the configured `JWKS_PRIVATE_KEY`, or of the built-in development key (said
/// once at WARN) when none is configured.
pub fn signer(configured: Option<&Secret>) -> Result<TokenSigner> {
    match configured {
        Some(secret) => TokenSigner::from_secret(secret),
        None => {
            tracing::warn!(
                "JWKS_PRIVATE_KEY is not set: signing service tokens with jepsen-powersync's \
                 public development key (kid {DEVELOPMENT_KID}), as its Dart endpoint does; it is \
                 public, never use it in production"
            );
            TokenSigner::development()
        }
    }
}

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

    /// The signer of the built-in public development key ([`DEVELOPMENT_PRIVATE_JWK`]).
    pub fn development() -> Result<Self> {
        Self::from_secret(&Secret::new(DEVELOPMENT_PRIVATE_JWK))
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
        assert_dart_claims(&claims, "userId");
    }

    #[test]
    fn the_built_in_development_key_is_the_one_the_jepsen_powersync_service_trusts() {
        // Verbatim from nurturenature/jepsen-powersync b77a3d0 (see tests/fixtures/.../README.md).
        let yaml = include_str!("../tests/fixtures/jepsen-powersync/b77a3d0/config/powersync.yaml");
        let jwks = yaml
            .split("jwks:")
            .nth(1)
            .expect("the static jwks of client_auth");
        let value = |name: &str| {
            jwks.lines()
                .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in the fixture"))
                .trim()
                .to_owned()
        };
        assert_eq!(value("kid:"), DEVELOPMENT_KID);
        assert_eq!(value("alg:"), "RS256");
        let n = BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(value("n:")).unwrap());
        let e = BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(value("e:")).unwrap());
        let signer = TokenSigner::development().unwrap();
        assert_eq!(&n, signer.key.as_ref().n());
        assert_eq!(&e, signer.key.as_ref().e());
        let (header, claims) = verify(&signer.token("user-7"), &n, &e);
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": DEVELOPMENT_KID})
        );
        assert_dart_claims(&claims, "user-7");
    }

    /// The Dart endpoint's claims: `sub`, both audiences, `parameters`, a 5-minute lifetime.
    fn assert_dart_claims(claims: &serde_json::Value, sub: &str) {
        assert_eq!(claims["sub"], sub);
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
