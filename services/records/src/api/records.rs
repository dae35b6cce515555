use std::sync::Arc;
use std::time::Duration;

use interlock_api::records::v1::records_service_server::RecordsService;
use interlock_api::records::v1::*;
use interlock_auth::{Caller, Role};
use interlock_rpc::{PageToken, micros_from_timestamp, now_micros, page_size};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use super::agency_code;
use crate::domain::query;
use crate::error::Error;
use crate::service::reads::selector_match;
use crate::service::{IngestPipeline, Records};
use crate::store::{ListFilter, Match, NotificationFilter, SearchFilter};

/// Search page tokens expire after an hour.
const SEARCH_TOKEN_TTL_US: i64 = 3_600_000_000;
/// Batches a client may keep unacknowledged on an ingest stream.
const MAX_BATCHES_IN_FLIGHT: i32 = 4;
const MAX_BATCH_RECORDS: usize = 1000;

pub(super) struct RecordsApi {
    pub records: Arc<Records>,
}

/// Every RecordsService call: an agency member naming its user.
fn member<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = Caller::of(request)?.clone();
    super::require_role(&caller, &[Role::AgencyMember])?;
    caller.require_user()?;
    Ok(caller)
}

#[derive(Serialize, Deserialize)]
struct SearchCursor {
    /// Hash of the query, filters and purpose the token belongs to.
    query: String,
    offset: u64,
    issued_us: i64,
}

fn range(range: &Option<TimeRange>, field: &str) -> Result<(Option<i64>, Option<i64>), Status> {
    let Some(range) = range else { return Ok((None, None)) };
    let start = range.start_time.as_ref().map(micros_from_timestamp);
    let end = range.end_time.as_ref().map(micros_from_timestamp);
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        return Err(Error::invalid(&format!("{field}.end_time"), "must be after start_time").into());
    }
    Ok((start, end))
}

#[tonic::async_trait]
impl RecordsService for RecordsApi {
    type IngestRecordsStream = tonic::codegen::BoxStream<IngestRecordsResponse>;

    async fn create_record(
        &self,
        request: Request<CreateRecordRequest>,
    ) -> Result<Response<CreateRecordResponse>, Status> {
        let caller = member(&request)?;
        let request = request.into_inner();
        let record = request.record.ok_or_else(|| Error::invalid("record", "is required"))?;
        let written = self.records.create(&caller, record, &request.request_id).await?;
        Ok(Response::new(CreateRecordResponse {
            record: Some(written.record),
            outcome: written.outcome as i32,
        }))
    }

