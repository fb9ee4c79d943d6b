//! Entry points for the fuzz targets in `fuzz/` and for their regression tests.
//!
//! Each function feeds untrusted bytes to one parser exactly as a command would and returns its
//! verdict. A fuzz target calls one of them and ignores the result: only a panic, an abort or an
//! unbounded allocation is a finding. `tests/integration/fuzz_regressions.rs` replays every saved
//! finding (`tests/fixtures/fuzz-regressions/<target>/`) through the same functions under stable
//! `cargo test`, so a fixed bug stays fixed without a nightly toolchain.

use crate::error::{ConvertError, Result};
use crate::gguf::{GgufFile, GgufModel};
use reference::{Config, WeightId, WeightSource};
use std::path::Path;

/// The safetensors header parser over a whole file's bytes (header length, JSON, dtypes,
/// shapes, offsets against the file length).
pub fn safetensors_header(bytes: &[u8]) -> Result<()> {
    crate::safetensors::parse_header(Path::new("fuzz.safetensors"), bytes).map(|_| ())
}

/// The GGUF reader over a whole file's bytes: header, metadata, tensor infos, the config from
/// the metadata, the tensor set against that config, then a view of every weight and the
/// decoding of its first row (as the forward pass would read it).
pub fn gguf(bytes: &[u8]) -> Result<()> {
    let path = Path::new("fuzz.gguf");
    let file = GgufFile::from_bytes(path, bytes.to_vec())?;
    let model = GgufModel::from_first(file)?;
    let mut row = Vec::new();
    for id in WeightId::all(model.config()) {
        let m = model
            .weight(id)
            .map_err(|e| ConvertError::tensor(path, id.to_string(), e.to_string()))?;
        row.clear();
        row.resize(m.cols(), 0f32);
        if m.rows() > 0 {
            m.dequant_rows(0, &mut row);
        }
    }
    Ok(())
}

/// The config loader over a file's bytes: format detection (`from_json_str`), then each format's
/// reader directly, and the derived sizes every consumer computes from a valid config.
pub fn config(bytes: &[u8]) -> std::result::Result<(), reference::ConfigError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| reference::ConfigError::NotJson(e.to_string()))?;
    let detected = Config::from_json_str(text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        for cfg in [Config::from_hf_json(&v), Config::from_original_json(&v)]
            .into_iter()
            .flatten()
        {
            let _ = (
                cfg.parameter_count(),
                cfg.q_per_kv(),
                cfg.q_dim(),
                cfg.kv_dim(),
                WeightId::all(&cfg).len(),
            );
        }
    }
    detected.map(|cfg| {
        let _ = cfg.parameter_count();
    })
}
