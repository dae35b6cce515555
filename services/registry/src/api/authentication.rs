use std::sync::Arc;
use std::time::{Duration, Instant};

use interlock_api::registry::v1::authentication_service_server::{
    AuthenticationService, AuthenticationServiceServer,
};
use interlock_api::registry::v1::*;
use interlock_auth::{Caller, Role, peer_certificate_sha256};
use interlock_rpc::FieldViolations;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::ts;
use crate::Registry;
use crate::error::Error;
use crate::service::authentication::{MAX_TOKEN_TTL, Revocation};

/// Shortest token lifetime a client may ask for.
const MIN_TTL: Duration = Duration::from_secs(60);
/// How long a revocation watch stays silent before it sends a heartbeat.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

pub(super) fn server(registry: Arc<Registry>) -> AuthenticationServiceServer<AuthenticationApi> {
    AuthenticationServiceServer::new(AuthenticationApi { registry })
}

pub(super) struct AuthenticationApi {
    registry: Arc<Registry>,
}

#[tonic::async_trait]
impl AuthenticationService for AuthenticationApi {
    type WatchRevocationsStream = tonic::codegen::BoxStream<WatchRevocationsResponse>;

    async fn create_access_token(
        &self,
        request: Request<CreateAccessTokenRequest>,
    ) -> Result<Response<CreateAccessTokenResponse>, Status> {
        // Only a mutual-TLS connection carries a verified client certificate; a credential bound
        // to one is refused without it.
        let presented_certificate = peer_certificate_sha256(&request);
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check(
            request.credential.is_empty(),
            "credential",
            "is required: the credential's resource name",
        );
        violations.check(request.secret.is_empty(), "secret", "is required");
        let ttl = request.ttl.map(|ttl| Duration::from_secs(ttl.seconds.max(0) as u64));
        violations.check(
            ttl.is_some_and(|ttl| !(MIN_TTL..=MAX_TOKEN_TTL).contains(&ttl)),
            "ttl",
            "must be between 60 seconds and 1 hour",
        );
        violations.into_result()?;
        let issued = self
            .registry
            .create_access_token(&request.credential, &request.secret, ttl, presented_certificate.as_deref())
            .await?;
        Ok(Response::new(CreateAccessTokenResponse {
            access_token: issued.token,
            token_type: "Bearer".into(),
            expire_time: ts(issued.expire_time_us),
            agency: issued.agency,
            roles: issued.roles.iter().map(|role| role.to_proto() as i32).collect(),
            key_id: issued.key_id,
        }))
    }

    async fn list_verification_keys(
        &self,
        _request: Request<ListVerificationKeysRequest>,
    ) -> Result<Response<ListVerificationKeysResponse>, Status> {
        let (key_id, public_key) = self.registry.verification_key();
        Ok(Response::new(ListVerificationKeysResponse {
            keys: vec![VerificationKey {
                key_id,
                algorithm: "EdDSA".into(),
                public_key: public_key.to_vec(),
                state: VerificationKeyState::Signing as i32,
                create_time: None,
                expire_time: None,
            }],
            next_page_token: String::new(),
        }))
    }

    async fn watch_revocations(
        &self,
        request: Request<WatchRevocationsRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<WatchRevocationsResponse>>, Status> {
        let caller = Caller::of(&request)?;
        caller.require_any_role(&[Role::MeshService, Role::CenterAdministrator, Role::CenterAuditor])?;
        let cursor = request.get_ref().cursor.parse::<i64>().ok();
        let (sender, receiver) = mpsc::channel(16);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            if let Err(error) = watch(registry, cursor, &sender).await {
                let _ = sender.send(Err(error.into())).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// A snapshot (unless resuming from a cursor), then every revocation as the change feed shows it.
async fn watch(
    registry: Arc<Registry>,
    cursor: Option<i64>,
    sender: &mpsc::Sender<Result<WatchRevocationsResponse, Status>>,
) -> Result<(), Error> {
    let poll = registry.config.watch_poll_interval;
    let mut cursor = match cursor {
        Some(cursor) => cursor,
        None => {
            let (snapshot, revision) = registry.revocation_snapshot().await?;
            let message = WatchRevocationsResponse {
                events: snapshot.iter().map(to_proto).collect(),
                cursor: revision.to_string(),
                snapshot: true,
            };
            if sender.send(Ok(message)).await.is_err() {
                return Ok(());
            }
            revision
        }
    };
    let mut last_sent = Instant::now();
    loop {
        let (events, reached) = registry.revocations_after(cursor).await?;
        if !events.is_empty()
            || (reached != cursor && last_sent.elapsed() >= HEARTBEAT_INTERVAL)
            || last_sent.elapsed() >= HEARTBEAT_INTERVAL
        {
            let message = WatchRevocationsResponse {
                events: events.iter().map(to_proto).collect(),
                cursor: reached.to_string(),
                snapshot: false,
            };
            if sender.send(Ok(message)).await.is_err() {
                return Ok(());
            }
            last_sent = Instant::now();
        }
        cursor = reached;
        tokio::select! {
            () = tokio::time::sleep(poll) => {},
            () = sender.closed() => return Ok(()),
        }
    }
}

fn to_proto(revocation: &Revocation) -> RevocationEvent {
    let (kind, agency, credential, before, at) = match revocation {
        Revocation::CredentialRevoked { credential, agency, at_us } => {
            (RevocationEventKind::CredentialRevoked, agency, credential.clone(), None, *at_us)
        }
        Revocation::TokensInvalidated { credential, agency, before_us } => (
            RevocationEventKind::CredentialTokensInvalidated,
            agency,
            credential.clone(),
            Some(*before_us),
            *before_us,
        ),
        Revocation::AgencySuspended { agency, at_us } => {
            (RevocationEventKind::AgencySuspended, agency, String::new(), None, *at_us)
        }
        Revocation::AgencyReactivated { agency, at_us } => {
            (RevocationEventKind::AgencyReactivated, agency, String::new(), None, *at_us)
        }
    };
    RevocationEvent {
        kind: kind as i32,
        agency: format!("agencies/{agency}"),
        credential,
        tokens_issued_before: before.and_then(ts),
        event_time: ts(at),
    }
}
