//! In-process cost of the `jwt` verifier, without the socket: a miss
//! (parse, signature, claims, cache insert), a hit, and the bare signature
//! check with a key parsed once (the floor a miss is compared with).
//!
//! `cargo bench -p gatehouse-e2e --bench jwt_verify`

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use aws_lc_rs::signature::{self, ParsedPublicKey, UnparsedPublicKey};
use gatehouse_e2e::openssl;
use gatehouse_plugin_jwt::{JwtFactory, persisted_keys_file};
use gatehouse_sdk::{Context, PluginConfig, VerifierFactory as _, VerifyRequest};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "http://127.0.0.1:9/bench";

fn per_op(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let rsa_pem = openssl(
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "",
    );
    let ec_pem = openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        "",
    );
    let public_der = |private: &[u8]| {
        openssl(
            &["pkey", "-pubout", "-outform", "DER"],
            std::str::from_utf8(private).unwrap(),
        )
    };
    let rsa = EncodingKey::from_rsa_pem(&rsa_pem).unwrap();
    let ec = EncodingKey::from_ec_pem(&ec_pem).unwrap();
    let jwk = |k: &EncodingKey, alg, kid: &str| {
        let mut j = Jwk::from_encoding_key(k, alg).unwrap();
        j.common.key_id = Some(kid.into());
        j
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(persisted_keys_file(ISSUER)),
        serde_json::to_vec(&JwkSet {
            keys: vec![
                jwk(&rsa, Algorithm::RS256, "rsa-1"),
                jwk(&ec, Algorithm::ES256, "ec-1"),
            ],
        })
        .unwrap(),
    )
    .unwrap();
    let ctx = Context::new("bench").with_state_dir(dir.path());
    let settings =
        serde_json::json!({"audience": "gitlab-ai-gateway", "issuers": [ISSUER], "fetch_timeout": "1s"});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verifier = rt.block_on(async {
        JwtFactory
            .build(PluginConfig::new("bench", settings).with_context(ctx.clone()))
            .unwrap()
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let make = |key: &EncodingKey, alg: Algorithm, kid: &str, i: usize| {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": format!("user-{i}"), "aud": "gitlab-ai-gateway",
            "exp": now + 3600, "nbf": now - 5, "iat": now - 5, "jti": format!("{kid}-{i}"),
            "scopes": ["duo_chat", "code_suggestions"]
        });
        jsonwebtoken::encode(&h, &claims, key).unwrap()
    };
    eprintln!("signing {n} RS256 and {n} ES256 tokens…");
    let rs: Vec<String> = (0..n).map(|i| make(&rsa, Algorithm::RS256, "rsa-1", i)).collect();
    let es: Vec<String> = (0..n).map(|i| make(&ec, Algorithm::ES256, "ec-1", i)).collect();

    let verify = |t: &str| {
        let mut req = VerifyRequest::new(t);
        req.unit_primitive = Some("duo_chat".into());
        rt.block_on(verifier.verify(&ctx, &req)).expect("verifies")
    };
    println!("jwt verifier in process, one thread (µs per operation)");
    let rsa_der = public_der(&rsa_pem);
    let ec_der = public_der(&ec_pem);
    for (alg, tokens, der, params) in [
        (
            "RS256",
            &rs,
            &rsa_der,
            &signature::RSA_PKCS1_2048_8192_SHA256 as &'static dyn signature::VerificationAlgorithm,
        ),
        ("ES256", &es, &ec_der, &signature::ECDSA_P256_SHA256_FIXED),
    ] {
        let split: Vec<(Vec<u8>, Vec<u8>)> = tokens
            .iter()
            .map(|t| {
                let (input, sig) = t.rsplit_once('.').unwrap();
                let sig =
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
                (input.as_bytes().to_vec(), sig)
            })
            .collect();
        // SubjectPublicKeyInfo DER → the key bytes aws-lc wants per algorithm
        let spki = spki_key(der, alg);
        let unparsed = UnparsedPublicKey::new(params, &spki);
        let parsed = ParsedPublicKey::new(params, &spki).unwrap();
        let raw_parsed = per_op(split.len(), |i| {
            parsed.verify_sig(&split[i].0, &split[i].1).unwrap()
        });
        let raw_unparsed = per_op(split.len(), |i| {
            unparsed.verify(&split[i].0, &split[i].1).unwrap()
        });
        let miss = per_op(tokens.len(), |i| {
            verify(&tokens[i]);
        });
        let hit = per_op(tokens.len(), |_| {
            verify(&tokens[0]);
        });
        println!(
            "{alg}: signature only, key parsed once {raw_parsed:.1}; key parsed per call {raw_unparsed:.1}; \
             verifier miss {miss:.1} ({:.2}x the parsed-key signature); hit {hit:.2}",
            miss / raw_parsed
        );
    }
}

/// The bytes `UnparsedPublicKey` takes: RSA accepts the SPKI DER as is; for
/// P-256 it wants the uncompressed point, the SPKI's last 65 bytes.
fn spki_key(der: &[u8], alg: &str) -> Vec<u8> {
    if alg == "ES256" {
        der[der.len() - 65..].to_vec()
    } else {
        der.to_vec()
    }
}
