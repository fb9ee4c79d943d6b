//! A gpt-oss model stored as safetensors, mapped to the same [`WeightId`]s whatever the layout:
//!
//! | layout | experts are read as |
//! |---|---|
//! | HF release (`model.layers.N.*`) | MXFP4 views with a row step (gate = even rows) |
//! | OpenAI `original/` (`block.N.*`, fused qkv) | the same MXFP4 views |
//! | dense (transformers' dequantized, written by `safetensors-bf16`/`-fp16`) | strided views of `gate_up_proj [E, H, 2I]` / `down_proj [E, I, H]` |
//! | dense under MXFP4 names (transformers 5.23's `save_pretrained` after dequantizing) | the same views of `gate_up_proj_blocks` / `down_proj_blocks` |
//! | per-expert dense (llm-compressor's linearized experts) | each expert's `gate_proj`/`up_proj`/`down_proj.weight [out, in]` as it is |
//! | int8 (compressed-tensors, written by `safetensors-int8`) | int8 group views of each expert's `weight_packed` + `weight_scale` |
//! | MLX (mlx-lm's, written by `mlx-*`; [`crate::mlx`]) | per expert, a slice of the stacked `gate_proj` / `up_proj` / `down_proj`: MXFP4 views of the release's block bytes, MLX affine views, or float rows |
//!
//! Every float tensor may be BF16, F16 or F32 (the file's dtype counts, as in transformers) and
//! is decoded exactly.
//!
//! Opening validates everything before any weight is used: the config; the index (every listed
//! shard present, every tensor where the index says, no tensor in two shards, no tensor outside
//! the index); the layout (from the config and the expert tensors, [`Layout::detect`]); and the
//! tensor set (every tensor the config implies present with an accepted dtype and the expected
//! shape, nothing else). Tensors are memory-mapped and viewed in place: nothing is copied.

use crate::error::{ConvertError, Result};
use crate::names::{self, Expect, Layout, Role};
use crate::safetensors::{Dtype, SafetensorsFile, TensorInfo};
use reference::{Config, ConfigNote, DenseType, Encoding, MatRef, WeightId};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The index file name, in both layouts.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// A validated, memory-mapped safetensors model directory.
pub struct Checkpoint {
    dir: PathBuf,
    layout: Layout,
    config: Config,
    config_json: Value,
    files: Vec<SafetensorsFile>,
    names: BTreeMap<String, (usize, usize)>,
    index_total_size: Option<u64>,
    layout_notes: Vec<String>,
    config_notes: Vec<ConfigNote>,
}

/// Reads and parses a JSON file, naming it in errors.
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read(path).map_err(|e| ConvertError::io(path, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| ConvertError::format(path, format!("not valid JSON: {e}")))
}

/// Reads a model directory's `config.json` into a [`Config`] and the raw JSON.
pub fn read_config(dir: &Path) -> Result<(Config, Value)> {
    read_config_noted(dir).map(|(c, v, _)| (c, v))
}

/// [`read_config`], with how each key the file leaves to transformers was read.
pub fn read_config_noted(dir: &Path) -> Result<(Config, Value, Vec<ConfigNote>)> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Err(ConvertError::format(
            dir,
            "no config.json: not a gpt-oss model directory",
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ConvertError::io(&path, e))?;
    let (config, notes) =
        Config::from_json_str_noted(&text).map_err(|e| ConvertError::config(&path, e))?;
    let json = serde_json::from_str(&text).expect("parsed above");
    Ok((config, json, notes))
}

impl Checkpoint {
    /// Opens and validates the model in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Checkpoint> {
        let dir = dir.as_ref().to_path_buf();
        let (config, config_json, config_notes) = read_config_noted(&dir)?;
        // Everything wrong with config.json is reported before the shards are opened.
        Layout::declared(&dir, &config_json)?;
        let (files, names, index_total_size) = open_files(&dir)?;
        let probe = |name: &str| names.get(name).map(|&(f, t)| &files[f].tensors()[t]);
        let (layout, layout_notes) = Layout::detect(&dir, &config_json, probe)?;
        // An MLX directory's scheme is read from its tensors (and checked against its map).
        let layout = match layout {
            Layout::Mlx(_) => Layout::Mlx(
                crate::mlx::read_scheme(&config_json, &config, probe)
                    .map_err(|m| ConvertError::format(dir.join("config.json"), m))?,
            ),
            other => other,
        };
        let ckpt = Checkpoint {
            dir,
            layout,
            config,
            config_json,
            files,
            names,
            index_total_size,
            layout_notes,
            config_notes,
        };
        ckpt.check_tensors()?;
        Ok(ckpt)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which layout the directory uses.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The raw `config.json`.
    pub fn config_json(&self) -> &Value {
        &self.config_json
    }

