//! `oss-forge synth`: deterministic checkpoints in both release layouts that the readers and
//! the forward pass accept, and that agree with each other.

use crate::util::{TempDir, oss_forge};
use convert::Checkpoint;
use reference::Model;

#[test]
fn tiny_synth_has_both_layouts_with_identical_logits() {
    let t = TempDir::new("synth");
    let out = t.join("tiny");
    oss_forge(&[
        "synth",
        "--preset",
        "tiny",
        "--original",
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "model-00000-of-00001.safetensors",
        "model-00001-of-00001.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
        "original/config.json",
        "original/dtypes.json",
        "original/model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let hf = Checkpoint::open(&out).unwrap();
    let orig = Checkpoint::open(out.join("original")).unwrap();
    assert_eq!(hf.layout(), convert::Layout::Release);
    assert_eq!(orig.layout(), convert::Layout::Original);
    let tokens = [0u32, 5, 9, 400, 482, 3, 3, 17, 200, 100, 490];
    let a = Model::new(&hf).unwrap().logits(&tokens).unwrap();
    let b = Model::new(&orig).unwrap().logits(&tokens).unwrap();
    assert_eq!(a, b, "the two layouts hold the same weights");
    assert!(a.iter().all(|v| v.is_finite()));
    // The all-zero block of expert 0 shows up as scale byte 0.
    let report = convert::inspect::inspect(&hf);
    assert_eq!(report.scale_range().unwrap().0, 0);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn synth_is_deterministic_in_the_seed_and_refuses_to_overwrite() {
    let t = TempDir::new("synthdet");
    let run = |name: &str, seed: &str| {
        let out = t.join(name);
        oss_forge(&[
            "synth",
            "--preset",
            "tiny",
            "--layers",
            "2",
            "--seed",
            seed,
            "-o",
            out.to_str().unwrap(),
        ])
        .ok();
        let mut all = Vec::new();
        for f in [
            "model-00000-of-00000.safetensors",
            "model.safetensors.index.json",
            "config.json",
        ] {
            all.extend(std::fs::read(out.join(f)).unwrap());
        }
        all
    };
    let a = run("a", "7");
    assert_eq!(a, run("b", "7"));
    assert_ne!(a, run("c", "8"));
    oss_forge(&[
        "synth",
        "--preset",
        "tiny",
        "-o",
        t.join("a").to_str().unwrap(),
    ])
    .fails_with(&["already exists", "--force"]);
    oss_forge(&[
        "synth",
        "--preset",
        "tiny",
        "--layers",
        "2",
        "--seed",
        "9",
        "--force",
        "-o",
        t.join("a").to_str().unwrap(),
    ])
    .ok();
    // Nothing but the outputs in the directory: no temporaries left behind.
    let mut names: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}
