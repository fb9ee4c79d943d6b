//! MLX variants (`mlx-mxfp4-q8`, `mlx-mxfp4-q4`, `mlx-bf16`): what `mlx_lm.convert` 0.32.2
//! writes for tiny-gpt-oss (`tests/fixtures/mlx/`), tensor for tensor; verify's verdicts; MLX
//! directories written by mlx-lm read back; a dense fine-tune (which `mlx_lm.convert` refuses)
//! written and read back; hostile MLX directories refused with the module named.

use crate::util::{TempDir, copy_dir, fixture, golden, oss_forge};
use convert::variant::{ConvertOptions, ConvertReport, NoProgress, Variant};
use convert::{AnyModel, Checkpoint, Layout};
use reference::{Encoding, Model, WeightId, WeightSource};
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn convert(src: &Path, variant: Variant, out: &Path, opts: &ConvertOptions) -> ConvertReport {
    let model = AnyModel::open(src).unwrap();
    convert::variant::convert(&model, variant, out, opts, &NoProgress).unwrap()
}

/// Every tensor of the MLX directory `dir` read with the safetensors crate: name → (dtype,
/// shape, bytes); checks the shards' metadata and the index on the way.
fn tensors(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let wm = index["weight_map"].as_object().unwrap();
    let mut files: Vec<&str> = wm.values().map(|v| v.as_str().unwrap()).collect();
    files.sort();
    files.dedup();
    let mut out = BTreeMap::new();
    for f in files {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "mlx", "{f}");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (name, v) in st.tensors() {
            assert_eq!(wm[&name], f, "the index places {name}");
            out.insert(
                name,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            );
        }
    }
    assert_eq!(out.len(), wm.len(), "every indexed tensor is in a shard");
    out
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const FIXTURES: [(Variant, &str); 3] = [
    (Variant::MlxMxfp4Q8, "mlx/tiny-gpt-oss.mlx-q8"),
    (Variant::MlxMxfp4Q4, "mlx/tiny-gpt-oss.mlx-q4"),
    (Variant::MlxBf16, "mlx/tiny-gpt-oss.mlx-bf16"),
];