    /// What a user should know about how the layout was decided: a config that disagrees with
    /// the tensors, a directory transformers itself cannot load.
    pub fn layout_notes(&self) -> &[String] {
        &self.layout_notes
    }

    /// How each key `config.json` leaves to transformers was read (defaults, derived values,
    /// ignored keys).
    pub fn config_notes(&self) -> &[ConfigNote] {
        &self.config_notes
    }

    /// Per tensor group ([`names::GROUPS`]), the dtypes this checkpoint stores it in, in group
    /// order: what `inspect` shows to explain how the file is read.
    pub fn dtype_groups(&self) -> Vec<(&'static str, Vec<Dtype>)> {
        let mut groups: BTreeMap<usize, Vec<Dtype>> = BTreeMap::new();
        for e in names::expected(self.layout, &self.config) {
            let Some((_, info)) = self.tensor(&e.name) else {
                continue;
            };
            let k = names::GROUPS
                .iter()
                .position(|g| *g == e.group())
                .expect("group() returns one of GROUPS");
            let d = groups.entry(k).or_default();
            if !d.contains(&info.dtype) {
                d.push(info.dtype);
                d.sort();
            }
        }
        groups
            .into_iter()
            .map(|(k, d)| (names::GROUPS[k], d))
            .collect()
    }

    /// Config keys filled with a transformers default that decide tensor shapes, for messages
    /// about a tensor the defaults do not fit.
    fn shape_defaults(&self) -> String {
        let notes: Vec<String> = self
            .config_notes
            .iter()
            .filter(|n| reference::SHAPE_FIELDS.contains(&n.key.as_str()) || n.key == "num_experts")
            .map(|n| n.to_string())
            .collect();
        if notes.is_empty() {
            String::new()
        } else {
            format!("; config.json: {}", notes.join(", "))
        }
    }

    /// The shard files, in name order.
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    /// `metadata.total_size` from the index, if there is one.
    pub fn index_total_size(&self) -> Option<u64> {
        self.index_total_size
    }

    /// A tensor by stored name, with the file holding it.
    pub fn tensor(&self, name: &str) -> Option<(&SafetensorsFile, &TensorInfo)> {
        self.names
            .get(name)
            .map(|&(f, t)| (&self.files[f], &self.files[f].tensors()[t]))
    }

    fn require(&self, name: &str) -> Result<(&SafetensorsFile, &TensorInfo)> {
        self.tensor(name)
            .ok_or_else(|| ConvertError::MissingTensor {
                path: self.dir.clone(),
                tensor: name.to_string(),
                expected: "a tensor".into(),
            })
    }

    fn check_tensors(&self) -> Result<()> {
        let expected = names::expected(self.layout, &self.config);
        let mut wanted: BTreeMap<&str, &Expect> = BTreeMap::new();
        for e in &expected {
            wanted.insert(&e.name, e);
        }
        for e in &expected {
            let Some((file, info)) = self.tensor(&e.name) else {
                return Err(ConvertError::MissingTensor {
                    path: self.dir.clone(),
                    tensor: e.name.clone(),
                    expected: format!(
                        "{} in a {} checkpoint{}",
                        e.describe(),
                        self.layout.name(),
                        self.shape_defaults()
                    ),
                });
            };
            if info.shape != e.shape {
                return Err(ConvertError::tensor(
                    file.path(),
                    &e.name,
                    format!(
                        "is {}, the config implies {}{}",
                        info.describe(),
                        e.describe(),
                        self.shape_defaults()
                    ),
                ));
            }
            if !e.dtypes.contains(&info.dtype) {
                return Err(ConvertError::tensor(
                    file.path(),
                    &e.name,
                    format!(
                        "is {}; a {} checkpoint stores it as {}",
                        info.describe(),
                        self.layout.name(),
                        Dtype::alternatives(e.dtypes)
                    ),
                ));
            }
            if let Role::Shape(id) = e.role {
                // compressed-tensors reshapes the unpacked weight to these values: they must be
                // the [out, in] the config implies.
                let b = file.data(info);
                let dim =
                    |k: usize| i64::from_le_bytes(b[8 * k..8 * k + 8].try_into().expect("8 bytes"));
                let (rows, cols) = id.shape(&self.config);
                if [dim(0), dim(1)] != [rows as i64, cols as i64] {
                    return Err(ConvertError::tensor(
                        file.path(),
                        &e.name,
                        format!(
                            "holds [{}, {}], the config implies [{rows}, {cols}]",
                            dim(0),
                            dim(1)
                        ),
                    ));
                }
            }
        }
        for (name, &(f, _)) in &self.names {
            if !wanted.contains_key(name.as_str()) {
                return Err(ConvertError::UnexpectedTensor {
                    path: self.files[f].path().to_path_buf(),
                    tensor: name.clone(),
                    detail: format!(
                        "not part of a {}-layer {} checkpoint{}",
                        self.config.num_hidden_layers,
                        self.layout.name(),
                        self.shape_defaults()
                    ),
                });
            }
        }
        Ok(())
    }

