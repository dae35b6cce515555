//! Transport security of mesh calls: TLS for `https://` addresses on the client side, and on the
//! server side the fingerprint of the certificate a mutual-TLS client presented, which a
//! credential may be bound to.

use sha2::{Digest, Sha256};
use tonic::transport::{ClientTlsConfig, Endpoint};

/// An endpoint for `address`. `https://` addresses are reached over TLS with `tls` (the CA bundle
/// that verifies the server and, for mutual TLS, the client's own certificate); `http://`
/// addresses stay plaintext and ignore it, which is what the embedded mesh and the tests use.
pub fn endpoint(address: &str, tls: &ClientTlsConfig) -> Result<Endpoint, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(address.to_owned())?;
    if is_https(address) { endpoint.tls_config(tls.clone()) } else { Ok(endpoint) }
}

/// Whether `address` is reached over TLS.
pub fn is_https(address: &str) -> bool {
    address.get(..8).is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// The lower-case hex SHA-256 of the DER of the client's leaf certificate, when the call arrived
/// over TLS and the client presented one that the server's client CA verified. `None` on
/// plaintext connections and on TLS connections without a client certificate.
pub fn peer_certificate_sha256<T>(request: &tonic::Request<T>) -> Option<String> {
    let chain = request.peer_certs()?;
    // rustls hands over the chain as sent: the client's own certificate first.
    let leaf = chain.first()?;
    Some(hex::encode(Sha256::digest(leaf.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_addresses_get_tls() {
        assert!(is_https("https://registry.interlock.svc:50051"));
        assert!(is_https("HTTPS://127.0.0.1:50051"));
        assert!(!is_https("http://127.0.0.1:50051"));
        assert!(!is_https("http"));
    }

    #[test]
    fn a_plaintext_call_presents_no_certificate() {
        assert_eq!(peer_certificate_sha256(&tonic::Request::new(())), None);
    }
}
