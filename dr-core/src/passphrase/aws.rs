//! AWS Secrets Manager: the passphrase is a secret's string value, read with the default
//! credential chain (IRSA in the cluster).

use super::{AwsSecret, PassphraseError};
use std::time::Duration;

use crate::format::crypto::Passphrase;

pub(super) async fn read_aws_secret(secret: &AwsSecret, endpoint: Option<&str>) -> Result<Passphrase, PassphraseError> {
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    crate::init_crypto_provider();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(secret.region.clone())).load().await;
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).build());
    if let Some(e) = endpoint {
        conf = conf.endpoint_url(e);
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(conf.build());
    let (name, region) = (secret.name.clone(), secret.region.clone());
    let out = client.get_secret_value().secret_id(&secret.name).send().await.map_err(|err| {
        let detail = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) if detail.contains("credentials") => {
                PassphraseError::AwsNoCredentials { name: name.clone() }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                PassphraseError::AwsUnreachable { region: region.clone(), detail: detail.chars().take(300).collect() }
            }
            SdkError::ConstructionFailure(_) if detail.contains("credentials") => PassphraseError::AwsNoCredentials { name: name.clone() },
            _ => match err.code() {
                Some("ResourceNotFoundException") => PassphraseError::AwsNotFound { name: name.clone(), region: region.clone() },
                Some("AccessDeniedException") | Some("UnrecognizedClientException") | Some("InvalidSignatureException") => {
                    PassphraseError::AwsDenied { name: name.clone(), region: region.clone() }
                }
                _ => PassphraseError::AwsOther { name: name.clone(), region: region.clone(), detail: detail.chars().take(300).collect() },
            },
        }
    })?;
    let where_ = format!("AWS Secrets Manager secret {} in {}", secret.name, secret.region);
    let mut out = out;
    // Moved out, not copied: `Passphrase` wipes what it is given.
    if let Some(s) = out.secret_string.take() {
        Passphrase::new(s).map_err(|_| PassphraseError::Empty(where_))
    } else if let Some(b) = out.secret_binary.take() {
        Passphrase::from_bytes(b.into_inner()).map_err(|_| PassphraseError::Empty(where_))
    } else {
        Err(PassphraseError::Empty(where_))
    }
}
