//! GGUF variants: the three llama.cpp-equivalent variants against llama.cpp's own files, logits
//! through the GGUF reader, splits, hostile GGUF files, and the writer's output discipline.

use crate::util::{TempDir, fixture, golden, oss_forge};
use convert::gguf::{GgufFile, GgufModel, Value};
use convert::variant::NoProgress;
use convert::{Checkpoint, ConvertOptions, Variant};
use reference::{Model, WeightId, WeightSource};
use std::path::{Path, PathBuf};

fn convert_to(
    model: &str,
    variant: Variant,
    out: &Path,
    opts: &ConvertOptions,
) -> convert::ConvertReport {
    let src = fixture(model);
    let model = convert::AnyModel::open(&src).unwrap();
    convert::variant::convert(&model, variant, out, opts, &NoProgress).unwrap()
}

fn short(v: &Value) -> String {
    match v {
        Value::Array(t, items) => format!(
            "array[{}] x{} {:?}",
            convert::gguf::type_id_name(*t),
            items.len(),
            &items[..items.len().min(3)]
        ),
        v => format!("{v:?}"),
    }
}

/// Same metadata (keys, types, values, order), same tensors (names, types, shapes, order,
/// offsets, bytes), and in the end the same file, byte for byte.
fn assert_same_gguf(ours: &Path, theirs: &Path) {
    let a = GgufFile::open(ours).unwrap();
    let b = GgufFile::open(theirs).unwrap();
    let keys = |f: &GgufFile| f.kv().iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b), "metadata keys and order");
    for ((k, va), (_, vb)) in a.kv().iter().zip(b.kv()) {
        assert!(
            va == vb,
            "{}: metadata `{k}`: ours {} vs llama.cpp {}",
            theirs.display(),
            short(va),
            short(vb)
        );
    }
    assert_eq!(a.tensors().len(), b.tensors().len());
    for (ta, tb) in a.tensors().iter().zip(b.tensors()) {
        assert_eq!(
            (&ta.name, &ta.ne, ta.ty, ta.offset),
            (&tb.name, &tb.ne, tb.ty, tb.offset),
            "{}: tensor info",
            theirs.display()
        );
        assert!(
            a.data(ta) == b.data(tb),
            "{}: tensor `{}` ({}) bytes differ",
            theirs.display(),
            ta.name,
            ta.describe()
        );
    }
    assert!(
        std::fs::read(ours).unwrap() == std::fs::read(theirs).unwrap(),
        "{}: files differ outside metadata and tensors",
        theirs.display()
    );
}

#[test]
fn llamacpp_equivalent_variants_match_llamacpp_files() {
    let t = TempDir::new("gguf-eq");
    for model in ["tiny-gpt-oss", "small-gpt-oss"] {
        for (variant, outtype) in [
            (Variant::GgufMxfp4, "auto"),
            (Variant::GgufMxfp4F16, "f16"),
            (Variant::GgufMxfp4Q8_0, "q8_0"),
        ] {
            let out = t.join(&format!("{model}-{outtype}.gguf"));
            convert_to(model, variant, &out, &ConvertOptions::default());
            assert_same_gguf(
                &out,
                &fixture(&format!("llamacpp/{model}.llamacpp-{outtype}.gguf")),
            );
        }
    }
}

