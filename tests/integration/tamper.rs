//! `verify` catches one changed byte in a quantized variant: a code, a scale or a bias of a
//! GGUF block type (Q8_0, Q4_K, Q6_K) or an MLX affine group. The weight bound comes from the
//! original's values (a corrupted scale blows it) and a tensor the reference quantizer made must
//! agree with it in every block (a one-step code edit shows), while the untouched files pass.

use crate::util::*;
use convert::gguf::GgufFile;
use std::path::{Path, PathBuf};

/// Runs `verify --json` of `variant` against `original`.
fn verify(original: &Path, variant: &Path, json: &Path) -> Run {
    oss_forge(&[
        "verify",
        "-q",
        "--original",
        original.to_str().unwrap(),
        variant.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
}

/// The report's failure lines of its only variant.
fn failures(json: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    v["variants"][0]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// A copy of GGUF `src` with `edit` applied to the bytes of tensor `name`.
fn edited_gguf(src: &Path, dst: PathBuf, name: &str, edit: impl FnOnce(&mut [u8])) -> PathBuf {
    let range = GgufFile::open(src)
        .unwrap()
        .tensors()
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name} in {}", src.display()))
        .range
        .clone();
    let mut bytes = std::fs::read(src).unwrap();
    edit(&mut bytes[range]);
    std::fs::write(&dst, bytes).unwrap();
    dst
}

#[test]
fn a_one_step_q8_0_code_edit_fails_and_names_the_block() {
    let t = TempDir::new("tamper-q8");
    let (orig, q8) = (
        fixture("tiny-gpt-oss"),
        fixture("llamacpp/tiny-gpt-oss.llamacpp-q8_0.gguf"),
    );
    let json = t.join("ok.json");
    verify(&orig, &q8, &json).ok();
    // Block 3 of row 1 of blk.0.attn_q (rows of 128 values: 4 blocks of 34 bytes): its first
    // code one step up or down.
    let bad = edited_gguf(&q8, t.join("bad.gguf"), "blk.0.attn_q.weight", |b| {
        b[(4 + 3) * 34 + 2] ^= 1
    });
    let json = t.join("bad.json");
    let run = verify(&orig, &bad, &json);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let f = failures(&json).join("\n");
    assert!(
        f.contains("layers.0.q_proj: 1 of ")
            && f.contains("q8_0 blocks differ from ggml's reference quantizer")
            && f.contains("first at layers.0.q_proj row 1, block 3"),
        "{f}"
    );
    // The note counts the odd block instead of rounding it away.
    assert!(
        run.stdout.contains("(99.99") && run.stdout.contains("1 differs"),
        "{}",
        run.stdout
    );
}

#[test]
fn q4_k_and_q6_k_scale_and_code_edits_fail() {
    let t = TempDir::new("tamper-kq");
    let orig = fixture("wide-gpt-oss-ft");
    let q4 = t.join("q4km.gguf");
    oss_forge(&[
        "convert",
        orig.to_str().unwrap(),
        "--to",
        "gguf-q4_k_m",
        "-o",
        q4.to_str().unwrap(),
        "-q",
    ])
    .ok();
    verify(&orig, &q4, &t.join("ok.json")).ok();
    let types: Vec<(String, quant::Codec)> = GgufFile::open(&q4)
        .unwrap()
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.ty))
        .collect();
    let of = |c: quant::Codec| types.iter().find(|(_, t)| *t == c).unwrap().0.clone();
    let (q4k, q6k) = (of(quant::Codec::Q4_K), of(quant::Codec::Q6_K));
    type Edit = fn(&mut [u8]);
    let cases: [(&str, &str, Edit); 3] = [
        // Q4_K super-block 0's f16 `d`, exponent bit: every value of the block scaled.
        ("d", &q4k, |b| b[1] ^= 0x08),
        // One 4-bit code of Q4_K super-block 0 (byte 16 of 144 is in `qs`).
        ("qs", &q4k, |b| b[16 + 5] ^= 0x01),
        // One low code bit of Q6_K super-block 0 (`ql` comes first).
        ("q6", &q6k, |b| b[7] ^= 0x01),
    ];
    for (what, tensor, edit) in cases {
        let bad = edited_gguf(&q4, t.join(&format!("{what}.gguf")), tensor, edit);
        let json = t.join(&format!("{what}.json"));
        let run = verify(&orig, &bad, &json);
        assert_eq!(run.code, 1, "{what}: {}", run.stdout);
        let f = failures(&json).join("\n");
        assert!(
            f.contains("blocks differ from ggml's reference quantizer")
                && f.contains("row 0, block 0"),
            "{what}: {f}"
        );
        if what == "d" {
            // The bound comes from the original's values, not the stored scale.
            assert!(f.contains("outside the bound of q4_K storage"), "{f}");
        }
    }
}

