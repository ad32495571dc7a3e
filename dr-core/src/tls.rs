//! Which certificate authorities the product trusts. Every HTTPS client (S3, Vault, AWS
//! Secrets Manager and STS) trusts the system's roots: on a workstation the OS store, in the
//! job image the CA bundle the image ships at `/etc/ssl/certs/ca-certificates.crt`
//! (`SSL_CERT_FILE` names another). A private CA is added per endpoint from a PEM bundle
//! (`--s3-ca-bundle`, a profile's `caBundleConfigMap`, the chart's `vault.caBundle`), so
//! nobody has to turn verification off.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The certificates of a PEM bundle; an error that names `from` when it holds none or does
/// not parse, so a wrong file is reported before any connection is tried.
pub fn certificates_in(pem: &[u8], from: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| format!("the CA bundle {from} is not valid PEM ({e})"))?;
    if certs.is_empty() {
        return Err(format!("the CA bundle {from} holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

/// `builder` trusting, besides the system's roots, the certificates of the PEM file `path`
/// (Vault's and registries' private CAs). The error says what is wrong with the file.
pub(crate) fn trust_pem_file(mut builder: reqwest::ClientBuilder, path: &std::path::Path) -> Result<reqwest::ClientBuilder, String> {
    let name = path.display().to_string();
    let pem = crate::local_file::read(path, "the CA bundle", crate::local_file::MAX_FILE_BYTES, crate::local_file::Links::Follow)
        .map_err(|e| crate::error_text(&e))?;
    for der in certificates_in(&pem, &name)? {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(&der).map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(builder)
}

/// What the system's trust store holds, as this process sees it (the job image's
/// `self-check` reports it: an image without roots cannot reach AWS or a public Vault).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemRoots {
    /// Certificates loaded.
    pub certificates: usize,
    /// Where they came from (`SSL_CERT_FILE`, or the first bundle found).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Files that could not be read or parsed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Loads the system's roots the way every HTTPS client of the product does (rustls-native-certs).
pub fn system_roots() -> SystemRoots {
    let loaded = rustls_native_certs::load_native_certs();
    let source = std::env::var("SSL_CERT_FILE").ok().or_else(|| {
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .map(str::to_owned)
    });
    SystemRoots { certificates: loaded.certs.len(), source, errors: loaded.errors.iter().map(|e| e.to_string()).collect() }
}

/// An HTTPS client for the AWS SDK that trusts the system's roots and the certificates in `pem`.
pub(crate) fn aws_https_client_with_ca(pem: Vec<u8>) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let ctx = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::default().with_pem_certificate(pem))
        .build()
        .expect("a trust store with native roots and a PEM bundle that certificates_in accepted");
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc)).tls_context(ctx).build_https()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bundle_without_certificates_is_refused_by_name() {
        let err = super::certificates_in(b"not a certificate\n", "configmap/x").unwrap_err();
        assert!(err.contains("configmap/x") && err.contains("no certificate"), "{err}");
        let pem = include_bytes!("../../test-support/unused-ca.pem");
        assert_eq!(super::certificates_in(pem, "unused-ca.pem").unwrap().len(), 1);
    }
}
