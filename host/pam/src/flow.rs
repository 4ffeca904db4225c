//! What each PAM step asks the daemon, independent of libpam: the steps
//! talk to the user through a [`Conversation`] and answer an [`Outcome`],
//! which `lib.rs` turns into a PAM return code.

use gatehouse_sdk::Secret;
use gatehouse_sdk::proto::{ContinueRequest, LoginRequest, LoginResponse, SetPassword};

use crate::client::{Answer, Client, ClientError};
use crate::options::{FirstPass, Options};

/// The most challenge rounds one login may take.
const MAX_ROUNDS: usize = 5;

/// The result of a step, one per PAM return code used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `PAM_SUCCESS`.
    Success,
    /// `PAM_AUTH_ERR`: wrong password or answer.
    AuthErr,
    /// `PAM_USER_UNKNOWN`.
    UserUnknown,
    /// `PAM_PERM_DENIED`: known, but not allowed (a map, a locked account).
    PermDenied,
    /// `PAM_MAXTRIES`: locked out for now.
    MaxTries,
    /// `PAM_AUTHINFO_UNAVAIL`: the daemon or every backend is unreachable.
    AuthInfoUnavail,
    /// `PAM_AUTHTOK_ERR`: a new password was refused or mistyped.
    AuthTokErr,
    /// `PAM_CONV_ERR`: the application could not ask the user.
    ConvErr,
    /// `PAM_SERVICE_ERR`: a misconfiguration (bad option, untrusted socket).
    ServiceErr,
}

/// How a step talks to the user (the PAM conversation).
pub trait Conversation {
    /// Asks without echo; `None` when the application cannot ask.
    fn secret(&self, prompt: &str) -> Option<String>;
    /// Asks with echo.
    fn text(&self, prompt: &str) -> Option<String>;
    /// Shows an error message.
    fn error(&self, message: &str);
    /// The password an earlier module got (`PAM_AUTHTOK`).
    fn cached_password(&self) -> Option<String>;
    /// The old password an earlier module got (`PAM_OLDAUTHTOK`).
    fn cached_old_password(&self) -> Option<String>;
}

fn unavailable(e: &ClientError) -> Outcome {
    match e {
        ClientError::Untrusted(_) => Outcome::ServiceErr,
        ClientError::Unavailable(_) | ClientError::Protocol(_) => Outcome::AuthInfoUnavail,
    }
}

/// The outcome of a non-2xx answer from its stable code.
fn refused(a: &Answer) -> Outcome {
    match a.error_code().as_str() {
        "invalid_credentials" => Outcome::AuthErr,
        "not_found" | "unknown_user" => Outcome::UserUnknown,
        "login_denied" | "forbidden" => Outcome::PermDenied,
        "too_many_attempts" => Outcome::MaxTries,
        "backend_unavailable" => Outcome::AuthInfoUnavail,
        _ => Outcome::ServiceErr,
    }
}

/// The password per `use_first_pass`/`try_first_pass`; the flag says it
/// came from an earlier module.
fn password(opts: &Options, conv: &dyn Conversation) -> Result<(String, bool), Outcome> {
    if opts.first_pass != FirstPass::Ask
        && let Some(p) = conv.cached_password()
    {
        return Ok((p, true));
    }
    if opts.first_pass == FirstPass::Use {
        return Err(Outcome::AuthErr);
    }
    conv.secret("Password: ")
        .map(|p| (p, false))
        .ok_or(Outcome::ConvErr)
}

/// `auth`: a login through the daemon, challenges answered through the
/// conversation. Answers the outcome and the password the user typed (for
/// `PAM_AUTHTOK`, so later modules can `use_first_pass` it).
pub fn authenticate(
    opts: &Options,
    client: &Client<'_>,
    user: &str,
    conv: &dyn Conversation,
) -> (Outcome, Option<String>) {
    let (pass, cached) = match password(opts, conv) {
        Ok(p) => p,
        Err(o) => return (o, None),
    };
    let outcome = login(opts, client, user, &pass, conv);
    if outcome == Outcome::AuthErr && cached && opts.first_pass == FirstPass::Try {
        // try_first_pass: the earlier module's password was not this
        // user's gatehouse password; ask for it.
        let Some(pass) = conv.secret("Password: ") else {
            return (Outcome::ConvErr, None);
        };
        let outcome = login(opts, client, user, &pass, conv);
        return (outcome, Some(pass));
    }
    (outcome, (!cached).then_some(pass))
}

