//! The safetensors variants: a model directory in transformers' dequantized layout (BF16/F16)
//! or in compressed-tensors' `pack-quantized` int8 layout.
//!
//! | variant | experts | other tensors | `quantization_config` | exact? |
//! |---|---|---|---|---|
//! | `safetensors-bf16` | `gate_up_proj [E, H, 2I]`, `down_proj [E, I, H]` BF16 | BF16 | none | always (MXFP4 and BF16 values are BF16 values) |
//! | `safetensors-fp16` | same, F16 | F16 | none | where every value is in F16's range; the rest is reported per tensor |
//! | `safetensors-int8` | per expert `weight_packed` I32 + `weight_scale` BF16 (group 32) + `weight_shape` I64 | BF16 | compressed-tensors, experts group 32 | yes: `q = 2·E2M1`, `scale = 2^(s-128)` |
//! | `safetensors-int8 --int8-dense` | same | q/k/v/o and lm_head int8 per channel, the rest BF16 | + a `channel` group | no: the per-channel tensors are reported |
//!
//! The tensor list is [`names::expected`] for the output layout, so the reader
//! ([`crate::Checkpoint`]) and this writer cannot disagree. Tensors are produced one at a time
//! from the [`WeightSource`] (one expert's matrices at most in memory, each weight released
//! after use) and streamed into shards of at most `--max-shard-size` (a tensor larger than that
//! gets a shard of its own, as in transformers), all inside a [`Staged`] directory that is
//! renamed to the output name at the end. The files beside the shards are written by
//! `meta`.

pub(crate) mod encode;
pub(crate) mod meta;

use crate::atomic::Staged;
use crate::checkpoint::INDEX_FILE;
use crate::error::{ConvertError, Result};
use crate::model::AnyModel;
use crate::names::{self, Expect, Layout};
use crate::safetensors::{Dtype, PlannedTensor, SafetensorsWriter};
use crate::variant::Job;
use crate::variant::{ConvertOptions, ConvertReport, Progress, Storage, Variant, greedy_ranges};
use quant::Codec;
use reference::WeightSource;
use std::path::Path;

/// transformers v4's default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// The layout and float dtype of a safetensors storage row.
pub fn layout_of(storage: &Storage) -> Option<(Layout, Dtype)> {
    let float = match storage.vectors {
        Codec::BF16 => Dtype::BF16,
        Codec::F16 => Dtype::F16,
        Codec::F32 => Dtype::F32,
        _ => return None,
    };
    Some((storage.layout()?, float))
}

/// The tensors of a variant with the dtypes it stores them in.
pub fn plan(layout: Layout, float: Dtype, cfg: &reference::Config) -> Vec<(Expect, PlannedTensor)> {
    names::expected(layout, cfg)
        .into_iter()
        .map(|e| {
            // Dense layouts accept several float dtypes; the variant picks one.
            let dtype = if e.dtypes.len() > 1 {
                float
            } else {
                e.dtypes[0]
            };
            let t = PlannedTensor::new(&e.name, dtype, e.shape.clone());
            (e, t)
        })
        .collect()
}

/// Splits tensors, in order, into shards of at most `max` bytes (a larger tensor alone).
pub fn shard(tensors: &[PlannedTensor], max: u64) -> Vec<std::ops::Range<usize>> {
    if tensors.is_empty() {
        return Vec::new();
    }
    let sizes: Vec<u64> = tensors.iter().map(PlannedTensor::bytes).collect();
    greedy_ranges(&sizes, Some(max))
}

/// transformers' shard name: `model-00001-of-00003.safetensors` (1-based).
pub fn shard_name(k: usize, n: usize) -> String {
    format!("model-{:05}-of-{n:05}.safetensors", k + 1)
}

