//! Registering records' selectors with the deconfliction service, so another agency's target on
//! the same phone, plate or person finds the record's owner. Every write queues its record in
//! the `deconfliction_outbox` (same transaction); this relay sends the record's current state —
//! registered, or withdrawn when deleted or marked no-deconfliction-pointer — with retries.

use std::collections::BTreeMap;
use std::sync::Arc;

use interlock_api::common::v1::Caveat;
use interlock_api::deconfliction::v1::record_selector_service_client::RecordSelectorServiceClient;
use interlock_api::deconfliction::v1::{
    RecordSelectorSet, RegisterRecordSelectorsRequest, WithdrawRecordSelectorsRequest,
};
use interlock_auth::MeshChannel;
use interlock_rpc::timestamp_from_micros;
use tokio::sync::watch;

use super::{Records, to_record};
use crate::domain::record::caveat_bit;

const BATCH: u32 = 200;

/// Delivers the deconfliction outbox until `stopped` flips.
pub async fn follow(
    records: Arc<Records>,
    deconfliction: RecordSelectorServiceClient<MeshChannel>,
    stopped: watch::Receiver<bool>,
) {
    let records = &records;
    let deconfliction = &deconfliction;
    interlock_audit_client::deliver_until_stopped("record selectors", stopped, || {
        let mut client = deconfliction.clone();
        async move { deliver_once(records, &mut client).await }
    })
    .await;
}

/// Sends one batch of queued records; returns how many queue entries were settled.
pub async fn deliver_once(
    records: &Records,
    deconfliction: &mut RecordSelectorServiceClient<MeshChannel>,
) -> Result<usize, String> {
    let pending = records.store.pending_deconfliction(BATCH).await.map_err(|e| e.to_string())?;
    if pending.is_empty() {
        return Ok(0);
    }
    // A record queued several times is sent once, as it is now.
    let ids: BTreeMap<&str, ()> = pending.iter().map(|(_, id)| (id.as_str(), ())).collect();
    let mut register = Vec::new();
    let mut withdraw = Vec::new();
    for id in ids.keys() {
        let Some(stored) = records.store.get(id).await.map_err(|e| e.to_string())? else { continue };
        let name = format!("records/{id}");
        let opted_out = stored.caveats & caveat_bit(Caveat::NoDeconflictionPointer as i32) != 0;
        if stored.deleted || opted_out {
            withdraw.push(name);
            continue;
        }
        let record = to_record(&stored).map_err(|e| e.to_string())?;
        register.push(RecordSelectorSet {
            record: name,
            record_version: stored.version,
            owner_agency: format!("agencies/{}", stored.owner),
            owner_contact: records.directory.duty_desk(&stored.owner).await,
            selectors: record.selectors.iter().filter_map(|s| s.selector.clone()).collect(),
            persons: record
                .persons
                .iter()
                .filter_map(|p| p.person.clone())
                .filter(|p| p.birth_date.is_some())
                .collect(),
            expire_time: Some(timestamp_from_micros(stored.review_by_us)),
            ..RecordSelectorSet::default()
        });
    }
    if !register.is_empty() {
        deconfliction
            .register_record_selectors(RegisterRecordSelectorsRequest { records: register })
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    }
    if !withdraw.is_empty() {
        deconfliction
            .withdraw_record_selectors(WithdrawRecordSelectorsRequest { records: withdraw })
            .await
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    }
    let sequences: Vec<i64> = pending.iter().map(|(seq, _)| *seq).collect();
    records.store.remove_deconfliction(&sequences).await.map_err(|e| e.to_string())?;
    Ok(sequences.len())
}
