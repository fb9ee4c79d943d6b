//! Reading a safetensors file: every header field checked before use, every error naming the
//! file and, where there is one, the tensor.

use super::Dtype;
use crate::error::{ConvertError, Result};
use crate::mmap::MappedFile;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

/// Largest header accepted (the safetensors crate's limit).
const MAX_HEADER: u64 = 100_000_000;
/// Largest tensor rank accepted.
const MAX_RANK: usize = 8;

/// One tensor's header entry, with its byte range resolved to absolute file offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name as stored.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Absolute byte range within the file.
    pub range: Range<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// `DTYPE[d0, d1, ...]`, for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", self.dtype, self.shape)
    }
}

/// A mapped safetensors file with a validated header.
pub struct SafetensorsFile {
    file: MappedFile,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile> {
        let file = MappedFile::open(path)?;
        let (tensors, metadata) = parse(file.path(), file.bytes())?;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(SafetensorsFile {
            file,
            tensors,
            by_name,
            metadata,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The `__metadata__` map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A tensor's header entry.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's bytes.
    pub fn data(&self, info: &TensorInfo) -> &[u8] {
        &self.file.bytes()[info.range.clone()]
    }

    /// The whole mapped file.
    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// The mapping, for releasing consumed ranges.
    pub fn mapped(&self) -> &MappedFile {
        &self.file
    }
}

fn header_error(path: &Path, msg: impl Into<String>) -> ConvertError {
    ConvertError::format(path, msg)
}

/// Parses and validates the header of a safetensors file held in `bytes`. Pure: the fuzz
/// target calls it on arbitrary input.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<TensorInfo>, BTreeMap<String, String>)> {
    let len = bytes.len() as u64;
    let Some(n) = bytes.get(..8) else {
        return Err(header_error(
            path,
            format!("{len} bytes: too short for a safetensors header (8-byte length + JSON)"),
        ));
    };
    let n = u64::from_le_bytes(n.try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(header_error(
            path,
            format!(
                "header length {n} exceeds the {MAX_HEADER}-byte limit (not a safetensors file?)"
            ),
        ));
    }
    if 8 + n > len {
        return Err(header_error(
            path,
            format!(
                "header length {n} runs past the end of the file ({len} bytes): truncated or not safetensors"
            ),
        ));
    }
    let data_start = 8 + n as usize;
    let header: Value = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| header_error(path, format!("header is not valid JSON: {e}")))?;
    let Value::Object(entries) = header else {
        return Err(header_error(path, "header is not a JSON object"));
    };
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, entry) in &entries {
        if name == "__metadata__" {
            // The safetensors crate reads it as `Option<HashMap<String, String>>`: null is no
            // metadata (`hunt/shard-metadata-null`; safetensors and transformers read it).
            let m = match entry {
                Value::Object(m) => m,
                Value::Null => continue,
                _ => {
                    return Err(header_error(
                        path,
                        "`__metadata__` is neither null nor an object of strings",
                    ));
                }
            };
            for (k, v) in m {
                let Value::String(s) = v else {
                    return Err(header_error(
                        path,
                        format!("`__metadata__.{k}` is not a string"),
                    ));
                };
                metadata.insert(k.clone(), s.clone());
            }
            continue;
        }
        tensors.push(parse_entry(path, name, entry, data_start, bytes.len())?);
    }
    // Tensors must tile the data section exactly: sorted by offset, each starts where the
    // previous ended, the last ends at the end of the file.
    tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut at = data_start;
    for t in &tensors {
        if t.range.start != at {
            let what = if t.range.start < at {
                "overlaps the previous tensor"
            } else {
                "leaves a gap before it"
            };
            return Err(ConvertError::tensor(
                path,
                &t.name,
                format!(
                    "data offsets {}..{} {what}",
                    t.range.start - data_start,
                    t.range.end - data_start
                ),
            ));
        }
        at = t.range.end;
    }
    if at != bytes.len() {
        return Err(header_error(
            path,
            format!(
                "{} bytes after the last tensor's data (header and file disagree)",
                bytes.len() - at
            ),
        ));
    }
    Ok((tensors, metadata))
}