    fn bytes(&self, name: &str) -> Result<(&[u8], &TensorInfo)> {
        let (file, info) = self.require(name)?;
        // A stop asked for, or a file changed under its map, ends the read here (no SIGBUS).
        crate::cancel::check(file.mapped().path())?;
        file.mapped().check_unchanged()?;
        Ok((file.data(info), info))
    }

    /// Rows `[r0, r0 + rows)` of a dense tensor viewed as `[*, cols]`.
    fn dense_rows(&self, name: &str, r0: usize, rows: usize, cols: usize) -> Result<MatRef<'_>> {
        let (data, info) = self.bytes(name)?;
        let dtype = dense_type(info).ok_or_else(|| self.not_dense(name, info))?;
        let sz = dtype.size();
        let slice = data
            .get(r0 * cols * sz..(r0 + rows) * cols * sz)
            .ok_or_else(|| self.short(name, info))?;
        MatRef::dense(dtype, slice, rows, cols).map_err(|e| self.layout_err(name, e))
    }

    /// A strided `[rows, cols]` view starting `offset` elements into a dense tensor.
    fn dense_strided(
        &self,
        name: &str,
        offset: usize,
        rows: usize,
        cols: usize,
        strides: (usize, usize),
    ) -> Result<MatRef<'_>> {
        let (data, info) = self.bytes(name)?;
        let dtype = dense_type(info).ok_or_else(|| self.not_dense(name, info))?;
        let data = data
            .get(offset * dtype.size()..)
            .ok_or_else(|| self.short(name, info))?;
        let enc = Encoding::Dense {
            dtype,
            data,
            row_stride: strides.0,
            col_stride: strides.1,
        };
        MatRef::new(rows, cols, enc).map_err(|e| self.layout_err(name, e))
    }

    /// Rows `first, first + step, ...` of expert `e` of an MXFP4 pair `[E, R, cols/32, 16]` +
    /// `[E, R, cols/32]`.
    fn mxfp4_expert(
        &self,
        pair: (&str, &str),
        e: usize,
        first: usize,
        step: usize,
        rows: usize,
        cols: usize,
    ) -> Result<MatRef<'_>> {
        let (blocks, binfo) = self.bytes(pair.0)?;
        let (scales, _) = self.bytes(pair.1)?;
        let r = binfo.shape[1];
        let nb = cols / 32;
        let b0 = (e * r + first) * nb * 16;
        let s0 = (e * r + first) * nb;
        let bl = blocks
            .get(b0..(e + 1) * r * nb * 16)
            .ok_or_else(|| self.short(pair.0, binfo))?;
        let sc = scales
            .get(s0..(e + 1) * r * nb)
            .ok_or_else(|| self.short(pair.1, binfo))?;
        MatRef::new(
            rows,
            cols,
            Encoding::Mxfp4 {
                blocks: bl,
                scales: sc,
                row_step: step,
            },
        )
        .map_err(|err| self.layout_err(pair.0, err))
    }

    fn not_dense(&self, name: &str, info: &TensorInfo) -> ConvertError {
        ConvertError::tensor(
            &self.dir,
            name,
            format!("{} is not a float tensor", info.dtype),
        )
    }

    fn short(&self, name: &str, info: &TensorInfo) -> ConvertError {
        ConvertError::tensor(
            &self.dir,
            name,
            format!(
                "{} is too small for the view the config implies",
                info.describe()
            ),
        )
    }

    fn layout_err(&self, name: &str, e: reference::LayoutError) -> ConvertError {
        ConvertError::tensor(&self.dir, name, e.to_string())
    }

    /// An int8 module: `weight_packed` bytes (`q + 128`, four per I32) with BF16 group scales.
    fn int8_view(&self, id: WeightId) -> Result<MatRef<'_>> {
        let m = names::Names::new(self.layout).module(id);
        let (packed_name, scale_name) = (format!("{m}.weight_packed"), format!("{m}.weight_scale"));
        let (packed, _) = self.bytes(&packed_name)?;
        let (scales, _) = self.bytes(&scale_name)?;
        let (rows, cols) = id.shape(&self.config);
        let group = self.layout.int8_group(id, &self.config);
        MatRef::new(
            rows,
            cols,
            Encoding::Int8 {
                packed,
                scales,
                group,
            },
        )
        .map_err(|e| self.layout_err(&packed_name, e))
    }

    fn view(&self, id: WeightId) -> Result<MatRef<'_>> {
        let cfg = &self.config;
        let (h, i, q, kv) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.q_dim(),
            cfg.kv_dim(),
        );
        let n = names::Names::new(self.layout);
        if self.layout.is_int8(id) {
            return self.int8_view(id);
        }
        if let Layout::Mlx(scheme) = self.layout {
            return self.mlx_view(scheme, id);
        }
        use WeightId::*;
        match id {
            // transformers' input-major fused experts: gate_up_proj[e][c][2j (+1)] is gate (up)
            // unit j for input c, down_proj[e][c][h] is output h for input c.
            Gate(l, e) | Up(l, e) if self.layout.fused_dense() => {
                let first = if matches!(id, Gate(..)) { 0 } else { 1 };
                self.dense_strided(&n.gate_up_fused(l), e * h * 2 * i + first, i, h, (2, 2 * i))
            }
            Down(l, e) if self.layout.fused_dense() => {
                self.dense_strided(&n.down_fused(l), e * i * h, h, i, (1, h))
            }
            // One module per expert: its weight `[out, in]` (dense per-expert) or bias as stored.
            Gate(..) | Up(..) | Down(..) | GateBias(..) | UpBias(..) | DownBias(..)
                if self.layout.per_expert_modules() =>
            {
                let (rows, cols) = id.shape(cfg);
                self.dense_rows(&n.plain(id), 0, rows, cols)
            }
            Embedding | LmHead | FinalNorm | AttnNorm(_) | MlpNorm(_) | OProj(_) | OBias(_)
            | Sinks(_) | Router(_) | RouterBias(_) => {
                let (rows, cols) = id.shape(cfg);
                self.dense_rows(&n.plain(id), 0, rows, cols)
            }
            QProj(l) | KProj(l) | VProj(l) | QBias(l) | KBias(l) | VBias(l) => {
                let (rows, cols) = id.shape(cfg);
                match self.layout {
                    // Fused q|k|v rows (OpenAI's model.py slices qkv the same way).
                    Layout::Original => {
                        let r0 = match id {
                            QProj(_) | QBias(_) => 0,
                            KProj(_) | KBias(_) => q,
                            _ => q + kv,
                        };
                        let fused = if matches!(id, QProj(_) | KProj(_) | VProj(_)) {
                            n.qkv_weight(l)
                        } else {
                            n.qkv_bias(l)
                        };
                        if rows == 1 {
                            // A bias: a [1, cols] slice starting at element r0.
                            self.dense_strided(&fused, r0, 1, cols, (cols, 1))
                        } else {
                            self.dense_rows(&fused, r0, rows, cols)
                        }
                    }
                    _ => self.dense_rows(&n.plain(id), 0, rows, cols),
                }
            }
            Gate(l, e) | Up(l, e) => {
                let first = if matches!(id, Gate(..)) { 0 } else { 1 };
                self.mxfp4_expert(
                    (&n.gate_up_blocks(l), &n.gate_up_scales(l)),
                    e,
                    first,
                    2,
                    i,
                    h,
                )
            }
            Down(l, e) => self.mxfp4_expert((&n.down_blocks(l), &n.down_scales(l)), e, 0, 1, h, i),
            // gate_up bias [E, 2I]: gate = even entries of row e, up = odd entries.
            GateBias(l, e) => self.dense_strided(&n.gate_up_bias(l), e * 2 * i, 1, i, (2 * i, 2)),
            UpBias(l, e) => self.dense_strided(&n.gate_up_bias(l), e * 2 * i + 1, 1, i, (2 * i, 2)),
            DownBias(l, e) => self.dense_rows(&n.down_bias(l), e, 1, h),
        }
    }
}

