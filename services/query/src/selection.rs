//! From the stored series and one target's selection to the series a response shows: one per
//! (endpoint, region), or one per endpoint merged across regions (`region: "all"`), where the
//! rollups (counts and sketches) are merged so quantiles are true cross-region quantiles.

use std::collections::BTreeMap;

use mixmon_model::SeriesKey;

use crate::filter::{accepts_all, Filter};
use crate::request::{Selection, MERGED_REGION};

/// One output series and the stored series it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesGroup {
    pub endpoint: String,
    /// A region name, or [`MERGED_REGION`].
    pub region: String,
    pub members: Vec<SeriesKey>,
}

impl SeriesGroup {
    pub fn id(&self) -> (String, String) {
        (self.endpoint.clone(), self.region.clone())
    }
}

/// Groups sorted by endpoint, the merged group first, then regions by name.
pub(crate) fn select(all: &[SeriesKey], selection: &Selection, filters: &[Filter]) -> Vec<SeriesGroup> {
    let mut by_endpoint: BTreeMap<&str, Vec<&SeriesKey>> = BTreeMap::new();
    for key in all {
        let endpoint_ok = selection.endpoints.as_ref().is_none_or(|list| list.iter().any(|e| e == key.check.as_str()));
        if endpoint_ok && accepts_all(filters, key) {
            by_endpoint.entry(key.check.as_str()).or_default().push(key);
        }
    }
    let choice = &selection.regions;
    let mut groups = Vec::new();
    for (endpoint, mut keys) in by_endpoint {
        keys.sort_by(|a, b| a.region.cmp(&b.region));
        keys.dedup();
        if choice.merged {
            groups.push(SeriesGroup {
                endpoint: endpoint.to_string(),
                region: MERGED_REGION.to_string(),
                members: keys.iter().map(|k| (*k).clone()).collect(),
            });
        }
        for key in keys {
            if choice.each || choice.named.iter().any(|r| r == key.region.as_str()) {
                groups.push(SeriesGroup {
                    endpoint: endpoint.to_string(),
                    region: key.region.to_string(),
                    members: vec![key.clone()],
                });
            }
        }
    }
    groups
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::request::RegionChoice;
    use mixmon_model::{CheckId, Region};

    fn key(check: &str, region: &str) -> SeriesKey {
        SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
    }

    fn ids(groups: &[SeriesGroup]) -> Vec<String> {
        groups.iter().map(|g| format!("{} {} {}", g.endpoint, g.region, g.members.len())).collect()
    }

    #[test]
    fn regions_each_named_and_merged() {
        let all = [key("api", "eu-west"), key("api", "us-west"), key("edge", "us-west")];
        let every = select(&all, &Selection::default(), &[]);
        assert_eq!(ids(&every), ["api eu-west 1", "api us-west 1", "edge us-west 1"]);
        let merged = Selection {
            endpoints: Some(vec!["api".into()]),
            regions: RegionChoice { each: false, named: vec!["us-west".into(), "ap".into()], merged: true },
        };
        assert_eq!(ids(&select(&all, &merged, &[])), ["api all 2", "api us-west 1"]);
        let none = Selection { endpoints: Some(vec!["nope".into()]), ..Selection::default() };
        assert!(select(&all, &none, &[]).is_empty());
    }

    #[test]
    fn filters_apply_before_merging() {
        let all = [key("api", "eu-west"), key("api", "us-west"), key("api", "us-east")];
        let filters = crate::filter::parse_filters(&serde_json::json!([
            {"key": "region", "operator": "=~", "value": "us-.*"}
        ]))
        .unwrap();
        let merged = Selection { endpoints: None, regions: RegionChoice { each: false, named: vec![], merged: true } };
        let groups = select(&all, &merged, &filters);
        assert_eq!(ids(&groups), ["api all 2"]);
    }
}
