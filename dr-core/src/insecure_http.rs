//! An HTTP client for the AWS SDK that does not verify TLS certificates, for S3 profiles with
//! skip-TLS-verify (a lab MinIO with a self-signed certificate). The SDK's own client has no
//! such switch and does not let a custom rustls verifier in, so this adapts reqwest (already
//! in the build for Vault). Prefer a CA bundle: this trusts anyone on the network path.

use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

#[derive(Debug, Clone)]
struct Unverified(reqwest::Client);

impl HttpClient for Unverified {
    fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Unverified {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            // Every request kubectl-dr sends has an in-memory body (parts are buffered).
            let bytes =
                body.bytes().ok_or_else(|| ConnectorError::other("a streaming request body cannot be sent without TLS verification".into(), None))?.to_vec();
            let response = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(bytes).send().await.map_err(|e| {
                if e.is_timeout() {
                    ConnectorError::timeout(e.into())
                } else {
                    ConnectorError::io(e.into())
                }
            })?;
            let response: http::Response<reqwest::Body> = response.into();
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x)).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// The client; `None` when reqwest cannot build one.
pub(crate) fn client() -> Result<SharedHttpClient, String> {
    crate::init_crypto_provider();
    let inner =
        reqwest::Client::builder().danger_accept_invalid_certs(true).connect_timeout(std::time::Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    Ok(SharedHttpClient::new(Unverified(inner)))
}
