//! Reads: Get, the owner's listings, Search under the agreements, notifications, and the
//! operator's purge and summary.

use interlock_api::audit::v1::{Action, Outcome};
use interlock_api::common::v1::AccessLevel;
use interlock_api::records::v1::{
    AccessNotification, Record, RecordCount, RecordSelector, RecordVersion, SearchKind,
};
use interlock_auth::{Caller, Purpose};
use interlock_rpc::{now_micros, timestamp_from_micros};
use interlock_selectors::{normalize, normalize_person, normalize_selector};
use prost::Message;

use super::{Records, record_id, to_record};
use crate::domain::access::{Decision, RecordFacts, decide, shape};
use crate::domain::query::matches_visible;
use crate::domain::record::{IndexedSelector, caveats_of};
use crate::error::{Error, Result};
use crate::store::{
    ListFilter, Match, Notification, NotificationFilter, ReadRecord, SearchFilter, StoredRecord,
    StoredVersion,
};

/// One page of a search.
pub struct SearchPage {
    pub records: Vec<Record>,
    /// Whether more candidates follow.
    pub more: bool,
}

fn search_kind(query: &Match) -> SearchKind {
    match query {
        Match::Selectors(_) => SearchKind::Selector,
        Match::Person { .. } => SearchKind::Person,
        Match::Text(_) => SearchKind::Text,
    }
}

/// The record's selectors (and persons' identification numbers) in `query`'s normalised set.
fn matched_selectors(record: &Record, wanted: &[IndexedSelector]) -> Vec<RecordSelector> {
    let mut matched: Vec<RecordSelector> = record
        .selectors
        .iter()
        .filter(|s| {
            s.selector.as_ref().is_some_and(|sel| {
                wanted.iter().any(|w| {
                    w.kind == sel.kind && w.value == s.normalized_value && w.region == s.normalized_region
                })
            })
        })
        .cloned()
        .collect();
    for person in record.persons.iter().filter_map(|p| p.person.as_ref()) {
        for id in &person.identifications {
            let category = interlock_api::common::v1::IdentificationCategory::try_from(id.category)
                .map(|c| c.as_str_name())
                .unwrap_or_default();
            let Ok(n) =
                normalize(interlock_selectors::SelectorKind::IdentificationNumber, &id.number, category)
            else {
                continue;
            };
            if wanted
                .iter()
                .any(|w| w.kind == n.kind() as i32 && w.value == n.value() && w.region == n.region())
            {
                matched.push(RecordSelector {
                    selector: Some(interlock_api::common::v1::Selector {
                        kind: n.kind() as i32,
                        value: id.number.clone(),
                        region: category.to_owned(),
                    }),
                    normalized_value: n.value().to_owned(),
                    normalized_region: n.region().to_owned(),
                    entity_id: String::new(),
                });
            }
        }
    }
    matched
}

/// Whether a shaped (possibly redacted) record still matches the query through what the reader
/// sees: nothing may be found through a withheld field.
fn still_matches(query: &Match, shaped: &Record) -> bool {
    match query {
        Match::Selectors(wanted) => !matched_selectors(shaped, wanted).is_empty(),
        Match::Person { surname, given, .. } => shaped.persons.iter().any(|p| {
            let names = p
                .person
                .iter()
                .filter_map(|person| normalize_person(person).ok())
                .map(|n| (n.name().surname().to_owned(), n.name().given().to_owned()));
            let aliases = p
                .aliases
                .iter()
                .filter_map(|a| interlock_selectors::normalize_person_name(a, None).ok())
                .map(|n| (n.name().surname().to_owned(), n.name().given().to_owned()));
            names.chain(aliases).any(|(s, g)| &s == surname && (given.is_empty() || &g == given))
        }),
        Match::Text(terms) => {
            let narrative_visible =
                !shaped.access.as_ref().is_some_and(|a| a.withheld_fields.iter().any(|f| f == "narrative"));
            narrative_visible || matches_visible(terms, &shaped.title)
        }
    }
}

fn facts<'a>(stored: &'a StoredRecord, caveats: &'a [i32]) -> RecordFacts<'a> {
    RecordFacts { owner: &stored.owner, category: stored.category, sensitivity: stored.sensitivity, caveats }
}

