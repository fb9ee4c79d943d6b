//! Every input layout a gpt-oss user brings reads exactly: logits within 2e-4 of transformers'
//! goldens (and, where the stored values are the same, bit for bit equal to the original's).
//!
//! Inputs are derived in a temporary directory from the shipped fixtures: `tiny-gpt-oss` (the
//! release layout) and `tiny-gpt-oss-ft` (a BF16 fine-tune in transformers' dense layout, one-based
//! shards with an index, golden from transformers 5.24 on the dense files).

use crate::util::{
    TempDir, Tensor, copy_dir, edit_config, fixture, golden_margin, inspect_ok, is_float, logits,
    recast, reindex, rewrite_shard, shards,
};
use safetensors::Dtype;
use serde_json::{Value, json};
use std::path::Path;

/// The tolerance the fixtures' README sets for an f32 implementation.
const MAX_ABS: f32 = 2e-4;

/// Asserts `dir` is within [`MAX_ABS`] of golden `name` (same top-1 everywhere) and reports the
/// margin.
fn within_golden(dir: &Path, name: &str, what: &str) -> f32 {
    let worst = golden_margin(dir, name);
    eprintln!("{what}: max |Δlogit| vs {name} golden {worst:.2e}");
    assert!(worst <= MAX_ABS, "{what}: {worst} > {MAX_ABS}");
    worst
}

/// Asserts two sets of logits are bit for bit equal, naming the first difference.
fn same_bits(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}");
        if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            panic!(
                "{what}: prompt {k} logit {i}: {} vs {} (max |Δ| {worst:e})",
                x[i], y[i]
            );
        }
    }
}

/// A writable copy of a fixture directory under `t`.
fn copy(t: &TempDir, fixture_name: &str, as_name: &str) -> std::path::PathBuf {
    let dir = t.join(as_name);
    copy_dir(&fixture(fixture_name), &dir);
    dir
}

/// Passes every tensor of every shard of `dir` through `edit`.
fn rewrite_all(dir: &Path, mut edit: impl FnMut(Tensor) -> Option<Tensor>) {
    for p in shards(dir) {
        rewrite_shard(&p, &mut edit);
    }
}

#[test]
fn dense_finetune_reads_within_2e4_of_its_golden() {
    within_golden(
        &fixture("tiny-gpt-oss-ft"),
        "tiny-gpt-oss-ft",
        "dense BF16, 2 shards + index",
    );
}

/// The dense layout in F32 (exact: logits identical to the BF16 files'), in F16, in a mix of
/// dtypes per tensor, as one file without an index, with transformers 4.x and 5.x configs.
#[test]
fn dense_layout_in_every_float_dtype_and_config_spelling() {
    let t = TempDir::new("dense-dtypes");
    let want = logits(&fixture("tiny-gpt-oss-ft"), "tiny-gpt-oss-ft");

    // F32, transformers 4.x config (`torch_dtype`, `rope_scaling` + top-level `rope_theta`).
    let f32_dir = copy(&t, "tiny-gpt-oss-ft", "f32");
    rewrite_all(&f32_dir, |x| Some(recast(x, Dtype::F32)));
    reindex(&f32_dir);
    edit_config(&f32_dir, |c| {
        c.remove("dtype");
        c.insert("torch_dtype".into(), json!("float32"));
    });
    same_bits(
        &logits(&f32_dir, "tiny-gpt-oss-ft"),
        &want,
        "BF16 values stored as F32 are the same values",
    );
    within_golden(&f32_dir, "tiny-gpt-oss-ft", "dense F32 (v4 config)");

    // F16, transformers 5.x config (`dtype`, `rope_parameters` holding rope_theta and YaRN).
    let f16_dir = copy(&t, "tiny-gpt-oss-ft", "f16");
    rewrite_all(&f16_dir, |x| Some(recast(x, Dtype::F16)));
    reindex(&f16_dir);
    edit_config(&f16_dir, |c| {
        let mut rope = c.remove("rope_scaling").unwrap();
        rope["rope_theta"] = c.remove("rope_theta").unwrap();
        c.insert("rope_parameters".into(), rope);
        c.insert("dtype".into(), json!("float16"));
    });
    within_golden(&f16_dir, "tiny-gpt-oss-ft", "dense F16 (v5 config)");

    // One file, no index, a different float dtype per tensor (as a partial cast leaves them).
    let mixed = t.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(fixture("tiny-gpt-oss-ft").join(f), mixed.join(f)).unwrap();
    }
    let mut all = Vec::new();
    for p in shards(&fixture("tiny-gpt-oss-ft")) {
        let bytes = std::fs::read(&p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, v) in st.iter() {
            all.push(Tensor {
                name: name.to_string(),
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            });
        }
    }
    let all: Vec<Tensor> = all
        .into_iter()
        .enumerate()
        .map(|(k, x)| recast(x, [Dtype::BF16, Dtype::F32][k % 2]))
        .collect();
    safetensors::serialize_to_file(
        all.iter().map(|t| (t.name.clone(), t)),
        None,
        &mixed.join("model.safetensors"),
    )
    .unwrap();
    same_bits(&logits(&mixed, "tiny-gpt-oss-ft"), &want, "mixed dtypes");
    let r = inspect_ok(&mixed);
    assert!(r.contains("layout    hf-dense"), "{r}");
    assert!(stored(&r).contains("experts BF16+F32"), "{r}");
}

