//! The MLX variants: mlx-lm's model directory ([`crate::mlx`]) as `mlx_lm.convert` writes it,
//! from any source oss-forge reads (dense fine-tunes included, which `mlx_lm.convert` refuses).
//!
//! | variant | same as | experts | embedding, q/k/v/o, lm_head | router | norms, biases, sinks |
//! |---|---|---|---|---|---|
//! | `mlx-mxfp4-q8` | `mlx_lm.convert -q --q-bits 8` | MXFP4 | affine 8-bit, group 64 | affine 8-bit, group 64 | BF16 |
//! | `mlx-mxfp4-q4` | `mlx_lm.convert -q --q-bits 4` | MXFP4 | affine 4-bit, group 64 | affine 8-bit, group 64 | BF16 |
//! | `mlx-bf16` | `mlx_lm.convert -d` | BF16 `[E, out, in]` | BF16 | BF16 | BF16 |
//!
//! How each tensor is produced:
//!
//! | source stores | MXFP4 expert | affine module | BF16 |
//! |---|---|---|---|
//! | release / `original/` MXFP4 | the block and scale bytes copied (gate = even rows) | | every value exact |
//! | ggml MXFP4 (GGUF) | nibbles moved back to the release order, scale byte copied | | exact |
//! | MLX affine of the same bits and group | | codes, scales, biases copied | |
//! | anything else | requantized with `--mxfp4-rounding` (inexact values counted) | `mx.quantize`'s rule, bit for bit ([`quant::affine`]; counted) | rounded to nearest even (counted) |
//!
//! Files: `model.safetensors`, or `model-0000i-of-0000N.safetensors` (1-based) when the tensors
//! pass `--max-shard-size` (default 5 GiB, mlx-lm's), header metadata `{"format": "mlx"}`;
//! `model.safetensors.index.json` (`total_size`, `total_parameters`, sorted `weight_map`, 4-space
//! indent); `config.json` ([`crate::mlx::config_json`]); the tokenizer files, chat template and
//! `generation_config.json` copied; a `README.md` model card. Tensors are streamed one at a time
//! into a [`Staged`] directory renamed at the end; NaN/Inf are refused by [`Guard`].

use crate::atomic::Staged;
use crate::checkpoint::{INDEX_FILE, read_json};
use crate::error::{ConvertError, Result};
use crate::mlx::{self, MLX_MAX_SHARD_BYTES, MlxQuant, MlxScheme, PyJson};
use crate::model::AnyModel;
use crate::names::{Expect, Layout, QPart, Role};
use crate::safetensors::{Dtype, PlannedTensor, SafetensorsWriter};
use crate::variant::Job;
use crate::variant::st::{self, encode::Encoder, meta};
use crate::variant::{
    CHUNK_VALUES, Container, ConvertOptions, ConvertReport, Guard, Inexact, Progress, Tally,
    Variant, encode_chunked,
};
use quant::{affine, mxfp4};
use reference::{Encoding, MatRef, WeightId, WeightSource};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the runtime adds, in the report and on the model card.
pub const MLX_RUNTIME_NOTE: &str = "mlx-lm 0.32 ignores `rope_scaling.truncate: false`: its YaRN rounds the correction \
range to whole dimensions, so mlx-lm's own gpt-oss logits differ from the reference implementation's by up to ~0.1 \
even in float32, whatever the weights. `oss-forge verify` judges the file (its weights), not the runtime.";

/// mlx-lm's shard name: `model.safetensors` alone, else `model-00001-of-00003.safetensors`.
pub fn shard_name(k: usize, n: usize) -> String {
    if n == 1 {
        "model.safetensors".into()
    } else {
        format!("model-{:05}-of-{n:05}.safetensors", k + 1)
    }
}

/// The `__metadata__` of MLX shards: `{"format": "mlx"}` (`mx.save_safetensors` as mlx-lm
/// calls it).
pub fn mlx_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([("format".to_string(), "mlx".to_string())])
}