impl Records {
    /// Makes a read's audit events (and notifications) durable; refuses the read otherwise.
    async fn audit_read(
        &self,
        events: Vec<(String, Vec<u8>)>,
        notifications: Vec<Notification>,
    ) -> Result<()> {
        let read = ReadRecord { audit_events: events, notifications };
        self.reads.commit(read).await.map_err(|error| {
            tracing::error!(?error, "cannot make a read's audit event durable: refusing the read");
            Error::AuditUnavailable
        })
    }

    /// GetRecord, shaped by the access decision.
    pub async fn get(&self, caller: &Caller, purpose: Purpose, name: &str) -> Result<Record> {
        let id = record_id(name, "name")?;
        let now = now_micros();
        let stored = self.store.get(id).await?.filter(|r| !r.deleted);
        let event = Records::event("GetRecord", Action::Read, caller);
        let Some(stored) = stored else {
            let event = event.outcome(Outcome::Denied, "RECORD_NOT_FOUND").detail("record", name);
            self.audit_read(vec![event.encode()], vec![]).await?;
            return Err(Error::RecordNotFound);
        };
        let caveats = caveats_of(stored.caveats);
        let grants = self.grants.grants_for(&caller.agency);
        let decision = if stored.owner != caller.agency && stored.review_by_us <= now {
            Decision::Hidden
        } else {
            decide(&caller.agency, purpose.to_proto() as i32, facts(&stored, &caveats), &grants, now)
        };
        let owners = vec![format!("agencies/{}", stored.owner)];
        let resource = format!("records/{}", stored.id);
        let event = match &decision {
            Decision::Hidden => {
                let event = event.outcome(Outcome::Denied, "RECORD_NOT_FOUND").resource(resource, owners);
                self.audit_read(vec![event.encode()], vec![]).await?;
                return Err(Error::RecordNotFound);
            }
            Decision::Owner => event.resource(resource, owners),
            Decision::Granted { grant, level } => event
                .granted_resource(resource, owners, &grant.agreement, grant.agreement_version)
                .detail("access_level", level.as_str_name()),
        };
        let mut record =
            shape(to_record(&stored)?, &decision, purpose.to_proto() as i32).ok_or(Error::RecordNotFound)?;
        if decision != Decision::Owner
            && let Some(access) = record.access.as_mut()
        {
            access.owner_contact = self.directory.duty_desk(&stored.owner).await;
        }
        self.audit_read(vec![event.encode()], vec![]).await?;
        Ok(record)
    }

