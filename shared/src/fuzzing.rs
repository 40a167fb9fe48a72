//! Entry points of the `cargo fuzz` targets in `fuzz/`, also replayed under plain `cargo test` by
//! `tests/tests/fuzz_regressions.rs` (every committed seed and every past crash). Each function
//! takes the fuzzer's bytes, drives one request-facing parser or the token verification path
//! exactly as the service does, and panics when a property fails, not only on a crash.
//!
//! Not part of the service's API: behind the `fuzzing` feature, which only the fuzz crate and
//! the integration tests enable.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::api::client_auth::{access_token, presented_client};
use crate::api::form::{Form, MAX_BODY_BYTES, MAX_PARAMS};
use crate::api::response::error_response;
use crate::auth::PresentedClient;
use crate::batch::BatchRevocation;
use crate::client_assertion::{assertion_kid, claimed_client_id, verify_assertion};
use crate::clock::ManualClock;
use crate::domain::BATCH_REVOCATION_SCOPE;
use crate::domain::{
    Client, ClientId, ClientJwks, Credentials, GrantId, GrantType, MAX_SCOPE_LEN, MAX_SCOPES,
    MAX_TENANT_DEPTH, MAX_TENANT_PATH_LEN, ReplayKey, Scope, ScopeSet, SecretDigest, TenantPath,
    TokenId, User, UserId, Username,
};
use crate::dpop::{ProofContext, access_token_hash, check_proof};
use crate::endpoints::TOKEN_PATH;
use crate::error::Error;
use crate::jwt::{
    ACCESS_TOKEN_TYPE, AccessTokenClaims, AccessTokens, CLOCK_LEEWAY_SECS, TokenSigner,
};
use crate::keys::{KeySet, KeySetDocument, SigningAlgorithm};
use crate::store::memory::MemoryStore;
use crate::store::{
    ClientStore, IssuanceLog, IssuedToken, RevocationStore, Stores, TokenKind, UserStore, layer,
};
use crate::verify::{Presented, Verifier, VerifyError};

/// The fixed time every fixture runs at (2027-01-15T08:00:00Z).
pub const NOW: u64 = 1_800_000_000;
pub const ISSUER: &str = "https://fuzz.example";
pub const AUDIENCE: &str = "fuzz-api";
/// Fixed key ids, so seeds and mutated tokens reach signature verification.
pub const KID_ES256: &str = "fuzz-es256";
pub const KID_EDDSA: &str = "fuzz-eddsa";
pub const KID_RS256: &str = "fuzz-rs256";
/// The `jti` the JWT fixture has revoked (16 bytes of 7).
pub const REVOKED_JTI: &str = "BwcHBwcHBwcHBwcHBwcHBw";
/// The tenant subtree the JWT fixture has cut off at [`NOW`].
pub const CUT_TENANT: &str = "/cut";

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

fn split_at_byte(data: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == separator) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread().build().expect("fuzz runtime")
        })
        .block_on(future)
}

/// RFC 6749 §5.2: `error` and `error_description` use `%x20-21 / %x23-5B / %x5D-7E` only.
fn rfc6749_error_chars(text: &str) -> bool {
    text.bytes()
        .all(|b| b == 0x20 || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// What every error response must look like: JSON `{error, error_description}` in the RFC 6749
/// character set, never cached, a 4xx for request errors.
fn check_error_response(response: &Response<Body>) {
    assert!(response.status().is_client_error(), "status {}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        Some(&b"application/json"[..])
    );
    assert_eq!(headers.get(CACHE_CONTROL).map(HeaderValue::as_bytes), Some(&b"no-store"[..]));
    let body: Value = serde_json::from_slice(response.body().as_ref()).expect("error body is JSON");
    let object = body.as_object().expect("error body is an object");
    assert_eq!(object.len(), 2, "error body has exactly error and error_description: {body}");
    let error = object["error"].as_str().expect("error is a string");
    let description = object["error_description"].as_str().expect("description is a string");
    assert!(!error.is_empty() && rfc6749_error_chars(error), "error {error:?}");
    assert!(rfc6749_error_chars(description), "error_description {description:?}");
    assert!(description.len() <= 256, "error_description of {} bytes", description.len());
}

fn check_request_error(error: &Error) {
    let response = error_response(error);
    check_error_response(&response);
}

// ---------------------------------------------------------------------------------------------
// Form bodies
// ---------------------------------------------------------------------------------------------

/// An independent `application/x-www-form-urlencoded` component decoder: `+` is a space, `%XX`
/// a byte, anything else (a stray `%` included) itself; the result must be UTF-8.
fn model_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some((hi, lo))) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The pairs a strict form parse must produce, or `None` when it must fail: a component that is
/// not UTF-8, a repeated name (RFC 6749 §3.1), or too many parameters.
fn model_form(text: &str) -> Option<Vec<(String, String)>> {
    let mut names = HashSet::new();
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (model_decode(name)?, model_decode(value)?);
        if !names.insert(name.clone()) {
            return None;
        }
        pairs.push((name, value));
    }
    (pairs.len() <= MAX_PARAMS).then_some(pairs)
}

