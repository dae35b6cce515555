//! Tolerant person matching on phonetic keys and date of birth — in clear or on digests.
//!
//! The rules, in order (the first that applies gives the score):
//!
//! | dates of birth | names                                                     | score |
//! |----------------|-----------------------------------------------------------|-------|
//! | differ/missing | anything                                                  | no match |
//! | equal          | identical normalised full names                           | 1.00  |
//! | equal          | surnames and given names share a phonetic key             | 0.95  |
//! | equal          | surname of each shares a key with the given name of the other (transposed) | 0.90 |
//! | equal          | surnames share a key, one side has no given name          | 0.85  |
//! | equal          | surnames share a key, given names differ                  | 0.70  |
//! | equal          | given names share a key, surnames differ                  | 0.60  |
//! | equal          | nothing else                                              | no match |
//!
//! A match counts as a conflict at [`DEFAULT_SCORE_THRESHOLD`] (0.85) and above: a phonetic
//! surname plus the date of birth is the least that is reported. The lower scores exist so a
//! configured lower threshold can surface siblings, aliases and changed surnames.

use interlock_api::deconfliction::v1::PersonMatchBasis;

/// Identical normalised full name and date of birth.
pub const SCORE_EXACT_NAME: f32 = 1.0;
/// Phonetic surname, phonetic given name and date of birth.
pub const SCORE_PHONETIC_SURNAME_AND_GIVEN_NAME: f32 = 0.95;
/// Surname and given name transposed (phonetically) and date of birth.
pub const SCORE_TRANSPOSED_NAMES: f32 = 0.90;
/// Phonetic surname and date of birth, one side without a given name.
pub const SCORE_PHONETIC_SURNAME: f32 = 0.85;
/// Phonetic surname and date of birth, given names that differ (sibling, twin or alias).
pub const SCORE_PHONETIC_SURNAME_OTHER_GIVEN_NAME: f32 = 0.70;
/// Phonetic given name and date of birth, surnames that differ (a changed surname).
pub const SCORE_PHONETIC_GIVEN_NAME_ONLY: f32 = 0.60;

/// The default minimum score for a person match to be a conflict.
pub const DEFAULT_SCORE_THRESHOLD: f32 = 0.85;

/// The scoring rules in one sentence, for `PersonMatchingRules.scoring_description`.
pub const SCORING_DESCRIPTION: &str = "date of birth required and equal; then exact full name = 1.0; phonetic surname + phonetic given name = 0.95; surname and given name transposed = 0.90; phonetic surname, one side without given name = 0.85; phonetic surname, different given name = 0.70; phonetic given name, different surname = 0.60 (Double Metaphone, primary or alternate key)";

/// The match keys of a person: clear text (`T = String`, from
/// [`crate::NormalizedPerson::keys`]) or digests (`T = Digest`, from
/// [`crate::SelectorKey::blind_person`]). Compare only keys of the same form and, for digests,
/// under the same key id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonKeys<T> {
    /// Phonetic keys of the surname: primary, then alternate when different (1 or 2).
    pub surname: Vec<T>,
    /// Phonetic keys of the given name (0 to 2).
    pub given: Vec<T>,
    /// The date of birth (`YYYY-MM-DD` or its digest).
    pub birth_date: Option<T>,
    /// The exact normalised full name (or its digest).
    pub full_name: Option<T>,
}

/// What agreed in a person match (the proto's PersonMatchBasis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchBasis {
    /// Identical normalised full names.
    ExactName,
    /// The surnames share a phonetic key.
    PhoneticSurname,
    /// The given names share a phonetic key.
    PhoneticGivenName,
    /// Identical dates of birth.
    BirthDate,
}

impl From<MatchBasis> for PersonMatchBasis {
    fn from(basis: MatchBasis) -> Self {
        match basis {
            MatchBasis::ExactName => PersonMatchBasis::ExactName,
            MatchBasis::PhoneticSurname => PersonMatchBasis::PhoneticSurname,
            MatchBasis::PhoneticGivenName => PersonMatchBasis::PhoneticGivenName,
            MatchBasis::BirthDate => PersonMatchBasis::BirthDate,
        }
    }
}

