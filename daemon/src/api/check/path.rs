//! The path `[[routes]]` are matched against: the original request's path
//! as the proxy itself routes it (nginx's `$uri`: percent-escapes decoded
//! once, repeated slashes merged, `.` and `..` segments resolved). Matching
//! the raw path would let `/ai/x/../admin/` or `/ai//admin/` pass as a
//! request for `/ai/` while the upstream serves `/ai/admin/`.

/// Why a path is refused outright (the check answers 403).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// It does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8
    /// once decoded.
    BadEscape,
    /// A NUL or other control character.
    Control,
    /// A `..` that would climb above the root.
    AboveRoot,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "the original path does not start with /",
            Self::BadEscape => "the original path has a malformed percent-escape",
            Self::Control => "the original path has a control character",
            Self::AboveRoot => "the original path climbs above the root with ..",
        })
    }
}

/// Decodes, merges and resolves `raw` (a path without query or fragment).
pub(crate) fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = String::from_utf8(decode(raw.as_bytes())?).map_err(|_| PathError::BadEscape)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/').skip(1) {
        trailing = true;
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Percent-decodes once.
fn decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex);
            let lo = raw.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_as_the_proxy_routes_them() {
        for (raw, want) in [
            ("/", "/"),
            ("/ai/chat", "/ai/chat"),
            ("/ai/", "/ai/"),
            ("/ai/x/../admin/y", "/ai/admin/y"),
            ("/ai//admin/y", "/ai/admin/y"),
            ("/ai/./admin/y", "/ai/admin/y"),
            ("/ai/%2e%2e/ai/admin/y", "/ai/admin/y"),
            ("/ai/%2E%2e/ai/admin/y", "/ai/admin/y"),
            ("/ai%2fadmin/y", "/ai/admin/y"),
            ("/ai/admin/..", "/ai/"),
            ("/ai/admin/.", "/ai/admin/"),
            ("/caf%C3%A9", "/café"),
            // decoded once: %252e stays a literal %2e
            ("/ai/%252e%252e/x", "/ai/%2e%2e/x"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for (raw, e) in [
            ("ai/chat", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/..", PathError::AboveRoot),
            ("/ai/../../etc", PathError::AboveRoot),
            ("/ai/%2e%2e/%2e%2e/x", PathError::AboveRoot),
            ("/ai/%zz", PathError::BadEscape),
            ("/ai/%2", PathError::BadEscape),
            ("/ai/%ff", PathError::BadEscape),
            ("/ai/%00/x", PathError::Control),
            ("/ai/%0a", PathError::Control),
        ] {
            assert_eq!(normalize(raw), Err(e), "{raw}");
        }
    }

    #[test]
    fn refusals_say_what_is_wrong_with_the_path() {
        for (e, says) in [
            (PathError::NotAbsolute, "does not start with /"),
            (PathError::BadEscape, "malformed percent-escape"),
            (PathError::Control, "control character"),
            (PathError::AboveRoot, "above the root"),
        ] {
            assert!(e.to_string().contains(says), "{e:?}: {e}");
        }
    }
}
