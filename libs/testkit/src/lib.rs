//! Dev-only test harness shared by every crate's tests and the end-to-end tests: a real
//! `redis-server` per test ([`RedisServer`]), the workspace's binaries as child processes
//! ([`ChildProcess`], [`binary_path`]), deadline-bounded waiting ([`eventually`],
//! [`read_ready_file`]), a prober configuration builder ([`ProberConfig`]) and a small
//! HTTP/1.1 client ([`http`]).
//!
//! Everything started here is killed and reaped on drop, and lives in its own temporary
//! directory, so a failing test leaves neither processes nor files behind.

mod error;
pub mod http;
mod prober_config;
mod process;
mod redis;
mod wait;

pub use error::{TestkitError, TimedOut};
pub use prober_config::ProberConfig;
pub use process::{binary_path, ChildProcess};
pub use redis::{free_port, RedisServer, RedisServerBuilder};
pub use wait::{eventually, eventually_blocking, read_ready_file, read_ready_file_blocking};