impl Checkpoint {
    /// A weight of an MLX directory: a vector, a whole module, or expert `e`'s slice of a
    /// stacked module (see [`crate::mlx`]).
    fn mlx_view(&self, scheme: crate::mlx::MlxScheme, id: WeightId) -> Result<MatRef<'_>> {
        use crate::mlx::{self, MlxQuant};
        let (rows, cols) = id.shape(&self.config);
        let expert = match id {
            WeightId::Gate(_, e)
            | WeightId::Up(_, e)
            | WeightId::Down(_, e)
            | WeightId::GateBias(_, e)
            | WeightId::UpBias(_, e)
            | WeightId::DownBias(_, e) => e,
            _ => 0,
        };
        let Some(q) = scheme.stored(id, &self.config) else {
            // A vector; an expert bias is row `e` of `[E, n]`.
            return self.dense_rows(&mlx::vector_name(id), expert, 1, cols);
        };
        let m = mlx::module(id);
        // Rows of this weight start `first` rows into the module's tensors.
        let first = expert * rows;
        let part = |suffix: &str, row_bytes: usize| -> Result<&[u8]> {
            let name = format!("{m}.{suffix}");
            let (data, info) = self.bytes(&name)?;
            data.get(first * row_bytes..(first + rows) * row_bytes)
                .ok_or_else(|| self.short(&name, info))
        };
        let (cb, sb, bb) = mlx::row_bytes(q, cols);
        let enc = match q {
            MlxQuant::Float => return self.dense_rows(&format!("{m}.weight"), first, rows, cols),
            MlxQuant::Mxfp4 => Encoding::Mxfp4 {
                blocks: part("weight", cb)?,
                scales: part("scales", sb)?,
                row_step: 1,
            },
            MlxQuant::Affine { bits, group } => Encoding::Affine {
                packed: part("weight", cb)?,
                scales: part("scales", sb)?,
                biases: part("biases", bb)?,
                bits,
                group,
            },
        };
        MatRef::new(rows, cols, enc).map_err(|e| self.layout_err(&format!("{m}.weight"), e))
    }
}

