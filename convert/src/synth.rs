//! Synthetic gpt-oss checkpoints in the exact release layout, at the real tensor shapes.
//!
//! `tiny` has the dimensions of `fixtures/tiny-gpt-oss`; `20b` and `120b` have the released
//! configs (the `config.json` of `openai/gpt-oss-20b` / `-120b` on Hugging Face), optionally with fewer layers. The directory holds what the
//! release holds: `config.json`, `generation_config.json`, `model.safetensors.index.json`, shards
//! named `model-0000i-of-0000{N-1}.safetensors`, tokenizer files, a chat template and, with
//! `original`, an `original/` folder with the same weights in OpenAI's layout.
//!
//! Weights are deterministic in the seed: every tensor has its own seed derived from the run seed
//! and its (HF) name, and values are drawn in fixed chunks from per-chunk generators, so the output
//! does not depend on the thread count. Dense tensors are BF16 draws from a normal distribution;
//! experts are f32 normal draws quantized with the MXFP4 encoder (the first block of expert 0 of
//! every layer is all zeros, as in the fixtures). Data streams to disk chunk by chunk.

use crate::atomic::Staged;
use crate::checkpoint::INDEX_FILE;
use crate::error::{ConvertError, Result};
use crate::names::{self, Expect, Layout, Names};
use crate::safetensors::{PlannedTensor, SafetensorsWriter};
use quant::{float, mxfp4};
use rayon::prelude::*;
use reference::{Config, WeightId};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The model sizes `synth` can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `fixtures/tiny-gpt-oss` dimensions (4 layers, hidden 128, 8 experts, vocab 512).
    Tiny,
    /// gpt-oss-20b (24 layers, 32 experts).
    Gpt20b,
    /// gpt-oss-120b (36 layers, 128 experts).
    Gpt120b,
}

impl Preset {
    /// Parses `tiny`, `20b`, `120b`.
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "tiny" => Some(Preset::Tiny),
            "20b" => Some(Preset::Gpt20b),
            "120b" => Some(Preset::Gpt120b),
            _ => None,
        }
    }

    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Gpt20b => "20b",
            Preset::Gpt120b => "120b",
        }
    }
}

/// What to synthesize.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    /// Model size.
    pub preset: Preset,
    /// Layers (default: the preset's).
    pub layers: Option<usize>,
    /// Seed of every weight.
    pub seed: u64,
    /// Also write `original/`.
    pub original: bool,
    /// Largest shard (default: 4.8e9 bytes like the release; 1 MB for `tiny`, so it has two).
    pub max_shard_bytes: Option<u64>,
}

/// What `synth` wrote.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Tensor bytes in the HF layout.
    pub tensor_bytes: u64,
    /// Tensors in the HF layout.
    pub tensors: usize,
    /// HF shard files.
    pub shards: usize,
}

/// The HF `config.json` of a preset.
pub fn preset_config(preset: Preset, layers: Option<usize>) -> Value {
    let (l, e, h, i, heads, kv, v, window, ids) = match preset {
        Preset::Tiny => (4, 8, 128, 64, 4, 2, 512, 8, (482, 483, 484)),
        Preset::Gpt20b => (
            24,
            32,
            2880,
            2880,
            64,
            8,
            201088,
            128,
            (199998, 199999, 200002),
        ),
        Preset::Gpt120b => (
            36,
            128,
            2880,
            2880,
            64,
            8,
            201088,
            128,
            (199998, 199999, 200002),
        ),
    };
    let l = layers.unwrap_or(l);
    let layer_types: Vec<&str> = (0..l)
        .map(|i| {
            if i % 2 == 0 {
                "sliding_attention"
            } else {
                "full_attention"
            }
        })
        .collect();
    json!({
        "architectures": ["GptOssForCausalLM"],
        "attention_bias": true,
        "attention_dropout": 0.0,
        "eos_token_id": ids.2,
        "experts_per_token": 4,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": h,
        "initial_context_length": 4096,
        "initializer_range": 0.02,
        "intermediate_size": i,
        "layer_types": layer_types,
        "max_position_embeddings": 131072,
        "model_type": "gpt_oss",
        "num_attention_heads": heads,
        "num_experts_per_tok": 4,
        "num_hidden_layers": l,
        "num_key_value_heads": kv,
        "num_local_experts": e,
        "output_router_logits": false,
        "pad_token_id": ids.1,
        "quantization_config": {
            "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
            "quant_method": "mxfp4"
        },
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
        "rope_theta": 150000,
        "router_aux_loss_coef": 0.9,
        "sliding_window": window,
        "swiglu_limit": 7.0,
        "tie_word_embeddings": false,
        "transformers_version": "4.55.0",
        "use_cache": true,
        "vocab_size": v
    })
}

