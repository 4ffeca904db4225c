//! Source files and locations: every configuration error names a file, a
//! line and a key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use gatehouse_sdk::proto::ConfigErrorEntry;

/// One configuration file as read from disk.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

impl SourceFile {
    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        let line = self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        u32::try_from(line + 1).unwrap_or(u32::MAX)
    }

    /// A location for a span in this file.
    pub(crate) fn at(&self, span: &Range<usize>) -> Location {
        Location {
            file: self.path.clone(),
            line: Some(self.line_of(span.start)),
        }
    }

    /// The line of each top-level key of the table at `span` (a
    /// `[x.settings]` section, whose span may be its header only, or an
    /// inline table): key lines up to the next table header.
    pub(crate) fn key_lines(&self, span: &Range<usize>) -> Vec<(String, u32)> {
        let start = span.start.min(self.text.len());
        let Some(rest) = self.text.get(start..) else {
            return Vec::new();
        };
        let first_line = self.line_of(start);
        let header_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let body_end = rest[header_end..]
            .match_indices('\n')
            .map(|(i, _)| header_end + i + 1)
            .find(|&i| rest[i..].trim_start().starts_with('['))
            .unwrap_or(rest.len())
            .max(span.end.saturating_sub(start).min(rest.len()));
        let mut out = Vec::new();
        for (n, line) in rest[..body_end].lines().enumerate() {
            let line_no = first_line.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            // an inline table: `settings = { a = 1, b = 2 }`
            let line = line.split_once('{').map_or(line, |(_, inner)| inner);
            for part in line.split(',') {
                let Some((key, _)) = part.split_once('=') else {
                    continue;
                };
                let key = key.trim().trim_matches('"').trim_matches('\'');
                if !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-')) {
                    out.push((key.to_owned(), line_no));
                }
            }
        }
        out
    }

    /// The dotted key an error span points at: the table header above the
    /// span plus the key text under it, e.g. `authenticators.settings.foo`.
    pub(crate) fn key_at(&self, span: &Range<usize>) -> Option<String> {
        let start = span.start.min(self.text.len());
        let end = span.end.min(self.text.len()).max(start);
        let token = self.text.get(start..end)?.trim();
        // A span that covers a whole table starts with its header.
        if let Some(first) = token.lines().next()
            && first.starts_with('[')
        {
            let name = first.trim_matches(|c| c == '[' || c == ']').trim();
            return Some(name.to_owned());
        }
        let before = self.text.get(..start)?;
        let header = before.lines().rev().find_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix("[[").and_then(|s| s.split("]]").next());
            let inner = inner.or_else(|| l.strip_prefix('[').and_then(|s| s.split(']').next()));
            inner.map(|s| s.trim().to_owned())
        });
        // The span is a key when `=` follows it; a value's span (`key =
        // <span>`) names the key before the `=` on its line. Anything else
        // gives the table only: a value never becomes part of a key.
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let prefix = &before[line_start..];
        let token = if self
            .text
            .get(end..)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            token
        } else if let Some((key, _)) = prefix.split_once('=') {
            key.trim()
        } else {
            ""
        };
        let is_key = !token.is_empty()
            && token.len() <= 128
            && token
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'));
        match (header, is_key) {
            (Some(h), true) if !token.starts_with('[') => Some(format!("{h}.{}", token.trim_matches('"'))),
            (None, true) => Some(token.trim_matches('"').to_owned()),
            (Some(h), _) => Some(h),
            (None, false) => None,
        }
    }
}

/// Where something was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
}

impl Location {
    /// A location naming a file only.
    pub(crate) fn file(path: &Path) -> Self {
        Self {
            file: path.to_owned(),
            line: None,
        }
    }

    /// An error at this location.
    pub fn error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigErrorEntry {
        ConfigErrorEntry {
            file: self.file.display().to_string(),
            line: self.line,
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_joins_header_and_key() {
        let src = SourceFile {
            path: "x.toml".into(),
            text: "[daemon]\nsocket = \"a\"\n\n[[authenticators]]\nname = \"x\"\nbogus = 1\n".into(),
        };
        let off = src.text.find("bogus").unwrap();
        assert_eq!(
            src.key_at(&(off..off + 5)).as_deref(),
            Some("authenticators.bogus")
        );
        assert_eq!(src.line_of(off), 6);
        // a value's span names its key, never the value
        let value = src.text.find("1\n").unwrap();
        assert_eq!(
            src.key_at(&(value..value + 1)).as_deref(),
            Some("authenticators.bogus")
        );
        let table = src.text.find("[[authenticators]]").unwrap();
        assert_eq!(
            src.key_at(&(table..src.text.len())).as_deref(),
            Some("authenticators")
        );
        let src = SourceFile {
            path: "x.toml".into(),
            text: "[daemon]\nsocket_mode = 8675309123\nplugin_dirs = [\n  hunter2,\n]\n".into(),
        };
        let off = src.text.find("8675309123").unwrap();
        assert_eq!(
            src.key_at(&(off..off + 10)).as_deref(),
            Some("daemon.socket_mode")
        );
        let off = src.text.find("hunter2").unwrap();
        assert_eq!(src.key_at(&(off..off + 7)).as_deref(), Some("daemon"));
    }
}
