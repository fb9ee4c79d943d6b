//! Determinism is a feature: the bytes of every variant and the reference logits do not depend
//! on the thread count (packagers rebuild and compare, `SHA256SUMS` must not drift).

use crate::util::{TempDir, oss_forge};

/// Every file under `dir` (or the file itself), by relative path, with its bytes.
fn contents(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    if path.is_file() {
        return vec![(String::new(), std::fs::read(path).unwrap())];
    }
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(path)
        .unwrap()
        .flat_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            contents(&p)
                .into_iter()
                .map(move |(sub, b)| (format!("{name}/{sub}"), b))
        })
        .collect();
    out.sort();
    out
}

/// Bytes of tensor data in a written variant (headers and side files aside).
fn tensor_data_bytes(path: &std::path::Path) -> u64 {
    match convert::AnyModel::open(path).unwrap() {
        convert::AnyModel::Gguf(g) => g
            .files()
            .iter()
            .flat_map(|f| f.tensors())
            .map(|t| t.range.len() as u64)
            .sum(),
        convert::AnyModel::Safetensors(c) => c
            .files()
            .iter()
            .flat_map(|f| f.tensors())
            .map(|t| t.range.len() as u64)
            .sum(),
    }
}

#[test]
fn every_variant_and_the_logits_are_identical_with_one_or_two_threads() {
    let t = TempDir::new("threads");
    let model = t.join("tiny");
    oss_forge(&[
        "synth",
        "--preset",
        "tiny",
        "--layers",
        "2",
        "-o",
        model.to_str().unwrap(),
    ])
    .ok();
    for v in convert::Variant::ALL {
        let outs: Vec<_> = ["1", "2"]
            .iter()
            .map(|n| {
                let ext = if v.is_gguf() { ".gguf" } else { "" };
                let out = t.join(&format!("{v}-{n}{ext}"));
                oss_forge(&[
                    "--threads",
                    n,
                    "-q",
                    "convert",
                    model.to_str().unwrap(),
                    "--to",
                    v.name(),
                    "-o",
                    out.to_str().unwrap(),
                ])
                .ok();
                contents(&out)
            })
            .collect();
        assert!(!outs[0].is_empty());
        // `fit` sizes come from the same storage table as the writers: they must agree.
        let ext = if v.is_gguf() { ".gguf" } else { "" };
        let written = tensor_data_bytes(&t.join(&format!("{v}-1{ext}")));
        let cfg = reference::Config::from_json_str(
            &std::fs::read_to_string(model.join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            verify::fit::weight_bytes(&cfg, Some(v)),
            written,
            "{v}: fit vs the file"
        );
        assert!(
            outs[0] == outs[1],
            "{v}: output differs between 1 and 2 threads"
        );
    }
    let tokens = "0,5,9,400,482,3,3,17,200,100,490,7,7,7,1,2,3";
    let logits: Vec<Vec<u8>> = ["1", "2"]
        .iter()
        .map(|n| {
            let out = t.join(&format!("logits-{n}.npy"));
            oss_forge(&[
                "--threads",
                n,
                "logits",
                "--model",
                model.to_str().unwrap(),
                "--tokens",
                tokens,
                "--out",
                out.to_str().unwrap(),
            ])
            .ok();
            std::fs::read(out).unwrap()
        })
        .collect();
    assert!(
        logits[0] == logits[1],
        "logits differ between 1 and 2 threads"
    );
}