fn logits_of(src: &dyn WeightSource, tokens: &[u32]) -> Vec<f32> {
    Model::new(src).unwrap().logits(tokens).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn lossless_variants_give_the_originals_logits_exactly() {
    let t = TempDir::new("gguf-logits");
    for model in ["tiny-gpt-oss", "small-gpt-oss"] {
        let ckpt = Checkpoint::open(fixture(model)).unwrap();
        let prompts = golden(model);
        for variant in [Variant::GgufMxfp4, Variant::GgufBf16] {
            let out = t.join(&format!("{model}-{variant}.gguf"));
            let report = convert_to(model, variant, &out, &ConvertOptions::default());
            assert!(report.inexact.is_empty(), "{variant}: {:?}", report.inexact);
            let g = GgufModel::open(&out).unwrap();
            // The GGUF also records the tokenizer's bos id, which config.json does not declare.
            let mut want = ckpt.config().clone();
            want.token_ids.bos = Some(482);
            assert_eq!(
                g.config(),
                &want,
                "{variant}: config round-trips through the metadata"
            );
            for p in &prompts {
                let d = max_abs_diff(&logits_of(&g, &p.tokens), &logits_of(&ckpt, &p.tokens));
                assert_eq!(d, 0.0, "{model} {variant}: max |Δlogit| {d}");
            }
        }
    }
}

#[test]
fn q8_0_variant_stores_experts_exactly_and_counts_the_rest() {
    let t = TempDir::new("gguf-q8");
    let model = "tiny-gpt-oss";
    let ckpt = Checkpoint::open(fixture(model)).unwrap();
    let out = t.join("q8.gguf");
    let report = convert_to(model, Variant::GgufQ8_0, &out, &ConvertOptions::default());
    let g = GgufModel::open(&out).unwrap();
    let cfg = ckpt.config().clone();
    // Every expert value equals the original's.
    for l in 0..cfg.num_hidden_layers {
        for e in 0..cfg.num_local_experts {
            for id in [
                WeightId::Gate(l, e),
                WeightId::Up(l, e),
                WeightId::Down(l, e),
            ] {
                let a = g.weight(id).unwrap().to_f32();
                let b = ckpt.weight(id).unwrap().to_f32();
                assert!(a == b, "{id}: expert values differ");
            }
        }
    }
    // The blocks outside the exact range (expert 0's all-zero block has scale byte 0) are
    // counted, and inspect counts the same blocks from the file.
    let scan = convert::inspect::inspect(&ckpt);
    let outside = scan.blocks_outside(quant::q8_0::EXACT_SCALE_MIN, quant::q8_0::EXACT_SCALE_MAX);
    assert!(outside > 0);
    let counted = report
        .inexact
        .iter()
        .find(|i| i.what.starts_with("Q8_0 expert blocks"))
        .map_or(0, |i| i.count);
    assert_eq!(counted, outside, "{:?}", report.inexact);
    let any = convert::AnyModel::open(&out).unwrap();
    let insp = convert::inspect::inspect_any(&any);
    assert_eq!(insp.q8_0_expert_blocks.unwrap().1, outside);
    assert!(
        insp.render()
            .contains(&format!("{outside} not stored exactly"))
    );
    // Dense weights are Q8_0 and lossy: the logits are only reported.
    for p in golden(model) {
        let d = max_abs_diff(&logits_of(&g, &p.tokens), &logits_of(&ckpt, &p.tokens));
        eprintln!("{model} gguf-q8_0: max |Δlogit| {d:.3e} (dense Q8_0, not required to be 0)");
        assert!(d.is_finite());
    }
}

#[test]
fn llamacpp_files_load_and_run() {
    for model in ["tiny-gpt-oss", "small-gpt-oss"] {
        let ckpt = Checkpoint::open(fixture(model)).unwrap();
        let p = &golden(model)[0];
        let want = logits_of(&ckpt, &p.tokens);
        for outtype in ["auto", "f16", "q8_0"] {
            let path = fixture(&format!("llamacpp/{model}.llamacpp-{outtype}.gguf"));
            let g = GgufModel::open(&path).unwrap();
            let d = max_abs_diff(&logits_of(&g, &p.tokens), &want);
            eprintln!("{model} llama.cpp {outtype}: max |Δlogit| {d:.3e}");
            // The auto file holds the original values; f16 and q8_0 round the dense weights, so
            // there the logits are only reported.
            if outtype == "auto" {
                assert_eq!(
                    d, 0.0,
                    "llama.cpp's BF16/MXFP4 file holds the original values"
                );
            }
            assert!(d.is_finite());
        }
    }
    // And through the command line.
    let path = fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf");
    let run = oss_forge(&[
        "logits",
        "--model",
        path.to_str().unwrap(),
        "--tokens",
        "1,2,3",
    ]);
    run.ok();
    assert!(run.stdout.contains("pos    2"), "{}", run.stdout);
    let run = oss_forge(&["inspect", path.to_str().unwrap()]);
    run.ok();
    assert!(
        run.stdout.contains("gguf MXFP4_MOE") && run.stdout.contains("mxfp4"),
        "{}",
        run.stdout
    );
}

fn split_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[test]
fn splits_are_llamacpp_style_and_read_back() {
    let t = TempDir::new("gguf-split");
    let out = t.join("m.gguf");
    let opts = ConvertOptions {
        split_max_bytes: Some(400_000),
        ..Default::default()
    };
    let report = convert_to("tiny-gpt-oss", Variant::GgufMxfp4, &out, &opts);
    let files = split_files(t.path());
    let n = files.len();
    assert!(n >= 3, "{files:?}");
    assert_eq!(report.outputs, files);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_string_lossy(),
            format!("m-{:05}-of-{n:05}.gguf", i + 1)
        );
        let g = GgufFile::open(f).unwrap();
        let kv = g.kv();
        let tail = &kv[kv.len() - 3..];
        assert_eq!(tail[0], ("split.no".to_string(), Value::U16(i as u16)));
        assert_eq!(tail[1], ("split.count".to_string(), Value::U16(n as u16)));
        assert_eq!(tail[2], ("split.tensors.count".to_string(), Value::I32(79)));
        if i > 0 {
            assert_eq!(kv.len(), 3, "only split keys after the first split");
        }
        let data: u64 = g.tensors().iter().map(|t| t.range.len() as u64).sum();
        assert!(data <= 400_000 || g.tensors().len() == 1);
    }
    // The first split finds the others; the weights are those of the single file.
    let whole = t.join("whole.gguf");
    convert_to(
        "tiny-gpt-oss",
        Variant::GgufMxfp4,
        &whole,
        &ConvertOptions::default(),
    );
    let a = GgufModel::open(&files[0]).unwrap();
    let b = GgufModel::open(&whole).unwrap();
    let tokens = [1u32, 7, 300, 484];
    assert_eq!(logits_of(&a, &tokens), logits_of(&b, &tokens));
    // A later split is not an entry point; a missing split is named.
    assert!(
        GgufModel::open(&files[1])
            .err()
            .unwrap()
            .to_string()
            .contains("open the first split")
    );
    std::fs::remove_file(&files[n - 1]).unwrap();
    let err = GgufModel::open(&files[0]).err().unwrap().to_string();
    assert!(
        err.contains(&format!("split {n} of {n} is missing")),
        "{err}"
    );
}

