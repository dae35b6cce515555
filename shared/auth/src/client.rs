//! The client side of mesh identity: channels to other services that carry the caller's trace
//! context and a bearer token fetched (and renewed before it expires) from the registry.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderValue, Request};
use interlock_api::registry::v1::CreateAccessTokenRequest;
use interlock_api::registry::v1::authentication_service_client::AuthenticationServiceClient;
use interlock_telemetry::{ClientTraceLayer, ClientTraceService};
use tonic::Status;
use tonic::codegen::StdError;
use tonic::transport::{Channel, ClientTlsConfig};
use tower::{Layer, Service, ServiceBuilder};

/// Renew a cached token when less than this many seconds of it remain.
const RENEW_BEFORE_EXPIRY_SECONDS: i64 = 60;

/// A channel to another Interlock service: trace context and bearer token on every call.
pub type MeshChannel = ClientTraceService<BearerService<Channel>>;

/// A lazily connecting channel to `address` (`http://host:port`, or `https://host:port` verified
/// and authenticated with `tls`). Calls carry a token from `tokens` when given; without one they
/// are anonymous (enough for public methods).
pub fn mesh_channel(
    address: &str,
    tls: &ClientTlsConfig,
    tokens: Option<Arc<TokenSource>>,
) -> Result<MeshChannel, tonic::transport::Error> {
    let channel = crate::tls::endpoint(address, tls)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(ServiceBuilder::new().layer(ClientTraceLayer).layer(BearerLayer { tokens }).service(channel))
}

/// Access tokens for one credential, exchanged at the registry and cached until shortly before
/// they expire.
pub struct TokenSource {
    credential: String,
    secret: String,
    registry: AuthenticationServiceClient<MeshChannel>,
    cached: tokio::sync::Mutex<Option<(String, i64)>>,
}

impl TokenSource {
    /// `registry` is the registry's address, reached with `tls` when it is `https://`;
    /// `credential` the credential's resource name.
    pub fn new(
        registry: &str,
        tls: &ClientTlsConfig,
        credential: String,
        secret: String,
    ) -> Result<Self, tonic::transport::Error> {
        let registry = AuthenticationServiceClient::new(mesh_channel(registry, tls, None)?);
        Ok(Self { credential, secret, registry, cached: tokio::sync::Mutex::new(None) })
    }

    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// A token valid for at least another minute.
    pub async fn token(&self) -> Result<String, Status> {
        let mut cached = self.cached.lock().await;
        let now = chrono_now();
        if let Some((token, expires)) = cached.as_ref()
            && *expires - now > RENEW_BEFORE_EXPIRY_SECONDS
        {
            return Ok(token.clone());
        }
        let response = self
            .registry
            .clone()
            .create_access_token(CreateAccessTokenRequest {
                credential: self.credential.clone(),
                secret: self.secret.clone(),
                ttl: None,
            })
            .await?
            .into_inner();
        let expires = response.expire_time.map_or(now, |t| t.seconds);
        *cached = Some((response.access_token.clone(), expires));
        Ok(response.access_token)
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("credential", &self.credential).finish_non_exhaustive()
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Adds `authorization: Bearer …` from a [`TokenSource`] to every call.
#[derive(Clone, Debug)]
pub struct BearerLayer {
    tokens: Option<Arc<TokenSource>>,
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, tokens: self.tokens.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    tokens: Option<Arc<TokenSource>>,
}

impl<S, B> Service<Request<B>> for BearerService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<StdError>,
    B: Send + 'static,
{
    type Response = S::Response;
    // Boxed, so a failure to obtain a token reaches the caller as the registry's own Status.
    type Error = StdError;
    type Future = BoxFuture<'static, Result<S::Response, StdError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one that must serve the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            if let Some(tokens) = tokens {
                let token = tokens.token().await.map_err(StdError::from)?;
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| StdError::from(Status::internal("the registry issued an unusable token")))?;
                request.headers_mut().insert(http::header::AUTHORIZATION, value);
            }
            inner.call(request).await.map_err(Into::into)
        })
    }
}

/// The identity metadata of a call made on behalf of an officer: bearer token, user, purpose and
/// case. Used as a tonic interceptor by the CLI, the demo and tests.
#[derive(Clone, Debug, Default)]
pub struct CallerMetadata {
    pub token: String,
    pub user: Option<String>,
    pub purpose: Option<crate::Purpose>,
    pub case_reference: Option<String>,
}

impl CallerMetadata {
    pub fn bearer(token: impl Into<String>) -> Self {
        Self { token: token.into(), ..Self::default() }
    }

    pub fn on_behalf_of(mut self, user: &str, purpose: crate::Purpose) -> Self {
        self.user = Some(user.to_owned());
        self.purpose = Some(purpose);
        self
    }
}

impl tonic::service::Interceptor for CallerMetadata {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let invalid = |what: &str| Status::invalid_argument(format!("{what} is not valid metadata"));
        let metadata = request.metadata_mut();
        metadata.insert(
            "authorization",
            format!("Bearer {}", self.token).parse().map_err(|_| invalid("the token"))?,
        );
        if let Some(user) = &self.user {
            metadata.insert(crate::USER_HEADER, user.parse().map_err(|_| invalid("the user"))?);
        }
        if let Some(purpose) = self.purpose {
            metadata
                .insert(crate::PURPOSE_HEADER, tonic::metadata::MetadataValue::from_static(purpose.as_str()));
        }
        if let Some(case) = &self.case_reference {
            metadata.insert(crate::CASE_HEADER, case.parse().map_err(|_| invalid("the case reference"))?);
        }
        Ok(request)
    }
}
