//! Participation figures per agency and period: what users asked for after oversight found that
//! conflicts were detected but nobody tracked whether they were resolved.

use interlock_api::deconfliction::v1::{ConflictSource, OutcomeCount, ParticipationReport};
use interlock_rpc::{now_micros, timestamp_from_micros};

use crate::error::Result;
use crate::service::Deconfliction;

pub async fn participation(
    service: &Deconfliction,
    agency: &str,
    start_us: i64,
    end_us: i64,
) -> Result<ParticipationReport> {
    let store = &service.store;
    let now = now_micros();
    let in_period = |t: i64| (start_us..end_us).contains(&t);
    let mut report = ParticipationReport {
        agency: format!("agencies/{agency}"),
        start_time: Some(timestamp_from_micros(start_us)),
        end_time: Some(timestamp_from_micros(end_us)),
        ..ParticipationReport::default()
    };
    for kind in ["target", "operation"] {
        let mut after = 0;
        loop {
            let page = store.list_registrations(agency, kind, None, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.0.id;
            for (registration, _) in &page {
                let registered = in_period(registration.create_time_us);
                if kind == "target" {
                    report.targets_registered += i64::from(registered);
                    report.targets_renewed += i64::from(registered && registration.renew_count > 0);
                    report.targets_active += i64::from(registration.is_live(now));
                } else {
                    report.operations_registered += i64::from(registered);
                }
            }
        }
    }
    report.checks_performed = store.count_checks(agency, start_us, end_us).await?;

    let mut acknowledge_delays = Vec::new();
    let mut outcomes: std::collections::BTreeMap<i32, i64> = Default::default();
    let mut before = i64::MAX;
    loop {
        let page = store.list_conflicts(Some(agency), before, 1000).await?;
        let Some(last) = page.last() else { break };
        before = last.0.id;
        for (conflict, _) in page.iter().filter(|(c, _)| in_period(c.detect_time_us)) {
            report.conflicts_found += 1;
            match ConflictSource::try_from(conflict.source) {
                Ok(ConflictSource::Target) => report.target_conflicts += 1,
                Ok(ConflictSource::Operation) => report.operation_conflicts += 1,
                Ok(ConflictSource::Record) => report.record_conflicts += 1,
                _ => {}
            }
            match conflict.party_of(agency).and_then(|p| p.acknowledge_time_us) {
                Some(acknowledged) => {
                    report.conflicts_acknowledged += 1;
                    acknowledge_delays.push(acknowledged - conflict.detect_time_us);
                }
                None => report.conflicts_unacknowledged += 1,
            }
            report.conflicts_escalated += i64::from(conflict.escalate_time_us.is_some());
            match &conflict.outcome {
                Some(outcome) => *outcomes.entry(outcome.outcome).or_default() += 1,
                None => report.conflicts_unresolved += 1,
            }
        }
    }
    acknowledge_delays.sort_unstable();
    let percentile = |p: usize| {
        acknowledge_delays.get((acknowledge_delays.len().saturating_sub(1)) * p / 100).map(|us| {
            prost_types::Duration { seconds: us / 1_000_000, nanos: ((us % 1_000_000) * 1_000) as i32 }
        })
    };
    report.median_time_to_acknowledge = percentile(50);
    report.p90_time_to_acknowledge = percentile(90);
    report.outcomes = outcomes.into_iter().map(|(outcome, count)| OutcomeCount { outcome, count }).collect();
    Ok(report)
}
