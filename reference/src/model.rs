//! The gpt-oss forward pass, top to bottom (openai/gpt-oss `gpt_oss/torch/model.py`; transformers
//! `src/transformers/models/gpt_oss/modeling_gpt_oss.py`).
//!
//! ```text
//! x = Emb[token]
//! for each layer l:
//!     x += O( Attention( RoPE(Q a), RoPE(K a), V a, sinks, window_l ) )   a = RMSNorm(x; g_attn)
//!     x += Σ_{e ∈ top-k(router m)} w_e · Down_e( SwiGLU(Gate_e m, Up_e m) )  m = RMSNorm(x; g_mlp)
//! logits = LmHead RMSNorm(x; g_final)
//! ```
//!
//! Everything is f32. Weights stay in their own storage (memory-mapped MXFP4, BF16, GGUF blocks,
//! int8...) and are decoded a tile of rows at a time as the matmuls consume them; each expert is
//! decoded once per batch for all the tokens routed to it. Only the small vectors (norm gains,
//! attention biases, sinks) are decoded up front.

use crate::config::{Config, LayerType};
use crate::linear::matmul;
use crate::ops::{self, AttnShape};
use crate::rope::Rope;
use crate::source::{SourceError, WeightId, WeightSource};
use crate::tensor::MatRef;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Errors of the forward pass.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The source could not provide a weight (the source's error is the
    /// [`source`](std::error::Error::source), not repeated in the message).
    #[error("{weight}")]
    Source {
        /// Which weight.
        weight: WeightId,
        /// The source's error (names the file and tensor).
        source: SourceError,
    },
    /// A weight has the wrong logical shape for the config.
    #[error("{weight}: expected shape [{}, {}], the source has [{}, {}]", expected.0, expected.1, found.0, found.1)]
    Shape {
        /// Which weight.
        weight: WeightId,
        /// Shape the config implies.
        expected: (usize, usize),
        /// Shape the source returned.
        found: (usize, usize),
    },
    /// A token id is not below the vocabulary size.
    #[error("token {token} at position {index} is outside the vocabulary (vocab_size {vocab})")]
    Token {
        /// Position in the prompt.
        index: usize,
        /// The id.
        token: u32,
        /// vocab_size.
        vocab: usize,
    },
    /// The prompt runs past the model's context.
    #[error("{positions} positions exceed max_position_embeddings ({max})")]
    Context {
        /// Positions requested.
        positions: usize,
        /// The limit.
        max: usize,
    },
}

/// One expert's projections; its biases are decoded when the expert runs.
struct Expert<'a> {
    gate: MatRef<'a>,
    gate_bias: MatRef<'a>,
    up: MatRef<'a>,
    up_bias: MatRef<'a>,
    down: MatRef<'a>,
    down_bias: MatRef<'a>,
}

/// One decoder layer's weights. Shapes as in [`WeightId::shape`].
struct Layer<'a> {
    attn_norm: Vec<f32>,      // [H]
    q: MatRef<'a>,            // [q_dim, H]
    q_bias: Vec<f32>,         // [q_dim]
    k: MatRef<'a>,            // [kv_dim, H]
    k_bias: Vec<f32>,         // [kv_dim]
    v: MatRef<'a>,            // [kv_dim, H]
    v_bias: Vec<f32>,         // [kv_dim]
    o: MatRef<'a>,            // [H, q_dim]
    o_bias: Vec<f32>,         // [H]
    sinks: Vec<f32>,          // [heads]
    mlp_norm: Vec<f32>,       // [H]
    router: MatRef<'a>,       // [E, H]
    router_bias: Vec<f32>,    // [E]
    experts: Vec<Expert<'a>>, // E
    window: Option<usize>,
}

/// Keys and values of every position seen so far, per layer (`[positions, kv_dim]`).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A model ready to run: the config, the rope tables and views of every weight.
pub struct Model<'a> {
    cfg: Config,
    source: &'a dyn WeightSource,
    rope: Rope,
    embedding: MatRef<'a>,
    layers: Vec<Layer<'a>>,
    final_norm: Vec<f32>,
    lm_head: MatRef<'a>,
    release: bool,
}

