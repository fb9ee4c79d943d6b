//! The reference forward pass against the golden logits of both fixtures (transformers 5.23,
//! f32, cross-checked against OpenAI's torch reference to 3e-5), from the HF layout and from
//! `original/`: max |Δ| <= 2e-4 at every position and the same top-1 token everywhere.

use crate::util::{argmax, fixture, golden};
use convert::Checkpoint;
use reference::Model;

/// The tolerance the fixtures' README sets for an f32 implementation.
const MAX_ABS: f32 = 2e-4;

fn check(model_dir: &str, golden_name: &str) {
    let ckpt = Checkpoint::open(fixture(model_dir)).unwrap();
    let model = Model::new(&ckpt).unwrap();
    for (k, p) in golden(golden_name).iter().enumerate() {
        let logits = model.logits(&p.tokens).unwrap();
        assert_eq!(logits.len(), p.logits.len());
        let mut worst = 0f32;
        for (t, (ours, theirs)) in logits
            .chunks(p.vocab)
            .zip(p.logits.chunks(p.vocab))
            .enumerate()
        {
            for (a, b) in ours.iter().zip(theirs) {
                worst = worst.max((a - b).abs());
            }
            assert_eq!(
                argmax(ours),
                argmax(theirs),
                "{model_dir} prompt {k} position {t}: top-1 differs"
            );
        }
        assert!(
            worst <= MAX_ABS,
            "{model_dir} prompt {k}: max |Δlogit| {worst} > {MAX_ABS}"
        );
        eprintln!(
            "{model_dir} prompt {k}: {} tokens, max |Δlogit| {worst:.2e}",
            p.tokens.len()
        );
    }
}

#[test]
fn tiny_hf_layout_matches_golden() {
    check("tiny-gpt-oss", "tiny-gpt-oss");
}

#[test]
fn tiny_original_layout_matches_golden() {
    check("tiny-gpt-oss/original", "tiny-gpt-oss");
}

#[test]
fn small_hf_layout_matches_golden() {
    check("small-gpt-oss", "small-gpt-oss");
}

#[test]
fn small_original_layout_matches_golden() {
    check("small-gpt-oss/original", "small-gpt-oss");
}

/// A fine-tune in transformers' dense layout (BF16, one-based shards with an index) against its
/// own golden (transformers on the dense files).
#[test]
fn tiny_finetune_dense_layout_matches_golden() {
    check("tiny-gpt-oss-ft", "tiny-gpt-oss-ft");
}
