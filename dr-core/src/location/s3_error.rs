//! What an S3 failure means for the user: which operation failed, which permission it needs,
//! and whether the bucket or the object is at fault.

use super::LocationError;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Where a failed request went, as the error names it.
pub(super) struct Target<'a> {
    pub bucket: &'a str,
    pub endpoint: &'a str,
    pub region: &'a str,
    /// `s3://bucket/prefix`.
    pub location: String,
}

/// Turns an SDK error into one that says what to check. `key`: the object's full key.
pub(super) fn explain<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, op: S3Op, key: String, at: Target<'_>) -> LocationError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            if detail.contains("no credentials") || detail.contains("credentials provider") {
                return LocationError::NoCredentials { bucket: at.bucket.to_owned() };
            }
            if detail.contains("certificate") {
                return LocationError::TlsUntrusted { endpoint: at.endpoint.to_owned(), detail: short(&detail) };
            }
            return LocationError::Unreachable { bucket: at.bucket.to_owned(), endpoint: at.endpoint.to_owned(), detail: short(&detail) };
        }
        SdkError::ConstructionFailure(_) if detail.contains("credentials") => {
            return LocationError::NoCredentials { bucket: at.bucket.to_owned() };
        }
        _ => {}
    }
    let not_found = status == Some(404) || matches!(code.as_deref(), Some("NoSuchBucket" | "NoSuchKey" | "NotFound"));
    let bucket = at.bucket.to_owned();
    if code.as_deref() == Some("ObjectLockConfigurationNotFoundError") {
        return LocationError::ObjectLockDisabled { bucket };
    }
    if code.as_deref() == Some("NoSuchBucket") || (not_found && op.is_bucket_op()) {
        return LocationError::NoSuchBucket { bucket, region: format!(" in region {}", at.region) };
    }
    if not_found {
        return LocationError::NotFound { location: at.location.clone(), key };
    }
    // A write with If-None-Match: * onto a key that exists.
    if status == Some(412) || code.as_deref() == Some("PreconditionFailed") {
        return LocationError::AlreadyExists { location: at.location.clone(), key };
    }
    match code.as_deref() {
        Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "Forbidden") => {
            LocationError::AccessDenied { operation: op.name(), permission: op.permission(), bucket, key }
        }
        _ if status == Some(403) => LocationError::AccessDenied { operation: op.name(), permission: op.permission(), bucket, key },
        _ => LocationError::S3 { operation: op.name(), bucket, key, detail: short(&detail) },
    }
}

fn short(detail: &str) -> String {
    let d: String = detail.chars().take(400).collect();
    d.replace('\n', " ")
}

#[derive(Clone, Copy)]
pub(super) enum S3Op {
    GetObjectLockConfiguration,
    ListObjects,
    GetObject,
    GetObjectVersion,
    ListObjectVersions,
    HeadObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    DeleteObject,
}

impl S3Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            S3Op::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            S3Op::ListObjects => "ListObjectsV2",
            S3Op::GetObject => "GetObject",
            S3Op::GetObjectVersion => "GetObject (a version)",
            S3Op::ListObjectVersions => "ListObjectVersions",
            S3Op::HeadObject => "HeadObject",
            S3Op::PutObject => "PutObject",
            S3Op::CreateMultipartUpload => "CreateMultipartUpload",
            S3Op::UploadPart => "UploadPart",
            S3Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            S3Op::DeleteObject => "DeleteObject",
        }
    }
    pub(super) fn permission(self) -> &'static str {
        match self {
            S3Op::ListObjects => "s3:ListBucket",
            S3Op::GetObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration",
            S3Op::GetObject | S3Op::HeadObject => "s3:GetObject",
            S3Op::GetObjectVersion => "s3:GetObjectVersion",
            S3Op::ListObjectVersions => "s3:ListBucketVersions",
            S3Op::PutObject | S3Op::CreateMultipartUpload | S3Op::UploadPart | S3Op::CompleteMultipartUpload => "s3:PutObject",
            S3Op::DeleteObject => "s3:DeleteObject",
        }
    }
    pub(super) fn is_bucket_op(self) -> bool {
        matches!(self, S3Op::GetObjectLockConfiguration | S3Op::ListObjects | S3Op::ListObjectVersions)
    }
}