impl<'a> Model<'a> {
    /// Resolves every weight of the model through `source`, checking each shape against the
    /// config. Nothing large is read yet.
    pub fn new(source: &'a dyn WeightSource) -> Result<Model<'a>, ReferenceError> {
        let cfg = source.config().clone();
        let get = |id: WeightId| -> Result<MatRef<'a>, ReferenceError> {
            let m = source
                .weight(id)
                .map_err(|source| ReferenceError::Source { weight: id, source })?;
            let expected = id.shape(&cfg);
            let found = (m.rows(), m.cols());
            if found != expected {
                return Err(ReferenceError::Shape {
                    weight: id,
                    expected,
                    found,
                });
            }
            Ok(m)
        };
        let vec = |id: WeightId| get(id).map(|m| m.to_f32());
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let experts = (0..cfg.num_local_experts)
                .map(|e| {
                    Ok(Expert {
                        gate: get(WeightId::Gate(l, e))?,
                        gate_bias: get(WeightId::GateBias(l, e))?,
                        up: get(WeightId::Up(l, e))?,
                        up_bias: get(WeightId::UpBias(l, e))?,
                        down: get(WeightId::Down(l, e))?,
                        down_bias: get(WeightId::DownBias(l, e))?,
                    })
                })
                .collect::<Result<Vec<_>, ReferenceError>>()?;
            layers.push(Layer {
                attn_norm: vec(WeightId::AttnNorm(l))?,
                q: get(WeightId::QProj(l))?,
                q_bias: vec(WeightId::QBias(l))?,
                k: get(WeightId::KProj(l))?,
                k_bias: vec(WeightId::KBias(l))?,
                v: get(WeightId::VProj(l))?,
                v_bias: vec(WeightId::VBias(l))?,
                o: get(WeightId::OProj(l))?,
                o_bias: vec(WeightId::OBias(l))?,
                sinks: vec(WeightId::Sinks(l))?,
                mlp_norm: vec(WeightId::MlpNorm(l))?,
                router: get(WeightId::Router(l))?,
                router_bias: vec(WeightId::RouterBias(l))?,
                experts,
                window: match cfg.layer_types[l] {
                    LayerType::Sliding => Some(cfg.sliding_window),
                    LayerType::Full => None,
                },
            });
        }
        Ok(Model {
            rope: Rope::new(&cfg),
            embedding: get(WeightId::Embedding)?,
            final_norm: vec(WeightId::FinalNorm)?,
            lm_head: get(WeightId::LmHead)?,
            layers,
            source,
            cfg,
            release: true,
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether to tell the source to drop each weight's pages after use (default: yes, so
    /// resident memory stays near one layer; turn off to keep a small model hot).
    pub fn set_release(&mut self, release: bool) {
        self.release = release;
    }

    /// An empty KV cache for this model.
    pub fn new_cache(&self) -> KvCache {
        let n = self.cfg.num_hidden_layers;
        KvCache {
            k: vec![Vec::new(); n],
            v: vec![Vec::new(); n],
            len: 0,
        }
    }

    /// Logits of every position of `tokens`, run from an empty cache: `[tokens.len(), vocab]`.
    pub fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>, ReferenceError> {
        self.forward(tokens, &mut self.new_cache())
    }

    /// `y = W x + b` for the batch ([`matmul`]), after asking the source to map W's pages in
    /// one call rather than fault by fault.
    fn linear(&self, w: &MatRef<'_>, x: &[f32], n: usize, bias: Option<&[f32]>, y: &mut [f32]) {
        for bytes in w.rows_storage(0, w.rows()) {
            self.source.prefetch(bytes);
        }
        matmul(w, x, n, bias, y);
    }

    fn done(&self, id: WeightId) {
        if self.release {
            self.source.release(id);
        }
    }

    /// Runs `tokens` at positions `cache.len() ..` and returns their logits
    /// (`[tokens.len(), vocab]`); the cache grows by `tokens.len()` positions. One call with a
    /// whole prompt and one call per token give the same logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, ReferenceError> {
        let n = tokens.len();
        let normed = self.hidden(&[tokens], std::slice::from_mut(cache), &mut |_| {})?;
        let mut logits = vec![0f32; n * self.cfg.vocab_size];
        self.linear(&self.lm_head, &normed, n, None, &mut logits);
        self.done(WeightId::LmHead);
        Ok(logits)
    }

    /// Whether `tokens` can run at positions `pos0 ..`: every id below `vocab_size`, and the
    /// last position within `max_position_embeddings` (the errors [`Model::forward`] gives).
    pub fn check(&self, tokens: &[u32], pos0: usize) -> Result<(), ReferenceError> {
        let cfg = &self.cfg;
        for (index, &token) in tokens.iter().enumerate() {
            if token as usize >= cfg.vocab_size {
                return Err(ReferenceError::Token {
                    index,
                    token,
                    vocab: cfg.vocab_size,
                });
            }
        }
        let positions = pos0 + tokens.len();
        if positions > cfg.max_position_embeddings {
            return Err(ReferenceError::Context {
                positions,
                max: cfg.max_position_embeddings,
            });
        }
        Ok(())
    }

    /// The logits of several independent sequences, each run from an empty cache, handed to
    /// `each(k, logits)` in order (`[seqs[k].len(), vocab]`, one sequence's at a time, so no
    /// more than one sequence's logits are ever held here). The buffer is reused for the next
    /// sequence unless `each` takes it (`std::mem::take`).
    ///
    /// The sequences go through the layers together: every matmul sees all their tokens as one
    /// batch, so each weight is mapped, read and decoded once for all of them (with
    /// [`Model::logits`] per sequence, once per sequence: for a model larger than the page
    /// cache, once per sequence from the disk), and attention stays within each sequence.
    /// Every logit is bit-identical to [`Model::logits`] of its sequence alone: each output of
    /// a matmul is one dot product whatever the batch (`crate::linear`), RoPE, the norms and
    /// attention are per token, and a token's experts are summed in expert order.
    /// `layer_done(l)` is called as layer `l` finishes (for progress).
    pub fn logits_each(
        &self,
        seqs: &[&[u32]],
        layer_done: &mut dyn FnMut(usize),
        each: &mut dyn FnMut(usize, &mut Vec<f32>),
    ) -> Result<(), ReferenceError> {
        let mut caches: Vec<KvCache> = seqs.iter().map(|_| self.new_cache()).collect();
        let normed = self.hidden(seqs, &mut caches, layer_done)?;
        let (h, vocab) = (self.cfg.hidden_size, self.cfg.vocab_size);
        let mut start = 0;
        // Reused: a fresh buffer per sequence would be fresh pages for the kernel to fault in
        // and zero (a 200-token prompt's logits are 160 MB).
        let mut logits = Vec::new();
        for (k, s) in seqs.iter().enumerate() {
            let n = s.len();
            logits.clear();
            logits.resize(n * vocab, 0f32);
            let rows = &normed[start * h..(start + n) * h];
            self.linear(&self.lm_head, rows, n, None, &mut logits);
            start += n;
            each(k, &mut logits);
        }
        self.done(WeightId::LmHead);
        Ok(())
    }

    /// Runs each `seqs[k]` at positions `caches[k].len() ..` through every layer (each cache
    /// grows by its sequence's length) and returns the final RMSNorm of every token's hidden
    /// state, the sequences' tokens one after the other (`[Σ len, H]`).
    fn hidden(
        &self,
        seqs: &[&[u32]],
        caches: &mut [KvCache],
        layer_done: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>, ReferenceError> {
        assert_eq!(seqs.len(), caches.len(), "one cache per sequence");
        let cfg = &self.cfg;
        let h = cfg.hidden_size;
        for (tokens, cache) in seqs.iter().zip(caches.iter()) {
            self.check(tokens, cache.len)?;
        }
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let n: usize = lens.iter().sum();

        // Embedding: x_t = Emb[token_t].
        let mut x = vec![0f32; n * h];
        for (t, &token) in seqs.iter().flat_map(|s| s.iter()).enumerate() {
            self.embedding
                .dequant_rows(token as usize, &mut x[t * h..(t + 1) * h]);
        }
        self.done(WeightId::Embedding);

        let mut normed = vec![0f32; n * h];
        // The next layer's weights are mapped on a thread of their own while this one computes
        // (its experts too when the batch routes at least one token per expert on average).
        let all_experts = n * cfg.num_experts_per_tok >= cfg.num_local_experts;
        let computing = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let ahead = Readahead::start(s, self, &computing, all_experts);
            for (l, layer) in self.layers.iter().enumerate() {
                ahead.entering(l);
                ops::rmsnorm(&x, &layer.attn_norm, cfg.rms_norm_eps, &mut normed);
                let attn = self.attention_block(l, layer, &normed, &lens, caches);
                for (a, b) in x.iter_mut().zip(&attn) {
                    *a += b;
                }
                ops::rmsnorm(&x, &layer.mlp_norm, cfg.rms_norm_eps, &mut normed);
                let mlp = self.moe_block(l, layer, &normed);
                for (a, b) in x.iter_mut().zip(&mlp) {
                    *a += b;
                }
                layer_done(l);
            }
            ahead.entering(self.layers.len());
        });
        for (cache, len) in caches.iter_mut().zip(&lens) {
            cache.len += len;
        }
        ops::rmsnorm(&x, &self.final_norm, cfg.rms_norm_eps, &mut normed);
        Ok(normed)
    }

