//! Bad input is normal input: each case gives a clear error naming the file (and the tensor),
//! exit code 2, and no panic.

use crate::util::{edit_config, oss_forge, rewrite_shard, tiny_copy};
use std::io::{Seek, SeekFrom, Write};

const SHARD0: &str = "model-00000-of-00001.safetensors";
const SHARD1: &str = "model-00001-of-00001.safetensors";

fn inspect(dir: &std::path::Path) -> crate::util::Run {
    oss_forge(&["inspect", dir.to_str().unwrap()])
}

#[test]
fn truncated_shard_names_file_and_tensor() {
    let t = tiny_copy("trunc");
    let shard = t.join("m").join(SHARD1);
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    // The last tensor of that shard is the one cut short.
    inspect(&t.join("m")).fails_with(&[SHARD1, "tensor `", "truncated"]);
}

#[test]
fn header_length_past_the_end_of_the_file() {
    let t = tiny_copy("hdrlen");
    let shard = t.join("m").join(SHARD0);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&50_000_000u64.to_le_bytes()).unwrap();
    inspect(&t.join("m")).fails_with(&[
        SHARD0,
        "header length 50000000 runs past the end of the file",
    ]);
}

#[test]
fn missing_tensor_is_named() {
    let t = tiny_copy("missing");
    let name = "model.layers.1.self_attn.sinks";
    rewrite_shard(&t.join("m").join(SHARD0), |x| (x.name != name).then_some(x));
    let idx = t.join("m/model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&idx).unwrap()).unwrap();
    v["weight_map"].as_object_mut().unwrap().remove(name);
    std::fs::write(&idx, v.to_string()).unwrap();
    inspect(&t.join("m")).fails_with(&[
        "missing tensor `model.layers.1.self_attn.sinks`",
        "BF16|F16|F32[4] in a hf-mxfp4 checkpoint",
    ]);
}

#[test]
fn tensor_missing_from_its_shard_but_listed_in_the_index() {
    let t = tiny_copy("notinshard");
    rewrite_shard(&t.join("m").join(SHARD0), |x| {
        (x.name != "model.layers.0.mlp.router.bias").then_some(x)
    });
    inspect(&t.join("m")).fails_with(&[
        SHARD0,
        "model.layers.0.mlp.router.bias",
        "listed in model.safetensors.index.json",
    ]);
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let t = tiny_copy("shape");
    rewrite_shard(&t.join("m").join(SHARD0), |mut x| {
        if x.name == "model.layers.0.self_attn.k_proj.weight" {
            x.shape = vec![64, 256];
        }
        Some(x)
    });
    inspect(&t.join("m")).fails_with(&[
        SHARD0,
        "tensor `model.layers.0.self_attn.k_proj.weight`",
        "[64, 256]",
        "[128, 128]",
    ]);
}

#[test]
fn wrong_dtype_names_tensor() {
    let t = tiny_copy("dtype");
    rewrite_shard(&t.join("m").join(SHARD0), |mut x| {
        if x.name == "model.layers.0.mlp.experts.down_proj_scales" {
            x.dtype = safetensors::Dtype::I8;
        }
        Some(x)
    });
    inspect(&t.join("m")).fails_with(&[
        "tensor `model.layers.0.mlp.experts.down_proj_scales`",
        "I8",
        "U8",
    ]);
}

#[test]
fn non_json_config_names_the_file() {
    let t = tiny_copy("cfg");
    std::fs::write(
        t.join("m/config.json"),
        "{\"model_type\": \"gpt_oss\", oops",
    )
    .unwrap();
    inspect(&t.join("m")).fails_with(&["config.json", "not a JSON object"]);
    let l = oss_forge(&[
        "logits",
        "--model",
        t.join("m").to_str().unwrap(),
        "--tokens",
        "1,2",
    ]);
    l.fails_with(&["config.json"]);
}

#[test]
fn unsupported_config_value_is_an_error() {
    let t = tiny_copy("rope");
    let p = t.join("m/config.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"yarn\"", "\"dynamic\"");
    std::fs::write(&p, text).unwrap();
    inspect(&t.join("m")).fails_with(&["config.json", "rope_scaling.rope_type", "dynamic"]);
}

#[test]
fn shard_listed_in_index_but_missing() {
    let t = tiny_copy("noshard");
    std::fs::remove_file(t.join("m").join(SHARD1)).unwrap();
    inspect(&t.join("m")).fails_with(&["model.safetensors.index.json", SHARD1, "missing"]);
}

#[test]
fn tensor_stored_in_two_shards() {
    let t = tiny_copy("twice");
    let norm = std::cell::RefCell::new(None);
    rewrite_shard(&t.join("m").join(SHARD1), |x| {
        if x.name == "model.norm.weight" {
            *norm.borrow_mut() = Some((x.dtype, x.shape.clone(), x.data.clone()));
        }
        Some(x)
    });
    let (dtype, shape, data) = norm.into_inner().unwrap();
    // Append model.norm.weight to shard 0 as well.
    let p = t.join("m").join(SHARD0);
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<crate::util::Tensor> = st
        .iter()
        .map(|(n, v)| crate::util::Tensor {
            name: n.to_string(),
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            data: v.data().to_vec(),
        })
        .collect();
    all.push(crate::util::Tensor {
        name: "model.norm.weight".into(),
        dtype,
        shape,
        data,
    });
    drop(st);
    std::fs::remove_file(&p).unwrap();
    safetensors::serialize_to_file(all.iter().map(|t| (t.name.clone(), t)), None, &p).unwrap();
    inspect(&t.join("m")).fails_with(&["model.norm.weight", "also stored in", SHARD0]);
}

#[test]
fn out_of_vocabulary_token_and_missing_model() {
    let t = tiny_copy("vocab");
    oss_forge(&[
        "logits",
        "--model",
        t.join("m").to_str().unwrap(),
        "--tokens",
        "1,512",
    ])
    .fails_with(&["token 512", "vocab_size 512"]);
    oss_forge(&["logits", "--model", "/nonexistent/model", "--tokens", "1"])
        .fails_with(&["/nonexistent/model", "no such file or directory"]);
}

/// A key present but null is named as null (never "missing"), with what transformers does.
#[test]
fn null_config_key_is_named_as_null() {
    let t = tiny_copy("cfg-null");
    edit_config(&t.join("m"), |c| {
        c.insert("rms_norm_eps".into(), serde_json::Value::Null);
    });
    let r = inspect(&t.join("m"));
    r.fails_with(&[
        "config.json",
        "`rms_norm_eps` is null",
        "its default, 1e-5, applies only when the key is absent",
    ]);
    assert!(!r.stderr.contains("missing"), "{}", r.stderr);
}

/// A rope dict without `rope_type` is plain RoPE to transformers: refused, saying so, naming
/// the key under the dict the file has.
#[test]
fn rope_dict_without_rope_type_says_plain_rope() {
    let t = tiny_copy("cfg-ropetype");
    edit_config(&t.join("m"), |c| {
        c["rope_scaling"]
            .as_object_mut()
            .unwrap()
            .remove("rope_type");
    });
    inspect(&t.join("m")).fails_with(&["`rope_scaling.rope_type` is absent", "plain RoPE"]);
}

/// A shape key left to transformers' default that does not fit the tensors: the tensor error
/// says which default was applied.
#[test]
fn defaulted_shape_key_is_named_beside_the_tensor_it_breaks() {
    let t = tiny_copy("cfg-layers");
    edit_config(&t.join("m"), |c| {
        c.remove("num_hidden_layers");
        c.remove("layer_types");
    });
    inspect(&t.join("m")).fails_with(&[
        "missing tensor `model.layers.4.",
        "`num_hidden_layers` absent, read as 36 (transformers' default)",
    ]);
}

/// A dtype the layout does not store a tensor in names both dtypes and the layout.
#[test]
fn int8_scale_in_f16_is_refused_naming_the_layout() {
    let t = crate::util::TempDir::new("int8-f16");
    crate::util::copy_dir(
        &crate::util::fixture("compressed-tensors/tiny-gpt-oss-int8"),
        &t.join("m"),
    );
    let name = "model.layers.0.mlp.experts.3.up_proj.weight_scale";
    rewrite_shard(&t.join("m/model.safetensors"), |x| {
        Some(if x.name == name {
            crate::util::recast(x, safetensors::Dtype::F16)
        } else {
            x
        })
    });
    inspect(&t.join("m")).fails_with(&[
        name,
        "is F16[64, 4]; a compressed-tensors-int8 checkpoint stores it as BF16",
    ]);
}

/// Per-expert int8 modules without the compressed-tensors config that describes them.
#[test]
fn int8_modules_without_their_quantization_config_are_refused() {
    let t = crate::util::TempDir::new("int8-noqc");
    crate::util::copy_dir(
        &crate::util::fixture("compressed-tensors/tiny-gpt-oss-int8"),
        &t.join("m"),
    );
    edit_config(&t.join("m"), |c| {
        c.remove("quantization_config");
    });
    inspect(&t.join("m")).fails_with(&[
        "config.json has no `quantization_config`",
        "compressed-tensors int8 modules",
    ]);
}

/// A YaRN the GGUF format cannot express (truncated correction range) is refused for GGUF
/// variants, naming the key, and converts to safetensors as it is.
#[test]
fn yarn_with_truncation_is_refused_for_gguf_only() {
    let t = tiny_copy("cfg-truncate");
    edit_config(&t.join("m"), |c| {
        c["rope_scaling"]["truncate"] = serde_json::Value::Bool(true);
    });
    let m = t.join("m");
    let gguf = t.join("x.gguf");
    oss_forge(&[
        "convert",
        m.to_str().unwrap(),
        "--to",
        "gguf-mxfp4",
        "-o",
        gguf.to_str().unwrap(),
    ])
    .fails_with(&["rope_scaling.truncate", "llama.cpp"]);
    assert!(!gguf.exists());
    let st = t.join("st");
    oss_forge(&[
        "convert",
        m.to_str().unwrap(),
        "--to",
        "safetensors-bf16",
        "-o",
        st.to_str().unwrap(),
    ])
    .ok();
}
