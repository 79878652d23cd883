//! SLIs of the mixer and the platform, read from merged [`Fields`] (see [`crate::figures`] for
//! the field names and their fixed-point scales).
//!
//! Every reader takes the merge of one window's fields (minutes, regions, pods, whatever the
//! caller folded) and, where a rate or a time-average needs it, the window's length in ms.
//! A reader answers `None` when its inputs are absent: no data is never 0. Every `Some` is
//! finite.

use std::collections::BTreeMap;

use crate::figures::{Fields, SCALE_DB, SCALE_RATIO};

/// Field prefixes and names of the stored schema, as the readers use them.
pub const REQUESTS_PREFIX: &str = "rq:";
pub const BUCKET_PREFIX: &str = "hb:";
pub const GENRE_PREFIX: &str = "g:";
pub const DISK_USED_PREFIX: &str = "du:";
pub const DISK_TOTAL_PREFIX: &str = "dt:";
pub const DISK_COUNT_PREFIX: &str = "dn:";
pub const DISK_MAX_PREFIX: &str = "dx:";

fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

/// `num / den`, `None` when `den` is not positive.
fn ratio(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64).and_then(finite)
}

/// Whether any sum field starts with `prefix`.
fn has_prefix(fields: &Fields, prefix: &str) -> bool {
    fields.sums.range(prefix.to_string()..).next().is_some_and(|(k, _)| k.starts_with(prefix))
}

/// `(suffix, value)` of every sum field named `<prefix><suffix>`.
fn with_prefix<'a>(fields: &'a Fields, prefix: &'a str) -> impl Iterator<Item = (&'a str, i64)> + 'a {
    fields
        .sums
        .range(prefix.to_string()..)
        .take_while(move |(k, _)| k.starts_with(prefix))
        .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, *v)))
}

// ---------------------------------------------------------------------------------------------
// Mixer

/// Requests answered in the window (every status). Zero counts are not stored, so a window
/// with a successful scrape (`so`) but no `rq:` field answered 0 requests; a window with
/// neither has no value.
pub fn requests(fields: &Fields) -> Option<i64> {
    (has_prefix(fields, REQUESTS_PREFIX) || fields.sum("so") > 0)
        .then(|| with_prefix(fields, REQUESTS_PREFIX).fold(0i64, |sum, (_, v)| sum.saturating_add(v.max(0))))
}

/// The wall time (ms) that a region's samples weighted by `weights` (the sum of each pod's
/// own coverage, such as `cw`) stand for: the coverage of one pod on average (`weights / n̄`,
/// with `n̄ = pn / cm` the pods scraped at a time) over the minutes marked (`cm`). So a
/// minute in progress counts for as far as its scrapes reach, a window before the first scrape
/// counts for nothing, and a rollout that replaces every pod by a new one changes nothing.
/// `None` for fields written before the prober reported coverage (no `pn`).
fn covered_ms(fields: &Fields, weights: &str) -> Option<f64> {
    let (pods, minutes) = (fields.sum("pn"), fields.sum("cm"));
    (pods > 0 && minutes > 0).then(|| fields.sum(weights).max(0) as f64 * minutes as f64 / pods as f64)
}

/// Requests per second over the time the request deltas cover (see [`covered_ms`]); with
/// fields written before probers reported it, over the window's length `window_ms`. `None`
/// when no delta covers any time.
pub fn request_rate(fields: &Fields, window_ms: i64) -> Option<f64> {
    let over_ms = covered_ms(fields, "cw").unwrap_or(window_ms as f64);
    if over_ms <= 0.0 {
        return None;
    }
    requests(fields).and_then(|n| finite(n as f64 * 1_000.0 / over_ms))
}

/// The non-200 share of requests (the operators' error rate); `None` without requests.
pub fn error_rate(fields: &Fields) -> Option<f64> {
    let total = requests(fields)?;
    let ok = fields.sum("rq:200").max(0);
    ratio(total.saturating_sub(ok).max(0), total)
}