    /// The matrices of layer `l` (none past the last layer), its experts too if `experts`.
    fn layer_matrices(&self, l: usize, experts: bool) -> Vec<MatRef<'a>> {
        let Some(layer) = self.layers.get(l) else {
            return Vec::new();
        };
        let mut m = vec![layer.q, layer.k, layer.v, layer.o, layer.router];
        if experts {
            for e in &layer.experts {
                m.extend([e.gate, e.up, e.down]);
            }
        }
        m
    }

    /// `O(attention(RoPE(Q a), RoPE(K a), V a)) + b_o` for the new tokens of every sequence
    /// (`a` holds `lens[k]` tokens of sequence `k`, one sequence after the other); appends each
    /// sequence's K and V to its cache. The projections run over all tokens at once, attention
    /// within each sequence.
    fn attention_block(
        &self,
        l: usize,
        layer: &Layer<'_>,
        a: &[f32],
        lens: &[usize],
        caches: &mut [KvCache],
    ) -> Vec<f32> {
        let cfg = &self.cfg;
        let n = a.len() / cfg.hidden_size;
        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
        let mut q = vec![0f32; n * qd];
        let mut k = vec![0f32; n * kvd];
        let mut v = vec![0f32; n * kvd];
        self.linear(&layer.q, a, n, Some(&layer.q_bias), &mut q);
        self.linear(&layer.k, a, n, Some(&layer.k_bias), &mut k);
        self.linear(&layer.v, a, n, Some(&layer.v_bias), &mut v);
        let mut attn = vec![0f32; n * qd];
        let shape = AttnShape {
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
            window: layer.window,
        };
        let mut t0 = 0;
        for (&len, cache) in lens.iter().zip(caches.iter_mut()) {
            let (q, k, v) = (
                &mut q[t0 * qd..(t0 + len) * qd],
                &mut k[t0 * kvd..(t0 + len) * kvd],
                &v[t0 * kvd..(t0 + len) * kvd],
            );
            let pos0 = cache.len;
            self.rope.apply(q, cfg.num_attention_heads, pos0);
            self.rope.apply(k, cfg.num_key_value_heads, pos0);
            cache.k[l].extend_from_slice(k);
            cache.v[l].extend_from_slice(v);
            ops::attention(
                q,
                &cache.k[l],
                &cache.v[l],
                &layer.sinks,
                pos0,
                shape,
                &mut attn[t0 * qd..(t0 + len) * qd],
            );
            t0 += len;
        }
        let mut out = vec![0f32; n * cfg.hidden_size];
        self.linear(&layer.o, &attn, n, Some(&layer.o_bias), &mut out);
        for id in [
            WeightId::QProj(l),
            WeightId::KProj(l),
            WeightId::VProj(l),
            WeightId::OProj(l),
        ] {
            self.done(id);
        }
        out
    }

    /// The mixture of experts for the new tokens: route each token to its top-k experts, run
    /// each used expert once over all of its tokens, and sum `w_e · y_e` per token in expert
    /// order (transformers' `index_add_` over the hit experts, ascending).
    fn moe_block(&self, l: usize, layer: &Layer<'_>, m: &[f32]) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, i, e_count) = (
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.num_local_experts,
        );
        let n = m.len() / h;
        let mut router_logits = vec![0f32; n * e_count];
        self.linear(
            &layer.router,
            m,
            n,
            Some(&layer.router_bias),
            &mut router_logits,
        );
        self.done(WeightId::Router(l));

        // Per expert: the tokens routed to it and their routing weights.
        let mut assigned: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e_count];
        for t in 0..n {
            for (e, w) in ops::route(
                &router_logits[t * e_count..(t + 1) * e_count],
                cfg.num_experts_per_tok,
            ) {
                assigned[e].push((t, w));
            }
        }

        let mut out = vec![0f32; n * h];
        for (e, tokens) in assigned.iter().enumerate() {
            // Unused experts are released too: the read-ahead may have mapped them.
            let done = || {
                for id in [
                    WeightId::Gate(l, e),
                    WeightId::Up(l, e),
                    WeightId::Down(l, e),
                ] {
                    self.done(id);
                }
            };
            if tokens.is_empty() {
                done();
                continue;
            }
            let expert = &layer.experts[e];
            let k = tokens.len();
            let mut xs = vec![0f32; k * h];
            for (j, &(t, _)) in tokens.iter().enumerate() {
                xs[j * h..(j + 1) * h].copy_from_slice(&m[t * h..(t + 1) * h]);
            }
            let mut gate = vec![0f32; k * i];
            let mut up = vec![0f32; k * i];
            self.linear(
                &expert.gate,
                &xs,
                k,
                Some(&expert.gate_bias.to_f32()),
                &mut gate,
            );
            self.linear(&expert.up, &xs, k, Some(&expert.up_bias.to_f32()), &mut up);
            let mut act = vec![0f32; k * i];
            ops::swiglu(&gate, &up, cfg.swiglu_limit, cfg.swiglu_alpha, &mut act);
            let mut y = vec![0f32; k * h];
            self.linear(
                &expert.down,
                &act,
                k,
                Some(&expert.down_bias.to_f32()),
                &mut y,
            );
            for (j, &(t, w)) in tokens.iter().enumerate() {
                for (o, &v) in out[t * h..(t + 1) * h]
                    .iter_mut()
                    .zip(&y[j * h..(j + 1) * h])
                {
                    *o += v * w;
                }
            }
            done();
        }
        out
    }
}

