//! Writing a safetensors file as a stream: the header is planned up front from names, dtypes
//! and shapes, then tensor bytes are appended in plan order, in chunks of any size, so no tensor
//! needs to be in memory whole.

use super::Dtype;
use crate::behind::{BUFFER_BYTES, WriteBehind};
use crate::error::{ConvertError, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A tensor to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTensor {
    /// Name in the header.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
}

impl PlannedTensor {
    /// A planned tensor.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> PlannedTensor {
        PlannedTensor {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// Bytes of data.
    pub fn bytes(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * self.dtype.size() as u64
    }
}

/// Streams one safetensors file.
pub struct SafetensorsWriter {
    out: WriteBehind,
    path: PathBuf,
    sizes: Vec<(String, u64)>,
    current: usize,
    written: u64,
}

/// Bytes of the header `header_bytes` gives (length prefix included).
pub fn header_len(tensors: &[PlannedTensor], metadata: &BTreeMap<String, String>) -> u64 {
    header_bytes(tensors, metadata).len() as u64
}

/// The 8-byte length and the padded JSON header for `tensors` laid out in order.
pub fn header_bytes(tensors: &[PlannedTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let js = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let mut h = String::from("{");
    if !metadata.is_empty() {
        h.push_str("\"__metadata__\":{");
        let items: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", js(k), js(v)))
            .collect();
        h.push_str(&items.join(","));
        h.push_str("},");
    }
    let mut offset = 0u64;
    let items: Vec<String> = tensors
        .iter()
        .map(|t| {
            let end = offset + t.bytes();
            let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            let s = format!(
                r#"{}:{{"dtype":"{}","shape":[{}],"data_offsets":[{offset},{end}]}}"#,
                js(&t.name),
                t.dtype,
                shape.join(",")
            );
            offset = end;
            s
        })
        .collect();
    h.push_str(&items.join(","));
    if h.ends_with(',') {
        h.pop();
    }
    h.push('}');
    while h.len() % 8 != 0 {
        h.push(' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out
}

impl SafetensorsWriter {
    /// Creates `path` (which must not exist) and writes the header for `tensors`.
    pub fn create(
        path: &Path,
        tensors: &[PlannedTensor],
        metadata: &BTreeMap<String, String>,
    ) -> Result<SafetensorsWriter> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| ConvertError::io(path, e))?;
        let mut out = WriteBehind::new(file, BUFFER_BYTES);
        out.write_all(&header_bytes(tensors, metadata))
            .map_err(|e| ConvertError::io(path, e))?;
        let sizes = tensors
            .iter()
            .map(|t| (t.name.clone(), t.bytes()))
            .collect();
        let mut w = SafetensorsWriter {
            out,
            path: path.to_path_buf(),
            sizes,
            current: 0,
            written: 0,
        };
        w.skip_empty();
        Ok(w)
    }

    fn skip_empty(&mut self) {
        while self.current < self.sizes.len() && self.written == self.sizes[self.current].1 {
            self.current += 1;
            self.written = 0;
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor the next bytes belong to, if any remain.
    pub fn current_tensor(&self) -> Option<&str> {
        self.sizes.get(self.current).map(|(n, _)| n.as_str())
    }

    /// Appends data; it may span several tensors but not run past the planned total.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let Some((name, size)) = self.sizes.get(self.current) else {
                return Err(ConvertError::format(
                    &self.path,
                    format!("{} bytes written past the last planned tensor", bytes.len()),
                ));
            };
            let take = ((size - self.written) as usize).min(bytes.len());
            if let Err(e) = self.out.write_all(&bytes[..take]) {
                // A full disk is about the file, not the tensor: keep the I/O error for
                // `space::name_full_disk`.
                if crate::space::is_no_space(&e) {
                    return Err(ConvertError::io(&self.path, e));
                }
                return Err(ConvertError::tensor(
                    &self.path,
                    name.clone(),
                    format!("write failed: {e}"),
                ));
            }
            self.written += take as u64;
            bytes = &bytes[take..];
            self.skip_empty();
        }
        Ok(())
    }

    /// Checks every planned byte was written, flushes and syncs the file.
    pub fn finish(self) -> Result<()> {
        if let Some((name, size)) = self.sizes.get(self.current) {
            return Err(ConvertError::tensor(
                &self.path,
                name.clone(),
                format!("only {} of {size} bytes were written", self.written),
            ));
        }
        let file = self
            .out
            .finish()
            .map_err(|e| ConvertError::io(&self.path, e))?;
        file.sync_all().map_err(|e| ConvertError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back_with_the_safetensors_crate() {
        let dir = std::env::temp_dir().join(format!("ossf-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        let _ = std::fs::remove_file(&path);
        let plan = vec![
            PlannedTensor::new("w", Dtype::BF16, vec![2, 3]),
            PlannedTensor::new("empty", Dtype::F32, vec![0]),
            PlannedTensor::new("b\"q", Dtype::U8, vec![5]),
        ];
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let mut w = SafetensorsWriter::create(&path, &plan, &meta).unwrap();
        w.write(&[1, 2, 3]).unwrap();
        w.write(&[4, 5, 6, 7, 8, 9, 10, 11, 12, 9, 9]).unwrap();
        w.write(&[9, 9, 9]).unwrap();
        assert!(w.write(&[0]).is_err());
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("w").unwrap().data(),
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        );
        assert_eq!(st.tensor("b\"q").unwrap().shape(), &[5]);
        let (t, m) = super::super::header::parse(&path, &bytes).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(m["format"], "pt");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