    /// ListRecords: the caller's own records.
    pub async fn list_own(
        &self,
        caller: &Caller,
        filter: &ListFilter,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<(Vec<Record>, bool)> {
        let mut rows = self.store.list_own(&caller.agency, filter, after, now_micros(), limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut event =
            Records::event("ListRecords", Action::Read, caller).detail("count", rows.len().to_string());
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            event = event.resource(format!("records/{}", row.id), vec![caller.agency_name()]);
            records.push(shape(to_record(row)?, &Decision::Owner, 0).ok_or(Error::RecordNotFound)?);
        }
        self.audit_read(vec![event.encode()], vec![]).await?;
        Ok((records, more))
    }

    /// ListRecordVersions: owner only; NOT_FOUND for anyone else.
    pub async fn versions(
        &self,
        caller: &Caller,
        parent: &str,
        before_version: i64,
        limit: u32,
    ) -> Result<(Vec<RecordVersion>, bool)> {
        let id = record_id(parent, "parent")?;
        let stored =
            self.store.get(id).await?.filter(|r| r.owner == caller.agency).ok_or(Error::RecordNotFound)?;
        let mut rows = self.store.versions(id, before_version, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let versions = rows
            .iter()
            .map(|v: &StoredVersion| {
                let record = match &v.doc {
                    Some(doc) => Some(to_record(&StoredRecord {
                        doc: doc.clone(),
                        version: v.version,
                        update_us: v.create_us,
                        ..stored.clone()
                    })?),
                    None => None,
                };
                Ok(RecordVersion {
                    name: format!("records/{id}/versions/{}", v.version),
                    version: v.version,
                    change: v.change,
                    record,
                    create_time: Some(timestamp_from_micros(v.create_us)),
                    user: v.user.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let event = Records::event("ListRecordVersions", Action::Read, caller)
            .resource(format!("records/{id}"), vec![caller.agency_name()]);
        self.audit_read(vec![event.encode()], vec![]).await?;
        Ok((versions, more))
    }

    /// One page of SearchRecords: candidates from the index, each decided with the caller's
    /// grants as they are now (so a revocation applies from the next page on), shaped, and the
    /// owners of restricted matches notified.
    pub async fn search(
        &self,
        caller: &Caller,
        purpose: Purpose,
        query: &Match,
        filter: &SearchFilter,
        offset: u64,
        limit: u32,
    ) -> Result<SearchPage> {
        let now = now_micros();
        let rows = self.store.search(query, filter, now, offset, limit).await?;
        let more = rows.len() == limit as usize;
        let grants = self.grants.grants_for(&caller.agency);
        let purpose_value = purpose.to_proto() as i32;
        let kind = search_kind(query);
        let mut event = Records::event("SearchRecords", Action::Search, caller)
            .detail("search_kind", kind.as_str_name())
            .detail("offset", offset.to_string());
        let mut records = Vec::new();
        let mut notifications = Vec::new();
        for stored in &rows {
            let caveats = caveats_of(stored.caveats);
            let decision = decide(&caller.agency, purpose_value, facts(stored, &caveats), &grants, now);
            let full = to_record(stored)?;
            let shaped = shape(full.clone(), &decision, purpose_value)
                .filter(|_| !(kind == SearchKind::Text && decision.level() == AccessLevel::Pointer))
                .filter(|r| decision.level() == AccessLevel::Pointer || still_matches(query, r));
            let owners = vec![format!("agencies/{}", stored.owner)];
            let resource = format!("records/{}", stored.id);
            match (&shaped, &decision) {
                (Some(_), Decision::Owner) => event = event.resource(resource, owners),
                (Some(_), Decision::Granted { grant, .. }) => {
                    event =
                        event.granted_resource(resource, owners, &grant.agreement, grant.agreement_version);
                }
                _ => {}
            }
            let delivered = if shaped.is_some() { decision.level() } else { AccessLevel::Unspecified };
            if stored.owner != caller.agency
                && matches!(delivered, AccessLevel::Pointer | AccessLevel::Unspecified)
            {
                let matched = match query {
                    Match::Selectors(wanted) => matched_selectors(&full, wanted),
                    _ => vec![],
                };
                notifications.push(Notification {
                    seq: 0,
                    id: uuid::Uuid::now_v7().simple().to_string(),
                    owner: stored.owner.clone(),
                    record_id: stored.id.clone(),
                    record_number: stored.record_number.clone(),
                    searcher_agency: caller.agency.clone(),
                    searcher_user: caller.user.clone().unwrap_or_default(),
                    search_us: now,
                    purpose: purpose_value,
                    case_reference: caller.case_reference.clone().unwrap_or_default(),
                    search_kind: kind as i32,
                    matched: Record { selectors: matched, ..Record::default() }.encode_to_vec(),
                    access_level: delivered as i32,
                });
            }
            if let Some(mut record) = shaped {
                if decision != Decision::Owner
                    && let Some(access) = record.access.as_mut()
                {
                    access.owner_contact = self.directory.duty_desk(&stored.owner).await;
                }
                records.push(record);
            }
        }
        event = event.detail("result_count", records.len().to_string());
        self.audit_read(vec![event.encode()], notifications).await?;
        Ok(SearchPage { records, more })
    }

    /// ListAccessNotifications: the caller's notices, newest first.
    pub async fn notifications(
        &self,
        caller: &Caller,
        filter: &NotificationFilter,
        before_seq: i64,
        limit: u32,
    ) -> Result<(Vec<AccessNotification>, Option<i64>)> {
        let mut rows = self.store.notifications(&caller.agency, filter, before_seq, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|n| n.seq) } else { None };
        let mut out = Vec::with_capacity(rows.len());
        for n in rows {
            let matched = Record::decode(n.matched.as_slice())?.selectors;
            out.push(AccessNotification {
                name: format!("accessNotifications/{}", n.id),
                record: format!("records/{}", n.record_id),
                record_number: n.record_number,
                searcher_agency: format!("agencies/{}", n.searcher_agency),
                searcher_user: n.searcher_user,
                searcher_contact: self.directory.duty_desk(&n.searcher_agency).await,
                search_time: Some(timestamp_from_micros(n.search_us)),
                purpose: n.purpose,
                case_reference: n.case_reference,
                search_kind: n.search_kind,
                matched_selectors: matched,
                access_level: n.access_level,
            });
        }
        let event = Records::event("ListAccessNotifications", Action::Read, caller)
            .detail("count", out.len().to_string());
        self.audit_read(vec![event.encode()], vec![]).await?;
        Ok((out, next))
    }

    /// PurgeExpiredRecords: each purged record audited, and the call.
    pub async fn purge(
        &self,
        caller: &Caller,
        before_us: i64,
        owners: &[String],
        max: u32,
        validate_only: bool,
    ) -> Result<(i64, bool)> {
        let mut expired = self.store.expired(before_us, owners, max + 1).await?;
        let more = expired.len() > max as usize;
        expired.truncate(max as usize);
        let call = Records::event("PurgeExpiredRecords", Action::PrivilegedAction, caller)
            .detail("purged_count", expired.len().to_string())
            .detail("validate_only", validate_only.to_string());
        if validate_only {
            self.audit_read(vec![call.encode()], vec![]).await?;
            return Ok((expired.len() as i64, more));
        }
        let mut events = vec![call.encode()];
        for record in &expired {
            events.push(
                Records::event("PurgeExpiredRecords", Action::Delete, caller)
                    .resource(format!("records/{}", record.id), vec![format!("agencies/{}", record.owner)])
                    .detail("record_number", record.record_number.clone())
                    .detail("review_by_time_us", record.review_by_us.to_string())
                    .encode(),
            );
        }
        let ids: Vec<String> = expired.iter().map(|r| r.id.clone()).collect();
        self.store.purge(&ids, events).await?;
        Ok((ids.len() as i64, more))
    }

    /// SummarizeRecords.
    pub async fn summarize(
        &self,
        caller: &Caller,
        owners: &[String],
        categories: &[i32],
        max_sensitivity: Option<i32>,
    ) -> Result<Vec<RecordCount>> {
        let rows = self.store.summarize(owners, categories, max_sensitivity, now_micros()).await?;
        let event =
            Records::event("SummarizeRecords", Action::Read, caller).detail("owners", owners.join(","));
        self.audit_read(vec![event.encode()], vec![]).await?;
        Ok(rows
            .into_iter()
            .map(|r| RecordCount {
                owner: format!("agencies/{}", r.owner),
                category: r.category,
                sensitivity: r.sensitivity,
                record_count: r.records,
                originator_controlled_count: r.originator_controlled,
                title_iii_count: r.title_iii,
                originator_controlled_and_title_iii_count: r.both,
            })
            .collect())
    }
}

/// The normalised query of a SelectorQuery; violations on `selector_query.selectors[i]`.
pub fn selector_match(selectors: &[interlock_api::common::v1::Selector]) -> Result<Match> {
    let mut v = interlock_rpc::FieldViolations::new();
    if selectors.is_empty() || selectors.len() > 50 {
        v.add("selector_query.selectors", "send 1 to 50 selectors");
    }
    let mut wanted = Vec::new();
    for (i, selector) in selectors.iter().enumerate() {
        match normalize_selector(selector) {
            Ok(n) => wanted.push(IndexedSelector {
                kind: n.kind() as i32,
                region: n.region().to_owned(),
                value: n.value().to_owned(),
            }),
            Err(error) => v.add_with_reason(
                error.reason(),
                format!("selector_query.selectors[{i}].value"),
                error.to_string(),
            ),
        }
    }
    if !v.is_empty() {
        return Err(v.into());
    }
    Ok(Match::Selectors(wanted))
}