#[test]
fn each_mlx_variant_equals_mlx_lm_convert_tensor_for_tensor() {
    let t = TempDir::new("mlx-fixtures");
    for (variant, fx) in FIXTURES {
        let out = t.join(variant.name());
        let report = convert(
            &fixture("tiny-gpt-oss"),
            variant,
            &out,
            &ConvertOptions::default(),
        );
        let (ours, theirs) = (tensors(&out), tensors(&fixture(fx)));
        let differing: Vec<&String> = theirs
            .iter()
            .filter(|(k, v)| ours.get(*k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        eprintln!(
            "{variant}: {} tensors, mlx_lm.convert {}, {} differ",
            ours.len(),
            theirs.len(),
            differing.len()
        );
        assert!(differing.is_empty(), "{variant}: {differing:?}");
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        );
        // The config (per-module quantization map included) and the index, byte for byte.
        for f in ["config.json", "model.safetensors.index.json"] {
            assert_eq!(
                std::fs::read_to_string(out.join(f)).unwrap(),
                std::fs::read_to_string(fixture(fx).join(f)).unwrap(),
                "{variant}: {f}"
            );
        }
        let cfg = json(&out.join("config.json"));
        assert_eq!(
            cfg["quantization"],
            json(&fixture(fx).join("config.json"))["quantization"]
        );
        assert_eq!(cfg["quantization"], cfg["quantization_config"]);
        assert_eq!(
            cfg["eos_token_id"],
            serde_json::json!([484, 483, 494]),
            "from generation_config.json"
        );
        if variant == Variant::MlxBf16 {
            assert!(report.inexact.is_empty(), "{:?}", report.inexact);
            assert!(cfg.get("quantization").is_none());
        } else {
            // gpt-oss's quant predicate: the router is 8-bit whatever --q-bits says.
            assert_eq!(
                cfg["quantization"]["model.layers.2.mlp.router"],
                serde_json::json!({"group_size": 64, "bits": 8})
            );
            assert!(!report.inexact.is_empty());
        }
        for f in [
            "tokenizer.json",
            "chat_template.jinja",
            "generation_config.json",
            "README.md",
        ] {
            assert!(out.join(f).is_file(), "{variant}: {f}");
        }
        let card = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(
            card.contains("library_name: mlx") && card.contains("truncate"),
            "{card}"
        );
    }
}

/// The golden prompts of tiny-gpt-oss as verify prompts.
fn prompts() -> Vec<verify::prompts::Prompt> {
    golden("tiny-gpt-oss")
        .into_iter()
        .enumerate()
        .map(|(k, p)| verify::prompts::Prompt {
            name: format!("golden-{k}"),
            tokens: p.tokens,
        })
        .collect()
}

#[test]
fn verify_gives_bf16_zero_and_the_quantized_variants_land_on_their_floor() {
    let t = TempDir::new("mlx-verify");
    let orig = AnyModel::open(fixture("tiny-gpt-oss")).unwrap();
    let outs: Vec<(Variant, AnyModel)> = FIXTURES
        .iter()
        .map(|&(v, _)| {
            let out = t.join(v.name());
            convert(
                &fixture("tiny-gpt-oss"),
                v,
                &out,
                &ConvertOptions::default(),
            );
            (v, AnyModel::open(&out).unwrap())
        })
        .collect();
    // What a runtime reads besides the weights is compared too (config, tokenizer files).
    let metas: Vec<convert::runtime::RuntimeMeta> = std::iter::once(&orig)
        .chain(outs.iter().map(|(_, m)| m))
        .map(convert::runtime::RuntimeMeta::read)
        .collect();
    fn subject<'a>(
        name: &str,
        m: &'a AnyModel,
        meta: &'a convert::runtime::RuntimeMeta,
    ) -> verify::Subject<'a> {
        verify::Subject {
            name: name.to_string(),
            format: m.format_name(),
            source: m.source(),
            meta: Some(meta),
        }
    }
    let variants: Vec<verify::Subject<'_>> = outs
        .iter()
        .zip(&metas[1..])
        .map(|((v, m), meta)| subject(v.name(), m, meta))
        .collect();
    let report = verify::verify(
        &subject("tiny-gpt-oss", &orig, &metas[0]),
        &variants,
        &prompts(),
        verify::Rules::default(),
        &NoProgress,
    )
    .unwrap();
    for r in &report.variants {
        let floor = r.floor.as_ref();
        eprintln!(
            "{}: max|Δ| {:e}, mean KLD {:e}, top-1 {:.4}, floor KLD {:?}, {:?}",
            r.name,
            r.metrics.max_abs,
            r.metrics.kld_mean,
            r.metrics.top1,
            floor.map(|f| f.kld_mean),
            r.failures
        );
        assert!(r.passed(), "{}: {:?}", r.name, r.failures);
        assert!(r.weights.iter().all(|w| w.violations == 0));
        if r.name == "mlx-bf16" {
            assert!(r.lossless);
            assert_eq!(r.metrics.max_abs, 0.0);
        } else {
            // Our affine rounding is the floor's: the same values, the same logits.
            let f = floor.expect("a lossy variant has a floor");
            assert!(!r.lossless);
            assert_eq!(r.metrics.kld_mean, f.kld_mean, "{}", r.name);
            assert_eq!(r.metrics.top1, f.top1, "{}", r.name);
            // Experts and vectors identical, only the affine modules differ.
            for w in &r.weights {
                let affine = w.variant.starts_with("affine");
                assert_eq!(w.identical(), !affine, "{}: {}", r.name, w.name);
            }
        }
    }
}

