//! `convert --to safetensors-{bf16,fp16,int8}`: the written directories read back with the
//! `safetensors` crate match transformers' dense layout and compressed-tensors' int8 layout
//! (names, dtypes, shapes, index, config, bytes of the shipped compressed-tensors sample), and
//! the reference forward pass reading them gives the original's logits bit for bit (fp16: unless
//! the report lists inexact values).

use crate::util::{TempDir, argmax, fixture, golden, oss_forge, tiny_copy};
use convert::variant::{ConvertOptions, ConvertReport, NoProgress, Variant};
use convert::{Checkpoint, Layout};
use reference::{Model, WeightId, WeightSource};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn convert(src: &Path, variant: Variant, out: &Path, opts: &ConvertOptions) -> ConvertReport {
    let model = convert::AnyModel::open(src).unwrap();
    convert::variant::convert(&model, variant, out, opts, &NoProgress).unwrap()
}

/// Logits of every golden prompt of `golden_name`, from the model in `dir`.
fn logits(dir: &Path, golden_name: &str) -> Vec<Vec<f32>> {
    let ckpt = Checkpoint::open(dir).unwrap();
    let model = Model::new(&ckpt).unwrap();
    golden(golden_name)
        .iter()
        .map(|p| model.logits(&p.tokens).unwrap())
        .collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold(
            0f32,
            |m, (x, y)| if x == y { m } else { m.max((x - y).abs()) },
        )
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every tensor of a written directory, read with the safetensors crate: name → (file, dtype,
/// shape, bytes). Checks the index against the shards on the way.
fn read_back(dir: &Path) -> BTreeMap<String, (String, Dtype, Vec<usize>, Vec<u8>)> {
    let index = read_json(&dir.join("model.safetensors.index.json"));
    let wm = index["weight_map"].as_object().unwrap();
    let mut files: Vec<String> = wm
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    files.sort();
    files.dedup();
    let n = files.len();
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for (k, f) in files.iter().enumerate() {
        assert_eq!(
            f,
            &format!("model-{:05}-of-{n:05}.safetensors", k + 1),
            "transformers' shard names"
        );
        let bytes = std::fs::read(dir.join(f)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (name, v) in st.tensors() {
            assert_eq!(wm[&name], f.as_str(), "index places {name}");
            total += v.data().len() as u64;
            assert!(
                out.insert(
                    name,
                    (f.clone(), v.dtype(), v.shape().to_vec(), v.data().to_vec())
                )
                .is_none()
            );
        }
    }
    assert_eq!(out.len(), wm.len(), "every indexed tensor is in a shard");
    assert_eq!(index["metadata"]["total_size"].as_u64().unwrap(), total);
    let on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    assert_eq!(on_disk.len(), n, "no stray shards");
    out
}

fn bf16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2)
        .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
        .collect()
}

/// The exact-logits requirement of the issue, for one fixture.
fn exact_variants(name: &str, src: &Path) {
    let t = TempDir::new("st-exact");
    let want = logits(src, name);
    for variant in [
        Variant::SafetensorsBf16,
        Variant::SafetensorsInt8,
        Variant::SafetensorsFp16,
    ] {
        let out = t.join(variant.name());
        let report = convert(src, variant, &out, &ConvertOptions::default());
        let got = logits(&out, name);
        let diff = max_abs_diff(&got, &want);
        let inexact: u64 = report.inexact.iter().map(|i| i.count).sum();
        eprintln!(
            "{name} {variant}: max |Δlogit| {diff:e}, {inexact} inexact values in {} tensors",
            report.inexact.len()
        );
        match variant {
            Variant::SafetensorsFp16 => {
                if inexact == 0 {
                    assert_eq!(
                        diff, 0.0,
                        "{name} fp16: no inexact value reported, so the logits must be identical"
                    );
                }
                assert!(diff < 1e-3, "{name} fp16: {diff}");
                assert!(
                    report
                        .warnings
                        .iter()
                        .any(|w| w.contains("overflow fp16 compute")),
                    "{:?}",
                    report.warnings
                );
                let card = std::fs::read_to_string(out.join("README.md")).unwrap();
                assert!(card.contains("overflow fp16 compute"));
                let tensors = read_back(&out);
                for i in &report.inexact {
                    let tensor = i.what.split('`').nth(1).unwrap();
                    assert!(
                        tensors.contains_key(tensor),
                        "{} names a written tensor",
                        i.what
                    );
                    assert!(card.contains(&i.what), "the model card lists {}", i.what);
                }
            }
            _ => {
                assert!(
                    report.inexact.is_empty(),
                    "{name} {variant}: {:?}",
                    report.inexact
                );
                assert_eq!(
                    diff, 0.0,
                    "{name} {variant}: logits differ from the original's"
                );
                for (a, b) in got.iter().zip(&want) {
                    assert_eq!(
                        a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

#[test]
fn tiny_bf16_int8_exact_and_fp16_consistent() {
    exact_variants("tiny-gpt-oss", &fixture("tiny-gpt-oss"));
}

#[test]
fn small_bf16_int8_exact_and_fp16_consistent() {
    exact_variants("small-gpt-oss", &fixture("small-gpt-oss"));
}

#[test]
fn from_original_layout_the_side_files_come_from_the_parent() {
    let t = TempDir::new("st-orig");
    let src = fixture("tiny-gpt-oss/original");
    let want = logits(&src, "tiny-gpt-oss");
    for variant in [Variant::SafetensorsBf16, Variant::SafetensorsInt8] {
        let out = t.join(variant.name());
        let report = convert(&src, variant, &out, &ConvertOptions::default());
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(max_abs_diff(&logits(&out, "tiny-gpt-oss"), &want), 0.0);
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "chat_template.jinja",
            "generation_config.json",
        ] {
            assert_eq!(
                std::fs::read(out.join(f)).unwrap(),
                std::fs::read(fixture("tiny-gpt-oss").join(f)).unwrap(),
                "{f}"
            );
        }
        let cfg = read_json(&out.join("config.json"));
        assert_eq!(cfg["model_type"], "gpt_oss");
        assert_eq!(
            cfg["eos_token_id"], 484,
            "the parent's HF config, token ids included"
        );
    }
}

#[test]
fn dense_layout_is_transformers_names_dtypes_shapes_and_orientation() {
    let t = TempDir::new("st-dense");
    let src = Checkpoint::open(fixture("tiny-gpt-oss")).unwrap();
    let cfg = src.config().clone();
    let (h, i, e, v) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_local_experts,
        cfg.vocab_size,
    );
    for (variant, dtype, dname) in [
        (Variant::SafetensorsBf16, Dtype::BF16, "bfloat16"),
        (Variant::SafetensorsFp16, Dtype::F16, "float16"),
    ] {
        let out = t.join(variant.name());
        convert(
            &fixture("tiny-gpt-oss"),
            variant,
            &out,
            &ConvertOptions::default(),
        );
        let tensors = read_back(&out);
        // The release's tensor set with the four MXFP4 expert tensors replaced by the fused dense ones.
        let release = read_back_names(&fixture("tiny-gpt-oss"));
        let mut want: Vec<String> = release
            .into_iter()
            .filter(|n| !n.ends_with("_blocks") && !n.ends_with("_scales"))
            .collect();
        for l in 0..cfg.num_hidden_layers {
            want.push(format!("model.layers.{l}.mlp.experts.gate_up_proj"));
            want.push(format!("model.layers.{l}.mlp.experts.down_proj"));
        }
        want.sort();
        assert_eq!(tensors.keys().cloned().collect::<Vec<_>>(), want);
        for (name, (_, dt, shape, _)) in &tensors {
            assert_eq!(*dt, dtype, "{name}");
            let expect: Option<Vec<usize>> = if name.ends_with("experts.gate_up_proj") {
                Some(vec![e, h, 2 * i])
            } else if name.ends_with("experts.gate_up_proj_bias") {
                Some(vec![e, 2 * i])
            } else if name.ends_with("experts.down_proj") {
                Some(vec![e, i, h])
            } else if name.ends_with("experts.down_proj_bias") {
                Some(vec![e, h])
            } else if name == "lm_head.weight" || name == "model.embed_tokens.weight" {
                Some(vec![v, h])
            } else {
                None
            };
            if let Some(s) = expect {
                assert_eq!(shape, &s, "{name}");
            }
        }
        // Orientation: gate_up_proj[e][c][2j] = gate[j][c], [2j+1] = up[j][c]; down_proj[e][c][o] = down[o][c].
        if variant == Variant::SafetensorsBf16 {
            let gu = bf16s(&tensors["model.layers.1.mlp.experts.gate_up_proj"].3);
            let dn = bf16s(&tensors["model.layers.1.mlp.experts.down_proj"].3);
            let gub = bf16s(&tensors["model.layers.1.mlp.experts.gate_up_proj_bias"].3);
            for x in [0, e - 1] {
                let gate = src.weight(WeightId::Gate(1, x)).unwrap().to_f32();
                let up = src.weight(WeightId::Up(1, x)).unwrap().to_f32();
                let down = src.weight(WeightId::Down(1, x)).unwrap().to_f32();
                let gb = src.weight(WeightId::GateBias(1, x)).unwrap().to_f32();
                let ub = src.weight(WeightId::UpBias(1, x)).unwrap().to_f32();
                for c in 0..h {
                    for j in 0..i {
                        assert_eq!(gu[(x * h + c) * 2 * i + 2 * j], gate[j * h + c]);
                        assert_eq!(gu[(x * h + c) * 2 * i + 2 * j + 1], up[j * h + c]);
                    }
                }
                for c in 0..i {
                    for o in 0..h {
                        assert_eq!(dn[(x * i + c) * h + o], down[o * i + c]);
                    }
                }
                for j in 0..i {
                    assert_eq!(
                        (gub[x * 2 * i + 2 * j], gub[x * 2 * i + 2 * j + 1]),
                        (gb[j], ub[j])
                    );
                }
            }
        }
        let config = read_json(&out.join("config.json"));
        assert!(config.get("quantization_config").is_none());
        assert_eq!(config["torch_dtype"], dname);
        let mut src_cfg = read_json(&fixture("tiny-gpt-oss/config.json"));
        let obj = src_cfg.as_object_mut().unwrap();
        obj.remove("quantization_config");
        obj.insert("torch_dtype".into(), dname.into());
        assert_eq!(config, src_cfg, "the release config, dequantized");
        assert_eq!(Checkpoint::open(&out).unwrap().layout(), Layout::Dense);
    }
}

fn read_back_names(dir: &Path) -> Vec<String> {
    let index = read_json(&dir.join("model.safetensors.index.json"));
    index["weight_map"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn int8_matches_the_compressed_tensors_sample_byte_for_byte() {
    let t = TempDir::new("st-int8");
    let out = t.join("int8");
    convert(
        &fixture("tiny-gpt-oss"),
        Variant::SafetensorsInt8,
        &out,
        &ConvertOptions::default(),
    );
    let ours = read_back(&out);
    let sample_bytes = std::fs::read(fixture(
        "compressed-tensors/tiny-gpt-oss-int8/model.safetensors",
    ))
    .unwrap();
    let sample = SafeTensors::deserialize(&sample_bytes).unwrap();
    let mut names: Vec<String> = sample.names().into_iter().map(str::to_string).collect();
    names.sort();
    assert_eq!(ours.keys().cloned().collect::<Vec<_>>(), names);
    for name in &names {
        let s = sample.tensor(name).unwrap();
        let (_, dt, shape, data) = &ours[name];
        assert_eq!((dt, shape.as_slice()), (&s.dtype(), s.shape()), "{name}");
        assert_eq!(
            data.as_slice(),
            s.data(),
            "{name}: bytes differ from compressed-tensors' pack_to_int32 output"
        );
    }
    assert_eq!(
        ours["model.layers.0.mlp.experts.3.gate_proj.weight_packed"].1,
        Dtype::I32
    );
    assert_eq!(
        ours["model.layers.0.mlp.experts.3.down_proj.weight_scale"].2,
        vec![128, 2]
    );
    // The config: the sample's scheme, the ignore list spelled out.
    let config = read_json(&out.join("config.json"));
    let q = &config["quantization_config"];
    let sq = &read_json(&fixture("compressed-tensors/tiny-gpt-oss-int8/config.json"))["quantization_config"];
    for key in [
        "quant_method",
        "format",
        "quantization_status",
        "config_groups",
        "kv_cache_scheme",
    ] {
        assert_eq!(q[key], sq[key], "{key}");
    }
    let ignore: Vec<&str> = q["ignore"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for l in 0..4 {
        for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            assert!(ignore.contains(&format!("model.layers.{l}.self_attn.{m}").as_str()));
        }
        assert!(ignore.contains(&format!("model.layers.{l}.mlp.router").as_str()));
    }
    // llm-compressor's spelling: Linear modules only (no embedding), transformers v5's `dtype`.
    assert!(ignore.contains(&"lm_head") && !ignore.contains(&"model.embed_tokens"));
    assert_eq!(config["dtype"], "bfloat16");
    assert!(config.get("torch_dtype").is_none());
    assert_eq!(
        Checkpoint::open(&out).unwrap().layout(),
        Layout::Int8 { dense_int8: false }
    );
}

#[test]
fn int8_dense_is_lossy_but_close_and_reported() {
    let t = TempDir::new("st-int8d");
    let out = t.join("int8d");
    let src = fixture("small-gpt-oss");
    let report = convert(
        &src,
        Variant::SafetensorsInt8,
        &out,
        &ConvertOptions {
            int8_dense: true,
            ..Default::default()
        },
    );
    let lossy: Vec<&str> = report.inexact.iter().map(|i| i.what.as_str()).collect();
    assert!(
        lossy.iter().any(|w| w.contains("`lm_head.weight_packed`")),
        "{lossy:?}"
    );
    assert!(
        lossy
            .iter()
            .any(|w| w.contains("`model.layers.4.self_attn.o_proj.weight_packed`")),
        "{lossy:?}"
    );
    assert!(
        lossy.iter().all(|w| !w.contains("experts")),
        "experts stay exact: {lossy:?}"
    );
    assert!(report.warnings.iter().any(|w| w.contains("--int8-dense")));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("expert weights are stored exactly")),
        "{:?}",
        report.warnings
    );
    // From dense experts the same variant says they are lossy, not "exact".
    let dense = t.join("bf16");
    convert(
        &src,
        Variant::SafetensorsBf16,
        &dense,
        &ConvertOptions::default(),
    );
    let from_dense = convert(
        &dense,
        Variant::SafetensorsInt8,
        &t.join("int8-from-dense"),
        &ConvertOptions {
            int8_dense: true,
            ..Default::default()
        },
    );
    assert!(
        from_dense
            .warnings
            .iter()
            .any(|w| w.contains("quantized from the source's dense values"))
            && !from_dense
                .warnings
                .iter()
                .any(|w| w.contains("stored exactly")),
        "{:?}",
        from_dense.warnings
    );
    let tensors = read_back(&out);
    assert_eq!(tensors["lm_head.weight_packed"].1, Dtype::I32);
    assert_eq!(tensors["lm_head.weight_packed"].2, vec![1000, 192 / 4]);
    assert_eq!(tensors["lm_head.weight_scale"].2, vec![1000, 1]);
    assert_eq!(
        tensors["model.layers.0.self_attn.q_proj.weight_scale"].2,
        vec![384, 1]
    );
    assert_eq!(
        tensors["model.layers.0.self_attn.q_proj.bias"].1,
        Dtype::BF16
    );
    assert!(
        !tensors.contains_key("lm_head.weight")
            && tensors.contains_key("model.embed_tokens.weight")
    );
    let config = read_json(&out.join("config.json"));
    assert_eq!(
        config["quantization_config"]["config_groups"]["group_1"]["weights"]["strategy"],
        "channel"
    );
    assert_eq!(
        Checkpoint::open(&out).unwrap().layout(),
        Layout::Int8 { dense_int8: true }
    );

    let want = logits(&src, "small-gpt-oss");
    let got = logits(&out, "small-gpt-oss");
    let diff = max_abs_diff(&got, &want);
    let vocab = 1000;
    let (mut same, mut total) = (0, 0);
    for (a, b) in got.iter().zip(&want) {
        for (x, y) in a.chunks(vocab).zip(b.chunks(vocab)) {
            same += (argmax(x) == argmax(y)) as usize;
            total += 1;
        }
    }
    let n = want.iter().map(Vec::len).sum::<usize>() as f64;
    let mean_abs = got
        .iter()
        .flatten()
        .zip(want.iter().flatten())
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / n;
    let mean = want.iter().flatten().map(|&v| v as f64).sum::<f64>() / n;
    let std = (want
        .iter()
        .flatten()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    eprintln!(
        "small int8-dense: max |Δlogit| {diff:e}, mean |Δlogit| {mean_abs:e} (logit std {std:.3}), top-1 agreement {same}/{total}"
    );
    // These random-weight fixtures amplify small perturbations (router margins down to 2e-3
    // flip experts), so the logits bound is loose; the weight bound below is the tight one.
    assert!(diff > 0.0, "per-channel int8 is lossy");
    assert!(
        mean_abs < 0.25 * std,
        "mean |Δlogit| {mean_abs} vs std {std}"
    );
    assert!(same * 3 >= total * 2, "top-1 agreement {same}/{total}");

    // Every quantized weight is within half a quantization step of the original (relative RMS
    // error under 1%); every other weight is unchanged.
    let (a, b) = (
        Checkpoint::open(&src).unwrap(),
        Checkpoint::open(&out).unwrap(),
    );
    for id in WeightId::all(a.config()) {
        let (x, y) = (a.weight(id).unwrap(), b.weight(id).unwrap());
        let quantized = matches!(
            id,
            WeightId::QProj(_)
                | WeightId::KProj(_)
                | WeightId::VProj(_)
                | WeightId::OProj(_)
                | WeightId::LmHead
        );
        assert_eq!(
            y.encoding().name(),
            if quantized || id.is_expert_matrix() {
                "int8"
            } else {
                "bf16"
            },
            "{id}"
        );
        if !quantized {
            assert_eq!(x.to_f32(), y.to_f32(), "{id}");
            continue;
        }
        let (mut err2, mut sum2) = (0f64, 0f64);
        for r in 0..x.rows() {
            let (xr, yr) = (x.row_f32(r), y.row_f32(r));
            let amax = xr.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (p, q) in xr.iter().zip(&yr) {
                assert!(
                    (p - q).abs() <= amax / 127.0 * 0.51 + amax * 4e-3,
                    "{id} row {r}: {p} vs {q}"
                );
                err2 += ((p - q) as f64).powi(2);
                sum2 += (*p as f64).powi(2);
            }
        }
        assert!(
            (err2 / sum2).sqrt() < 0.01,
            "{id}: relative RMS error {}",
            (err2 / sum2).sqrt()
        );
    }
}

#[test]
fn cli_refuses_overwrite_without_force_and_logits_read_every_variant() {
    let t = tiny_copy("st-cli");
    let src = t.join("m");
    let src = src.to_str().unwrap();
    let want = oss_forge(&[
        "logits",
        "--model",
        src,
        "--tokens",
        "1,2,3,400",
        "--top",
        "3",
    ])
    .ok()
    .stdout
    .clone();
    for v in ["safetensors-bf16", "safetensors-int8"] {
        let out = t.join(v);
        let out = out.to_str().unwrap();
        let r = oss_forge(&["convert", src, "--to", v, "-o", out]);
        r.ok();
        assert!(
            r.stdout.contains("every value stored exactly"),
            "{}",
            r.stdout
        );
        let got = oss_forge(&[
            "logits",
            "--model",
            out,
            "--tokens",
            "1,2,3,400",
            "--top",
            "3",
        ])
        .ok()
        .stdout
        .clone();
        assert_eq!(got, want, "{v}");
        oss_forge(&["convert", src, "--to", v, "-o", out])
            .fails_with(&["already exists", "--force"]);
        assert!(
            Path::new(out).join("config.json").is_file(),
            "the refused run left the output alone"
        );
        oss_forge(&["convert", src, "--to", v, "-o", out, "--force"]).ok();
    }
    let out = t.join("fp16");
    let r = oss_forge(&[
        "convert",
        src,
        "--to",
        "safetensors-fp16",
        "-o",
        out.to_str().unwrap(),
    ]);
    r.ok();
    assert!(
        r.stderr
            .contains("warning: fp16 weights are a storage format"),
        "{}",
        r.stderr
    );
    oss_forge(&[
        "logits",
        "--model",
        out.to_str().unwrap(),
        "--tokens",
        "1,2,3",
    ])
    .ok();
    // No partial directory is left beside the outputs.
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty());
    let r = oss_forge(&[
        "convert",
        src,
        "--to",
        "safetensors-bf16",
        "--int8-dense",
        "-o",
        t.join("x").to_str().unwrap(),
    ]);
    r.fails_with(&["--int8-dense"]);
}

#[test]
fn max_shard_size_splits_into_several_shards_with_a_correct_index() {
    let t = TempDir::new("st-shards");
    let src = fixture("small-gpt-oss");
    let want = logits(&src, "small-gpt-oss");
    for (variant, max) in [
        (Variant::SafetensorsBf16, 1_000_000u64),
        (Variant::SafetensorsInt8, 300_000),
    ] {
        let out = t.join(variant.name());
        convert(
            &src,
            variant,
            &out,
            &ConvertOptions {
                max_shard_bytes: Some(max),
                ..Default::default()
            },
        );
        let tensors = read_back(&out);
        let mut per_file: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        for (f, _, _, data) in tensors.values() {
            let e = per_file.entry(f.as_str()).or_default();
            e.0 += data.len() as u64;
            e.1 += 1;
        }
        assert!(per_file.len() >= 3, "{variant}: {} shards", per_file.len());
        for (f, (bytes, count)) in &per_file {
            assert!(
                *bytes <= max || *count == 1,
                "{f}: {bytes} bytes in {count} tensors > {max}"
            );
        }
        assert_eq!(
            max_abs_diff(&logits(&out, "small-gpt-oss"), &want),
            0.0,
            "{variant}"
        );
    }
}

#[test]
fn corrupted_outputs_are_refused_naming_file_and_tensor() {
    let t = TempDir::new("st-bad");
    let out = t.join("int8");
    convert(
        &fixture("tiny-gpt-oss"),
        Variant::SafetensorsInt8,
        &out,
        &ConvertOptions::default(),
    );
    let shard = out.join("model-00001-of-00001.safetensors");
    crate::util::rewrite_shard(&shard, |mut t| {
        if t.name == "model.layers.2.mlp.experts.5.up_proj.weight_shape" {
            t.data[..8].copy_from_slice(&63i64.to_le_bytes());
        }
        Some(t)
    });
    let err = Checkpoint::open(&out).err().unwrap().to_string();
    assert!(
        err.contains("model.layers.2.mlp.experts.5.up_proj.weight_shape")
            && err.contains("[63, 128]"),
        "{err}"
    );

    let out = t.join("bf16");
    convert(
        &fixture("tiny-gpt-oss"),
        Variant::SafetensorsBf16,
        &out,
        &ConvertOptions::default(),
    );
    let shard = out.join("model-00001-of-00001.safetensors");
    crate::util::rewrite_shard(&shard, |t| {
        (t.name != "model.layers.3.mlp.experts.down_proj").then_some(t)
    });
    let err = Checkpoint::open(&out).err().unwrap().to_string();
    assert!(
        err.contains("model.layers.3.mlp.experts.down_proj"),
        "{err}"
    );
    let mut cfg = read_json(&out.join("config.json"));
    cfg["quantization_config"] =
        serde_json::json!({"quant_method": "compressed-tensors", "format": "int-quantized"});
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();
    let err = Checkpoint::open(&out).err().unwrap().to_string();
    assert!(
        err.contains("config.json") && err.contains("int-quantized"),
        "{err}"
    );
}

/// llm-compressor's own int8 output for gpt-oss (same tensors as ours; its config spelling, one
/// `model.safetensors` without an index) reads, inspects and verifies like ours.
#[test]
fn llm_compressors_spelling_of_int8_reads_exactly() {
    let t = TempDir::new("st-llmc");
    let src = fixture("tiny-gpt-oss");
    let ours = t.join("ours");
    convert(
        &src,
        Variant::SafetensorsInt8,
        &ours,
        &ConvertOptions::default(),
    );
    // One file, no index, as llm-compressor saves a small model.
    let theirs = t.join("llmc");
    std::fs::create_dir_all(&theirs).unwrap();
    let tensors = read_back(&ours);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, (_, dtype, shape, bytes))| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &theirs.join("model.safetensors")).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(ours.join(f), theirs.join(f)).unwrap();
    }
    // Its config fields: compressed-tensors' full QuantizationArgs, a version, no sparsity.
    let mut config = read_json(&ours.join("config.json"));
    let q = config["quantization_config"].as_object_mut().unwrap();
    q.insert("version".into(), serde_json::json!("0.12.2"));
    q.insert("global_compression_ratio".into(), Value::Null);
    q.insert("sparsity_config".into(), serde_json::json!({}));
    q.insert("transform_config".into(), serde_json::json!({}));
    let w = q["config_groups"]["group_0"]["weights"]
        .as_object_mut()
        .unwrap();
    for (k, v) in [
        ("observer", serde_json::json!("minmax")),
        ("observer_kwargs", serde_json::json!({})),
        ("block_structure", Value::Null),
        ("scale_dtype", Value::Null),
        ("zp_dtype", Value::Null),
    ] {
        w.insert(k.into(), v);
    }
    std::fs::write(
        theirs.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    assert_eq!(
        Checkpoint::open(&theirs).unwrap().layout(),
        Layout::Int8 { dense_int8: false }
    );
    let (a, b) = (
        logits(&theirs, "tiny-gpt-oss"),
        logits(&src, "tiny-gpt-oss"),
    );
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let inspect = oss_forge(&["inspect", theirs.to_str().unwrap()]);
    inspect.ok();
    assert!(
        inspect.stdout.contains("compressed-tensors-int8"),
        "{}",
        inspect.stdout
    );
    oss_forge(&[
        "verify",
        "--original",
        src.to_str().unwrap(),
        theirs.to_str().unwrap(),
    ])
    .ok();
}
