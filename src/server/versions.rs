//! The APIs and versions this server answers, and ApiVersions itself.
//!
//! A row is here only when its handler answers every version in its range; ApiVersions
//! advertises exactly these rows. The ranges are Kafka 4's (KIP-896 dropped the oldest
//! versions) up to the newest version that names topics rather than topic ids (Fetch 13 and
//! later address topics by id only).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::connection::RequestContext;

/// (API, lowest version, highest version).
const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
];

/// The versions of `key` served here, if any.
pub(crate) fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

fn table() -> Vec<ApiVersion> {
    SERVED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The answer to an ApiVersions request of a version this server does not know.
pub(crate) fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(table())
}

/// ApiVersions: every API and version range served here.
pub(crate) fn api_versions(
    _ctx: &RequestContext<'_>,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_api_keys(table())
        .with_finalized_features_epoch(-1)
}
