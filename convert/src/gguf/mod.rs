//! GGUF: a strict reader (a [`WeightSource`](reference::WeightSource) over one file or a set of
//! llama.cpp splits) and a streaming writer that reproduces llama.cpp's `convert_hf_to_gguf.py`
//! output for gpt-oss (llama.cpp as vendored in llama-cpp-python 0.3.36; `docs/formats.md`).
//!
//! Container (ggml's `docs/gguf.md`, `ggml/src/gguf.cpp`), little-endian:
//!
//! | # | field | encoding |
//! |---|---|---|
//! | 1 | magic | `GGUF` |
//! | 2 | version | u32 = 3 (2 is read too: same layout) |
//! | 3 | tensor_count, kv_count | u64 each |
//! | 4 | kv pairs | gguf string key, u32 value type, value |
//! | 5 | tensor infos | name, u32 n_dims, u64 ne\[n_dims\] (innermost first), u32 ggml type, u64 offset |
//! | 6 | padding | zeros to a multiple of the alignment (32, or `general.alignment`) |
//! | 7 | tensor data | tensor *i* at `offset_i = Σ_{j<i} PAD(nbytes_j)`, each padded with zeros |
//!
//! Tensor types read (every [`quant::Codec`]; ggml's `ggml.c` `type_traits` gives the blocks):
//!
//! | ggml type | id | block | bytes/block | read as |
//! |---|---|---|---|---|
//! | F32 / F16 / BF16 | 0 / 1 / 30 | 1 | 4 / 2 / 2 | `Encoding::Dense` |
//! | Q8_0 | 8 | 32 | 34 | `Encoding::Ggml` |
//! | MXFP4 | 39 | 32 | 17 | `Encoding::Ggml` |
//! | Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K, IQ4_XS | see [`quant::Codec`] | 32 or 256 | | `Encoding::Ggml` |
//!
//! | file | what |
//! |---|---|
//! | `file.rs` | [`GgufFile`]: the container's header parsed and validated, one file |
//! | `model.rs` | [`GgufModel`]: a gpt-oss model (one file or splits) as a weight source: split set, tensor set, `Config` from metadata |
//! | `writer.rs` | the container writer: header and split planning, streaming tensor data |
//! | `names.rs` | llama.cpp's names for gpt-oss: tensor names, `ne`, row ranges, hyperparameter keys |
//! | `meta.rs` | the metadata llama.cpp writes for gpt-oss (general, hparams, tokenizer) |

mod file;
pub mod meta;
mod model;
pub mod names;
pub mod writer;

pub use file::{GgufFile, GgufTensor};
pub use model::GgufModel;

/// `GGUF` as read little-endian.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version written.
pub const VERSION: u32 = 3;
/// Alignment when `general.alignment` is absent (`GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_NAME`: a tensor name must be shorter than this.
pub const MAX_NAME: usize = 64;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

pub use quant::Codec;

/// A metadata value type id (ggml `enum gguf_type`; gguf-py `constants.py` `GGUFValueType`).
pub mod value_type {
    /// u8.
    pub const UINT8: u32 = 0;
    /// i8.
    pub const INT8: u32 = 1;
    /// u16.
    pub const UINT16: u32 = 2;
    /// i16.
    pub const INT16: u32 = 3;
    /// u32.
    pub const UINT32: u32 = 4;
    /// i32.
    pub const INT32: u32 = 5;
    /// f32.
    pub const FLOAT32: u32 = 6;
    /// bool.
    pub const BOOL: u32 = 7;
    /// string.
    pub const STRING: u32 = 8;
    /// array.
    pub const ARRAY: u32 = 9;
    /// u64.
    pub const UINT64: u32 = 10;
    /// i64.
    pub const INT64: u32 = 11;
    /// f64.
    pub const FLOAT64: u32 = 12;
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// u8.
    U8(u8),
    /// i8.
    I8(i8),
    /// u16.
    U16(u16),
    /// i16.
    I16(i16),
    /// u32.
    U32(u32),
    /// i32.
    I32(i32),
    /// f32.
    F32(f32),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// u64.
    U64(u64),
    /// i64.
    I64(i64),
    /// f64.
    F64(f64),
    /// A homogeneous array: element type id and elements (never nested: ggml rejects that).
    Array(u32, Vec<Value>),
}

