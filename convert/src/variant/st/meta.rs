//! The files beside the shards: `config.json`, the index, the tokenizer and generation files
//! copied from the source, and a short `README.md` model card.
//!
//! | file | content |
//! |---|---|
//! | `config.json` | the source's HF config (or, for an `original/` source, the HF config of its parent directory when it describes the same model; else one rebuilt from the hyperparameters) without OpenAI's `quantization_config` (and mlx-lm's `quantization`); `torch_dtype` (transformers v4 configs) or `dtype` (v5 configs, those with `rope_parameters`); for int8 the compressed-tensors `quantization_config` |
//! | `model.safetensors.index.json` | `{"metadata": {"total_size": N}, "weight_map": {...}}`, keys sorted, 2-space indent (transformers v5's spelling) |
//! | `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`, `chat_template.jinja`, `generation_config.json` | copied byte for byte from the source directory or, failing that, its parent (the release holds them beside `original/`) |
//! | `README.md` | variant, layout, exactness, warnings |

use crate::checkpoint::read_json;
use crate::error::{ConvertError, Result};
use crate::model::AnyModel;
use crate::names::{Layout, Names};
use crate::variant::{ConvertReport, Variant};
use reference::{Config, LayerType, WeightId};
use serde_json::{Value, json};
use std::path::Path;

/// The fp16 warning, in the report and in the model card.
pub const FP16_WARNING: &str = "fp16 weights are a storage format here: gpt-oss activations overflow fp16 compute in the last \
layers (gpt-oss-120b: max |activation| ~45,000 at layer 34, past 65,504 at layer 35, every logit NaN; \
microsoft/onnxruntime-genai#2444). Compute in bf16 or fp32 (e.g. torch_dtype=torch.bfloat16), never in fp16.";

/// The `--int8-dense` warning.
pub const INT8_DENSE_WARNING: &str = "--int8-dense: the attention projections and lm_head are quantized per output channel \
(absmax, lossy).";

/// Files copied from the source (or its parent directory).
pub const SIDE_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// Writes JSON the way transformers v5 does: keys sorted, 2-space indent, final newline.
pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).expect("JSON values serialize");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| ConvertError::io(path, e))
}

/// The HF config the output config is derived from (see the module table).
pub fn base_config(model: &AnyModel, cfg: &Config) -> Result<Value> {
    for path in model.companions("config.json") {
        let v = read_json(&path)?;
        if v.get("model_type").is_none() {
            continue;
        }
        let parsed = Config::from_hf_json(&v).map_err(|e| ConvertError::config(&path, e))?;
        if parsed.same_model(cfg) {
            return Ok(v);
        }
    }
    Ok(hf_config(cfg))
}