fn check_form_against_model(form: &Form, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        let expected = (!value.is_empty()).then_some(value.as_str());
        assert_eq!(form.get(name), expected, "parameter {name:?}");
    }
}

/// Form target. Input: `Content-Type value \n body`. The body parse must agree with the model
/// (so a successful parse never holds a repeated name), accept only a form content type and
/// bodies within the cap, and fail only with `invalid_request`.
pub fn form(data: &[u8]) {
    let (content_type, body) = split_at_byte(data, b'\n');
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    let text = std::str::from_utf8(body).ok();
    let model = text.map(model_form);
    match Form::parse(&headers, body) {
        Ok(form) => {
            assert!(body.len() <= MAX_BODY_BYTES);
            let media_type = headers
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(';').next())
                .expect("accepted without a Content-Type");
            assert!(media_type.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE), "{media_type:?}");
            let Some(Some(pairs)) = &model else {
                panic!("accepted a body the model rejects: {text:?}");
            };
            check_form_against_model(&form, pairs);
        }
        Err(error) => {
            assert!(
                matches!(error, Error::InvalidRequest(_) | Error::PayloadTooLarge(_)),
                "{error:?}"
            );
            check_request_error(&error);
        }
    }
    // A query string is parsed by the same rules, whatever the content type.
    if let Some(text) = text {
        let model = model_form(text);
        match Form::parse_query(Some(text)) {
            Ok(form) => {
                let pairs = model.unwrap_or_else(|| panic!("query accepted, model rejects"));
                check_form_against_model(&form, &pairs);
            }
            Err(error) => {
                assert!(model.is_none(), "query rejected, model accepts: {error:?}");
                assert!(matches!(error, Error::InvalidRequest(_)), "{error:?}");
                check_request_error(&error);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client authentication headers
// ---------------------------------------------------------------------------------------------

fn form_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE));
    headers
}

fn form_urlencode(raw: &str) -> String {
    utf8_percent_encode(raw, NON_ALPHANUMERIC).to_string()
}

/// The Basic header a conforming client sends for `id` and `secret` (RFC 6749 §2.3.1).
fn basic_header(id: &str, secret: &str) -> HeaderValue {
    let credentials = format!("{}:{}", form_urlencode(id), form_urlencode(secret));
    HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .expect("base64 is a valid header value")
}

/// Basic credentials encoded by the RFC's rules parse back to exactly the same id and secret.
fn check_basic_round_trip(id: &str, secret: &str) {
    let mut headers = form_headers();
    headers.insert(AUTHORIZATION, basic_header(id, secret));
    let client = presented_client(&headers, &Form::default(), TOKEN_PATH)
        .unwrap_or_else(|e| panic!("well-formed Basic credentials rejected: {e:?}"));
    assert_eq!(secret_of(&client), (id, secret));
}

/// The id and secret of credentials presented as a secret.
fn secret_of(client: &PresentedClient) -> (&str, &str) {
    match client {
        PresentedClient::Secret { id, secret } => (id, secret),
        other => panic!("not a secret: {other:?}"),
    }
}

/// HTTP Basic target. Input: `Authorization value \n form body`. Accepted credentials come from
/// exactly one method, re-encode to themselves, and errors are `invalid_client` or
/// `invalid_request`; any id and secret (the two halves of the input) survive encoding.
pub fn basic_auth(data: &[u8]) {
    let (authorization, body) = split_at_byte(data, b'\n');
    let mut headers = form_headers();
    let header = HeaderValue::from_bytes(authorization).ok();
    if let Some(value) = &header {
        headers.insert(AUTHORIZATION, value.clone());
    }
    let form = Form::parse(&headers, body).unwrap_or_default();
    let scheme = header
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .map(|(scheme, _)| scheme.to_owned());
    match presented_client(&headers, &form, TOKEN_PATH) {
        Ok(client) if header.is_some() => {
            assert!(
                scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("basic")),
                "{scheme:?}"
            );
            assert_eq!(form.get("client_secret"), None, "two methods accepted");
            let (id, secret) = secret_of(&client);
            if let Some(body_id) = form.get("client_id") {
                assert_eq!(body_id, id, "conflicting client ids accepted");
            }
            check_basic_round_trip(id, secret);
        }
        Ok(client) => {
            let (id, secret) = secret_of(&client);
            assert_eq!(Some(id), form.get("client_id"));
            assert_eq!(Some(secret), form.get("client_secret"));
        }
        Err(error) => {
            assert!(matches!(error, Error::InvalidClient | Error::InvalidRequest(_)), "{error:?}");
            check_request_error(&error);
        }
    }
    let mut request = Request::new(Body::Empty);
    *request.headers_mut() = headers;
    match access_token(&request, TOKEN_PATH) {
        Ok(Some(Presented::Bearer(token))) => {
            assert!(scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("bearer")));
            assert_eq!(token, token.trim());
        }
        Ok(Some(Presented::Dpop { token, proof: None, .. })) => {
            assert!(scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("dpop")));
            assert_eq!(token, token.trim());
        }
        Ok(Some(other)) => panic!("a proof out of nowhere: {other:?}"),
        Ok(None) => {}
        Err(error) => panic!("one Authorization header rejected: {error:?}"),
    }
    check_basic_round_trip(&String::from_utf8_lossy(authorization), &String::from_utf8_lossy(body));
}

