//! [`GgufFile`]: one GGUF file, memory-mapped, its header parsed and checked the way ggml's
//! `gguf.cpp` checks it, every error naming the file (and the key or tensor).
//!
//! | check | error |
//! |---|---|
//! | magic, version 2 or 3 | "not a GGUF file" / "GGUF version N is not supported" |
//! | every count, length and array fits in the bytes left | "… runs past the end of the header" (never a huge allocation) |
//! | keys non-empty, unique; no nested arrays; `general.alignment` a u32 power of two | names the key |
//! | tensor names < 64 bytes, unique; 1..=4 dims; known type; `ne[0]` a multiple of the block | names the tensor |
//! | offset *i* = Σ padded sizes before it (ggml is strict about this) | names the tensor |
//! | data inside the file | "tensor data … runs past the end of the file (truncated?)" |

use super::{Codec, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_NAME, Value, pad, value_type as vt};
use crate::error::{ConvertError, Result};
use crate::mmap::MappedFile;
use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

/// One tensor's header entry.
#[derive(Clone, Debug)]
pub struct GgufTensor {
    /// Name.
    pub name: String,
    /// `ne`, innermost first, `n_dims` entries.
    pub ne: Vec<u64>,
    /// Element type.
    pub ty: Codec,
    /// Offset relative to the data section, as stored.
    pub offset: u64,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

impl GgufTensor {
    /// Elements.
    pub fn elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// `TYPE[ne0, ne1, ...]` for messages.
    pub fn describe(&self) -> String {
        format!("{}{:?}", self.ty.name(), self.ne)
    }
}

/// A parsed, validated GGUF file.
pub struct GgufFile {
    map: MappedFile,
    version: u32,
    kv: Vec<(String, Value)>,
    tensors: Vec<GgufTensor>,
    alignment: u64,
    data_start: u64,
}

/// Most elements reserved up front for a list whose length a file declares; longer lists grow
/// as their elements are actually read.
const PREALLOC: u64 = 4096;

/// A bounds-checked cursor over the header bytes.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ConvertError {
        ConvertError::format(
            self.path,
            format!(
                "{what} runs past the end of the file at byte {} (truncated header?)",
                self.pos
            ),
        )
    }
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|&e| e <= self.b.len() as u64)
            .ok_or_else(|| self.err(what))?;
        let s = &self.b[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec())
            .map_err(|_| ConvertError::format(self.path, format!("{what} is not UTF-8")))
    }
    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }

    /// One value of type `t` (arrays: `depth` 0 only).
    fn value(&mut self, t: u32, key: &str, nested: bool) -> Result<Value> {
        let what = format!("value of `{key}`");
        Ok(match t {
            vt::UINT8 => Value::U8(self.array::<1>(&what)?[0]),
            vt::INT8 => Value::I8(self.array::<1>(&what)?[0] as i8),
            vt::UINT16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            vt::INT16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            vt::UINT32 => Value::U32(self.u32(&what)?),
            vt::INT32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            vt::FLOAT32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            vt::BOOL => match self.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(ConvertError::format(
                        self.path,
                        format!("key `{key}`: bool byte {b} is neither 0 nor 1"),
                    ));
                }
            },
            vt::STRING => Value::String(self.string(&what)?),
            vt::UINT64 => Value::U64(self.u64(&what)?),
            vt::INT64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            vt::FLOAT64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            vt::ARRAY if !nested => {
                let et = self.u32(&what)?;
                let n = self.u64(&what)?;
                // Every element takes at least one byte: a count beyond the bytes left is a lie.
                if n > self.remaining() {
                    return Err(ConvertError::format(
                        self.path,
                        format!("key `{key}`: array of {n} elements runs past the end of the file"),
                    ));
                }
                // Reserve no more than a page of elements up front: a count that fits the bytes
                // left can still be 32x the file once each element is a `Value`.
                let mut items = Vec::with_capacity(n.min(PREALLOC) as usize);
                for _ in 0..n {
                    items.push(self.value(et, key, true)?);
                }
                Value::Array(et, items)
            }
            _ => {
                return Err(ConvertError::format(
                    self.path,
                    format!("key `{key}` has invalid GGUF value type {t}"),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Maps and validates `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let map = MappedFile::open(path.as_ref())?;
        let (version, kv, tensors, alignment, data_start) = parse(map.path(), map.bytes())?;
        Ok(GgufFile {
            map,
            version,
            kv,
            tensors,
            alignment,
            data_start,
        })
    }

    /// Validates `bytes` as the GGUF file `path` (which is only used in messages).
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<GgufFile> {
        let map = MappedFile::from_bytes(path, bytes);
        let (version, kv, tensors, alignment, data_start) = parse(map.path(), map.bytes())?;
        Ok(GgufFile {
            map,
            version,
            kv,
            tensors,
            alignment,
            data_start,
        })
    }

    /// True when the file at `path` starts with the GGUF magic.
    pub fn has_magic(path: &Path) -> bool {
        use std::io::Read;
        let mut m = [0u8; 4];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut m))
            .is_ok()
            && m == MAGIC
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The mapping.
    pub fn mapped(&self) -> &MappedFile {
        &self.map
    }

    /// The format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata, in file order.
    pub fn kv(&self) -> &[(String, Value)] {
        &self.kv
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[GgufTensor] {
        &self.tensors
    }

    /// The data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section starts.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// The bytes of a tensor.
    pub fn data(&self, t: &GgufTensor) -> &[u8] {
        &self.map.bytes()[t.range.clone()]
    }

    /// File length.
    pub fn len(&self) -> u64 {
        self.map.bytes().len() as u64
    }

    /// True for an empty file (never, once opened: the header is checked).
    pub fn is_empty(&self) -> bool {
        self.map.bytes().is_empty()
    }
}

type Parsed = (u32, Vec<(String, Value)>, Vec<GgufTensor>, u64, u64);

fn parse(path: &Path, b: &[u8]) -> Result<Parsed> {
    let mut c = Cursor { b, pos: 0, path };
    let magic = c
        .array::<4>("magic")
        .map_err(|_| ConvertError::format(path, "not a GGUF file (shorter than the magic)"))?;
    if magic != MAGIC {
        return Err(ConvertError::format(
            path,
            format!("not a GGUF file (magic {magic:02x?})"),
        ));
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(ConvertError::format(
            path,
            format!("GGUF version {version} is not supported (2 and 3 are)"),
        ));
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // A kv pair takes at least 8 + 4 + 1 bytes, a tensor info at least 8 + 4 + 8 + 4 + 8.
    if n_kv.saturating_mul(13) > c.remaining() {
        return Err(ConvertError::format(
            path,
            format!("header claims {n_kv} metadata pairs, more than the file can hold"),
        ));
    }
    let mut kv: Vec<(String, Value)> = Vec::with_capacity(n_kv.min(PREALLOC) as usize);
    let mut keys = HashSet::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(ConvertError::format(
                path,
                format!("metadata key #{i} is empty"),
            ));
        }
        if !keys.insert(key.clone()) {
            return Err(ConvertError::format(
                path,
                format!("duplicate metadata key `{key}`"),
            ));
        }
        let t = c.u32(&format!("type of `{key}`"))?;
        let v = c.value(t, &key, false)?;
        kv.push((key, v));
    }
    let alignment = match kv.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => *a as u64,
        Some((_, v)) => {
            return Err(ConvertError::format(
                path,
                format!("general.alignment must be a u32 power of two, found {v}"),
            ));
        }
    };
    if n_tensors.saturating_mul(32) > c.remaining() {
        return Err(ConvertError::format(
            path,
            format!("header claims {n_tensors} tensors, more than the file can hold"),
        ));
    }
    let mut infos = Vec::with_capacity(n_tensors.min(PREALLOC) as usize);
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let name = c.string(&format!("name of tensor #{i}"))?;
        let terr = |m: String| ConvertError::tensor(path, &name, m);
        if name.len() >= MAX_NAME {
            return Err(terr(format!(
                "name is {} bytes; ggml allows at most {}",
                name.len(),
                MAX_NAME - 1
            )));
        }
        if !names.insert(name.clone()) {
            return Err(terr("appears twice in the tensor infos".into()));
        }
        let n_dims = c.u32(&format!("tensor `{name}` dims"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(terr(format!(
                "has {n_dims} dimensions (1..={MAX_DIMS} allowed)"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64(&format!("tensor `{name}` shape"))?);
        }
        let ty_id = c.u32(&format!("tensor `{name}` type"))?;
        let offset = c.u64(&format!("tensor `{name}` offset"))?;
        let ty = Codec::from_ggml_id(ty_id).ok_or_else(|| {
            terr(match quant::codec::ggml_type_name(ty_id) {
                Some(n) => format!("has ggml type {n} (id {ty_id}), which oss-forge does not read"),
                None => format!("has ggml type id {ty_id}, which no ggml version defines"),
            })
        })?;
        if !ne[0].is_multiple_of(ty.block() as u64) {
            return Err(terr(format!(
                "ne[0] = {} is not a multiple of the {} block size {}",
                ne[0],
                ty.name(),
                ty.block()
            )));
        }
        let nbytes = ty
            .checked_row_bytes(ne[0])
            .and_then(|row| ne[1..].iter().try_fold(row, |acc, &d| acc.checked_mul(d)))
            .filter(|&n| n <= b.len() as u64)
            .ok_or_else(|| terr(format!("shape {ne:?} is larger than the file")))?;
        infos.push((name, ne, ty, offset, nbytes));
    }
    let data_start = pad(c.pos as u64, alignment);
    let mut expected = 0u64;
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, ne, ty, offset, nbytes) in infos {
        if offset != expected {
            return Err(ConvertError::tensor(
                path,
                &name,
                format!(
                    "has offset {offset}, expected {expected} (offsets must follow the tensor order, padded to {alignment})"
                ),
            ));
        }
        let start = data_start + offset;
        let end = start.checked_add(nbytes).filter(|&e| e <= b.len() as u64).ok_or_else(|| {
            ConvertError::tensor(path, &name, format!("tensor data {start}..{} runs past the end of the file ({} bytes; truncated?)", start.saturating_add(nbytes), b.len()))
        })?;
        expected = pad(offset + nbytes, alignment);
        tensors.push(GgufTensor {
            name,
            ne,
            ty,
            offset,
            range: start as usize..end as usize,
        });
    }
    Ok((version, kv, tensors, alignment, data_start))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF string: u64 length, bytes.
    fn string(s: &[u8]) -> Vec<u8> {
        [&(s.len() as u64).to_le_bytes()[..], s].concat()
    }

    /// A metadata pair: key, type id, value bytes.
    fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
        [
            string(key.as_bytes()),
            ty.to_le_bytes().to_vec(),
            value.to_vec(),
        ]
        .concat()
    }

    /// A tensor info: name, n_dims, ne, ggml type id, offset.
    fn info(name: &str, ne: &[u64], ty: u32, offset: u64) -> Vec<u8> {
        let mut b = string(name.as_bytes());
        b.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            b.extend(d.to_le_bytes());
        }
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
        b
    }

    /// A whole file: header with these pairs and infos, padding to 32, `data` zero bytes.
    fn file(kvs: &[Vec<u8>], infos: &[Vec<u8>], data: usize) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend((infos.len() as u64).to_le_bytes());
        b.extend((kvs.len() as u64).to_le_bytes());
        b.extend(kvs.concat());
        b.extend(infos.concat());
        b.resize(pad(b.len() as u64, 32) as usize, 0);
        b.resize(b.len() + data, 0);
        b
    }

    /// One F32 tensor `w` of 32 values, valid.
    fn one_tensor() -> Vec<u8> {
        file(&[], &[info("w", &[32], 0, 0)], 128)
    }

    fn err(bytes: Vec<u8>) -> String {
        match GgufFile::from_bytes("t.gguf", bytes) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_err(bytes: Vec<u8>, needles: &[&str]) {
        let e = err(bytes);
        assert!(e.starts_with("t.gguf: "), "{e}");
        for n in needles {
            assert!(e.contains(n), "{e:?} lacks {n:?}");
        }
    }

    #[test]
    fn a_valid_file_parses() {
        let kvs = [
            kv("general.alignment", vt::UINT32, &64u32.to_le_bytes()),
            kv(
                "a",
                vt::ARRAY,
                &[
                    &vt::INT32.to_le_bytes()[..],
                    &2u64.to_le_bytes(),
                    &[1, 0, 0, 0, 2, 0, 0, 0],
                ]
                .concat(),
            ),
            kv("s", vt::STRING, &string(b"x")),
        ];
        let mut b = file(
            &kvs,
            &[info("w", &[32], 0, 0), info("q", &[32, 2], 8, 128)],
            0,
        );
        b.resize(pad(b.len() as u64, 64) as usize + 128 + 68, 0);
        let f = GgufFile::from_bytes("t.gguf", b).unwrap();
        assert_eq!((f.version(), f.alignment()), (3, 64));
        assert_eq!(f.get("s"), Some(&Value::String("x".into())));
        assert_eq!(
            f.get("a"),
            Some(&Value::Array(vt::INT32, vec![Value::I32(1), Value::I32(2)]))
        );
        let [w, q] = f.tensors() else { panic!() };
        assert_eq!((w.ty, q.ty, q.elements()), (Codec::F32, Codec::Q8_0, 64));
        assert_eq!(q.range.start as u64, f.data_start() + 128);
        assert_eq!(q.range.len(), 68);
    }

    #[test]
    fn too_short_for_the_magic() {
        assert_err(
            b"GG".to_vec(),
            &["not a GGUF file (shorter than the magic)"],
        );
    }

    #[test]
    fn wrong_magic() {
        assert_err(b"GGML\x03\0\0\0".to_vec(), &["not a GGUF file (magic"]);
    }

    #[test]
    fn unsupported_version() {
        let mut b = one_tensor();
        b[4] = 7;
        assert_err(b, &["GGUF version 7 is not supported"]);
    }

    #[test]
    fn header_cut_short() {
        let b = file(&[kv("s", vt::STRING, &string(&[b'x'; 40]))], &[], 0);
        assert_err(
            b[..60].to_vec(),
            &[
                "value of `s` runs past the end of the file at byte",
                "truncated header",
            ],
        );
    }

    #[test]
    fn lying_metadata_count() {
        let mut b = one_tensor();
        b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert_err(b, &["metadata pairs, more than the file can hold"]);
    }

    #[test]
    fn lying_tensor_count() {
        let mut b = one_tensor();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_err(b, &["tensors, more than the file can hold"]);
    }

    #[test]
    fn empty_key() {
        assert_err(
            file(&[kv("", vt::UINT8, &[1])], &[], 0),
            &["metadata key #0 is empty"],
        );
    }

    #[test]
    fn duplicate_key() {
        let k = kv("k", vt::UINT8, &[1]);
        assert_err(
            file(&[k.clone(), k], &[], 0),
            &["duplicate metadata key `k`"],
        );
    }

    #[test]
    fn unknown_value_type() {
        assert_err(
            file(&[kv("k", 99, &[0; 8])], &[], 0),
            &["key `k` has invalid GGUF value type 99"],
        );
    }

    #[test]
    fn nested_array() {
        let inner = [&vt::UINT8.to_le_bytes()[..], &1u64.to_le_bytes(), &[7]].concat();
        let outer = [&vt::ARRAY.to_le_bytes()[..], &1u64.to_le_bytes(), &inner].concat();
        assert_err(
            file(&[kv("k", vt::ARRAY, &outer)], &[], 0),
            &["key `k` has invalid GGUF value type 9"],
        );
    }

    #[test]
    fn array_longer_than_the_file() {
        let v = [&vt::UINT8.to_le_bytes()[..], &(1u64 << 50).to_le_bytes()].concat();
        assert_err(
            file(&[kv("k", vt::ARRAY, &v)], &[], 0),
            &["array of 1125899906842624 elements runs past the end"],
        );
    }

    #[test]
    fn bool_neither_0_nor_1() {
        assert_err(
            file(&[kv("k", vt::BOOL, &[2])], &[], 0),
            &["bool byte 2 is neither 0 nor 1"],
        );
    }

    #[test]
    fn string_not_utf8() {
        assert_err(
            file(&[kv("k", vt::STRING, &string(&[0xff, 0xfe]))], &[], 0),
            &["value of `k` is not UTF-8"],
        );
    }

    #[test]
    fn alignment_not_a_u32_power_of_two() {
        for v in [
            kv("general.alignment", vt::UINT32, &24u32.to_le_bytes()),
            kv("general.alignment", vt::UINT64, &32u64.to_le_bytes()),
        ] {
            assert_err(
                file(&[v], &[], 0),
                &["general.alignment must be a u32 power of two"],
            );
        }
        // The value as a user reads it, with its type: never `U32(7)`.
        assert_err(
            file(
                &[kv("general.alignment", vt::UINT32, &7u32.to_le_bytes())],
                &[],
                0,
            ),
            &["general.alignment must be a u32 power of two, found 7 (u32)"],
        );
    }

    #[test]
    fn tensor_name_too_long() {
        let name = "n".repeat(MAX_NAME);
        assert_err(
            file(&[], &[info(&name, &[32], 0, 0)], 128),
            &["name is 64 bytes; ggml allows at most 63"],
        );
    }

    #[test]
    fn tensor_named_twice() {
        let i = info("w", &[32], 0, 0);
        assert_err(
            file(&[], &[i.clone(), i], 256),
            &["tensor `w`", "appears twice"],
        );
    }

    #[test]
    fn dimensions_out_of_range() {
        assert_err(
            file(&[], &[info("w", &[], 0, 0)], 0),
            &["tensor `w`", "has 0 dimensions (1..=4 allowed)"],
        );
        assert_err(
            file(&[], &[info("w", &[1; 5], 0, 0)], 4),
            &["has 5 dimensions"],
        );
    }

    #[test]
    fn ggml_type_unread_or_unknown() {
        assert_err(
            file(&[], &[info("w", &[256], 16, 0)], 1024),
            &[
                "tensor `w`",
                "ggml type IQ2_XXS (id 16), which oss-forge does not read",
            ],
        );
        assert_err(
            file(&[], &[info("w", &[32], 77, 0)], 128),
            &["ggml type id 77, which no ggml version defines"],
        );
    }

    #[test]
    fn row_not_a_whole_number_of_blocks() {
        assert_err(
            file(&[], &[info("w", &[33], 8, 0)], 64),
            &["ne[0] = 33 is not a multiple of the Q8_0 block size 32"],
        );
    }

    #[test]
    fn shape_larger_than_the_file() {
        assert_err(
            file(&[], &[info("w", &[32, u64::MAX / 64], 0, 0)], 0),
            &["tensor `w`", "is larger than the file"],
        );
    }

    #[test]
    fn offset_out_of_order() {
        assert_err(
            file(&[], &[info("w", &[32], 0, 64)], 256),
            &["tensor `w`", "has offset 64, expected 0"],
        );
        let infos = [info("a", &[1], 0, 0), info("b", &[1], 0, 4)];
        assert_err(
            file(&[], &infos, 64),
            &["tensor `b`", "has offset 4, expected 32"],
        );
    }

    #[test]
    fn data_past_the_end() {
        let b = one_tensor();
        assert_err(
            b[..b.len() - 1].to_vec(),
            &["tensor `w`", "runs past the end of the file", "truncated?"],
        );
    }
}
