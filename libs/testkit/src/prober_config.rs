//! The one place tests write a prober's configuration file: identity, the aggregators to
//! stream to and the buffer directory, plus whatever observer sections a test needs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A prober's TOML configuration, built field by field.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    id: String,
    region: String,
    node: String,
    aggregators: Vec<String>,
    buffer_dir: Option<PathBuf>,
    ground_truth_file: Option<PathBuf>,
    source_ip: Option<String>,
    sections: Vec<String>,
}

impl ProberConfig {
    /// `prober-REGION` on node `node-REGION`, streaming to `aggregators` (`http://host:port`).
    pub fn new(region: &str, aggregators: &[String]) -> Self {
        ProberConfig {
            id: format!("prober-{region}"),
            region: region.to_string(),
            node: format!("node-{region}"),
            aggregators: aggregators.to_vec(),
            buffer_dir: None,
            ground_truth_file: None,
            source_ip: None,
            sections: Vec::new(),
        }
    }

    pub fn node(mut self, node: &str) -> Self {
        self.node = node.to_string();
        self
    }

    /// The write-ahead buffer's parent directory (the prober adds a folder named by its id).
    pub fn buffer_dir(mut self, dir: &Path) -> Self {
        self.buffer_dir = Some(dir.to_path_buf());
        self
    }

    /// Where the prober records what it really measured, for zero-loss accounting.
    pub fn ground_truth_file(mut self, file: &Path) -> Self {
        self.ground_truth_file = Some(file.to_path_buf());
        self
    }

    /// The loopback address probes leave from, so targets can tell probers apart.
    pub fn source_ip(mut self, ip: &str) -> Self {
        self.source_ip = Some(ip.to_string());
        self
    }

    /// A further section as TOML text (`[scrape]`, `[pods]`, `[node]`...), appended as is.
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.trim().to_string());
        self
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "[identity]\nid = {}\nregion = {}\nnode = {}",
            quote(&self.id),
            quote(&self.region),
            quote(&self.node)
        );
        let addresses: Vec<String> = self.aggregators.iter().map(|a| quote(a)).collect();
        let _ = writeln!(text, "[aggregator]\naddresses = [{}]", addresses.join(", "));
        if let Some(dir) = &self.buffer_dir {
            let _ = writeln!(text, "[buffer]\ndir = {}", quote(&dir.display().to_string()));
        }
        if let Some(ip) = &self.source_ip {
            let _ = writeln!(text, "[probe]\nsource_ip = {}", quote(ip));
        }
        if let Some(file) = &self.ground_truth_file {
            let _ = writeln!(text, "[debug]\nground_truth_file = {}", quote(&file.display().to_string()));
        }
        for section in &self.sections {
            let _ = writeln!(text, "{section}");
        }
        text
    }

    /// Writes the configuration to `dir/name` and returns the file's path.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, self.render())?;
        Ok(path)
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_sections_a_prober_reads() {
        let text = ProberConfig::new("eu-west", &["http://127.0.0.1:7000".to_string()])
            .node("n\"1")
            .buffer_dir(Path::new("/tmp/wal"))
            .source_ip("127.0.0.2")
            .section("[pods]\ninterval_ms = 2000")
            .render();
        assert_eq!(
            text,
            "[identity]\nid = \"prober-eu-west\"\nregion = \"eu-west\"\nnode = \"n\\\"1\"\n\
             [aggregator]\naddresses = [\"http://127.0.0.1:7000\"]\n[buffer]\ndir = \"/tmp/wal\"\n\
             [probe]\nsource_ip = \"127.0.0.2\"\n[pods]\ninterval_ms = 2000\n"
        );
    }
}
