//! User search: the terms a user is found by, the normalised query, and the ranked order
//! that both stores page through.
//!
//! Every store indexes exactly the terms [`terms`] returns, and decides where a user
//! ranks with [`position`], so SQLite and PostgreSQL find and order the same users. The
//! stores own the index structures (see `docs/schema.md`, migration 0006); this module owns
//! what goes into them.
//!
//! A user's terms are, normalised by [`normalize`] (Unicode lower case, blanks collapsed):
//! the name, English name and nickname; for a name holding Chinese characters its pinyin in
//! full (`张三` → `zhangsan`) and its initials (`zs`); the personal e-mail (folded); the
//! mobile in E.164 (`+8613800138000`) and, for Chinese numbers, the national number
//! (`13800138000`); and the employee number. A name's first Chinese character (its
//! surname, as a rule) is read in each of its readings, since polyphonic surnames are read
//! differently from the character's most common reading (`单雄信` is found by `shanxiongxin`
//! and `danxiongxin`); every later character takes its most common reading from the `pinyin`
//! crate. `ü` is also spelled `v` and `u` (`吕布`: `lvbu`, `lubu`, `lübu`). Terms and queries
//! are compared after NFKC, so full-width and decomposed forms find their usual forms.
//! Besides these *whole* terms there are *suffix*
//! terms, marked with [`SUFFIX_MARK`]: each name read from a later Chinese character or a
//! later word or punctuation mark on (`欧阳娜娜` → `阳娜娜`, `娜娜`, `娜`; `mary ann lee` →
//! `ann lee`, `lee`; `100%` → `%`),
//! which let one- and two-character queries find a name by its middle through a prefix
//! range, where a trigram index cannot help.
//!
//! The order of results is by [`SearchCursor`]: first every user with a whole term that
//! starts with the query (an exact term sorts first within that, since the query itself is
//! the smallest string it prefixes), ordered by that term and then by key; then every user
//! left with a suffix term that starts with the query, the same way; then, for queries of
//! [`MIN_SUBSTRING_CHARS`] characters or more, every user left whose whole terms contain the
//! query anywhere, by key. A user appears once, at its best place. Because that place
//! depends only on the user's own terms, a cursor naming the last place returned resumes
//! exactly after it: users added meanwhile appear if their place is still ahead, and no
//! user that existed before is skipped or repeated.

use pinyin::{ToPinyin, ToPinyinMulti};
use unicode_normalization::UnicodeNormalization;

use crate::error::CoreError;
use crate::user::{UserKey, UserProfile};

/// The first character of a suffix term. It is a private-use character, which
/// [`normalize`] removes from every term and query, so no query can start with it, and suffix
/// terms sort in a range of their own after every whole term beginning with a letter.
pub const SUFFIX_MARK: char = '\u{E000}';

/// Queries this short or shorter are matched by prefix only (whole and suffix terms): a
/// trigram index needs three characters.
pub const MIN_SUBSTRING_CHARS: usize = 3;

/// The longest query accepted, in characters after normalisation: as long as the longest
/// name (and longer than any e-mail address), so that any whole value can be searched.
pub const MAX_QUERY_CHARS: usize = 255;

/// At most this many suffix terms are derived from one name, so a long name cannot bloat
/// the index.
const MAX_SUFFIXES_PER_NAME: usize = 8;

/// Names longer than this (in characters) give no suffix terms: such names are rare and the
/// trigram index still finds them by substring.
const MAX_SUFFIX_NAME_CHARS: usize = 64;

