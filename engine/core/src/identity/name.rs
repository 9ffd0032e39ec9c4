//! The one canonical form of an identity name, so that every comparison of "the same
//! person" agrees: self-approval and four-eyes checks, grants, roles, reviewer
//! groups, sequences keyed by identity, and the audit (see ADR 0010).
//!
//! A name is compared by its Unicode *compatibility caseless* form: default-ignorable
//! code points (zero-width spaces, soft hyphens, joiners) removed, case folded with
//! full (not Turkic) folding, NFKC-normalised (so full-width `Ｂｏｂ`, ligatures and
//! composed or decomposed accents agree), and surrounding white space trimmed. This
//! is `toNFKC_Casefold` of Unicode (UAX #44) in spirit; the steps follow the
//! definition of compatibility caseless matching (Unicode 3.13, D146).
//!
//! Turkish dotted and dotless i: full folding maps `I` to `i` and `İ` (U+0130) to `i̇`
//! (`i` + U+0307), and leaves `ı` (U+0131) as it is. So `DIANA` and `diana` are one
//! name, while `dıana` is another. Locale-specific (Turkic) folding is not used: a
//! name must not change with the locale of whoever compares it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use icu_casemap::CaseMapperBorrowed;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::CodePointSetData;
use icu_properties::props::DefaultIgnorableCodePoint;

/// The canonical form of an identity, person, role or group name (borrowed when it
/// already is canonical, as names nearly always are).
///
/// ```
/// use gatehouse_core::identity::normalize;
/// assert_eq!(normalize(" Bob@Example.COM "), "bob@example.com");
/// assert_eq!(normalize("Ｂｏｂ"), "bob");
/// assert_eq!(normalize("bob@example.com"), "bob@example.com");
/// ```
pub fn normalize(name: &str) -> Cow<'_, str> {
    if name.is_ascii() {
        return ascii(name);
    }
    // The full pipeline costs microseconds and runs for every judged event of a
    // non-ASCII identity: remember the few names a gateway sees.
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(canonical) = cache.get(name) {
        return if **canonical == *name {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(canonical.to_string())
        };
    }
    let canonical = unicode(name);
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(name.into(), canonical.as_str().into());
    drop(cache);
    if canonical == name {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(canonical)
    }
}

/// Non-ASCII names already normalised, and their canonical forms.
static CACHE: LazyLock<Mutex<HashMap<Box<str>, Box<str>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_ENTRIES: usize = 4096;

fn unicode(name: &str) -> String {
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let visible: String = name.chars().filter(|c| !ignorable.contains(*c)).collect();
    let fold = CaseMapperBorrowed::new();
    let nfkc = ComposingNormalizerBorrowed::new_nfkc();
    // D146: NFKD(toCasefold(NFKD(toCasefold(NFD(X))))), composed at the end. The
    // second fold catches characters that NFKC turns into foldable ones (`ℌ` -> `H`).
    let nfd = DecomposingNormalizerBorrowed::new_nfd().normalize(&visible);
    let once = nfkc.normalize(&fold.fold_string(&nfd)).into_owned();
    let twice = nfkc.normalize(&fold.fold_string(&once)).into_owned();
    twice.trim().to_owned()
}

fn ascii(name: &str) -> Cow<'_, str> {
    let trimmed = name.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Whether two names are the same identity.
pub fn same(a: &str, b: &str) -> bool {
    a == b || normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_surrounding_space() {
        assert_eq!(normalize("Bob@Example.COM"), "bob@example.com");
        assert_eq!(normalize("  alice\t"), "alice");
        assert!(same("Bob@Example.COM", "bob@example.com"));
        assert!(!same("bob", "rob"));
        // Inner space is part of the name.
        assert_eq!(normalize("Ann Lee"), "ann lee");
        // Already canonical: no allocation.
        assert!(matches!(normalize("agent:deploy-bot"), Cow::Borrowed(_)));
        assert!(matches!(normalize(" agent:x "), Cow::Borrowed("agent:x")));
    }

    #[test]
    fn full_width_and_compatibility_forms() {
        assert_eq!(
            normalize("Ｂｏｂ＠Ｅｘａｍｐｌｅ．ＣＯＭ"),
            "bob@example.com"
        );
        assert_eq!(normalize("ﬁona"), "fiona");
        assert_eq!(normalize("ℌarry"), "harry");
        // No-break space trims like a space.
        assert_eq!(normalize("\u{a0}bob\u{3000}"), "bob");
    }

    #[test]
    fn full_case_folding() {
        assert_eq!(normalize("STRASSE"), normalize("straße"));
        assert_eq!(normalize("ΣΊΣΥΦΟΣ"), normalize("σίσυφος"));
        assert_eq!(normalize("K"), "k", "Kelvin sign");
    }

    #[test]
    fn combining_characters_compose() {
        let composed = "Jos\u{e9}";
        let decomposed = "Jose\u{301}";
        assert_eq!(normalize(composed), normalize(decomposed));
        assert_eq!(normalize(decomposed), "jos\u{e9}");
        assert!(!same("jose", "josé"), "an accent is not case");
    }

    #[test]
    fn invisible_characters_do_not_make_another_name() {
        assert_eq!(normalize("bob\u{200b}@example.com"), "bob@example.com");
        assert_eq!(normalize("b\u{ad}ob"), "bob");
        assert_eq!(normalize("\u{feff}bob"), "bob");
    }

    #[test]
    fn turkish_i_uses_full_not_turkic_folding() {
        assert_eq!(normalize("DIANA"), "diana");
        // Dotted capital I folds to i + combining dot above.
        assert_eq!(normalize("\u{130}"), "i\u{307}");
        // Dotless small i stays itself: another name than `diana`.
        assert_eq!(normalize("d\u{131}ana"), "d\u{131}ana");
        assert!(!same("d\u{131}ana", "diana"));
    }

    #[test]
    fn canonical_names_are_fixed_points() {
        let samples = [
            "Bob@Example.COM",
            "Ｂｏｂ",
            "straße",
            "ΣΊΣΥΦΟΣ",
            "Jose\u{301}",
            "\u{130}stanbul",
            "ǰ\u{323}",
            "ᾼ",
            "ﬃ",
            "㎒",
            "Å",
            "\u{345}",
            "x\u{200d}y",
        ];
        for s in samples {
            let once = normalize(s).into_owned();
            assert_eq!(normalize(&once), once, "{s:?}");
        }
        // Every code point of the BMP and of the mathematical alphanumerics, between
        // letters.
        for c in (0u32..0x1_0000)
            .chain(0x1_D400..0x1_D800)
            .filter_map(char::from_u32)
        {
            let s = format!("a{c}b");
            let once = normalize(&s).into_owned();
            assert_eq!(normalize(&once), once, "U+{:04X}", c as u32);
        }
    }
}