fn login(opts: &Options, client: &Client<'_>, user: &str, pass: &str, conv: &dyn Conversation) -> Outcome {
    let req = LoginRequest {
        username: user.to_owned(),
        password: Secret::new(pass.to_owned()),
        authenticator: opts.authenticator.clone(),
        remote_addr: None,
        explain: false,
    };
    let mut answer = match client.send("POST", "/v1/login", &req) {
        Ok(a) => a,
        Err(e) => return unavailable(&e),
    };
    for _ in 0..MAX_ROUNDS {
        if answer.status != 200 {
            return refused(&answer);
        }
        let challenge = match answer.json::<LoginResponse>() {
            Ok(LoginResponse::Ok(_)) => return Outcome::Success,
            Ok(LoginResponse::Challenge(c)) => c,
            Err(e) => return unavailable(&e),
        };
        let prompt = format!("{} ", challenge.prompt.trim_end());
        let response = if challenge.echo {
            conv.text(&prompt)
        } else {
            conv.secret(&prompt)
        };
        let Some(response) = response else {
            return Outcome::ConvErr;
        };
        let cont = ContinueRequest {
            login_id: challenge.login_id,
            response: Secret::new(response),
        };
        answer = match client.send("POST", "/v1/login/continue", &cont) {
            Ok(a) => a,
            Err(e) => return unavailable(&e),
        };
    }
    Outcome::AuthErr
}

/// `account`: the daemon knows the user and does not refuse them now.
pub fn account(client: &Client<'_>, user: &str) -> Outcome {
    match client.send(
        "POST",
        "/v1/host/account",
        &serde_json::json!({ "username": user }),
    ) {
        Ok(a) if a.status == 200 => Outcome::Success,
        Ok(a) if a.error_code() == "too_many_attempts" => Outcome::PermDenied,
        Ok(a) => refused(&a),
        Err(e) => unavailable(&e),
    }
}

/// `password` (the update phase): the old password checked by a login,
/// the new one typed twice, then set in gatehouse's store. The daemon
/// applies its password policy; the caller must be an admin peer (`passwd`
/// runs as root).
pub fn change_password(opts: &Options, client: &Client<'_>, user: &str, conv: &dyn Conversation) -> Outcome {
    let old = match conv.cached_old_password() {
        Some(p) => p,
        None => match conv.secret("Current password: ") {
            Some(p) => p,
            None => return Outcome::ConvErr,
        },
    };
    match login(opts, client, user, &old, conv) {
        Outcome::Success => {}
        other => return other,
    }
    let new = match conv
        .cached_password()
        .filter(|_| opts.first_pass == FirstPass::Use)
    {
        Some(p) => p,
        None => {
            let (Some(a), Some(b)) = (
                conv.secret("New password: "),
                conv.secret("Retype new password: "),
            ) else {
                return Outcome::ConvErr;
            };
            if a != b {
                conv.error("The passwords do not match.");
                return Outcome::AuthTokErr;
            }
            a
        }
    };
    let body = SetPassword {
        password: Secret::new(new),
    };
    match client.send("PUT", &format!("/v1/users/{}/password", encode(user)), &body) {
        Ok(a) if a.status == 204 || a.status == 200 => Outcome::Success,
        Ok(a) if a.error_code() == "unprocessable" => {
            let message = a
                .json::<gatehouse_sdk::proto::ErrorBody>()
                .map(|b| b.error.message)
                .unwrap_or_default();
            conv.error(&format!("The new password was refused: {message}"));
            Outcome::AuthTokErr
        }
        Ok(a) => refused(&a),
        Err(e) => unavailable(&e),
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("alice"), "alice");
        assert_eq!(encode("Bob.Smith"), "Bob.Smith");
        assert_eq!(encode("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(encode("jürgen"), "j%C3%BCrgen");
    }

    #[test]
    fn error_codes_map_to_outcomes() {
        let answer = |status: u16, code: &str| Answer {
            status,
            body: format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#).into_bytes(),
        };
        assert_eq!(refused(&answer(401, "invalid_credentials")), Outcome::AuthErr);
        assert_eq!(refused(&answer(404, "not_found")), Outcome::UserUnknown);
        assert_eq!(refused(&answer(403, "login_denied")), Outcome::PermDenied);
        assert_eq!(refused(&answer(429, "too_many_attempts")), Outcome::MaxTries);
        assert_eq!(
            refused(&answer(503, "backend_unavailable")),
            Outcome::AuthInfoUnavail
        );
        assert_eq!(refused(&answer(400, "bad_request")), Outcome::ServiceErr);
    }
}