/// gate = even and up = odd columns of `gate_up_proj [E, H, 2I]`, transposed to `[out, in]`;
/// `down_proj [E, I, H]` transposed; biases split the same way: the per-expert modules
/// llm-compressor linearizes the experts into, read against the dense fixture's golden.
#[test]
fn per_expert_layout_reads_the_dense_golden() {
    let t = TempDir::new("per-expert");
    let dir = copy(&t, "tiny-gpt-oss-ft", "m");
    let (h, i, ne) = (128usize, 64usize, 8usize);
    let mut extra = Vec::new();
    rewrite_all(&dir, |x| {
        let Some(rest) = x.name.strip_prefix("model.layers.") else {
            return Some(x);
        };
        let (l, rest) = rest.split_once('.').unwrap();
        let sz = 2; // BF16
        let elem = |data: &[u8], k: usize| data[k * sz..(k + 1) * sz].to_vec();
        let module = |e: usize, m: &str, suffix: &str| {
            format!("model.layers.{l}.mlp.experts.{e}.{m}_proj.{suffix}")
        };
        let mut out = Vec::new();
        match rest {
            "mlp.experts.gate_up_proj" => {
                for e in 0..ne {
                    for (m, first) in [("gate", 0), ("up", 1)] {
                        let mut data = Vec::new();
                        for j in 0..i {
                            for c in 0..h {
                                data.extend(elem(&x.data, (e * h + c) * 2 * i + 2 * j + first));
                            }
                        }
                        out.push((module(e, m, "weight"), vec![i, h], data));
                    }
                }
            }
            "mlp.experts.gate_up_proj_bias" => {
                for e in 0..ne {
                    for (m, first) in [("gate", 0), ("up", 1)] {
                        let data = (0..i)
                            .flat_map(|j| elem(&x.data, e * 2 * i + 2 * j + first))
                            .collect();
                        out.push((module(e, m, "bias"), vec![i], data));
                    }
                }
            }
            "mlp.experts.down_proj" => {
                for e in 0..ne {
                    let mut data = Vec::new();
                    for o in 0..h {
                        for c in 0..i {
                            data.extend(elem(&x.data, (e * i + c) * h + o));
                        }
                    }
                    out.push((module(e, "down", "weight"), vec![h, i], data));
                }
            }
            "mlp.experts.down_proj_bias" => {
                for e in 0..ne {
                    let data = x.data[e * h * sz..(e + 1) * h * sz].to_vec();
                    out.push((module(e, "down", "bias"), vec![h], data));
                }
            }
            _ => return Some(x),
        }
        // The split tensors go to a shard of their own, written below.
        extra.extend(out.into_iter().map(|(name, shape, data)| Tensor {
            name,
            dtype: x.dtype,
            shape,
            data,
        }));
        None
    });
    assert_eq!(extra.len(), 4 * ne * 6);
    safetensors::serialize_to_file(
        extra.iter().map(|t| (t.name.clone(), t)),
        None,
        &dir.join("model-00003-of-00003.safetensors"),
    )
    .unwrap();
    reindex(&dir);
    let r = inspect_ok(&dir);
    assert!(r.contains("layout    hf-per-expert"), "{r}");
    same_bits(
        &logits(&dir, "tiny-gpt-oss-ft"),
        &logits(&fixture("tiny-gpt-oss-ft"), "tiny-gpt-oss-ft"),
        "the same values, stored per expert",
    );
    within_golden(&dir, "tiny-gpt-oss-ft", "per-expert dense");
}

