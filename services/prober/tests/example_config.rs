//! Every shipped example config must load: a broken example is a broken first experience.

#[test]
fn the_shipped_prober_example_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/prober.example.toml");
    let config: mixmon_prober::ProberConfig = mixmon_config::load(Some(&path), Vec::new()).unwrap();
    assert_eq!(config.identity().unwrap().region.as_str(), "eu-west");
    assert_eq!(config.aggregator_endpoints().unwrap().len(), 1);
}
