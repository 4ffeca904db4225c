//! Socket API helpers shared by both tiers.

use gatehouse_daemon::client::{Answer, Client};

/// Creates a user through the API.
pub async fn add_user(client: &mut Client, username: &str, password: &str) -> Answer {
    client
        .post(
            "/v1/users",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
        .expect("create user")
}

/// Logs in through the API.
pub async fn login(client: &mut Client, username: &str, password: &str) -> Answer {
    client
        .post(
            "/v1/login",
            &serde_json::json!({"username": username, "password": password}),
        )
        .await
        .expect("login")
}
