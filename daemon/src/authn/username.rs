//! Usernames, the PRECIS way (RFC 8265): one rule for the local store, the
//! lockout counters and every identity a plugin reports.
//!
//! Mapping (`UsernameCaseMapped`): fullwidth and halfwidth forms to their
//! ordinary counterparts, Unicode `toLowerCase`, NFC; outer whitespace
//! is trimmed first. `UsernameCasePreserved` is the same without the case
//! mapping (for plugins whose names are case-sensitive).
//!
//! Refused: control, format (`U+200B`, `U+200D`, bidi controls …),
//! default-ignorable (`U+3164`, variation selectors …), private-use,
//! surrogate and unassigned code points, and whitespace other than the
//! ASCII space inside the name (directory names such as `John Smith` keep
//! working; the local store refuses the space too), so two names that look
//! the same are the same name or one of them is refused.

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup};
use icu_properties::{CodePointMapData, CodePointSetData};

/// Why a username is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Nothing left after trimming.
    #[error("username must not be empty")]
    Empty,
    /// A code point that is invisible, a control, or not a character
    /// (the message names it by number, never the whole input).
    #[error("username must not contain control, format or invisible characters (U+{0:04X})")]
    Invisible(u32),
    /// Whitespace inside the name other than U+0020.
    #[error("username must not contain whitespace other than a plain space (U+{0:04X})")]
    Whitespace(u32),
}

