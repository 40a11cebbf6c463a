//! Client authentication as the service does it (the service's
//! `auth/KeyStore.ts` and `KeySpec.ts`): `Authorization: Token <jwt>` (or `Bearer`), verified
//! against a static JWKS.
//!
//! - Keys: `kty` RSA (RS256/384/512), EC (ES256 on P-256, ES384 on P-384), OKP (EdDSA,
//!   Ed25519) and oct (HS256/384/512, a shared secret). A key with `alg` accepts only that
//!   algorithm; without `alg`, any algorithm of its `kty` family.
//! - A token with a `kid` uses the key with exactly that kid (an algorithm it does not accept
//!   is an error), else the keys without a kid; a token without a `kid` only tries keys
//!   without a kid.
//! - Claims, in the service's order: the signature; `sub`, `iat`, `exp` present; `nbf` and
//!   `exp` with 60 s of clock tolerance; `aud` present and in the audience list; `exp - iat`
//!   at most the maximum lifetime; `parameters`, if present, an object.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::Error;
use crate::api_error::ApiError;

/// Clock tolerance for `exp` and `nbf`, as in the service.
const LEEWAY_SECS: f64 = 60.0;

struct Key {
    kid: Option<String>,
    kty: String,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl Key {
    /// The service's `KeySpec.matchesAlgorithm`.
    fn matches(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self.alg {
            Some(own) => own == alg,
            None => match self.kty.as_str() {
                "RSA" => matches!(alg, RS256 | RS384 | RS512),
                "oct" => matches!(alg, HS256 | HS384 | HS512),
                "OKP" => alg == EdDSA,
                "EC" => matches!(alg, ES256 | ES384),
                _ => false,
            },
        }
    }
}

/// The verified identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user id (`sub`).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The whole verified payload (what `request.jwt()` reads in sync rules).
    pub payload: Value,
}

/// Verifies tokens against a static JWKS and an audience list.
pub struct KeyStore {
    keys: Vec<Key>,
    audience: Vec<String>,
    max_lifetime: Duration,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .finish()
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn parse_alg(alg: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match alg {
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        _ => return None,
    })
}

