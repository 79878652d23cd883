//! The wire form outside a gRPC call: the prober's write-ahead log keeps records as their
//! protobuf bytes, and benchmarks pre-encode batches. Only this crate encodes or decodes a
//! proto type, so the wire format has one owner.

use mixmon_model::{ProbeResult, Record};
use prost::Message;

use crate::{pb, ConvertError};

/// Why bytes are not a record.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not this message at all (torn, truncated, foreign bytes).
    #[error("not a protobuf message: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A well-formed message this version does not understand (a field out of range).
    #[error(transparent)]
    Refused(#[from] ConvertError),
}

/// Appends a probe result, bare (the bulk of what a prober buffers).
pub fn encode_result(result: &ProbeResult, out: &mut Vec<u8>) {
    pb::ProbeResult::from(result).encode_raw(out);
}

/// Appends any record in its `BufferedRecord` envelope.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    pb::BufferedRecord::from(record).encode_raw(out);
}

pub fn decode_result(bytes: &[u8]) -> Result<ProbeResult, WireError> {
    Ok(ProbeResult::try_from(pb::ProbeResult::decode(bytes)?)?)
}

pub fn decode_record(bytes: &[u8]) -> Result<Record, WireError> {
    Ok(Record::try_from(pb::BufferedRecord::decode(bytes)?)?)
}

pub fn encode_batch(batch: &pb::ResultBatch) -> Vec<u8> {
    batch.encode_to_vec()
}

pub fn decode_batch(bytes: &[u8]) -> Result<pb::ResultBatch, WireError> {
    Ok(pb::ResultBatch::decode(bytes)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn torn_bytes_are_malformed_not_a_panic() {
        let batch = pb::ResultBatch { seq: 7, ..Default::default() };
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes).unwrap().seq, 7);
        assert!(matches!(decode_result(&[0xff, 0xff, 0xff]), Err(WireError::Malformed(_))));
        assert!(matches!(decode_record(&[0x0a, 0x05, 0x01]), Err(WireError::Malformed(_))));
    }
}
