//! Orchestration: keep the match index in step with the database, register with conflicts
//! decided against an index that is provably current, and act on conflicts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use interlock_api::audit::v1::{Action, InterlockService};
use interlock_api::deconfliction::v1 as pb;
use interlock_audit_client::EventBuilder;
use interlock_auth::{Caller, Purpose};
use interlock_rpc::now_micros;
use interlock_selectors::SelectorKey;
use interlock_storage::{GroupCommit, GroupCommitError};
use tokio::sync::{Mutex, RwLock, watch};

use crate::domain::conflict::{Conflict, DETECTED, ESCALATED, Escalation, HistoryEntry, Refusal};
use crate::domain::index::{Hit, MatchIndex};
use crate::domain::registration::Registration;
use crate::domain::rules::Rules;
use crate::error::{Error, Result};
use crate::store::{CheckRecord, Committed, DeconflictionStore, Event, RegistrationWrite};

/// How many times a registration is decided again when another one landed first.
const STALE_RETRIES: usize = 10;

/// At most this many dry-run checks share one transaction; more wait for the next.
const CHECKS_PER_COMMIT: usize = 1_000;
/// Checks queued for the recorder before callers wait for room (back-pressure, not loss).
const CHECK_QUEUE: usize = 8_192;

pub struct DeconflictionConfig {
    /// The key digests are made with.
    pub key: SelectorKey,
    pub rules: Rules,
    /// How often replicas look for registrations and events written by others.
    pub poll_interval: Duration,
}

struct IndexState {
    index: MatchIndex,
    revision: i64,
}

/// The deconfliction service: store, match index and rules.
pub struct Deconfliction {
    pub(crate) store: Arc<dyn DeconflictionStore>,
    pub(crate) config: DeconflictionConfig,
    index: RwLock<IndexState>,
    /// Serialises this replica's registrations (the database serialises replicas).
    writing: Mutex<()>,
    /// Serialises catch-ups, so concurrent callers share one feed query (see `catch_up`).
    catching_up: Mutex<()>,
    /// Catch-ups begun so far; the number of the latest is its ticket.
    catch_ups_started: AtomicU64,
    /// The ticket of the latest catch-up that succeeded.
    catch_ups_done: AtomicU64,
    /// The group commit of dry-run check records: each check's record, watch events and audit
    /// events are durable before its answer, and concurrent checks share one transaction.
    checks: GroupCommit<CheckRecord, Error, bool>,
}

/// One registration to make, with what it found.
pub struct Registered {
    pub registration: Registration,
    pub revision: i64,
    pub conflicts: Vec<Conflict>,
}