/// The processing-duration buckets as `(upper bound in seconds, count in that bucket)`,
/// merged by bound (the `le` parsed back from the field name, so `0.1` and `1e-1` are one
/// bucket), sorted by bound. Fields whose `le` is not a number are ignored.
pub fn duration_buckets(fields: &Fields) -> Vec<(f64, i64)> {
    let mut buckets: Vec<(f64, i64)> = with_prefix(fields, BUCKET_PREFIX)
        .filter_map(|(le, count)| {
            let bound: f64 = le.trim().parse().ok()?;
            (!bound.is_nan()).then_some((bound, count.max(0)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, i64)> = Vec::with_capacity(buckets.len());
    for (bound, count) in buckets {
        match merged.last_mut() {
            Some((last, sum)) if *last == bound => *sum = sum.saturating_add(count),
            _ => merged.push((bound, count)),
        }
    }
    merged
}

/// The `q` quantile (0..=1) of processing time in milliseconds, with Prometheus'
/// `histogram_quantile` semantics: linear interpolation within the bucket holding the rank,
/// 0 as the lower bound of the first bucket, and the highest finite bound when the rank falls
/// in the `+Inf` bucket. Buckets are not cumulative here; an absent `+Inf` bucket is empty.
/// `None` without observations or without a finite bound.
pub fn processing_quantile_ms(fields: &Fields, q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut buckets = duration_buckets(fields);
    if buckets.last().is_none_or(|(bound, _)| *bound != f64::INFINITY) {
        buckets.push((f64::INFINITY, 0));
    }
    if buckets.len() < 2 {
        return None;
    }
    // Cumulative counts, as Prometheus reads them.
    let mut cumulative = Vec::with_capacity(buckets.len());
    let mut running = 0i64;
    for (bound, count) in &buckets {
        running = running.saturating_add(*count);
        cumulative.push((*bound, running as f64));
    }
    let observations = running as f64;
    if observations <= 0.0 {
        return None;
    }
    let rank = q * observations;
    let last = cumulative.len() - 1;
    let b = cumulative[..last].iter().position(|(_, c)| *c >= rank).unwrap_or(last);
    if b == last {
        return finite(cumulative[last - 1].0 * 1_000.0);
    }
    let (end, count_to_b) = cumulative[b];
    if b == 0 && end <= 0.0 {
        return finite(end * 1_000.0);
    }
    let (start, below) = if b > 0 { cumulative[b - 1] } else { (0.0, 0.0) };
    let in_bucket = count_to_b - below;
    if in_bucket <= 0.0 {
        return finite(start * 1_000.0);
    }
    finite((start + (end - start) * ((rank - below) / in_bucket)) * 1_000.0)
}

/// Mean processing time in milliseconds (`hs / hc`).
pub fn processing_mean_ms(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("hs"), fields.sum("hc")).map(|us| us / 1_000.0)
}

/// Active streams, the region's pods added up, averaged over the time the samples cover
/// (`st` over the coverage of `stw`, see [`covered_ms`]); with fields written before probers
/// reported coverage, over the window's length `window_ms`. `None` when no stream gauge was
/// sampled.
pub fn active_streams(fields: &Fields, window_ms: i64) -> Option<f64> {
    let over_ms = covered_ms(fields, "stw").unwrap_or(window_ms as f64);
    (fields.sum("stw") > 0 && over_ms > 0.0).then(|| fields.sum("st") as f64 / over_ms).and_then(finite)
}

/// The highest audio peak in dB.
pub fn audio_peak_max_db(fields: &Fields) -> Option<f64> {
    fields.max_of("pkx").and_then(|v| finite(v as f64 / SCALE_DB))
}

/// The mean of the sampled audio peaks in dB.
pub fn audio_peak_mean_db(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("pks"), fields.sum("pkn")).map(|v| v / SCALE_DB)
}

/// The mean of the sampled loudness values in LUFS.
pub fn lufs_mean(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("lus"), fields.sum("lun")).map(|v| v / SCALE_DB)
}

