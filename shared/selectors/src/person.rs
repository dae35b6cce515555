//! Persons: normalised names, Double Metaphone keys and dates of birth — the keys persons are
//! matched on (see [`crate::matching`]) and digested under (see [`crate::blind`]).

use std::fmt;

use interlock_api::common::v1::{Date, Person, PersonName};
use rphonetic::DoubleMetaphone;

use crate::error::SelectorError;
use crate::text::fold_diacritics;

/// Longest name part accepted, in characters.
pub const MAX_NAME_PART_CHARS: usize = 100;

/// Length of the Double Metaphone keys (the algorithm's original length, four sounds).
pub const PHONETIC_KEY_LENGTH: usize = 4;

/// A calendar date of birth, year 1 to 9999.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BirthDate {
    year: u16,
    month: u8,
    day: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        _ => 28,
    }
}

impl BirthDate {
    /// A date from its parts; an error unless it is a real calendar date in years 1 to 9999.
    pub fn new(year: i32, month: i32, day: i32) -> Result<Self, SelectorError> {
        let invalid = |reason: String| SelectorError::InvalidBirthDate { reason };
        let year = u16::try_from(year)
            .ok()
            .filter(|y| (1..=9999).contains(y))
            .ok_or_else(|| invalid("the year must be between 1 and 9999".into()))?;
        let month = u8::try_from(month)
            .ok()
            .filter(|m| (1..=12).contains(m))
            .ok_or_else(|| invalid("the month must be between 1 and 12".into()))?;
        let max_day = days_in_month(year, month);
        let day = u8::try_from(day).ok().filter(|d| (1..=max_day).contains(d)).ok_or_else(|| {
            invalid(format!("the day must be between 1 and {max_day} in month {month} of {year}"))
        })?;
        Ok(BirthDate { year, month, day })
    }

    /// A date from the API. An absent date, or one with all three parts zero (an empty message
    /// as proto3 clients send it), is `None`.
    pub fn from_api(date: Option<&Date>) -> Result<Option<Self>, SelectorError> {
        match date {
            None => Ok(None),
            Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => Ok(None),
            Some(d) => BirthDate::new(d.year, d.month, d.day).map(Some),
        }
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// `YYYY-MM-DD`, the form that is digested.
    pub fn to_iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Debug for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A date of birth is personal data: Debug does not print it.
        f.write_str("BirthDate(<redacted>)")
    }
}

/// The Double Metaphone keys of a name: the primary key and, when it differs, the alternate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneticKeys {
    primary: String,
    alternate: Option<String>,
}

impl PhoneticKeys {
    /// The keys of `letters` (A to Z only). When the algorithm gives no sound at all (names
    /// such as "H" or "W"), the letters themselves are the key.
    fn of(letters: &str) -> Self {
        let result = DoubleMetaphone::new(Some(PHONETIC_KEY_LENGTH)).double_metaphone(letters);
        let primary = result.primary();
        let alternate = result.alternate();
        if primary.is_empty() {
            return PhoneticKeys { primary: letters.to_owned(), alternate: None };
        }
        let alternate = (!alternate.is_empty() && alternate != primary).then_some(alternate);
        PhoneticKeys { primary, alternate }
    }

    /// The primary key.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// The alternate key, when it differs from the primary.
    pub fn alternate(&self) -> Option<&str> {
        self.alternate.as_deref()
    }

    /// The primary key, then the alternate if any: one or two keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.as_str()).chain(self.alternate.as_deref())
    }
}

/// A person's name normalised: upper case, diacritics folded, apostrophes and periods deleted,
/// other punctuation turned into spaces, whitespace collapsed. Empty parts are empty strings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedName {
    given: String,
    middle: String,
    surname: String,
    suffix: String,
}

impl NormalizedName {
    /// Given name.
    pub fn given(&self) -> &str {
        &self.given
    }
    /// Middle name.
    pub fn middle(&self) -> &str {
        &self.middle
    }
    /// Surname.
    pub fn surname(&self) -> &str {
        &self.surname
    }
    /// Suffix (JR, SR, II, III…).
    pub fn suffix(&self) -> &str {
        &self.suffix
    }
}

impl fmt::Debug for NormalizedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalizedName(<redacted>)")
    }
}

