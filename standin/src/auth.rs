//! Client authentication as the service does it (sync-protocol.md §1.1): `Authorization:
//! Token <jwt>` (or `Bearer`), verified against a static JWKS of RSA keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::Error;
use crate::api_error::ApiError;

/// Clock tolerance for `exp`, as in the service.
const LEEWAY_SECS: i64 = 60;

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The verified identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The user id (`sub`).
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
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

impl KeyStore {
    /// Builds the key store from a JWKS `{"keys":[...]}`. Only `kty: RSA` keys with `use` `sig`
    /// or absent are used (RS256/384/512; RS256 when `alg` is absent).
    pub fn new(jwks: &Value, audience: Vec<String>, max_lifetime: Duration) -> Result<Self, Error> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Jwks("expected an object with a `keys` array".to_owned()))?;
        let mut keys = Vec::new();
        for jwk in list {
            let field = |name: &str| jwk.get(name).and_then(Value::as_str);
            if field("kty") != Some("RSA") {
                tracing::warn!(
                    "JWKS: skipping a key with kty {:?} (only RSA is supported)",
                    field("kty")
                );
                continue;
            }
            if !matches!(field("use"), None | Some("sig")) {
                continue;
            }
            let algorithm = match field("alg") {
                None | Some("RS256") => Algorithm::RS256,
                Some("RS384") => Algorithm::RS384,
                Some("RS512") => Algorithm::RS512,
                Some(other) => {
                    return Err(Error::Jwks(format!(
                        "unsupported alg {other:?} for an RSA key"
                    )));
                }
            };
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                return Err(Error::Jwks("RSA key without `n` or `e`".to_owned()));
            };
            let key = DecodingKey::from_rsa_components(n, e)
                .map_err(|e| Error::Jwks(format!("bad RSA key: {e}")))?;
            keys.push(Key {
                kid: field("kid").map(str::to_owned),
                algorithm,
                key,
            });
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

    /// Verifies a JWT.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized("PSYNC_S2101", &format!("Malformed JWT: {e}")))?;
        let candidates = self.keys.iter().filter(|k| match (&k.kid, &header.kid) {
            (None, _) => true,
            (Some(kid), Some(want)) => kid == want,
            (Some(_), None) => true,
        });
        let mut payload = None;
        for key in candidates {
            if key.algorithm != header.alg {
                continue;
            }
            let mut validation = Validation::new(key.algorithm);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                payload = Some(data.claims);
                break;
            }
        }
        let claims = payload.ok_or_else(|| {
            ApiError::unauthorized(
                "PSYNC_S2101",
                "Could not find an appropriate key in the keystore. The key is missing or no key \
                 matched the token KID",
            )
        })?;
        self.check_claims(&claims)
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
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(missing("sub")),
        };
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("iat"))?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("exp"))?;
        if exp + LEEWAY_SECS < now_secs() {
            return Err(ApiError::unauthorized("PSYNC_S2103", "JWT has expired"));
        }
        let lifetime = exp - iat;
        if lifetime > self.max_lifetime.as_secs() as i64 {
            return Err(ApiError::unauthorized(
                "PSYNC_S2104",
                &format!(
                    "Token must expire in a maximum of {} seconds, got {lifetime}s",
                    self.max_lifetime.as_secs()
                ),
            ));
        }
        let auds: Vec<&str> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !auds.iter().any(|a| self.audience.iter().any(|b| b == a)) {
            return Err(ApiError::unauthorized(
                "PSYNC_S2105",
                &format!("Unexpected \"aud\" claim value: {:?}", auds),
            ));
        }
        Ok(Claims { sub, exp })
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