// ---------------------------------------------------------------------------------------------
// JWT verification
// ---------------------------------------------------------------------------------------------

struct JwtFixture {
    tokens: AccessTokens,
    verifier: Verifier,
    es256: EcdsaKeyPair,
    eddsa: Ed25519KeyPair,
    /// The RSA key's public JWK, used as an HMAC secret to attempt algorithm confusion.
    rsa_public: Vec<u8>,
}

/// A key set of all three algorithms under fixed key ids, and the private halves to sign with.
fn fixture_keys() -> (KeySet, KeySetDocument) {
    let mut document = KeySetDocument::generate(SigningAlgorithm::ES256, 0).expect("ES256 key");
    document.stage(SigningAlgorithm::EdDSA, 0).expect("EdDSA key");
    document.stage(SigningAlgorithm::RS256, 0).expect("RS256 key");
    for key in &mut document.keys {
        key.kid = match key.alg {
            SigningAlgorithm::ES256 => KID_ES256,
            SigningAlgorithm::EdDSA => KID_EDDSA,
            SigningAlgorithm::RS256 => KID_RS256,
        }
        .to_owned();
    }
    document.current = KID_ES256.to_owned();
    (KeySet::from_document(&document).expect("fixture key set"), document)
}

fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (keys, document) = fixture_keys();
        let private = |alg| {
            let key = document.keys.iter().find(|key| key.alg == alg).expect("fixture key");
            STANDARD.decode(&key.private_key).expect("fixture key base64")
        };
        let es256 = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &private(SigningAlgorithm::ES256),
        )
        .expect("ES256 pkcs8");
        let eddsa =
            Ed25519KeyPair::from_pkcs8(&private(SigningAlgorithm::EdDSA)).expect("EdDSA pkcs8");
        let rsa_public =
            serde_json::to_vec(&keys.find(KID_RS256).expect("rsa").public_jwk).expect("jwk json");
        let tokens = AccessTokens::new(keys.verification_keys(), ISSUER.into(), AUDIENCE.into());
        let store = Arc::new(MemoryStore::new());
        block_on(async {
            let revoked = TokenId::parse(REVOKED_JTI).expect("revoked jti");
            store.revoke_token(&revoked, NOW + 86_400, None, NOW).await.expect("revoke");
            store
                .raise_cutoff(&layer::tenant(CUT_TENANT), NOW, NOW + 86_400, NOW)
                .await
                .expect("cutoff");
        });
        let clock = Arc::new(ManualClock::new(NOW));
        let verifier = Verifier::new(tokens.clone(), store.clone(), store, clock);
        JwtFixture { tokens, verifier, es256, eddsa, rsa_public }
    })
}

fn decode_segment(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("accepted segment is base64url");
    serde_json::from_slice(&bytes).expect("accepted segment is JSON")
}