/// A person ready to be matched or digested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPerson {
    name: NormalizedName,
    birth_date: Option<BirthDate>,
    surname_keys: PhoneticKeys,
    given_keys: Option<PhoneticKeys>,
}

impl NormalizedPerson {
    /// The normalised name.
    pub fn name(&self) -> &NormalizedName {
        &self.name
    }

    /// The date of birth, when known.
    pub fn birth_date(&self) -> Option<BirthDate> {
        self.birth_date
    }

    /// Double Metaphone keys of the surname (all its words, run together).
    pub fn surname_keys(&self) -> &PhoneticKeys {
        &self.surname_keys
    }

    /// Double Metaphone keys of the first word of the given name; `None` without a given name.
    pub fn given_keys(&self) -> Option<&PhoneticKeys> {
        self.given_keys.as_ref()
    }

    /// The exact normalised full name as it is compared and digested: given, middle, surname
    /// and suffix joined by the unit separator 0x1F.
    pub fn full_name_key(&self) -> String {
        let n = &self.name;
        [&n.given, &n.middle, &n.surname, &n.suffix].map(String::as_str).join("\u{1f}")
    }

    /// The person's match keys in clear, for matching persons whose names the caller holds
    /// (the records service). The deconfliction hub uses [`crate::SelectorKey::blind_person`].
    pub fn keys(&self) -> crate::PersonKeys<String> {
        crate::PersonKeys {
            surname: self.surname_keys.keys().map(str::to_owned).collect(),
            given: self.given_keys.iter().flat_map(PhoneticKeys::keys).map(str::to_owned).collect(),
            birth_date: self.birth_date.map(|d| d.to_iso()),
            full_name: Some(self.full_name_key()),
        }
    }
}

