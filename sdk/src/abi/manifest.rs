//! The plugin manifest: a small JSON document every plugin library carries
//! in an ELF section named [`SECTION`], which the daemon reads from the
//! file *before* loading it. A shared library without one is not a
//! gatehouse plugin and is skipped (a stray `libfoo.so` in `plugin_dirs`
//! costs nothing); one with a manifest that is unreadable or names another
//! ABI is refused without running any of its code.
//!
//! ```json
//! {"name":"gatehouse-plugin-htpasswd","version":"0.1.0","sdk_version":"0.1.0","abi":1,
//!  "authenticators":["htpasswd"],"verifiers":[],"capabilities":["files"]}
//! ```
//!
//! - `name`, `version`: the plugin's own (for Rust plugins the crate's
//!   package name and version).
//! - `sdk_version`: the SDK (or header) version it was built with.
//! - `abi`: the ABI major ([`ABI_MAJOR`](super::ABI_MAJOR)).
//! - `authenticators`, `verifiers`: the types it provides. Optional: the
//!   authoritative list is the descriptor the entry point returns, which
//!   the daemon only sees after loading. When the manifest lists them, the
//!   daemon checks after loading that the descriptor provides exactly
//!   these, and refuses the library otherwise; `gatehouse plugins` shows
//!   them either way. (Types come from trait objects a Rust plugin builds
//!   at run time, so they cannot be computed at compile time; a Rust
//!   plugin declares them in [`export_plugin!`](crate::export_plugin) or
//!   leaves them out.)
//! - `capabilities`: what the plugin needs from its environment, for the
//!   operator: `network` (connects to servers), `files` (reads files named
//!   in its settings), `state_dir` (writes its state directory),
//!   `subprocess` (runs programs). Informational: the daemon lists them but
//!   enforces nothing (sandboxing is the job of `isolation = "process"`
//!   and the service manager).
//!
//! In C, `GH_PLUGIN_MANIFEST("{…}")` from `gatehouse_plugin.h` embeds it;
//! in Rust, [`export_plugin!`](crate::export_plugin) does.

use serde::{Deserialize, Serialize};

/// The name of the ELF section holding the manifest.
pub const SECTION: &str = ".gatehouse_manifest";

/// The largest manifest the reader accepts, in bytes.
pub const MAX_LEN: u64 = 64 * 1024;

