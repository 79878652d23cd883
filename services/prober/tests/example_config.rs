//! Every shipped example config must load: a broken example is a broken first experience.

#[test]
fn the_shipped_prober_example_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/prober.example.toml");
    let config: mixmon_prober::ProberConfig = mixmon_config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(config.identity().unwrap().region.as_str(), "eu-west");
    assert_eq!(config.aggregator_endpoints().unwrap().len(), 1);
}

/// The commented observer sections of the example, uncommented, are valid too.
#[test]
fn the_example_observer_sections_validate() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/prober.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut uncommented = String::new();
    let mut in_observers = false;
    for line in text.lines() {
        if line.starts_with("# [scrape]") {
            in_observers = true;
        }
        // `# [section]` and `# key = value` become live; prose and `# # optional = keys` stay
        // comments (in-cluster is the default).
        let rest = line.strip_prefix("# ").unwrap_or(line);
        let is_toml = rest.starts_with('[') || rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '));
        let line = if in_observers && is_toml { rest } else { line };
        uncommented.push_str(line);
        uncommented.push('\n');
    }
    let config: mixmon_prober::ProberConfig =
        mixmon_config::parse_with_env("example", &uncommented, Vec::new()).unwrap();
    let observe = config.observe().unwrap();
    assert_eq!(observe.scrape.unwrap().targets.len(), 1);
    assert_eq!(observe.kubernetes.unwrap().api_url, None);
    assert!(observe.node.is_some() && observe.pods.is_some());
    assert_eq!(observe.node.unwrap().source, mixmon_prober::observe::node::NodeSource::Proc);
    // A documentation address, not one of this host: parsed here, refused by a prober's start.
    assert_eq!(config.probe.source_ip().unwrap(), Some(std::net::IpAddr::from([10, 0, 0, 5])));
}
