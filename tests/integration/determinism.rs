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

/// Prompts run through the layers together (`Model::logits_each`, what `verify` does) give
/// every logit bit for bit as each prompt alone (`Model::logits`), with 1 and 2 threads:
/// sequences of other lengths, one crossing the sliding window, one empty.
#[test]
fn prompts_run_together_give_the_bits_of_each_alone() {
    let m = convert::AnyModel::open(crate::util::fixture("tiny-gpt-oss")).unwrap();
    let model = reference::Model::new(m.source()).unwrap();
    let window = model.config().sliding_window;
    let long: Vec<u32> = (0..window as u32 + 9).map(|i| (i * 37 + 5) % 500).collect();
    let seqs: Vec<Vec<u32>> = vec![
        vec![3, 200, 17, 9, 44],
        long,
        vec![],
        vec![7],
        vec![100, 5, 5, 5, 480, 2, 1, 0, 300, 12, 11],
    ];
    let alone: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| {
            let l = model.logits(s).unwrap();
            l.iter().map(|x| x.to_bits()).collect()
        })
        .collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let mut together = vec![Vec::new(); seqs.len()];
        let mut layers = Vec::new();
        pool.install(|| {
            model
                .logits_each(&refs, &mut |l| layers.push(l), &mut |k, l| {
                    together[k] = l.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
                })
                .unwrap()
        });
        assert_eq!(
            layers,
            (0..model.config().num_hidden_layers).collect::<Vec<_>>()
        );
        for (k, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(a.len(), seqs[k].len() * model.config().vocab_size);
            assert!(a == b, "sequence {k}, {threads} threads: logits differ");
        }
    }
}