/// OpenAI's `original/config.json` for `cfg`, in the key order of the release's
/// (<https://huggingface.co/openai/gpt-oss-120b/blob/main/original/config.json>).
fn original_config(cfg: &Config) -> String {
    let y = &cfg.rope_scaling;
    format!(
        "{{\"num_hidden_layers\": {}, \"num_experts\": {}, \"experts_per_token\": {}, \"vocab_size\": {}, \"hidden_size\": {}, \
         \"intermediate_size\": {}, \"swiglu_limit\": {:.1}, \"head_dim\": {}, \"num_attention_heads\": {}, \"num_key_value_heads\": {}, \
         \"sliding_window\": {}, \"initial_context_length\": {}, \"rope_theta\": {}, \"rope_scaling_factor\": {:.1}, \
         \"rope_ntk_alpha\": {}, \"rope_ntk_beta\": {}}}",
        cfg.num_hidden_layers,
        cfg.num_local_experts,
        cfg.num_experts_per_tok,
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.swiglu_limit,
        cfg.head_dim,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.sliding_window,
        y.original_max_position_embeddings,
        cfg.rope_theta,
        y.factor,
        y.beta_slow,
        y.beta_fast
    )
}

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_of(seed: u64, name: &str) -> u64 {
    name.bytes()
        .fold(splitmix(seed), |h, b| splitmix(h ^ b as u64))
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64, chunk: u64) -> Rng {
        Rng(splitmix(seed ^ splitmix(chunk)))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }
    /// An approximately standard normal draw (Irwin-Hall of four 16-bit uniforms).
    fn normal(&mut self) -> f32 {
        let r = self.next();
        let s = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        (s as f32 / 65535.0 - 2.0) * 3f32.sqrt()
    }
}

/// Elements per generator chunk (fixed: the values do not depend on how work is split).
const CHUNK: usize = 1 << 16;
/// Chunks generated per parallel batch before writing.
const BATCH: usize = 64;

// ---------------------------------------------------------------------------------------------
// What each tensor holds

#[derive(Clone, Debug)]
enum Gen {
    /// BF16 normal draws.
    Normal {
        seed: u64,
        mean: f32,
        std: f32,
        n: usize,
    },
    /// MXFP4 nibbles of `rows × cols` normal draws; the scales are kept for `Scales`.
    Blocks {
        seed: u64,
        rows: usize,
        cols: usize,
        std: f32,
        zero_first_per: Option<usize>,
    },
    /// The scale bytes produced by the `Blocks` tensor of this name.
    Scales { blocks: String },
    /// Several generators one after the other (the original layout's fused qkv).
    Concat(Vec<Gen>),
}

fn dense_gen(seed: u64, id: WeightId, cfg: &Config) -> Gen {
    let (rows, cols) = id.shape(cfg);
    let s = seed_of(seed, &Names::new(Layout::Release).plain(id));
    use WeightId::*;
    let (mean, std) = match id {
        Embedding => (0.0, 1.0),
        AttnNorm(_) | MlpNorm(_) | FinalNorm => (1.0, 0.1),
        Sinks(_) => (0.0, 1.0),
        QBias(_) | KBias(_) | VBias(_) | OBias(_) | RouterBias(_) => (0.0, 0.05),
        _ => (0.0, 1.0 / (cols as f32).sqrt()),
    };
    Gen::Normal {
        seed: s,
        mean,
        std,
        n: rows * cols,
    }
}