impl Deconfliction {
    /// Builds the match index from the database.
    pub async fn open(store: Arc<dyn DeconflictionStore>, config: DeconflictionConfig) -> Result<Arc<Self>> {
        let revision = store.latest_index_revision().await?;
        let mut index = MatchIndex::default();
        let mut after = 0;
        loop {
            let page = store.scan_registrations(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for registration in page {
                index.upsert(registration);
            }
        }
        tracing::info!(registrations = index.len(), revision, "match index built");
        let recorder = store.clone();
        let checks = GroupCommit::spawn(CHECKS_PER_COMMIT, CHECK_QUEUE, move |records| {
            let store = recorder.clone();
            async move { store.record_checks(records).await }
        });
        let service = Arc::new(Self {
            store,
            config,
            index: RwLock::new(IndexState { index, revision }),
            writing: Mutex::new(()),
            catching_up: Mutex::new(()),
            catch_ups_started: AtomicU64::new(0),
            catch_ups_done: AtomicU64::new(0),
            checks,
        });
        // Changes committed between reading the revision and finishing the scan are re-applied.
        service.catch_up().await?;
        Ok(service)
    }

    pub fn rules(&self) -> &Rules {
        &self.config.rules
    }

    pub fn key(&self) -> &SelectorKey {
        &self.config.key
    }

    /// Applies registrations other replicas (or this one) committed since the index's revision:
    /// on return the index holds everything committed before the call.
    ///
    /// Concurrent callers share the work: a catch-up that *began* after this call did reads the
    /// feed after every commit that preceded the call, so its success covers this caller too. At
    /// thousands of checks per second this turns one feed query per check (~80 µs of driver time
    /// each on SQLite) into one per wave of waiting checks, with the same guarantee.
    pub async fn catch_up(&self) -> Result<()> {
        let arrived = self.catch_ups_started.load(Ordering::Acquire);
        let _one_at_a_time = self.catching_up.lock().await;
        if self.catch_ups_done.load(Ordering::Acquire) > arrived {
            return Ok(());
        }
        let ticket = self.catch_ups_started.fetch_add(1, Ordering::AcqRel) + 1;
        self.read_feed().await?;
        self.catch_ups_done.store(ticket, Ordering::Release);
        Ok(())
    }

    async fn read_feed(&self) -> Result<()> {
        let from = self.index.read().await.revision;
        let changes = self.store.index_changes_after(from, 10_000).await?;
        if changes.is_empty() {
            return Ok(());
        }
        let mut loaded = Vec::with_capacity(changes.len());
        for (revision, id) in &changes {
            if let Some((registration, _)) = self.store.registration(*id).await? {
                loaded.push((*revision, registration));
            }
        }
        let mut state = self.index.write().await;
        for (revision, registration) in loaded {
            if revision > state.revision {
                state.index.upsert(registration);
            }
        }
        state.revision = state.revision.max(changes.last().map_or(from, |(revision, _)| *revision));
        Ok(())
    }

    /// Follows the index feed until `stopped` flips.
    pub async fn follow(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.catch_up().await {
                tracing::warn!(%error, "match index could not catch up; retrying");
            }
            if let Err(error) = self.escalate_due().await {
                tracing::warn!(%error, "escalation pass failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {},
                _ = stopped.changed() => return,
            }
        }
    }

    pub async fn registration(&self, id: i64) -> Option<Arc<Registration>> {
        self.index.read().await.index.get(id).cloned()
    }

    /// Registers (or re-registers, when `expected_revision` is set) each registration and the
    /// conflicts it has with other agencies' live registrations, decided against an index known
    /// to be current at commit time.
    pub async fn register(
        &self,
        caller: &Caller,
        method: &str,
        mut batch: Vec<(Registration, Option<i64>, Option<String>)>,
    ) -> Result<Vec<Registered>> {
        // Numbers first, so the audit events written with the registrations can name them.
        for (registration, _, _) in &mut batch {
            if registration.number.is_empty() {
                registration.number = self.store.next_number(year(now_micros())).await?;
            }
        }
        let _writing = self.writing.lock().await;
        for _ in 0..STALE_RETRIES {
            self.catch_up().await?;
            let now = now_micros();
            let (writes, revision) = {
                let state = self.index.read().await;
                let writes: Vec<RegistrationWrite> = batch
                    .iter()
                    .map(|(registration, expected_revision, request_id)| {
                        let hits = state.index.conflicts(
                            registration,
                            self.config.rules.person_score_threshold,
                            now,
                        );
                        RegistrationWrite {
                            registration: registration.clone(),
                            expected_revision: *expected_revision,
                            request_id: request_id.clone(),
                            conflicts: hits
                                .iter()
                                .map(|hit| self.new_conflict(registration, hit, now))
                                .collect(),
                        }
                    })
                    .collect();
                (writes, state.revision)
            };
            let audit = self.registration_audit(caller, method, &writes);
            match self.store.commit_registrations(revision, year(now), writes, audit).await {
                Ok(committed) => return Ok(self.apply(committed).await),
                Err(Error::Stale) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(Error::Stale)
    }

    async fn apply(&self, committed: Committed) -> Vec<Registered> {
        let mut state = self.index.write().await;
        for (registration, _) in &committed.registrations {
            state.index.upsert(registration.clone());
        }
        state.revision = state.revision.max(committed.index_revision);
        drop(state);
        committed
            .registrations
            .into_iter()
            .map(|(registration, revision)| {
                let conflicts = committed
                    .conflicts
                    .iter()
                    .filter(|c| c.parties[1].registration_id == registration.id)
                    .cloned()
                    .collect();
                Registered { registration, revision, conflicts }
            })
            .collect()
    }

    fn new_conflict(&self, registration: &Registration, hit: &Hit, now: i64) -> Conflict {
        let mut conflict = Conflict::found(registration, hit, now);
        conflict.escalation_due_us = Some(now + self.config.rules.escalation_after_us);
        conflict.history.push(HistoryEntry {
            event_type: DETECTED,
            time_us: now,
            actor_agency: registration.agency.clone(),
            actor_user: String::new(),
            outcome: 0,
            note: String::new(),
        });
        conflict
    }

    fn audit(&self, method: &str, action: Action, caller: &Caller) -> EventBuilder {
        interlock_audit_client::event(InterlockService::Deconfliction, method, action, Some(caller))
    }

    /// One event per registration, and one per conflict found (naming both agencies as owners).
    fn registration_audit(
        &self,
        caller: &Caller,
        method: &str,
        writes: &[RegistrationWrite],
    ) -> Vec<(String, Vec<u8>)> {
        let mut events = Vec::new();
        for write in writes {
            let registration = &write.registration;
            let action = if write.expected_revision.is_some() { Action::Update } else { Action::Create };
            let owner = format!("agencies/{}", registration.agency);
            events.push(
                self.audit(method, action, caller)
                    .resource(registration.number.clone(), vec![owner.clone()])
                    .detail("conflicts", write.conflicts.len().to_string())
                    .encode(),
            );
            for conflict in &write.conflicts {
                let other = &conflict.parties[0];
                events.push(
                    self.audit(method, Action::DeconflictionHit, caller)
                        .resource(other.number.clone(), vec![format!("agencies/{}", other.agency)])
                        .resource(registration.number.clone(), vec![owner.clone()])
                        .encode(),
                );
            }
        }
        events
    }

    /// The conflicts each candidate would have now, without registering them (a dry run): the
    /// other sides of the hits are told someone checked (so nobody probes quietly), and the check
    /// is audited, durably before the answer.
    ///
    /// The answer must reflect everything committed before the call, on any replica. The hits are
    /// first decided against the index as it is, with no feed read: the check's own transaction
    /// (shared with concurrent checks) records it only if the feed holds nothing the index lacks,
    /// which proves the index current. Otherwise the check catches up (a feed read begun after
    /// the call, which is proof enough) and is decided and recorded again, unconditionally, so
    /// registrations landing meanwhile cannot starve it. One database round trip per wave of
    /// checks, not two, while no registration is landing.
    pub async fn dry_run(
        &self,
        caller: &Caller,
        method: &str,
        candidates: &[Registration],
    ) -> Result<Vec<Vec<Hit>>> {
        let (hits, index_revision) = self.decide(candidates).await;
        if self.record_check(caller, method, &hits, Some(index_revision)).await? {
            return Ok(hits);
        }
        self.catch_up().await?;
        let (hits, _) = self.decide(candidates).await;
        self.record_check(caller, method, &hits, None).await?;
        Ok(hits)
    }

    /// Each candidate's hits in the index as it is, and the index revision they were decided at.
    async fn decide(&self, candidates: &[Registration]) -> (Vec<Vec<Hit>>, i64) {
        let state = self.index.read().await;
        let now = now_micros();
        let threshold = self.config.rules.person_score_threshold;
        let hits =
            candidates.iter().map(|candidate| state.index.conflicts(candidate, threshold, now)).collect();
        (hits, state.revision)
    }

    /// Queues a check's record for the group commit; whether it was recorded (see
    /// [`CheckRecord::index_revision`]).
    async fn record_check(
        &self,
        caller: &Caller,
        method: &str,
        hits: &[Vec<Hit>],
        index_revision: Option<i64>,
    ) -> Result<bool> {
        let record = self.check_record(caller, method, hits.iter().flatten(), index_revision);
        self.checks.commit(record).await.map_err(|error| match error {
            GroupCommitError::Failed(error) => Error::GroupCommit(error),
            GroupCommitError::Stopped => {
                Error::GroupCommit(Arc::new(Error::Corrupt("the check recorder stopped".into())))
            }
        })
    }

    fn check_record<'a>(
        &self,
        caller: &Caller,
        method: &str,
        hits: impl Iterator<Item = &'a Hit> + Clone,
        index_revision: Option<i64>,
    ) -> CheckRecord {
        let now = now_micros();
        let events = hits
            .clone()
            .map(|hit| Event {
                sequence: 0,
                audience: hit.other.agency.clone(),
                conflict_id: 0,
                event_type: pb::ConflictEventType::CheckHit as i32,
                actor_agency: caller.agency.clone(),
                time_us: now,
            })
            .collect::<Vec<_>>();
        // One event per check, naming every registration it matched (owners: their agencies, so
        // each side finds the check in its log): a dry run stores no conflict to audit apart.
        let mut event = self
            .audit(method, Action::DeconflictionCheck, caller)
            .detail("hits", events.len().to_string())
            .detail("validate_only", "true");
        for hit in hits {
            event = event.resource(hit.other.number.clone(), vec![format!("agencies/{}", hit.other.agency)]);
        }
        CheckRecord {
            agency: caller.agency.clone(),
            time_us: now,
            index_revision,
            events,
            audit: vec![event.encode()],
        }
    }

    /// Audits notifications a watch stream is about to deliver, durably before they are sent:
    /// one read event per notification, naming its conflict (when it has one) and the
    /// conflict's parties as owners.
    pub async fn record_deliveries(
        &self,
        caller: &Caller,
        method: &str,
        delivered: &[(&Event, Option<&Conflict>)],
    ) -> Result<()> {
        if delivered.is_empty() {
            return Ok(());
        }
        let audit = delivered
            .iter()
            .map(|(event, conflict)| {
                let event_type = pb::ConflictEventType::try_from(event.event_type)
                    .map_or("UNKNOWN", |event_type| event_type.as_str_name());
                let notification = self
                    .audit(method, Action::Read, caller)
                    .purpose_unless_stated(Purpose::Deconfliction)
                    .detail("sequence", event.sequence.to_string())
                    .detail("event_type", event_type);
                let notification = match conflict {
                    Some(conflict) => notification.resource(
                        conflict.name(),
                        conflict.parties.iter().map(|party| format!("agencies/{}", party.agency)).collect(),
                    ),
                    None => notification,
                };
                notification.encode()
            })
            .collect();
        self.store.record_audit(audit).await
    }

    /// A conflict the caller is party to (center administrators and auditors see all);
    /// NOT_FOUND otherwise.
    pub async fn conflict(&self, caller: &Caller, number: &str) -> Result<(Conflict, i64)> {
        let (conflict, revision) = self
            .store
            .conflict_by_number(number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("conflicts/{number}")))?;
        if conflict.party_of(&caller.agency).is_none() && !sees_all(caller) {
            return Err(Error::NotFound(format!("conflicts/{number}")));
        }
        Ok((conflict, revision))
    }

    /// Applies a party's change to a conflict and tells both agencies (and the watch desk when
    /// it concerns an escalation).
    pub async fn change_conflict(
        &self,
        caller: &Caller,
        number: &str,
        etag: &str,
        event_type: i32,
        change: impl Fn(&mut Conflict, i64) -> std::result::Result<(), Refusal>,
    ) -> Result<(Conflict, i64)> {
        for attempt in 0..3 {
            let (mut conflict, revision) = self.conflict(caller, number).await?;
            if attempt == 0 && !etag.is_empty() && etag != format!("\"{revision}\"") {
                return Err(Error::Aborted(conflict.name()));
            }
            let now = now_micros();
            let was_escalated = conflict.escalation == Escalation::Escalated;
            change(&mut conflict, now).map_err(|refusal| match refusal {
                Refusal::NotAParty => Error::PermissionDenied {
                    reason: "NOT_A_PARTY",
                    message: format!("agency {} is not a party to this conflict", caller.agency),
                },
                Refusal::AlreadyAcknowledged => {
                    Error::precondition("ALREADY_ACKNOWLEDGED", "your agency has already acknowledged it")
                }
                Refusal::Invalid(violations) => Error::InvalidArgument(violations),
            })?;
            let mut audiences: Vec<String> = conflict.parties.iter().map(|p| p.agency.clone()).collect();
            if was_escalated {
                audiences.push(String::new());
            }
            let events = audiences
                .into_iter()
                .map(|audience| Event {
                    sequence: 0,
                    audience,
                    conflict_id: conflict.id,
                    event_type,
                    actor_agency: caller.agency.clone(),
                    time_us: now,
                })
                .collect();
            let owners = conflict.parties.iter().map(|p| format!("agencies/{}", p.agency)).collect();
            let audit =
                vec![self.audit("", Action::Update, caller).resource(conflict.name(), owners).encode()];
            match self.store.update_conflict(&conflict, revision, events, audit).await {
                Ok(revision) => return Ok((conflict, revision)),
                Err(Error::Aborted(_)) if etag.is_empty() => continue,
                Err(error) => return Err(error),
            }
        }
        Err(Error::Aborted(format!("conflicts/{number}")))
    }

    /// Escalates every conflict whose acknowledgement is overdue to the center watch desk.
    pub async fn escalate_due(&self) -> Result<()> {
        let now = now_micros();
        for (mut conflict, revision) in self.store.due_escalations(now, 100).await? {
            if !conflict.escalate_if_due(now) {
                // Acknowledged or resolved meanwhile: nothing is due any more.
                conflict.escalation_due_us = None;
                let _ = self.store.update_conflict(&conflict, revision, Vec::new(), Vec::new()).await;
                continue;
            }
            let mut audiences: Vec<String> = conflict.parties.iter().map(|p| p.agency.clone()).collect();
            audiences.push(String::new());
            let events = audiences
                .into_iter()
                .map(|audience| Event {
                    sequence: 0,
                    audience,
                    conflict_id: conflict.id,
                    event_type: ESCALATED,
                    actor_agency: String::new(),
                    time_us: now,
                })
                .collect();
            let owners = conflict.parties.iter().map(|p| format!("agencies/{}", p.agency)).collect();
            let audit = interlock_audit_client::event(
                InterlockService::Deconfliction,
                "",
                Action::PrivilegedAction,
                None,
            )
            .resource(conflict.name(), owners)
            .detail("escalated", "unacknowledged")
            .encode();
            // Another replica may escalate the same conflict first; its update wins.
            match self.store.update_conflict(&conflict, revision, events, vec![audit]).await {
                Ok(_) | Err(Error::Aborted(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// Center administrators and auditors see every conflict.
pub fn sees_all(caller: &Caller) -> bool {
    caller.has_role(interlock_auth::Role::CenterAdministrator)
        || caller.has_role(interlock_auth::Role::CenterAuditor)
}

pub fn year(now_us: i64) -> i32 {
    // Days since 1970 → civil year (Howard Hinnant's algorithm), to avoid a date dependency here.
    let days = now_us.div_euclid(86_400_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn years_from_microseconds() {
        assert_eq!(super::year(0), 1970);
        assert_eq!(super::year(1_795_945_863_000_000), 2026);
        assert_eq!(super::year(1_767_225_599_000_000), 2025, "2025-12-31T23:59:59Z");
        assert_eq!(super::year(1_767_225_600_000_000), 2026, "2026-01-01T00:00:00Z");
    }
}