/// transformers 5.23's `save_pretrained` after `Mxfp4Config(dequantize=True)`: the dense experts
/// under the `*_blocks` names, no `*_scales`, no `quantization_config` (or, from a saving path that
/// keeps it, the mxfp4 one). Read as the dense layout they are, with a warning that transformers
/// cannot load the directory.
#[test]
fn dense_experts_under_mxfp4_names_are_read_as_dense() {
    let t = TempDir::new("under-blocks");
    let dir = copy(&t, "tiny-gpt-oss-ft", "m");
    rewrite_all(&dir, |mut x| {
        for (from, to) in [
            (
                ".mlp.experts.gate_up_proj",
                ".mlp.experts.gate_up_proj_blocks",
            ),
            (".mlp.experts.down_proj", ".mlp.experts.down_proj_blocks"),
        ] {
            if x.name.ends_with(from) {
                x.name = x.name.replace(from, to);
            }
        }
        Some(x)
    });
    reindex(&dir);
    let want = logits(&fixture("tiny-gpt-oss-ft"), "tiny-gpt-oss-ft");
    same_bits(&logits(&dir, "tiny-gpt-oss-ft"), &want, "under *_blocks");
    within_golden(&dir, "tiny-gpt-oss-ft", "dense under *_blocks names");
    let r = inspect_ok(&dir);
    assert!(r.contains("layout    hf-dense-under-blocks-names"), "{r}");
    assert!(
        r.contains("transformers itself cannot load this directory"),
        "{r}"
    );
    // The same tensors with the release's quantization_config kept.
    edit_config(&dir, |c| {
        c.insert(
            "quantization_config".into(),
            json!({"quant_method": "mxfp4"}),
        );
    });
    same_bits(&logits(&dir, "tiny-gpt-oss-ft"), &want, "mxfp4 config kept");
    // A dense `_blocks` tensor in the wrong orientation is refused, never read.
    rewrite_all(&dir, |mut x| {
        if x.name == "model.layers.2.mlp.experts.down_proj_blocks" {
            x.shape = vec![8, 128, 64];
        }
        Some(x)
    });
    let r = crate::util::oss_forge(&["inspect", dir.to_str().unwrap()]);
    r.fails_with(&[
        "model.layers.2.mlp.experts.down_proj_blocks",
        "BF16[8, 128, 64]",
        "[8, 64, 128]",
    ]);
}

/// MXFP4 experts beside dense tensors stored F16 (all of them) or F32 (the vectors), as
/// `hunt/f16-dense-beside-mxfp4` and `hunt/f32-vectors`: the file's dtype counts.
#[test]
fn mxfp4_experts_beside_f16_or_f32_dense_tensors() {
    let t = TempDir::new("mxfp4-floats");
    let want = logits(&fixture("tiny-gpt-oss"), "tiny-gpt-oss");

    let f32v = copy(&t, "tiny-gpt-oss", "f32");
    rewrite_all(&f32v, |x| {
        Some(if is_float(&x) && x.shape.len() == 1 {
            recast(x, Dtype::F32)
        } else {
            x
        })
    });
    same_bits(&logits(&f32v, "tiny-gpt-oss"), &want, "F32 vectors");
    within_golden(&f32v, "tiny-gpt-oss", "MXFP4 + F32 vectors");
    let r = inspect_ok(&f32v);
    assert!(
        stored(&r).contains("norms F32") && stored(&r).contains("experts MXFP4"),
        "{r}"
    );

    let f16 = copy(&t, "tiny-gpt-oss", "f16");
    rewrite_all(&f16, |x| {
        Some(if is_float(&x) {
            recast(x, Dtype::F16)
        } else {
            x
        })
    });
    edit_config(&f16, |c| {
        c.insert("torch_dtype".into(), json!("float16"));
    });
    within_golden(&f16, "tiny-gpt-oss", "MXFP4 + F16 dense");
    let r = inspect_ok(&f16);
    assert!(stored(&r).contains("attention F16"), "{r}");

    // OpenAI's original/ layout with an F32 fused qkv.
    let orig = t.join("orig");
    copy_dir(&fixture("tiny-gpt-oss/original"), &orig);
    rewrite_all(&orig, |x| {
        Some(if x.name.contains("attn.qkv") {
            recast(x, Dtype::F32)
        } else {
            x
        })
    });
    same_bits(
        &logits(&orig, "tiny-gpt-oss"),
        &want,
        "original/ with F32 qkv",
    );
}