fn parse_entry(
    path: &Path,
    name: &str,
    entry: &Value,
    data_start: usize,
    file_len: usize,
) -> Result<TensorInfo> {
    let bad = |msg: String| ConvertError::tensor(path, name, msg);
    let Value::Object(e) = entry else {
        return Err(bad("header entry is not an object".into()));
    };
    let dtype = match e.get("dtype") {
        Some(Value::String(s)) => {
            Dtype::parse(s).ok_or_else(|| bad(format!("unknown dtype {s:?}")))?
        }
        _ => return Err(bad("missing or non-string `dtype`".into())),
    };
    let Some(Value::Array(dims)) = e.get("shape") else {
        return Err(bad("missing or non-array `shape`".into()));
    };
    if dims.len() > MAX_RANK {
        return Err(bad(format!("rank {} exceeds {MAX_RANK}", dims.len())));
    }
    let shape = dims
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| bad(format!("shape entry {d} is not a size")))
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(Value::Array(offs)) = e.get("data_offsets") else {
        return Err(bad("missing or non-array `data_offsets`".into()));
    };
    let offs: Vec<u64> = offs.iter().filter_map(Value::as_u64).collect();
    let [begin, end] = offs[..] else {
        return Err(bad(
            "`data_offsets` must be two non-negative integers".into()
        ));
    };
    if begin > end {
        return Err(bad(format!("data_offsets {begin}..{end} are reversed")));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    if end - begin != bytes {
        return Err(bad(format!(
            "{dtype}{shape:?} needs {bytes} bytes but data_offsets {begin}..{end} hold {}",
            end - begin
        )));
    }
    let abs_end = (data_start as u64)
        .checked_add(end)
        .filter(|&e| e <= file_len as u64)
        .ok_or_else(|| {
            bad(format!(
                "data ends at byte {} but the file has {file_len} bytes (truncated shard?)",
                data_start as u64 + end
            ))
        })?;
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        range: (data_start + begin as usize)..abs_end as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    fn err(bytes: &[u8]) -> String {
        parse(Path::new("x.safetensors"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_valid_file() {
        let h = r#"{"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[4,16]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"__metadata__":{"format":"pt"}}"#;
        let bytes = file(h, 16);
        let (t, m) = parse(Path::new("x"), &bytes).unwrap();
        assert_eq!(
            t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(t[1].range, 8 + h.len() + 4..8 + h.len() + 16);
        assert_eq!(m["format"], "pt");
    }

    /// The safetensors crate deserializes `__metadata__` as an `Option`: null is no metadata.
    #[test]
    fn null_metadata_is_no_metadata() {
        let h = r#"{"__metadata__":null,"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#;
        let (t, m) = parse(Path::new("x"), &file(h, 4)).unwrap();
        assert_eq!((t.len(), m.len()), (1, 0));
        let e = err(&file(r#"{"__metadata__":[1]}"#, 0));
        assert!(
            e.contains("`__metadata__` is neither null nor an object"),
            "{e}"
        );
        let e = err(&file(r#"{"__metadata__":{"format":null}}"#, 0));
        assert!(e.contains("`__metadata__.format` is not a string"), "{e}");
    }

    /// The error for a file with header `h` and `n` data bytes.
    fn t(h: &str, n: usize) -> String {
        err(&file(h, n))
    }

    #[test]
    fn too_short_for_the_length() {
        assert!(err(&[1, 2, 3]).contains("3 bytes: too short"));
    }

    #[test]
    fn header_length_over_the_limit() {
        let mut huge = (u64::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let e = err(&huge);
        assert!(
            e.starts_with("x.safetensors: ") && e.contains("exceeds the 100000000-byte limit"),
            "{e}"
        );
    }

    #[test]
    fn header_length_past_the_end() {
        let mut past = 1000u64.to_le_bytes().to_vec();
        past.extend_from_slice(b"{}");
        assert!(err(&past).contains("header length 1000 runs past the end of the file (10 bytes)"));
    }

    #[test]
    fn header_not_json() {
        assert!(err(&file("{not json", 0)).contains("header is not valid JSON"));
    }

    #[test]
    fn header_not_an_object() {
        assert!(err(&file("[]", 0)).contains("header is not a JSON object"));
    }

    #[test]
    fn metadata_not_strings() {
        assert!(
            t(r#"{"__metadata__":[]}"#, 0)
                .contains("`__metadata__` is neither null nor an object of strings")
        );
        assert!(
            t(r#"{"__metadata__":{"format":1}}"#, 0)
                .contains("`__metadata__.format` is not a string")
        );
    }

    #[test]
    fn entry_not_an_object() {
        let e = t(r#"{"w":3}"#, 0);
        assert!(
            e.contains("tensor `w`: header entry is not an object"),
            "{e}"
        );
    }

    #[test]
    fn dtype_missing_or_unknown() {
        let e = t(
            r#"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#,
            1,
        );
        assert!(e.contains("tensor `w`: unknown dtype \"Q4\""), "{e}");
        let e = t(r#"{"w":{"shape":[2],"data_offsets":[0,2]}}"#, 2);
        assert!(e.contains("missing or non-string `dtype`"), "{e}");
    }

    #[test]
    fn shape_missing_too_long_or_not_sizes() {
        let e = t(r#"{"w":{"dtype":"U8","data_offsets":[0,1]}}"#, 1);
        assert!(e.contains("missing or non-array `shape`"), "{e}");
        let e = t(
            r#"{"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#,
            1,
        );
        assert!(e.contains("rank 9 exceeds 8"), "{e}");
        let e = t(
            r#"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
            1,
        );
        assert!(e.contains("shape entry -1 is not a size"), "{e}");
    }

    #[test]
    fn shape_overflows() {
        let e = t(
            r#"{"w":{"dtype":"U8","shape":[18446744073709551615,16],"data_offsets":[0,1]}}"#,
            1,
        );
        assert!(e.contains("tensor `w`") && e.contains("overflows"), "{e}");
    }

    #[test]
    fn offsets_missing_malformed_or_reversed() {
        let e = t(r#"{"a":{"dtype":"U8","shape":[4]}}"#, 4);
        assert!(e.contains("missing or non-array `data_offsets`"), "{e}");
        let e = t(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,-4]}}"#,
            4,
        );
        assert!(
            e.contains("`data_offsets` must be two non-negative integers"),
            "{e}"
        );
        let e = t(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,0]}}"#,
            4,
        );
        assert!(e.contains("data_offsets 4..0 are reversed"), "{e}");
    }

    #[test]
    fn offsets_disagree_with_the_shape() {
        let e = t(
            r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,100]}}"#,
            12,
        );
        assert!(
            e.contains("tensor `w`")
                && e.contains("BF16[2, 3] needs 12 bytes but data_offsets 0..100 hold 100"),
            "{e}"
        );
    }

    #[test]
    fn data_past_the_end_of_the_file() {
        let e = t(
            r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}"#,
            6,
        );
        assert!(
            e.contains("tensor `w`") && e.contains("(truncated shard?)"),
            "{e}"
        );
    }

    #[test]
    fn tensors_overlap() {
        let e = t(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
            6,
        );
        assert!(
            e.contains("tensor `b`: data offsets 2..6 overlaps the previous tensor"),
            "{e}"
        );
    }

    #[test]
    fn a_gap_between_tensors() {
        let e = t(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}"#,
            10,
        );
        assert!(
            e.contains("tensor `b`: data offsets 6..10 leaves a gap before it"),
            "{e}"
        );
    }

    #[test]
    fn bytes_after_the_last_tensor() {
        let e = t(
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
            9,
        );
        assert!(e.contains("5 bytes after the last tensor's data"), "{e}");
    }
}