#[test]
fn directories_written_by_mlx_lm_read_back_with_their_scheme() {
    let orig = Checkpoint::open(fixture("tiny-gpt-oss")).unwrap();
    let tokens = &golden("tiny-gpt-oss")[0].tokens;
    let want = Model::new(&orig).unwrap().logits(tokens).unwrap();
    for (variant, fx) in FIXTURES {
        let theirs = Checkpoint::open(fixture(fx)).unwrap();
        let Layout::Mlx(scheme) = theirs.layout() else {
            panic!("{fx}: {:?}", theirs.layout());
        };
        // The scheme read from mlx-lm's tensors is the variant's row.
        assert_eq!(
            Some(Layout::Mlx(scheme)),
            variant.storage().layout(),
            "{fx}"
        );
        let logits = Model::new(&theirs).unwrap().logits(tokens).unwrap();
        if variant == Variant::MlxBf16 {
            assert_eq!(logits, want, "mlx-bf16 holds the release's values");
        }
        // Experts are the release's MXFP4 (q8, q4) or their BF16 values (bf16), bit for bit.
        let (a, b) = (
            orig.weight(WeightId::Up(3, 5)).unwrap(),
            theirs.weight(WeightId::Up(3, 5)).unwrap(),
        );
        assert_eq!(a.to_f32(), b.to_f32());
        assert_eq!(
            orig.weight(WeightId::UpBias(3, 5)).unwrap().to_f32(),
            theirs.weight(WeightId::UpBias(3, 5)).unwrap().to_f32()
        );
        if variant != Variant::MlxBf16 {
            assert!(b.encoding().is_mxfp4());
            assert_eq!(
                theirs
                    .weight(WeightId::Router(1))
                    .unwrap()
                    .encoding()
                    .name(),
                "affine8"
            );
        }
    }
    // inspect and logits accept them from the command line.
    let dir = fixture("mlx/tiny-gpt-oss.mlx-q4");
    let run = oss_forge(&["inspect", dir.to_str().unwrap()]);
    run.ok();
    assert!(
        run.stdout
            .contains("router affine 8-bit group 64, lm_head affine 4-bit group 64"),
        "{}",
        run.stdout
    );
    oss_forge(&[
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--tokens",
        "1,2,3",
    ])
    .ok();
}