/// The generator of every tensor a `layout` checkpoint holds, keyed by stored name.
fn generators(layout: Layout, cfg: &Config, seed: u64) -> HashMap<String, Gen> {
    let hf = Names::new(Layout::Release);
    let n = Names::new(layout);
    let (h, i, e) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_local_experts,
    );
    let mut g = HashMap::new();
    for id in [WeightId::Embedding, WeightId::FinalNorm, WeightId::LmHead] {
        g.insert(n.plain(id), dense_gen(seed, id, cfg));
    }
    use WeightId::*;
    for l in 0..cfg.num_hidden_layers {
        for id in [
            AttnNorm(l),
            OProj(l),
            OBias(l),
            Sinks(l),
            MlpNorm(l),
            Router(l),
            RouterBias(l),
        ] {
            g.insert(n.plain(id), dense_gen(seed, id, cfg));
        }
        match layout {
            Layout::Release
            | Layout::Dense
            | Layout::DenseUnderBlocks
            | Layout::PerExpert
            | Layout::Int8 { .. }
            | Layout::Mlx(_) => {
                for id in [QProj(l), QBias(l), KProj(l), KBias(l), VProj(l), VBias(l)] {
                    g.insert(n.plain(id), dense_gen(seed, id, cfg));
                }
            }
            Layout::Original => {
                let w = [QProj(l), KProj(l), VProj(l)].map(|id| dense_gen(seed, id, cfg));
                let b = [QBias(l), KBias(l), VBias(l)].map(|id| dense_gen(seed, id, cfg));
                g.insert(n.qkv_weight(l), Gen::Concat(w.to_vec()));
                g.insert(n.qkv_bias(l), Gen::Concat(b.to_vec()));
            }
        }
        let gu = Gen::Blocks {
            seed: seed_of(seed, &hf.gate_up_blocks(l)),
            rows: e * 2 * i,
            cols: h,
            std: 1.0 / (h as f32).sqrt(),
            zero_first_per: Some(e),
        };
        let dn = Gen::Blocks {
            seed: seed_of(seed, &hf.down_blocks(l)),
            rows: e * h,
            cols: i,
            std: 1.0 / (i as f32).sqrt(),
            zero_first_per: Some(e),
        };
        g.insert(n.gate_up_blocks(l), gu);
        g.insert(
            n.gate_up_scales(l),
            Gen::Scales {
                blocks: n.gate_up_blocks(l),
            },
        );
        g.insert(
            n.gate_up_bias(l),
            Gen::Normal {
                seed: seed_of(seed, &hf.gate_up_bias(l)),
                mean: 0.0,
                std: 0.05,
                n: e * 2 * i,
            },
        );
        g.insert(n.down_blocks(l), dn);
        g.insert(
            n.down_scales(l),
            Gen::Scales {
                blocks: n.down_blocks(l),
            },
        );
        g.insert(
            n.down_bias(l),
            Gen::Normal {
                seed: seed_of(seed, &hf.down_bias(l)),
                mean: 0.0,
                std: 0.05,
                n: e * h,
            },
        );
    }
    g
}

/// Streams one generator's bytes to `sink` in batches; `Blocks` also fill `scales`.
fn emit(
    g: &Gen,
    scales: &mut HashMap<String, Vec<u8>>,
    name: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    match g {
        Gen::Normal { seed, mean, std, n } => {
            let chunks = n.div_ceil(CHUNK);
            for b0 in (0..chunks).step_by(BATCH) {
                let parts: Vec<Vec<u8>> = (b0..(b0 + BATCH).min(chunks))
                    .into_par_iter()
                    .map(|c| {
                        let len = CHUNK.min(n - c * CHUNK);
                        let mut rng = Rng::new(*seed, c as u64);
                        let vals: Vec<f32> = (0..len).map(|_| mean + std * rng.normal()).collect();
                        let mut out = vec![0u8; len * 2];
                        float::f32_row_to_bf16(&vals, &mut out);
                        out
                    })
                    .collect();
                for p in parts {
                    sink(&p)?;
                }
            }
        }
        Gen::Blocks {
            seed,
            rows,
            cols,
            std,
            zero_first_per,
        } => {
            let nblocks = rows * cols / 32;
            let per_chunk = CHUNK / 32;
            let chunks = nblocks.div_ceil(per_chunk);
            let rows_per_expert = zero_first_per.map(|e| rows / e);
            let mut all_scales = Vec::with_capacity(nblocks);
            for b0 in (0..chunks).step_by(BATCH) {
                let parts: Vec<(Vec<u8>, Vec<u8>)> = (b0..(b0 + BATCH).min(chunks))
                    .into_par_iter()
                    .map(|c| {
                        let first = c * per_chunk;
                        let count = per_chunk.min(nblocks - first);
                        let mut rng = Rng::new(*seed, c as u64);
                        let mut nib = Vec::with_capacity(count * 16);
                        let mut sc = Vec::with_capacity(count);
                        let mut v = [0f32; 32];
                        for k in first..first + count {
                            for x in v.iter_mut() {
                                *x = std * rng.normal();
                            }
                            // Block 0 of expert 0 is all zeros (scale byte 0), as in the fixtures.
                            if rows_per_expert.is_some() && k == 0 {
                                v = [0.0; 32];
                            }
                            let (b, s) = mxfp4::encode_block(&v);
                            nib.extend_from_slice(&b);
                            sc.push(s);
                        }
                        (nib, sc)
                    })
                    .collect();
                for (nib, sc) in parts {
                    sink(&nib)?;
                    all_scales.extend_from_slice(&sc);
                }
            }
            scales.insert(name.to_string(), all_scales);
        }
        Gen::Scales { blocks } => {
            let s = scales
                .remove(blocks)
                .expect("blocks are planned before their scales");
            sink(&s)?;
        }
        Gen::Concat(parts) => {
            for p in parts {
                emit(p, scales, name, sink)?;
            }
        }
    }
    Ok(())
}

