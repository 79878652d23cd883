//! An optional append-only log of every result this prober produced, one JSON object per
//! line. End-to-end and fault tests compare the aggregator's SLIs against it, so it is written
//! straight from the probe path, independent of buffering and delivery.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use mixmon_model::{ProbeResult, Region};

pub struct GroundTruth {
    writer: Mutex<BufWriter<File>>,
    region: Region,
}

impl GroundTruth {
    pub fn open(path: &Path, region: Region) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { writer: Mutex::new(BufWriter::new(file)), region })
    }

    pub fn record(&self, result: &ProbeResult) {
        let line = format!(
            "{{\"check\":\"{}\",\"region\":\"{}\",\"started_at_ms\":{},\"success\":{},\"duration_us\":{},\"failure\":\"{}\"}}\n",
            result.check_id,
            self.region,
            result.started_at_ms,
            result.success(),
            result.duration_us,
            result.failure.map(|f| f.as_str()).unwrap_or(""),
        );
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Flushed per line: a test reads the file while the prober runs, and the prober may
        // be killed at any moment; losing the log would hide exactly what it exists to show.
        if writer.write_all(line.as_bytes()).and_then(|()| writer.flush()).is_err() {
            tracing::warn!("cannot write the ground-truth file");
        }
    }
}