#[test]
fn a_dense_fine_tune_is_written_as_mlx_mxfp4_q8_and_reads_back() {
    let t = TempDir::new("mlx-ft");
    let src = fixture("tiny-gpt-oss-ft");
    let ft = Checkpoint::open(&src).unwrap();
    assert_eq!(ft.layout(), Layout::Dense);
    for rule in quant::mxfp4::Rounding::ALL {
        let out = t.join(rule.name());
        let opts = ConvertOptions {
            mxfp4_rounding: rule,
            ..ConvertOptions::default()
        };
        let report = convert(&src, Variant::MlxMxfp4Q8, &out, &opts);
        let requantized: u64 = report
            .inexact
            .iter()
            .filter(|i| i.what.contains(&format!("requantized to MXFP4 (`{rule}`")))
            .map(|i| i.count)
            .sum();
        assert!(requantized > 0, "{rule}: {:?}", report.inexact);
        let back = Checkpoint::open(&out).unwrap();
        assert_eq!(
            back.layout(),
            Variant::MlxMxfp4Q8.storage().layout().unwrap()
        );
        // The experts are the rule's MXFP4 of the fine-tune's values, block for block.
        for id in [
            WeightId::Gate(0, 0),
            WeightId::Up(2, 7),
            WeightId::Down(3, 4),
        ] {
            let dense = ft.weight(id).unwrap();
            let m = back.weight(id).unwrap();
            let Encoding::Mxfp4 { blocks, scales, .. } = *m.encoding() else {
                panic!("{id}: {:?}", m.encoding().name());
            };
            let (rows, cols) = (m.rows(), m.cols());
            let (mut b, mut s) = (vec![0u8; rows * cols / 2], vec![0u8; rows * cols / 32]);
            quant::mxfp4::quantize_row(rule, &dense.to_f32(), &mut b, &mut s);
            assert_eq!(&blocks[..b.len()], &b[..], "{rule} {id}");
            assert_eq!(&scales[..s.len()], &s[..], "{rule} {id}");
        }
        // Everything else: the fine-tune's biases and norms unchanged.
        assert_eq!(
            ft.weight(WeightId::GateBias(1, 3)).unwrap().to_f32(),
            back.weight(WeightId::GateBias(1, 3)).unwrap().to_f32()
        );
        let logits = Model::new(&back)
            .unwrap()
            .logits(&golden("tiny-gpt-oss")[1].tokens)
            .unwrap();
        assert!(logits.iter().all(|x| x.is_finite()));
    }
    // verify judges it against the fine-tune: every expert block is the `mlx` rule's, and the
    // format floor (the fine-tune rounded by that rule and by our affine encoder) passes it.
    let orig = AnyModel::open(&src).unwrap();
    let var = AnyModel::open(t.join("mlx")).unwrap();
    let (mo, mv) = (
        convert::runtime::RuntimeMeta::read(&orig),
        convert::runtime::RuntimeMeta::read(&var),
    );
    let report = verify::verify(
        &verify::Subject {
            name: "ft".into(),
            format: orig.format_name(),
            source: orig.source(),
            meta: Some(&mo),
        },
        &[verify::Subject {
            name: "mlx".into(),
            format: var.format_name(),
            source: var.source(),
            meta: Some(&mv),
        }],
        &prompts(),
        verify::Rules::default(),
        &NoProgress,
    )
    .unwrap();
    let r = &report.variants[0];
    assert!(r.passed(), "{:?}", r.failures);
    assert_eq!(
        verify::mxfp4_rule(&r.weights),
        Some(quant::mxfp4::Rounding::Mlx)
    );
    // (The affine tensors count their groups against mx.quantize too: all agree.)
    for w in r.weights.iter().filter(|w| w.bound.has_reference()) {
        assert_eq!(w.blocks.reference, w.blocks.total, "{}", w.name);
    }
    let experts: Vec<_> = r
        .weights
        .iter()
        .filter(|w| w.bound == verify::weights::Bound::Mxfp4Rules)
        .collect();
    assert!(!experts.is_empty());
    for w in experts {
        let mlx = quant::mxfp4::Rounding::ALL
            .iter()
            .position(|&x| x == quant::mxfp4::Rounding::Mlx)
            .unwrap();
        assert_eq!(
            w.blocks.by_rule[mlx] + w.blocks.unchanged,
            w.blocks.total,
            "{}",
            w.name
        );
        assert_eq!(w.blocks.unexplained, 0, "{}", w.name);
    }

    // The command line takes the rule by name.
    let out = t.join("cli");
    oss_forge(&[
        "-q",
        "convert",
        src.to_str().unwrap(),
        "--to",
        "mlx-mxfp4-q8",
        "--mxfp4-rounding",
        "mlx",
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(tensors(&out), tensors(&t.join("mlx")));
}

#[test]
fn shards_take_mlx_lm_s_names_and_read_back_the_same() {
    let t = TempDir::new("mlx-shards");
    let one = t.join("one");
    let many = t.join("many");
    convert(
        &fixture("tiny-gpt-oss"),
        Variant::MlxMxfp4Q4,
        &one,
        &ConvertOptions::default(),
    );
    convert(
        &fixture("tiny-gpt-oss"),
        Variant::MlxMxfp4Q4,
        &many,
        &ConvertOptions {
            max_shard_bytes: Some(200_000),
            ..ConvertOptions::default()
        },
    );
    let mut names: Vec<String> = std::fs::read_dir(&many)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    names.sort();
    let n = names.len();
    assert!(n > 1);
    for (k, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("model-{:05}-of-{n:05}.safetensors", k + 1));
    }
    assert_eq!(tensors(&one), tensors(&many));
    let tokens = &golden("tiny-gpt-oss")[2].tokens;
    let logits = |d: &Path| {
        Model::new(&Checkpoint::open(d).unwrap())
            .unwrap()
            .logits(tokens)
            .unwrap()
    };
    assert_eq!(logits(&one), logits(&many));
}

/// A copy of the mlx-lm q8 fixture with its config rewritten by `edit`.
fn edited_q8(t: &TempDir, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let dir = t.join("m");
    copy_dir(&fixture("mlx/tiny-gpt-oss.mlx-q8"), &dir);
    let mut cfg = json(&dir.join("config.json"));
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn mlx_directories_whose_config_and_tensors_disagree_are_refused_naming_the_module() {
    let err = |dir: &Path| match Checkpoint::open(dir) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e.to_string(),
    };
    // The map says 4-bit, the tensors are 8-bit.
    let t = TempDir::new("mlx-bad-map");
    let dir = edited_q8(&t, |c| {
        c["quantization"]["model.layers.2.self_attn.v_proj"]["bits"] = 4.into();
    });
    let e = err(&dir);
    assert!(
        e.contains("model.layers.2.self_attn.v_proj")
            && e.contains("affine 4-bit")
            && e.contains("affine 8-bit"),
        "{e}"
    );
    // A mode oss-forge does not read.
    let t = TempDir::new("mlx-bad-mode");
    let dir = edited_q8(&t, |c| {
        c["quantization"]["lm_head"]["mode"] = "nvfp4".into();
    });
    let e = err(&dir);
    assert!(e.contains("lm_head") && e.contains("nvfp4"), "{e}");
    // One layer's module stored another way than the rest (a mixed recipe): refused by name.
    let t = TempDir::new("mlx-mixed");
    let dir = t.join("m");
    copy_dir(&fixture("mlx/tiny-gpt-oss.mlx-q8"), &dir);
    crate::util::rewrite_shard(&dir.join("model.safetensors"), |mut t| {
        if t.name == "model.layers.1.mlp.router.biases" {
            return None;
        }
        if t.name == "model.layers.1.mlp.router.scales" {
            // U8 scales of the right count for 4 bits per 32: claims MXFP4.
            t.dtype = safetensors::Dtype::U8;
            t.shape = vec![8, 4];
            t.data = vec![127; 32];
        }
        if t.name == "model.layers.1.mlp.router.weight" {
            t.shape = vec![8, 16];
            t.data = vec![0; 8 * 16 * 4];
        }
        Some(t)
    });
    let mut idx = json(&dir.join("model.safetensors.index.json"));
    idx["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.layers.1.mlp.router.biases");
    std::fs::write(dir.join("model.safetensors.index.json"), idx.to_string()).unwrap();
    let mut cfg = json(&dir.join("config.json"));
    cfg["quantization"]
        .as_object_mut()
        .unwrap()
        .remove("model.layers.1.mlp.router");
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("router weights are stored two ways") && e.contains("model.layers.1.mlp.router"),
        "{e}"
    );
    // A missing part is named like any missing tensor.
    let t = TempDir::new("mlx-missing");
    let dir = t.join("m");
    copy_dir(&fixture("mlx/tiny-gpt-oss.mlx-bf16"), &dir);
    crate::util::rewrite_shard(&dir.join("model.safetensors"), |t| {
        (t.name != "model.layers.3.mlp.experts.down_proj.bias").then_some(t)
    });
    let mut idx = json(&dir.join("model.safetensors.index.json"));
    idx["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.layers.3.mlp.experts.down_proj.bias");
    std::fs::write(dir.join("model.safetensors.index.json"), idx.to_string()).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("model.layers.3.mlp.experts.down_proj.bias"),
        "{e}"
    );
}