/// The index mlx-lm writes: `metadata.total_size`, `metadata.total_parameters`, `weight_map`
/// sorted by tensor name, 4-space indent, no final newline.
pub fn index_json(
    total_size: u64,
    total_parameters: u64,
    weight_map: &BTreeMap<String, String>,
) -> String {
    let meta = PyJson::Object(vec![
        ("total_size".into(), PyJson::Leaf(total_size.into())),
        (
            "total_parameters".into(),
            PyJson::Leaf(total_parameters.into()),
        ),
    ]);
    let wm = PyJson::Object(
        weight_map
            .iter()
            .map(|(k, v)| (k.clone(), PyJson::Leaf(Value::String(v.clone()))))
            .collect(),
    );
    mlx::python_json(&PyJson::Object(vec![
        ("metadata".into(), meta),
        ("weight_map".into(), wm),
    ]))
}

/// Writes the MLX `variant` (stored as `storage`) of `model`, its weights read through `src`,
/// to the directory `out`.
pub fn convert(job: &Job<'_>) -> Result<ConvertReport> {
    let Job {
        model,
        src,
        variant,
        storage,
        out,
        opts,
        progress,
    } = *job;
    let Container::Mlx(scheme) = storage.container else {
        return Err(ConvertError::format(
            out,
            format!("{variant} is not an MLX variant"),
        ));
    };
    if opts.int8_dense {
        return Err(ConvertError::format(
            out,
            format!("--int8-dense applies to safetensors-int8, not {variant}"),
        ));
    }
    let cfg = src.config();
    // Everything that can fail on the source's side files is read before any output exists.
    let base_config = meta::base_config(model, cfg)?;
    let eos = generation_eos(model);
    let config_text = mlx::config_json(&base_config, eos.as_ref(), scheme, cfg);
    let plan = st::plan(Layout::Mlx(scheme), Dtype::BF16, cfg);
    let planned: Vec<PlannedTensor> = plan.iter().map(|(_, t)| t.clone()).collect();
    let shards = st::shard(
        &planned,
        opts.max_shard_bytes.unwrap_or(MLX_MAX_SHARD_BYTES),
    );
    let total: u64 = planned.iter().map(PlannedTensor::bytes).sum();
    let mut weight_map = BTreeMap::new();
    for (k, r) in shards.iter().enumerate() {
        for t in &planned[r.clone()] {
            weight_map.insert(t.name.clone(), shard_name(k, shards.len()));
        }
    }
    let index_text = index_json(total, mlx::total_parameters(cfg), &weight_map);

    let staged = Staged::create_dir(out, opts.force, crate::safetensors::is_model_file)?;
    let dir = staged.path().to_path_buf();
    let needed = total
        + shards
            .iter()
            .map(|r| crate::safetensors::header_len(&planned[r.clone()], &mlx_metadata()))
            .sum::<u64>()
        + meta::side_files_len(model)
        + (config_text.len() + index_text.len()) as u64;
    if !opts.skip_space_check {
        crate::space::ensure(out, needed)?;
    }
    let written = (|| {
        let mut enc = MlxEncoder::new(model, src, scheme, opts, progress);
        let mut files = Vec::new();
        progress.begin(&format!("writing {variant}"), total);
        for (k, range) in shards.iter().enumerate() {
            let name = shard_name(k, shards.len());
            let mut w = SafetensorsWriter::create(
                &dir.join(&name),
                &planned[range.clone()],
                &mlx_metadata(),
            )?;
            for (e, t) in &plan[range.clone()] {
                crate::cancel::check(&dir)?;
                enc.write(e, t, &mut w)?;
                // Each view checked its file before it was read; this catches a change during.
                model.check_unchanged()?;
            }
            w.finish()?;
            files.push(name);
        }
        progress.end();
        let mut report = enc.finish();
        report.warnings.push(MLX_RUNTIME_NOTE.to_string());
        for (name, text) in [(INDEX_FILE, &index_text), ("config.json", &config_text)] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| ConvertError::io(&p, e))?;
            files.push(name.to_string());
        }
        let (copied, missing) = meta::copy_side_files(model, &dir)?;
        files.extend(copied);
        if let Some(w) = meta::past_vocab_warning(model, cfg) {
            report.warnings.push(w);
        }
        if !missing.is_empty() {
            report.warnings.push(format!(
                "not found beside the source, not copied: {}",
                missing.join(", ")
            ));
        }
        let card = dir.join("README.md");
        std::fs::write(&card, model_card(variant, scheme, cfg, &report))
            .map_err(|e| ConvertError::io(&card, e))?;
        files.push("README.md".to_string());
        let mut bytes = 0;
        for f in &files {
            let p = dir.join(f);
            bytes += std::fs::metadata(&p)
                .map_err(|e| ConvertError::io(&p, e))?
                .len();
        }
        Ok((report, files, bytes))
    })()
    .map_err(|e| crate::space::name_full_disk(e, out, &dir, needed))?;
    let (mut report, files, bytes) = written;
    // A stop asked for during the last tensor: the output is not published.
    crate::cancel::check(out)?;
    let final_dir = staged.commit()?;
    report.outputs = files.iter().map(|f| final_dir.join(f)).collect();
    report.bytes = bytes;
    Ok(report)
}