impl KeyStore {
    /// Builds the key store from a JWKS `{"keys":[...]}`. Keys with `use` other than `sig`
    /// are skipped; a key the stand-in cannot use (unknown `kty`, ES512/P-521, a malformed
    /// key) is an error at start-up rather than a silently missing key.
    pub fn new(jwks: &Value, audience: Vec<String>, max_lifetime: Duration) -> Result<Self, Error> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Jwks("expected an object with a `keys` array".to_owned()))?;
        let mut keys = Vec::new();
        for jwk in list {
            let field = |name: &str| jwk.get(name).and_then(Value::as_str);
            if !matches!(field("use"), None | Some("sig")) {
                continue;
            }
            let kid = field("kid").map(str::to_owned);
            let describe = format!("key kid {:?}", kid.as_deref().unwrap_or("*"));
            let kty = field("kty").unwrap_or_default().to_owned();
            if !matches!(kty.as_str(), "RSA" | "EC" | "OKP" | "oct") {
                return Err(Error::Jwks(format!("{describe}: unsupported kty {kty:?}")));
            }
            let alg =
                match field("alg") {
                    None => None,
                    Some(name) => Some(parse_alg(name).ok_or_else(|| {
                        Error::Jwks(format!("{describe}: unsupported alg {name:?}"))
                    })?),
                };
            // jsonwebtoken's JWK type knows only the algorithms it implements; the `alg`
            // was checked above, so parse the key material without it.
            let mut material = jwk.clone();
            if let Some(object) = material.as_object_mut() {
                object.remove("alg");
            }
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(material)
                .map_err(|e| Error::Jwks(format!("{describe}: {e}")))?;
            let key = DecodingKey::from_jwk(&parsed)
                .map_err(|e| Error::Jwks(format!("{describe}: {e}")))?;
            keys.push(Key { kid, kty, alg, key });
        }
        Ok(KeyStore {
            keys,
            audience,
            max_lifetime,
        })
    }

    /// Verifies the `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Claims, ApiError> {
        let token = authorization
            .and_then(parse_authorization)
            .ok_or_else(|| ApiError::unauthorized("PSYNC_S2106", "Authentication required"))?;
        self.verify(token)
    }

    fn signature_valid(key: &Key, token: &str, alg: Algorithm) -> Option<Value> {
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Verifies a JWT.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            ApiError::unauthorized(
                "PSYNC_S2101",
                "Token is not a well-formed JWT. Check the token format.",
            )
        })?;
        let not_found = || {
            ApiError::unauthorized(
                "PSYNC_S2101",
                "Could not find an appropriate key in the keystore. The key is missing or no key \
                 matched the token KID",
            )
        };
        let exact = header
            .kid
            .as_ref()
            .and_then(|kid| self.keys.iter().find(|k| k.kid.as_ref() == Some(kid)));
        let payload = match exact {
            Some(key) => {
                if !key.matches(header.alg) {
                    return Err(ApiError::unauthorized(
                        "PSYNC_S2101",
                        &format!("Unexpected token algorithm {:?}", header.alg),
                    ));
                }
                Self::signature_valid(key, token, header.alg).ok_or_else(|| {
                    ApiError::unauthorized("PSYNC_S2101", "signature verification failed")
                })?
            }
            None => self
                .keys
                .iter()
                .filter(|k| k.kid.is_none() && k.matches(header.alg))
                .find_map(|k| Self::signature_valid(k, token, header.alg))
                .ok_or_else(not_found)?,
        };
        self.check_claims(&payload)
    }

    fn check_claims(&self, claims: &Value) -> Result<Claims, ApiError> {
        let missing = |name: &str| {
            ApiError::unauthorized(
                "PSYNC_S2101",
                &format!("JWT payload is missing a required claim \"{name}\""),
            )
        };
        let sub = match claims.get("sub") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => return Err(missing("sub")),
            Some(other) => other.to_string(),
        };
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or_else(|| missing("iat"))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or_else(|| missing("exp"))?;
        let now = now_f64();
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_f64().ok_or_else(|| {
                ApiError::unauthorized("PSYNC_S2101", "\"nbf\" claim must be a number")
            })?;
            if nbf > now + LEEWAY_SECS {
                return Err(ApiError::unauthorized(
                    "PSYNC_S2101",
                    "JWT is not valid yet (\"nbf\" claim timestamp check failed)",
                ));
            }
        }
        if exp <= now - LEEWAY_SECS {
            return Err(ApiError::unauthorized("PSYNC_S2103", "JWT has expired"));
        }
        let auds: Vec<&str> = match claims.get("aud") {
            None | Some(Value::Null) => {
                return Err(ApiError::unauthorized(
                    "PSYNC_S2105",
                    "JWT payload is missing a required claim \"aud\"",
                ));
            }
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(_) => Vec::new(),
        };
        if !auds.iter().any(|a| self.audience.iter().any(|b| b == a)) {
            return Err(ApiError::unauthorized(
                "PSYNC_S2105",
                &format!("Unexpected \"aud\" claim value: {:?}", auds),
            ));
        }
        let lifetime = exp - iat;
        if lifetime > self.max_lifetime.as_secs_f64() {
            return Err(ApiError::unauthorized(
                "PSYNC_S2104",
                &format!(
                    "Token must expire in a maximum of {} seconds, got {lifetime}s",
                    self.max_lifetime.as_secs()
                ),
            ));
        }
        if let Some(parameters) = claims.get("parameters")
            && !parameters.is_object()
            && !parameters.is_null()
        {
            return Err(ApiError::unauthorized(
                "PSYNC_S2101",
                "Payload parameters must be an object",
            ));
        }
        Ok(Claims {
            sub,
            exp: exp.floor() as i64,
            payload: claims.clone(),
        })
    }
}

/// Extracts the token from `Token <jwt>` or `Bearer <jwt>` (regex `^(Token|Bearer) (\S+)$`).
fn parse_authorization(value: &str) -> Option<&str> {
    let token = value
        .strip_prefix("Token ")
        .or_else(|| value.strip_prefix("Bearer "))?;
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        None
    } else {
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_headers() {
        assert_eq!(parse_authorization("Token abc"), Some("abc"));
        assert_eq!(parse_authorization("Bearer abc"), Some("abc"));
        assert_eq!(parse_authorization("Token "), None);
        assert_eq!(parse_authorization("Token a b"), None);
        assert_eq!(parse_authorization("Basic abc"), None);
        assert_eq!(parse_authorization("abc"), None);
    }

    #[test]
    fn rejects_jwks_without_keys_array() {
        assert!(KeyStore::new(&serde_json::json!({}), vec![], Duration::from_secs(1)).is_err());
    }
}