/// Rewrites the tensor `name` in whichever shard of `dir` holds it.
fn poison(dir: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            crate::util::rewrite_shard(&p, |mut t| {
                if t.name == name {
                    edit(&mut t.data);
                }
                Some(t)
            });
        }
    }
}

#[test]
fn nonfinite_sources_are_refused_and_kept_when_allowed() {
    let t = crate::util::tiny_copy("mlx-nan");
    let m = t.join("m");
    // A NaN in an affine module's source, a NaN scale byte in an expert.
    poison(&m, "model.layers.1.self_attn.q_proj.weight", |d| {
        d[10..12].copy_from_slice(&0x7fc0u16.to_le_bytes());
    });
    poison(&m, "model.layers.0.mlp.experts.gate_up_proj_scales", |d| {
        d[0] = 255
    });
    let out = t.join("out");
    let run = oss_forge(&[
        "convert",
        "-q",
        m.to_str().unwrap(),
        "--to",
        "mlx-mxfp4-q8",
        "-o",
        out.to_str().unwrap(),
    ]);
    run.fails_with(&["--allow-nonfinite"]);
    assert!(!out.exists());
    oss_forge(&[
        "convert",
        "-q",
        m.to_str().unwrap(),
        "--to",
        "mlx-mxfp4-q8",
        "--allow-nonfinite",
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    // The NaN's group decodes to NaN (scale and bias NaN); the NaN scale byte is copied.
    let back = Checkpoint::open(&out).unwrap();
    let q = back.weight(WeightId::QProj(1)).unwrap().row_f32(0);
    assert!(q[..64].iter().all(|v| v.is_nan()) && q[64..].iter().all(|v| v.is_finite()));
    let g = back.weight(WeightId::Gate(0, 0)).unwrap().row_f32(0);
    assert!(g[..32].iter().all(|v| v.is_nan()));
    let r = oss_forge(&["inspect", out.to_str().unwrap()]);
    r.ok();
    assert!(
        r.stdout.contains(
            "model.layers.0.mlp.experts.gate_proj.scales` has 1 MXFP4 blocks with scale byte 255"
        ) && r.stdout.contains("model.layers.1.self_attn.q_proj.scales"),
        "{}",
        r.stdout
    );
}

/// An mlx-lm output directory as mlx-lm writes it: the weights and config of
/// `tests/fixtures/mlx/NAME`, mlx-lm's `tokenizer_config.json`, and the tokenizer files it copies
/// unchanged from the original.
fn mlx_lm_dir(name: &str, to: &Path) {
    copy_dir(&fixture(&format!("mlx/{name}")), to);
    std::fs::copy(
        fixture("mlx/mlx-lm-tokenizer_config.json"),
        to.join("tokenizer_config.json"),
    )
    .unwrap();
    for f in [
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
    ] {
        std::fs::copy(fixture("tiny-gpt-oss").join(f), to.join(f)).unwrap();
    }
}

fn verify_dir(dir: &Path, json: &Path) -> crate::util::Run {
    oss_forge(&[
        "verify",
        "-q",
        "--original",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
}

#[test]
fn mlx_lm_outputs_pass_verify_and_a_real_tokenizer_difference_still_fails() {
    let t = TempDir::new("mlx-meta");
    for name in [
        "tiny-gpt-oss.mlx-bf16",
        "tiny-gpt-oss.mlx-q8",
        "tiny-gpt-oss.mlx-q4",
    ] {
        let dir = t.join(name);
        mlx_lm_dir(name, &dir);
        let run = verify_dir(&dir, &t.join(&format!("{name}.json")));
        assert_eq!(run.code, 0, "{name}: {}", run.stdout);
        assert!(
            run.stdout.contains("added_tokens_decoder absent on the variant's side, equal to its tokenizer.json added tokens"),
            "{}",
            run.stdout
        );
    }
    // Real differences in what a runtime reads still fail.
    type Edit = fn(&Path);
    let edits: [(&str, Edit, &str); 4] = [
        (
            "special id",
            |d| {
                let p = d.join("tokenizer.json");
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, s.replace("\"id\": 482,", "\"id\": 481,")).unwrap();
            },
            "added_tokens_decoder",
        ),
        (
            "template",
            |d| {
                let p = d.join("chat_template.jinja");
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, format!("{s}x")).unwrap();
            },
            "chat template",
        ),
        (
            "class",
            |d| {
                let p = d.join("tokenizer_config.json");
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, s.replace("TokenizersBackend", "LlamaTokenizerFast")).unwrap();
            },
            "tokenizer_class",
        ),
        (
            "eos",
            |d| {
                let p = d.join("tokenizer_config.json");
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, s.replace("<|return|>", "<|end|>")).unwrap();
            },
            "eos_token",
        ),
    ];
    for (what, edit, key) in edits {
        let dir = t.join(what);
        mlx_lm_dir("tiny-gpt-oss.mlx-bf16", &dir);
        edit(&dir);
        let json = t.join(&format!("{what}.json"));
        let run = verify_dir(&dir, &json);
        assert_eq!(run.code, 1, "{what}: {}", run.stdout);
        let v = json_file(&json);
        let f = v["variants"][0]["failures"].to_string();
        assert!(f.contains(key), "{what}: {f}");
    }
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// An mlx-lm quantized directory converts to dense safetensors whose `config.json` no longer
/// carries mlx-lm's `quantization` map (it described the affine tensors, not the dense ones), so
/// the output opens and verifies against its source.
#[test]
fn an_mlx_quantized_source_converts_to_a_dense_directory_that_opens() {
    let t = TempDir::new("mlx-to-dense");
    let src = fixture("mlx/tiny-gpt-oss.mlx-q8");
    let out = t.join("bf16");
    oss_forge(&[
        "convert",
        src.to_str().unwrap(),
        "--to",
        "safetensors-bf16",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ])
    .ok();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert!(
        cfg.get("quantization").is_none() && cfg.get("quantization_config").is_none(),
        "{cfg}"
    );
    oss_forge(&[
        "verify",
        "-q",
        "--original",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .ok();
}
