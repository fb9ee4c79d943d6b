//! The one door weights come through: [`WeightSource`], keyed by [`WeightId`].
//!
//! A source maps each logical weight of the model to a [`MatRef`] over its own storage: the
//! release's MXFP4 safetensors, OpenAI's `original/` files, a GGUF file, a bf16 or int8
//! safetensors directory. The forward pass, the weight comparison and the converters all go
//! through the same ids, so "the same model" means the same values behind every id.

use crate::config::Config;
use crate::tensor::MatRef;
use std::fmt;

/// Errors a source reports (they name the file and tensor; see `convert`).
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Every weight of a gpt-oss model, with its logical `[rows = out, cols = in]` shape.
/// Vectors are `[1, n]`. Layer and expert indices are 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightId {
    /// Token embedding `[V, H]`.
    Embedding,
    /// Attention RMSNorm gain `[1, H]`.
    AttnNorm(usize),
    /// Query projection `[q_dim, H]`.
    QProj(usize),
    /// Query bias `[1, q_dim]`.
    QBias(usize),
    /// Key projection `[kv_dim, H]`.
    KProj(usize),
    /// Key bias `[1, kv_dim]`.
    KBias(usize),
    /// Value projection `[kv_dim, H]`.
    VProj(usize),
    /// Value bias `[1, kv_dim]`.
    VBias(usize),
    /// Output projection `[H, q_dim]`.
    OProj(usize),
    /// Output bias `[1, H]`.
    OBias(usize),
    /// Attention sinks, one logit per query head `[1, heads]`.
    Sinks(usize),
    /// MLP RMSNorm gain `[1, H]`.
    MlpNorm(usize),
    /// Router `[E, H]`.
    Router(usize),
    /// Router bias `[1, E]`.
    RouterBias(usize),
    /// Expert gate projection `[I, H]` (even rows of the release's gate_up).
    Gate(usize, usize),
    /// Expert gate bias `[1, I]`.
    GateBias(usize, usize),
    /// Expert up projection `[I, H]` (odd rows of gate_up).
    Up(usize, usize),
    /// Expert up bias `[1, I]`.
    UpBias(usize, usize),
    /// Expert down projection `[H, I]`.
    Down(usize, usize),
    /// Expert down bias `[1, H]`.
    DownBias(usize, usize),
    /// Final RMSNorm gain `[1, H]`.
    FinalNorm,
    /// Unembedding `[V, H]`.
    LmHead,
}

impl WeightId {
    /// The logical `(rows, cols)` of this weight under `cfg`.
    pub fn shape(&self, cfg: &Config) -> (usize, usize) {
        let (h, i, e, v) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.num_local_experts,
            cfg.vocab_size,
        );
        let (q, kv) = (cfg.q_dim(), cfg.kv_dim());
        use WeightId::*;
        match *self {
            Embedding | LmHead => (v, h),
            AttnNorm(_) | MlpNorm(_) | FinalNorm | OBias(_) | DownBias(..) => (1, h),
            QProj(_) => (q, h),
            QBias(_) => (1, q),
            KProj(_) | VProj(_) => (kv, h),
            KBias(_) | VBias(_) => (1, kv),
            OProj(_) => (h, q),
            Sinks(_) => (1, cfg.num_attention_heads),
            Router(_) => (e, h),
            RouterBias(_) => (1, e),
            Gate(..) | Up(..) => (i, h),
            GateBias(..) | UpBias(..) => (1, i),
            Down(..) => (h, i),
        }
    }

    /// The layer this weight belongs to, if any.
    pub fn layer(&self) -> Option<usize> {
        use WeightId::*;
        match *self {
            Embedding | FinalNorm | LmHead => None,
            AttnNorm(l) | QProj(l) | QBias(l) | KProj(l) | KBias(l) | VProj(l) | VBias(l)
            | OProj(l) | OBias(l) | Sinks(l) | MlpNorm(l) | Router(l) | RouterBias(l) => Some(l),
            Gate(l, _) | GateBias(l, _) | Up(l, _) | UpBias(l, _) | Down(l, _) | DownBias(l, _) => {
                Some(l)
            }
        }
    }

    /// True for the expert projections (the MXFP4 tensors of the release).
    pub fn is_expert_matrix(&self) -> bool {
        matches!(
            self,
            WeightId::Gate(..) | WeightId::Up(..) | WeightId::Down(..)
        )
    }

    /// Every weight of the model, in forward order.
    pub fn all(cfg: &Config) -> Vec<WeightId> {
        use WeightId::*;
        let mut ids = vec![Embedding];
        for l in 0..cfg.num_hidden_layers {
            ids.extend([
                AttnNorm(l),
                QProj(l),
                QBias(l),
                KProj(l),
                KBias(l),
                VProj(l),
                VBias(l),
                OProj(l),
                OBias(l),
                Sinks(l),
            ]);
            ids.extend([MlpNorm(l), Router(l), RouterBias(l)]);
            for e in 0..cfg.num_local_experts {
                ids.extend([
                    Gate(l, e),
                    GateBias(l, e),
                    Up(l, e),
                    UpBias(l, e),
                    Down(l, e),
                    DownBias(l, e),
                ]);
            }
        }
        ids.extend([FinalNorm, LmHead]);
        ids
    }
}

