//! GGUF: reader and writer (issue 3).

pub mod write;
