//! End-to-end tests: the reference forward pass against the golden logits, the readers against
//! hostile files, and the `oss-forge` binary as a user runs it. One module per topic.

mod util;

// Logits of both fixtures, from both layouts, against transformers' goldens.
mod golden;

// Every input layout (dense in any float dtype, per-expert, dense under MXFP4 names, MXFP4 beside
// F16/F32, our own variants, config spellings) against the goldens.
mod layouts;

// Truncated shards, lying headers, missing tensors, wrong shapes and dtypes, broken configs.
mod bad_inputs;

// Synthetic checkpoints.
mod synth;

// `verify`: identical variants pass, broken ones are caught.
mod verify;

// `verify` judges metadata, non-finite weights, and says how each verdict was reached.
mod verdicts;

// safetensors-bf16/fp16/int8: layouts read back with the safetensors crate, exact logits.
mod st_variants;

// `pipeline`, `check`, `demo`, and verify against llama.cpp's own GGUFs.
mod pipeline;
// GGUF variants against llama.cpp's files, logits through GGUF, splits, hostile GGUF files.
mod gguf;

// GGUF quant presets and requantized experts, byte for byte with llama-quantize.
mod presets;

// Dense fine-tunes back to MXFP4: safetensors-mxfp4, rounding rules, verify of requantized experts.
mod finetune;

// Fuzz findings replayed, fuzz seeds kept current.
mod fuzz_regressions;

// NaN/Inf weights and NaN scale bytes: named by inspect, refused by convert and pipeline.
mod integrity;

// convert and pipeline killed mid-write; check's unlisted files and corrupt SHA256SUMS.
mod interrupted;

// A full disk (1 MiB tmpfs): refused up front, or named with the bytes when it fills mid-write.
mod full_disk;
// Variant bytes and logits do not depend on the thread count.
mod determinism;
// MLX variants against mlx_lm.convert's outputs; MLX directories read back; fine-tunes to MLX.
mod mlx;

// The traps of packagers, operators and CI authors: outputs onto inputs, --force, split
// pipelines, partial re-runs and merge, Ctrl-C, locks, inputs changed mid-run, names, messages.
mod traps;

// One changed byte of a quantized variant (a code, a scale, a bias) fails verify.
mod tamper;

// `fit MODEL` names the variant of every kind oss-forge writes (MLX, GGUF presets).
mod fit_identify;

// What users read: inspect's MLX storage, plain values in errors, preset cards' type mix.
mod messages;

// The forward passes verify skips (by weights), the floor only outside the gates, the logits cache.
mod levers;
