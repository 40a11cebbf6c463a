//! The service's token rules (`auth/KeyStore.ts`, `KeySpec.ts`): every algorithm family, the
//! kid rules, `nbf`, `parameters`, the order of the `aud` and lifetime checks; and an HS256
//! token from a kid-less shared secret syncing the real core against real PostgreSQL.

mod common;

use std::time::Duration;

use common::core_client::CoreClient;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use standin::StandIn;
use standin::auth::{KeyStore, now_secs};
use testkit::TestKey;

const SECRET: &[u8] = b"a test-only shared secret, not for anything real";
const RSA_PEM: &str = include_str!("../../testkit/fixtures/test_key_a.pem");
const EC256_PEM: &str = include_str!("fixtures/ec-p256.pk8.pem");
const EC384_PEM: &str = include_str!("fixtures/ec-p384.pk8.pem");
const ED_PEM: &str = include_str!("fixtures/ed25519.pem");

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn oct_jwk(kid: Option<&str>, alg: Option<&str>) -> Value {
    let mut jwk = json!({"kty": "oct", "k": b64url(SECRET)});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

/// The public JWKs of the EC and Ed25519 fixtures (kids `ec256`, `ec384`, `ed`).
fn fixture_jwks() -> Vec<Value> {
    let file: Value = serde_json::from_str(include_str!("fixtures/public-jwks.json")).unwrap();
    file["keys"].as_array().unwrap().clone()
}

fn rsa_without_alg(kid: Option<&str>) -> Value {
    let mut jwk = TestKey::primary().public_jwk();
    let object = jwk.as_object_mut().unwrap();
    object.remove("alg");
    object.remove("kid");
    if let Some(kid) = kid {
        object.insert("kid".into(), json!(kid));
    }
    jwk
}

fn store(keys: Vec<Value>) -> KeyStore {
    KeyStore::new(
        &json!({ "keys": keys }),
        vec!["powersync-dev".into()],
        Duration::from_secs(86_400),
    )
    .unwrap()
}

fn claims(lifetime: i64) -> Value {
    let now = now_secs();
    json!({"sub": "u1", "aud": "powersync-dev", "iat": now, "exp": now + lifetime})
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => EncodingKey::from_secret(SECRET),
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap()
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC256_PEM.as_bytes()).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(EC384_PEM.as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PEM.as_bytes()).unwrap(),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn code(result: Result<standin::auth::Claims, standin::api_error::ApiError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code,
    }
}

#[test]
fn every_algorithm_family_verifies() {
    let mut keys = fixture_jwks();
    keys.push(oct_jwk(Some("hs"), None));
    keys.push(rsa_without_alg(Some("rsa")));
    let keys = store(keys);
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::HS384, "hs"),
        (Algorithm::HS512, "hs"),
        (Algorithm::RS256, "rsa"),
        (Algorithm::RS384, "rsa"),
        (Algorithm::RS512, "rsa"),
        (Algorithm::ES256, "ec256"),
        (Algorithm::ES384, "ec384"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let token = sign(alg, Some(kid), &claims(300));
        assert_eq!(code(keys.verify(&token)), "ok", "{alg:?}");
    }
    // A key with `alg` accepts only that algorithm; a kid'd key of another family refuses.
    let pinned = store(vec![oct_jwk(Some("hs"), Some("HS256"))]);
    assert_eq!(
        code(pinned.verify(&sign(Algorithm::HS256, Some("hs"), &claims(300)))),
        "ok"
    );
    assert_eq!(
        code(pinned.verify(&sign(Algorithm::HS512, Some("hs"), &claims(300)))),
        "PSYNC_S2101"
    );
    assert_eq!(
        code(keys.verify(&sign(Algorithm::HS256, Some("rsa"), &claims(300)))),
        "PSYNC_S2101"
    );
    // Unknown kty / alg are configuration errors, not silently missing keys.
    for bad in [json!({"kty": "XYZ"}), oct_jwk(None, Some("ES512"))] {
        assert!(KeyStore::new(&json!({"keys": [bad]}), vec![], Duration::from_secs(1)).is_err());
    }
}