/// Runs `token` through signature and claims verification and through the full verifier
/// (revocation included), checking every property of an accepted token. Returns whether the
/// signature and claims checks accepted it.
fn check_token(token: &str) -> bool {
    let fixture = jwt_fixture();
    let checked = fixture.tokens.verify(token, NOW);
    let full = block_on(fixture.verifier.verify(token));
    if let Err(VerifyError::Storage(error)) = &full {
        panic!("the in-memory store failed: {error}");
    }
    let Ok(claims) = checked else {
        assert!(full.is_err(), "the full verifier accepted a token the JWT checks rejected");
        return false;
    };
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, AUDIENCE);
    assert!(NOW < claims.exp.saturating_add(CLOCK_LEEWAY_SECS), "expired token accepted");
    assert!(claims.nbf.unwrap_or(claims.iat) <= NOW + CLOCK_LEEWAY_SECS, "future token accepted");

    // The header that verified: our type, a known kid, and exactly that key's algorithm.
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "accepted token is not a compact JWS");
    let header = decode_segment(segments[0]);
    let typ = header["typ"].as_str().expect("typ");
    assert!(
        typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
            || typ.eq_ignore_ascii_case("application/at+jwt"),
        "typ {typ:?}"
    );
    let kid = header["kid"].as_str().expect("kid");
    let key = fixture.tokens.keys().find(kid).expect("kid of a fixture key");
    assert_eq!(header["alg"].as_str(), Some(key.alg.as_str()), "alg not bound to the key");
    assert!(header.get("crit").is_none(), "crit accepted");
    // Claims of the wrong JSON type are rejected, not coerced.
    let payload = decode_segment(segments[1]);
    for claim in ["exp", "iat"] {
        assert!(payload[claim].is_u64(), "{claim} is {}", payload[claim]);
    }
    for claim in ["iss", "aud", "sub", "jti", "client_id", "scope", "tenant"] {
        assert!(payload[claim].is_string(), "{claim} is {}", payload[claim]);
    }

    // Changing one character of the signature must break it.
    let signature = segments[2];
    let mut tampered_signature = signature.as_bytes().to_vec();
    let middle = tampered_signature.len() / 2;
    tampered_signature[middle] = if tampered_signature[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        segments[0],
        segments[1],
        String::from_utf8(tampered_signature).expect("ascii")
    );
    assert!(fixture.tokens.verify(&tampered, NOW).is_err(), "tampered signature accepted");

    if let Ok(verified) = full {
        assert_eq!(verified.claims, claims);
        assert_ne!(verified.id.as_str(), REVOKED_JTI, "revoked token accepted");
        assert_eq!(verified.tenant.as_str(), claims.tenant);
        let cut = TenantPath::parse(CUT_TENANT).expect("cut tenant");
        assert!(
            !(verified.tenant.is_within(&cut) && claims.iat < NOW),
            "token issued before its tenant's cutoff accepted"
        );
    }
    true
}

/// JWT target on raw bytes: the input (lossily UTF-8) is presented as an access token.
pub fn jwt_verify(data: &[u8]) {
    check_token(&String::from_utf8_lossy(data));
}

/// Structure-aware JWT target. Input: `mode header-json \0 claims-json`; the two JSON documents
/// are signed as they are, so mutations of a valid header and claims get past the signature.
/// `mode % 4`: 0 the ES256 key, 1 the EdDSA key, 2 HS256 keyed with the RSA public key
/// (algorithm confusion), 3 an empty signature (`alg: none` style). Only 0 and 1 can verify.
pub fn jwt_signed(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (header, claims) = split_at_byte(rest, 0);
    let fixture = jwt_fixture();
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = match mode % 4 {
        0 => fixture
            .es256
            .sign(&SystemRandom::new(), message.as_bytes())
            .expect("ES256 signing")
            .as_ref()
            .to_vec(),
        1 => fixture.eddsa.sign(message.as_bytes()).as_ref().to_vec(),
        2 => {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &fixture.rsa_public), message.as_bytes())
                .as_ref()
                .to_vec()
        }
        _ => Vec::new(),
    };
    let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
    if check_token(&token) {
        let signer = if mode % 4 == 0 { KID_ES256 } else { KID_EDDSA };
        assert!(mode % 4 < 2, "a token not signed by a fixture key verified");
        let header: Value = serde_json::from_slice(header).expect("header JSON");
        assert_eq!(header["kid"].as_str(), Some(signer), "verified under another key's kid");
        let claims: AccessTokenClaims = serde_json::from_slice(claims).expect("claims JSON");
        assert_eq!(claims.iss, ISSUER);
    }
}

// ---------------------------------------------------------------------------------------------
// One-time JWTs: client assertions (RFC 7523) and DPoP proofs (RFC 9449)
// ---------------------------------------------------------------------------------------------

/// The client the assertion target authenticates: registered with the fixture's ES256 and EdDSA
/// public keys, under their kids.
pub const ASSERTING_CLIENT: &str = "fuzz-signer";
/// The access token a proof accompanies in the proof target.
pub const PROOF_ACCESS_TOKEN: &str = "fuzz-access-token";

fn token_url() -> String {
    crate::endpoints::url(ISSUER, TOKEN_PATH)
}

