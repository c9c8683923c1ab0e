//! (being written)
#[derive(Debug, thiserror::Error)]
#[error("decode error")]
pub struct DecodeError;
