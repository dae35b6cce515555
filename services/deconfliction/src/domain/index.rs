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

/// The registrations holding one selector. Nearly every selector is held by one registration,
/// so that case is kept inline: at ten million selectors a `Vec` per entry would add a heap
/// allocation (~48 bytes with the allocator's overhead) each.
#[derive(Clone, Debug)]
enum Ids {
    One(i64),
    Many(Vec<i64>),
}

impl Ids {
    fn as_slice(&self) -> &[i64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn push(&mut self, id: i64) {
        match self {
            Ids::One(first) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; false when none is left.
    fn remove(&mut self, id: i64) -> bool {
        match self {
            Ids::One(only) => *only != id,
            Ids::Many(ids) => {
                ids.retain(|other| *other != id);
                if let [last] = ids.as_slice() {
                    *self = Ids::One(*last);
                }
                !ids_empty(self)
            }
        }
    }
}

fn ids_empty(ids: &Ids) -> bool {
    matches!(ids, Ids::Many(ids) if ids.is_empty())
}

#[derive(Default)]
pub struct MatchIndex {
    registrations: HashMap<i64, Arc<Registration>>,
    selectors: HashMap<(i32, Hash32), Ids>,
    persons_by_birth_date: HashMap<Hash32, Vec<i64>>,
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
        let id = registration.id;
        for selector in registration.all_selectors() {
            self.selectors
                .entry((selector.kind, selector.digest))
                .and_modify(|ids| ids.push(id))
                .or_insert(Ids::One(id));
        }
        for person in &registration.persons {
            if let Some(birth_date) = person.birth_date {
                let ids = self.persons_by_birth_date.entry(birth_date).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if let Some(operation) = &registration.operation {
            let (min, max) = operation.footprint.bounding_box();
            self.operations.insert(GeomWithData::new(Rectangle::from_corners(min, max), id));
        }
        self.registrations.insert(id, Arc::new(registration));
    }

    pub fn remove(&mut self, id: i64) {
        let Some(old) = self.registrations.remove(&id) else { return };
        for selector in old.all_selectors() {
            let key = (selector.kind, selector.digest);
            if let Some(ids) = self.selectors.get_mut(&key)
                && !ids.remove(id)
            {
                self.selectors.remove(&key);
            }
        }
        for person in &old.persons {
            if let Some(birth_date) = person.birth_date
                && let Some(ids) = self.persons_by_birth_date.get_mut(&birth_date)
            {
                ids.retain(|other| *other != id);
                if ids.is_empty() {
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
        let mut hits: HashMap<i64, Vec<Match>> = HashMap::default();
        let eligible = |other: &Registration| {
            other.agency != checked.agency
                && other.is_live(now_us)
                && !(other.kind == Kind::Record && checked.kind == Kind::Record)
        };
        for selector in checked.all_selectors() {
            let ids = self.selectors.get(&(selector.kind, selector.digest)).map_or(&[][..], Ids::as_slice);
            for id in ids {
                if self.registrations.get(id).is_some_and(|other| eligible(other)) {
                    hits.entry(*id)
                        .or_default()
                        .push(Match::Selector { kind: selector.kind, digest: selector.digest });
                }
            }
        }
        for person in &checked.persons {
            let Some(birth_date) = person.birth_date else { continue };
            let keys = person.keys();
            for id in self.persons_by_birth_date.get(&birth_date).into_iter().flatten() {
                let Some(other) = self.registrations.get(id).filter(|other| eligible(other)) else {
                    continue;
                };
                let best = other
                    .persons
                    .iter()
                    .filter_map(|theirs| match_persons(&keys, &theirs.keys()))
                    .filter(|found| found.is_conflict(person_threshold))
                    .max_by(|a, b| a.score.total_cmp(&b.score));
                if let Some(found) = best {
                    hits.entry(*id).or_default().push(Match::Person {
                        score: found.score,
                        bases: found.bases,
                        reason: found.reason,
                        own_person_id: person.id.clone(),
                    });
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
                    hits.entry(candidate.data).or_default().push(Match::Proximity(proximity));
                }
            }
        }
        let mut hits: Vec<Hit> = hits
            .into_iter()
            .filter_map(|(id, matches)| {
                self.registrations.get(&id).map(|other| Hit { other: other.clone(), matches })
            })
            .collect();
        hits.sort_by(|a, b| a.other.number.cmp(&b.other.number));
        hits
    }
}

#[cfg(test)]
mod tests;
