use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interlock_api::registry::v1::grant_service_server::{GrantService, GrantServiceServer};
use interlock_api::registry::v1::{self as pb, *};
use interlock_auth::Caller;
use interlock_rpc::{PageToken, page_size, status_with_reason};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::convert::{agency_code, opt_ts};
use crate::Registry;
use crate::domain::grants::{Grant, by_consumer};
use crate::service::grants::filter;

/// How often a watch recompiles even without changes, so start and end times take effect.
const RECOMPILE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a watch stays silent before it sends a heartbeat.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

pub(super) fn server(registry: Arc<Registry>) -> GrantServiceServer<GrantApi> {
    GrantServiceServer::new(GrantApi { registry })
}

pub(super) struct GrantApi {
    registry: Arc<Registry>,
}

/// Optional `agencies/{code}` filter → code.
fn optional_code(name: &str, field: &str) -> Result<Option<String>, Status> {
    if name.is_empty() { Ok(None) } else { Ok(Some(agency_code(name, field)?.to_owned())) }
}

#[tonic::async_trait]
impl GrantService for GrantApi {
    type WatchGrantsStream = tonic::codegen::BoxStream<WatchGrantsResponse>;

    async fn list_grants(
        &self,
        request: Request<ListGrantsRequest>,
    ) -> Result<Response<ListGrantsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let consumer = optional_code(&request.consumer, "consumer")?;
        let provider = optional_code(&request.provider, "provider")?;
        Registry::authorize_grant_reading(&caller, consumer.as_deref(), provider.as_deref())?;
        let limit = page_size(request.page_size, 1000, 10_000)? as usize;
        let (grants, revision) = self.registry.compiled_grants().await?;
        let grants = filter(grants, consumer.as_deref(), provider.as_deref());
        let offset = match PageToken::decode::<(i64, usize)>(&request.page_token)? {
            None => 0,
            Some((token_revision, offset)) if token_revision == revision => offset,
            Some(_) => {
                return Err(status_with_reason(
                    Code::InvalidArgument,
                    "PAGE_TOKEN_EXPIRED",
                    "the grants changed since the first page: list again from the start",
                ));
            }
        };
        let page: Vec<pb::Grant> = grants.iter().skip(offset).take(limit).map(to_proto).collect();
        let next_page_token = if offset + limit < grants.len() {
            PageToken::encode(&(revision, offset + limit))
        } else {
            String::new()
        };
        Ok(Response::new(ListGrantsResponse { grants: page, revision, next_page_token }))
    }

    async fn watch_grants(
        &self,
        request: Request<WatchGrantsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<WatchGrantsResponse>>, Status> {
        let caller = Caller::of(&request)?.clone();
        let request = request.into_inner();
        let consumer = optional_code(&request.consumer, "consumer")?;
        let provider = optional_code(&request.provider, "provider")?;
        Registry::authorize_grant_reading(&caller, consumer.as_deref(), provider.as_deref())?;
        let (sender, receiver) = mpsc::channel(16);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            if let Err(status) = watch(registry, consumer, provider, &sender).await {
                let _ = sender.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// Sends a snapshot, then each consumer's whole new grant set whenever it changes, polling the
/// change feed that every replica writes to.
async fn watch(
    registry: Arc<Registry>,
    consumer: Option<String>,
    provider: Option<String>,
    sender: &mpsc::Sender<Result<WatchGrantsResponse, Status>>,
) -> Result<(), Status> {
    let poll = registry.config.watch_poll_interval;
    let mut held: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    let mut seen_revision = None;
    let mut last_compile = Instant::now();
    let mut last_sent = Instant::now();
    loop {
        let revision = registry.store().latest_revision().await?;
        if seen_revision != Some(revision) || last_compile.elapsed() >= RECOMPILE_INTERVAL {
            let (grants, revision) = registry.compiled_grants().await?;
            let current = by_consumer(filter(grants, consumer.as_deref(), provider.as_deref()));
            last_compile = Instant::now();
            let snapshot = seen_revision.is_none();
            let changed: Vec<ConsumerGrants> = current
                .keys()
                .chain(held.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|code| snapshot || current.get(*code) != held.get(*code))
                .map(|code| ConsumerGrants {
                    consumer: format!("agencies/{code}"),
                    grants: current.get(code).map(|g| g.iter().map(to_proto).collect()).unwrap_or_default(),
                })
                .collect();
            if snapshot || !changed.is_empty() {
                let message =
                    WatchGrantsResponse { revision, consumers: changed, snapshot, revision_complete: true };
                if sender.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
            held = current;
            seen_revision = Some(revision);
        }
        if last_sent.elapsed() >= HEARTBEAT_INTERVAL {
            let heartbeat = WatchGrantsResponse {
                revision: seen_revision.unwrap_or_default(),
                consumers: Vec::new(),
                snapshot: false,
                revision_complete: true,
            };
            if sender.send(Ok(heartbeat)).await.is_err() {
                return Ok(());
            }
            last_sent = Instant::now();
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {},
            () = sender.closed() => return Ok(()),
        }
    }
}

fn to_proto(grant: &Grant) -> pb::Grant {
    pb::Grant {
        provider: format!("agencies/{}", grant.provider),
        consumer: format!("agencies/{}", grant.consumer),
        categories: grant.categories.clone(),
        sensitivity_ceiling: grant.sensitivity_ceiling,
        purposes: grant.purposes.clone(),
        access_level: grant.access_level,
        redacted_fields: grant.redacted_fields.clone(),
        admitted_caveats: grant.admitted_caveats.clone(),
        may_reshare: grant.may_reshare,
        agreement: grant.agreement.clone(),
        agreement_version: grant.agreement_version,
        center: grant.center.clone().unwrap_or_default(),
        valid_until: opt_ts(grant.valid_until_us),
    }
}