impl fmt::Display for WeightId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WeightId::*;
        match *self {
            Embedding => write!(f, "embedding"),
            FinalNorm => write!(f, "final_norm"),
            LmHead => write!(f, "lm_head"),
            AttnNorm(l) => write!(f, "layers.{l}.attn_norm"),
            QProj(l) => write!(f, "layers.{l}.q_proj"),
            QBias(l) => write!(f, "layers.{l}.q_proj.bias"),
            KProj(l) => write!(f, "layers.{l}.k_proj"),
            KBias(l) => write!(f, "layers.{l}.k_proj.bias"),
            VProj(l) => write!(f, "layers.{l}.v_proj"),
            VBias(l) => write!(f, "layers.{l}.v_proj.bias"),
            OProj(l) => write!(f, "layers.{l}.o_proj"),
            OBias(l) => write!(f, "layers.{l}.o_proj.bias"),
            Sinks(l) => write!(f, "layers.{l}.sinks"),
            MlpNorm(l) => write!(f, "layers.{l}.mlp_norm"),
            Router(l) => write!(f, "layers.{l}.router"),
            RouterBias(l) => write!(f, "layers.{l}.router.bias"),
            Gate(l, e) => write!(f, "layers.{l}.experts.{e}.gate"),
            GateBias(l, e) => write!(f, "layers.{l}.experts.{e}.gate.bias"),
            Up(l, e) => write!(f, "layers.{l}.experts.{e}.up"),
            UpBias(l, e) => write!(f, "layers.{l}.experts.{e}.up.bias"),
            Down(l, e) => write!(f, "layers.{l}.experts.{e}.down"),
            DownBias(l, e) => write!(f, "layers.{l}.experts.{e}.down.bias"),
        }
    }
}

/// Anything that can hand out the model's weights.
pub trait WeightSource: Sync {
    /// The hyperparameters of the model behind this source.
    fn config(&self) -> &Config;

    /// A view of one weight. Implementations check dtype and shape against the config and name
    /// the file and tensor in any error.
    fn weight(&self, id: WeightId) -> Result<MatRef<'_>, SourceError>;

    /// A hint that the forward pass is done with `id` for now: memory-mapped sources drop those
    /// pages from the process (they stay in the page cache), which bounds resident memory to
    /// about one layer however large the model. The default does nothing.
    fn release(&self, _id: WeightId) {}

    /// A hint that `bytes` (a slice of a view this source handed out) is about to be read
    /// whole: memory-mapped sources map its pages in one call rather than fault by fault. The
    /// default does nothing.
    fn prefetch(&self, _bytes: &[u8]) {}
}