/// `eos_token_id` of the source's `generation_config.json`, which mlx-lm's `load_config` puts
/// in the config (a file that is not JSON is ignored, as mlx-lm ignores it).
fn generation_eos(model: &AnyModel) -> Option<Value> {
    let path = model.companion("generation_config.json")?;
    read_json(&path).ok()?.get("eos_token_id").cloned()
}

/// Produces the bytes of each MLX tensor from the source's weights, one tensor at a time.
struct MlxEncoder<'a> {
    /// Writes float tensors (shared with the safetensors variants).
    floats: Encoder<'a>,
    src: &'a dyn WeightSource,
    src_path: PathBuf,
    scheme: MlxScheme,
    rounding: mxfp4::Rounding,
    allow_nonfinite: bool,
    progress: &'a dyn Progress,
    /// Scales and biases computed with the last module's codes, written by the parts after it.
    pending: Option<(WeightId, Vec<u8>, Vec<u8>)>,
    /// Float tensors stored inexactly, by tensor.
    inexact: Vec<Inexact>,
    /// Quantized modules, by kind of quantization (as the GGUF writer reports them: every
    /// value of a lossy module is counted, so a list per tensor would say nothing more).
    quantized: Tally,
}

impl<'a> MlxEncoder<'a> {
    fn new(
        model: &AnyModel,
        src: &'a dyn WeightSource,
        scheme: MlxScheme,
        opts: &ConvertOptions,
        progress: &'a dyn Progress,
    ) -> Self {
        let src_path = model.path();
        MlxEncoder {
            floats: Encoder::new(
                src,
                &src_path,
                Layout::Mlx(scheme),
                opts.allow_nonfinite,
                opts.mxfp4_rounding,
                progress,
            ),
            src,
            src_path,
            scheme,
            rounding: opts.mxfp4_rounding,
            allow_nonfinite: opts.allow_nonfinite,
            progress,
            pending: None,
            inexact: Vec::new(),
            quantized: Tally::default(),
        }
    }

    fn finish(self) -> ConvertReport {
        let mut report = self.floats.finish();
        report.inexact.extend(self.inexact);
        report.inexact.extend(self.quantized.into_report());
        report
    }