/// Width mapping (RFC 8265 §3.3.1 rule 1, RFC 7564 §5.2.2): a code point
/// in the Halfwidth and Fullwidth Forms block, or the ideographic space,
/// becomes its `<wide>`/`<narrow>` decomposition.
fn map_width(name: &str) -> Cow<'_, str> {
    let wide = |c: char| c == '\u{3000}' || ('\u{FF00}'..='\u{FFEF}').contains(&c);
    if !name.chars().any(wide) {
        return Cow::Borrowed(name);
    }
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    let mut out = String::with_capacity(name.len());
    let mut buf = [0u8; 4];
    for c in name.chars() {
        if wide(c) {
            out.push_str(&nfkc.normalize(c.encode_utf8(&mut buf)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn map(name: &str, case_mapped: bool) -> String {
    let widened = map_width(name.trim());
    let cased: Cow<'_, str> = if case_mapped {
        Cow::Owned(widened.to_lowercase())
    } else {
        widened
    };
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(&cased)
        .trim()
        .to_owned()
}

/// The `UsernameCaseMapped` form of a name, without refusing anything
/// (admin endpoints use it to reach names stored before these rules).
pub fn map_case_mapped(name: &str) -> String {
    map(name, true)
}

/// The `UsernameCasePreserved` form of a name, without refusing anything.
pub fn map_case_preserved(name: &str) -> String {
    map(name, false)
}

/// The first code point the rules refuse, if any.
pub fn check(name: &str) -> Result<(), UsernameError> {
    if name.is_empty() {
        return Err(UsernameError::Empty);
    }
    let gc = CodePointMapData::<GeneralCategory>::new();
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    // Cc, Cf, Co, Cs, Cn; and the line and paragraph separators
    let refused = GeneralCategoryGroup::Other
        .union(GeneralCategoryGroup::LineSeparator)
        .union(GeneralCategoryGroup::ParagraphSeparator);
    for c in name.chars() {
        if refused.contains(gc.get(c)) || ignorable.contains(c) {
            return Err(UsernameError::Invisible(u32::from(c)));
        }
        if c != ' ' && (c.is_whitespace() || gc.get(c) == GeneralCategory::SpaceSeparator) {
            return Err(UsernameError::Whitespace(u32::from(c)));
        }
    }
    Ok(())
}

/// A username mapped (`UsernameCaseMapped`) and checked: what the local
/// store keeps and the lockout counts under.
pub fn case_mapped(name: &str) -> Result<String, UsernameError> {
    let mapped = map(name, true);
    check(&mapped)?;
    Ok(mapped)
}

/// A username mapped without case mapping (`UsernameCasePreserved`) and
/// checked: for plugins whose usernames are case-sensitive.
pub fn case_preserved(name: &str) -> Result<String, UsernameError> {
    let mapped = map(name, false);
    check(&mapped)?;
    Ok(mapped)
}

/// A username for a log line or an audit event: at most
/// [`LOG_MAX_CHARS`] characters, control characters escaped, so one
/// request cannot write a kilobyte (or a forged line) into the log.
pub fn for_log(name: &str) -> Cow<'_, str> {
    let long = name.chars().count() > LOG_MAX_CHARS;
    if !long && !name.chars().any(char::is_control) {
        return Cow::Borrowed(name);
    }
    let mut out: String = name
        .chars()
        .take(LOG_MAX_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if long {
        out.push('…');
    }
    Cow::Owned(out)
}

/// The longest username (in characters) a log line or audit event shows.
pub const LOG_MAX_CHARS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_width_case_and_composition() {
        assert_eq!(case_mapped("  Alice ").as_deref(), Ok("alice"));
        // fullwidth Latin letters become ASCII
        assert_eq!(case_mapped("ＡＬＩＣＥ").as_deref(), Ok("alice"));
        // a decomposed é composes
        assert_eq!(case_mapped("Rene\u{301}").as_deref(), Ok("ren\u{e9}"));
        assert_eq!(case_mapped("J\u{dc}RGEN").as_deref(), Ok("j\u{fc}rgen"));
        assert_eq!(case_preserved("Ｂob").as_deref(), Ok("Bob"));
        // halfwidth katakana widen
        assert_eq!(case_mapped("ｶ").as_deref(), Ok("カ"));
    }

    #[test]
    fn refuses_invisible_format_and_control_characters() {
        for (name, cp) in [
            ("ali\u{200b}ce", 0x200b),
            ("ali\u{200d}ce", 0x200d),
            ("ali\u{202e}ce", 0x202e),
            ("ali\u{ad}ce", 0xad),
            ("a\u{3164}", 0x3164),
            ("a\u{fe0f}", 0xfe0f),
            ("a\u{7}b", 0x7),
            ("a\u{e000}", 0xe000),
            ("a\u{2028}b", 0x2028),
        ] {
            assert_eq!(
                case_mapped(name),
                Err(UsernameError::Invisible(cp)),
                "{:?}",
                name.escape_unicode().to_string()
            );
        }
        assert_eq!(case_mapped("John Smith").as_deref(), Ok("john smith"));
        assert_eq!(case_mapped("a\u{3000}b").as_deref(), Ok("a b"), "width-mapped");
        assert_eq!(case_mapped("a\tb"), Err(UsernameError::Invisible(0x9)));
        assert_eq!(case_mapped("a\u{a0}b"), Err(UsernameError::Whitespace(0xa0)));
        assert_eq!(case_mapped("   "), Err(UsernameError::Empty));
        assert!(
            UsernameError::Invisible(0x200b).to_string().contains("U+200B"),
            "the message names the code point"
        );
    }

    #[test]
    fn ordinary_names_pass_unchanged() {
        for n in ["alice", "j.doe", "user@example.org", "o'brien", "łukasz", "张伟"] {
            assert_eq!(case_mapped(n).as_deref(), Ok(n));
        }
        // mapping without refusing keeps what admins must still reach
        assert_eq!(map_case_mapped("Ali\u{200b}ce"), "ali\u{200b}ce");
        assert_eq!(map_case_preserved(" Ａli\u{200b}ce "), "Ali\u{200b}ce");
        assert_eq!(map_case_preserved("Rene\u{301}"), "Ren\u{e9}");
    }

    #[test]
    fn log_form_is_short_and_escaped() {
        let long = "x".repeat(1000);
        let shown = for_log(&long);
        assert_eq!(shown.chars().count(), LOG_MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(for_log("ann"), "ann");
        let limit = "y".repeat(LOG_MAX_CHARS);
        assert_eq!(for_log(&limit), limit, "exactly the limit is shown whole");
        assert_eq!(for_log(&format!("{limit}z")), format!("{limit}…"));
        assert_eq!(for_log("a\nb"), "a\\u{a}b");
    }
}