/// A plugin library's manifest (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The SDK version it was built with.
    pub sdk_version: String,
    /// The ABI major version it speaks.
    pub abi: u32,
    /// The authenticator types it provides, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticators: Option<Vec<String>>,
    /// The verifier types it provides, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifiers: Option<Vec<String>>,
    /// What it needs from its environment (informational).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl Manifest {
    /// Parses the section's bytes (trailing NUL bytes, as a C string
    /// literal leaves, are ignored) and checks the ABI.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&bytes[..end])
            .map_err(|_| ManifestError::Invalid("the manifest is not UTF-8".into()))?;
        let manifest: Self = serde_json::from_str(text)
            .map_err(|e| ManifestError::Invalid(format!("the manifest is not valid: {e}")))?;
        if manifest.abi != super::ABI_MAJOR {
            return Err(ManifestError::AbiMismatch { found: manifest.abi });
        }
        if manifest.name.is_empty() {
            return Err(ManifestError::Invalid("the manifest has an empty name".into()));
        }
        Ok(manifest)
    }

    /// Compares the types the manifest lists (if it lists them) with the
    /// types the loaded library's descriptor provides; the error says how
    /// they differ.
    pub fn check_types(&self, descriptor: &super::Descriptor) -> Result<(), String> {
        fn differ(noun: &str, listed: &Option<Vec<String>>, provided: Vec<&str>) -> Option<String> {
            let listed = listed.as_ref()?;
            let mut a: Vec<&str> = listed.iter().map(String::as_str).collect();
            let mut b = provided;
            a.sort_unstable();
            b.sort_unstable();
            (a != b).then(|| {
                format!(
                    "its manifest lists {noun} types [{}] but the library provides [{}]",
                    a.join(", "),
                    b.join(", ")
                )
            })
        }
        let problems: Vec<String> = [
            differ(
                "authenticator",
                &self.authenticators,
                descriptor
                    .authenticators
                    .iter()
                    .map(|t| t.type_name.as_str())
                    .collect(),
            ),
            differ(
                "verifier",
                &self.verifiers,
                descriptor
                    .verifiers
                    .iter()
                    .map(|t| t.type_name.as_str())
                    .collect(),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Why a file has no usable manifest. [`ManifestError::is_not_a_plugin`]
/// tells a file that is simply not a gatehouse plugin (skipped) from a
/// plugin whose manifest is wrong (refused).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file cannot be read.
    Io(String),
    /// Not an ELF file.
    NotElf,
    /// An ELF file of a kind this reader does not handle (32-bit,
    /// big-endian): not loadable by this daemon either.
    UnsupportedElf(&'static str),
    /// The ELF structure is cut short or inconsistent.
    Malformed(&'static str),
    /// A shared library without a manifest section.
    Missing,
    /// The manifest section is there but unreadable.
    Invalid(String),
    /// The manifest names another ABI major version.
    AbiMismatch {
        /// The manifest's `abi`.
        found: u32,
    },
}

impl ManifestError {
    /// A stable snake_case code (for listings and logs).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "io",
            Self::NotElf => "not_elf",
            Self::UnsupportedElf(_) => "unsupported_elf",
            Self::Malformed(_) => "malformed_elf",
            Self::Missing => "no_manifest",
            Self::Invalid(_) => "invalid_manifest",
            Self::AbiMismatch { .. } => "abi_mismatch",
        }
    }

    /// True when the file is not a gatehouse plugin at all (no manifest, or
    /// not an ELF shared object this daemon could load): such files in
    /// `plugin_dirs` are skipped, not errors.
    pub fn is_not_a_plugin(&self) -> bool {
        matches!(
            self,
            Self::NotElf | Self::UnsupportedElf(_) | Self::Malformed(_) | Self::Missing
        )
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read: {e}"),
            Self::NotElf => f.write_str("not an ELF file"),
            Self::UnsupportedElf(what) => write!(f, "unsupported ELF file ({what})"),
            Self::Malformed(what) => write!(f, "malformed ELF file ({what})"),
            Self::Missing => write!(f, "not a gatehouse plugin: no {SECTION} manifest section"),
            Self::Invalid(e) => write!(f, "invalid plugin manifest: {e}"),
            Self::AbiMismatch { found } => write!(
                f,
                "plugin ABI version {found} is not supported (this gatehouse speaks ABI {}.x)",
                super::ABI_MAJOR
            ),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Random access to the bytes of a file (or of a buffer, in tests).
trait Source {
    fn size(&self) -> u64;
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, ManifestError>;
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, ManifestError> {
        let start = usize::try_from(offset).map_err(|_| ManifestError::Malformed("offset out of range"))?;
        let len = usize::try_from(len).map_err(|_| ManifestError::Malformed("length out of range"))?;
        let end = start
            .checked_add(len)
            .ok_or(ManifestError::Malformed("offset out of range"))?;
        self.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or(ManifestError::Malformed("truncated"))
    }
}

struct FileSource {
    file: std::fs::File,
    size: u64,
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, ManifestError> {
        use std::os::unix::fs::FileExt as _;
        let end = offset
            .checked_add(len)
            .ok_or(ManifestError::Malformed("offset out of range"))?;
        if end > self.size {
            return Err(ManifestError::Malformed("truncated"));
        }
        let len = usize::try_from(len).map_err(|_| ManifestError::Malformed("length out of range"))?;
        let mut buf = vec![0; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| ManifestError::Io(e.to_string()))?;
        Ok(buf)
    }
}

/// Reads the manifest of the library at `path` without loading it (safe:
/// only the ELF header, the section headers, the section-name table and
/// the manifest section are read).
pub fn read(path: &std::path::Path) -> Result<Manifest, ManifestError> {
    let file = std::fs::File::open(path).map_err(|e| ManifestError::Io(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| ManifestError::Io(e.to_string()))?
        .len();
    Manifest::parse(&section(&FileSource { file, size })?)
}

/// Finds the manifest in the bytes of an ELF file.
pub fn from_elf(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    Manifest::parse(&section(bytes)?)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// ELF64 header size, section header size.
const EHDR: u64 = 64;
const SHDR: u64 = 64;
/// `SHT_NOBITS`: a section with no bytes in the file.
const SHT_NOBITS: u32 = 8;

/// The bytes of the [`SECTION`] section of an ELF64 little-endian file.
fn section<S: Source + ?Sized>(src: &S) -> Result<Vec<u8>, ManifestError> {
    if src.size() < 16 {
        return Err(ManifestError::NotElf);
    }
    let ident = src.read_at(0, 16)?;
    if ident[..4] != *b"\x7fELF" {
        return Err(ManifestError::NotElf);
    }
    if ident[4] != 2 {
        return Err(ManifestError::UnsupportedElf("not 64-bit"));
    }
    if ident[5] != 1 {
        return Err(ManifestError::UnsupportedElf("not little-endian"));
    }
    let header = src.read_at(0, EHDR)?;
    let shoff = u64_at(&header, 0x28);
    let shentsize = u64::from(u16_at(&header, 0x3A));
    let shnum = u64::from(u16_at(&header, 0x3C));
    let shstrndx = u64::from(u16_at(&header, 0x3E));
    if shoff == 0 || shnum == 0 {
        // No section headers (or more than 0xff00 of them, which a plugin
        // library does not have): no manifest section.
        return Err(ManifestError::Missing);
    }
    if shentsize != SHDR {
        return Err(ManifestError::Malformed("unexpected section header size"));
    }
    if shstrndx >= shnum {
        return Err(ManifestError::Malformed("section name table index out of range"));
    }
    let table = src.read_at(shoff, shnum * SHDR)?;
    let header_of = |i: u64| -> &[u8] {
        // i < shnum, and table holds shnum headers.
        let start = (i * SHDR) as usize;
        &table[start..start + SHDR as usize]
    };
    let names_header = header_of(shstrndx);
    let names_off = u64_at(names_header, 24);
    let names_size = u64_at(names_header, 32);
    if names_size > 16 * 1024 * 1024 {
        return Err(ManifestError::Malformed("section name table too large"));
    }
    let names = src.read_at(names_off, names_size)?;
    for i in 0..shnum {
        let h = header_of(i);
        let name_at = u32_at(h, 0) as usize;
        let Some(rest) = names.get(name_at..) else {
            return Err(ManifestError::Malformed("section name out of range"));
        };
        let name = rest.split(|b| *b == 0).next().unwrap_or_default();
        if name != SECTION.as_bytes() {
            continue;
        }
        if u32_at(h, 4) == SHT_NOBITS {
            return Err(ManifestError::Invalid("the manifest section is empty".into()));
        }
        let size = u64_at(h, 32);
        if size > MAX_LEN {
            return Err(ManifestError::Invalid(format!(
                "the manifest section is larger than {MAX_LEN} bytes"
            )));
        }
        return src.read_at(u64_at(h, 24), size);
    }
    Err(ManifestError::Missing)
}

/// The parts of a manifest as [`export_plugin!`](crate::export_plugin)
/// knows them at compile time.
#[doc(hidden)]
pub struct Parts<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub sdk_version: &'a str,
    pub authenticators: Option<&'a [&'a str]>,
    pub verifiers: Option<&'a [&'a str]>,
    pub capabilities: &'a [&'a str],
}

const fn put(buf: &mut [u8], at: usize, b: u8) -> usize {
    if at < buf.len() {
        buf[at] = b;
    }
    at + 1
}

const fn put_raw(buf: &mut [u8], mut at: usize, s: &str) -> usize {
    let s = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        at = put(buf, at, s[i]);
        i += 1;
    }
    at
}

const fn put_string(buf: &mut [u8], mut at: usize, s: &str) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = s.as_bytes();
    at = put(buf, at, b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'"' || b == b'\\' {
            at = put(buf, at, b'\\');
            at = put(buf, at, b);
        } else if b < 0x20 {
            at = put_raw(buf, at, "\\u00");
            at = put(buf, at, HEX[(b >> 4) as usize]);
            at = put(buf, at, HEX[(b & 0xf) as usize]);
        } else {
            at = put(buf, at, b);
        }
        i += 1;
    }
    put(buf, at, b'"')
}

