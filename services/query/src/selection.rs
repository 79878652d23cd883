//! From the stored series and one target's selection to the series a response shows: one per
//! (endpoint, region), or one per endpoint merged across regions (`region: "all"`), where the
//! rollups (counts and sketches) are merged so quantiles are true cross-region quantiles.
//! When no filter leaves a region out, the merged group reads the endpoint's all-regions
//! series, which the aggregator stores at ingest: one series read instead of one per region.

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
    let mut filtered_out: BTreeMap<&str, usize> = BTreeMap::new();
    for key in all.iter().filter(|k| !k.is_all_regions()) {
        let endpoint_ok = selection.endpoints.as_ref().is_none_or(|list| list.iter().any(|e| e == key.check.as_str()));
        if !endpoint_ok {
            continue;
        }
        if accepts_all(filters, key) {
            by_endpoint.entry(key.check.as_str()).or_default().push(key);
        } else {
            *filtered_out.entry(key.check.as_str()).or_default() += 1;
        }
    }
    let choice = &selection.regions;
    let mut groups = Vec::new();
    for (endpoint, mut keys) in by_endpoint {
        keys.sort_by(|a, b| a.region.cmp(&b.region));
        keys.dedup();
        if choice.merged {
            let members = match (filtered_out.contains_key(endpoint), keys.first()) {
                (false, Some(first)) => vec![SeriesKey::all_regions(first.check.clone())],
                _ => keys.iter().map(|k| (*k).clone()).collect(),
            };
            groups.push(SeriesGroup { endpoint: endpoint.to_string(), region: MERGED_REGION.to_string(), members });
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
        let groups = select(&all, &merged, &[]);
        assert_eq!(ids(&groups), ["api all 1", "api us-west 1"]);
        assert!(groups[0].members[0].is_all_regions(), "nothing filtered: the stored all-regions series");
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
        assert_eq!(ids(&groups), ["api all 2"], "a region left out: the rest are merged at read time");
        assert!(groups[0].members.iter().all(|k| !k.is_all_regions()));
    }
}