#[test]
fn a_token_without_kid_only_matches_keys_without_kid() {
    let token = sign(Algorithm::HS256, None, &claims(300));
    assert_eq!(
        code(store(vec![oct_jwk(Some("hs"), None)]).verify(&token)),
        "PSYNC_S2101",
        "a kid'd key is not a wildcard"
    );
    assert_eq!(code(store(vec![oct_jwk(None, None)]).verify(&token)), "ok");
    // A token with an unknown kid falls back to the keys without a kid.
    let token = sign(Algorithm::RS256, Some("unknown"), &claims(300));
    assert_eq!(
        code(store(vec![rsa_without_alg(None)]).verify(&token)),
        "ok"
    );
    assert_eq!(
        code(store(vec![rsa_without_alg(Some("other"))]).verify(&token)),
        "PSYNC_S2101"
    );
}

#[test]
fn claims_are_checked_in_the_services_order() {
    let keys = store(vec![oct_jwk(None, None)]);
    let now = now_secs();
    let check = |claims: Value| code(keys.verify(&sign(Algorithm::HS256, None, &claims)));
    assert_eq!(check(claims(300)), "ok");
    // nbf, with the 60 s tolerance.
    assert_eq!(
        check(
            json!({"sub": "u", "aud": "powersync-dev", "iat": now, "exp": now + 300, "nbf": now + 30})
        ),
        "ok"
    );
    assert_eq!(
        check(
            json!({"sub": "u", "aud": "powersync-dev", "iat": now, "exp": now + 300, "nbf": now + 120})
        ),
        "PSYNC_S2101"
    );
    // Required claims, then expiry.
    assert_eq!(
        check(json!({"aud": "powersync-dev", "iat": now, "exp": now + 300})),
        "PSYNC_S2101"
    );
    assert_eq!(
        check(json!({"sub": "u", "aud": "powersync-dev", "exp": now + 300})),
        "PSYNC_S2101"
    );
    assert_eq!(
        check(json!({"sub": "u", "aud": "powersync-dev", "iat": now - 600, "exp": now - 61})),
        "PSYNC_S2103"
    );
    // `aud` before the lifetime: a token breaking both is an audience error.
    assert_eq!(
        check(json!({"sub": "u", "aud": "elsewhere", "iat": now, "exp": now + 200_000})),
        "PSYNC_S2105"
    );
    assert_eq!(
        check(json!({"sub": "u", "iat": now, "exp": now + 300})),
        "PSYNC_S2105"
    );
    assert_eq!(
        check(json!({"sub": "u", "aud": "powersync-dev", "iat": now, "exp": now + 200_000})),
        "PSYNC_S2104"
    );
    // `parameters` must be an object.
    for bad in [json!([1]), json!("x"), json!(3)] {
        assert_eq!(
            check(
                json!({"sub": "u", "aud": "powersync-dev", "iat": now, "exp": now + 300, "parameters": bad})
            ),
            "PSYNC_S2101"
        );
    }
    assert_eq!(
        check(
            json!({"sub": "u", "aud": "powersync-dev", "iat": now, "exp": now + 300, "parameters": {"a": 1}})
        ),
        "ok"
    );
    // Fractional times and a numeric sub are fine, as with jose.
    assert_eq!(
        check(
            json!({"sub": 7, "aud": ["x", "powersync-dev"], "iat": now as f64 + 0.5, "exp": now as f64 + 300.5})
        ),
        "ok"
    );
}

#[tokio::test]
async fn an_hs256_token_without_kid_syncs_the_core() {
    let (pg, db) = postgres(
        "CREATE TABLE lww (id text PRIMARY KEY, k integer NOT NULL, v integer NOT NULL); \
         INSERT INTO lww VALUES ('a', 1, 1)",
    )
    .await;
    let mut config = config(&pg, LWW_RULES);
    config.jwks = json!({"keys": [oct_jwk(None, None), TestKey::primary().public_jwk()]});
    let standin = StandIn::start(config).await.unwrap();
    let mut client = CoreClient::open();
    let token = sign(Algorithm::HS256, None, &claims(300));
    let mut lines = connect(&mut client, &standin.url(), &token).await;
    feed_until(&mut client, &mut lines, |_| {}, |c| c.rows().len() == 1).await;
    drop(lines);
    // The RS256 test key with its kid still works; a kid-less RS256 token does not (the
    // only kid-less key is the shared secret).
    let request = client.start();
    let ok = open_stream(
        &standin.url(),
        &TestKey::primary().token("u1", 300).unwrap(),
        &request,
    )
    .await;
    assert_eq!(ok.status(), 200);
    drop(ok);
    let kidless = sign(Algorithm::RS256, None, &claims(300));
    let refused = open_stream(&standin.url(), &kidless, &request).await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PSYNC_S2101");
    let _ = db;
    standin.shutdown().await;
}
