//! Faults change what pods answer: down, error share, latency, hang, regions, schedules.

mod support;

use std::time::{Duration, Instant};

use mixmon_mixer_sim::{DownSchedule, Fault, SimError};
use support::{endpoint, eventually, get, pod_addr, request, samples, small_fleet};

#[tokio::test]
async fn down_pod_answers_503_on_health_and_metrics() {
    let sim = small_fleet(None).await;
    sim.set_pod_fault("mixer-a-1", Fault { down: true, ..Fault::default() }).expect("known pod");
    let addr = pod_addr(&sim, "mixer-a-1");
    assert_eq!(get(addr, "/health").await.status, 503);
    assert_eq!(get(addr, "/metrics").await.status, 503);
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/health").await.status, 200);
    // Through the front: the down pod answers 503 on its turn, with its name.
    let front = endpoint(&sim, "a");
    let mut by_pod = Vec::new();
    for _ in 0..2 {
        let reply = get(front, "/health").await;
        by_pod.push((reply.header("x-mixer-pod").map(str::to_owned), reply.status));
    }
    by_pod.sort();
    assert_eq!(by_pod, [(Some("mixer-a-0".into()), 200), (Some("mixer-a-1".into()), 503)]);
    sim.clear_faults().expect("every fault cleared");
    assert_eq!(get(addr, "/health").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn error_share_is_exact() {
    let sim = small_fleet(None).await;
    sim.set_pod_fault("mixer-b-2", Fault { error_share: 0.25, ..Fault::default() }).expect("known pod");
    let addr = pod_addr(&sim, "mixer-b-2");
    let mut errors = 0;
    for _ in 0..100 {
        match get(addr, "/health").await.status {
            500 => errors += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(errors, 25);
    // Simulated traffic fails too, counted as 500.
    eventually("simulated requests to fail", || async {
        let scrape = samples(&get(addr, "/metrics").await.body);
        (scrape["ai_mixer_requests_total{region=\"b\",status=\"500\"}"] >= 10.0).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_delays_health() {
    let sim = small_fleet(None).await;
    sim.set_pod_fault("mixer-a-0", Fault { latency_ms: 50, ..Fault::default() }).expect("known pod");
    let started = Instant::now();
    assert_eq!(get(pod_addr(&sim, "mixer-a-0"), "/health").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(50), "took {:?}", started.elapsed());
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_holds_the_client_while_other_pods_answer() {
    let sim = small_fleet(None).await;
    sim.set_pod_fault("mixer-a-0", Fault { hang: true, ..Fault::default() }).expect("known pod");
    let hung = pod_addr(&sim, "mixer-a-0");
    let waiting = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_millis(300), request(hung, "GET", "/health", &[], None)).await
    });
    // While that request hangs, the same pod's metrics and another pod still answer.
    assert_eq!(get(pod_addr(&sim, "mixer-a-1"), "/health").await.status, 200);
    assert_eq!(get(hung, "/metrics").await.status, 200);
    let outcome = waiting.await.expect("task ran");
    assert!(outcome.is_err(), "the hung pod answered: {outcome:?}");
    // Shutdown is not held up by the stuck request.
    tokio::time::timeout(Duration::from_secs(3), sim.shutdown()).await.expect("prompt shutdown");
}

#[tokio::test]
async fn region_fault_applies_to_its_pods_only() {
    let sim = small_fleet(None).await;
    sim.set_region_fault("b", Fault { down: true, ..Fault::default() }).expect("known region");
    for pod in &sim.addresses().pods {
        let expected = if pod.region == "b" { 503 } else { 200 };
        assert_eq!(get(pod.addr, "/health").await.status, expected, "{}", pod.name);
    }
    let faulty: Vec<String> = sim.faults().into_keys().collect();
    assert_eq!(faulty, ["mixer-b-0", "mixer-b-1", "mixer-b-2"]);
    assert!(matches!(sim.set_region_fault("c", Fault::default()), Err(SimError::UnknownRegion(_))));
    sim.shutdown().await;
}

#[tokio::test]
async fn down_schedule_follows_the_wall_clock() {
    let sim = small_fleet(None).await;
    let addr = pod_addr(&sim, "mixer-a-0");
    let always = Fault { down_schedule: Some(DownSchedule { period_s: 60, down_s: 60 }), ..Fault::default() };
    sim.set_pod_fault("mixer-a-0", always).expect("valid");
    assert_eq!(get(addr, "/health").await.status, 503);
    let never = Fault { down_schedule: Some(DownSchedule { period_s: 60, down_s: 0 }), ..Fault::default() };
    sim.set_pod_fault("mixer-a-0", never).expect("valid");
    assert_eq!(get(addr, "/health").await.status, 200);
    let too_long = Fault { down_schedule: Some(DownSchedule { period_s: 10, down_s: 11 }), ..Fault::default() };
    assert!(matches!(sim.set_pod_fault("mixer-a-0", too_long), Err(SimError::InvalidFault(_))));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_traffic_factor_of_zero_stops_requests_while_the_pods_stay_up() {
    let sim = small_fleet(None).await;
    sim.set_region_fault("a", Fault { traffic_factor: Some(0.0), ..Fault::default() }).expect("valid");
    let quiet = pod_addr(&sim, "mixer-a-0");
    let busy = pod_addr(&sim, "mixer-b-0");
    let count = |addr| async move {
        let reply = get(addr, "/metrics").await;
        assert_eq!(reply.status, 200, "scrapeable");
        samples(&reply.body)
            .iter()
            .filter(|(k, _)| k.starts_with("ai_mixer_requests_total"))
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    let (quiet_before, busy_before) = (count(quiet).await, count(busy).await);
    // Until the busy pod has handled more requests, time passed for the quiet one too.
    eventually("the other region's pods to handle requests", || async {
        (count(busy).await > busy_before).then_some(())
    })
    .await;
    assert_eq!(count(quiet).await, quiet_before, "no request reached a pod at traffic factor 0");
    assert_eq!(get(quiet, "/health").await.status, 200);
    let bad = sim.set_pod_fault("mixer-a-0", Fault { traffic_factor: Some(-1.0), ..Fault::default() });
    assert!(matches!(bad, Err(SimError::InvalidFault(_))));
    sim.shutdown().await;
}