    fn guard(&self) -> Guard<'_> {
        Guard {
            allow: self.allow_nonfinite,
            src_path: &self.src_path,
        }
    }

    fn weight(&self, id: WeightId) -> Result<MatRef<'a>> {
        self.src
            .weight(id)
            .map_err(|e| ConvertError::format(&self.src_path, format!("{id}: {e}")))
    }

    fn emit(&self, w: &mut SafetensorsWriter, bytes: &[u8]) -> Result<()> {
        w.write(bytes)?;
        self.progress.advance(bytes.len() as u64);
        Ok(())
    }

    fn write(&mut self, e: &Expect, t: &PlannedTensor, w: &mut SafetensorsWriter) -> Result<()> {
        let cfg = self.src.config();
        let mut tally = Tally::default();
        match e.role {
            Role::Plain(id) => tally = self.floats.plain(id, t.dtype, w)?,
            Role::Stacked(id) => {
                for x in 0..cfg.num_local_experts {
                    tally.merge(self.floats.plain(mlx::with_expert(id, x), t.dtype, w)?);
                }
            }
            Role::Quantized(id, QPart::Codes) => {
                let q = self.scheme.stored(id, cfg).unwrap_or(MlxQuant::Float);
                let ids: Vec<WeightId> = if id.is_expert_matrix() {
                    (0..cfg.num_local_experts)
                        .map(|x| mlx::with_expert(id, x))
                        .collect()
                } else {
                    vec![id]
                };
                let (mut scales, mut biases) = (Vec::new(), Vec::new());
                for one in ids {
                    let m = self.weight(one)?;
                    match q {
                        MlxQuant::Mxfp4 => {
                            self.mxfp4(one, &m, w, &mut scales, &mut tally)?;
                        }
                        MlxQuant::Affine { bits, group } => {
                            self.affine(
                                one,
                                &m,
                                bits,
                                group,
                                w,
                                &mut scales,
                                &mut biases,
                                &mut tally,
                            )?;
                        }
                        MlxQuant::Float => {
                            return Err(ConvertError::tensor(
                                w.path(),
                                &t.name,
                                "internal: codes planned for a float module",
                            ));
                        }
                    }
                    self.src.release(one);
                }
                self.pending = Some((id, scales, biases));
                self.quantized.merge(std::mem::take(&mut tally));
            }
            Role::Quantized(id, part @ (QPart::Scales | QPart::Biases)) => {
                let Some((pid, scales, biases)) = self.pending.as_ref().filter(|p| p.0 == id)
                else {
                    return Err(ConvertError::tensor(
                        w.path(),
                        &t.name,
                        "internal: scales planned without their module's codes",
                    ));
                };
                debug_assert_eq!(*pid, id);
                let bytes = if part == QPart::Scales {
                    scales
                } else {
                    biases
                };
                w.write(bytes)?;
                self.progress.advance(bytes.len() as u64);
            }
            _ => {
                return Err(ConvertError::tensor(
                    w.path(),
                    &t.name,
                    "internal: not a tensor of an MLX variant",
                ));
            }
        }
        for line in tally.into_report() {
            self.inexact.push(Inexact {
                what: format!("{} of `{}`", line.what, t.name),
                ..line
            });
        }
        Ok(())
    }

    /// The MXFP4 codes of `m` (the weight `id`) written to `w`, its scale bytes appended to
    /// `scales`: copied from MXFP4 storage, requantized from anything else.
    fn mxfp4(
        &self,
        id: WeightId,
        m: &MatRef<'_>,
        w: &mut SafetensorsWriter,
        scales: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<()> {
        let (rows, cols) = (m.rows(), m.cols());
        let nb = cols / mxfp4::BLOCK;
        let rb = nb * mxfp4::BLOCK_BYTES;
        let chunk = (CHUNK_VALUES / cols.max(1)).clamp(1, rows.max(1));
        let guard = self.guard();
        match *m.encoding() {
            Encoding::Mxfp4 {
                blocks,
                scales: sc,
                row_step,
            } => {
                if rows > 0 {
                    // The expert's rows (and those between them, for gate/up) in one call.
                    let span = ((rows - 1) * row_step + 1) * rb;
                    self.src.prefetch(&blocks[..span]);
                }
                let mut buf = Vec::with_capacity(chunk * rb);
                for r0 in (0..rows).step_by(chunk) {
                    buf.clear();
                    for r in r0..(r0 + chunk).min(rows) {
                        let s = r * row_step;
                        buf.extend_from_slice(&blocks[s * rb..(s + 1) * rb]);
                        for &b in &sc[s * nb..(s + 1) * nb] {
                            guard.scale(id, b)?;
                            scales.push(b);
                        }
                    }
                    self.emit(w, &buf)?;
                    self.src.release(id);
                }
            }
            Encoding::Ggml {
                codec: quant::Codec::MXFP4,
                data,
                row_step,
            } => {
                let grb = nb * mxfp4::GGML_BLOCK_BYTES;
                let mut buf = Vec::with_capacity(chunk * rb);
                for r0 in (0..rows).step_by(chunk) {
                    buf.clear();
                    for r in r0..(r0 + chunk).min(rows) {
                        let s = r * row_step;
                        for b in data[s * grb..(s + 1) * grb].chunks_exact(mxfp4::GGML_BLOCK_BYTES)
                        {
                            guard.scale(id, b[0])?;
                            scales.push(b[0]);
                            buf.extend_from_slice(&mxfp4::repack_from_ggml(&b[1..]));
                        }
                    }
                    self.emit(w, &buf)?;
                    self.src.release(id);
                }
            }
            _ => {
                if !cols.is_multiple_of(mxfp4::BLOCK) {
                    return Err(ConvertError::format(
                        &self.src_path,
                        format!("{id}: {cols} inputs are not a whole number of MXFP4 blocks"),
                    ));
                }
                let rule = self.rounding;
                let what = format!("expert values requantized to MXFP4 (`{rule}` rounding)");
                let out_rb = rb + nb;
                let piece = |r0: usize, out: &mut [u8], t: &mut Tally| {
                    let n = out.len() / out_rb;
                    if let Some(b) = dense_rows_bytes(m, r0, n) {
                        self.src.prefetch(b);
                    }
                    let mut xs = vec![0f32; n * cols];
                    let mut back = vec![0f32; cols];
                    m.dequant_rows(r0, &mut xs);
                    guard.rows(id, r0, cols, &xs)?;
                    for (x, o) in xs.chunks_exact(cols).zip(out.chunks_exact_mut(out_rb)) {
                        let (b, s) = o.split_at_mut(rb);
                        mxfp4::quantize_row(rule, x, b, s);
                        mxfp4::decode_row(b, s, &mut back);
                        t.compare(&what, x, &back);
                    }
                    Ok(())
                };
                let mut buf = Vec::new();
                tally.merge(encode_chunked(
                    rows,
                    cols,
                    out_rb,
                    &mut buf,
                    piece,
                    |bytes| {
                        // Row by row into the writer's own buffers (no gathering copy).
                        for row in bytes.chunks_exact(out_rb) {
                            w.write(&row[..rb])?;
                            scales.extend_from_slice(&row[rb..]);
                        }
                        self.progress.advance((bytes.len() / out_rb * rb) as u64);
                        self.src.release(id);
                        Ok(())
                    },
                )?);
            }
        }
        Ok(())
    }

    /// The affine codes of `m` (the weight `id`) written to `w`, its BF16 scales and biases
    /// appended: copied from affine storage of the same bits and group, else quantized by
    /// `mx.quantize`'s rule.
    #[allow(clippy::too_many_arguments)]
    fn affine(
        &self,
        id: WeightId,
        m: &MatRef<'_>,
        bits: u32,
        group: usize,
        w: &mut SafetensorsWriter,
        scales: &mut Vec<u8>,
        biases: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<()> {
        let (rows, cols) = (m.rows(), m.cols());
        let (cb, sb, bb) = mlx::row_bytes(MlxQuant::Affine { bits, group }, cols);
        let guard = self.guard();
        match *m.encoding() {
            Encoding::Affine {
                packed,
                scales: s,
                biases: b,
                bits: b2,
                group: g2,
            } if (b2, g2) == (bits, group) => {
                guard.bf16_bytes(id, &s[..rows * sb])?;
                guard.bf16_bytes(id, &b[..rows * bb])?;
                let chunk = (CHUNK_VALUES / cols.max(1)).clamp(1, rows.max(1));
                for piece in packed[..rows * cb].chunks(chunk * cb) {
                    self.src.prefetch(piece);
                    self.emit(w, piece)?;
                    self.src.release(id);
                }
                scales.extend_from_slice(&s[..rows * sb]);
                biases.extend_from_slice(&b[..rows * bb]);
            }
            _ => {
                let what = format!(
                    "values quantized to MLX affine {bits}-bit, group {group} (lossy by design)"
                );
                let out_rb = cb + sb + bb;
                let piece = |r0: usize, out: &mut [u8], t: &mut Tally| {
                    let n = out.len() / out_rb;
                    if let Some(b) = dense_rows_bytes(m, r0, n) {
                        self.src.prefetch(b);
                    }
                    with_scratch(n * cols, |xs| {
                        m.dequant_rows(r0, xs);
                        guard.rows(id, r0, cols, xs)?;
                        for (x, o) in xs.chunks_exact(cols).zip(out.chunks_exact_mut(out_rb)) {
                            let (c, rest) = o.split_at_mut(cb);
                            let (s, b) = rest.split_at_mut(sb);
                            let (changed, err) =
                                affine::quantize_row_counting(x, bits, group, c, s, b);
                            t.add(&what, changed, err);
                        }
                        Ok(())
                    })
                };
                let mut buf = Vec::new();
                tally.merge(encode_chunked(
                    rows,
                    cols,
                    out_rb,
                    &mut buf,
                    piece,
                    |bytes| {
                        // Row by row into the writer's own buffers (no gathering copy).
                        for row in bytes.chunks_exact(out_rb) {
                            w.write(&row[..cb])?;
                            scales.extend_from_slice(&row[cb..cb + sb]);
                            biases.extend_from_slice(&row[cb + sb..]);
                        }
                        self.progress.advance((bytes.len() / out_rb * cb) as u64);
                        self.src.release(id);
                        Ok(())
                    },
                )?);
            }
        }
        Ok(())
    }
}

/// Runs `f` on `n` values of this thread's scratch buffer (kept between calls: a piece of a
/// chunk is about 2 MB, which the allocator would otherwise map and unmap every time).
fn with_scratch<T>(n: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|v| {
        if v.len() < n {
            v.resize(n, 0.0);
        }
        f(&mut v[..n])
    })
}

