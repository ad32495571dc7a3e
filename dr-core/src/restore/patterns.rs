//! Patterns the chart's schema checks (and the Job's settings with it), so that no value can
//! add fields to the manifests (a newline and an indented key would) and what would fail later
//! fails at `helm install`. A leaf: the controls, the mapping and the selection take their
//! patterns from here, and the chart's values type takes those types.

/// A DNS subdomain (Secrets, ConfigMaps, PVCs, profiles, StorageClasses).
pub const NAME: &str = "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
pub const NAME_OR_EMPTY: &str = "^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$";
/// A DNS label (namespaces).
pub const LABEL: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
/// `Kind`, `Kind.group`, `plural` or `plural.group`.
pub const KIND: &str = "^[A-Za-z0-9][A-Za-z0-9.-]*$";
pub const URL_OR_EMPTY: &str = "^$|^https?://[^\\s\"'{}]+$";
pub const REPOSITORY: &str = "^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$";
pub const REPOSITORY_OR_EMPTY: &str = "^$|^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$";
pub const REGISTRY: &str = "^[A-Za-z0-9][A-Za-z0-9._:/-]*[A-Za-z0-9]$";
pub const CLUSTER_ID: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// A restore point ID (`20261121T093000.123Z-0a1b2c3d`, as `kubectl dr restore-points` lists it), or nothing.
pub const POINT_ID_OR_EMPTY: &str = "^$|^[0-9]{8}T[0-9]{6}\\.[0-9]{3}Z-[A-Za-z0-9]+$";
pub const RFC3339_OR_EMPTY: &str = "^$|^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
/// `--set skipResource="profiles\,policies"` leaves the backslash in; the Job accepts it.
pub const CATEGORIES_OR_EMPTY: &str = "^$|^ *(profiles|policies|secrets|cluster|applications) *(\\\\?, *(profiles|policies|secrets|cluster|applications) *)*$";
pub const STATUS_KINDS_OR_EMPTY: &str = "^$|^all$|^[A-Za-z0-9][A-Za-z0-9.-]*( *, *[A-Za-z0-9][A-Za-z0-9.-]*)*$";
pub const OBJECT: &str = "^[A-Za-z0-9][A-Za-z0-9.-]*/([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[A-Za-z0-9._:-]+$";
pub const SELECTOR: &str = "^[A-Za-z0-9._/!=(), -]*$";
pub const API_GROUP: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$";
pub const RESOURCE: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
