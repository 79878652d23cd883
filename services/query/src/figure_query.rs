//! `/query` for the figure metrics (`mixer_*`, `node_*`, `pod_*`): which subjects a target
//! covers, reading their [`Fields`] over the timeline (hourly fields for whole-hour steps,
//! minutes otherwise, in bounded chunks), merging them per point, and the Grafana shapes.
//!
//! Series: the mixer one per region (`mixer <region>`, tag `region`) plus the merge of every
//! region (`mixer all`, exact, since fields merge by sum and max); nodes and pods one per
//! subject (`<name> <region>`, tags `node`/`pod` and `region`). `mixer_genre_share` and
//! `node_disk_used_ratio` fan out into one series per genre or mount (appended to the name,
//! tag `genre`/`mount`). With several metrics in one target the metric name is appended, as
//! for the probe metrics.

use std::collections::{BTreeSet, HashMap};

use mixmon_model::time::MINUTES_PER_HOUR;
use mixmon_model::{figures, Fields, Hour, Minute, Subject, SubjectKind};
use mixmon_store::{Store, StoreError, MAX_READ_KEYS};
use serde_json::{json, Map, Value};

use crate::body::opt_string;
use crate::error::{clip, QueryError};
use crate::figure::{FigureMetric, Stat};
use crate::filter::{accepts_subject, Filter};
use crate::request::{is_wildcard, names, region_choice, RegionChoice, Target, MERGED_REGION};
use crate::timeline::{Timeline, MS_PER_MINUTE};

/// At most this many minutes per store read.
const MAX_CHUNK_MINUTES: i64 = 2 * 24 * 60;

/// What a target's payload says about the figure metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FigureSelection {
    /// `None`: the default (the mixer: each region and the merge; nodes and pods: every region).
    pub regions: Option<RegionChoice>,
    pub nodes: Option<Vec<String>>,
    pub pods: Option<Vec<String>>,
    pub mounts: Option<Vec<String>>,
    pub genres: Option<Vec<String>>,
    pub stat: Option<Stat>,
}

/// A name list from the payload; a wildcard anywhere means "every one" (`None`).
fn name_list(payload: &Map<String, Value>, one: &str, many: &str) -> Result<Option<Vec<String>>, QueryError> {
    let list = names(payload.get(one).or_else(|| payload.get(many)), &format!("payload.{one}"))?;
    Ok(list.filter(|list| !list.iter().any(|n| is_wildcard(n))))
}

pub(crate) fn parse_figure_selection(payload: &Map<String, Value>) -> Result<FigureSelection, QueryError> {
    let regions = names(payload.get("region").or_else(|| payload.get("regions")), "payload.region")?.map(|list| {
        region_choice(list.into_iter().map(|r| if r == "global" { MERGED_REGION.to_string() } else { r }).collect())
    });
    let stat = match opt_string(payload.get("stat"), "payload.stat")? {
        None => None,
        Some(text) if text.trim().is_empty() => None,
        Some(text) => Some(Stat::parse(&text).ok_or_else(|| {
            QueryError::bad_request(
                "invalid_payload",
                format!("payload.stat must be 'mean' or 'max', not '{}'", clip(&text, 40)),
            )
        })?),
    };
    Ok(FigureSelection {
        regions,
        nodes: name_list(payload, "node", "nodes")?,
        pods: name_list(payload, "pod", "pods")?,
        mounts: name_list(payload, "mount", "mounts")?,
        genres: name_list(payload, "genre", "genres")?,
        stat,
    })
}

/// One output series (before any fan-out) and the subjects merged into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FigureGroup {
    pub kind: SubjectKind,
    /// A region, or [`MERGED_REGION`].
    pub region: String,
    /// The node or pod; `None` for the mixer.
    pub name: Option<String>,
    pub members: Vec<Subject>,
}

impl FigureGroup {
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} {}", self.region),
            None => format!("{} {}", self.kind.as_str(), self.region),
        }
    }

    fn tags(&self) -> Map<String, Value> {
        let mut tags = Map::new();
        if let Some(name) = &self.name {
            tags.insert(self.kind.as_str().into(), json!(name));
        }
        tags.insert("region".into(), json!(self.region));
        tags
    }
}

