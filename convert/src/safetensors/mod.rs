//! The safetensors container: a strict, name-reporting reader and a streaming writer.
//!
//! Format (huggingface/safetensors `tensor.rs`): an 8-byte little-endian header length `N`, `N`
//! bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//! "__metadata__": {str: str}}`, padded with spaces to a multiple of 8), then the data section;
//! offsets are relative to its start, tensors are contiguous and cover it exactly, row-major,
//! little-endian.
//!
//! Why not the `safetensors` crate here: its reader reports a bad offset without naming the
//! tensor (`TensorInvalidInfo`, `MetadataIncompleteBuffer`), and its writer needs every tensor's
//! bytes in memory at once (`View::data()`), 1-4 GiB per dequantized expert tensor. The crate
//! reads back everything this module writes in the tests. See `docs/decisions.md`.

mod header;
mod write;

pub use header::{SafetensorsFile, TensorInfo, parse as parse_header};
pub use write::{PlannedTensor, SafetensorsWriter, header_len};

/// The `__metadata__` transformers writes and expects: `{"format": "pt"}`.
pub fn pt_metadata() -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())])
}

/// Element types a safetensors header may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// bool (1 byte).
    Bool,
    /// u8.
    U8,
    /// i8.
    I8,
    /// FP8 E4M3.
    F8E4M3,
    /// FP8 E5M2.
    F8E5M2,
    /// E8M0 exponent bytes.
    F8E8M0,
    /// u16.
    U16,
    /// i16.
    I16,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// u32.
    U32,
    /// i32.
    I32,
    /// IEEE single.
    F32,
    /// u64.
    U64,
    /// i64.
    I64,
    /// IEEE double.
    F64,
}

impl Dtype {
    /// Parses a header dtype string.
    pub fn parse(s: &str) -> Option<Dtype> {
        use Dtype::*;
        Some(match s {
            "BOOL" => Bool,
            "U8" => U8,
            "I8" => I8,
            "F8_E4M3" => F8E4M3,
            "F8_E5M2" => F8E5M2,
            "F8_E8M0" => F8E8M0,
            "U16" => U16,
            "I16" => I16,
            "F16" => F16,
            "BF16" => BF16,
            "U32" => U32,
            "I32" => I32,
            "F32" => F32,
            "U64" => U64,
            "I64" => I64,
            "F64" => F64,
            _ => return None,
        })
    }

    /// The header spelling.
    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
            F8E8M0 => "F8_E8M0",
            U16 => "U16",
            I16 => "I16",
            F16 => "F16",
            BF16 => "BF16",
            U32 => "U32",
            I32 => "I32",
            F32 => "F32",
            U64 => "U64",
            I64 => "I64",
            F64 => "F64",
        }
    }

    /// `BF16|F16|F32`: the header spellings of a set of accepted dtypes, for messages.
    pub fn alternatives(dtypes: &[Dtype]) -> String {
        dtypes
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join("|")
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        use Dtype::*;
        match self {
            Bool | U8 | I8 | F8E4M3 | F8E5M2 | F8E8M0 => 1,
            U16 | I16 | F16 | BF16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
        }
    }

    /// The dense float type the reference reads, if this is one.
    pub fn dense(self) -> Option<reference::DenseType> {
        match self {
            Dtype::F32 => Some(reference::DenseType::F32),
            Dtype::F16 => Some(reference::DenseType::F16),
            Dtype::BF16 => Some(reference::DenseType::BF16),
            _ => None,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// True for the file names of a model's weights: shards (`model-00001-of-00003.safetensors`,
/// the release's `model-00000-of-00002.safetensors`), a single `model.safetensors`, and
/// `model.safetensors.index.json`. What a writer owns in an existing directory: a shard of an
/// earlier, differently sharded output is stale and removed
/// ([`crate::atomic::Staged::create_dir`]).
pub fn is_model_file(name: &str) -> bool {
    name == "model.safetensors.index.json"
        || (name.starts_with("model") && name.ends_with(".safetensors"))
}
