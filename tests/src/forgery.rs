//! Forged access tokens (RFC 8725 and the JWT CVE record), each built on a genuine token so that
//! it differs from it only by the forgery: every route that accepts a token must refuse them all,
//! and a route that refuses one must not act on the claims it copied (its `jti`, its client).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use token_service::jwt::CLOCK_LEEWAY_SECS;
use token_service::keys::{KeySet, KeySetDocument, SigningAlgorithm};

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON serializes"))
}

/// The claims of a compact JWT, read without any verification.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("JSON payload")
}

/// An attacker's own key, not in the server's key set, and its kid.
pub fn attacker_key(alg: SigningAlgorithm) -> (EncodingKey, String) {
    let document = KeySetDocument::generate(alg, 0).expect("key generation");
    let key = &document.keys[0];
    let der = STANDARD.decode(&key.private_key).expect("base64 key");
    let encoding = match alg {
        SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&der),
        SigningAlgorithm::RS256 => EncodingKey::from_rsa_der(&der),
        SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&der),
    };
    (encoding, key.kid.clone())
}

/// An RFC 9068 header (`typ: at+jwt`) for `alg`, naming `kid`.
pub fn at_jwt_header(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    header
}

pub fn signed(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("signing")
}

/// `genuine`'s claims, genuinely signed by the server's current key, but expired: its `exp` plus
/// the leeway is `genuine`'s `iat`, so it is refused from the second `genuine` was issued in. Only
/// the expiry check can refuse it.
pub fn expired_copy(genuine: &str, keys: &KeySet) -> String {
    let mut claims = claims_of(genuine);
    let issued = claims["iat"].as_u64().expect("numeric iat");
    let exp = issued - CLOCK_LEEWAY_SECS;
    claims["exp"] = json!(exp);
    claims["iat"] = json!(exp - 600);
    let payload = serde_json::to_vec(&claims).expect("JSON serializes");
    keys.current().sign_json(&payload).expect("signing with the server's key")
}

/// Every forgery of `genuine`, a token signed by `keys` (the server's key set: its public half
/// keys the algorithm-confusion cases, its private half signs the expired copy). Each carries
/// `genuine`'s claims (`jti`, `client_id`, …) unless its name says otherwise.
pub fn forgeries(genuine: &str, keys: &KeySet) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = genuine.split('.').collect();
    let claims = claims_of(genuine);
    let server_key = keys.current();
    let real_kid = server_key.kid.clone();
    let alg = server_key.alg.jwt();
    let public_jwk = serde_json::to_value(&server_key.public_jwk).expect("JWK serializes");
    let public_jwk_bytes = serde_json::to_vec(&public_jwk).expect("JWK serializes");
    // The public key material itself: the EC or OKP `x`, the RSA modulus `n`.
    let public_component = public_jwk["x"].as_str().or(public_jwk["n"].as_str()).unwrap_or("");
    let (attacker, attacker_kid) = attacker_key(server_key.alg);

    let mut escalated = claims.clone();
    escalated["scope"] = json!("read write admin revoke:batch");
    let mut embedded_jwk = at_jwt_header(alg, &attacker_kid);
    embedded_jwk.jwk =
        Some(jsonwebtoken::jwk::Jwk::from_encoding_key(&attacker, alg).expect("JWK"));
    let mut jku = at_jwt_header(alg, &attacker_kid);
    jku.jku = Some("https://attacker.example/jwks.json".into());
    let mut jku_real_kid = at_jwt_header(alg, &real_kid);
    jku_real_kid.jku = Some("https://attacker.example/jwks.json".into());

    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": real_kid})),
                parts[1]
            ),
        ),
        (
            "alg none, no signature part",
            format!("{}.{}", b64(&json!({"alg": "none", "typ": "at+jwt"})), parts[1]),
        ),
        (
            "HS256 keyed with the public JWK",
            signed(
                at_jwt_header(Algorithm::HS256, &real_kid),
                &claims,
                &EncodingKey::from_secret(&public_jwk_bytes),
            ),
        ),
        (
            "HS256 keyed with the public x or n",
            signed(
                at_jwt_header(Algorithm::HS256, &real_kid),
                &claims,
                &EncodingKey::from_secret(public_component.as_bytes()),
            ),
        ),
        ("attacker key, real kid", signed(at_jwt_header(alg, &real_kid), &claims, &attacker)),
        (
            "attacker key, unknown kid",
            signed(at_jwt_header(alg, &attacker_kid), &claims, &attacker),
        ),
        (
            "injected kid path",
            signed(at_jwt_header(alg, "../../../../dev/null"), &claims, &attacker),
        ),
        ("injected kid sql", signed(at_jwt_header(alg, "x' OR '1'='1"), &claims, &attacker)),
        ("embedded jwk header", signed(embedded_jwk, &claims, &attacker)),
        ("jku header", signed(jku, &claims, &attacker)),
        ("jku header with the real kid", signed(jku_real_kid, &claims, &attacker)),
        ("tampered payload", format!("{}.{}.{}", parts[0], b64(&escalated), parts[2])),
        ("expired, signed with the server's key", expired_copy(genuine, keys)),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1])),
    ]
}
