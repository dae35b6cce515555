//! The server-side tower layer: every call except the few public ones must carry a valid access
//! token; the verified [`Caller`] goes into the request's extensions for the handlers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::{HeaderMap, Request, Response};
use interlock_rpc::{FieldViolations, status_with_reason};
use tokio::sync::Notify;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::{CASE_HEADER, Caller, KeySet, PURPOSE_HEADER, Purpose, Role, TokenError, USER_HEADER};

/// Methods callable without a token: health and reflection (for probes and tools), and the token
/// exchange itself.
const PUBLIC_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/interlock.registry.v1.AuthenticationService/CreateAccessToken",
    "/interlock.registry.v1.AuthenticationService/ListVerificationKeys",
];

/// What the registry's revocation watch has told this process.
#[derive(Debug, Default)]
pub struct RevocationState {
    pub revoked_credentials: HashSet<String>,
    /// Tokens of these credentials whose `iat` is before the time (epoch seconds, already rounded
    /// up with [`tokens_valid_from`](crate::tokens_valid_from)) are void.
    pub tokens_invalidated_before: HashMap<String, i64>,
    pub suspended_agencies: HashSet<String>,
}

/// Verifies calls: token signature and validity, revocations, suspensions, and the identity
/// metadata.
#[derive(Default)]
pub struct Authenticator {
    keys: KeySet,
    revocations: RwLock<RevocationState>,
    keys_wanted: Notify,
}

impl Authenticator {
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Signalled when a token names a key this process does not know, so the key refresher can
    /// fetch the registry's current keys at once.
    pub fn keys_wanted(&self) -> &Notify {
        &self.keys_wanted
    }