const fn put_list(buf: &mut [u8], mut at: usize, key: &str, list: &[&str]) -> usize {
    at = put_raw(buf, at, ",\"");
    at = put_raw(buf, at, key);
    at = put_raw(buf, at, "\":[");
    let mut i = 0;
    while i < list.len() {
        if i > 0 {
            at = put(buf, at, b',');
        }
        at = put_string(buf, at, list[i]);
        i += 1;
    }
    put(buf, at, b']')
}

/// Writes the manifest JSON into `buf` (as far as it reaches) and returns
/// its full length.
const fn write(buf: &mut [u8], p: &Parts<'_>) -> usize {
    let mut at = put_raw(buf, 0, "{\"name\":");
    at = put_string(buf, at, p.name);
    at = put_raw(buf, at, ",\"version\":");
    at = put_string(buf, at, p.version);
    at = put_raw(buf, at, ",\"sdk_version\":");
    at = put_string(buf, at, p.sdk_version);
    at = put_raw(buf, at, ",\"abi\":");
    // ABI_MAJOR is a small number: one or two digits.
    let abi = super::ABI_MAJOR;
    if abi >= 10 {
        at = put(buf, at, b'0' + (abi / 10 % 10) as u8);
    }
    at = put(buf, at, b'0' + (abi % 10) as u8);
    if let Some(list) = p.authenticators {
        at = put_list(buf, at, "authenticators", list);
    }
    if let Some(list) = p.verifiers {
        at = put_list(buf, at, "verifiers", list);
    }
    at = put_list(buf, at, "capabilities", p.capabilities);
    put(buf, at, b'}')
}