fn asserting_client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let fixture = jwt_fixture();
        let public = |kid| {
            let key = fixture.tokens.keys().find(kid).expect("fixture key");
            serde_json::to_value(&key.public_jwk).expect("jwk JSON")
        };
        let jwks = serde_json::json!({ "keys": [public(KID_ES256), public(KID_EDDSA)] });
        Client::new(
            ClientId::parse(ASSERTING_CLIENT).expect("client id"),
            Credentials::PrivateKeyJwt { jwks: ClientJwks::parse(jwks).expect("fixture jwks") },
            TenantPath::parse("/fuzz").expect("tenant"),
        )
    })
}

/// A fuzzer's header and claims, signed.
struct SignedInput<'a> {
    jwt: String,
    /// The fixture kid whose private key signed it; `None` for HMAC or no signature.
    signer: Option<&'static str>,
    header: &'a [u8],
    claims: &'a [u8],
}

/// `mode header \0 claims`, signed as `jwt_signed` signs: `mode % 4` 0 ES256, 1 EdDSA, 2 HS256
/// keyed with a public key, 3 no signature.
fn signed_by_mode(data: &[u8]) -> Option<SignedInput<'_>> {
    let (&mode, rest) = data.split_first()?;
    let (header, claims) = split_at_byte(rest, 0);
    let fixture = jwt_fixture();
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let (signature, signer) = match mode % 4 {
        0 => {
            let signature = fixture.es256.sign(&SystemRandom::new(), message.as_bytes());
            (signature.expect("ES256 signing").as_ref().to_vec(), Some(KID_ES256))
        }
        1 => (fixture.eddsa.sign(message.as_bytes()).as_ref().to_vec(), Some(KID_EDDSA)),
        2 => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, &fixture.rsa_public);
            (hmac::sign(&key, message.as_bytes()).as_ref().to_vec(), None)
        }
        _ => (Vec::new(), None),
    };
    let jwt = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
    Some(SignedInput { jwt, signer, header, claims })
}

/// Client assertion target. Input as [`signed_by_mode`]. An accepted assertion was signed by
/// one of the client's keys under that key's kid and alg, names nothing that fetches keys, and
/// its claims keep every rule of RFC 7523 §3 as this service applies them.
pub fn client_assertion(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let _ = (claimed_client_id(&raw), assertion_kid(&raw));
    let client = asserting_client();
    let url = token_url();
    let audiences = [ISSUER, url.as_str()];
    assert!(verify_assertion(&raw, client, &audiences, NOW).is_err(), "unsigned bytes accepted");
    let Some(SignedInput { jwt, signer, header, claims }) = signed_by_mode(data) else { return };
    let Ok(verified) = verify_assertion(&jwt, client, &audiences, NOW) else { return };
    let signer = signer.expect("an assertion not signed by a client key was accepted");
    let header: Value = serde_json::from_slice(header).expect("header JSON");
    assert_eq!(header["kid"].as_str(), Some(signer), "verified under another key's kid");
    let bound = if signer == KID_ES256 { "ES256" } else { "EdDSA" };
    assert_eq!(header["alg"].as_str(), Some(bound), "alg not bound to the key");
    for member in ["jku", "x5u", "jwk", "x5c", "crit"] {
        assert!(header.get(member).is_none(), "{member} accepted");
    }
    let claims: Value = serde_json::from_slice(claims).expect("claims JSON");
    assert_eq!(claims["iss"].as_str(), Some(ASSERTING_CLIENT));
    assert_eq!(claims["sub"].as_str(), Some(ASSERTING_CLIENT));
    let names = |aud: &Value| aud.as_str().is_some_and(|aud| audiences.contains(&aud));
    let aud = &claims["aud"];
    assert!(names(aud) || aud.as_array().is_some_and(|auds| auds.iter().any(names)), "aud {aud}");
    let exp = claims["exp"].as_u64().expect("exp is an integer");
    assert!(NOW < exp + CLOCK_LEEWAY_SECS && exp <= NOW + 300 + CLOCK_LEEWAY_SECS, "exp {exp}");
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert!(!jti.is_empty() && jti.len() <= 256, "jti {jti:?}");
    assert_eq!(verified.replay_until, exp + CLOCK_LEEWAY_SECS);
    let client_id = ClientId::parse(ASSERTING_CLIENT).expect("client id");
    assert_eq!(verified.replay, ReplayKey::client_assertion(&client_id, jti));
}

