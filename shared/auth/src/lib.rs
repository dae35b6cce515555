//! Identity for every call in the mesh.
//!
//! An agency backend exchanges its credential for a short-lived access token at the registry
//! (`AuthenticationService/CreateAccessToken`) and sends it as `authorization: Bearer …`, with the
//! officer in `x-interlock-user`, the purpose in `x-interlock-purpose` and the case in
//! `x-interlock-case`. Every server verifies tokens locally with the registry's public keys (no
//! registry round-trip per call) and consults a revocation state that the registry's watch keeps
//! current, so a revoked credential, a suspended agency, or a token issued before its credential lost
//! a role or changed its certificate binding stops working within seconds.

mod caller;
mod client;
mod layer;
mod role;
mod secret;
mod sync;
mod tls;
mod token;

pub use caller::{CASE_HEADER, Caller, PURPOSE_HEADER, Purpose, USER_HEADER};
pub use client::{BearerLayer, BearerService, CallerMetadata, MeshChannel, TokenSource, mesh_channel};
pub use ed25519_dalek::VerifyingKey;
pub use layer::{AuthLayer, AuthService, Authenticator, RevocationState};
pub use role::Role;
pub use secret::{SecretHash, generate_secret};
pub use sync::{sync_revocations, sync_verification_keys};
pub use tls::{endpoint, is_https, peer_certificate_sha256};
pub use token::{
    AUDIENCE, Claims, ISSUER, KeySet, LEEWAY_SECONDS, TokenError, TokenSigner, tokens_valid_from,
};