/// The bytes of rows `r0 .. r0 + n` of a dense row-major view (to map them ahead of reading).
fn dense_rows_bytes<'a>(m: &MatRef<'a>, r0: usize, n: usize) -> Option<&'a [u8]> {
    match *m.encoding() {
        Encoding::Dense {
            dtype,
            data,
            row_stride,
            col_stride: 1,
        } if n > 0 => {
            let sz = dtype.size();
            data.get(r0 * row_stride * sz..((r0 + n - 1) * row_stride + m.cols()) * sz)
        }
        _ => None,
    }
}

/// The model card of an MLX variant.
fn model_card(
    variant: Variant,
    scheme: MlxScheme,
    cfg: &reference::Config,
    report: &ConvertReport,
) -> String {
    let mut s = String::new();
    s.push_str("---\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- gpt-oss\n- oss-forge\n- mlx\n");
    if scheme.experts == MlxQuant::Mxfp4 {
        s.push_str("- mxfp4\n");
    }
    s.push_str("---\n\n");
    s.push_str(&format!(
        "# gpt-oss ({} layers, {} experts): `{variant}`\n\n",
        cfg.num_hidden_layers, cfg.num_local_experts
    ));
    s.push_str(&format!(
        "Written by `oss-forge convert --to {variant}` (oss-forge {}): the layout `mlx_lm.convert` writes, loaded by \
mlx-lm (`mlx_lm.load`, `mlx_lm.generate`) and LM Studio's MLX engine.\n\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str("## Format\n\n| weights | storage |\n|---|---|\n");
    let row = |what: &str, q: MlxQuant| {
        format!(
            "| {what} | {} |\n",
            Into::<super::Store>::into(q).describe()
        )
    };
    s.push_str(&row(
        "MoE experts (`mlp.experts.{gate,up,down}_proj`, `[E, out, in]`)",
        scheme.experts,
    ));
    s.push_str(&row("embedding", scheme.embedding));
    s.push_str(&row("attention (q, k, v, o)", scheme.attention));
    s.push_str(&row("router", scheme.router));
    s.push_str(&row("lm_head", scheme.lm_head));
    s.push_str("| norms, biases, sinks | BF16 |\n\n");
    s.push_str("## Exactness\n\n");
    if report.inexact.is_empty() {
        s.push_str("Every value equals the original's.\n\n");
    } else {
        // One line per kind.
        let mut kinds: BTreeMap<&str, (u64, f32)> = BTreeMap::new();
        for i in &report.inexact {
            let kind = i.what.split(" of `").next().unwrap_or(&i.what);
            let e = kinds.entry(kind).or_default();
            e.0 += i.count;
            e.1 = e.1.max(i.max_abs_error);
        }
        s.push_str(
            "Values not stored exactly:\n\n| what | values | max abs error |\n|---|---|---|\n",
        );
        for (k, (n, e)) in kinds {
            s.push_str(&format!("| {k} | {n} | {e:e} |\n"));
        }
        s.push('\n');
    }
    s.push_str("## Warnings\n\n");
    for w in &report.warnings {
        s.push_str(&format!("- {w}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_mlx_lm_s() {
        assert_eq!(shard_name(0, 1), "model.safetensors");
        assert_eq!(shard_name(1, 3), "model-00002-of-00003.safetensors");
    }

    #[test]
    fn the_index_is_written_as_mlx_lm_writes_it() {
        let wm = BTreeMap::from([
            ("b".to_string(), "model.safetensors".to_string()),
            ("a".to_string(), "model.safetensors".to_string()),
        ]);
        assert_eq!(
            index_json(10, 5, &wm),
            "{\n    \"metadata\": {\n        \"total_size\": 10,\n        \"total_parameters\": 5\n    },\n    \"weight_map\": {\n        \"a\": \"model.safetensors\",\n        \"b\": \"model.safetensors\"\n    }\n}"
        );
    }
}
