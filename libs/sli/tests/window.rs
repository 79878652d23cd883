#![allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
//! The window a rule reads, against a real store: every instance of each scope with the
//! labels the rules name, values from the same code as the panels, no data as `None`.

use mixmon_model::alert::{LabelSet, Scope};
use mixmon_model::{CheckId, EntityName, Fields, Minute, ProberId, Region, Rollup, RollupDelta, SeriesKey, Subject};
use mixmon_sli::{instances, FigureMetric, Metric, Stat};
use mixmon_store::{BatchId, MemoryStore, Store};

const NOW: i64 = 1_800_000_030_000; // 30 s into a minute

fn key(check: &str, region: &str) -> SeriesKey {
    SeriesKey { check: CheckId::new(check).unwrap(), region: Region::new(region).unwrap() }
}

async fn store() -> MemoryStore {
    let store = MemoryStore::new();
    let mut delta = RollupDelta::default();
    let minute = Minute::containing(NOW);
    for (check, region, total, ok) in
        [("api", "eu-west", 12, 12), ("api", "us-west", 12, 6), ("edge", "eu-west", 12, 12)]
    {
        let rollup = Rollup { total, successes: ok, ..Rollup::default() };
        delta.add_rollup(key(check, region), minute, &rollup);
    }
    let mut disk = Fields::default();
    disk.max("dx:/", 900_000);
    disk.max("dx:/data", 100_000);
    let node = Subject::node(Region::new("ap").unwrap(), EntityName::new("node-ap-0").unwrap());
    delta.figures.insert((node, minute), disk);
    let mut pod = Fields::default();
    pod.add("rs", 4);
    pod.add("n", 2);
    let ns = EntityName::new("ai-mixer").unwrap();
    let pod_subject = Subject::pod(Region::new("ap").unwrap(), &ns, &EntityName::new("mixer-ap-1").unwrap()).unwrap();
    delta.figures.insert((pod_subject, minute), pod);
    let batch = BatchId { prober: ProberId::new("p").unwrap(), epoch: 1, seq: 1 };
    store.apply_batch(&batch, &delta).await.unwrap();
    store
}

fn value_of(found: &[mixmon_sli::Instance], labels: &[(&str, &str)]) -> Option<f64> {
    let want: LabelSet = labels.iter().copied().collect();
    found.iter().find(|i| i.labels == want).unwrap_or_else(|| panic!("no instance {want} in {found:?}")).value
}

#[tokio::test]
async fn probe_metrics_per_scope() {
    let store = store().await;
    let rate = |scope| instances(&store, Metric::SuccessRate, None, scope, 1, NOW);
    let per_region = rate(Scope::EndpointRegion).await.unwrap();
    assert_eq!(per_region.len(), 3);
    assert_eq!(value_of(&per_region, &[("endpoint", "api"), ("probe_region", "us-west")]), Some(0.5));
    let per_endpoint = rate(Scope::Endpoint).await.unwrap();
    assert_eq!(value_of(&per_endpoint, &[("endpoint", "api")]), Some(0.75), "every region merged");
    let by_probe_region = rate(Scope::Region).await.unwrap();
    assert_eq!(value_of(&by_probe_region, &[("probe_region", "eu-west")]), Some(1.0));
    let global = rate(Scope::Global).await.unwrap();
    assert_eq!(value_of(&global, &[]), Some(30.0 / 36.0));
    let failures = instances(&store, Metric::Failures(None), None, Scope::EndpointRegion, 5, NOW).await.unwrap();
    assert_eq!(value_of(&failures, &[("endpoint", "api"), ("probe_region", "us-west")]), Some(6.0));
    // Long before the data: instances exist, without a value.
    let old = instances(&store, Metric::SuccessRate, None, Scope::Endpoint, 1, NOW - 3_600_000).await.unwrap();
    assert!(old.iter().all(|i| i.value.is_none()), "{old:?}");
}

#[tokio::test]
async fn figures_per_node_mount_and_pod() {
    let store = store().await;
    let disk = instances(&store, Metric::Figure(FigureMetric::NodeDiskUsed), Some(Stat::Max), Scope::Node, 1, NOW)
        .await
        .unwrap();
    assert_eq!(value_of(&disk, &[("node", "node-ap-0"), ("region", "ap"), ("mount", "/")]), Some(0.9));
    assert_eq!(value_of(&disk, &[("node", "node-ap-0"), ("region", "ap"), ("mount", "/data")]), Some(0.1));
    let restarts =
        instances(&store, Metric::Figure(FigureMetric::PodRestarts), None, Scope::Pod, 5, NOW).await.unwrap();
    assert_eq!(value_of(&restarts, &[("pod", "mixer-ap-1"), ("namespace", "ai-mixer"), ("region", "ap")]), Some(4.0));
}

#[tokio::test]
async fn combinations_the_catalogue_lacks_are_refused() {
    let store = store().await;
    let wrong_scope = instances(&store, Metric::Figure(FigureMetric::NodeCpu), None, Scope::Endpoint, 1, NOW).await;
    assert!(wrong_scope.unwrap_err().to_string().contains("node_cpu_ratio has no endpoint scope"));
    let wrong_stat = instances(&store, Metric::LatencyP95, Some(Stat::Max), Scope::Endpoint, 1, NOW).await;
    assert!(wrong_stat.unwrap_err().to_string().contains("has a single form"));
    let too_long = instances(&store, Metric::LatencyP95, None, Scope::Endpoint, 20_000, NOW).await;
    assert!(too_long.is_err());
}
