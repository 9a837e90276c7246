//! The rule for registered names.
//!
//! A name is 1 to 32 characters from `a-z`, `0-9`, `-`, `_` and `.`, starting and
//! ending with a letter or a digit. Nothing else: no capitals, no spaces, no non-ASCII
//! letters, so no look-alike (`аlice` with a Cyrillic `а`), no bidirectional overrides
//! and no invisible characters, and two names that look the same are the same name.
//! Clients [`normalise`] what a user types (trim, lower-case) before registering or
//! looking up; servers accept only names already in normal form ([`check`]).

/// Longest name, in characters (each one byte).
pub const MAX_NAME_CHARS: usize = 32;

/// Why a name is refused; the text says which part of the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} (names are 1-32 of a-z, 0-9, '-', '_', '.', starting and ending with a letter or digit)"
)]
pub struct NameError(pub String);

/// The normal form of what a user typed: surrounding space trimmed, ASCII lower-cased,
/// then checked against the rule.
pub fn normalise(input: &str) -> Result<String, NameError> {
    let name = input.trim().to_ascii_lowercase();
    check(&name)?;
    Ok(name)
}

/// Check that `name` is a name in normal form.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError("empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError(format!(
            "longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(*c)))
    {
        return Err(NameError(format!("{:?} is not allowed", bad)));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        return Err(NameError(
            "must start and end with a letter or digit".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typed_names_are_normalised() {
        assert_eq!(normalise("  Alice ").as_deref(), Ok("alice"));
        assert_eq!(normalise("bob.smith_2").as_deref(), Ok("bob.smith_2"));
        assert_eq!(normalise("user-12").as_deref(), Ok("user-12"));
    }

    #[test]
    fn unsafe_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("", "empty"),
            ("\u{430}lice", "not allowed"),   // Cyrillic a
            ("ali\u{202e}ce", "not allowed"), // right-to-left override
            ("al ice", "not allowed"),
            ("zero\u{200b}width", "not allowed"),
            ("-alice", "start and end"),
            ("alice.", "start and end"),
            (&"a".repeat(33), "longer than"),
        ] {
            let e = normalise(name).expect_err(name);
            assert!(e.0.contains(why), "{name:?}: {e}");
        }
        assert!(check("Alice").is_err(), "servers take only the normal form");
    }

    proptest! {
        #[test]
        fn normal_forms_are_fixed_points_and_never_panic(s in ".{0,40}") {
            if let Ok(n) = normalise(&s) {
                prop_assert_eq!(normalise(&n), Ok(n.clone()));
                prop_assert!(check(&n).is_ok());
            }
        }
    }
}
