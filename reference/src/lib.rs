//! The gpt-oss forward pass in f32: the oracle every variant oss-forge writes is judged by.
//!
//! It reads like llama2.c's `run.c`: [`Config`] says what the model is, [`model::Model`] holds a
//! view of every weight, and [`model::Model::forward`] runs embedding → (attention, MoE) × layers
//! → norm → logits top to bottom, one small function per operation in [`ops`] and [`linear`].
//!
//! Weights come through one trait, [`WeightSource`], keyed by [`WeightId`] and handing out
//! [`MatRef`] views (release MXFP4, BF16, F16, F32, ggml MXFP4, Q8_0, int8): the same forward pass
//! runs on the release checkpoint and on every variant, and decodes weights tile by tile as it
//! uses them, so memory stays bounded for gpt-oss-120b.
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | hyperparameters from HF or original `config.json`, strictly validated |
//! | `tensor.rs` | [`MatRef`]: bounds-checked views over every storage encoding |
//! | `source.rs` | [`WeightSource`], [`WeightId`] |
//! | `rope.rs` | YaRN inverse frequencies, half-split rotation |
//! | `decode.rs` | AVX2 row decoders of MXFP4 and Q8_0 beside `quant`'s |
//! | `kernel.rs` | the blocked f32 dot kernels (FMA lanes; AVX2 + FMA when present) beside the plain dot |
//! | `linear.rs` | batched `y = W x + b` (tiled, rayon) beside the naive loop |
//! | `ops.rs` | RMSNorm, attention with sinks and sliding window, router, SwiGLU |
//! | `model.rs` | [`model::Model`]: the forward pass |

pub mod config;
pub mod decode;
pub mod kernel;
pub mod linear;
pub mod model;
pub mod ops;
pub mod rope;
pub mod source;
pub mod tensor;

pub use config::{Config, ConfigError, ConfigNote, LayerType, SHAPE_FIELDS};
pub use model::{KvCache, Model, ReferenceError};
pub use source::{SourceError, WeightId, WeightSource};
pub use tensor::{DenseType, Encoding, LayoutError, MatRef};
