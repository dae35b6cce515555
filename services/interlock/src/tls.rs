//! The TLS files named in configuration. They are read at start-up, so a missing or malformed file
//! stops the process with its path before it serves or calls anyone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::config::ServeConfig;

/// Longest TLS handshake the server waits for: a client that connects and never finishes its
/// handshake would otherwise hold a task for as long as it likes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server side of `interlock serve`: `None` for plaintext; with a client CA, client
/// certificates are verified against it but stay optional, because only credentials bound to a
/// certificate need one and every other client (agency backends with plain credentials, probes,
/// `buf curl`) must still connect.
pub fn server_tls(config: &ServeConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(certificate), Some(key)) = (&config.tls_certificate, &config.tls_key) else {
        return Ok(None);
    };
    let identity =
        Identity::from_pem(read_pem(certificate, "--tls-certificate")?, read_pem(key, "--tls-key")?);
    let mut tls = ServerTlsConfig::new().identity(identity).timeout(HANDSHAKE_TIMEOUT);
    if let Some(client_ca) = &config.tls_client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read_pem(client_ca, "--tls-client-ca")?))
            .client_auth_optional(true);
    }
    Ok(Some(tls))
}

/// How the services of `interlock serve` reach each other at `https://` addresses.
pub fn mesh_client_tls(config: &ServeConfig) -> anyhow::Result<ClientTlsConfig> {
    client_tls(
        config.mesh_tls_ca.as_deref(),
        config.mesh_tls_client_certificate.as_deref().zip(config.mesh_tls_client_key.as_deref()),
        ("--mesh-tls-ca", "--mesh-tls-client-certificate", "--mesh-tls-client-key"),
    )
}

/// A client TLS configuration from a CA bundle and an optional certificate and key; `flags` name
/// the three settings in errors.
fn client_tls(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
    flags: (&str, &str, &str),
) -> anyhow::Result<ClientTlsConfig> {
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = ca {
        tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, flags.0)?));
    }
    if let Some((certificate, key)) = identity {
        tls = tls.identity(Identity::from_pem(read_pem(certificate, flags.1)?, read_pem(key, flags.2)?));
    }
    Ok(tls)
}

/// Fails when a service `interlock serve` calls (`called`, which includes `own`, this process's
/// own URL, when it calls itself) is at an `https://` address and no --mesh-tls-ca is set.
pub fn check_mesh_addresses<'a>(
    called: impl IntoIterator<Item = &'a String>,
    own: &str,
    ca_configured: bool,
) -> anyhow::Result<()> {
    let called: Vec<&str> = called.into_iter().map(String::as_str).collect();
    if !ca_configured && interlock_auth::is_https(own) && called.contains(&own) {
        bail!(
            "this process serves TLS and calls its own services at {own}: set --mesh-tls-ca \
             (INTERLOCK_MESH_TLS_CA) to the CA bundle that issued --tls-certificate"
        );
    }
    check_https_addresses(called, ca_configured, "--mesh-tls-ca (INTERLOCK_MESH_TLS_CA)")
}

/// Fails when a service this process calls is at an `https://` address that no configured CA can
/// verify: every call would otherwise fail later, one handshake at a time.
fn check_https_addresses<'a>(
    addresses: impl IntoIterator<Item = &'a str>,
    ca_configured: bool,
    ca_flag: &str,
) -> anyhow::Result<()> {
    if ca_configured {
        return Ok(());
    }
    if let Some(address) = addresses.into_iter().find(|address| interlock_auth::is_https(address)) {
        bail!("{address} is an https:// address, but no {ca_flag} names the CA bundle that verifies it");
    }
    Ok(())
}

/// TLS of the operator commands' connection (`interlock agencies …`, `interlock audit …`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// PEM bundle of the CAs that verify the server at an `https://` address.
    #[arg(long, global = true, help_heading = "Global options", env = "INTERLOCK_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// PEM certificate chain to present to the server (mutual TLS); needed to sign in with a
    /// credential bound to this certificate.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "INTERLOCK_TLS_CLIENT_CERTIFICATE",
        requires = "tls_client_key"
    )]
    pub tls_client_certificate: Option<PathBuf>,

    /// PEM private key of --tls-client-certificate.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "INTERLOCK_TLS_CLIENT_KEY",
        requires = "tls_client_certificate"
    )]
    pub tls_client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// An endpoint for `address`: TLS with these settings for `https://`, plaintext for `http://`.
    pub fn endpoint(&self, address: &str) -> anyhow::Result<Endpoint> {
        check_https_addresses([address], self.tls_ca.is_some(), "--tls-ca (INTERLOCK_TLS_CA)")?;
        let tls = client_tls(
            self.tls_ca.as_deref(),
            self.tls_client_certificate.as_deref().zip(self.tls_client_key.as_deref()),
            ("--tls-ca", "--tls-client-certificate", "--tls-client-key"),
        )?;
        interlock_auth::endpoint(address, &tls)
            .with_context(|| format!("cannot use {address:?}: not a valid address or unusable TLS files"))
    }

    /// A connection to the server at `address` (see `endpoint`), given up after 5 seconds.
    pub async fn connect(&self, address: &str) -> anyhow::Result<Channel> {
        self.endpoint(address)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot reach {address}"))
    }
}

/// The contents of a PEM file, checked to hold at least one PEM block.
fn read_pem(path: &Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN ") {
        bail!("{flag}: {} is not a PEM file (no -----BEGIN line)", path.display());
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_server_calling_itself_needs_the_mesh_ca() {
        let own = "https://127.0.0.1:50051".to_owned();
        let error = check_mesh_addresses([&own], &own, false).unwrap_err().to_string();
        assert!(error.contains("calls its own services"), "{error}");
        assert!(check_mesh_addresses([&own], &own, true).is_ok());
        let plaintext = "http://127.0.0.1:50051".to_owned();
        assert!(check_mesh_addresses([&plaintext], &plaintext, false).is_ok());
    }

    #[test]
    fn https_addresses_need_a_ca() {
        let refused = check_https_addresses(["http://a:1", "https://b:2"], false, "--mesh-tls-ca");
        assert!(refused.unwrap_err().to_string().contains("https://b:2"));
        assert!(check_https_addresses(["https://b:2"], true, "--mesh-tls-ca").is_ok());
        assert!(check_https_addresses(["http://a:1"], false, "--mesh-tls-ca").is_ok());
    }

    #[test]
    fn a_file_without_a_pem_block_is_refused_with_its_flag() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate").unwrap();
        let error = read_pem(file.path(), "--tls-certificate").unwrap_err().to_string();
        assert!(error.starts_with("--tls-certificate:"), "{error}");
    }
}