/// A float as JSON, printed the way the f32 prints (1e-5, not 9.99999974e-6).
fn num32(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// A number as JSON, integral values as integers (rope_theta 150000 as the release writes it).
fn num64(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// An HF `config.json` rebuilt from the hyperparameters (transformers v4 keys, the release's
/// constant fields).
pub fn hf_config(cfg: &Config) -> Value {
    let y = &cfg.rope_scaling;
    let mut rope = json!({
        "beta_fast": y.beta_fast, "beta_slow": y.beta_slow, "factor": y.factor,
        "original_max_position_embeddings": y.original_max_position_embeddings,
        "rope_type": "yarn", "truncate": y.truncate,
    });
    if let Some(a) = y.attention_factor {
        rope["attention_factor"] = json!(a);
    }
    let layer_types: Vec<&str> = cfg
        .layer_types
        .iter()
        .map(|t| {
            if *t == LayerType::Sliding {
                "sliding_attention"
            } else {
                "full_attention"
            }
        })
        .collect();
    let mut v = json!({
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": true,
        "attention_dropout": 0.0,
        "experts_per_token": cfg.num_experts_per_tok,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "hidden_size": cfg.hidden_size,
        "initial_context_length": y.original_max_position_embeddings,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "layer_types": layer_types,
        "max_position_embeddings": cfg.max_position_embeddings,
        "model_type": "gpt_oss",
        "num_attention_heads": cfg.num_attention_heads,
        "num_experts_per_tok": cfg.num_experts_per_tok,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_key_value_heads": cfg.num_key_value_heads,
        "num_local_experts": cfg.num_local_experts,
        "output_router_logits": false,
        "rms_norm_eps": num32(cfg.rms_norm_eps),
        "rope_scaling": rope,
        "rope_theta": num64(cfg.rope_theta),
        "router_aux_loss_coef": 0.9,
        "sliding_window": cfg.sliding_window,
        "swiglu_limit": num32(cfg.swiglu_limit),
        "tie_word_embeddings": false,
        "use_cache": true,
        "vocab_size": cfg.vocab_size,
    });
    let t = &cfg.token_ids;
    match t.eos.as_slice() {
        [] => {}
        [one] => v["eos_token_id"] = json!(one),
        many => v["eos_token_id"] = json!(many),
    }
    if let Some(p) = t.pad {
        v["pad_token_id"] = json!(p);
    }
    if let Some(b) = t.bos {
        v["bos_token_id"] = json!(b);
    }
    v
}

/// The compressed-tensors `quantization_config` of the int8 layout
/// (compressed-tensors' `QuantizationConfig` with `format: pack-quantized`, as llm-compressor
/// writes it; `docs/formats.md` gives every field).
pub fn int8_quantization_config(cfg: &Config, dense_int8: bool) -> Value {
    let n = Names::new(Layout::Int8 { dense_int8 });
    let weights = |strategy: &str, group: Option<usize>| json!({"num_bits": 8, "type": "int", "symmetric": true, "strategy": strategy, "group_size": group, "dynamic": false, "actorder": null});
    let scheme = |targets: Value, weights: Value| json!({"targets": targets, "weights": weights, "input_activations": null, "output_activations": null, "format": "pack-quantized"});
    // Linear modules left in BF16, spelled out as llm-compressor saves them (it expands its
    // recipe's patterns to module names; explicit names also survive vLLM's HF → vLLM renaming,
    // where regexes written with HF names do not). The embedding is not a Linear module, so
    // llm-compressor does not list it, and neither do we.
    let mut ignore: Vec<String> = Vec::new();
    if !dense_int8 {
        ignore.push(n.module(WeightId::LmHead));
    }
    for l in 0..cfg.num_hidden_layers {
        if !dense_int8 {
            for id in [
                WeightId::QProj(l),
                WeightId::KProj(l),
                WeightId::VProj(l),
                WeightId::OProj(l),
            ] {
                ignore.push(n.module(id));
            }
        }
        ignore.push(n.module(WeightId::Router(l)));
    }
    let groups = if dense_int8 {
        json!({
            "group_0": scheme(json!([r"re:.*mlp\.experts\.\d+\.(gate|up|down)_proj$"]), weights("group", Some(32))),
            "group_1": scheme(json!([r"re:.*self_attn\.(q|k|v|o)_proj$", "lm_head"]), weights("channel", None)),
        })
    } else {
        json!({"group_0": scheme(json!(["Linear"]), weights("group", Some(32)))})
    };
    json!({
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": ignore,
        "kv_cache_scheme": null,
    })
}

/// The output `config.json`.
pub fn output_config(mut base: Value, variant: Variant, layout: Layout, cfg: &Config) -> Value {
    let Some(obj) = base.as_object_mut() else {
        return base;
    };
    obj.remove("quantization_config");
    // mlx-lm's spelling of the same map: an MLX-quantized source's tensors are written dense
    // (or as the layout below says), so its affine scheme no longer describes them.
    obj.remove("quantization");
    // transformers v5 spells the dtype `dtype` (v4 `torch_dtype`); llm-compressor, which defines
    // the int8 layout, saves through v5, so int8 directories say `dtype` whatever the source.
    let v5 = obj.contains_key("rope_parameters") || matches!(layout, Layout::Int8 { .. });
    obj.remove("torch_dtype");
    obj.remove("dtype");
    let dtype = if variant == Variant::SafetensorsFp16 {
        "float16"
    } else {
        "bfloat16"
    };
    obj.insert(
        if v5 { "dtype" } else { "torch_dtype" }.to_string(),
        json!(dtype),
    );
    if let Layout::Int8 { dense_int8 } = layout {
        obj.insert(
            "quantization_config".into(),
            int8_quantization_config(cfg, dense_int8),
        );
    }
    if layout == Layout::Release {
        obj.insert("quantization_config".into(), mxfp4_quantization_config());
    }
    base
}

/// The `quantization_config` of the release (openai/gpt-oss-20b and -120b `config.json`): MXFP4
/// experts, and the modules left in BF16. transformers' `Mxfp4HfQuantizer` reads it; vLLM,
/// SGLang and TensorRT-LLM key their MXFP4 loaders on `quant_method`.
pub fn mxfp4_quantization_config() -> Value {
    json!({
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head"
        ],
        "quant_method": "mxfp4"
    })
}

/// Copies [`SIDE_FILES`] into `dir`; returns the names copied and the names found nowhere.
pub fn copy_side_files(model: &AnyModel, dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let (mut copied, mut missing) = (Vec::new(), Vec::new());
    for name in SIDE_FILES {
        match model.companion(name) {
            Some(from) => {
                std::fs::copy(&from, dir.join(name)).map_err(|e| ConvertError::io(&from, e))?;
                copied.push(name.to_string());
            }
            None => missing.push(name.to_string()),
        }
    }
    Ok((copied, missing))
}

/// The warning for a source whose `tokenizer.json` holds ids at or past `vocab_size`: a
/// safetensors variant copies the tokenizer files byte for byte, so it leaves nothing out and
/// carries the source's mismatch as it is (unlike a GGUF, which builds its own token list and
/// refuses them unless `--truncate-vocab`). `None` when there are none or the file is unreadable.
pub fn past_vocab_warning(model: &AnyModel, cfg: &Config) -> Option<String> {
    let tok = read_json(&model.companion("tokenizer.json")?).ok()?;
    let past = crate::gguf::meta::tokens_past_vocab(&tok, cfg.vocab_size);
    (!past.is_empty()).then(|| {
        format!(
            "tokenizer.json holds {} with ids at or past vocab_size {}: copied unchanged with the \
             tokenizer files (a safetensors variant carries the source's tokenizer as it is, nothing \
             is left out); the embedding has no row for them, so transformers fails with an index \
             error on these ids until it is resized. --truncate-vocab only changes GGUF variants, \
             which build their own token list",
            crate::gguf::meta::describe_tokens(&past),
            cfg.vocab_size
        )
    })
}

/// Bytes of the side files [`copy_side_files`] will copy for `model`.
pub fn side_files_len(model: &AnyModel) -> u64 {
    SIDE_FILES
        .iter()
        .filter_map(|name| model.companion(name))
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// Writes the short model card.
pub fn write_model_card(
    path: &Path,
    variant: Variant,
    layout: Layout,
    cfg: &Config,
    report: &ConvertReport,
) -> Result<()> {
    let mut s = String::new();
    s.push_str("---\nlibrary_name: transformers\ntags:\n- gpt-oss\n- oss-forge\n");
    if matches!(layout, Layout::Int8 { .. }) {
        s.push_str("- compressed-tensors\n- int8\n");
    }
    s.push_str("---\n\n");
    s.push_str(&format!(
        "# gpt-oss ({} layers, {} experts): `{variant}`\n\n",
        cfg.num_hidden_layers, cfg.num_local_experts
    ));
    s.push_str(&format!(
        "Written by `oss-forge convert --to {variant}` (oss-forge {}).\n\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str("## Format\n\n");
    match variant {
        Variant::SafetensorsInt8 => {
            s.push_str("compressed-tensors `pack-quantized`, symmetric int8, `strategy: group`, `group_size: 32` for every \
expert weight (one module per expert: `model.layers.L.mlp.experts.E.{gate,up,down}_proj.{weight_packed, weight_scale, \
weight_shape, bias}`). Each group is one MXFP4 block: `q = 2 x E2M1 value`, `scale = 2^(s-128)` in BF16, so the experts \
are bit-exact. Attention, router, embeddings and norms are BF16");
            if let Layout::Int8 { dense_int8: true } = layout {
                s.push_str("; the attention projections and `lm_head` are int8 per output channel (lossy).\n\n");
            } else {
                s.push_str(", as is `lm_head`.\n\n");
            }
            s.push_str("Status: the layout loads through compressed-tensors (its decompressor reproduces the MXFP4 values). \
Whether stock vLLM / SGLang load per-expert int8 gpt-oss checkpoints is **unverified**; treat it as experimental there.\n\n");
        }
        _ => {
            let dt = if variant == Variant::SafetensorsFp16 {
                "F16"
            } else {
                "BF16"
            };
            s.push_str(&format!("transformers' dequantized layout, every tensor {dt}: `mlp.experts.gate_up_proj [E, hidden, \
2*intermediate]` (input-major, gate/up interleaved on the last dim), `gate_up_proj_bias`, `down_proj [E, intermediate, \
hidden]`, `down_proj_bias`; no `quantization_config`. Loads with `GptOssForCausalLM.from_pretrained`.\n\n"));
        }
    }
    s.push_str("## Exactness\n\n");
    if report.inexact.is_empty() {
        s.push_str("Every value equals the original's (the reference forward pass gives identical logits).\n\n");
    } else {
        s.push_str(
            "Values not stored exactly:\n\n| what | values | max abs error |\n|---|---|---|\n",
        );
        for i in &report.inexact {
            s.push_str(&format!(
                "| {} | {} | {:e} |\n",
                i.what, i.count, i.max_abs_error
            ));
        }
        s.push('\n');
    }
    if !report.warnings.is_empty() {
        s.push_str("## Warnings\n\n");
        for w in &report.warnings {
            s.push_str(&format!("- {w}\n"));
        }
    }
    std::fs::write(path, s).map_err(|e| ConvertError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_config_reads_back_as_the_same_model() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/small-gpt-oss/config.json"
        ))
        .unwrap();
        let cfg = Config::from_json_str(&text).unwrap();
        let back = Config::from_hf_json(&hf_config(&cfg)).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(hf_config(&cfg)["rms_norm_eps"], json!(1e-5));
    }

    #[test]
    fn int8_config_is_what_the_reader_accepts() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/tiny-gpt-oss/config.json"
        ))
        .unwrap();
        let cfg = Config::from_json_str(&text).unwrap();
        for dense in [false, true] {
            let q = int8_quantization_config(&cfg, dense);
            assert_eq!(crate::names::int8_config_dense(&q), Ok(dense));
            let ignore = q["ignore"].as_array().unwrap();
            assert_eq!(ignore.contains(&json!("lm_head")), !dense);
            assert!(ignore.contains(&json!("model.layers.3.mlp.router")));
            assert_eq!(
                ignore.contains(&json!("model.layers.0.self_attn.q_proj")),
                !dense
            );
        }
    }
}