/// `"__metadata__": null` in a shard header (`hunt/shard-metadata-null`), as the safetensors
/// crate and transformers accept it.
#[test]
fn shard_header_with_null_metadata_is_read() {
    let t = TempDir::new("meta-null");
    let dir = copy(&t, "tiny-gpt-oss", "m");
    for p in shards(&dir) {
        let mut bytes = std::fs::read(&p).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
        let from = r#""__metadata__":{"format":"pt"}"#;
        assert!(header.contains(from), "{header}");
        // Same length, so every offset stays valid.
        let to = format!("{:<1$}", r#""__metadata__":null"#, from.len());
        bytes[8..8 + n].copy_from_slice(header.replace(from, &to).as_bytes());
        std::fs::write(&p, bytes).unwrap();
    }
    same_bits(
        &logits(&dir, "tiny-gpt-oss"),
        &logits(&fixture("tiny-gpt-oss"), "tiny-gpt-oss"),
        "null __metadata__",
    );
}

/// Our own safetensors variants as inputs: each reads within 2e-4 of the golden, and converts
/// again (int8 → bf16, bf16 → bf16, bf16 → gguf-bf16 exactly; fp16 → bf16 within 2e-4).
/// (bf16 → int8 requantizes the dense experts with per-group absmax scales: lossy, and
/// reported as such by `convert`; not an exact round trip.)
#[test]
fn published_variants_read_and_convert_again() {
    let t = TempDir::new("variants-in");
    let src = fixture("tiny-gpt-oss");
    let want = logits(&src, "tiny-gpt-oss");
    let run = |from: &Path, to: &str, out: &Path| {
        crate::util::oss_forge(&[
            "convert",
            from.to_str().unwrap(),
            "--to",
            to,
            "-o",
            out.to_str().unwrap(),
            "-q",
        ])
        .ok();
    };
    for v in ["safetensors-bf16", "safetensors-fp16", "safetensors-int8"] {
        run(&src, v, &t.join(v));
        within_golden(&t.join(v), "tiny-gpt-oss", v);
    }
    for (from, to, exact) in [
        ("safetensors-int8", "safetensors-bf16", true),
        ("safetensors-bf16", "safetensors-bf16", true),
        ("safetensors-bf16", "gguf-bf16", true),
        ("safetensors-fp16", "safetensors-bf16", false),
    ] {
        let out = t.join(&format!("{from}-to-{to}"));
        let out = if to.starts_with("gguf") {
            out.with_extension("gguf")
        } else {
            out
        };
        run(&t.join(from), to, &out);
        let got = logits(&out, "tiny-gpt-oss");
        if exact {
            same_bits(&got, &want, &format!("{from} -> {to}"));
        }
        within_golden(&out, "tiny-gpt-oss", &format!("{from} -> {to}"));
    }
}

/// Configs as transformers 4.x and 5.x write them, and with the keys transformers fills in:
/// the same model, the defaults listed by `inspect`.
#[test]
fn config_spellings_and_transformers_defaults_give_the_same_model() {
    let t = TempDir::new("cfg-variants");
    let want = logits(&fixture("tiny-gpt-oss"), "tiny-gpt-oss");
    type Edit = fn(&mut serde_json::Map<String, Value>);
    let edits: [(&str, Edit); 4] = [
        ("v5 rope_parameters", |c| {
            let mut rope = c.remove("rope_scaling").unwrap();
            rope["rope_theta"] = c.remove("rope_theta").unwrap();
            c.insert("rope_parameters".into(), rope);
            c.insert("dtype".into(), json!("bfloat16"));
        }),
        ("no rope_theta", |c| {
            c.remove("rope_theta");
        }),
        ("nulls transformers fills", |c| {
            c.insert("layer_types".into(), Value::Null);
            let r = c["rope_scaling"].as_object_mut().unwrap();
            r.insert("beta_fast".into(), Value::Null);
            r.insert("beta_slow".into(), Value::Null);
        }),
        ("absent keys transformers fills", |c| {
            c.remove("rms_norm_eps");
            c.remove("swiglu_limit");
            c.remove("tie_word_embeddings");
            c.remove("attention_bias");
            c["rope_scaling"]
                .as_object_mut()
                .unwrap()
                .remove("beta_fast");
        }),
    ];
    for (k, (what, edit)) in edits.into_iter().enumerate() {
        let dir = copy(&t, "tiny-gpt-oss", &format!("m{k}"));
        edit_config(&dir, edit);
        same_bits(&logits(&dir, "tiny-gpt-oss"), &want, what);
        if k == 1 {
            let r = inspect_ok(&dir);
            assert!(
                r.contains("`rope_theta` absent, read as 150000 (transformers' default"),
                "{r}"
            );
        }
    }
}

/// The release's MXFP4 tensors with the `quantization_config` removed: the tensors are
/// unambiguous, so they are read; `inspect` warns that transformers would not read them.
#[test]
fn mxfp4_tensors_without_quantization_config_are_read_with_a_warning() {
    let t = TempDir::new("mxfp4-noqc");
    let dir = copy(&t, "tiny-gpt-oss", "m");
    edit_config(&dir, |c| {
        c.remove("quantization_config");
    });
    same_bits(
        &logits(&dir, "tiny-gpt-oss"),
        &logits(&fixture("tiny-gpt-oss"), "tiny-gpt-oss"),
        "no quantization_config",
    );
    let r = inspect_ok(&dir);
    assert!(r.contains("layout    hf-mxfp4"), "{r}");
    assert!(
        r.contains("transformers would leave these experts randomly initialized"),
        "{r}"
    );
}

/// inspect's text with runs of spaces collapsed (its `stored` table aligns its columns).
fn stored(r: &str) -> String {
    r.split_whitespace().collect::<Vec<_>>().join(" ")
}