    pub fn update_revocations(&self, update: impl FnOnce(&mut RevocationState)) {
        update(&mut self.revocations.write().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    pub fn authenticate(&self, headers: &HeaderMap, now: i64) -> Result<Caller, Status> {
        let token = bearer_token(headers)?;
        if self.keys.is_empty() {
            self.keys_wanted.notify_one();
            return Err(status_with_reason(
                Code::Unavailable,
                "VERIFICATION_KEYS_NOT_LOADED",
                "this service has not loaded the registry's verification keys yet; retry shortly",
            ));
        }
        let claims = self.keys.verify(token, now).map_err(|error| {
            if matches!(error, TokenError::UnknownKey(_)) {
                self.keys_wanted.notify_one();
            }
            status_with_reason(Code::Unauthenticated, "INVALID_TOKEN", error.to_string())
        })?;
        {
            let revocations = self.revocations.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            if revocations.revoked_credentials.contains(&claims.sub) {
                return Err(status_with_reason(
                    Code::Unauthenticated,
                    "CREDENTIAL_REVOKED",
                    "the credential behind this token has been revoked",
                ));
            }
            // Its own reason, unlike a revocation: the credential still works, a new token
            // (carrying what the credential holds now) is the remedy.
            if revocations.tokens_invalidated_before.get(&claims.sub).is_some_and(|from| claims.iat < *from) {
                return Err(status_with_reason(
                    Code::Unauthenticated,
                    "CREDENTIAL_CHANGED",
                    "the credential behind this token lost a role or changed its client-certificate \
                     binding after the token was issued; request a new token with CreateAccessToken",
                ));
            }
            if revocations.suspended_agencies.contains(&claims.agency) {
                return Err(status_with_reason(
                    Code::PermissionDenied,
                    "AGENCY_SUSPENDED",
                    format!("agency {} is suspended from the mesh", claims.agency),
                ));
            }
        }

        let mut violations = FieldViolations::new();
        let purpose = match metadata(headers, PURPOSE_HEADER) {
            None => None,
            Some(value) => {
                let purpose = Purpose::parse(value);
                violations.check(
                    purpose.is_none(),
                    PURPOSE_HEADER,
                    "must be investigation, deconfliction, intelligence_analysis or prosecution",
                );
                purpose
            }
        };
        let user = metadata(headers, USER_HEADER).map(str::to_owned);
        violations.check(
            user.as_ref().is_some_and(|u| u.len() > 200),
            USER_HEADER,
            "must be at most 200 characters",
        );
        violations.into_result()?;

        Ok(Caller {
            agency: claims.agency,
            credential: claims.sub,
            roles: claims.roles.iter().filter_map(|role| Role::parse(role)).collect(),
            user,
            purpose,
            case_reference: metadata(headers, CASE_HEADER).map(str::to_owned),
            issued_at: claims.iat,
        })
    }
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, Status> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        status_with_reason(
            Code::Unauthenticated,
            "MISSING_CREDENTIALS",
            "send `authorization: Bearer <token>`; get a token from AuthenticationService/CreateAccessToken",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| {
            status_with_reason(
                Code::Unauthenticated,
                "INVALID_TOKEN",
                "the authorization metadata must be `Bearer <token>`",
            )
        })
}

fn metadata<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim).filter(|value| !value.is_empty())
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Adds authentication to a server.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, authenticator: self.authenticator.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if PUBLIC_METHODS.iter().any(|public| path.starts_with(public)) {
            return Either::Right(self.inner.call(request));
        }
        match self.authenticator.authenticate(request.headers(), now_seconds()) {
            Ok(caller) => {
                tracing::Span::current().record("agency", caller.agency.as_str());
                request.extensions_mut().insert(caller);
                Either::Right(self.inner.call(request))
            }
            Err(status) => {
                tracing::debug!(code = ?status.code(), reason = status.message(), "call refused");
                Either::Left(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;
    use crate::{AUDIENCE, Claims, ISSUER, TokenSigner};

    fn authenticator_with(signer: &TokenSigner) -> Authenticator {
        let authenticator = Authenticator::default();
        authenticator.keys().replace([(signer.key_id().to_owned(), signer.verifying_key())]);
        authenticator
    }

    fn headers(token: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        for (name, value) in extra {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    fn reason(status: &Status) -> String {
        status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
    }

    fn token(signer: &TokenSigner, agency: &str, iat: i64) -> String {
        signer.sign(&Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: format!("agencies/{agency}/credentials/c1"),
            agency: agency.into(),
            roles: vec!["ROLE_AGENCY_MEMBER".into(), "ROLE_SOMETHING_NEW".into()],
            iat,
            nbf: iat,
            exp: iat + 300,
            jti: "j".into(),
        })
    }

    #[test]
    fn a_valid_call_yields_the_caller() {
        let signer = TokenSigner::from_seed(&[3; 32]);
        let auth = authenticator_with(&signer);
        let headers = headers(
            &token(&signer, "DEA", 100),
            &[(USER_HEADER, "SA J. Smith"), (PURPOSE_HEADER, "investigation"), (CASE_HEADER, "DEA-2026-17")],
        );
        let caller = auth.authenticate(&headers, 150).unwrap();
        assert_eq!(caller.agency, "DEA");
        assert_eq!(caller.roles, vec![Role::AgencyMember]);
        assert_eq!(caller.user.as_deref(), Some("SA J. Smith"));
        assert_eq!(caller.purpose, Some(Purpose::Investigation));
        assert_eq!(caller.case_reference.as_deref(), Some("DEA-2026-17"));
    }

    #[test]
    fn revocation_suspension_and_bad_metadata_are_refused() {
        let signer = TokenSigner::from_seed(&[3; 32]);
        let auth = authenticator_with(&signer);
        let dea = headers(&token(&signer, "DEA", 100), &[]);

        assert_eq!(auth.authenticate(&HeaderMap::new(), 150).unwrap_err().code(), Code::Unauthenticated);
        let bad_purpose = headers(&token(&signer, "DEA", 100), &[(PURPOSE_HEADER, "curiosity")]);
        assert_eq!(auth.authenticate(&bad_purpose, 150).unwrap_err().code(), Code::InvalidArgument);

        auth.update_revocations(|state| {
            state.tokens_invalidated_before.insert("agencies/DEA/credentials/c1".into(), 120);
        });
        let changed = auth.authenticate(&dea, 150).unwrap_err();
        assert_eq!((changed.code(), reason(&changed)), (Code::Unauthenticated, "CREDENTIAL_CHANGED".into()));
        let last_void = headers(&token(&signer, "DEA", 119), &[]);
        assert_eq!(auth.authenticate(&last_void, 150).unwrap_err().code(), Code::Unauthenticated);
        let first_valid = headers(&token(&signer, "DEA", 120), &[]);
        assert!(auth.authenticate(&first_valid, 150).is_ok());
        let fresh = headers(&token(&signer, "DEA", 130), &[]);
        assert!(auth.authenticate(&fresh, 150).is_ok());

        auth.update_revocations(|state| {
            state.suspended_agencies.insert("DEA".into());
        });
        assert_eq!(auth.authenticate(&fresh, 150).unwrap_err().code(), Code::PermissionDenied);
    }

    #[test]
    fn revocations_and_suspensions_stop_a_token_already_verified() {
        let signer = TokenSigner::from_seed(&[3; 32]);
        let auth = authenticator_with(&signer);
        let dea = headers(&token(&signer, "DEA", 100), &[]);
        assert!(auth.authenticate(&dea, 150).is_ok(), "verified and remembered");

        auth.update_revocations(|state| {
            state.suspended_agencies.insert("DEA".into());
        });
        assert_eq!(auth.authenticate(&dea, 151).unwrap_err().code(), Code::PermissionDenied);
        auth.update_revocations(|state| {
            state.suspended_agencies.remove("DEA");
        });
        assert!(auth.authenticate(&dea, 152).is_ok());

        auth.update_revocations(|state| {
            state.revoked_credentials.insert("agencies/DEA/credentials/c1".into());
        });
        let status = auth.authenticate(&dea, 153).unwrap_err();
        assert_eq!(
            (status.code(), reason(&status), status.message()),
            (
                Code::Unauthenticated,
                "CREDENTIAL_REVOKED".into(),
                "the credential behind this token has been revoked"
            )
        );
    }

    #[test]
    fn a_verified_token_is_refused_once_expired_or_its_key_is_gone() {
        let signer = TokenSigner::from_seed(&[3; 32]);
        let auth = authenticator_with(&signer);
        let dea = headers(&token(&signer, "DEA", 100), &[]);
        assert!(auth.authenticate(&dea, 150).is_ok());
        assert_eq!(auth.authenticate(&dea, 100 + 300 + 31).unwrap_err().code(), Code::Unauthenticated);

        let successor = TokenSigner::from_seed(&[4; 32]);
        auth.keys().replace([(successor.key_id().to_owned(), successor.verifying_key())]);
        assert_eq!(auth.authenticate(&dea, 150).unwrap_err().code(), Code::Unauthenticated);
    }

    #[test]
    fn no_keys_loaded_is_unavailable_not_a_rejection() {
        let signer = TokenSigner::from_seed(&[3; 32]);
        let auth = Authenticator::default();
        let status = auth.authenticate(&headers(&token(&signer, "DEA", 100), &[]), 150).unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
}