/// The value as a user reads it, with its GGUF type: `7 (u32)`, `"gpt-oss" (string)`, `[3
/// entries] (array[i32])`; a long string is cut (messages, never files).
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::U8(x) => write!(f, "{x}"),
            Value::I8(x) => write!(f, "{x}"),
            Value::U16(x) => write!(f, "{x}"),
            Value::I16(x) => write!(f, "{x}"),
            Value::U32(x) => write!(f, "{x}"),
            Value::I32(x) => write!(f, "{x}"),
            Value::U64(x) => write!(f, "{x}"),
            Value::I64(x) => write!(f, "{x}"),
            Value::F32(x) => write!(f, "{x}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Bool(x) => write!(f, "{x}"),
            Value::String(s) if s.chars().count() > 60 => {
                let head: String = s.chars().take(60).collect();
                write!(f, "\"{head}…\"")
            }
            Value::String(s) => write!(f, "\"{s}\""),
            Value::Array(_, xs) => write!(f, "[{} entries]", xs.len()),
        }?;
        write!(f, " ({})", self.type_name())
    }
}

impl Value {
    /// The value type id.
    pub fn type_id(&self) -> u32 {
        use value_type::*;
        match self {
            Value::U8(_) => UINT8,
            Value::I8(_) => INT8,
            Value::U16(_) => UINT16,
            Value::I16(_) => INT16,
            Value::U32(_) => UINT32,
            Value::I32(_) => INT32,
            Value::F32(_) => FLOAT32,
            Value::Bool(_) => BOOL,
            Value::String(_) => STRING,
            Value::U64(_) => UINT64,
            Value::I64(_) => INT64,
            Value::F64(_) => FLOAT64,
            Value::Array(..) => ARRAY,
        }
    }

    /// A short type name for messages (`u32`, `string`, `array[i32]`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Array(t, _) => format!("array[{}]", type_id_name(*t)),
            v => type_id_name(v.type_id()).to_string(),
        }
    }

    /// An unsigned integer value of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float value (f32 or f64).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The name of a value type id.
pub fn type_id_name(t: u32) -> &'static str {
    use value_type::*;
    match t {
        UINT8 => "u8",
        INT8 => "i8",
        UINT16 => "u16",
        INT16 => "i16",
        UINT32 => "u32",
        INT32 => "i32",
        FLOAT32 => "f32",
        BOOL => "bool",
        STRING => "string",
        ARRAY => "array",
        UINT64 => "u64",
        INT64 => "i64",
        FLOAT64 => "f64",
        _ => "unknown",
    }
}

/// `x` rounded up to a multiple of `align` (a power of two).
pub fn pad(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// The parts of a split file's name, the inverse of [`split_path`]: `x-00002-of-00003.gguf` →
/// (`x`, 2, 3), split numbers counting from 1; `None` for any other name.
pub fn split_name_parts(name: &str) -> Option<(&str, usize, usize)> {
    let five_digits = |s: &str| {
        (s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let rest = name.strip_suffix(".gguf")?;
    let (rest, n) = rest.rsplit_once("-of-")?;
    let (stem, k) = rest.rsplit_once('-')?;
    Some((stem, five_digits(k)?, five_digits(n)?))
}

/// The name of split `i` (0-based) of `n` for an output called `base` (`x.gguf` →
/// `x-00001-of-00003.gguf`, llama.cpp's `llama_split_path`).
pub fn split_path(base: &std::path::Path, i: usize, n: usize) -> std::path::PathBuf {
    let stem = base
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".gguf").unwrap_or(&stem).to_string();
    base.with_file_name(format!("{stem}-{:05}-of-{n:05}.gguf", i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_parse_back_to_what_split_path_made() {
        for (i, n) in [(0, 2), (1, 2), (41, 100)] {
            let p = split_path(std::path::Path::new("/d/m-of-x.gguf"), i, n);
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(split_name_parts(name), Some(("m-of-x", i + 1, n)));
        }
        for other in [
            "m.gguf",
            "m-1-of-2.gguf",
            "m-00001-of-00002.bin",
            "m-0000a-of-00002.gguf",
            "-of-00002.gguf",
        ] {
            assert_eq!(split_name_parts(other), None, "{other}");
        }
    }
}