/// A tolerant match between two persons.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonMatch {
    /// 0.0 to 1.0; see the module documentation.
    pub score: f32,
    /// Human-readable reason, for example "phonetic surname + date of birth".
    pub reason: String,
    /// What agreed.
    pub bases: Vec<MatchBasis>,
}

impl PersonMatch {
    /// True when the score reaches `threshold` (use [`DEFAULT_SCORE_THRESHOLD`] or the
    /// configured one).
    pub fn is_conflict(&self, threshold: f32) -> bool {
        self.score >= threshold
    }
}

/// A person's match keys wherever they are kept: [`PersonKeys`], or a store's own shape of the
/// same keys, so matching against many stored persons reads them in place instead of copying
/// each into a `PersonKeys` first.
pub trait PersonKeyParts<T> {
    fn surname(&self) -> &[T];
    fn given(&self) -> &[T];
    fn birth_date(&self) -> Option<&T>;
    fn full_name(&self) -> Option<&T>;
}

impl<T> PersonKeyParts<T> for PersonKeys<T> {
    fn surname(&self) -> &[T] {
        &self.surname
    }

    fn given(&self) -> &[T] {
        &self.given
    }

    fn birth_date(&self) -> Option<&T> {
        self.birth_date.as_ref()
    }

    fn full_name(&self) -> Option<&T> {
        self.full_name.as_ref()
    }
}

fn share<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().any(|x| b.contains(x))
}

