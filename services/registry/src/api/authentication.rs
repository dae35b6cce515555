use std::sync::Arc;
use std::time::Duration;

use interlock_api::registry::v1::authentication_service_server::{
    AuthenticationService, AuthenticationServiceServer,
};
use interlock_api::registry::v1::{
    CreateAccessTokenRequest, CreateAccessTokenResponse, ListVerificationKeysRequest,
    ListVerificationKeysResponse, VerificationKey, VerificationKeyState,
};
use interlock_auth::{AUDIENCE, Claims, ISSUER};
use interlock_rpc::{FieldViolations, now_micros, timestamp_from_micros};
use tonic::{Request, Response, Status};

use crate::Registry;
use crate::error::Error;

/// Shortest and longest token lifetime a client may ask for.
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(3600);

pub(super) fn server(registry: Arc<Registry>) -> AuthenticationServiceServer<AuthenticationApi> {
    AuthenticationServiceServer::new(AuthenticationApi { registry })
}

pub(super) struct AuthenticationApi {
    registry: Arc<Registry>,
}

#[tonic::async_trait]
impl AuthenticationService for AuthenticationApi {
    async fn create_access_token(
        &self,
        request: Request<CreateAccessTokenRequest>,
    ) -> Result<Response<CreateAccessTokenResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check(
            request.credential.is_empty(),
            "credential",
            "is required: the credential's resource name",
        );
        violations.check(request.secret.is_empty(), "secret", "is required");
        let ttl = match request.ttl {
            None => self.registry.config.default_token_ttl,
            Some(ttl) => {
                let ttl = Duration::from_secs(ttl.seconds.max(0) as u64);
                violations.check(
                    !(MIN_TTL..=MAX_TTL).contains(&ttl),
                    "ttl",
                    "must be between 60 seconds and 1 hour",
                );
                ttl
            }
        };
        violations.into_result()?;

        // Unknown credential and wrong secret answer alike, so the answer reveals nothing.
        let credential = self
            .registry
            .config
            .configured_credentials
            .iter()
            .find(|c| c.name == request.credential && c.secret.matches(&request.secret))
            .ok_or(Error::Unauthenticated {
                reason: "INVALID_CREDENTIALS",
                message: "unknown credential or wrong secret".into(),
            })?;
        tracing::info!(credential = credential.name, "access token issued");

        let now = now_micros() / 1_000_000;
        let expires = now + ttl.as_secs() as i64;
        let roles: Vec<String> = credential.roles.iter().map(|role| role.as_str().to_owned()).collect();
        let agency = crate::OPERATOR_AGENCY.to_owned();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: credential.name.to_owned(),
            agency: agency.clone(),
            roles,
            iat: now,
            nbf: now,
            exp: expires,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        Ok(Response::new(CreateAccessTokenResponse {
            access_token: self.registry.signer.sign(&claims),
            token_type: "Bearer".into(),
            expire_time: Some(timestamp_from_micros(expires * 1_000_000)),
            agency,
            roles: credential.roles.iter().map(|role| role.to_proto() as i32).collect(),
            key_id: self.registry.signer.key_id().to_owned(),
        }))
    }

    async fn list_verification_keys(
        &self,
        _request: Request<ListVerificationKeysRequest>,
    ) -> Result<Response<ListVerificationKeysResponse>, Status> {
        let signer = &self.registry.signer;
        Ok(Response::new(ListVerificationKeysResponse {
            keys: vec![VerificationKey {
                key_id: signer.key_id().to_owned(),
                algorithm: "EdDSA".into(),
                public_key: signer.verifying_key().to_bytes().to_vec(),
                state: VerificationKeyState::Signing as i32,
                create_time: None,
                expire_time: None,
            }],
            next_page_token: String::new(),
        }))
    }
}
