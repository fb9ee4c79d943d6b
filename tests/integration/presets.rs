//! GGUF quant presets and requantized MXFP4 experts: the files equal what llama-quantize writes,
//! byte for byte (SHA-256 of the shared fixtures in `tests/fixtures/llamacpp-quants.sha256`).

use crate::util::{TempDir, fixture, oss_forge};
use std::collections::BTreeMap;
use std::path::Path;

/// `fixture file name -> sha256` from `tests/fixtures/llamacpp-quants.sha256`.
fn llamacpp_hashes() -> BTreeMap<String, String> {
    std::fs::read_to_string(fixture("llamacpp-quants.sha256"))
        .unwrap()
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap();
            let name = path.rsplit('/').next().unwrap();
            (name.to_string(), hash.to_string())
        })
        .collect()
}

fn sha256(p: &Path) -> String {
    convert::publish::sha256_file(p).unwrap()
}

/// Converts `model` to `variant` and checks the file's hash against llama.cpp's `want` file.
fn same_as_llamacpp(t: &TempDir, model: &str, variant: &str, want: &str) {
    let out = t.join(&format!("{model}.{variant}.gguf"));
    oss_forge(&[
        "-q",
        "convert",
        fixture(model).to_str().unwrap(),
        "--to",
        variant,
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    let hashes = llamacpp_hashes();
    assert_eq!(
        sha256(&out),
        hashes[want],
        "{model} -> {variant} differs from llama.cpp's {want}"
    );
}

/// Every preset of llama-quantize, in oss-forge's variant names.
const PRESETS: [&str; 15] = [
    "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M",
    "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS",
];

#[test]
fn every_preset_from_a_dense_fine_tune_equals_llama_quantize() {
    let t = TempDir::new("presets-dense");
    for p in PRESETS {
        let variant = format!("gguf-{}", p.to_lowercase());
        same_as_llamacpp(
            &t,
            "wide-gpt-oss-ft",
            &variant,
            &format!("wide-gpt-oss-ft.llamacpp-{p}.gguf"),
        );
    }
}

#[test]
fn every_preset_from_mxfp4_keeps_the_experts_and_equals_llama_quantize() {
    let t = TempDir::new("presets-mxfp4");
    for p in PRESETS {
        let variant = format!("gguf-{}", p.to_lowercase());
        same_as_llamacpp(
            &t,
            "wide-gpt-oss",
            &variant,
            &format!("wide-gpt-oss.llamacpp-mxfp4-{p}.gguf"),
        );
    }
}

/// A dense fine-tune's experts are requantized to MXFP4 by ggml's rule: `gguf-mxfp4-q8_0` is
/// llama-quantize's `MXFP4_MOE` of llama.cpp's bf16 conversion, tensor for tensor and key for key.
#[test]
fn mxfp4_q8_0_from_a_dense_fine_tune_equals_llama_quantize_mxfp4_moe() {
    let t = TempDir::new("mxfp4-moe");
    for model in ["tiny-gpt-oss-ft", "wide-gpt-oss-ft"] {
        same_as_llamacpp(
            &t,
            model,
            "gguf-mxfp4-q8_0",
            &format!("{model}.llamacpp-mxfp4_moe.gguf"),
        );
        // The converter's own q8_0 stays as it was.
        same_as_llamacpp(
            &t,
            model,
            "gguf-q8_0",
            &format!("{model}.llamacpp-q8_0.gguf"),
        );
    }
}

/// A model holding the F32 dequantization of every weight of another (ggml's own
/// `dequantize_row_*`: `quant`'s decoders are bit-identical to it, `quant`'s tests show it).
struct Dequantized {
    cfg: reference::Config,
    weights: std::collections::HashMap<reference::WeightId, Vec<u8>>,
}

impl Dequantized {
    fn of(src: &dyn reference::WeightSource) -> Dequantized {
        let cfg = src.config().clone();
        let weights = reference::WeightId::all(&cfg)
            .into_iter()
            .map(|id| {
                let xs = src.weight(id).unwrap().to_f32();
                (id, xs.iter().flat_map(|v| v.to_le_bytes()).collect())
            })
            .collect();
        Dequantized { cfg, weights }
    }
}

impl reference::WeightSource for Dequantized {
    fn config(&self) -> &reference::Config {
        &self.cfg
    }
    fn weight(
        &self,
        id: reference::WeightId,
    ) -> Result<reference::MatRef<'_>, reference::SourceError> {
        let (rows, cols) = id.shape(&self.cfg);
        Ok(reference::MatRef::dense(
            reference::DenseType::F32,
            &self.weights[&id],
            rows,
            cols,
        )?)
    }
}

/// Every preset file (equal to llama-quantize's by the tests above) and an F32 model of its
/// dequantized values: every weight identical, logits identical bit for bit.
#[test]
fn every_preset_equals_its_own_dequantization() {
    let t = TempDir::new("presets-deq");
    let tokens = [0u32, 132, 124, 220, 351, 282, 455, 17, 3, 300];
    for model in ["wide-gpt-oss-ft", "wide-gpt-oss"] {
        for p in PRESETS {
            let out = t.join(&format!("{model}-{p}.gguf"));
            oss_forge(&[
                "-q",
                "convert",
                fixture(model).to_str().unwrap(),
                "--to",
                &format!("gguf-{}", p.to_lowercase()),
                "-o",
                out.to_str().unwrap(),
            ])
            .ok();
            let file = convert::AnyModel::open(&out).unwrap();
            let f32s = Dequantized::of(file.source());
            let checks = verify::weights::check_all(file.source(), &f32s, &|_, _| {}).unwrap();
            assert!(checks.iter().all(|c| c.identical()), "{model} {p}");
            let a = reference::Model::new(file.source())
                .unwrap()
                .logits(&tokens)
                .unwrap();
            let b = reference::Model::new(&f32s)
                .unwrap()
                .logits(&tokens)
                .unwrap();
            assert!(a == b, "{model} {p}: logits differ");
        }
    }
}

/// verify of the presets against their original: each passes with the KLD and top-1 of its
/// type mix, its blocks are ggml's reference quantizer's, and more bits are closer.
#[test]
fn presets_verify_against_the_original_in_order_of_their_bits() {
    let t = TempDir::new("presets-verify");
    let ft = fixture("wide-gpt-oss-ft");
    let mut files = Vec::new();
    for p in ["q6_k", "q4_k_m", "q2_k"] {
        let out = t.join(&format!("{p}.gguf"));
        oss_forge(&[
            "-q",
            "convert",
            ft.to_str().unwrap(),
            "--to",
            &format!("gguf-{p}"),
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
        files.push(out);
    }
    let json = t.join("r.json");
    let mut args = vec!["verify", "--original", ft.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(["--json", json.to_str().unwrap()]);
    let run = oss_forge(&args);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let kld: Vec<f64> = (0..3)
        .map(|i| {
            report["variants"][i]["metrics"]["kld_mean"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(
        kld[0] < kld[1] && kld[1] < kld[2],
        "q6_k, q4_k_m, q2_k: {kld:?}\n{}",
        run.stdout
    );
    for i in 0..3 {
        let v = &report["variants"][i];
        assert!(
            v["requantization"][0]
                .as_str()
                .unwrap()
                .contains("(100%) equal ggml's reference quantizer"),
            "{v}"
        );
    }
    run.ok();
}
