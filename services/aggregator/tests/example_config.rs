//! Every shipped example config must load: a broken example is a broken first experience.

use mixmon_aggregator::{AggregatorConfig, Catalogue};

#[test]
fn the_shipped_aggregator_example_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/aggregator.example.toml");
    let config: AggregatorConfig = mixmon_config::load(Some(&path), Vec::new()).unwrap();
    let catalogue = Catalogue::from_config(&config, None).unwrap();
    assert_eq!(catalogue.checks.len(), 9);
}