/// Groups `plan` into shards of at most `max` bytes, in order (a tensor larger than `max` gets a
/// shard of its own), like transformers' converter.
fn shard_plan(plan: &[Expect], max: u64) -> Vec<Vec<&Expect>> {
    let sizes: Vec<u64> = plan
        .iter()
        .map(|e| e.shape.iter().product::<usize>() as u64 * e.dtypes[0].size() as u64)
        .collect();
    crate::variant::greedy_ranges(&sizes, Some(max))
        .into_iter()
        .map(|r| plan[r].iter().collect())
        .collect()
}

fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| ConvertError::io(path, e))
}

/// Writes every tensor of `layout` into `dir` as shards (HF) or a single file (original).
fn write_tensors(
    dir: &Path,
    layout: Layout,
    cfg: &Config,
    seed: u64,
    max: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, usize, usize)> {
    let plan = names::expected(layout, cfg);
    let gens = generators(layout, cfg, seed);
    let shards = match layout {
        Layout::Release
        | Layout::Dense
        | Layout::DenseUnderBlocks
        | Layout::PerExpert
        | Layout::Int8 { .. }
        | Layout::Mlx(_) => shard_plan(&plan, max),
        Layout::Original => vec![plan.iter().collect()],
    };
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    let mut scales = HashMap::new();
    for (k, shard) in shards.iter().enumerate() {
        let file = match layout {
            Layout::Release
            | Layout::Dense
            | Layout::DenseUnderBlocks
            | Layout::PerExpert
            | Layout::Int8 { .. }
            | Layout::Mlx(_) => {
                format!("model-{k:05}-of-{:05}.safetensors", n - 1)
            }
            Layout::Original => "model.safetensors".to_string(),
        };
        let path = dir.join(&file);
        let planned: Vec<PlannedTensor> = shard
            .iter()
            .map(|e| PlannedTensor::new(&e.name, e.dtypes[0], e.shape.clone()))
            .collect();
        let meta = crate::safetensors::pt_metadata();
        let mut w = SafetensorsWriter::create(&path, &planned, &meta)?;
        for t in &planned {
            emit(&gens[&t.name], &mut scales, &t.name, &mut |b| {
                progress(b.len() as u64);
                w.write(b)
            })?;
            total += t.bytes();
            weight_map.insert(t.name.clone(), Value::String(file.clone()));
        }
        w.finish()?;
    }
    if layout == Layout::Release {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        write_file(
            &dir.join(INDEX_FILE),
            serde_json::to_string(&index).expect("json"),
        )?;
    }
    Ok((total, plan.len(), n))
}

