//! `mixmon-prober`: the per-node agent. See the library for what it does.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "mixmon prober: runs assigned checks and streams their results")]
struct Args {
    /// Configuration file (TOML); `MIXMON_<SECTION>__<KEY>` variables override it.
    #[arg(long, env = "MIXMON_PROBER_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    mixmon_telemetry::init("info");
    let args = Args::parse();
    mixmon_config::process::exit_code("mixmon-prober", run(args).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config: mixmon_prober::ProberConfig =
        mixmon_config::load(args.config.as_deref(), mixmon_config::process_env())?;
    // The agent as deployed keeps its buffer on disk unless the file says where.
    if config.buffer.dir.is_none() {
        config.buffer.dir = Some(PathBuf::from(mixmon_prober::config::DEFAULT_BUFFER_DIR));
    }
    mixmon_prober::run(config, mixmon_config::process::shutdown_signal()).await?;
    Ok(())
}