/// Maps the weights of the layer after the one computing ([`WeightSource::prefetch`]) on a
/// thread of its own, which mostly waits for the disk: reading a model that is not in the page
/// cache then overlaps the arithmetic instead of stalling it, at the cost of one more layer
/// resident (the unembedding, 1.2 GB for gpt-oss, is left to its matmul: mapped during the last
/// layer it would add that much to the peak). Only a hint: what it maps late or not at all, the
/// matmul maps itself.
struct Readahead<'s> {
    to_map: mpsc::Sender<usize>,
    computing: &'s AtomicUsize,
}

impl<'s> Readahead<'s> {
    /// Starts the thread. `experts`: map every expert too (a batch that will use most of them).
    fn start<'m: 's, 'a: 's>(
        scope: &'s std::thread::Scope<'s, '_>,
        model: &'m Model<'a>,
        computing: &'s AtomicUsize,
        experts: bool,
    ) -> Readahead<'s> {
        let (to_map, layers) = mpsc::channel::<usize>();
        scope.spawn(move || {
            for l in layers {
                for m in model.layer_matrices(l, experts) {
                    // Once the computation has reached this layer, mapping it is its job (and
                    // mapping what it already released would keep those pages resident).
                    if computing.load(Ordering::Relaxed) >= l {
                        break;
                    }
                    for bytes in m.rows_storage(0, m.rows()) {
                        model.source.prefetch(bytes);
                    }
                }
            }
        });
        Readahead { to_map, computing }
    }

    /// The computation enters layer `l` (or, past the last layer, the unembedding): map layer
    /// `l + 1` meanwhile.
    fn entering(&self, l: usize) {
        self.computing.store(l, Ordering::Relaxed);
        // The thread only ends when this sender is dropped, so the send cannot fail.
        let _ = self.to_map.send(l + 1);
    }
}
