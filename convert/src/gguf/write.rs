//! GGUF variant writer (issue 3; to be implemented).

use crate::error::{ConvertError, Result};
use crate::variant::{ConvertOptions, ConvertReport, Progress, Variant};
use reference::WeightSource;
use std::path::Path;

/// Writes a GGUF `variant` of `src` to `out`.
pub fn convert(_src: &dyn WeightSource, _src_path: &Path, variant: Variant, out: &Path, _opts: &ConvertOptions, _progress: &dyn Progress) -> Result<ConvertReport> {
    Err(ConvertError::format(out, format!("variant {variant} is not implemented yet")))
}