    async fn get_record(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<GetRecordResponse>, Status> {
        let caller = member(&request)?;
        let purpose = caller.require_purpose()?;
        let record = self.records.get(&caller, purpose, &request.get_ref().name).await?;
        Ok(Response::new(GetRecordResponse { record: Some(record) }))
    }

    async fn update_record(
        &self,
        request: Request<UpdateRecordRequest>,
    ) -> Result<Response<UpdateRecordResponse>, Status> {
        let caller = member(&request)?;
        let request = request.into_inner();
        let record = request.record.ok_or_else(|| Error::invalid("record", "is required"))?;
        let record = self.records.update(&caller, record, request.update_mask).await?;
        Ok(Response::new(UpdateRecordResponse { record: Some(record) }))
    }

    async fn delete_record(
        &self,
        request: Request<DeleteRecordRequest>,
    ) -> Result<Response<DeleteRecordResponse>, Status> {
        let caller = member(&request)?;
        let request = request.get_ref();
        self.records.delete(&caller, &request.name, &request.etag).await?;
        Ok(Response::new(DeleteRecordResponse {}))
    }

    async fn list_records(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListRecordsResponse>, Status> {
        let caller = member(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 1000)?;
        let (update_from_us, update_to_us) = range(&request.update_time_range, "update_time_range")?;
        if request.record_numbers.len() > 1000 {
            return Err(Error::invalid("record_numbers", "at most 1,000").into());
        }
        let filter = ListFilter {
            record_numbers: request.record_numbers,
            categories: request.categories,
            update_from_us,
            update_to_us,
            include_expired: request.include_expired,
        };
        let after = PageToken::decode::<(i64, String)>(&request.page_token)?;
        let (records, more) = self.records.list_own(&caller, &filter, after, limit).await?;
        let next_page_token = match records.last() {
            Some(last) if more => PageToken::encode(&(
                last.create_time.as_ref().map(micros_from_timestamp).unwrap_or_default(),
                last.name.trim_start_matches("records/").to_owned(),
            )),
            _ => String::new(),
        };
        Ok(Response::new(ListRecordsResponse { records, next_page_token }))
    }

    async fn list_record_versions(
        &self,
        request: Request<ListRecordVersionsRequest>,
    ) -> Result<Response<ListRecordVersionsResponse>, Status> {
        let caller = member(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 20, 100)?;
        let before = PageToken::decode::<i64>(&request.page_token)?.unwrap_or(i64::MAX);
        let (versions, more) = self.records.versions(&caller, &request.parent, before, limit).await?;
        let next_page_token = match versions.last() {
            Some(last) if more => PageToken::encode(&last.version),
            _ => String::new(),
        };
        Ok(Response::new(ListRecordVersionsResponse { versions, next_page_token }))
    }

    async fn search_records(
        &self,
        request: Request<SearchRecordsRequest>,
    ) -> Result<Response<SearchRecordsResponse>, Status> {
        let caller = member(&request)?;
        let purpose = caller.require_purpose()?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 25, 100)?;
        let query = match &request.query {
            None => {
                return Err(Error::invalid("query", "is required: a selector, person or text query").into());
            }
            Some(search_records_request::Query::SelectorQuery(q)) => selector_match(&q.selectors)?,
            Some(search_records_request::Query::PersonQuery(q)) => person_match(q)?,
            Some(search_records_request::Query::TextQuery(q)) => {
                if q.query.is_empty() || q.query.chars().count() > 256 {
                    return Err(Error::invalid("text_query.query", "is required: 1 to 256 characters").into());
                }
                Match::Text(
                    query::parse(&q.query)
                        .ok_or_else(|| Error::invalid("text_query.query", "has no word to search for"))?,
                )
            }
        };
        if request.owners.len() > 100 {
            return Err(Error::invalid("owners", "at most 100").into());
        }
        let owners = request
            .owners
            .iter()
            .enumerate()
            .map(|(i, o)| agency_code(o, &format!("owners[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let (occur_from_us, occur_to_us) = range(&request.occur_time_range, "occur_time_range")?;
        let filter =
            SearchFilter { categories: request.categories.clone(), owners, occur_from_us, occur_to_us };

        let fingerprint = {
            let mut key = request.clone();
            key.page_token.clear();
            key.page_size = 0;
            let mut hasher = Sha256::new();
            hasher.update(prost::Message::encode_to_vec(&key));
            hasher.update(purpose.as_str());
            hex::encode(&hasher.finalize()[..16])
        };
        let now = now_micros();
        let offset = match PageToken::decode::<SearchCursor>(&request.page_token)? {
            None => 0,
            Some(cursor) if cursor.query != fingerprint => {
                return Err(
                    Error::invalid("page_token", "belongs to another query, filters or purpose").into()
                );
            }
            Some(cursor) if now - cursor.issued_us > SEARCH_TOKEN_TTL_US => {
                return Err(Error::invalid_because(
                    "PAGE_TOKEN_EXPIRED",
                    "page_token",
                    "has expired: search again",
                )
                .into());
            }
            Some(cursor) => cursor.offset,
        };
        let page = self.records.search(&caller, purpose, &query, &filter, offset, limit).await?;
        let next_page_token = if page.more {
            PageToken::encode(&SearchCursor {
                query: fingerprint,
                offset: offset + u64::from(limit),
                issued_us: now,
            })
        } else {
            String::new()
        };
        Ok(Response::new(SearchRecordsResponse { records: page.records, next_page_token }))
    }

    async fn ingest_records(
        &self,
        request: Request<Streaming<IngestRecordsRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<IngestRecordsResponse>>, Status> {
        let caller = member(&request)?;
        let mut stream = request.into_inner();
        let records = self.records.clone();
        let (sender, receiver) = mpsc::channel(MAX_BATCHES_IN_FLIGHT as usize);
        tokio::spawn(async move {
            if let Err(status) = ingest(&records, &caller, &mut stream, &sender).await {
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_access_notifications(
        &self,
        request: Request<ListAccessNotificationsRequest>,
    ) -> Result<Response<ListAccessNotificationsResponse>, Status> {
        let caller = member(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size, 50, 500)?;
        let (from_us, to_us) = range(&request.search_time_range, "search_time_range")?;
        let record_id = if request.record.is_empty() {
            None
        } else {
            Some(crate::service::record_id(&request.record, "record")?.to_owned())
        };
        let searcher_agencies = request
            .searcher_agencies
            .iter()
            .enumerate()
            .map(|(i, a)| agency_code(a, &format!("searcher_agencies[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = NotificationFilter { record_id, searcher_agencies, from_us, to_us };
        let before = PageToken::decode::<i64>(&request.page_token)?.unwrap_or(i64::MAX);
        let (access_notifications, next) =
            self.records.notifications(&caller, &filter, before, limit).await?;
        let next_page_token = next.map(|seq| PageToken::encode(&seq)).unwrap_or_default();
        Ok(Response::new(ListAccessNotificationsResponse { access_notifications, next_page_token }))
    }
}

fn person_match(query: &PersonQuery) -> Result<Match, Status> {
    let name = query.name.clone().unwrap_or_default();
    let person =
        interlock_api::common::v1::Person { name: Some(name), birth_date: None, ..Default::default() };
    let normalized = interlock_selectors::normalize_person(&person)
        .map_err(|e| Error::invalid("person_query.name.surname", e.to_string()))?;
    let birth_date = match &query.birth_date {
        None => String::new(),
        Some(d) if d.year == 0 && d.month == 0 && d.day == 0 => String::new(),
        Some(d) if (1..=9999).contains(&d.year) && d.month == 0 && d.day == 0 => format!("{:04}-", d.year),
        Some(d) if (1..=9999).contains(&d.year) && (1..=12).contains(&d.month) && d.day == 0 => {
            format!("{:04}-{:02}-", d.year, d.month)
        }
        Some(d) => interlock_selectors::BirthDate::new(d.year, d.month, d.day)
            .map_err(|e| Error::invalid("person_query.birth_date", e.to_string()))?
            .to_iso(),
    };
    let name = normalized.name();
    Ok(Match::Person {
        surname: name.surname().to_owned(),
        given: name.given().to_owned(),
        middle: name.middle().to_owned(),
        suffix: name.suffix().to_owned(),
        birth_date,
    })
}

fn valid_ingest_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// How often an idle ingest stream looks whether another stream took its job over.
const TAKEOVER_POLL: Duration = Duration::from_secs(1);

/// The next client message. tonic reports a message over the decoding limit as OUT_OF_RANGE
/// (the only OUT_OF_RANGE its decoder produces); the API promises RESOURCE_EXHAUSTED.
async fn next_message(
    stream: &mut Streaming<IngestRecordsRequest>,
) -> Result<Option<IngestRecordsRequest>, Status> {
    stream.message().await.map_err(|status| match status.code() {
        Code::OutOfRange => Error::MessageTooLarge(status.message().to_owned()).into(),
        _ => status,
    })
}

/// The server side of one ingest stream: `start` (which makes this stream the job's owner),
/// then batches committed in order (the next one prepared while one commits), each acked after
/// its commit. A failing batch ends the
/// stream without committing anything of it; acknowledged batches stay committed, and the
/// client resumes from `started`. A stream whose job another stream claimed ends with
/// INGEST_TAKEN_OVER: at its next batch's commit, or within TAKEOVER_POLL while idle.
async fn ingest(
    records: &Arc<Records>,
    caller: &Caller,
    stream: &mut Streaming<IngestRecordsRequest>,
    sender: &mpsc::Sender<Result<IngestRecordsResponse, Status>>,
) -> Result<(), Status> {
    use ingest_records_request::Message as In;
    use ingest_records_response::Message as Out;
    let ingest_id = match next_message(stream).await? {
        Some(IngestRecordsRequest { message: Some(In::Start(start)) })
            if valid_ingest_id(&start.ingest_id) =>
        {
            start.ingest_id
        }
        Some(IngestRecordsRequest { message: Some(In::Start(_)) }) => {
            return Err(Error::invalid("start.ingest_id", "1 to 64 characters of [A-Za-z0-9_.-]").into());
        }
        _ => return Err(Error::invalid("start", "the first message of the stream must be start").into()),
    };
    let (last, owner) = records.claim_ingest(caller, &ingest_id).await?;
    let started =
        IngestStarted { last_committed_batch_sequence: last, max_batches_in_flight: MAX_BATCHES_IN_FLIGHT };
    if sender.send(Ok(IngestRecordsResponse { message: Some(Out::Started(started)) })).await.is_err() {
        return Ok(());
    }
    let mut pipeline = records.ingest_pipeline(caller, &ingest_id, owner);
    let result = batches(records, caller, &ingest_id, owner, stream, sender, &mut pipeline).await;
    // Whatever ended the stream, the batch still committing is acknowledged first if it commits,
    // as it would have been without the pipeline; if it fails, a stream that would otherwise end
    // with OK ends with its error instead.
    if pipeline.busy() {
        match pipeline.committed().await {
            Ok(committed) => {
                let _ = sender.send(Ok(ack(committed))).await;
            }
            Err(error) if result.is_ok() => return Err(error.into()),
            Err(_) => {}
        }
    }
    result
}

fn ack(ack: IngestBatchAck) -> IngestRecordsResponse {
    IngestRecordsResponse { message: Some(ingest_records_response::Message::Ack(ack)) }
}

/// The batches of an ingest stream after `start`, until the client half-closes or a batch fails.
async fn batches(
    records: &Records,
    caller: &Caller,
    ingest_id: &str,
    owner: i64,
    stream: &mut Streaming<IngestRecordsRequest>,
    sender: &mpsc::Sender<Result<IngestRecordsResponse, Status>>,
    pipeline: &mut IngestPipeline,
) -> Result<(), Status> {
    use ingest_records_request::Message as In;
    let mut previous = 0;
    let mut poll = tokio::time::interval(TAKEOVER_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            committed = pipeline.committed(), if pipeline.busy() => {
                if sender.send(Ok(ack(committed?))).await.is_err() {
                    return Ok(());
                }
                poll.reset();
                continue;
            }
            message = next_message(stream) => match message? {
                Some(message) => message,
                None => return Ok(()),
            },
            _ = poll.tick(), if !pipeline.busy() => {
                records.check_ingest_owner(caller, ingest_id, owner).await?;
                continue;
            }
        };
        let batch = match message.message {
            Some(In::Batch(batch)) => batch,
            _ => return Err(Error::invalid("batch", "after start, only batches may be sent").into()),
        };
        if batch.batch_sequence < 1 || batch.batch_sequence <= previous {
            return Err(
                Error::invalid("batch.batch_sequence", "must increase strictly from 1 on a stream").into()
            );
        }
        if batch.records.is_empty() || batch.records.len() > MAX_BATCH_RECORDS {
            return Err(Error::invalid("batch.records", "send 1 to 1,000 records per batch").into());
        }
        previous = batch.batch_sequence;
        if let Some(committed) = pipeline.push(batch.batch_sequence, batch.records).await?
            && sender.send(Ok(ack(committed))).await.is_err()
        {
            return Ok(());
        }
    }
}
