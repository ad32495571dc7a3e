//! kubectl-dr's library: everything the `kubectl-dr` plugin and the in-cluster job share.
//!
//! - [`crypto`], [`format`]: passphrases, keys and the encrypted stream format (pure, sync)
//! - [`point`]: restore points — naming, manifest, writing and reading whole points
//! - [`location`]: where points live (a directory or an S3 bucket)
//! - [`passphrase`]: where the DR passphrase comes from (`k10-dr-secret`: raw, Vault, AWS)
//! - [`catalog`]: what a point holds — resource categories and entries

pub mod crypto;
pub mod format;
