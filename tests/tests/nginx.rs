//! Real nginx doing `auth_request` to gatehoused's socket, for a JWT route
//! and a static-object route.

#![allow(clippy::unwrap_used)]

use gatehouse_e2e::{STORAGE, add_user, curl, forward_auth_daemon, nginx_start, nginx_stop};

struct Nginx(&'static str);
impl Drop for Nginx {
    fn drop(&mut self) {
        nginx_stop(self.0);
    }
}

#[tokio::test]
async fn nginx_auth_request_for_jwt_and_static_object_routes() {
    let d = forward_auth_daemon();
    let _n = Nginx("e2e-nginx");
    let base = nginx_start("e2e-nginx", 19301, &d.socket);

    // JWT route with a required unit primitive
    let (s, body) = curl(
        &format!("{base}/ai/chat?x=1"),
        &[("Authorization", "Bearer tok-good")],
    );
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains("user=alice") && body.contains("scopes=duo_chat"),
        "{body}"
    );
    let (s, _) = curl(&format!("{base}/ai/chat"), &[]);
    assert_eq!(s, 401);
    let (s, _) = curl(
        &format!("{base}/ai/chat"),
        &[("Authorization", "Bearer tok-forged")],
    );
    assert_eq!(s, 401);
    let (s, _) = curl(
        &format!("{base}/ai/admin/users"),
        &[("Authorization", "Bearer tok-good")],
    );
    assert_eq!(s, 403, "alice is no superuser");
    let (s, _) = curl(
        &format!("{base}/elsewhere"),
        &[("Authorization", "Bearer tok-good")],
    );
    assert_eq!(s, 403, "no route");

    // static objects
    let mut c = d.client().await;
    assert_eq!(add_user(&mut c, "sam", "sam password").await.status, 201);
    let token = c
        .post(
            "/v1/users/sam/static-tokens",
            &serde_json::json!({"name": "nginx"}),
        )
        .await
        .unwrap()
        .value()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = format!("{base}/group/project/-/raw/main/README.md");
    let (s, body) = curl(
        &format!("{raw}?token={token}"),
        &[("X-Gitlab-External-Storage-Token", STORAGE)],
    );
    assert_eq!(s, 200, "token in the query: {body}");
    assert!(body.contains("user=sam"), "{body}");
    let (s, _) = curl(
        &format!("{base}/group/project/-/archive/main/p.zip"),
        &[
            ("X-Gitlab-External-Storage-Token", STORAGE),
            ("X-Gitlab-Static-Object-Token", &token),
        ],
    );
    assert_eq!(s, 200, "token in the header");
    let (s, _) = curl(
        &format!("{raw}?token={token}"),
        &[("X-Gitlab-External-Storage-Token", "wrong-storage-token-000")],
    );
    assert_eq!(s, 403, "wrong storage token");
    let (s, _) = curl(
        &format!("{base}/group/project/-/blob/main/README.md?token={token}"),
        &[("X-Gitlab-External-Storage-Token", STORAGE)],
    );
    assert_eq!(s, 403, "not a static-object path");
    let id = c.get("/v1/users/sam/static-tokens").await.unwrap().value()["tokens"][0]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        c.delete(&format!("/v1/static-tokens/{id}")).await.unwrap().status,
        204
    );
    let (s, _) = curl(
        &format!("{raw}?token={token}"),
        &[("X-Gitlab-External-Storage-Token", STORAGE)],
    );
    assert_eq!(s, 401, "revoked user token");
}