/// Writes the safetensors `variant` (stored as `storage`) of the model `model`, its weights
/// read through `src`, to the directory `out`.
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
    let Some((layout, float)) = layout_of(storage) else {
        return Err(ConvertError::format(
            out,
            format!("{variant} is not a safetensors variant"),
        ));
    };
    if opts.int8_dense && variant != Variant::SafetensorsInt8 {
        return Err(ConvertError::format(
            out,
            format!("--int8-dense applies to safetensors-int8, not {variant}"),
        ));
    }
    let cfg = src.config();
    let max = opts.max_shard_bytes.unwrap_or(DEFAULT_MAX_SHARD_BYTES);
    // Everything that can fail on the source's side files is read before any output exists.
    let base_config = meta::base_config(model, cfg)?;
    let plan = plan(layout, float, cfg);
    let planned: Vec<PlannedTensor> = plan.iter().map(|(_, t)| t.clone()).collect();
    let shards = shard(&planned, max);
    let total: u64 = planned.iter().map(PlannedTensor::bytes).sum();

    let staged = Staged::create_dir(out, opts.force, crate::safetensors::is_model_file)?;
    let dir = staged.path().to_path_buf();
    // Shards (headers and data) plus the small files, as the model directory will hold them.
    let needed = total
        + shards
            .iter()
            .map(|r| {
                crate::safetensors::header_len(
                    &planned[r.clone()],
                    &crate::safetensors::pt_metadata(),
                )
            })
            .sum::<u64>()
        + meta::side_files_len(model);
    if !opts.skip_space_check {
        crate::space::ensure(out, needed)?;
    }
    // Mapped while the staged directory still exists, so what got written can be measured.
    let (mut report, files, bytes) = write_all(
        model,
        src,
        variant,
        opts,
        progress,
        layout,
        &plan,
        &planned,
        &shards,
        total,
        base_config,
        &dir,
    )
    .map_err(|e| crate::space::name_full_disk(e, out, &dir, needed))?;
    // A stop asked for during the last tensor: the output is not published.
    crate::cancel::check(out)?;
    let final_dir = staged.commit()?;
    report.outputs = files.iter().map(|f| final_dir.join(f)).collect();
    report.bytes = bytes;
    Ok(report)
}

/// The writing half of [`convert`], into the staged directory (committed on success).
#[allow(clippy::too_many_arguments)]
fn write_all(
    model: &AnyModel,
    src: &dyn WeightSource,
    variant: Variant,
    opts: &ConvertOptions,
    progress: &dyn Progress,
    layout: Layout,
    plan: &[(Expect, PlannedTensor)],
    planned: &[PlannedTensor],
    shards: &[std::ops::Range<usize>],
    total: u64,
    base_config: serde_json::Value,
    dir: &Path,
) -> Result<(ConvertReport, Vec<String>, u64)> {
    let cfg = src.config();
    let mut enc = encode::Encoder::new(
        src,
        &model.path(),
        layout,
        opts.allow_nonfinite,
        opts.mxfp4_rounding,
        progress,
    );
    let meta_pt = crate::safetensors::pt_metadata();
    let mut weight_map = serde_json::Map::new();
    let mut files = Vec::new();
    progress.begin(&format!("writing {variant}"), total);
    for (k, range) in shards.iter().enumerate() {
        let name = shard_name(k, shards.len());
        let path = dir.join(&name);
        let mut w = SafetensorsWriter::create(&path, &planned[range.clone()], &meta_pt)?;
        for (e, t) in &plan[range.clone()] {
            crate::cancel::check(dir)?;
            enc.write(e, t, &mut w)?;
            // Each view checked its file before it was read; this catches a change during.
            model.check_unchanged()?;
            weight_map.insert(t.name.clone(), serde_json::Value::String(name.clone()));
        }
        w.finish()?;
        files.push(name);
    }
    progress.end();
    let mut report = enc.finish();
    if variant == Variant::SafetensorsFp16 {
        report.warnings.push(meta::FP16_WARNING.to_string());
    }
    if opts.int8_dense {
        // What holds for the experts depends on the source: exact from MXFP4 (or int8 with the
        // same groups), absmax-rounded from dense weights.
        let lossy = report
            .inexact
            .iter()
            .filter(|i| i.what.contains(".mlp.experts."))
            .count();
        report.warnings.push(format!(
            "{} {}",
            meta::INT8_DENSE_WARNING,
            if lossy == 0 {
                "The expert weights are stored exactly.".to_string()
            } else {
                format!(
                    "The expert weights are quantized from the source's dense values too (absmax per group of 32, lossy: {lossy} expert tensors)."
                )
            }
        ));
    }

    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    meta::write_json(&dir.join(INDEX_FILE), &index)?;
    files.push(INDEX_FILE.to_string());
    let config = meta::output_config(base_config, variant, layout, cfg);
    meta::write_json(&dir.join("config.json"), &config)?;
    files.push("config.json".to_string());
    let (copied, missing) = meta::copy_side_files(model, dir)?;
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
    meta::write_model_card(&dir.join("README.md"), variant, layout, cfg, &report)?;
    files.push("README.md".to_string());

    let mut bytes = 0;
    for f in &files {
        let p = dir.join(f);
        bytes += std::fs::metadata(&p)
            .map_err(|e| ConvertError::io(&p, e))?
            .len();
    }
    Ok((report, files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_greedy_in_order_and_a_large_tensor_gets_its_own() {
        let t = |n: usize| PlannedTensor::new(format!("t{n}"), Dtype::U8, vec![n]);
        let ts = [t(4), t(4), t(3), t(10), t(1)];
        assert_eq!(shard(&ts, 8), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(shard(&ts, 100), vec![0..5]);
        assert_eq!(shard(&[], 8), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(shard_name(0, 3), "model-00001-of-00003.safetensors");
    }
}