/// DPoP proof target. Input as [`signed_by_mode`]; the proof is checked for `POST` at the token
/// URL, accompanying [`PROOF_ACCESS_TOKEN`]. An accepted proof carries, as its `jwk`, the public
/// key that really signed it (its thumbprint is what a token gets bound to), and its claims
/// keep every rule of RFC 9449 §4.3.
pub fn dpop_proof(data: &[u8]) {
    let url = token_url();
    let context =
        ProofContext { method: "POST", url: &url, access_token: Some(PROOF_ACCESS_TOKEN) };
    let raw = String::from_utf8_lossy(data);
    assert!(check_proof(&raw, &context, NOW).is_err(), "unsigned bytes accepted");
    let Some(SignedInput { jwt, signer, header, claims }) = signed_by_mode(data) else { return };
    let Ok(checked) = check_proof(&jwt, &context, NOW) else { return };
    let signer = signer.expect("a proof not signed by an asymmetric key was accepted");
    let fixture = jwt_fixture();
    let key = fixture.tokens.keys().find(signer).expect("fixture key");
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(&key.public_jwk).expect("jwk JSON"))
            .expect("fixture jwk");
    let thumbprint = jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).expect("jkt");
    assert_eq!(checked.jkt, thumbprint, "bound to a key that did not sign the proof");
    let header: Value = serde_json::from_slice(header).expect("header JSON");
    assert_eq!(header["typ"].as_str(), Some("dpop+jwt"));
    for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(header["jwk"].get(member).is_none(), "a private key member {member} accepted");
    }
    let claims: Value = serde_json::from_slice(claims).expect("claims JSON");
    assert_eq!(claims["htm"].as_str(), Some("POST"));
    let iat = claims["iat"].as_u64().expect("iat is an integer");
    assert!(iat.abs_diff(NOW) <= 60, "iat {iat}");
    assert_eq!(claims["ath"].as_str(), Some(access_token_hash(PROOF_ACCESS_TOKEN).as_str()));
    let jti = claims["jti"].as_str().expect("jti is a string");
    assert_eq!(checked.replay, ReplayKey::dpop_proof(&thumbprint, jti));
}

// ---------------------------------------------------------------------------------------------
// Domain newtypes
// ---------------------------------------------------------------------------------------------