/// Scores two persons (see the module documentation). `None` when the dates of birth are
/// missing or differ, or when no name part agrees.
pub fn match_persons<T: PartialEq>(
    a: &impl PersonKeyParts<T>,
    b: &impl PersonKeyParts<T>,
) -> Option<PersonMatch> {
    use MatchBasis::{BirthDate, ExactName, PhoneticGivenName, PhoneticSurname};

    match (a.birth_date(), b.birth_date()) {
        (Some(x), Some(y)) if x == y => {}
        _ => return None,
    }
    let surname = share(a.surname(), b.surname());
    let both_given = !a.given().is_empty() && !b.given().is_empty();
    let given = both_given && share(a.given(), b.given());
    let exact = matches!((a.full_name(), b.full_name()), (Some(x), Some(y)) if x == y);
    let transposed = both_given && share(a.surname(), b.given()) && share(a.given(), b.surname());

    let found = |score: f32, reason: &str, bases: &[MatchBasis]| {
        Some(PersonMatch { score, reason: reason.to_owned(), bases: bases.to_vec() })
    };
    if exact {
        let mut bases = vec![ExactName, PhoneticSurname];
        if given {
            bases.push(PhoneticGivenName);
        }
        bases.push(BirthDate);
        return Some(PersonMatch {
            score: SCORE_EXACT_NAME,
            reason: "exact full name + date of birth".to_owned(),
            bases,
        });
    }
    if surname && given {
        return found(
            SCORE_PHONETIC_SURNAME_AND_GIVEN_NAME,
            "phonetic surname + phonetic given name + date of birth",
            &[PhoneticSurname, PhoneticGivenName, BirthDate],
        );
    }
    if transposed {
        return found(
            SCORE_TRANSPOSED_NAMES,
            "surname and given name transposed (phonetic) + date of birth",
            &[PhoneticSurname, PhoneticGivenName, BirthDate],
        );
    }
    if surname && !both_given {
        return found(
            SCORE_PHONETIC_SURNAME,
            "phonetic surname + date of birth (no given name on one side)",
            &[PhoneticSurname, BirthDate],
        );
    }
    if surname {
        return found(
            SCORE_PHONETIC_SURNAME_OTHER_GIVEN_NAME,
            "phonetic surname + date of birth, different given names",
            &[PhoneticSurname, BirthDate],
        );
    }
    if given {
        return found(
            SCORE_PHONETIC_GIVEN_NAME_ONLY,
            "phonetic given name + date of birth, different surnames",
            &[PhoneticGivenName, BirthDate],
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BirthDate, normalize_person_name};
    use interlock_api::common::v1::PersonName;

    fn keys(given: &str, middle: &str, surname: &str, dob: Option<(i32, i32, i32)>) -> PersonKeys<String> {
        let name = PersonName {
            given: given.into(),
            middle: middle.into(),
            surname: surname.into(),
            suffix: String::new(),
        };
        let dob = dob.map(|(y, m, d)| BirthDate::new(y, m, d).expect("valid date"));
        normalize_person_name(&name, dob).expect("valid name").keys()
    }

    const DOB: Option<(i32, i32, i32)> = Some((1984, 7, 4));

    fn score(a: &PersonKeys<String>, b: &PersonKeys<String>) -> Option<f32> {
        let m = match_persons(a, b);
        // Symmetric.
        assert_eq!(m, match_persons(b, a));
        m.map(|m| m.score)
    }

    #[test]
    fn scores() {
        let juan = keys("Juan", "Carlos", "García", DOB);
        assert_eq!(score(&juan, &keys("JUAN", "CARLOS", "GARCIA", DOB)), Some(1.0));
        assert_eq!(score(&juan, &keys("Juan", "", "Garcia", DOB)), Some(0.95));
        assert_eq!(score(&juan, &keys("Jon", "", "Garsia", DOB)), Some(0.95));
        assert_eq!(score(&juan, &keys("Garcia", "", "Juan", DOB)), Some(0.90));
        assert_eq!(score(&juan, &keys("", "", "Garcia", DOB)), Some(0.85));
        assert_eq!(score(&juan, &keys("Maria", "", "Garcia", DOB)), Some(0.70));
        assert_eq!(score(&juan, &keys("Juan", "", "Lopez", DOB)), Some(0.60));
        assert_eq!(score(&juan, &keys("Maria", "", "Lopez", DOB)), None);
        // Date of birth differs or is missing: never a match.
        assert_eq!(score(&juan, &keys("Juan", "Carlos", "Garcia", Some((1984, 4, 7)))), None);
        assert_eq!(score(&juan, &keys("Juan", "Carlos", "Garcia", None)), None);
        assert_eq!(score(&keys("Juan", "", "Garcia", None), &keys("Juan", "", "Garcia", None)), None);
    }

    #[test]
    fn reasons_and_bases() {
        let m = match_persons(&keys("Mohammed", "", "Smith", DOB), &keys("Muhammad", "", "Schmidt", DOB))
            .expect("match");
        assert_eq!(m.score, SCORE_PHONETIC_SURNAME_AND_GIVEN_NAME);
        assert_eq!(m.reason, "phonetic surname + phonetic given name + date of birth");
        assert_eq!(
            m.bases,
            vec![MatchBasis::PhoneticSurname, MatchBasis::PhoneticGivenName, MatchBasis::BirthDate]
        );
        assert!(m.is_conflict(DEFAULT_SCORE_THRESHOLD));
        let m = match_persons(&keys("Ann", "", "Smith", DOB), &keys("Ann", "", "Smith", DOB)).expect("match");
        assert_eq!(
            m.bases,
            vec![
                MatchBasis::ExactName,
                MatchBasis::PhoneticSurname,
                MatchBasis::PhoneticGivenName,
                MatchBasis::BirthDate
            ]
        );
        let m = match_persons(&keys("Ann", "", "Smith", DOB), &keys("Zoe", "", "Smith", DOB)).expect("match");
        assert!(!m.is_conflict(DEFAULT_SCORE_THRESHOLD));
        assert_eq!(PersonMatchBasis::from(MatchBasis::ExactName), PersonMatchBasis::ExactName);
    }

    #[test]
    fn scores_are_ordered_and_threshold_is_the_surname_rule() {
        let ordered = [
            SCORE_EXACT_NAME,
            SCORE_PHONETIC_SURNAME_AND_GIVEN_NAME,
            SCORE_TRANSPOSED_NAMES,
            SCORE_PHONETIC_SURNAME,
            SCORE_PHONETIC_SURNAME_OTHER_GIVEN_NAME,
            SCORE_PHONETIC_GIVEN_NAME_ONLY,
        ];
        assert!(ordered.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(DEFAULT_SCORE_THRESHOLD, SCORE_PHONETIC_SURNAME);
    }
}