/// The length of the manifest JSON of `p`.
#[doc(hidden)]
pub const fn encoded_len(p: &Parts<'_>) -> usize {
    write(&mut [], p)
}

/// The manifest JSON of `p`; `N` must be [`encoded_len`]`(p)`.
#[doc(hidden)]
pub const fn encode<const N: usize>(p: &Parts<'_>) -> [u8; N] {
    let mut buf = [0; N];
    let n = write(&mut buf, p);
    assert!(n == N, "manifest length mismatch");
    buf
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const PARTS: Parts<'static> = Parts {
        name: "demo \"plugin\"",
        version: "1.2.3",
        sdk_version: crate::SDK_VERSION,
        authenticators: Some(&["a", "b\\c"]),
        verifiers: Some(&[]),
        capabilities: &["network", "tab\there"],
    };
    const LEN: usize = encoded_len(&PARTS);
    static ENCODED: [u8; LEN] = encode(&PARTS);

    #[test]
    fn the_compile_time_encoder_writes_json_that_parses_back() {
        let m = Manifest::parse(&ENCODED).unwrap();
        assert_eq!(m.name, "demo \"plugin\"");
        assert_eq!(m.version, "1.2.3");
        assert_eq!(m.sdk_version, crate::SDK_VERSION);
        assert_eq!(m.abi, crate::abi::ABI_MAJOR);
        assert_eq!(m.authenticators, Some(vec!["a".to_owned(), "b\\c".to_owned()]));
        assert_eq!(m.verifiers, Some(vec![]));
        assert_eq!(m.capabilities, ["network", "tab\there"]);
        let without = Parts {
            authenticators: None,
            verifiers: None,
            capabilities: &[],
            ..PARTS
        };
        let mut buf = vec![0; encoded_len(&without)];
        write(&mut buf, &without);
        let m = Manifest::parse(&buf).unwrap();
        assert_eq!((m.authenticators, m.verifiers), (None, None));
    }

    #[test]
    fn the_c_header_names_this_sdk_version() {
        let header = include_str!("../../include/gatehouse_plugin.h");
        let line = format!("#define GH_SDK_VERSION \"{}\"", crate::SDK_VERSION);
        assert!(header.contains(&line), "gatehouse_plugin.h lacks {line}");
        assert!(header.contains(&format!("#define GH_ABI_MAJOR {}", crate::abi::ABI_MAJOR)));
    }

    #[test]
    fn parse_ignores_trailing_nuls_and_checks_the_abi() {
        let ok = br#"{"name":"x","version":"1","sdk_version":"0.1.0","abi":1}"#;
        let mut with_nul = ok.to_vec();
        with_nul.extend_from_slice(&[0, 0]);
        assert_eq!(Manifest::parse(&with_nul).unwrap().name, "x");
        let other = br#"{"name":"x","version":"1","sdk_version":"0.1.0","abi":2}"#;
        assert_eq!(
            Manifest::parse(other).unwrap_err(),
            ManifestError::AbiMismatch { found: 2 }
        );
        for bad in [
            &b""[..],
            b"{",
            b"\xff\xfe",
            br#"{"name":"","version":"1","sdk_version":"1","abi":1}"#,
        ] {
            let e = Manifest::parse(bad).unwrap_err();
            assert!(matches!(e, ManifestError::Invalid(_)), "{bad:?}: {e:?}");
            assert!(!e.is_not_a_plugin());
        }
    }

    /// A minimal ELF64 LE file: header, the given sections' bytes, a
    /// section name table, and the section header table.
    fn elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        let mut names = vec![0u8];
        let mut headers: Vec<(u32, u64, u64)> = vec![(0, 0, 0)];
        for (name, data) in sections {
            let name_at = names.len() as u32;
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            headers.push((name_at, out.len() as u64, data.len() as u64));
            out.extend_from_slice(data);
        }
        let shstr_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        headers.push((shstr_name, out.len() as u64, names.len() as u64));
        out.extend_from_slice(&names);
        let shoff = out.len() as u64;
        for (name, off, size) in &headers {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&1u32.to_le_bytes());
            h[24..32].copy_from_slice(&off.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&h);
        }
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        out[0x3C..0x3E].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        out[0x3E..0x40].copy_from_slice(&((headers.len() - 1) as u16).to_le_bytes());
        out
    }

    const GOOD: &[u8] = br#"{"name":"x","version":"1","sdk_version":"0.1.0","abi":1,"authenticators":["t"]}"#;

    #[test]
    fn finds_the_manifest_section() {
        let file = elf(&[(".text", b"\x90\x90"), (SECTION, GOOD), (".data", b"zz")]);
        let m = from_elf(&file).unwrap();
        assert_eq!(m.authenticators, Some(vec!["t".to_owned()]));
        // a similar name is not the section
        let file = elf(&[(".gatehouse_manifest2", GOOD), (".gatehouse", GOOD)]);
        assert_eq!(from_elf(&file).unwrap_err(), ManifestError::Missing);
    }

    #[test]
    fn reads_from_a_file() {
        let dir = std::env::temp_dir().join(format!("gh-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("libx.so");
        std::fs::write(&path, elf(&[(SECTION, GOOD)])).unwrap();
        assert_eq!(read(&path).unwrap().name, "x");
        std::fs::write(&path, b"not a library").unwrap();
        assert_eq!(read(&path).unwrap_err(), ManifestError::NotElf);
        assert!(matches!(read(&dir.join("missing.so")), Err(ManifestError::Io(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_other_elf_kinds_and_non_elf_files() {
        let mut file = elf(&[(SECTION, GOOD)]);
        file[4] = 1;
        assert_eq!(
            from_elf(&file).unwrap_err(),
            ManifestError::UnsupportedElf("not 64-bit")
        );
        file[4] = 2;
        file[5] = 2;
        assert_eq!(
            from_elf(&file).unwrap_err(),
            ManifestError::UnsupportedElf("not little-endian")
        );
        for junk in [&b""[..], b"\x7fEL", b"#!/bin/sh\necho hi\n", &[0u8; 100]] {
            assert_eq!(from_elf(junk).unwrap_err(), ManifestError::NotElf);
        }
        assert!(ManifestError::NotElf.is_not_a_plugin());
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let file = elf(&[(".text", b"code"), (SECTION, GOOD)]);
        for len in 0..file.len() {
            let r = from_elf(&file[..len]);
            assert!(r.is_err(), "truncated at {len}: {r:?}");
        }
        assert!(from_elf(&file).is_ok());
    }

    #[test]
    fn garbage_in_the_headers_is_an_error_not_a_panic() {
        let file = elf(&[(".text", b"code"), (SECTION, GOOD)]);
        // Flip every byte of the ELF header and the section headers (one at
        // a time, to several values) and read: any answer but a panic.
        let shoff = u64_at(&file, 0x28) as usize;
        let positions: Vec<usize> = (0..64).chain(shoff..file.len()).collect();
        for &at in &positions {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut f = file.clone();
                f[at] = v;
                let _ = from_elf(&f);
            }
        }
        // A pseudo-random stream behind a valid ident.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200 {
            let mut f = file[..16].to_vec();
            for _ in 0..400 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f.push(x as u8);
            }
            let _ = from_elf(&f);
        }
        // A section claiming to be enormous.
        let mut f = file.clone();
        let h = shoff + 2 * 64;
        f[h + 32..h + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(from_elf(&f).is_err());
    }
}