/// An independent statement of the tenant path grammar.
fn model_tenant_path(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    raw.len() <= MAX_TENANT_PATH_LEN
        && segments.len() <= MAX_TENANT_DEPTH
        && segments.iter().all(|segment| {
            (1..=64).contains(&segment.len())
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

fn check_tenant_path(raw: &str) -> Option<TenantPath> {
    let parsed = TenantPath::parse(raw);
    assert_eq!(parsed.is_ok(), model_tenant_path(raw), "tenant path {raw:?}");
    let as_json = serde_json::to_string(raw).expect("string JSON");
    assert_eq!(serde_json::from_str::<TenantPath>(&as_json).ok(), parsed.clone().ok());
    let path = parsed.ok()?;
    assert_eq!(path.as_str(), raw);
    assert_eq!(path.to_string(), raw);
    assert_eq!(TenantPath::parse(path.as_str()).as_ref(), Ok(&path));
    let json = serde_json::to_string(&path).expect("path JSON");
    assert_eq!(serde_json::from_str::<TenantPath>(&json).expect("path reparses"), path);
    let lineage: Vec<&str> = path.lineage().collect();
    assert_eq!(lineage.len(), raw.matches('/').count());
    assert_eq!(lineage.last(), Some(&raw));
    for ancestor in &lineage {
        let ancestor = TenantPath::parse(ancestor).expect("ancestor parses");
        assert!(path.is_within(&ancestor), "{path} not within its ancestor {ancestor}");
    }
    Some(path)
}

/// An independent statement of the scope grammar: space-separated tokens, none empty.
fn model_scope_set(raw: &str) -> bool {
    let tokens: Vec<&str> = raw.split(' ').collect();
    let distinct: HashSet<&str> = tokens.iter().copied().collect();
    distinct.len() <= MAX_SCOPES
        && tokens.iter().all(|token| {
            (1..=MAX_SCOPE_LEN).contains(&token.len())
                && token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        })
}

fn check_scope_set(raw: &str) -> Option<ScopeSet> {
    let parsed = ScopeSet::parse(raw);
    assert_eq!(parsed.is_ok(), model_scope_set(raw), "scope {raw:?}");
    let set = parsed.ok()?;
    let rendered = set.to_string();
    assert_eq!(ScopeSet::parse(&rendered).as_ref(), Ok(&set), "{rendered:?}");
    let tokens: Vec<&str> = rendered.split(' ').collect();
    assert!(tokens.windows(2).all(|pair| pair[0] < pair[1]), "not sorted and unique: {rendered}");
    assert!(raw.split(' ').all(|token| set.contains(token)));
    assert!(set.iter().all(|scope| Scope::parse(scope.as_str()).as_ref() == Ok(scope)));
    let json = serde_json::to_string(&set).expect("set JSON");
    assert_eq!(serde_json::from_str::<ScopeSet>(&json).expect("set reparses"), set);
    Some(set)
}

fn check_ids(raw: &str) {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let model = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(unreserved);
    let client = ClientId::parse(raw);
    assert_eq!(client.is_ok(), model, "client id {raw:?}");
    if let Ok(id) = client {
        assert_eq!(id.as_str(), raw);
    }
    // Random ids: only the one canonical spelling of 16 bytes, so one token has one id.
    let canonical = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(TokenId::from_bytes)
        .filter(|id| id.as_str() == raw);
    assert_eq!(TokenId::parse(raw).ok(), canonical, "token id {raw:?}");
    assert_eq!(GrantId::parse(raw).is_ok(), canonical.is_some());
    assert_eq!(UserId::parse(raw).is_ok(), canonical.is_some());
    if let Ok(name) = Username::parse(raw) {
        assert_eq!(name.as_str(), raw);
        assert_eq!(name.as_str().trim(), raw);
        assert_eq!(Username::parse(name.as_str()).as_ref(), Ok(&name));
    }
}

/// Domain target. Input: `first \n second` (lossily UTF-8). Each half goes through every
/// validated newtype: acceptance matches an independent model, values re-parse to themselves
/// (string form and JSON), and the relations between the two (containment, subset) agree.
pub fn domain(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, second) = text.split_once('\n').unwrap_or((&text, ""));
    for raw in [&*text, first, second] {
        check_ids(raw);
    }
    let paths = (check_tenant_path(first), check_tenant_path(second));
    check_tenant_path(&text);
    if let (Some(a), Some(b)) = &paths {
        let by_lineage = a.lineage().any(|ancestor| ancestor == b.as_str());
        assert_eq!(a.is_within(b), by_lineage, "{a} within {b}");
        if a.is_within(b) && b.is_within(a) {
            assert_eq!(a, b);
        }
    }
    let sets = (check_scope_set(first), check_scope_set(second));
    check_scope_set(&text);
    if let (Some(a), Some(b)) = &sets {
        let common = a.intersection(b);
        assert!(common.is_subset(a) && common.is_subset(b));
        assert_eq!(a.is_subset(b), common == *a);
    }
}

// ---------------------------------------------------------------------------------------------
// Batch revocation body
// ---------------------------------------------------------------------------------------------

struct BatchFixture {
    tokens: AccessTokens,
    /// The caller's Bearer token: client `admin` of `/acme`, scope `revoke:batch`.
    bearer: String,
}

/// Users of the batch fixture: alice in `/acme/emea`, bob in `/globex`.
pub const ALICE: [u8; 16] = [1; 16];
pub const BOB: [u8; 16] = [2; 16];

fn batch_fixture() -> &'static BatchFixture {
    static FIXTURE: OnceLock<BatchFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (keys, _) = fixture_keys();
        let signer = TokenSigner::new(keys, ISSUER.into(), AUDIENCE.into());
        let claims = AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "admin".into(),
            aud: AUDIENCE.into(),
            exp: NOW + 3_600,
            iat: NOW - 100,
            nbf: None,
            jti: TokenId::from_bytes([9; 16]).to_string(),
            client_id: "admin".into(),
            scope: BATCH_REVOCATION_SCOPE.into(),
            tenant: "/acme".into(),
            sid: None,
            cnf: None,
        };
        let bearer = signer.sign(&claims).expect("caller token");
        BatchFixture { tokens: signer.verifier(), bearer }
    })
}

/// A fresh store: three clients, two users, and tokens issued across two tenants.
async fn batch_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let tenant = |raw| TenantPath::parse(raw).expect("fixture tenant");
    for (id, home) in [("admin", "/acme"), ("app", "/acme/emea"), ("far", "/globex")] {
        let client = Client {
            id: ClientId::parse(id).expect("fixture client"),
            credentials: crate::domain::Credentials::secret(SecretDigest::of(id.as_bytes())),
            tenant: tenant(home),
            grants: [GrantType::ClientCredentials, GrantType::Password].into(),
            scopes: ScopeSet::parse("read revoke:batch").expect("fixture scopes"),
            max_access_token_lifetime: 3_600,
            refresh_idle_lifetime: 3_600,
            refresh_absolute_lifetime: 7_200,
            refresh_reuse_interval: 0,
            dpop_bound_access_tokens: false,
            enabled: true,
            version: 0,
        };
        store.put_client(&client).await.expect("put client");
    }
    for (id, home, name) in [(ALICE, "/acme/emea", "alice"), (BOB, "/globex", "bob")] {
        let user = User {
            id: UserId::from_bytes(id),
            tenant: tenant(home),
            username: Username::parse(name).expect("fixture user"),
            password_hash: String::new(),
            enabled: true,
            created_at: 0,
            version: 0,
        };
        store.create_user(&user).await.expect("create user");
    }
    let issued = [
        (9, "/acme", "admin", "admin".to_owned(), NOW - 100),
        (10, "/acme", "admin", "admin".to_owned(), NOW - 5),
        (11, "/acme/emea", "app", "app".to_owned(), NOW - 50),
        (12, "/acme/emea", "app", UserId::from_bytes(ALICE).to_string(), NOW - 20),
        (13, "/globex", "far", UserId::from_bytes(BOB).to_string(), NOW - 20),
        (14, "/acme/emea", "app", "app".to_owned(), NOW),
    ];
    for (n, home, client, subject, issued_at) in issued {
        let token = IssuedToken {
            id: TokenId::from_bytes([n; 16]),
            kind: TokenKind::Access,
            tenant: tenant(home),
            client_id: ClientId::parse(client).expect("fixture client"),
            subject,
            grant: None,
            issued_at,
            expires_at: NOW + 3_600,
        };
        store.record_issued(&token).await.expect("record issued");
    }
    store
}