#[test]
fn one_bit_edits_of_mlx_codes_scales_biases_and_router_fail() {
    let t = TempDir::new("tamper-mlx");
    let orig = fixture("tiny-gpt-oss");
    let src = t.join("mlx-mxfp4-q8");
    oss_forge(&[
        "convert",
        orig.to_str().unwrap(),
        "--to",
        "mlx-mxfp4-q8",
        "-o",
        src.to_str().unwrap(),
        "-q",
    ])
    .ok();
    verify(&orig, &src, &t.join("ok.json")).ok();
    for (k, tensor) in [
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.self_attn.q_proj.scales",
        "model.layers.1.self_attn.q_proj.biases",
        "model.layers.1.mlp.router.weight",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = t.join(&format!("m{k}"));
        copy_dir(&src, &dir);
        let mut found = false;
        for shard in shards(&dir) {
            rewrite_shard(&shard, |mut x| {
                if x.name == tensor {
                    // The lowest bit of the second value (scales, biases: a BF16 mantissa LSB).
                    x.data[2] ^= 1;
                    found = true;
                }
                Some(x)
            });
        }
        assert!(found, "{tensor}");
        let json = t.join(&format!("m{k}.json"));
        let run = verify(&orig, &dir, &json);
        assert_eq!(run.code, 1, "{tensor}: {}", run.stdout);
        let f = failures(&json).join("\n");
        assert!(
            f.contains("groups differ from mx.quantize"),
            "{tensor}: {f}"
        );
    }
}

/// MXFP4 experts requantized from a dense fine-tune by ggml's rule: one block rewritten as
/// another rule (`mse`) rounds it is no longer judged by "some rule reproduces it" alone. The
/// rule that made the other blocks must make every block.
#[test]
fn a_requantized_mxfp4_block_of_another_rule_fails_and_names_the_block() {
    let t = TempDir::new("tamper-mxfp4-rule");
    let orig = fixture("tiny-gpt-oss-ft");
    let q8 = t.join("ft.gguf");
    oss_forge(&[
        "convert",
        orig.to_str().unwrap(),
        "--to",
        "gguf-mxfp4-q8_0",
        "-o",
        q8.to_str().unwrap(),
        "-q",
    ])
    .ok();
    verify(&orig, &q8, &t.join("ok.json")).ok();
    // Byte 367 of blk.0.ffn_down_exps (17-byte ggml MXFP4 blocks, 2 per row of 64): block 21,
    // row 10 block 1 of expert 0. ggml's rule stores 0x13 there; 0x23 (one code 0.5 -> 1.0) is
    // what the `mse` rule writes for this block.
    let bad = edited_gguf(&q8, t.join("bad.gguf"), "blk.0.ffn_down_exps.weight", |b| {
        assert_eq!(b[367], 0x13, "the fixture's ggml-rule byte");
        b[367] = 0x23;
    });
    let json = t.join("bad.json");
    let run = verify(&orig, &bad, &json);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let f = failures(&json).join("\n");
    assert!(
        f.contains("layers.0.experts.down: 1 of 2048 requantized MXFP4 blocks are not the ggml rule's rounding")
            && f.contains("first at layers.0.experts.0.down row 10, block 1"),
        "{f}"
    );
}
