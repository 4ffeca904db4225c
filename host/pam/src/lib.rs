//! `pam_gatehouse.so`: the host's own logins (sshd, sudo, login, su, a
//! screen locker) through the gatehouse daemon.
//!
//! - `auth` logs the user in through the daemon's socket (`/v1/login`),
//!   answering challenges (a RADIUS Access-Challenge, a one-time code)
//!   through the PAM conversation, so they work in sshd's
//!   keyboard-interactive;
//! - `account` refuses users the daemon does not know or has locked out
//!   (`/v1/host/account`);
//! - `password` changes the user's password in gatehouse's own store.
//!
//! Arguments ([`options::Options`]): `authenticator=NAME`, `socket=PATH`,
//! `timeout=SECONDS` (every request of one call together; then
//! `PAM_AUTHINFO_UNAVAIL`, never a hang), `use_first_pass`,
//! `try_first_pass`, `daemon_uid=N`, `debug`. Nothing here logs a password.
//! The module keeps no state between calls, so it is safe in multi-threaded
//! hosts; a panic is caught at the boundary and answers `PAM_SERVICE_ERR`.
//!
//! ```text
//! auth     sufficient  pam_gatehouse.so try_first_pass
//! account  required    pam_gatehouse.so
//! password sufficient  pam_gatehouse.so
//! ```

pub mod client;
pub mod flow;
pub mod options;

use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pamsm::{LogLvl, Pam, PamError, PamFlags, PamLibExt, PamMsgStyle, PamServiceModule, pam_module};

use client::{Client, trusted_uids};
use flow::{Conversation, Outcome};
use options::Options;

/// `PAM_PRELIM_CHECK` in `<security/_pam_types.h>`.
const PAM_PRELIM_CHECK: std::os::raw::c_int = 0x4000;

/// The PAM conversation of one call.
struct PamConversation<'a>(&'a Pam);

impl Conversation for PamConversation<'_> {
    fn secret(&self, prompt: &str) -> Option<String> {
        let answer = self.0.conv(Some(prompt), PamMsgStyle::PROMPT_ECHO_OFF).ok()??;
        answer.to_str().ok().map(str::to_owned)
    }
    fn text(&self, prompt: &str) -> Option<String> {
        let answer = self.0.conv(Some(prompt), PamMsgStyle::PROMPT_ECHO_ON).ok()??;
        answer.to_str().ok().map(str::to_owned)
    }
    fn error(&self, message: &str) {
        let _ = self.0.conv(Some(message), PamMsgStyle::ERROR_MSG);
    }
    fn cached_password(&self) -> Option<String> {
        let p = self.0.get_cached_authtok().ok()??;
        p.to_str().ok().map(str::to_owned)
    }
    fn cached_old_password(&self) -> Option<String> {
        let p = self.0.get_cached_oldauthtok().ok()??;
        p.to_str().ok().map(str::to_owned)
    }
}

fn code(o: Outcome) -> PamError {
    match o {
        Outcome::Success => PamError::SUCCESS,
        Outcome::AuthErr => PamError::AUTH_ERR,
        Outcome::UserUnknown => PamError::USER_UNKNOWN,
        Outcome::PermDenied => PamError::PERM_DENIED,
        Outcome::MaxTries => PamError::MAXTRIES,
        Outcome::AuthInfoUnavail => PamError::AUTHINFO_UNAVAIL,
        Outcome::AuthTokErr => PamError::AUTHTOK_ERR,
        Outcome::ConvErr => PamError::CONV_ERR,
        Outcome::ServiceErr => PamError::SERVICE_ERR,
    }
}

/// Parses the arguments and the user, runs `step`, logs its outcome.
fn run(
    pam: &Pam,
    args: &[String],
    step: &str,
    f: impl FnOnce(&Options, &Client<'_>, &str) -> Outcome,
) -> PamError {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            let _ = pam.syslog(LogLvl::ERR, &format!("pam_gatehouse: {e}"));
            return PamError::SERVICE_ERR;
        }
    };
    let user = match pam.get_user(None) {
        Ok(Some(u)) => match u.to_str() {
            Ok(u) if !u.is_empty() => u.to_owned(),
            _ => return PamError::USER_UNKNOWN,
        },
        Ok(None) => return PamError::USER_UNKNOWN,
        Err(e) => return e,
    };
    let client = Client::new(&opts.socket, trusted_uids(opts.daemon_uid), opts.timeout);
    let outcome = f(&opts, &client, &user);
    if opts.debug || outcome != Outcome::Success {
        let level = if outcome == Outcome::ServiceErr {
            LogLvl::ERR
        } else {
            LogLvl::NOTICE
        };
        // the user name is cut and stripped of control characters: it came
        // from whoever is at the login prompt
        let shown: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
        let _ = pam.syslog(
            level,
            &format!("pam_gatehouse: {step} for {shown:?}: {outcome:?}"),
        );
    }
    code(outcome)
}

/// Runs a step with panics caught: a panic must not unwind into libpam.
fn guarded(f: impl FnOnce() -> PamError) -> PamError {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(PamError::SERVICE_ERR)
}

/// The module.
pub struct GatehousePam;

impl PamServiceModule for GatehousePam {
    fn authenticate(pam: Pam, _: PamFlags, args: Vec<String>) -> PamError {
        guarded(|| {
            run(&pam, &args, "auth", |opts, client, user| {
                let conv = PamConversation(&pam);
                let (outcome, typed) = flow::authenticate(opts, client, user, &conv);
                if outcome == Outcome::Success
                    && let Some(p) = typed.and_then(|p| CString::new(p).ok())
                {
                    let _ = pam.set_authtok(&p);
                }
                outcome
            })
        })
    }

    fn setcred(_: Pam, _: PamFlags, _: Vec<String>) -> PamError {
        PamError::SUCCESS
    }

    fn acct_mgmt(pam: Pam, _: PamFlags, args: Vec<String>) -> PamError {
        guarded(|| {
            run(&pam, &args, "account", |_, client, user| {
                flow::account(client, user)
            })
        })
    }

    fn chauthtok(pam: Pam, flags: PamFlags, args: Vec<String>) -> PamError {
        // PAM_PRELIM_CHECK (Linux-PAM's value; pamsm names no such flag):
        // the first pass only asks whether the module is ready
        if flags.bits() & PAM_PRELIM_CHECK != 0 {
            return PamError::SUCCESS;
        }
        guarded(|| {
            run(&pam, &args, "password", |opts, client, user| {
                flow::change_password(opts, client, user, &PamConversation(&pam))
            })
        })
    }

    fn open_session(_: Pam, _: PamFlags, _: Vec<String>) -> PamError {
        PamError::SUCCESS
    }

    fn close_session(_: Pam, _: PamFlags, _: Vec<String>) -> PamError {
        PamError::SUCCESS
    }
}

pam_module!(GatehousePam);