/// Live tokens in the fixture store that lie in the caller's subtree.
const BATCH_TOKENS_IN_CALLER_TENANT: u64 = 5;

fn batch_request(bearer: &str, body: &[u8]) -> Request {
    let mut request = Request::new(Body::Binary(body.to_vec()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = crate::api::BATCH_REVOKE_PATH.parse().expect("path");
    request
        .headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {bearer}")).expect("bearer"));
    request
}

/// Runs one batch revocation on `store`: the status and, for 200, the count.
async fn run_batch(store: &Arc<MemoryStore>, body: &[u8]) -> (StatusCode, Option<u64>) {
    let fixture = batch_fixture();
    let clock = Arc::new(ManualClock::new(NOW));
    let verifier =
        Verifier::new(fixture.tokens.clone(), store.clone(), store.clone(), clock.clone());
    let service = BatchRevocation::new(verifier, Stores::all(store.clone()), clock);
    let response =
        crate::api::batch_revoke_endpoint(&service, batch_request(&fixture.bearer, body)).await;
    let status = response.status();
    if status != StatusCode::OK {
        if status != StatusCode::UNAUTHORIZED {
            check_error_response(&response);
        }
        return (status, None);
    }
    let answer: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON answer");
    let count = answer["count"].as_u64().expect("count");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(1), "{answer}");
    (status, Some(count))
}

/// Batch-revoke target: the input is the JSON body, sent by an authorized caller of `/acme`.
/// Answers are 200, 400, 403 or 413 with well-formed bodies; a count never exceeds the live
/// tokens of the caller's subtree; a dry run and a real run count alike; repeating a real run
/// revokes nothing more.
pub fn batch_body(data: &[u8]) {
    block_on(async {
        let store = batch_store().await;
        let (status, count) = run_batch(&store, data).await;
        assert!(
            matches!(
                status,
                StatusCode::OK
                    | StatusCode::BAD_REQUEST
                    | StatusCode::FORBIDDEN
                    | StatusCode::PAYLOAD_TOO_LARGE
            ),
            "status {status}"
        );
        let Some(count) = count else {
            return;
        };
        assert!(count <= BATCH_TOKENS_IN_CALLER_TENANT, "count {count}");
        let body: Option<Value> = if data.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            let value: Value = serde_json::from_slice(data).expect("accepted body is JSON");
            assert!(value.is_object(), "accepted body is not an object: {value}");
            Some(value)
        };
        let dry_run = body.as_ref().and_then(|b| b["dryRun"].as_bool()).unwrap_or(false);
        if let Some(tenant) = body.as_ref().and_then(|b| b.get("tenantPath")) {
            let tenant = TenantPath::parse(tenant.as_str().expect("string tenantPath"))
                .expect("accepted tenantPath parses");
            assert!(tenant.is_within(&TenantPath::parse("/acme").expect("acme")));
        }

        // The same request with dryRun flipped, on a fresh store, counts the same.
        let mut flipped = body.clone().unwrap_or_else(|| Value::Object(Default::default()));
        flipped["dryRun"] = Value::Bool(!dry_run);
        let flipped = serde_json::to_vec(&flipped).expect("flipped body");
        let other = run_batch(&batch_store().await, &flipped).await;
        assert_eq!(other, (StatusCode::OK, Some(count)), "dry run and real run disagree");

        // Repeating a request revokes nothing new (or, if the cutoff covered the caller's own
        // token, the caller is now refused).
        let again = run_batch(&store, data).await;
        if dry_run {
            assert_eq!(again, (StatusCode::OK, Some(count)), "a dry run changed state");
        } else {
            assert!(
                matches!(again, (StatusCode::OK, Some(0)) | (StatusCode::UNAUTHORIZED, None)),
                "repeat gave {again:?}"
            );
        }
    });
}