/// The tokenizer files of a preset: the fixtures' byte-level BPE (482 tokens); for 20b/120b its
/// special tokens move to the release's ids 199998..=200018.
fn tokenizer_files(preset: Preset) -> Vec<(&'static str, String)> {
    const TOKENIZER: &str = include_str!("synth/tokenizer.json");
    const TOKENIZER_CONFIG: &str = include_str!("synth/tokenizer_config.json");
    const TEMPLATE: &str = include_str!("synth/chat_template.jinja");
    let special_map = r#"{"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>"}"#.to_string();
    let (tok, tok_cfg) = match preset {
        Preset::Tiny => (TOKENIZER.to_string(), TOKENIZER_CONFIG.to_string()),
        Preset::Gpt20b | Preset::Gpt120b => {
            let names: Vec<(u32, String)> = (199998u32..=200018)
                .map(|id| {
                    let n = match id {
                        199998 => "<|startoftext|>".to_string(),
                        199999 => "<|endoftext|>".to_string(),
                        200002 => "<|return|>".to_string(),
                        200003 => "<|constrain|>".to_string(),
                        200005 => "<|channel|>".to_string(),
                        200006 => "<|start|>".to_string(),
                        200007 => "<|end|>".to_string(),
                        200008 => "<|message|>".to_string(),
                        200012 => "<|call|>".to_string(),
                        200018 => "<|endofprompt|>".to_string(),
                        other => format!("<|reserved_{other}|>"),
                    };
                    (id, n)
                })
                .collect();
            let entry = |id: u32, n: &str| json!({"id": id, "content": n, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
            let mut t: Value = serde_json::from_str(TOKENIZER).expect("embedded tokenizer");
            t["added_tokens"] = Value::Array(names.iter().map(|(id, n)| entry(*id, n)).collect());
            let mut c: Value =
                serde_json::from_str(TOKENIZER_CONFIG).expect("embedded tokenizer config");
            let decoder: serde_json::Map<String, Value> = names
                .iter()
                .map(|(id, n)| (id.to_string(), json!({"content": n, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true})))
                .collect();
            c["added_tokens_decoder"] = Value::Object(decoder);
            (
                serde_json::to_string(&t).expect("json"),
                serde_json::to_string_pretty(&c).expect("json"),
            )
        }
    };
    vec![
        ("tokenizer.json", tok),
        ("tokenizer_config.json", tok_cfg),
        ("chat_template.jinja", TEMPLATE.to_string()),
        ("special_tokens_map.json", special_map),
    ]
}

/// Writes a synthetic checkpoint to `out` (refusing an existing one unless `force`); `progress`
/// receives tensor bytes as they are written.
pub fn synth(
    out: &Path,
    opts: &SynthOptions,
    force: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<SynthSummary> {
    let config_json = preset_config(opts.preset, opts.layers);
    let cfg = Config::from_hf_json(&config_json)
        .map_err(|e| ConvertError::config(out.join("config.json"), e))?;
    let max = opts
        .max_shard_bytes
        .unwrap_or(if opts.preset == Preset::Tiny {
            1_000_000
        } else {
            4_800_000_000
        });
    // `--force` into a directory holding other files replaces the checkpoint's files only.
    let staged = Staged::create_dir(out, force, crate::safetensors::is_model_file)?;
    let dir = staged.path().to_path_buf();
    write_file(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&config_json).expect("json"),
    )?;
    let ids = &cfg.token_ids;
    let gen_cfg = json!({
        "bos_token_id": if opts.preset == Preset::Tiny { 482 } else { 199998 },
        "do_sample": true,
        "eos_token_id": [ids.eos[0], ids.pad.unwrap_or(0), if opts.preset == Preset::Tiny { 494 } else { 200012 }],
        "pad_token_id": ids.pad,
        "transformers_version": "4.55.0"
    });
    write_file(
        &dir.join("generation_config.json"),
        serde_json::to_string_pretty(&gen_cfg).expect("json"),
    )?;
    for (name, text) in tokenizer_files(opts.preset) {
        write_file(&dir.join(name), text)?;
    }
    let (tensor_bytes, tensors, shards) =
        write_tensors(&dir, Layout::Release, &cfg, opts.seed, max, progress)?;
    if opts.original {
        let odir = dir.join("original");
        std::fs::create_dir(&odir).map_err(|e| ConvertError::io(&odir, e))?;
        write_file(&odir.join("config.json"), original_config(&cfg))?;
        let dtypes: serde_json::Map<String, Value> = names::expected(Layout::Original, &cfg)
            .iter()
            .map(|e| {
                let d = if e.name.ends_with(".blocks") {
                    "FP4"
                } else if e.name.ends_with(".scales") {
                    "UE8"
                } else {
                    "BF16"
                };
                (e.name.clone(), Value::String(d.into()))
            })
            .collect();
        write_file(
            &odir.join("dtypes.json"),
            serde_json::to_string_pretty(&Value::Object(dtypes)).expect("json"),
        )?;
        write_tensors(&odir, Layout::Original, &cfg, opts.seed, u64::MAX, progress)?;
    }
    let dir = staged.commit()?;
    Ok(SynthSummary {
        dir,
        tensor_bytes,
        tensors,
        shards,
    })
}
