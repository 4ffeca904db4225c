//! The end-to-end test harness: starts the real `gatehoused` binary on a
//! temporary socket and state directory and talks to it only through the
//! socket (with [`gatehouse_daemon::client`]) or the real `gatehouse` CLI.
//!
//! The binaries are found next to the test executable's `target/<profile>/`
//! directory, or in `$GATEHOUSE_BIN_DIR`. Build them first
//! (`cargo build --workspace --bins`; `scripts/test.sh` does).
//!
//! A second, faster tier boots the daemon inside the test process
//! ([`InProcess`]): same socket API, no binary, no process start.
//!
//! Modules: [`process`] (the binary in a temp dir), [`in_process`], [`cli`],
//! [`browser`] (a scripted browser for identity providers' login pages),
//! [`api`] (socket helpers for both tiers), [`plugins`], [`peers`] (slapd,
//! oidc-provider, nginx, FreeRADIUS, SimpleSAMLphp), [`forward_auth`], [`github`] (a GitHub
//! stand-in) and [`mod@bench`]. Everything is
//! re-exported at the crate root.

pub mod api;
pub mod bench;
pub mod browser;
pub mod cli;
pub mod forward_auth;
pub mod github;
pub mod in_process;
pub mod namespace;
pub mod peers;
pub mod pg;
pub mod plugins;
pub mod process;

pub use api::{add_user, login};
pub use bench::{RawConnection, bench_only, cpu_ns, cpu_ticks, daemon_extra, openssl, percentile};
pub use browser::Browser;
pub use forward_auth::{STORAGE, forward_auth_body, forward_auth_daemon};
pub use gatehouse_daemon::client::{Answer, Client};
pub use in_process::InProcess;
pub use peers::{
    LdapPeer, PrivateLdap, RadiusPeer, SamlIdp, SamlPost, TacacsServer, curl, ldap_peer, nginx_start,
    nginx_stop, oidc_public_key, oidc_rotate, oidc_start, oidc_start_tls, oidc_stop, oidc_token,
    radius_start, saml_idp, saml_sign, tacacs_reference_client,
};
pub use plugins::{
    build_c_library, build_c_plugin, daemon_with_plugins, install_plugin, plugin_library, throwaway_ca,
    throwaway_server_cert,
};
pub use process::{Daemon, LOCAL_AUTH, Setup, bin, bin_dir, is_root, repo_root, run_with_stdin};