/// The groups of one subject kind a selection covers: for the mixer the merged group first,
/// then regions by name; for nodes and pods one group per subject, sorted.
pub(crate) fn select_figures(
    all: &[Subject],
    kind: SubjectKind,
    selection: &FigureSelection,
    filters: &[Filter],
) -> Vec<FigureGroup> {
    let mut subjects: Vec<&Subject> = all
        .iter()
        .filter(|s| s.kind == kind && !s.region.is_all() && accepts_subject(filters, s))
        .filter(|s| {
            let wanted = match kind {
                SubjectKind::Node => selection.nodes.as_ref(),
                SubjectKind::Pod => selection.pods.as_ref(),
                SubjectKind::Mixer => None,
            };
            let name = s.name.as_ref().map_or("", |n| n.as_str());
            wanted.is_none_or(|list| list.iter().any(|w| w == name))
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    let named = |region: &str| match &selection.regions {
        None => true,
        Some(choice) => choice.each || choice.named.iter().any(|r| r == region),
    };
    let mut groups = Vec::new();
    match kind {
        SubjectKind::Mixer => {
            let merged = selection.regions.as_ref().is_none_or(|c| c.merged);
            if merged && !subjects.is_empty() {
                groups.push(FigureGroup {
                    kind,
                    region: MERGED_REGION.to_string(),
                    name: None,
                    members: subjects.iter().map(|s| (*s).clone()).collect(),
                });
            }
            for subject in subjects.iter().filter(|s| named(s.region.as_str())) {
                groups.push(FigureGroup {
                    kind,
                    region: subject.region.to_string(),
                    name: None,
                    members: vec![(*subject).clone()],
                });
            }
        }
        SubjectKind::Node | SubjectKind::Pod => {
            // For a node or pod, `all` is not a merge: any region will do.
            let any_region = selection.regions.as_ref().is_none_or(|c| c.each || c.merged);
            for subject in subjects.iter().filter(|s| any_region || named(s.region.as_str())) {
                groups.push(FigureGroup {
                    kind,
                    region: subject.region.to_string(),
                    name: subject.name.as_ref().map(|n| n.to_string()),
                    members: vec![(*subject).clone()],
                });
            }
        }
    }
    groups
}

/// Every subject's minute fields in `from..to`; when the minute in progress (`now`) is among
/// them, the minute before it is read too, to count the pods not heard from in it yet
/// ([`figures::count_pods_not_yet_heard`]), so a caller must skip minutes before `from`.
async fn read_minutes(
    store: &dyn Store,
    subjects: &[Subject],
    from: i64,
    to: i64,
    now: Minute,
) -> Result<Vec<Vec<(Minute, Fields)>>, StoreError> {
    let in_progress = (from..to).contains(&now.0);
    let read_from = if in_progress { from - 1 } else { from };
    let mut read = store.read_figures(subjects, Minute(read_from), Minute(to)).await?;
    if in_progress {
        read.iter_mut().for_each(|minutes| figures::count_pods_not_yet_heard(minutes, now));
    }
    Ok(read)
}

/// Every subject's fields per point of `timeline`: from hourly fields when the step is whole
/// hours, else from minutes.
async fn load_points(
    store: &dyn Store,
    subjects: &[Subject],
    timeline: &Timeline,
    now: Minute,
) -> Result<Vec<Vec<Fields>>, StoreError> {
    let mut out = vec![vec![Fields::default(); timeline.points]; subjects.len()];
    if subjects.is_empty() {
        return Ok(out);
    }
    let (first, end, step) = (timeline.first_minute(), timeline.end_minute(), timeline.step_minutes().max(1));
    let place = |points: &mut Vec<Fields>, minute: i64, fields: &Fields| {
        if minute >= first && minute < end {
            if let Some(point) = usize::try_from((minute - first) / step).ok().and_then(|i| points.get_mut(i)) {
                point.merge(fields);
            }
        }
    };
    if step % MINUTES_PER_HOUR == 0 {
        let read = store.read_figures_hourly(subjects, Hour::floor(Minute(first)), Hour::ceil(Minute(end))).await?;
        for (hours, points) in read.iter().zip(out.iter_mut()) {
            for (hour, fields) in hours {
                place(points, hour.first_minute().0, fields);
            }
        }
        return Ok(out);
    }
    let chunk_minutes = ((MAX_READ_KEYS / subjects.len()) as i64).clamp(60, MAX_CHUNK_MINUTES);
    let mut chunk_from = first;
    while chunk_from < end {
        let chunk_to = Hour::ceil(Minute(chunk_from + chunk_minutes)).first_minute().0.min(end);
        let read = read_minutes(store, subjects, chunk_from, chunk_to, now).await?;
        for (minutes, points) in read.iter().zip(out.iter_mut()) {
            for (minute, fields) in minutes.iter().filter(|(m, _)| (chunk_from..chunk_to).contains(&m.0)) {
                place(points, minute.0, fields);
            }
        }
        chunk_from = chunk_to;
    }
    Ok(out)
}

/// Every subject's fields over minutes `from..to`, exactly: whole hours from hourly fields,
/// the ragged ends from minutes.
async fn load_whole(
    store: &dyn Store,
    subjects: &[Subject],
    from: i64,
    to: i64,
    now: Minute,
) -> Result<Vec<Fields>, StoreError> {
    let mut out = vec![Fields::default(); subjects.len()];
    if subjects.is_empty() || from >= to {
        return Ok(out);
    }
    let (hours_from, hours_to) = (Hour::ceil(Minute(from)), Hour::floor(Minute(to)));
    let mut edges = Vec::new();
    if hours_from < hours_to {
        let read = store.read_figures_hourly(subjects, hours_from, hours_to).await?;
        for (hours, whole) in read.iter().zip(out.iter_mut()) {
            for (_, fields) in hours.iter().filter(|(h, _)| (hours_from..hours_to).contains(h)) {
                whole.merge(fields);
            }
        }
        edges.push((from, hours_from.first_minute().0));
        edges.push((hours_to.first_minute().0, to));
    } else {
        edges.push((from, to));
    }
    for (edge_from, edge_to) in edges.into_iter().filter(|(a, b)| a < b) {
        let read = read_minutes(store, subjects, edge_from, edge_to, now).await?;
        for (minutes, whole) in read.iter().zip(out.iter_mut()) {
            for (_, fields) in minutes.iter().filter(|(m, _)| (edge_from..edge_to).contains(&m.0)) {
                whole.merge(fields);
            }
        }
    }
    Ok(out)
}

/// The fields of one group: its members' merged, alongside (they cover the same time).
fn merge_members<'a>(members: impl Iterator<Item = &'a Fields>) -> Fields {
    let mut merged = Fields::default();
    members.for_each(|f| merged.merge_concurrent(f));
    merged
}

/// Elements of one target's figure metrics, in the target's metric order.
pub(crate) async fn run_target(
    store: &dyn Store,
    all: &[Subject],
    target: &Target,
    filters: &[Filter],
    timeline: &Timeline,
) -> Result<Vec<Value>, QueryError> {
    let metrics: Vec<FigureMetric> = target.metrics.iter().filter_map(|m| m.figure()).collect();
    if metrics.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: BTreeSet<SubjectKind> = metrics.iter().map(|m| m.kind()).collect();
    let groups: HashMap<SubjectKind, Vec<FigureGroup>> =
        kinds.into_iter().map(|kind| (kind, select_figures(all, kind, &target.figures, filters))).collect();
    let mut subjects: Vec<Subject> = groups.values().flatten().flat_map(|g| g.members.iter().cloned()).collect();
    subjects.sort();
    subjects.dedup();
    let position = |s: &Subject| subjects.binary_search(s).ok();
    // Per group (in `groups` order per kind): its fields per point, or over the whole range.
    let mut folded: HashMap<SubjectKind, Vec<Vec<Fields>>> = HashMap::new();
    let (from, to) = timeline.range_minutes();
    let now = Minute::containing(chrono::Utc::now().timestamp_millis());
    if target.table {
        let whole = load_whole(store, &subjects, from, to, now).await?;
        for (kind, list) in &groups {
            let per_group = list
                .iter()
                .map(|g| vec![merge_members(g.members.iter().filter_map(|s| position(s).and_then(|i| whole.get(i))))])
                .collect();
            folded.insert(*kind, per_group);
        }
    } else {
        let points = load_points(store, &subjects, timeline, now).await?;
        for (kind, list) in &groups {
            let per_group = list
                .iter()
                .map(|g| {
                    let members: Vec<&Vec<Fields>> =
                        g.members.iter().filter_map(|s| position(s).and_then(|i| points.get(i))).collect();
                    (0..timeline.points).map(|p| merge_members(members.iter().filter_map(|m| m.get(p)))).collect()
                })
                .collect();
            folded.insert(*kind, per_group);
        }
    }
    let several = target.metrics.len() > 1;
    let mut out = Vec::new();
    for metric in metrics {
        let (Some(list), Some(fields)) = (groups.get(&metric.kind()), folded.get(&metric.kind())) else {
            continue;
        };
        let series: Vec<(&FigureGroup, &Vec<Fields>)> = list.iter().zip(fields).collect();
        if target.table {
            out.push(table(target, metric, &series, ((to - from) * MS_PER_MINUTE, timeline.to_ms)));
        } else {
            for (group, points) in series {
                for part in parts(metric, &target.figures, points) {
                    let mut name = group.label();
                    if let Some(part) = &part {
                        name = format!("{name} {part}");
                    }
                    if several {
                        name = format!("{name} {}", metric.name());
                    }
                    let datapoints: Vec<Value> = timeline
                        .point_starts()
                        .zip(points)
                        .map(|(ts, f)| {
                            json!([metric.evaluate(f, timeline.step_ms, part.as_deref(), target.figures.stat), ts])
                        })
                        .collect();
                    let mut tags = group.tags();
                    if let (Some(kind), Some(part)) = (metric.part(), &part) {
                        tags.insert(kind.tag().into(), json!(part));
                    }
                    let mut element = Map::new();
                    element.insert("target".into(), json!(name));
                    if let Some(ref_id) = &target.ref_id {
                        element.insert("refId".into(), ref_id.clone());
                    }
                    element.insert("datapoints".into(), Value::Array(datapoints));
                    element.insert("tags".into(), Value::Object(tags));
                    element.insert("unit".into(), json!(metric.unit()));
                    out.push(Value::Object(element));
                }
            }
        }
    }
    Ok(out)
}

/// The series one group fans out into: `[None]` for a metric without parts; else the genres
/// or mounts the payload names, or those present in the group's fields.
fn parts(metric: FigureMetric, selection: &FigureSelection, points: &[Fields]) -> Vec<Option<String>> {
    let Some(part) = metric.part() else {
        return vec![None];
    };
    let named = match part {
        crate::figure::Part::Genre => selection.genres.as_ref(),
        crate::figure::Part::Mount => selection.mounts.as_ref(),
    };
    if let Some(named) = named {
        return named.iter().map(|p| Some(p.clone())).collect();
    }
    let found: BTreeSet<String> = points.iter().flat_map(|f| metric.parts_in(f)).collect();
    found.into_iter().map(Some).collect()
}

/// One table per (target, metric): a row per series (and part) over the whole range.
fn table(
    target: &Target,
    metric: FigureMetric,
    series: &[(&FigureGroup, &Vec<Fields>)],
    (window_ms, time): (i64, i64),
) -> Value {
    let kind = metric.kind();
    let part = metric.part();
    let mut rows = Vec::new();
    for (group, fields) in series {
        let whole = fields.first().cloned().unwrap_or_default();
        for p in parts(metric, &target.figures, std::slice::from_ref(&whole)) {
            let mut row = vec![json!(time)];
            if kind != SubjectKind::Mixer {
                row.push(json!(group.name));
            }
            row.push(json!(group.region));
            if part.is_some() {
                row.push(json!(p));
            }
            row.push(json!(metric.evaluate(&whole, window_ms, p.as_deref(), target.figures.stat)));
            rows.push(Value::Array(row));
        }
    }
    let mut columns = vec![json!({"text": "Time", "type": "time"})];
    if kind != SubjectKind::Mixer {
        columns.push(json!({"text": kind.as_str(), "type": "string"}));
    }
    columns.push(json!({"text": "region", "type": "string"}));
    if let Some(part) = part {
        columns.push(json!({"text": part.tag(), "type": "string"}));
    }
    columns.push(json!({"text": metric.name(), "type": "number", "unit": metric.unit()}));
    let mut element = Map::new();
    element.insert("type".into(), json!("table"));
    if let Some(ref_id) = &target.ref_id {
        element.insert("refId".into(), ref_id.clone());
    }
    element.insert("columns".into(), Value::Array(columns));
    element.insert("rows".into(), Value::Array(rows));
    Value::Object(element)
}

/// The genres or mounts seen in the last day, for the builder's option lists: `kind` is
/// [`SubjectKind::Mixer`] for genres and [`SubjectKind::Node`] for mounts.
pub(crate) async fn recent_parts(store: &dyn Store, kind: SubjectKind, now_ms: i64) -> Result<Vec<String>, QueryError> {
    let subjects: Vec<Subject> =
        store.list_subjects().await?.into_iter().filter(|s| s.kind == kind && !s.region.is_all()).collect();
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let to = Hour::ceil(Minute::containing(now_ms).next());
    let from = Hour(to.0 - 24);
    let read = store.read_figures_hourly(&subjects, from, to).await?;
    let metric = if kind == SubjectKind::Mixer { FigureMetric::MixerGenreShare } else { FigureMetric::NodeDiskUsed };
    let found: BTreeSet<String> = read.iter().flatten().flat_map(|(_, f)| metric.parts_in(f)).collect();
    Ok(found.into_iter().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mixmon_model::{EntityName, Region};

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn subjects() -> Vec<Subject> {
        let r = |name: &str| Region::new(name).unwrap();
        let n = |name: &str| EntityName::new(name).unwrap();
        vec![
            Subject::mixer(r("us-west")),
            Subject::mixer(r("eu-west")),
            Subject::node(r("eu-west"), n("node-a")),
            Subject::node(r("us-west"), n("node-b")),
            Subject::pod(r("eu-west"), &n("mixer"), &n("ai-mixer-1")).unwrap(),
        ]
    }

    fn ids(groups: &[FigureGroup]) -> Vec<String> {
        groups.iter().map(|g| format!("{} {}", g.label(), g.members.len())).collect()
    }

    #[test]
    fn mixer_defaults_to_each_region_and_the_merge() {
        let all = subjects();
        let default = FigureSelection::default();
        assert_eq!(
            ids(&select_figures(&all, SubjectKind::Mixer, &default, &[])),
            ["mixer all 2", "mixer eu-west 1", "mixer us-west 1"]
        );
        let one = parse_figure_selection(&object(json!({"region": "eu-west"}))).unwrap();
        assert_eq!(ids(&select_figures(&all, SubjectKind::Mixer, &one, &[])), ["mixer eu-west 1"]);
        let global = parse_figure_selection(&object(json!({"region": ["global"]}))).unwrap();
        assert_eq!(ids(&select_figures(&all, SubjectKind::Mixer, &global, &[])), ["mixer all 2"]);
        let filters =
            crate::filter::parse_filters(&json!([{"key": "region", "operator": "=", "value": "us-west"}])).unwrap();
        assert_eq!(
            ids(&select_figures(&all, SubjectKind::Mixer, &default, &filters)),
            ["mixer all 1", "mixer us-west 1"]
        );
    }

    #[test]
    fn nodes_and_pods_by_name_and_region() {
        let all = subjects();
        let default = FigureSelection::default();
        assert_eq!(
            ids(&select_figures(&all, SubjectKind::Node, &default, &[])),
            ["node-a eu-west 1", "node-b us-west 1"]
        );
        let named = parse_figure_selection(&object(json!({"node": r"(node\-b|node-x)"}))).unwrap();
        assert_eq!(ids(&select_figures(&all, SubjectKind::Node, &named, &[])), ["node-b us-west 1"]);
        let region = parse_figure_selection(&object(json!({"region": "eu-west"}))).unwrap();
        assert_eq!(ids(&select_figures(&all, SubjectKind::Node, &region, &[])), ["node-a eu-west 1"]);
        let filters =
            crate::filter::parse_filters(&json!([{"key": "pod", "operator": "=~", "value": "mixer\\..*"}])).unwrap();
        assert_eq!(ids(&select_figures(&all, SubjectKind::Pod, &default, &filters)), ["mixer.ai-mixer-1 eu-west 1"]);
        assert_eq!(select_figures(&all, SubjectKind::Node, &default, &filters).len(), 2, "pod filters skip nodes");
    }

    #[test]
    fn bad_payloads_are_refused() {
        assert!(parse_figure_selection(&object(json!({"stat": "p99"}))).is_err());
        assert!(parse_figure_selection(&object(json!({"node": {"a": 1}}))).is_err());
        let s = parse_figure_selection(&object(json!({"stat": "max", "mount": "All", "genre": ["rock"]}))).unwrap();
        assert_eq!((s.stat, s.mounts, s.genres), (Some(Stat::Max), None, Some(vec!["rock".to_string()])));
    }
}
