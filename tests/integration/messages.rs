//! What users read: `inspect` names MLX storage in words, errors render values plainly (no
//! Rust debug forms such as `Some(U16(2))` or `Yarn { factor: 32.0, .. }`), and a GGUF preset's
//! model card states the types its file holds.

use crate::util::*;

#[test]
fn inspect_says_how_an_mlx_directory_stores_each_group() {
    let run = oss_forge(&[
        "inspect",
        fixture("mlx/tiny-gpt-oss.mlx-q4").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.stdout;
    for needle in [
        "experts                MXFP4 in U32 words (8 codes each), U8 E8M0 scale per 32",
        "attention              affine 4-bit in U32 words, BF16 scale and bias per 64",
        "router                 affine 8-bit in U32 words, BF16 scale and bias per 64; bias vector BF16",
        "mlx scales and biases  affine scales and biases BF16; MXFP4 expert scales U8 (E8M0)",
    ] {
        assert!(out.contains(needle), "{needle:?} in {out}");
    }
    assert!(
        !out.contains("U8 blocks + scales") && !out.contains(" U32\n"),
        "{out}"
    );
}

#[test]
fn a_wrong_split_number_is_said_plainly_with_how_splits_count() {
    let t = TempDir::new("msg-split");
    let out = t.join("m.gguf");
    oss_forge(&[
        "convert",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        "--to",
        "gguf-mxfp4",
        "-o",
        out.to_str().unwrap(),
        "--split-max-size",
        "1MB",
        "-q",
    ])
    .ok();
    let mut files: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    // The second split says it is split.no 2 (the third).
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"split.no")
        .expect("split.no");
    let value = at + 8 + 4;
    assert_eq!(&bytes[at + 8..value], &2u32.to_le_bytes(), "u16 type id");
    bytes[value..value + 2].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(&files[1], bytes).unwrap();
    let run = oss_forge(&["inspect", files[0].to_str().unwrap()]);
    run.fails_with(&[
        "split.no is 2 (u16), expected 1",
        "counting from 1",
        "split.no counts from 0",
    ]);
    assert!(
        !run.stderr.contains("Some(") && !run.stderr.contains("U16("),
        "{}",
        run.stderr
    );
}

#[test]
fn a_config_mismatch_names_fields_with_plain_values() {
    let t = tiny_copy("msg-config");
    let m = t.join("m");
    edit_config(&m, |c| {
        c["rope_scaling"]["factor"] = serde_json::json!(16.0);
    });
    let run = oss_forge(&[
        "verify",
        "-q",
        "--original",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        m.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("rope_scaling.factor: 32 vs 16")
            || run.stderr.contains("rope_scaling.factor: 32 vs 16"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("Yarn {"), "{}", run.stderr);
}

#[test]
fn a_preset_card_states_the_types_its_file_holds() {
    let t = TempDir::new("msg-card");
    let out = t.join("out");
    oss_forge(&[
        "pipeline",
        fixture("tiny-gpt-oss").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--variants",
        "gguf-q4_k_m",
        "-q",
    ])
    .ok();
    let card = std::fs::read_to_string(out.join("gguf-q4_k_m/README.md")).unwrap();
    // tiny-gpt-oss's 128-wide rows fit no 256-value k-quant block: Q4_K_M's rules fall back.
    assert!(
        card.contains(
            "| attention, embeddings, lm_head | Q5_0: attn_q, token_embd; Q5_K: attn_output; Q8_0: attn_k, attn_v, output (llama-quantize's Q4_K_M rules) |"
        ),
        "{card}"
    );
    assert!(
        card.contains(
            "MXFP4 (E2M1 + E8M0 scale per 32), ggml `block_mxfp4`, kept as the source holds them"
        ),
        "{card}"
    );
    assert!(!card.contains("Q4_K by default"), "{card}");
}
