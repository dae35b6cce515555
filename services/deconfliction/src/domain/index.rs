//! The in-memory match index: selector digests in a hash map, persons grouped by their
//! date-of-birth digest, operations in an R*-tree over their bounding boxes. Every replica
//! builds it from the database at start-up and follows the change feed, so checks never scan.

use std::sync::Arc;

use interlock_selectors::{MatchBasis, match_persons};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

use crate::domain::geo::Proximity;
use crate::domain::registration::{Hash32, Kind, Registration};

type OperationBox = GeomWithData<Rectangle<[f64; 2]>, i64>;

/// The index's maps hash with foldhash: every check makes a few lookups in maps of up to tens of
/// millions of entries, where SipHash showed in profiles. It is seeded per process, so keys an
/// agency chooses (pre-digested selectors) cannot be aimed at one bucket in advance.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Why two registrations conflict.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// The same normalised identifier (kind and digest).
    Selector { kind: i32, digest: Hash32 },
    /// A person matched by name keys and date of birth; `own_person_id` names the checker's person.
    Person { score: f32, bases: Vec<MatchBasis>, reason: String, own_person_id: String },
    /// Operations in the same place at the same time.
    Proximity(Proximity),
}

/// Another agency's registration that conflicts with the one checked.
#[derive(Clone, Debug)]
pub struct Hit {
    pub other: Arc<Registration>,
    pub matches: Vec<Match>,
}

/// The registrations holding one selector, held directly so a check reaches each candidate
/// without a second lookup by id (at ten million selectors every lookup is a cache miss). Nearly
/// every selector is held by one registration, so that case is kept inline: a `Vec` per entry
/// would add a heap allocation each.
#[derive(Clone, Debug)]
enum Holders {
    One(Arc<Registration>),
    Many(Vec<Arc<Registration>>),
}

impl Holders {
    fn as_slice(&self) -> &[Arc<Registration>] {
        match self {
            Holders::One(registration) => std::slice::from_ref(registration),
            Holders::Many(registrations) => registrations,
        }
    }

    fn push(&mut self, registration: Arc<Registration>) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![first.clone(), registration]),
            Holders::Many(registrations) => registrations.push(registration),
        }
    }

    /// Removes registration `id`; false when none is left.
    fn remove(&mut self, id: i64) -> bool {
        match self {
            Holders::One(only) => only.id != id,
            Holders::Many(registrations) => {
                registrations.retain(|other| other.id != id);
                if let [last] = registrations.as_slice() {
                    *self = Holders::One(last.clone());
                }
                !matches!(self, Holders::Many(left) if left.is_empty())
            }
        }
    }
}

#[derive(Default)]
pub struct MatchIndex {
    registrations: HashMap<i64, Arc<Registration>>,
    selectors: HashMap<(i32, Hash32), Holders>,
    persons_by_birth_date: HashMap<Hash32, Vec<Arc<Registration>>>,
    operations: RTree<OperationBox>,
}

impl MatchIndex {
    pub fn len(&self) -> usize {
        self.registrations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.registrations.is_empty()
    }

    pub fn get(&self, id: i64) -> Option<&Arc<Registration>> {
        self.registrations.get(&id)
    }

    /// Adds or replaces a registration.
    pub fn upsert(&mut self, registration: Registration) {
        self.remove(registration.id);
        let registration = Arc::new(registration);
        for selector in registration.all_selectors() {
            self.selectors
                .entry((selector.kind, selector.digest))
                .and_modify(|holders| holders.push(registration.clone()))
                .or_insert_with(|| Holders::One(registration.clone()));
        }
        for person in &registration.persons {
            if let Some(birth_date) = person.birth_date {
                let holders = self.persons_by_birth_date.entry(birth_date).or_default();
                if !holders.iter().any(|other| other.id == registration.id) {
                    holders.push(registration.clone());
                }
            }
        }
        if let Some(operation) = &registration.operation {
            let (min, max) = operation.footprint.bounding_box();
            self.operations.insert(GeomWithData::new(Rectangle::from_corners(min, max), registration.id));
        }
        self.registrations.insert(registration.id, registration);
    }

    pub fn remove(&mut self, id: i64) {
        let Some(old) = self.registrations.remove(&id) else { return };
        for selector in old.all_selectors() {
            let key = (selector.kind, selector.digest);
            if let Some(holders) = self.selectors.get_mut(&key)
                && !holders.remove(id)
            {
                self.selectors.remove(&key);
            }
        }
        for person in &old.persons {
            if let Some(birth_date) = person.birth_date
                && let Some(holders) = self.persons_by_birth_date.get_mut(&birth_date)
            {
                holders.retain(|other| other.id != id);
                if holders.is_empty() {
                    self.persons_by_birth_date.remove(&birth_date);
                }
            }
        }
        if let Some(operation) = &old.operation {
            let (min, max) = operation.footprint.bounding_box();
            self.operations.remove(&GeomWithData::new(Rectangle::from_corners(min, max), id));
        }
    }

    /// Every live registration of another agency that conflicts with `checked`. Records only
    /// conflict with targets and operations: two agencies' records sharing a phone is what
    /// search is for, not an alarm.
    pub fn conflicts(&self, checked: &Registration, person_threshold: f32, now_us: i64) -> Vec<Hit> {
        let mut hits: HashMap<i64, Hit> = HashMap::default();
        let mut hit = |other: &Arc<Registration>, found: Match| {
            hits.entry(other.id)
                .or_insert_with(|| Hit { other: other.clone(), matches: Vec::new() })
                .matches
                .push(found);
        };
        let eligible = |other: &Registration| {
            other.agency != checked.agency
                && other.is_live(now_us)
                && !(other.kind == Kind::Record && checked.kind == Kind::Record)
        };
        for selector in checked.all_selectors() {
            let holders =
                self.selectors.get(&(selector.kind, selector.digest)).map_or(&[][..], Holders::as_slice);
            for other in holders.iter().filter(|other| eligible(other)) {
                hit(other, Match::Selector { kind: selector.kind, digest: selector.digest });
            }
        }
        for person in &checked.persons {
            let Some(birth_date) = person.birth_date else { continue };
            for other in self.persons_by_birth_date.get(&birth_date).into_iter().flatten() {
                if !eligible(other) {
                    continue;
                }
                let best = other
                    .persons
                    .iter()
                    .filter_map(|theirs| match_persons(person, theirs))
                    .filter(|found| found.is_conflict(person_threshold))
                    .max_by(|a, b| a.score.total_cmp(&b.score));
                if let Some(found) = best {
                    hit(
                        other,
                        Match::Person {
                            score: found.score,
                            bases: found.bases,
                            reason: found.reason,
                            own_person_id: person.id.clone(),
                        },
                    );
                }
            }
        }
        if let Some(operation) = &checked.operation {
            let (min, max) = operation.footprint.bounding_box();
            for candidate in self.operations.locate_in_envelope_intersecting(AABB::from_corners(min, max)) {
                let Some(other) = self.registrations.get(&candidate.data).filter(|other| eligible(other))
                else {
                    continue;
                };
                let Some(theirs) = &other.operation else { continue };
                if let Some(proximity) = operation.footprint.collides_with(&theirs.footprint) {
                    hit(other, Match::Proximity(proximity));
                }
            }
        }
        let mut hits: Vec<Hit> = hits.into_values().collect();
        hits.sort_by(|a, b| a.other.number.cmp(&b.other.number));
        hits
    }
}

#[cfg(test)]
mod tests;
