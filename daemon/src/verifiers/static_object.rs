//! `static_object`: requests for static objects served from external
//! storage. The storage proxy proves itself with the
//! `X-Gitlab-External-Storage-Token` header (one of the configured tokens;
//! several allow rotation), and the user with a personal static-object
//! token, from the original URI's `token` query parameter or the
//! `X-Gitlab-Static-Object-Token` header. Only `/raw/` and `/-/archive/`
//! paths are static-object requests.

use std::sync::Arc;

use gatehouse_sdk::{
    Context, PluginConfig, PluginError, Secret, TokenRejection, VerifiedToken, Verifier, VerifyRequest,
    async_trait, constant_time_eq,
};
use serde::Deserialize;

use crate::registry::Resources;
use crate::store::Store;

/// The header the storage proxy sends.
pub const STORAGE_HEADER: &str = "x-gitlab-external-storage-token";
/// The header a user token may come in.
pub const USER_HEADER: &str = "x-gitlab-static-object-token";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// One token, several separated by newlines (a `storage_token_file`
    /// with one per line), or a list.
    storage_token: TokenList,
    #[serde(default = "default_paths")]
    paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenList {
    One(Secret),
    Many(Vec<Secret>),
}

fn default_paths() -> Vec<String> {
    vec!["/raw/".into(), "/-/archive/".into()]
}

/// SHA-256 of a user token: what the store keeps.
pub fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

struct StaticObject {
    storage_tokens: Vec<Secret>,
    paths: Vec<String>,
    store: Arc<dyn Store>,
}

/// Builds a `static_object` verifier.
pub fn build(config: PluginConfig, resources: &Resources) -> Result<Arc<dyn Verifier>, PluginError> {
    let s: Settings = config.parse()?;
    let storage_tokens: Vec<Secret> = match s.storage_token {
        TokenList::One(t) => t
            .expose()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(Secret::new)
            .collect(),
        TokenList::Many(v) => v,
    };
    if storage_tokens.is_empty() || storage_tokens.iter().any(|t| t.len() < 16) {
        return Err(PluginError::Misconfigured(
            "storage_token: at least one token of 16 or more characters".into(),
        ));
    }
    if s.paths.is_empty() {
        return Err(PluginError::Misconfigured(
            "paths: at least one path marker".into(),
        ));
    }
    Ok(Arc::new(StaticObject {
        storage_tokens,
        paths: s.paths,
        store: Arc::clone(&resources.store),
    }))
}

