//! Shared helpers: fixture paths, golden files, temporary directories, running the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A fixture shipped in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One golden prompt: token ids and transformers' logits `[tokens, vocab]`.
pub struct GoldenPrompt {
    pub tokens: Vec<u32>,
    pub logits: Vec<f32>,
    pub vocab: usize,
}

/// The prompts and logits of `NAME.golden/golden.json`.
pub fn golden(name: &str) -> Vec<GoldenPrompt> {
    let dir = fixture(&format!("{name}.golden"));
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    g["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let tokens: Vec<u32> = p["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect();
            let (shape, logits) =
                convert::npy::read_f32(&dir.join(p["logits"].as_str().unwrap())).unwrap();
            assert_eq!(shape[0], tokens.len());
            GoldenPrompt {
                tokens,
                logits,
                vocab: shape[1],
            }
        })
        .collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > xs[b] { i } else { b })
}

/// A fresh, empty directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "oss-forge-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies a directory tree (files only), making the copies writable.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
            let mut perm = std::fs::metadata(&dst).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dst, perm).unwrap();
        }
    }
}

/// The output of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `oss-forge` with `args`.
pub fn oss_forge(args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oss-forge"))
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// Asserts a clean failure: exit code 2, every `needle` in stderr, no panic.
    pub fn fails_with(&self, needles: &[&str]) {
        assert_eq!(self.code, 2, "exit code; stderr: {}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}: {}",
                self.stderr
            );
        }
    }

    /// Asserts success.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self
    }
}

/// Runs `oss-forge inspect DIR`, asserts success and returns its report.
pub fn inspect_ok(dir: &Path) -> String {
    oss_forge(&["inspect", dir.to_str().unwrap()])
        .ok()
        .stdout
        .clone()
}

/// One tensor of a safetensors file, as rewritten by [`rewrite_shard`].
pub struct Tensor {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl safetensors::View for &Tensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Rewrites a safetensors file with the safetensors crate, passing every tensor through `edit`
/// (return `None` to drop it).
pub fn rewrite_shard(path: &Path, mut edit: impl FnMut(Tensor) -> Option<Tensor>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<Tensor> = st
        .iter()
        .filter_map(|(name, v)| {
            edit(Tensor {
                name: name.to_string(),
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            })
        })
        .collect();
    drop(st);
    std::fs::remove_file(path).unwrap();
    safetensors::serialize_to_file(tensors.iter().map(|t| (t.name.clone(), t)), None, path)
        .unwrap();
}

/// A writable copy of the tiny fixture.
pub fn tiny_copy(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    copy_dir(&fixture("tiny-gpt-oss"), &t.join("m"));
    t
}

/// Every `*.safetensors` file of `dir`, sorted.
pub fn shards(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

/// Rewrites `model.safetensors.index.json` of `dir` from its shards (after tensors were
/// renamed, added or dropped).
pub fn reindex(dir: &Path) {
    let mut map = serde_json::Map::new();
    let mut total = 0u64;
    for p in shards(dir) {
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, v) in st.iter() {
            total += v.data().len() as u64;
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            map.insert(name.to_string(), serde_json::Value::String(file));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// Edits `config.json` of `dir` in place.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A tensor's elements as f32 (BF16, F16 or F32 data).
pub fn to_f32(t: &Tensor) -> Vec<f32> {
    use safetensors::Dtype;
    match t.dtype {
        Dtype::BF16 => t
            .data
            .chunks_exact(2)
            .map(|c| quant::float::bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::F16 => t
            .data
            .chunks_exact(2)
            .map(|c| quant::float::f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::F32 => t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{} is {d:?}, not a float tensor", t.name),
    }
}

/// Re-stores a float tensor as `dtype` (F32 exactly; F16/BF16 rounded to nearest even).
pub fn recast(mut t: Tensor, dtype: safetensors::Dtype) -> Tensor {
    use safetensors::Dtype;
    let xs = to_f32(&t);
    t.data = match dtype {
        Dtype::F32 => xs.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => xs
            .iter()
            .flat_map(|&x| quant::float::f32_to_f16_bits(x).to_le_bytes())
            .collect(),
        Dtype::BF16 => xs
            .iter()
            .flat_map(|&x| quant::float::f32_to_bf16_bits(x).to_le_bytes())
            .collect(),
        d => panic!("not a float dtype: {d:?}"),
    };
    t.dtype = dtype;
    t
}

/// True for a float tensor.
pub fn is_float(t: &Tensor) -> bool {
    matches!(
        t.dtype,
        safetensors::Dtype::BF16 | safetensors::Dtype::F16 | safetensors::Dtype::F32
    )
}

/// The reference logits of the model at `dir` (a directory or a GGUF file) for every prompt of
/// golden `name`.
pub fn logits(dir: &Path, name: &str) -> Vec<Vec<f32>> {
    let any = convert::AnyModel::open(dir).unwrap();
    let model = reference::Model::new(any.source()).unwrap();
    golden(name)
        .iter()
        .map(|p| model.logits(&p.tokens).unwrap())
        .collect()
}

/// The largest |Δlogit| of `dir` against golden `name` over every prompt and position,
/// asserting the same top-1 token everywhere.
pub fn golden_margin(dir: &Path, name: &str) -> f32 {
    let ours = logits(dir, name);
    let mut worst = 0f32;
    for (k, (p, got)) in golden(name).iter().zip(&ours).enumerate() {
        assert_eq!(got.len(), p.logits.len());
        for (t, (a, b)) in got
            .chunks(p.vocab)
            .zip(p.logits.chunks(p.vocab))
            .enumerate()
        {
            assert_eq!(
                argmax(a),
                argmax(b),
                "{dir:?} prompt {k} position {t}: top-1 differs"
            );
            for (x, y) in a.iter().zip(b) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    worst
}

/// Writes a copy of the GGUF file `src` to `dst` with its metadata passed through `edit`
/// (tensors unchanged), with oss-forge's own GGUF writer.
pub fn rewrite_gguf_kv(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Vec<(String, convert::gguf::Value)>),
) {
    use convert::gguf::writer::{PlannedTensor, write_file};
    let f = convert::gguf::GgufFile::open(src).unwrap();
    let mut kv = f.kv().to_vec();
    edit(&mut kv);
    let tensors: Vec<PlannedTensor> = f
        .tensors()
        .iter()
        .map(|t| PlannedTensor {
            name: t.name.clone(),
            ne: t.ne.clone(),
            ty: t.ty,
        })
        .collect();
    write_file(dst, &kv, &tensors, &mut |i, w| {
        w.write_all(f.data(&f.tensors()[i]))
            .map_err(|e| convert::ConvertError::io(dst, e))
    })
    .unwrap();
}

/// The metadata value of `key` in `kv`, to edit.
pub fn kv_mut<'a>(
    kv: &'a mut [(String, convert::gguf::Value)],
    key: &str,
) -> &'a mut convert::gguf::Value {
    &mut kv.iter_mut().find(|(k, _)| k == key).unwrap().1
}
