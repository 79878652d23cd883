//! The wire contract between prober and aggregator: the code generated from
//! `proto/mixmon/v1/control.proto`, and the one place where wire types become domain types.
//! A garbage message is refused here, in `TryFrom`, with a [`ConvertError`] naming the field.

pub mod convert;
pub mod samples;
pub mod wire;

/// Generated types and services of package `mixmon.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("mixmon.v1");
}

pub use convert::ConvertError;
