//! Plugin libraries of this workspace and the C fixture, for tests that
//! load plugins from `plugin_dirs` or `library = …`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{Daemon, Setup, bin_dir, repo_root};

/// Path of a plugin library of this workspace (`cargo build` puts cdylibs
/// next to the binaries), e.g. `plugin_library("gatehouse_plugin_testkit")`.
pub fn plugin_library(crate_name: &str) -> PathBuf {
    let p = bin_dir().join(format!("lib{crate_name}.so"));
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace`",
        p.display()
    );
    p
}

/// Compiles `tests/c/static_plugin.c` into `out` with extra `-D` defines.
pub fn build_c_plugin(out: &Path, defines: &[&str]) {
    let defines: Vec<String> = defines.iter().map(|d| format!("-D{d}")).collect();
    let flags: Vec<&str> = defines.iter().map(String::as_str).collect();
    build_c_library(&repo_root().join("tests/c/static_plugin.c"), out, &flags);
}

/// Compiles one C file of a plugin into the shared library `out`, against
/// `sdk/include`, warnings as errors, with extra compiler flags.
pub fn build_c_library(source: &Path, out: &Path, flags: &[&str]) {
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cmd.args(["-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(repo_root().join("sdk/include"))
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(source);
    let status = cmd.status().expect("run cc");
    assert!(status.success(), "cc failed for {}", out.display());
}

/// Copies (a symlink would do, but a copy survives the build dir changing)
/// a library into `dir`.
pub fn install_plugin(dir: &Path, library: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("plugin dir");
    let dest = dir.join(library.file_name().expect("file name"));
    std::fs::copy(library, &dest).expect("copy plugin");
    dest
}

/// A daemon whose `plugin_dirs` (`plugins/` in its directory) holds the
/// given plugin crates' libraries (e.g. `gatehouse_plugin_testkit`),
/// started on `setup` (whose `daemon_extra` gets the `plugin_dirs` line
/// unless it has one).
pub fn daemon_with_plugins(mut setup: Setup, crates: &[&str]) -> Daemon {
    if !setup.daemon_extra.contains("plugin_dirs") {
        setup.daemon_extra = format!("plugin_dirs = [\"plugins\"]\n{}", setup.daemon_extra);
    }
    let d = Daemon::prepare(&setup);
    for name in crates {
        install_plugin(&d.dir().join("plugins"), &plugin_library(name));
    }
    let mut cmd = Command::new(crate::bin("gatehoused"));
    cmd.arg("--config").arg(&d.config);
    d.spawn_with(cmd)
}

/// A throwaway self-signed CA certificate (P-256) made by openssl, trusted
/// by nothing: `dir/<name>.pem` (its key beside it).
pub fn throwaway_ca(dir: &Path, name: &str) -> PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN=gatehouse {name}"), "-days", "2", "-keyout"])
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&pem)
        .status()
        .expect("run openssl")
        .success();
    assert!(ok, "openssl req failed");
    pem
}

/// A throwaway CA and a server certificate it signed for `127.0.0.1` and
/// `localhost` (EC P-256, two days): `(ca.pem, server.pem, server.key)`
/// in `dir`. For TLS listeners the daemon serves.
pub fn throwaway_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(
        &cnf,
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
         [ca_ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n\
         [server_ext]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .expect("write openssl.cnf");
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .status()
            .expect("run openssl")
            .success();
        assert!(ok, "openssl {args:?} failed");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[
        &["req", "-x509", "-config", "openssl.cnf", "-extensions", "ca_ext"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=gatehouse test CA",
        ],
    ]
    .concat());
    run(&[
        &["req", "-new", "-config", "openssl.cnf"][..],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "server_ext",
        "-out",
        "server.pem",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}