#[test]
fn refuses_to_overwrite_and_leaves_nothing_partial() {
    let t = TempDir::new("gguf-force");
    let src = fixture("tiny-gpt-oss");
    let out = t.join("m.gguf");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "convert",
            src.to_str().unwrap(),
            "--to",
            "gguf-mxfp4",
            "-o",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| oss_forge(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let first = run(args(&[]));
    first.ok();
    assert!(
        first.stdout.contains("every value stored exactly"),
        "{}",
        first.stdout
    );
    let before = std::fs::read(&out).unwrap();
    run(args(&[])).fails_with(&["already exists", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), before);
    run(args(&["--force"])).ok();
    assert_eq!(std::fs::read(&out).unwrap(), before, "deterministic");
    // An error late in the conversion leaves neither the final name nor a temporary.
    let out2 = t.join("n.gguf");
    let model = convert::AnyModel::open(&src).unwrap();
    let failing = Failing {
        inner: model.source(),
    };
    let err = convert::variant::convert_weights(
        &model,
        &failing,
        Variant::GgufMxfp4,
        &out2,
        &ConvertOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("blk.3.attn_v.weight"), "{err}");
    assert!(!out2.exists());
    let left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "only m.gguf remains: {left:?}");
}

/// A source whose last layer's v projection cannot be read: the conversion fails after most of
/// the file is written.
struct Failing<'a> {
    inner: &'a dyn WeightSource,
}

impl WeightSource for Failing<'_> {
    fn config(&self) -> &reference::Config {
        self.inner.config()
    }
    fn weight(&self, id: WeightId) -> Result<reference::MatRef<'_>, reference::SourceError> {
        if id == WeightId::VProj(3) {
            return Err("simulated read error".into());
        }
        self.inner.weight(id)
    }
}

/// Writes `bytes` to a fresh file and opens it as a model, returning the error text.
fn open_err(t: &TempDir, name: &str, bytes: &[u8]) -> String {
    let p = t.join(name);
    std::fs::write(&p, bytes).unwrap();
    match GgufModel::open(&p) {
        Ok(_) => panic!("{name}: opened"),
        Err(e) => e.to_string(),
    }
}

/// Every header and metadata rule has its own unit test beside the code (`convert`'s
/// `gguf::file::tests` and `gguf::model::tests`); this damages a real llama.cpp file and checks
/// the errors end to end: the library names the file and the tensor, the binary exits 2.
#[test]
fn hostile_gguf_files_are_clean_errors() {
    let t = TempDir::new("gguf-bad");
    let good = std::fs::read(fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf")).unwrap();
    let f = GgufFile::open(fixture("llamacpp/tiny-gpt-oss.llamacpp-auto.gguf")).unwrap();
    let last = f.tensors().last().unwrap().clone();

    // Truncated: the last tensor runs past the end; the error names it.
    let e = open_err(&t, "trunc.gguf", &good[..good.len() - 100]);
    assert!(
        e.contains("trunc.gguf") && e.contains(&last.name) && e.contains("truncated"),
        "{e}"
    );
    // An unknown ggml type on the first tensor (its type follows its name, n_dims and ne).
    let first = &f.tensors()[0];
    let needle = [
        &(first.name.len() as u64).to_le_bytes()[..],
        first.name.as_bytes(),
    ]
    .concat();
    let at = good
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap()
        + needle.len()
        + 4
        + 8 * first.ne.len();
    let mut b = good.clone();
    b[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    let e = open_err(&t, "type.gguf", &b);
    assert!(
        e.contains(&first.name) && e.contains("ggml type id 77"),
        "{e}"
    );
    // Through the binary: exit code 2, no panic.
    oss_forge(&["inspect", t.join("trunc.gguf").to_str().unwrap()])
        .fails_with(&["trunc.gguf", &last.name]);
    oss_forge(&[
        "logits",
        "--model",
        t.join("type.gguf").to_str().unwrap(),
        "--tokens",
        "1",
    ])
    .fails_with(&["ggml type id 77"]);
}