/// Composes `s` (NFKC), lower-cases it (Unicode), removes characters that the index encoding reserves (control
/// characters, `"`, `\` and private-use characters), collapses runs of white space to one
/// space and trims. Terms and queries are both normalised this way, so they compare as
/// plain strings.
pub fn normalize(s: &str) -> String {
    // Compatibility composition (NFKC) first, so that the forms a keyboard or a copy may
    // produce read alike: full-width Latin and digits (`Ｔｏｍ`, `１３９`) as ASCII,
    // decomposed accents (`e` + U+0301) as one character, half-width katakana as
    // full-width. ASCII is its own NFKC form and skips the pass.
    let composed;
    let s = if s.is_ascii() {
        s
    } else {
        composed = s.nfkc().collect::<String>();
        composed.as_str()
    };
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if is_reserved(c) {
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Characters that never appear in a term: JSON's quote and escape (the stores keep terms as
/// a JSON array), control characters, and private-use characters (the suffix mark and the
/// upper bound of prefix ranges, `U+10FFFF`, are among them).
fn is_reserved(c: char) -> bool {
    c.is_control()
        || c == '"'
        || c == '\\'
        || ('\u{E000}'..='\u{F8FF}').contains(&c)
        || c >= '\u{F0000}'
}

/// Characters of scripts written without spaces between words (Chinese, Japanese kana,
/// Korean Hangul): a name in these scripts gets a suffix term at each of them.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'       // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'     // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'     // CJK Unified Ideographs
        | '\u{AC00}'..='\u{D7AF}'     // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'     // CJK Compatibility Ideographs
        | '\u{20000}'..='\u{2A6DF}') // CJK Extension B
}

/// Adds a term unless it is empty or already there.
fn push(t: String, out: &mut Vec<String>) {
    if !t.is_empty() && !out.contains(&t) {
        out.push(t);
    }
}

/// The search terms of a profile, each once, whole terms first (see the module docs).
pub fn terms(p: &UserProfile) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(12);
    let names: Vec<String> = [Some(&p.name), p.en_name.as_ref(), p.nickname.as_ref()]
        .into_iter()
        .flatten()
        .map(|n| normalize(n))
        .collect();
    for n in &names {
        push(n.clone(), &mut out);
    }
    if let Some(name) = names.first() {
        for (full, initials) in pinyin_of(name) {
            push(full, &mut out);
            push(initials, &mut out);
        }
    }
    if let Some(email) = &p.email {
        push(normalize(&email.folded()), &mut out);
    }
    if let Some(mobile) = &p.mobile {
        let m = normalize(mobile.as_str());
        if let Some(national) = m.strip_prefix("+86") {
            push(national.to_owned(), &mut out);
        }
        push(m, &mut out);
    }
    if let Some(no) = &p.employee_no {
        push(normalize(no), &mut out);
    }
    for n in &names {
        for s in suffixes(n) {
            push(s, &mut out);
        }
    }
    out
}

/// Readings of a name's first Chinese character (its surname, as a rule) that are indexed,
/// at most: a polyphonic surname is read differently from the character's most common
/// reading (`曾` is `zeng` as a surname, `ceng` otherwise; `单` `shan`, not `dan`).
const MAX_SURNAME_READINGS: usize = 4;