fn dense_type(info: &TensorInfo) -> Option<DenseType> {
    info.dtype.dense()
}

type Opened = (
    Vec<SafetensorsFile>,
    BTreeMap<String, (usize, usize)>,
    Option<u64>,
);

/// Opens the shards of `dir` through its index (or every `*.safetensors` when there is none)
/// and builds the name → (file, tensor) map, checking the index against the files.
fn open_files(dir: &Path) -> Result<Opened> {
    let index_path = dir.join(INDEX_FILE);
    let mut weight_map: Option<BTreeMap<String, String>> = None;
    let mut total_size = None;
    let file_names: Vec<String> = if index_path.is_file() {
        let v = read_json(&index_path)?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| ConvertError::format(&index_path, "no `weight_map` object"))?;
        total_size = v.pointer("/metadata/total_size").and_then(Value::as_u64);
        let mut wm = BTreeMap::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| {
                ConvertError::tensor(&index_path, tensor, "weight_map value is not a file name")
            })?;
            if file.is_empty() || file.contains(['/', '\\']) || file == "." || file == ".." {
                return Err(ConvertError::tensor(
                    &index_path,
                    tensor,
                    format!("weight_map points outside the directory: {file:?}"),
                ));
            }
            wm.insert(tensor.clone(), file.to_string());
        }
        let mut files: Vec<String> = wm.values().cloned().collect();
        files.sort();
        files.dedup();
        for f in &files {
            if !dir.join(f).is_file() {
                return Err(ConvertError::format(
                    &index_path,
                    format!(
                        "shard {f} is listed in the index but missing from {}",
                        dir.display()
                    ),
                ));
            }
        }
        weight_map = Some(wm);
        files
    } else {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| ConvertError::io(dir, e))? {
            let entry = entry.map_err(|e| ConvertError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors") && entry.path().is_file() {
                files.push(name);
            }
        }
        files.sort();
        if files.is_empty() {
            // A GGUF beside a config.json: the user meant the file.
            let ggufs: Vec<String> = crate::model::gguf_files(dir)?
                .iter()
                .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
                .collect();
            let hint = if ggufs.is_empty() {
                String::new()
            } else {
                format!(
                    "; it holds GGUF file{} ({}): pass the file itself",
                    if ggufs.len() == 1 { "" } else { "s" },
                    ggufs.join(", ")
                )
            };
            return Err(ConvertError::format(
                dir,
                format!("no *.safetensors files and no index{hint}"),
            ));
        }
        files
    };

    let files = file_names
        .iter()
        .map(|f| SafetensorsFile::open(dir.join(f)))
        .collect::<Result<Vec<_>>>()?;
    let mut names: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (fi, file) in files.iter().enumerate() {
        for (ti, t) in file.tensors().iter().enumerate() {
            if let Some(&(other, _)) = names.get(&t.name) {
                return Err(ConvertError::tensor(
                    file.path(),
                    &t.name,
                    format!(
                        "also stored in {}: a tensor may live in one shard only",
                        files[other].path().display()
                    ),
                ));
            }
            names.insert(t.name.clone(), (fi, ti));
        }
    }
    if let Some(wm) = &weight_map {
        for (name, &(fi, _)) in &names {
            let path = files[fi].path();
            match wm.get(name) {
                None => {
                    return Err(ConvertError::UnexpectedTensor {
                        path: path.to_path_buf(),
                        tensor: name.clone(),
                        detail: format!("not listed in {INDEX_FILE}"),
                    });
                }
                Some(f) if f != &file_names[fi] => {
                    return Err(ConvertError::tensor(
                        path,
                        name,
                        format!("the index places it in {f}"),
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(wm) = &weight_map
        && let Some((tensor, file)) = wm.iter().find(|(t, _)| !names.contains_key(*t))
    {
        return Err(ConvertError::tensor(
            dir.join(file),
            tensor,
            format!("listed in {INDEX_FILE} but absent from the shard"),
        ));
    }
    Ok((files, names, total_size))
}

crate::mapped_weight_source!(Checkpoint);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Preset, SynthOptions, preset_config, synth};
    use serde_json::json;

    /// A fresh directory under the system temp dir, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("ossf-ckpt-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        /// A 1-layer tiny `config.json`.
        fn with_config(name: &str) -> Dir {
            let d = Dir::new(name);
            d.write(
                "config.json",
                &preset_config(Preset::Tiny, Some(1)).to_string(),
            );
            d
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).unwrap();
        }

        /// A shard holding one-byte U8 tensors with these names.
        fn shard(&self, name: &str, tensors: &[&str]) {
            write_shard(&self.0.join(name), tensors);
        }

        fn index(&self, weight_map: Value) {
            self.write(
                INDEX_FILE,
                &json!({"metadata": {"total_size": 2}, "weight_map": weight_map}).to_string(),
            );
        }

        fn err(&self) -> String {
            match Checkpoint::open(&self.0) {
                Ok(_) => panic!("opened"),
                Err(e) => e.to_string(),
            }
        }
    }

    /// A safetensors file holding one-byte U8 tensors with these names.
    fn write_shard(path: &Path, tensors: &[&str]) {
        let entries: serde_json::Map<String, Value> = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let e = json!({"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]});
                (t.to_string(), e)
            })
            .collect();
        let header = Value::Object(entries).to_string();
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.resize(b.len() + tensors.len(), 0);
        std::fs::write(path, b).unwrap();
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn no_config() {
        let d = Dir::new("noconfig");
        assert!(
            d.err()
                .contains("no config.json: not a gpt-oss model directory")
        );
    }

    #[test]
    fn no_shards_and_no_index() {
        let d = Dir::with_config("noshards");
        assert!(d.err().contains("no *.safetensors files and no index"));
        assert!(!d.err().contains("GGUF"));
        // A GGUF beside the config.json is named: the user meant the file.
        std::fs::write(d.0.join("m-Q8_0.gguf"), b"GGUF").unwrap();
        assert!(
            d.err()
                .contains("no *.safetensors files and no index; it holds GGUF file (m-Q8_0.gguf): pass the file itself"),
            "{}",
            d.err()
        );
    }

    #[test]
    fn index_without_a_weight_map() {
        let d = Dir::with_config("nomap");
        d.write(INDEX_FILE, "{}");
        let e = d.err();
        assert!(
            e.contains(INDEX_FILE) && e.contains("no `weight_map` object"),
            "{e}"
        );
    }

    #[test]
    fn weight_map_value_not_a_file_name() {
        let d = Dir::with_config("mapvalue");
        d.index(json!({"a": 3}));
        let e = d.err();
        assert!(
            e.contains("tensor `a`: weight_map value is not a file name"),
            "{e}"
        );
    }

    #[test]
    fn weight_map_outside_the_directory() {
        let d = Dir::with_config("escape");
        d.index(json!({"a": "../x.safetensors"}));
        let e = d.err();
        assert!(
            e.contains("weight_map points outside the directory: \"../x.safetensors\""),
            "{e}"
        );
    }

    #[test]
    fn a_listed_shard_is_missing() {
        let d = Dir::with_config("missingshard");
        d.shard("a.safetensors", &["x"]);
        d.index(json!({"x": "a.safetensors", "y": "b.safetensors"}));
        let e = d.err();
        assert!(
            e.contains("shard b.safetensors is listed in the index but missing"),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_in_two_shards() {
        let d = Dir::with_config("twice");
        d.shard("a.safetensors", &["x"]);
        d.shard("b.safetensors", &["x"]);
        let e = d.err();
        assert!(
            e.contains("b.safetensors: tensor `x`: also stored in")
                && e.contains("a tensor may live in one shard only"),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_the_index_does_not_list() {
        let d = Dir::with_config("unlisted");
        d.shard("a.safetensors", &["x", "y"]);
        d.index(json!({"x": "a.safetensors"}));
        let e = d.err();
        assert!(
            e.contains("unexpected tensor `y` (not listed in model.safetensors.index.json)"),
            "{e}"
        );
    }

    #[test]
    fn the_index_places_a_tensor_elsewhere() {
        let d = Dir::with_config("elsewhere");
        d.shard("a.safetensors", &["x"]);
        d.shard("b.safetensors", &["y"]);
        d.index(json!({"x": "b.safetensors", "y": "b.safetensors", "z": "a.safetensors"}));
        let e = d.err();
        assert!(
            e.contains("a.safetensors: tensor `x`: the index places it in b.safetensors"),
            "{e}"
        );
    }

    #[test]
    fn a_listed_tensor_is_absent_from_its_shard() {
        let d = Dir::with_config("absent");
        d.shard("a.safetensors", &["x"]);
        d.index(json!({"x": "a.safetensors", "y": "a.safetensors"}));
        let e = d.err();
        assert!(
            e.contains(
                "tensor `y`: listed in model.safetensors.index.json but absent from the shard"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_the_config_implies_is_missing() {
        let d = Dir::with_config("missingtensor");
        d.shard("a.safetensors", &["x"]);
        let e = d.err();
        assert!(
            e.contains("missing tensor `model.embed_tokens.weight` (expected BF16|F16|F32["),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_of_the_wrong_dtype_and_shape() {
        let d = Dir::with_config("wrongshape");
        d.shard("a.safetensors", &["model.embed_tokens.weight"]);
        let e = d.err();
        assert!(
            e.contains(
                "tensor `model.embed_tokens.weight`: is U8[1], the config implies BF16|F16|F32["
            ),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_the_config_does_not_account_for() {
        let d = Dir::new("extra");
        let out = d.0.join("m");
        let opts = SynthOptions {
            preset: Preset::Tiny,
            layers: Some(1),
            seed: 0,
            original: false,
            max_shard_bytes: None,
        };
        synth(&out, &opts, false, &mut |_| {}).unwrap();
        let ckpt = Checkpoint::open(&out).unwrap();
        assert_eq!(ckpt.layout(), Layout::Release);
        drop(ckpt);
        std::fs::remove_file(out.join(INDEX_FILE)).unwrap();
        write_shard(
            &out.join("zz.safetensors"),
            &["model.layers.1.self_attn.sinks"],
        );
        let e = Checkpoint::open(&out).err().unwrap().to_string();
        assert!(
            e.contains("unexpected tensor `model.layers.1.self_attn.sinks` (not part of a 1-layer hf-mxfp4 checkpoint)"),
            "{e}"
        );
    }
}