/// Each genre's share of the classifications, by genre; empty without classifications.
pub fn genre_shares(fields: &Fields) -> BTreeMap<String, f64> {
    let total = with_prefix(fields, GENRE_PREFIX).fold(0i64, |sum, (_, v)| sum.saturating_add(v.max(0)));
    with_prefix(fields, GENRE_PREFIX)
        .filter_map(|(genre, v)| ratio(v.max(0), total).map(|share| (genre.to_string(), share)))
        .collect()
}

/// One genre's share of the classifications; `None` without classifications (0 when there
/// were some, none of that genre).
pub fn genre_share(fields: &Fields, genre: &str) -> Option<f64> {
    let total = with_prefix(fields, GENRE_PREFIX).fold(0i64, |sum, (_, v)| sum.saturating_add(v.max(0)));
    ratio(fields.sum(&format!("{GENRE_PREFIX}{genre}")).max(0), total)
}

/// The genres named in the fields, sorted.
pub fn genres(fields: &Fields) -> Vec<String> {
    with_prefix(fields, GENRE_PREFIX).map(|(g, _)| g.to_string()).collect()
}

/// Share of scrapes that succeeded (`so / (so + sf)`).
pub fn scrape_success(fields: &Fields) -> Option<f64> {
    let ok = fields.sum("so").max(0);
    ratio(ok, ok.saturating_add(fields.sum("sf").max(0)))
}

// ---------------------------------------------------------------------------------------------
// Node

/// Mean CPU busy ratio (0..=1).
pub fn cpu_mean(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("cpu"), fields.sum("cpun")).map(|v| v / SCALE_RATIO)
}

/// Highest sampled CPU busy ratio.
pub fn cpu_max(fields: &Fields) -> Option<f64> {
    fields.max_of("cpux").and_then(|v| finite(v as f64 / SCALE_RATIO))
}

/// Memory used over memory total (`mu / mt`).
pub fn memory_ratio(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("mu"), fields.sum("mt"))
}

/// The mounts named in the fields, sorted.
pub fn mounts(fields: &Fields) -> Vec<String> {
    let mut mounts: Vec<String> = [DISK_USED_PREFIX, DISK_TOTAL_PREFIX, DISK_COUNT_PREFIX]
        .into_iter()
        .flat_map(|p| with_prefix(fields, p).map(|(m, _)| m.to_string()))
        .chain(fields.maxes.keys().filter_map(|k| k.strip_prefix(DISK_MAX_PREFIX)).map(str::to_string))
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts
}

/// Mean used share of one mount (`du / dt`).
pub fn disk_used_mean(fields: &Fields, mount: &str) -> Option<f64> {
    ratio(fields.sum(&format!("{DISK_USED_PREFIX}{mount}")), fields.sum(&format!("{DISK_TOTAL_PREFIX}{mount}")))
}

/// Highest sampled used share of one mount.
pub fn disk_used_max(fields: &Fields, mount: &str) -> Option<f64> {
    fields.max_of(&format!("{DISK_MAX_PREFIX}{mount}")).and_then(|v| finite(v as f64 / SCALE_RATIO))
}

/// Bytes received per second of covered time (`rx / (nw / 1000)`).
pub fn net_rx_per_s(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("rx"), fields.sum("nw")).map(|v| v * 1_000.0)
}

/// Bytes sent per second of covered time (`tx / (nw / 1000)`).
pub fn net_tx_per_s(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("tx"), fields.sum("nw")).map(|v| v * 1_000.0)
}

// ---------------------------------------------------------------------------------------------
// Pod

/// Container restarts in the window; `None` when the pod was not sampled.
pub fn pod_restarts(fields: &Fields) -> Option<f64> {
    (fields.sums.contains_key("rs") || fields.sum("n") > 0).then(|| fields.sum("rs").max(0) as f64)
}