/// The value of a query parameter of `uri`, percent-decoded (`+` is a
/// space); the first one when it repeats.
pub fn query_param(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl Verifier for StaticObject {
    async fn verify(&self, _ctx: &Context, req: &VerifyRequest) -> Result<VerifiedToken, PluginError> {
        let Some(original) = &req.request else {
            // `/v1/tokens/verify` (`gatehouse verify`): a local peer asks
            // about the user token itself; the storage token guards only
            // the proxied requests of `/v1/check`.
            return self.user_token(req.token.expose()).await;
        };
        let path = original.uri.split(['?', '#']).next().unwrap_or("");
        if !self.paths.iter().any(|p| path.contains(p.as_str())) {
            return Err(PluginError::Denied("not a static-object path".into()));
        }
        let presented = original
            .headers
            .get(STORAGE_HEADER)
            .map(String::as_str)
            .unwrap_or("");
        // Compare with every configured token, without stopping early.
        let mut ok = false;
        for t in &self.storage_tokens {
            ok |= constant_time_eq(t.expose().as_bytes(), presented.as_bytes());
        }
        if !ok {
            return Err(PluginError::Denied(
                "wrong or missing external storage token".into(),
            ));
        }
        let user_token = query_param(&original.uri, "token")
            .filter(|t| !t.is_empty())
            .or_else(|| original.headers.get(USER_HEADER).cloned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PluginError::invalid_token(TokenRejection::Malformed, "no static-object token"))?;
        self.user_token(&user_token).await
    }
}

impl StaticObject {
    /// The user behind a static-object token.
    async fn user_token(&self, user_token: &str) -> Result<VerifiedToken, PluginError> {
        if user_token.is_empty() {
            return Err(PluginError::invalid_token(
                TokenRejection::Malformed,
                "no static-object token",
            ));
        }
        let found = self
            .store
            .static_token_user(digest(user_token))
            .await
            .map_err(|e| PluginError::Unavailable(e.to_string()))?;
        let Some((token, user)) = found else {
            return Err(PluginError::invalid_token(
                TokenRejection::UnknownToken,
                "unknown static-object token",
            ));
        };
        if token.revoked {
            return Err(PluginError::invalid_token(
                TokenRejection::Revoked,
                "the static-object token was revoked",
            ));
        }
        let mut v = VerifiedToken::new("gatehouse", user.username.clone());
        v.claims.insert("user_id".into(), user.id.into());
        v.claims.insert("token_id".into(), token.id.into());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param("/g/p/-/raw/main/x?token=a%2Bb&x=1", "token").as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param("/g/p/-/raw/main/x?x=1", "token"), None);
        assert_eq!(query_param("/x?token=", "token").as_deref(), Some(""));
        assert_eq!(query_param("/x?token=%zz", "token").as_deref(), Some("%zz"));
        // `+` is a space, `%2B` a plus; a `%` at the very end stays
        assert_eq!(
            query_param("/x?token=a+b%2Bc%", "token").as_deref(),
            Some("a b+c%")
        );
        assert_eq!(query_param("/x?token=%e2%82%ac", "token").as_deref(), Some("€"));
    }

    #[test]
    fn tokens_are_kept_as_their_sha256() {
        let hex: String = digest("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn resources() -> (Resources, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::SqliteStore::open(&dir.path().join("g.db")).expect("store");
        (
            Resources {
                store: Arc::new(store),
                hashing: Arc::new(tokio::sync::Semaphore::new(1)),
            },
            dir,
        )
    }

    #[test]
    fn storage_tokens_shorter_than_16_characters_are_refused() {
        let (r, _dir) = resources();
        let build = |v: serde_json::Value| build(PluginConfig::new("s", v), &r).err();
        assert!(build(serde_json::json!({"storage_token": "a-long-storage-token"})).is_none());
        assert!(
            build(serde_json::json!({"storage_token": ["a-long-storage-token", "0123456789abcdef"]}))
                .is_none()
        );
        for short in [
            serde_json::json!({"storage_token": "short"}),
            serde_json::json!({"storage_token": ""}),
            serde_json::json!({"storage_token": []}),
            // one good token does not excuse a short one
            serde_json::json!({"storage_token": ["a-long-storage-token", "short"]}),
            serde_json::json!({"storage_token": "a-long-storage-token\nshort"}),
        ] {
            assert!(
                matches!(build(short.clone()), Some(PluginError::Misconfigured(m)) if m.contains("16 or more")),
                "{short}"
            );
        }
    }

    #[tokio::test]
    async fn only_static_object_paths_are_checked() {
        let (r, _dir) = resources();
        let token = "a-long-storage-token";
        let v = build(
            PluginConfig::new("s", serde_json::json!({"storage_token": token})),
            &r,
        )
        .expect("build");
        let ctx = Context::new("s");
        let ask = |uri: &str| {
            let mut req = VerifyRequest::new("");
            let mut original = gatehouse_sdk::OriginalRequest::default();
            original.method = "GET".into();
            original.uri = uri.into();
            original.headers.insert(STORAGE_HEADER.into(), token.into());
            req.request = Some(original);
            req
        };
        for path in [
            "/group/project/-/raw/main/README.md",
            "/group/project/-/archive/main/p.zip",
        ] {
            // a static-object path: the storage token passes, the user token is missing
            assert!(
                matches!(
                    v.verify(&ctx, &ask(path)).await,
                    Err(PluginError::InvalidToken { .. })
                ),
                "{path}"
            );
        }
        for path in [
            "/group/project",
            "/api/v4/users",
            "/",
            "",
            "/group/project/-/blob/main/x?p=/raw/",
        ] {
            assert!(
                matches!(v.verify(&ctx, &ask(path)).await, Err(PluginError::Denied(m)) if m.contains("not a static-object path")),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn the_user_token_comes_from_the_query_else_the_header() {
        let (r, _dir) = resources();
        let user = r
            .store
            .create_user(crate::store::NewUser {
                username: "ann".into(),
                ..crate::store::NewUser::default()
            })
            .await
            .expect("user");
        r.store
            .create_static_token(user.id, "t", digest("ann-user-token"))
            .await
            .expect("token");
        let storage = "a-long-storage-token";
        let v = build(
            PluginConfig::new("s", serde_json::json!({"storage_token": storage})),
            &r,
        )
        .expect("build");
        let ctx = Context::new("s");
        let ask = |query: &str, header: Option<&str>| {
            let mut req = VerifyRequest::new("");
            let mut original = gatehouse_sdk::OriginalRequest::default();
            original.uri = format!("/g/p/-/raw/main/x{query}");
            original.headers.insert(STORAGE_HEADER.into(), storage.into());
            if let Some(h) = header {
                original.headers.insert(USER_HEADER.into(), h.into());
            }
            req.request = Some(original);
            req
        };
        let subject = |r: Result<VerifiedToken, PluginError>| r.map(|t| t.subject);
        assert_eq!(
            subject(v.verify(&ctx, &ask("?token=ann-user-token", None)).await)
                .ok()
                .as_deref(),
            Some("ann")
        );
        assert_eq!(
            subject(v.verify(&ctx, &ask("", Some("ann-user-token"))).await)
                .ok()
                .as_deref(),
            Some("ann")
        );
        // an empty query token falls back to the header
        assert_eq!(
            subject(v.verify(&ctx, &ask("?token=", Some("ann-user-token"))).await)
                .ok()
                .as_deref(),
            Some("ann")
        );
        for (query, header) in [("?token=", None), ("", Some("")), ("?token=", Some(""))] {
            assert!(
                matches!(
                    v.verify(&ctx, &ask(query, header)).await,
                    Err(PluginError::InvalidToken {
                        reason: TokenRejection::Malformed,
                        ..
                    })
                ),
                "{query:?} {header:?}"
            );
        }
        // an unknown opaque token has no signature to be bad
        assert!(matches!(
            v.verify(&ctx, &ask("?token=someone-else", None)).await,
            Err(PluginError::InvalidToken {
                reason: TokenRejection::UnknownToken,
                ..
            })
        ));
        // `/v1/tokens/verify` (no original request): the token itself
        assert_eq!(
            subject(v.verify(&ctx, &VerifyRequest::new("ann-user-token")).await)
                .ok()
                .as_deref(),
            Some("ann")
        );
        assert!(matches!(
            v.verify(&ctx, &VerifyRequest::new("someone-else")).await,
            Err(PluginError::InvalidToken {
                reason: TokenRejection::UnknownToken,
                ..
            })
        ));
    }
}
