//! The one way to open a point: list the cluster's points at a location, choose one
//! ([`Which`]), then open its manifest with the passphrase. Every reader of points (restore,
//! drill, export, diff, the plugin's pre-flight) goes through here, so they choose and refuse
//! points alike.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{find_point, list_points, open_manifest, select_point, Manifest, PointError, PointSummary, Unlocker};
use crate::location::Location;

/// Which point to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which<'a> {
    /// The newest complete point.
    Newest,
    /// The newest complete point at or before this time (`pointInTime`).
    AtOrBefore(OffsetDateTime),
    /// This point, by ID; an incomplete one is refused.
    Id(&'a str),
}

impl<'a> Which<'a> {
    /// `--point ID` when given, else `--point-in-time`, else the newest.
    pub fn from_args(id: Option<&'a str>, at: Option<OffsetDateTime>) -> Self {
        match (id, at) {
            (Some(id), _) => Which::Id(id),
            (None, Some(at)) => Which::AtOrBefore(at),
            (None, None) => Which::Newest,
        }
    }
}

/// A cluster's points at a location, and the one chosen among them.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub cluster_id: String,
    pub points: Vec<PointSummary>,
    pub point: PointSummary,
}

/// Lists `cluster_id`'s points at `location` and chooses one. Nothing is decrypted yet.
pub async fn choose(location: &Location, cluster_id: &str, which: Which<'_>) -> Result<Chosen, PointError> {
    let points = list_points(location, cluster_id).await?;
    let point = match which {
        Which::Newest => select_point(&points, None, cluster_id, location)?,
        Which::AtOrBefore(at) => select_point(&points, Some(at), cluster_id, location)?,
        Which::Id(id) => complete_by_id(&points, id, cluster_id)?,
    }
    .clone();
    Ok(Chosen { cluster_id: cluster_id.to_owned(), points, point })
}

impl Chosen {
    /// Opens the chosen point's manifest ([`open_manifest`]: a point that does not open is
    /// told apart from a wrong passphrase by the cluster's other points).
    pub async fn open(&self, location: &Location, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
        open_manifest(location, &self.cluster_id, &self.points, &self.point, unlocker).await
    }

    /// Another of the same points, by ID, opened the same way (`kubectl dr diff A B`).
    pub async fn open_other(&self, location: &Location, id: &str, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
        let other = complete_by_id(&self.points, id, &self.cluster_id)?;
        open_manifest(location, &self.cluster_id, &self.points, other, unlocker).await
    }
}

fn complete_by_id<'a>(points: &'a [PointSummary], id: &str, cluster_id: &str) -> Result<&'a PointSummary, PointError> {
    let p = find_point(points, id, cluster_id)?;
    if !p.complete {
        return Err(PointError::Incomplete { point: p.id.clone() });
    }
    Ok(p)
}