/// The pinyin of a name with at least one Chinese character, each reading in full
/// (`zhangsan`) with its initials (`zs`); empty for other names. Other letters and digits
/// are kept as they are in both; anything else is dropped, so `张 三` and `张三` read the
/// same. The first Chinese character is read in each of its readings (see
/// `MAX_SURNAME_READINGS`), every later one in its most common reading. A reading with `ü`
/// is also spelled with `v` and with `u` (`吕布`: `lvbu`, `lubu`), as people type it.
fn pinyin_of(name: &str) -> Vec<(String, String)> {
    // The name split at its first Chinese character: what comes before it (shared by every
    // reading), that character's readings, and the common reading of the rest.
    let mut head = (String::new(), String::new());
    let mut surname: Vec<&'static str> = Vec::new();
    let mut tail = (String::new(), String::new());
    for c in name.chars() {
        let part = if surname.is_empty() {
            &mut head
        } else {
            &mut tail
        };
        if surname.is_empty() {
            if let Some(multi) = c.to_pinyin_multi() {
                for p in multi {
                    let plain = p.plain();
                    if !surname.contains(&plain) && surname.len() < MAX_SURNAME_READINGS {
                        surname.push(plain);
                    }
                }
                continue;
            }
        } else if let Some(p) = c.to_pinyin() {
            part.0.push_str(p.plain());
            part.1.push_str(p.first_letter());
            continue;
        }
        if c.is_alphanumeric() {
            part.0.push(c);
            part.1.push(c);
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for reading in surname {
        let full = format!("{}{reading}{}", head.0, tail.0);
        let initial = reading.chars().next().map(String::from).unwrap_or_default();
        let initials = format!("{}{initial}{}", head.1, tail.1);
        let spellings = if full.contains('ü') {
            vec![full.replace('ü', "v"), full.replace('ü', "u"), full]
        } else {
            vec![full]
        };
        for f in spellings {
            if !out.iter().any(|(g, _)| *g == f) {
                out.push((f, initials.clone()));
            }
        }
    }
    out
}

/// The suffix terms of a normalised name: the name read from each later CJK character, and
/// from each later word or punctuation mark.
fn suffixes(name: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = name.char_indices().collect();
    if chars.len() > MAX_SUFFIX_NAME_CHARS {
        return Vec::new();
    }
    let mut out = Vec::new();
    for w in chars.windows(2) {
        let ((_, prev), (at, c)) = (w[0], w[1]);
        // A word starts after a space; punctuation both is a word of its own and ends one
        // (`jean-luc` → `-luc`, `luc`; `100%` → `%`), so that short queries made of
        // punctuation (`%`, `_b`) still find names through a prefix range.
        let punct = |x: char| x != ' ' && !x.is_alphanumeric();
        let word_start = c != ' ' && (prev == ' ' || punct(c) || punct(prev));
        if is_cjk(c) || word_start {
            let mut t = String::with_capacity(name.len() - at + SUFFIX_MARK.len_utf8());
            t.push(SUFFIX_MARK);
            t.push_str(&name[at..]);
            out.push(t);
            if out.len() == MAX_SUFFIXES_PER_NAME {
                break;
            }
        }
    }
    out
}

/// A search query, normalised like the terms it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery(String);

impl SearchQuery {
    /// Normalises a query; an empty or overlong one is `Invalid`.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let q = normalize(s);
        if q.is_empty() {
            return Err(CoreError::invalid("query", "must not be empty"));
        }
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(CoreError::invalid(
                "query",
                format!("must be at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        Ok(Self(q))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the query is long enough for the substring tier.
    pub fn matches_substrings(&self) -> bool {
        self.0.chars().count() >= MIN_SUBSTRING_CHARS
    }

    /// The half-open range `[low, high)` of terms that a tier scans for this query: the
    /// terms starting with the query (whole tier) or with the suffix mark and the query
    /// (suffix tier). `None` for the substring tier, which has no term range.
    pub fn term_range(&self, tier: SearchTier) -> Option<(String, String)> {
        let low = match tier {
            SearchTier::Whole => self.0.clone(),
            SearchTier::Suffix => format!("{SUFFIX_MARK}{}", self.0),
            SearchTier::Substring => return None,
        };
        // No term holds U+10FFFF (normalize removes it), so every term that starts with
        // `low` sorts below `low` followed by it, in code-point (and UTF-8 byte) order.
        let high = format!("{low}\u{10FFFF}");
        Some((low, high))
    }
}

/// The three tiers of results, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SearchTier {
    /// A whole term starts with the query (exact matches first).
    Whole,
    /// A name read from a later character or word starts with the query.
    Suffix,
    /// A whole term contains the query (queries of 3 characters or more).
    Substring,
}

impl SearchTier {
    /// Every tier, best first.
    pub const ALL: [SearchTier; 3] = [Self::Whole, Self::Suffix, Self::Substring];

    /// The tier's rank, 0 for the best.
    pub fn index(self) -> u8 {
        match self {
            Self::Whole => 0,
            Self::Suffix => 1,
            Self::Substring => 2,
        }
    }

    /// The tier of a rank, if there is one.
    pub fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(usize::from(i)).copied()
    }
}

/// A place in the ranked order of results: the tier, the term the user matched by (empty in
/// the substring tier) and the user's key. Results are returned in ascending order of
/// `(tier, term, key)`, with terms compared as strings of code points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SearchCursor {
    /// The tier.
    pub tier: SearchTier,
    /// The matching term (with its suffix mark in the suffix tier; empty in the substring
    /// tier).
    pub term: String,
    /// The user's key.
    pub key: UserKey,
}

impl SearchCursor {
    /// A cursor from its parts, if they are consistent: a whole-tier term has no suffix
    /// mark, a suffix-tier term starts with one, and a substring-tier term is empty. Used by
    /// adapters to check a page token.
    pub fn new(tier: SearchTier, term: String, key: UserKey) -> Option<Self> {
        let ok = match tier {
            SearchTier::Whole => !term.is_empty() && !term.starts_with(SUFFIX_MARK),
            SearchTier::Suffix => term.starts_with(SUFFIX_MARK),
            SearchTier::Substring => term.is_empty(),
        };
        (ok && key.0 >= 0).then_some(Self { tier, term, key })
    }
}

/// Where a user with these terms ranks for `q`: its tier and matching term, or `None` when
/// it does not match. Stores call this on every candidate row, so a user whose terms match
/// in several ways is kept only at its best place.
pub fn position(terms: &[String], q: &SearchQuery) -> Option<(SearchTier, String)> {
    let q = q.as_str();
    let whole = || terms.iter().filter(|t| !t.starts_with(SUFFIX_MARK));
    if let Some(t) = whole().filter(|t| t.starts_with(q)).min() {
        return Some((SearchTier::Whole, t.clone()));
    }
    if let Some(t) = terms
        .iter()
        .filter(|t| {
            t.strip_prefix(SUFFIX_MARK)
                .is_some_and(|rest| rest.starts_with(q))
        })
        .min()
    {
        return Some((SearchTier::Suffix, t.clone()));
    }
    if q.chars().count() >= MIN_SUBSTRING_CHARS && whole().any(|t| t.contains(q)) {
        return Some((SearchTier::Substring, String::new()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{Email, Mobile};

    fn profile(name: &str) -> UserProfile {
        UserProfile {
            name: name.to_owned(),
            ..UserProfile::default()
        }
    }

    fn q(s: &str) -> SearchQuery {
        SearchQuery::parse(s).unwrap()
    }

    #[test]
    fn chinese_names_get_pinyin_initials_and_suffixes() {
        let t = terms(&profile("张三丰"));
        assert_eq!(
            t,
            vec![
                "张三丰".to_owned(),
                "zhangsanfeng".to_owned(),
                "zsf".to_owned(),
                format!("{SUFFIX_MARK}三丰"),
                format!("{SUFFIX_MARK}丰"),
            ]
        );
    }

    #[test]
    fn a_polyphonic_surname_is_read_in_each_reading() {
        for (name, wanted) in [
            ("曾国藩", ["zengguofan", "zgf"]),
            ("曾国藩", ["cengguofan", "cgf"]),
            ("单雄信", ["shanxiongxin", "sxx"]),
            ("单雄信", ["danxiongxin", "dxx"]),
            ("解晓东", ["xiexiaodong", "xxd"]),
        ] {
            let t = terms(&profile(name));
            for w in wanted {
                assert!(t.contains(&w.to_owned()), "{name}: {w} in {t:?}");
            }
        }
        // Only the first character varies: 张三 keeps its one reading and its two terms.
        let t = terms(&profile("张三"));
        assert_eq!(&t[..3], ["张三", "zhangsan", "zs"]);
        assert_eq!(t.len(), 4, "{t:?}");
    }

    #[test]
    fn u_umlaut_is_also_spelled_v_and_u() {
        let t = terms(&profile("吕布"));
        for w in ["lvbu", "lubu", "lübu", "lb"] {
            assert!(t.contains(&w.to_owned()), "{w} in {t:?}");
        }
        let t = terms(&profile("女娲"));
        assert!(
            t.contains(&"nvwa".to_owned()) && t.contains(&"nuwa".to_owned()),
            "{t:?}"
        );
    }

    #[test]
    fn full_width_and_decomposed_forms_normalise_to_the_usual_ones() {
        assert_eq!(normalize("Ｔｏｍ Ｆｕｌｌｗｉｄｔｈ"), "tom fullwidth");
        assert_eq!(normalize("１３９００００００００"), "13900000000");
        assert_eq!(normalize("Rene\u{301}"), normalize("René"));
        assert_eq!(normalize("ｶﾀｶﾅ"), "カタカナ");
        assert_eq!(q("ｚｓ").as_str(), "zs");
        // A query counts its characters after composition.
        assert!(SearchQuery::parse(&"e\u{301}".repeat(40)).is_ok());
    }

    #[test]
    fn latin_names_get_word_suffixes_and_no_pinyin() {
        let mut p = profile("  Mary   ANN Lee ");
        p.en_name = Some("mary ann lee".to_owned());
        let t = terms(&p);
        assert_eq!(
            t,
            vec![
                "mary ann lee".to_owned(),
                format!("{SUFFIX_MARK}ann lee"),
                format!("{SUFFIX_MARK}lee"),
            ]
        );
    }

    #[test]
    fn punctuation_starts_suffixes() {
        let t = terms(&profile("Jean-Luc 100%"));
        assert_eq!(
            t[1..],
            [
                format!("{SUFFIX_MARK}-luc 100%"),
                format!("{SUFFIX_MARK}luc 100%"),
                format!("{SUFFIX_MARK}100%"),
                format!("{SUFFIX_MARK}%"),
            ]
        );
    }

    #[test]
    fn contact_fields_are_terms() {
        let mut p = profile("Bob");
        p.email = Some(Email::parse("email", "Bob.Smith@Example.com").unwrap());
        p.mobile = Some(Mobile::parse("mobile", "+86 138 0013 8000").unwrap());
        p.employee_no = Some("EMP-0042".to_owned());
        let t = terms(&p);
        assert!(t.contains(&"bob.smith@example.com".to_owned()), "{t:?}");
        assert!(t.contains(&"13800138000".to_owned()), "{t:?}");
        assert!(t.contains(&"+8613800138000".to_owned()), "{t:?}");
        assert!(t.contains(&"emp-0042".to_owned()), "{t:?}");
    }

    #[test]
    fn normalisation_removes_reserved_characters_and_folds_case() {
        assert_eq!(normalize(" \"Ÿo\\\u{1}\u{E000}  MAN\t"), "ÿo man");
        assert!(SearchQuery::parse(" \u{E000} ").is_err());
        assert!(SearchQuery::parse(&"x".repeat(255)).is_ok());
        assert!(SearchQuery::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn zhang_san_is_found_by_pinyin_in_full_prefix_and_initials() {
        let t = terms(&profile("张三"));
        for (query, term) in [
            ("zhangsan", "zhangsan"),
            ("zhang", "zhangsan"),
            ("ZS", "zs"),
            ("张", "张三"),
        ] {
            assert_eq!(
                position(&t, &q(query)),
                Some((SearchTier::Whole, term.to_owned())),
                "{query}"
            );
        }
        assert_eq!(
            position(&t, &q("三")),
            Some((SearchTier::Suffix, format!("{SUFFIX_MARK}三")))
        );
        assert_eq!(
            position(&t, &q("gsa")),
            Some((SearchTier::Substring, String::new()))
        );
        assert_eq!(
            position(&t, &q("sa")),
            None,
            "short queries match prefixes only"
        );
        assert_eq!(position(&t, &q("li")), None);
    }

    #[test]
    fn the_best_place_wins() {
        // "zs" is both the initials (exact) and a prefix of nothing else; "z" prefixes the
        // pinyin and the initials, and the smaller term wins.
        let t = terms(&profile("张三"));
        assert_eq!(
            position(&t, &q("z")),
            Some((SearchTier::Whole, "zhangsan".to_owned()))
        );
    }

    #[test]
    fn cursors_order_by_tier_term_and_key() {
        let a = SearchCursor::new(SearchTier::Whole, "zs".into(), UserKey(9)).unwrap();
        let b = SearchCursor::new(SearchTier::Whole, "zsf".into(), UserKey(1)).unwrap();
        let c = SearchCursor::new(SearchTier::Substring, String::new(), UserKey(0)).unwrap();
        assert!(a < b && b < c);
        assert!(SearchCursor::new(SearchTier::Substring, "x".into(), UserKey(1)).is_none());
        assert!(SearchCursor::new(SearchTier::Suffix, "x".into(), UserKey(1)).is_none());
        assert!(SearchCursor::new(SearchTier::Whole, String::new(), UserKey(1)).is_none());
    }

    #[test]
    fn term_ranges_cover_exactly_the_prefixed_terms() {
        let (low, high) = q("zh").term_range(SearchTier::Whole).unwrap();
        for t in ["zh", "zhang", "zh\u{10FFFD}"] {
            assert!(low.as_str() <= t && t < high.as_str(), "{t}");
        }
        assert!("zi" >= high.as_str());
        let (low, _) = q("三").term_range(SearchTier::Suffix).unwrap();
        assert_eq!(low, format!("{SUFFIX_MARK}三"));
        assert!(q("ab").term_range(SearchTier::Substring).is_none());
    }
}