/// Normalises one part of a name. `part` names it in errors.
fn normalize_name_part(part: &'static str, raw: &str) -> Result<String, SelectorError> {
    if raw.chars().count() > MAX_NAME_PART_CHARS {
        return Err(SelectorError::InvalidName {
            part,
            reason: format!("it is longer than {MAX_NAME_PART_CHARS} characters"),
        });
    }
    if raw.chars().any(char::is_control) {
        return Err(SelectorError::InvalidName {
            part,
            reason: "it contains a control character (tab, line break, NUL…)".into(),
        });
    }
    let folded = fold_diacritics(raw);
    let mut cleaned = String::with_capacity(folded.len());
    for c in folded.chars() {
        match c {
            // O'Brien → OBRIEN, St. John → ST JOHN.
            '\'' | '\u{2019}' | '\u{2018}' | '\u{2bc}' | '`' | '.' => {}
            c if c.is_alphanumeric() => cleaned.extend(c.to_uppercase()),
            // Hyphens, commas and other punctuation separate words: Smith-Jones → SMITH JONES.
            _ => cleaned.push(' '),
        }
    }
    Ok(cleaned.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn normalize_suffix(raw: &str) -> Result<String, SelectorError> {
    let suffix = normalize_name_part("suffix", raw)?;
    Ok(match suffix.as_str() {
        "JUNIOR" => "JR".into(),
        "SENIOR" => "SR".into(),
        "2ND" => "II".into(),
        "3RD" => "III".into(),
        "4TH" => "IV".into(),
        "5TH" => "V".into(),
        _ => suffix,
    })
}

/// The letters A to Z of `s`, in order.
fn latin_letters(s: &str) -> String {
    s.chars().filter(char::is_ascii_uppercase).collect()
}

/// Normalises a name and derives its phonetic keys; `birth_date` is the person's date of birth
/// when known. Use it for each alias of a person as well (with the person's date of birth).
pub fn normalize_person_name(
    name: &PersonName,
    birth_date: Option<BirthDate>,
) -> Result<NormalizedPerson, SelectorError> {
    let surname = normalize_name_part("surname", &name.surname)?;
    if surname.is_empty() {
        return Err(SelectorError::SurnameRequired);
    }
    let surname_letters = latin_letters(&surname);
    if surname_letters.is_empty() {
        return Err(SelectorError::NameNotLatin { part: "surname" });
    }
    let given = normalize_name_part("given name", &name.given)?;
    let given_keys = match given.split(' ').next() {
        Some(first) if !first.is_empty() => {
            let letters = latin_letters(first);
            if letters.is_empty() {
                return Err(SelectorError::NameNotLatin { part: "given name" });
            }
            Some(PhoneticKeys::of(&letters))
        }
        _ => None,
    };
    Ok(NormalizedPerson {
        name: NormalizedName {
            given,
            middle: normalize_name_part("middle name", &name.middle)?,
            surname,
            suffix: normalize_suffix(&name.suffix)?,
        },
        birth_date,
        surname_keys: PhoneticKeys::of(&surname_letters),
        given_keys,
    })
}

/// Normalises a person as sent over the API. The name with its surname is required; the date
/// of birth is optional here (the deconfliction hub requires it when it digests the person).
pub fn normalize_person(person: &Person) -> Result<NormalizedPerson, SelectorError> {
    let birth_date = BirthDate::from_api(person.birth_date.as_ref())?;
    let name = person.name.as_ref().ok_or(SelectorError::SurnameRequired)?;
    normalize_person_name(name, birth_date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(given: &str, middle: &str, surname: &str, suffix: &str) -> PersonName {
        PersonName {
            given: given.into(),
            middle: middle.into(),
            surname: surname.into(),
            suffix: suffix.into(),
        }
    }

    fn person(given: &str, surname: &str) -> NormalizedPerson {
        normalize_person_name(&name(given, "", surname, ""), None).expect("valid name")
    }

    fn dm(word: &str) -> (String, Option<String>) {
        let k = PhoneticKeys::of(word);
        (k.primary, k.alternate)
    }

    /// Examples from Lawrence Philips' description of Double Metaphone (C/C++ Users Journal,
    /// June 2000) and the commons-codec port it was checked against.
    #[test]
    fn double_metaphone_reference_examples() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("SMITH", "SM0", Some("XMT")),
            ("SCHMIDT", "XMT", Some("SMT")),
            ("JOSE", "HS", None),
            ("CAESAR", "SSR", None),
            ("KNIGHT", "NT", None),
            ("GOUGH", "KF", None),
            ("LAUGH", "LF", None),
            ("HUGH", "H", None),
            ("MCHUGH", "MK", None),
            ("CAMPBELL", "KMPL", None),
            ("DUMB", "TM", None),
            ("BACCHUS", "PKS", None),
            ("GALLEGOS", "KLKS", Some("KKS")),
            ("TICHNER", "TXNR", Some("TKNR")),
            ("THUMBAIL", "0MPL", Some("TMPL")),
            ("WOMO", "AM", Some("FM")),
            ("JANKELOWICZ", "JNKL", Some("ANKL")),
            ("KUCZEWSKI", "KSSK", Some("KXFS")),
            ("ZHAO", "J", None),
            ("ROGIER", "RJ", Some("RJR")),
            ("XAVIER", "SF", Some("SFR")),
            ("GHISLANE", "JLN", None),
            ("TAGLIARO", "TKLR", Some("TLR")),
            ("CABRILLO", "KPRL", Some("KPR")),
        ];
        for (word, primary, alternate) in cases {
            assert_eq!(dm(word), ((*primary).to_owned(), alternate.map(str::to_owned)), "{word}");
        }
    }

    #[test]
    fn spelling_variants_share_a_key() {
        let share = |a: &str, b: &str| {
            let (ka, kb) = (PhoneticKeys::of(a), PhoneticKeys::of(b));
            ka.keys().any(|k| kb.keys().any(|l| k == l))
        };
        for (a, b) in [
            ("SMITH", "SMYTH"),
            ("SMITH", "SCHMIDT"),
            ("RODRIGUEZ", "RODRIGUES"),
            ("GONZALEZ", "GONZALES"),
            ("HERNANDEZ", "HERNANDES"),
            ("MOHAMMED", "MUHAMMAD"),
            ("MOHAMMED", "MOHAMED"),
            ("CATHERINE", "KATHRYN"),
            ("STEPHEN", "STEVEN"),
            ("PHILIPS", "FILIPS"),
            ("MUELLER", "MILLER"),
            ("JON", "JOHN"),
        ] {
            assert!(share(a, b), "{a} ~ {b}");
        }
        for (a, b) in [("SMITH", "JONES"), ("GARCIA", "MARTINEZ"), ("JOHN", "MARY")] {
            assert!(!share(a, b), "{a} !~ {b}");
        }
    }

    #[test]
    fn names_are_normalised() {
        let p =
            normalize_person_name(&name(" josé  maría ", "de la", "Peña-Núñez", "Jr."), None).expect("valid");
        assert_eq!(p.name().given(), "JOSE MARIA");
        assert_eq!(p.name().middle(), "DE LA");
        assert_eq!(p.name().surname(), "PENA NUNEZ");
        assert_eq!(p.name().suffix(), "JR");
        assert_eq!(p.full_name_key(), "JOSE MARIA\u{1f}DE LA\u{1f}PENA NUNEZ\u{1f}JR");
        // Given-name keys come from the first word only; the surname's from all its words.
        assert_eq!(p.given_keys(), person("Jose", "X").given_keys());
        assert_eq!(p.surname_keys(), person("", "PENANUNEZ").surname_keys());

        assert_eq!(person("", "O'Brien").name().surname(), "OBRIEN");
        assert_eq!(person("", "De La Cruz").surname_keys(), person("", "Delacruz").surname_keys());
        assert_eq!(person("", "Straße").name().surname(), "STRASSE");
        assert_eq!(person("", "Nguyễn").name().surname(), "NGUYEN");
        assert_eq!(person("", "H").surname_keys().primary(), "H");
        for (raw, want) in [("junior", "JR"), ("Sr.", "SR"), ("3rd", "III"), ("IV", "IV")] {
            let p = normalize_person_name(&name("A", "", "B", raw), None).expect("valid");
            assert_eq!(p.name().suffix(), want, "{raw}");
        }
    }

    #[test]
    fn bad_names() {
        let err = |given: &str, surname: &str| {
            normalize_person_name(&name(given, "", surname, ""), None).expect_err(surname)
        };
        assert_eq!(err("John", ""), SelectorError::SurnameRequired);
        assert_eq!(err("John", " - . "), SelectorError::SurnameRequired);
        assert_eq!(err("John", "Иванов"), SelectorError::NameNotLatin { part: "surname" });
        assert_eq!(err("Иван", "Ivanov"), SelectorError::NameNotLatin { part: "given name" });
        assert!(matches!(err("John", &"A".repeat(101)), SelectorError::InvalidName { .. }));
        assert!(matches!(err("Jo\nhn", "Smith"), SelectorError::InvalidName { .. }));
        assert_eq!(normalize_person(&Person::default()), Err(SelectorError::SurnameRequired));
    }

    #[test]
    fn birth_dates() {
        assert_eq!(BirthDate::new(1984, 7, 4).map(|d| d.to_iso()), Ok("1984-07-04".into()));
        assert_eq!(BirthDate::new(1, 1, 1).map(|d| d.to_iso()), Ok("0001-01-01".into()));
        assert!(BirthDate::new(2000, 2, 29).is_ok());
        assert!(BirthDate::new(1900, 2, 29).is_err());
        assert!(BirthDate::new(2023, 2, 29).is_err());
        assert!(BirthDate::new(2023, 4, 31).is_err());
        assert!(BirthDate::new(2023, 13, 1).is_err());
        assert!(BirthDate::new(0, 1, 1).is_err());
        assert!(BirthDate::new(10_000, 1, 1).is_err());
        assert!(BirthDate::new(1984, 7, 0).is_err());
        assert_eq!(BirthDate::from_api(None), Ok(None));
        assert_eq!(BirthDate::from_api(Some(&Date::default())), Ok(None));
        assert!(BirthDate::from_api(Some(&Date { year: 1984, month: 0, day: 4 })).is_err());
        assert_eq!(format!("{:?}", BirthDate::new(1984, 7, 4)), "Ok(BirthDate(<redacted>))");
    }

    #[test]
    fn api_person() {
        let p = normalize_person(&Person {
            name: Some(name("Juan", "", "García", "")),
            birth_date: Some(Date { year: 1984, month: 7, day: 4 }),
            ..Person::default()
        })
        .expect("valid");
        assert_eq!(p.name().surname(), "GARCIA");
        assert_eq!(p.birth_date().map(|d| d.to_iso()).as_deref(), Some("1984-07-04"));
        let keys = p.keys();
        assert_eq!(keys.surname, vec!["KRS".to_owned(), "KRX".to_owned()]);
        assert_eq!(keys.given, vec!["JN".to_owned(), "AN".to_owned()]);
        assert_eq!(keys.birth_date.as_deref(), Some("1984-07-04"));
    }
}
