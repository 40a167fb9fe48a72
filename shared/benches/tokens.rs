//! In-process costs on one core: signing and verifying per algorithm, signing the way
//! `jsonwebtoken::encode` does (key parsed per call) for comparison, and full issuance of a
//! client-credentials token on the in-memory store.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};
use token_service::auth::PresentedClient;
use token_service::clock::{Clock, SystemClock};
use token_service::config::Config;
use token_service::jwt::{AccessTokenClaims, TokenSigner};
use token_service::keys::{KeySet, KeySetDocument, SigningAlgorithm};
use token_service::seed::Seed;
use token_service::setup::{self, SigningWiring};
use token_service::token::TokenParams;
use token_service::token_cache::TokenCacheLimits;

fn claims(now: u64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://auth.example.com".into(),
        sub: "billing-service".into(),
        aud: "api".into(),
        exp: now + 3600,
        iat: now,
        nbf: None,
        jti: "kfwY-BkUwlqDUwdNkTSzOQ".into(),
        client_id: "billing-service".into(),
        scope: "read write".into(),
        tenant: "/acme/sales".into(),
        sid: None,
        cnf: None,
    }
}

fn signing(c: &mut Criterion) {
    let now = SystemClock.now();
    for alg in SigningAlgorithm::ALL {
        let document = KeySetDocument::generate(alg, now).unwrap();
        let signer = TokenSigner::new(
            KeySet::from_document(&document).unwrap(),
            "https://auth.example.com".into(),
            "api".into(),
        );
        // Every signature checked: the cost of a token seen for the first time.
        let tokens = signer.verifier().with_cache_limits(TokenCacheLimits { entries: 0, bytes: 1 });
        let cached = signer.verifier();
        let claims = claims(now);
        c.bench_function(&format!("sign/{alg}"), |b| b.iter(|| signer.sign(&claims).unwrap()));

        let der = STANDARD.decode(&document.keys[0].private_key).unwrap();
        let encoding = match alg {
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(&der),
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_der(&der),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(&der),
        };
        let mut header = Header::new(alg.jwt());
        header.typ = Some("at+jwt".into());
        header.kid = Some(document.current.clone());
        c.bench_function(&format!("sign_reparsing_key/{alg}"), |b| {
            b.iter(|| jsonwebtoken::encode(&header, &claims, &encoding).unwrap())
        });

        let token = signer.sign(&claims).unwrap();
        c.bench_function(&format!("verify/{alg}"), |b| {
            b.iter(|| tokens.verify(&token, now).unwrap())
        });
        c.bench_function(&format!("verify_cached/{alg}"), |b| {
            b.iter(|| cached.verify(&token, now).unwrap())
        });
    }
}

fn issuance(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for alg in SigningAlgorithm::ALL {
        let config = Config::from_lookup(|name| match name {
            "ISSUER" => Some("https://auth.example.com".into()),
            "SIGNING_ALG" => Some(alg.as_str().into()),
            _ => None,
        })
        .unwrap();
        let seed = Seed::parse(
            r#"
            [[tenants]]
            path = "/acme"
            [[clients]]
            id = "billing"
            secret = "billing-secret-0123456789abcdefghijkl"
            tenant = "/acme"
            grants = ["client_credentials"]
            scopes = ["read", "write"]
            max_access_token_lifetime = 3600
            "#,
            &token_service::password::Passwords::new(config.password_hash),
        )
        .unwrap();
        let stores = runtime.block_on(setup::memory_stores(&seed)).unwrap();
        let keys = KeySet::generate(alg).unwrap();
        let service =
            SigningWiring::new(config, keys, stores, Arc::new(SystemClock)).token_service();
        let presented = PresentedClient::secret("billing", "billing-secret-0123456789abcdefghijkl");
        let params =
            TokenParams { grant_type: Some("client_credentials"), ..TokenParams::default() };
        c.bench_function(&format!("issue_client_credentials/{alg}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let client = service.authenticator().authenticate(&presented).await.unwrap();
                    service.issue(&client, &params).await.unwrap()
                })
            })
        });
    }
}

/// One Argon2id verification at OWASP's parameters: what bounds the password grant.
fn password(c: &mut Criterion) {
    let passwords =
        token_service::password::Passwords::new(token_service::password::HashParams::OWASP);
    let hash = passwords.hash("correct horse battery staple").unwrap();
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.bench_function("verify_argon2id_owasp", |b| {
        b.iter(|| passwords.verify(Some(&hash), "correct horse battery staple"))
    });
    group.finish();
}

/// What a token request costs in metrics: the counter and latency it records, and the flush
/// that writes them as EMF after the invocation. Runs last: it installs the global recorder.
fn telemetry(c: &mut Criterion) {
    use token_service::domain::GrantType;
    use token_service::telemetry;
    let emf = telemetry::Emf::init().unwrap();
    c.bench_function("telemetry/record_token_request", |b| {
        b.iter(|| {
            telemetry::token_issued(GrantType::ClientCredentials);
            telemetry::latency("/oauth2/token", 1.25);
        })
    });
    c.bench_function("telemetry/record_and_flush_token_request", |b| {
        b.iter(|| {
            telemetry::token_issued(GrantType::ClientCredentials);
            telemetry::latency("/oauth2/token", 1.25);
            emf.flush_to(std::io::sink());
        })
    });
}

criterion_group!(benches, signing, issuance, password, telemetry);
criterion_main!(benches);