/// Share of samples in which the pod was ready (`rdy / n`).
pub fn pod_ready_share(fields: &Fields) -> Option<f64> {
    ratio(fields.sum("rdy"), fields.sum("n"))
}

/// Mean working-set memory over mean limit (`(mm / mmn) / (ml / mln)`).
pub fn pod_memory_limit_mean(fields: &Fields) -> Option<f64> {
    let used = ratio(fields.sum("mm"), fields.sum("mmn"))?;
    let limit = ratio(fields.sum("ml"), fields.sum("mln"))?;
    (limit > 0.0).then(|| used / limit).and_then(finite)
}

/// Highest sampled memory / limit.
pub fn pod_memory_limit_max(fields: &Fields) -> Option<f64> {
    fields.max_of("mrx").and_then(|v| finite(v as f64 / SCALE_RATIO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(sums: &[(&str, i64)], maxes: &[(&str, i64)]) -> Fields {
        let mut f = Fields::default();
        for (k, v) in sums {
            f.add(*k, *v);
        }
        for (k, v) in maxes {
            f.max(*k, *v);
        }
        f
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9 * b.abs().max(1.0),
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn empty_fields_answer_nothing() {
        let f = Fields::default();
        assert_eq!(request_rate(&f, 60_000), None);
        assert_eq!(error_rate(&f), None);
        assert_eq!(processing_quantile_ms(&f, 0.95), None);
        assert_eq!(processing_mean_ms(&f), None);
        assert_eq!(active_streams(&f, 60_000), None);
        assert_eq!(audio_peak_max_db(&f), None);
        assert_eq!(audio_peak_mean_db(&f), None);
        assert_eq!(lufs_mean(&f), None);
        assert!(genre_shares(&f).is_empty());
        assert_eq!(genre_share(&f, "rock"), None);
        assert_eq!(scrape_success(&f), None);
        assert_eq!(cpu_mean(&f), None);
        assert_eq!(cpu_max(&f), None);
        assert_eq!(memory_ratio(&f), None);
        assert!(mounts(&f).is_empty());
        assert_eq!(disk_used_mean(&f, "/"), None);
        assert_eq!(disk_used_max(&f, "/"), None);
        assert_eq!(net_rx_per_s(&f), None);
        assert_eq!(net_tx_per_s(&f), None);
        assert_eq!(pod_restarts(&f), None);
        assert_eq!(pod_ready_share(&f), None);
        assert_eq!(pod_memory_limit_mean(&f), None);
        assert_eq!(pod_memory_limit_max(&f), None);
    }

    #[test]
    fn request_and_error_rates() {
        type Case<'a> = (&'a [(&'a str, i64)], i64, Option<f64>, Option<f64>);
        let cases: &[Case] = &[
            (&[("rq:200", 90), ("rq:500", 6), ("rq:404", 4)], 60_000, Some(100.0 / 60.0), Some(0.1)),
            (&[("rq:200", 0)], 60_000, Some(0.0), None),
            (&[("rq:503", 30)], 120_000, Some(0.25), Some(1.0)),
            (&[("rq:200", 10), ("hc", 5)], 10_000, Some(1.0), Some(0.0)),
            (&[("hc", 5), ("so", 3)], 60_000, Some(0.0), None),
            (&[("hc", 5), ("sf", 3)], 60_000, None, None),
        ];
        for (sums, window, rate, errors) in cases {
            let f = fields(sums, &[]);
            assert!(close(request_rate(&f, *window), *rate), "{sums:?}: {:?}", request_rate(&f, *window));
            assert!(close(error_rate(&f), *errors), "{sums:?}: {:?}", error_rate(&f));
        }
        assert_eq!(request_rate(&fields(&[("rq:200", 1)], &[]), 0), None);
    }

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        // Non-cumulative: 10 in (0, 0.01], 30 in (0.01, 0.05], 50 in (0.05, 0.1], 10 in +Inf.
        let f = fields(&[("hb:0.01", 10), ("hb:0.05", 30), ("hb:0.1", 50), ("hb:+Inf", 10)], &[]);
        let cases = [
            // rank 50: bucket 3 (cum 40 → 90), 10/50 of the way from 50 to 100 ms.
            (0.5, Some(60.0)),
            // rank 95: in +Inf → highest finite bound.
            (0.95, Some(100.0)),
            (0.99, Some(100.0)),
            // rank 5: first bucket, lower bound 0: 5/10 of 10 ms.
            (0.05, Some(5.0)),
            // rank 40 exactly: the end of the second bucket.
            (0.4, Some(50.0)),
            (1.5, None),
        ];
        for (q, want) in cases {
            assert!(close(processing_quantile_ms(&f, q), want), "q {q}: {:?}", processing_quantile_ms(&f, q));
        }
        // Buckets merge by bound whatever the spelling, and an absent +Inf bucket is empty.
        let g = fields(&[("hb:0.1", 5), ("hb:1e-1", 5), ("hb:0.2", 10)], &[]);
        assert_eq!(duration_buckets(&g), vec![(0.1, 10), (0.2, 10)]);
        assert!(close(processing_quantile_ms(&g, 0.75), Some(150.0)));
        // Only +Inf: no finite bound to answer with.
        assert_eq!(processing_quantile_ms(&fields(&[("hb:+Inf", 4)], &[]), 0.5), None);
        // All buckets empty: no observations.
        assert_eq!(processing_quantile_ms(&fields(&[("hb:0.1", 0)], &[]), 0.5), None);
        // Garbage bounds are ignored.
        let h = fields(&[("hb:abc", 99), ("hb:NaN", 99), ("hb:0.02", 4)], &[]);
        assert!(close(processing_quantile_ms(&h, 0.5), Some(10.0)));
    }

    #[test]
    fn gauges_means_and_maxes() {
        // Two pods, 20 and 10 streams over the whole minute, weights in ms.
        let f = fields(
            &[
                ("st", 20 * 60_000 + 10 * 60_000),
                ("stw", 120_000),
                ("pks", -12_000),
                ("pkn", 4),
                ("lus", -56_000),
                ("lun", 4),
                ("hs", 90_000),
                ("hc", 3),
                ("so", 3),
                ("sf", 1),
            ],
            &[("pkx", -2_500)],
        );
        assert!(close(active_streams(&f, 60_000), Some(30.0)));
        assert!(close(active_streams(&f, 120_000), Some(15.0)), "a window twice as long, half the average");
        assert!(close(audio_peak_max_db(&f), Some(-2.5)));
        assert!(close(audio_peak_mean_db(&f), Some(-3.0)));
        assert!(close(lufs_mean(&f), Some(-14.0)));
        assert!(close(processing_mean_ms(&f), Some(30.0)));
        assert!(close(scrape_success(&f), Some(0.75)));
        assert!(close(scrape_success(&fields(&[("sf", 2)], &[])), Some(0.0)));
    }

    /// The minute Fields of `pods` pods of one region at `rps` requests/s each, scraped every
    /// `interval_ms` from `start_ms` on, pod `i` at phase `i * interval / pods`, up to `now_ms`,
    /// as the prober reports them (deltas covering the time since the previous scrape, the
    /// first scrape of each pod without deltas, the first of each minute flagged).
    fn region_minutes(pods: u32, rps: f64, interval_ms: i64, start_ms: i64, now_ms: i64) -> BTreeMap<i64, Fields> {
        use crate::figures::fold_mixer;
        use crate::sample::MixerSample;
        let mut minutes: BTreeMap<i64, Fields> = BTreeMap::new();
        for pod in 0..pods {
            let (mut previous, mut previous_minute) = (None::<i64>, None::<i64>);
            let mut at = start_ms + i64::from(pod) * interval_ms / i64::from(pods);
            while at <= now_ms {
                let covered = previous.map_or(0, |p| at - p);
                let minute = at.div_euclid(60_000);
                let sample = MixerSample {
                    pod: crate::EntityName::new(format!("pod-{pod}")).unwrap(),
                    node: crate::EntityName::new("n").unwrap(),
                    at_ms: at,
                    weight_ms: u32::try_from(interval_ms).unwrap(),
                    scrape_ok: true,
                    restarted: false,
                    // The exact count: the test is about the division, not about rounding.
                    requests: if covered > 0 { vec![(200, (rps * covered as f64 / 1_000.0) as u64)] } else { vec![] },
                    duration_buckets: vec![],
                    duration_count: 0,
                    duration_sum_us: 0,
                    active_streams: Some(10.0),
                    audio_peak_db: None,
                    audio_lufs: None,
                    genres: vec![],
                    covered_ms: u32::try_from(covered).unwrap(),
                    first_in_minute: previous_minute != Some(minute),
                };
                fold_mixer(minutes.entry(minute).or_default(), &sample);
                (previous, previous_minute) = (Some(at), Some(minute));
                at += interval_ms;
            }
        }
        minutes
    }

    fn window(minutes: &BTreeMap<i64, Fields>, from: i64, to: i64) -> Fields {
        let mut merged = Fields::default();
        minutes.range(from..to).for_each(|(_, f)| merged.merge(f));
        merged
    }

    #[test]
    fn rates_divide_by_the_time_covered_not_the_window() {
        // 3 pods at 10 req/s, scraped every 15 s from 00:00:07 (the last first seen at 00:00:17):
        // 30 req/s whatever the window.
        let start = 7_000;
        for now in [18_000, 20_000, 40_000, 61_000, 75_500, 119_000, 185_000, 299_999] {
            let mut minutes = region_minutes(3, 10.0, 15_000, start, now);
            let current = now.div_euclid(60_000);
            let mut listed: Vec<(crate::Minute, Fields)> =
                minutes.into_iter().map(|(m, f)| (crate::Minute(m), f)).collect();
            crate::figures::count_pods_not_yet_heard(&mut listed, crate::Minute(current));
            minutes = listed.into_iter().map(|(m, f)| (m.0, f)).collect();
            let in_progress = window(&minutes, current, current + 1);
            let whole = window(&minutes, 0, current + 1);
            for (what, fields) in [("the minute in progress", &in_progress), ("since the start", &whole)] {
                let rate = request_rate(fields, 60_000);
                if fields.is_empty() {
                    // A minute just begun, no scrape in it yet: no data, not 0.
                    assert_eq!((rate, active_streams(fields, 60_000)), (None, None), "{what} at {now}");
                    continue;
                }
                match rate {
                    // Before each pod's second scrape nothing is covered yet.
                    None => assert!(now < start + 30_000, "{what} at {now}: no rate"),
                    Some(rate) => assert!((rate - 30.0).abs() < 1e-6, "{what} at {now}: {rate} req/s, not 30"),
                }
                let streams = active_streams(fields, 60_000).unwrap();
                assert!((streams - 30.0).abs() < 1e-6, "{what} at {now}: {streams} streams, not 30");
            }
        }
    }

    #[test]
    fn regions_merged_alongside_add_their_rates() {
        // 2 regions, 3 pods at 10 req/s and 5 pods at 4 req/s: 50 req/s for the globe, in the
        // minute in progress and over five minutes; merged across time instead, the marks would
        // double and the rate halve.
        let now = 4 * 60_000 + 20_000;
        let (a, b) = (region_minutes(3, 10.0, 15_000, 1_000, now), region_minutes(5, 4.0, 10_000, 2_500, now));
        for (from, to) in [(4, 5), (0, 5), (1, 4)] {
            let mut globe = window(&a, from, to);
            globe.merge_concurrent(&window(&b, from, to));
            let rate = request_rate(&globe, 60_000).unwrap();
            assert!((rate - 50.0).abs() < 0.5, "minutes {from}..{to}: {rate} req/s, not 50");
            let mut wrong = window(&a, from, to);
            wrong.merge(&window(&b, from, to));
            assert!(request_rate(&wrong, 60_000).unwrap() < 30.0);
        }
    }

    #[test]
    fn fields_without_coverage_divide_by_the_window() {
        // Written before probers reported coverage: no `pn`, so the window's length.
        let f = fields(&[("rq:200", 600), ("so", 4)], &[]);
        assert!(close(request_rate(&f, 60_000), Some(10.0)));
        // Reported, but only first scrapes so far: nothing covered, no rate.
        let first = fields(&[("so", 2), ("pn", 2), ("cm", 1)], &[]);
        assert_eq!(request_rate(&first, 60_000), None);
    }

    #[test]
    fn genre_distribution() {
        let f = fields(&[("g:rock", 30), ("g:jazz", 10), ("g:pop", 0), ("rq:200", 7)], &[]);
        let shares = genre_shares(&f);
        assert_eq!(shares.keys().collect::<Vec<_>>(), ["jazz", "pop", "rock"]);
        assert!(close(shares.get("rock").copied(), Some(0.75)));
        assert!(close(genre_share(&f, "jazz"), Some(0.25)));
        assert_eq!(genre_share(&f, "pop"), Some(0.0));
        assert_eq!(genre_share(&f, "metal"), Some(0.0));
        assert_eq!(genres(&f), ["jazz", "pop", "rock"]);
        assert_eq!(genre_share(&fields(&[("g:rock", 0)], &[]), "rock"), None);
    }

    #[test]
    fn node_figures() {
        let f = fields(
            &[
                ("cpu", 1_200_000),
                ("cpun", 4),
                ("mu", 6_000),
                ("mt", 16_000),
                ("mn", 2),
                ("rx", 600_000),
                ("tx", 120_000),
                ("nw", 60_000),
                ("du:/", 50),
                ("dt:/", 200),
                ("dn:/", 2),
                ("du:/var/lib/kubelet", 90),
                ("dt:/var/lib/kubelet", 100),
            ],
            &[("cpux", 900_000), ("dx:/", 300_000), ("dx:/var/lib/kubelet", 910_000)],
        );
        assert!(close(cpu_mean(&f), Some(0.3)));
        assert!(close(cpu_max(&f), Some(0.9)));
        assert!(close(memory_ratio(&f), Some(0.375)));
        assert!(close(net_rx_per_s(&f), Some(10_000.0)));
        assert!(close(net_tx_per_s(&f), Some(2_000.0)));
        assert_eq!(mounts(&f), ["/", "/var/lib/kubelet"]);
        assert!(close(disk_used_mean(&f, "/"), Some(0.25)));
        assert!(close(disk_used_max(&f, "/"), Some(0.3)));
        assert!(close(disk_used_mean(&f, "/var/lib/kubelet"), Some(0.9)));
        assert!(close(disk_used_max(&f, "/var/lib/kubelet"), Some(0.91)));
        assert_eq!(disk_used_mean(&f, "/boot"), None);
    }

    #[test]
    fn pod_figures() {
        let f = fields(
            &[("rs", 2), ("rdy", 3), ("n", 4), ("mm", 300), ("mmn", 2), ("ml", 1_000), ("mln", 2)],
            &[("mrx", 400_000)],
        );
        assert_eq!(pod_restarts(&f), Some(2.0));
        assert!(close(pod_ready_share(&f), Some(0.75)));
        assert!(close(pod_memory_limit_mean(&f), Some(0.3)));
        assert!(close(pod_memory_limit_max(&f), Some(0.4)));
        // Sampled, never restarted: 0, not nothing. No limit known: no ratio.
        let g = fields(&[("n", 2), ("rdy", 2), ("mm", 10), ("mmn", 1)], &[]);
        assert_eq!(pod_restarts(&g), Some(0.0));
        assert_eq!(pod_memory_limit_mean(&g), None);
    }
}
