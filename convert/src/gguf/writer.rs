//! The GGUF container writer: plans the header (metadata in the caller's order, tensor infos
//! with offsets) before any data exists, then streams each tensor's bytes from a producer
//! straight to the file, so memory holds one tensor's encoding buffer at most.
//!
//! Splits follow llama.cpp (gguf-py `gguf_writer.py`, `tools/gguf-split/gguf-split.cpp`): a new split starts when the current one has
//! tensors and their bytes plus the next tensor's would exceed the limit (gguf-py's rule); split
//! 0 carries every metadata key followed by `split.no` (u16), `split.count` (u16) and
//! `split.tensors.count` (i32); the others carry only those three keys; files are named
//! `PREFIX-00001-of-0000N.gguf`.

use super::{Codec, DEFAULT_ALIGNMENT, MAGIC, VERSION, Value, pad};
use crate::behind::{BUFFER_BYTES, WriteBehind};
use crate::error::{ConvertError, Result};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

/// A tensor to be written: name, `ne` (innermost first) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    /// Name.
    pub name: String,
    /// `ne`, innermost first.
    pub ne: Vec<u64>,
    /// Element type.
    pub ty: Codec,
}

impl PlannedTensor {
    /// Bytes of data.
    pub fn nbytes(&self) -> u64 {
        self.ne[1..].iter().product::<u64>() * self.ty.row_bytes(self.ne[0] as usize) as u64
    }
}

/// The tensor ranges of each split under a `max_bytes` limit (gguf-py's rule; a tensor larger
/// than the limit gets a split of its own).
pub fn plan_splits(tensors: &[PlannedTensor], max_bytes: Option<u64>) -> Vec<Range<usize>> {
    let sizes: Vec<u64> = tensors.iter().map(PlannedTensor::nbytes).collect();
    crate::variant::greedy_ranges(&sizes, max_bytes)
}

/// The metadata of split `no` of `count` (see the module docs).
pub fn split_kv(
    kv: &[(String, Value)],
    no: usize,
    count: usize,
    total_tensors: usize,
) -> Vec<(String, Value)> {
    let mut out = if no == 0 { kv.to_vec() } else { Vec::new() };
    if count > 1 {
        out.push(("split.no".into(), Value::U16(no as u16)));
        out.push(("split.count".into(), Value::U16(count as u16)));
        out.push((
            "split.tensors.count".into(),
            Value::I32(total_tensors as i32),
        ));
    }
    out
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.push(*x as u8),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => put_str(b, s),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Array(t, items) => {
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(b, i);
            }
        }
    }
}

/// The bytes before the data section: header, metadata, tensor infos and padding to 32.
pub fn encode_header(kv: &[(String, Value)], tensors: &[PlannedTensor]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut b, k);
        b.extend_from_slice(&v.type_id().to_le_bytes());
        put_value(&mut b, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut b, &t.name);
        b.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&t.ty.ggml_id().to_le_bytes());
        b.extend_from_slice(&offset.to_le_bytes());
        offset = pad(offset + t.nbytes(), DEFAULT_ALIGNMENT);
    }
    b.resize(pad(b.len() as u64, DEFAULT_ALIGNMENT) as usize, 0);
    b
}

/// Bytes of the whole file [`write_file`] writes for `kv` and `tensors`.
pub fn file_size(kv: &[(String, Value)], tensors: &[PlannedTensor]) -> u64 {
    encode_header(kv, tensors).len() as u64
        + tensors
            .iter()
            .map(|t| pad(t.nbytes(), DEFAULT_ALIGNMENT))
            .sum::<u64>()
}

/// A writer that counts what goes through it (to check each producer wrote exactly its tensor).
pub struct Counting<W: Write> {
    inner: W,
    /// Bytes written so far.
    pub count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes one GGUF file at `path`: the header for `kv` and `tensors`, then each tensor's bytes
/// from `produce(index into tensors, sink)`, padded. `produce` must write exactly
/// [`PlannedTensor::nbytes`] bytes. Returns the bytes written.
pub fn write_file(
    path: &Path,
    kv: &[(String, Value)],
    tensors: &[PlannedTensor],
    produce: &mut dyn FnMut(usize, &mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let file = std::fs::File::create(path).map_err(|e| ConvertError::io(path, e))?;
    let mut w = Counting {
        inner: WriteBehind::new(file, BUFFER_BYTES),
        count: 0,
    };
    let io = |e| ConvertError::io(path, e);
    w.write_all(&encode_header(kv, tensors)).map_err(io)?;
    for (i, t) in tensors.iter().enumerate() {
        let before = w.count;
        produce(i, &mut w)?;
        let wrote = w.count - before;
        if wrote != t.nbytes() {
            return Err(ConvertError::tensor(
                path,
                &t.name,
                format!(
                    "encoder wrote {wrote} bytes, the header promises {}",
                    t.nbytes()
                ),
            ));
        }
        let padding = pad(wrote, DEFAULT_ALIGNMENT) - wrote;
        w.write_all(&vec![0u8; padding as usize]).map_err(io)?;
    }
    let n = w.count;
    let file = w.inner.finish().map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, n: u64) -> PlannedTensor {
        PlannedTensor {
            name: name.into(),
            ne: vec![n],
            ty: Codec::F32,
        }
    }

    #[test]
    fn splits_follow_gguf_py() {
        let ts = [t("a", 10), t("b", 10), t("c", 30), t("d", 1)];
        // Bytes 40, 40, 120, 4: a split closes when the next tensor would take it past the limit;
        // a tensor larger than the limit still gets a split.
        assert_eq!(plan_splits(&ts, Some(64)), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(plan_splits(&ts, Some(80)), vec![0..2, 2..3, 3..4]);
        assert_eq!(plan_splits(&ts, Some(203)), vec![0..3, 3..4]);
        let whole: Vec<Range<usize>> = std::iter::once(0..4).collect();
        assert_eq!(plan_splits(&ts, Some(204)), whole);
        assert_eq!(plan_splits(&ts, None), whole);
        let kv = vec![("a".to_string(), Value::U32(1))];
        assert_eq!(split_kv(&kv, 0, 1, 4), kv);
        assert_eq!(split_kv(&kv, 1, 3, 4).len(), 3);
        assert_eq!(
            split_kv(&kv, 0, 3, 4)[3],
            ("split.tensors.count".to_string(), Value::I32(4))
        );
    }
}
