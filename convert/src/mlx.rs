//! The MLX layout: the model directories mlx-lm writes (`mlx_lm.convert`) and loads
//! (`mlx_lm.load`), as mlx-lm 0.32.2 does it for gpt-oss (`mlx_lm/models/gpt_oss.py`:
//! `sanitize`, `quant_predicate`; `mlx_lm/utils.py`: `load_config`, `quantize_model`,
//! `save_model`, `save_config`).
//!
//! Every linear layer is a module stored under its own prefix; the experts of a layer are one
//! stacked module per projection (gate and up split from the release's fused `gate_up`, even
//! and odd rows):
//!
//! | module (layer N) | float | affine, `bits` b, `group` g | mxfp4 |
//! |---|---|---|---|
//! | `model.embed_tokens`, `lm_head` | `.weight [V, H]` | `.weight` U32 `[V, H·b/32]`, `.scales` + `.biases` BF16 `[V, H/g]` | `.weight` U32 `[V, H/8]`, `.scales` U8 `[V, H/32]` |
//! | `model.layers.N.self_attn.{q,k,v,o}_proj`, `model.layers.N.mlp.router` | `.weight [out, in]`, `.bias [out]` | the same parts `[out, ·]`, `.bias` BF16 | the same, `.bias` BF16 |
//! | `model.layers.N.mlp.experts.{gate,up,down}_proj` | `.weight [E, out, in]`, `.bias [E, out]` | `[E, out, ·]` parts, `.bias [E, out]` | `.weight` U32 `[E, out, in/8]` (the release's block bytes), `.scales` U8 `[E, out, in/32]`, `.bias [E, out]` |
//! | norms, sinks | the release's names, float | | |
//!
//! A module is quantized only when its input width is a multiple of the group (mlx-lm's
//! `quantize_model` skips the others), so [`MlxScheme::stored`] falls back to float there.
//!
//! `config.json` carries the per-module map: `quantization` (copied to `quantization_config`)
//! holds the default `{"group_size", "bits", "mode"}` (the experts' scheme) and one entry per
//! module that was quantized when converting. Readers here infer each module's storage from its
//! tensors (dtype and shapes determine bits, group and mode, as mlx-lm's `infer_quant_config`
//! does) and check the map against them.

use crate::names::{Expect, FLOATS, Names, QPart, Role};
use crate::safetensors::{Dtype, TensorInfo};
use quant::{affine, mxfp4};
use reference::{Config, WeightId};
use serde_json::Value;

/// How one module's weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MlxQuant {
    /// Float `.weight` (BF16 as written here; BF16, F16 or F32 read).
    Float,
    /// `mx.quantize(mode="affine")`: `.weight` U32 codes, `.scales` and `.biases` BF16
    /// ([`quant::affine`]).
    Affine {
        /// Bits per code (2, 3, 4, 5, 6 or 8).
        bits: u32,
        /// Inputs per scale and bias (32, 64 or 128).
        group: usize,
    },
    /// `mx.quantize(mode="mxfp4")`: `.weight` U32 holding release-layout MXFP4 blocks, `.scales`
    /// U8 E8M0 bytes, group 32.
    Mxfp4,
}

impl MlxQuant {
    /// Inputs per scale (`None` for float).
    pub fn group(self) -> Option<usize> {
        match self {
            MlxQuant::Float => None,
            MlxQuant::Affine { group, .. } => Some(group),
            MlxQuant::Mxfp4 => Some(mxfp4::BLOCK),
        }
    }

    /// Bits per value of the codes (`None` for float).
    pub fn bits(self) -> Option<u32> {
        match self {
            MlxQuant::Float => None,
            MlxQuant::Affine { bits, .. } => Some(bits),
            MlxQuant::Mxfp4 => Some(4),
        }
    }

    /// `float`, `affine 8-bit group 64`, `mxfp4`.
    pub fn describe(self) -> String {
        match self {
            MlxQuant::Float => "float".into(),
            MlxQuant::Affine { bits, group } => format!("affine {bits}-bit group {group}"),
            MlxQuant::Mxfp4 => "mxfp4".into(),
        }
    }

    /// The `{"group_size", "bits", "mode"}` entry mlx-lm writes for it (`None` for float).
    fn entry(self, with_mode: bool) -> Option<Vec<(String, PyJson)>> {
        let (group, bits, mode) = match self {
            MlxQuant::Float => return None,
            MlxQuant::Affine { bits, group } => (group, bits, "affine"),
            MlxQuant::Mxfp4 => (mxfp4::BLOCK, 4, "mxfp4"),
        };
        let mut e = vec![
            ("group_size".to_string(), PyJson::Leaf(group.into())),
            ("bits".to_string(), PyJson::Leaf(bits.into())),
        ];
        if with_mode {
            e.push(("mode".to_string(), PyJson::Leaf(mode.into())));
        }
        Some(e)
    }
}

/// How each kind of weight of an MLX directory is stored. One scheme per kind: a directory
/// whose layers store the same kind differently (mlx-lm's `mixed_*` recipes) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MlxScheme {
    /// `model.embed_tokens`.
    pub embedding: MlxQuant,
    /// `self_attn.{q,k,v,o}_proj`.
    pub attention: MlxQuant,
    /// `mlp.router`.
    pub router: MlxQuant,
    /// `lm_head`.
    pub lm_head: MlxQuant,
    /// `mlp.experts.{gate,up,down}_proj`.
    pub experts: MlxQuant,
}

/// mlx-lm's default affine group (`quantize_model`'s `defaults_for_mode("affine")`).
pub const MLX_GROUP: usize = 64;

/// The largest shard mlx-lm writes (`MAX_FILE_SIZE_GB = 5`, shifted by 30: 5 GiB).
pub const MLX_MAX_SHARD_BYTES: u64 = 5 << 30;

impl MlxScheme {
    /// Every weight in float (`mlx_lm.convert -d`).
    pub const FLOAT: MlxScheme = MlxScheme {
        embedding: MlxQuant::Float,
        attention: MlxQuant::Float,
        router: MlxQuant::Float,
        lm_head: MlxQuant::Float,
        experts: MlxQuant::Float,
    };

    /// mlx-community's `MXFP4-Q8` / `MXFP4-Q4`: experts MXFP4, the embedding, attention and
    /// lm_head affine `bits`-bit in groups of 64, and the router affine 8-bit in groups of 64
    /// whatever `bits` is (gpt-oss's `quant_predicate`).
    pub const fn mxfp4_affine(bits: u32) -> MlxScheme {
        let a = MlxQuant::Affine {
            bits,
            group: MLX_GROUP,
        };
        MlxScheme {
            embedding: a,
            attention: a,
            router: MlxQuant::Affine {
                bits: 8,
                group: MLX_GROUP,
            },
            lm_head: a,
            experts: MlxQuant::Mxfp4,
        }
    }

    /// The scheme of a matrix (`None` for vectors and biases, which are always float).
    pub fn quant(&self, id: WeightId) -> Option<MlxQuant> {
        use WeightId::*;
        Some(match id {
            Embedding => self.embedding,
            LmHead => self.lm_head,
            QProj(_) | KProj(_) | VProj(_) | OProj(_) => self.attention,
            Router(_) => self.router,
            Gate(..) | Up(..) | Down(..) => self.experts,
            _ => return None,
        })
    }

    /// How `id` is stored: its kind's scheme, or float when its input width is not a multiple
    /// of the group (mlx-lm leaves such modules unquantized). `None` for vectors.
    pub fn stored(&self, id: WeightId, cfg: &Config) -> Option<MlxQuant> {
        let q = self.quant(id)?;
        let cols = id.shape(cfg).1;
        Some(match q.group() {
            Some(g) if cols == 0 || !cols.is_multiple_of(g) => MlxQuant::Float,
            _ => q,
        })
    }

    /// A short description for reports: `experts mxfp4, embedding affine 8-bit group 64, ...`.
    pub fn describe(&self) -> String {
        format!(
            "experts {}, embedding {}, attention {}, router {}, lm_head {}",
            self.experts.describe(),
            self.embedding.describe(),
            self.attention.describe(),
            self.router.describe(),
            self.lm_head.describe()
        )
    }
}

/// The module prefix of a matrix: `model.embed_tokens`, `model.layers.N.self_attn.q_proj`,
/// `model.layers.N.mlp.router`, `lm_head`, `model.layers.N.mlp.experts.gate_proj` (one module
/// for every expert of a projection).
pub fn module(id: WeightId) -> String {
    use WeightId::*;
    match id {
        Gate(l, _) | GateBias(l, _) => format!("model.layers.{l}.mlp.experts.gate_proj"),
        Up(l, _) | UpBias(l, _) => format!("model.layers.{l}.mlp.experts.up_proj"),
        Down(l, _) | DownBias(l, _) => format!("model.layers.{l}.mlp.experts.down_proj"),
        other => Names::new(crate::names::Layout::Release).module(other),
    }
}

/// The stored name of a vector (norm, sink, or a linear layer's own `.bias`).
pub fn vector_name(id: WeightId) -> String {
    use WeightId::*;
    match id {
        GateBias(..) | UpBias(..) | DownBias(..) => format!("{}.bias", module(id)),
        other => Names::new(crate::names::Layout::Release).plain(other),
    }
}

/// `id` with its expert index replaced by `e` (other ids unchanged).
pub fn with_expert(id: WeightId, e: usize) -> WeightId {
    use WeightId::*;
    match id {
        Gate(l, _) => Gate(l, e),
        Up(l, _) => Up(l, e),
        Down(l, _) => Down(l, e),
        GateBias(l, _) => GateBias(l, e),
        UpBias(l, _) => UpBias(l, e),
        DownBias(l, _) => DownBias(l, e),
        other => other,
    }
}

/// Bytes of one row of `cols` inputs for each part of a quantized module:
/// `(codes, scales, biases)` (no biases for MXFP4).
pub fn row_bytes(q: MlxQuant, cols: usize) -> (usize, usize, usize) {
    match q {
        MlxQuant::Float => (0, 0, 0),
        MlxQuant::Affine { bits, group } => (
            affine::packed_bytes(cols, bits),
            cols / group * 2,
            cols / group * 2,
        ),
        MlxQuant::Mxfp4 => (cols / 2, cols / mxfp4::BLOCK, 0),
    }
}

/// Every tensor of an MLX directory of `cfg` stored as `scheme`, in the release's per-layer
/// order (each module's `.weight`, `.scales`, `.biases`, then its `.bias`).
pub fn expected(scheme: MlxScheme, cfg: &Config) -> Vec<Expect> {
    use WeightId::*;
    let e = cfg.num_local_experts;
    let mut out = Vec::new();
    // A matrix (for an expert projection, every expert stacked).
    let matrix = |out: &mut Vec<Expect>, id: WeightId| {
        let (rows, cols) = id.shape(cfg);
        let lead: Vec<usize> = if id.is_expert_matrix() {
            vec![e, rows]
        } else {
            vec![rows]
        };
        let shape = |last: usize| lead.iter().copied().chain([last]).collect::<Vec<_>>();
        let m = module(id);
        let q = scheme.stored(id, cfg).expect("a matrix");
        match q {
            MlxQuant::Float => out.push(Expect {
                name: format!("{m}.weight"),
                dtypes: FLOATS,
                shape: shape(cols),
                role: if id.is_expert_matrix() {
                    Role::Stacked(id)
                } else {
                    Role::Plain(id)
                },
            }),
            _ => {
                let (cb, sb, bb) = row_bytes(q, cols);
                let (scale_dtype, scale_size): (&'static [Dtype], usize) = match q {
                    MlxQuant::Mxfp4 => (&[Dtype::U8], 1),
                    _ => (&[Dtype::BF16], 2),
                };
                out.push(Expect {
                    name: format!("{m}.weight"),
                    dtypes: &[Dtype::U32],
                    shape: shape(cb / 4),
                    role: Role::Quantized(id, QPart::Codes),
                });
                out.push(Expect {
                    name: format!("{m}.scales"),
                    dtypes: scale_dtype,
                    shape: shape(sb / scale_size),
                    role: Role::Quantized(id, QPart::Scales),
                });
                if bb > 0 {
                    out.push(Expect {
                        name: format!("{m}.biases"),
                        dtypes: &[Dtype::BF16],
                        shape: shape(bb / 2),
                        role: Role::Quantized(id, QPart::Biases),
                    });
                }
            }
        }
    };
    let vector = |out: &mut Vec<Expect>, id: WeightId| {
        let (_, n) = id.shape(cfg);
        let (shape, role) = match id {
            GateBias(..) | UpBias(..) | DownBias(..) => (vec![e, n], Role::Stacked(id)),
            _ => (vec![n], Role::Plain(id)),
        };
        out.push(Expect {
            name: vector_name(id),
            dtypes: FLOATS,
            shape,
            role,
        });
    };
    matrix(&mut out, Embedding);
    for l in 0..cfg.num_hidden_layers {
        vector(&mut out, AttnNorm(l));
        for (w, b) in [
            (QProj(l), QBias(l)),
            (KProj(l), KBias(l)),
            (VProj(l), VBias(l)),
            (OProj(l), OBias(l)),
        ] {
            matrix(&mut out, w);
            vector(&mut out, b);
        }
        vector(&mut out, Sinks(l));
        vector(&mut out, MlpNorm(l));
        matrix(&mut out, Router(l));
        vector(&mut out, RouterBias(l));
        for (w, b) in [
            (Gate(l, 0), GateBias(l, 0)),
            (Up(l, 0), UpBias(l, 0)),
            (Down(l, 0), DownBias(l, 0)),
        ] {
            matrix(&mut out, w);
            vector(&mut out, b);
        }
    }
    vector(&mut out, FinalNorm);
    matrix(&mut out, LmHead);
    out
}

/// One representative matrix of each kind, for reading a scheme (layer and expert 0).
fn kinds(cfg: &Config) -> impl Iterator<Item = (&'static str, Vec<WeightId>)> {
    use WeightId::*;
    let layers = 0..cfg.num_hidden_layers;
    [
        ("embedding", vec![Embedding]),
        (
            "attention",
            layers
                .clone()
                .flat_map(|l| [QProj(l), KProj(l), VProj(l), OProj(l)])
                .collect(),
        ),
        ("router", layers.clone().map(Router).collect()),
        ("lm_head", vec![LmHead]),
        (
            "experts",
            layers
                .flat_map(|l| [Gate(l, 0), Up(l, 0), Down(l, 0)])
                .collect(),
        ),
    ]
    .into_iter()
}

/// A tensor only an MLX directory holds (the first layer's stacked gate projection), which
/// tells an MLX directory without a `quantization` map (`mlx_lm.convert -d`) from the others.
pub const MLX_PROBE: &str = "model.layers.0.mlp.experts.gate_proj.weight";

/// The storage of the module `m` (whose logical input width is `cols`) from its tensors, the
/// way mlx-lm's `infer_quant_config` reads it: no `.scales` is float; U8 scales with 4 bits in
/// groups of 32 are MXFP4; BF16 scales (with `.biases`) are affine, bits and group from the
/// shapes.
fn infer<'a>(
    m: &str,
    cols: usize,
    tensor: &impl Fn(&str) -> Option<&'a TensorInfo>,
) -> Result<MlxQuant, String> {
    let w = tensor(&format!("{m}.weight")).ok_or_else(|| format!("`{m}.weight` is missing"))?;
    let Some(s) = tensor(&format!("{m}.scales")) else {
        return Ok(MlxQuant::Float);
    };
    let last = |t: &TensorInfo| t.shape.last().copied().unwrap_or(0);
    let (wl, sl) = (last(w), last(s));
    let bad = || {
        format!(
            "`{m}`: .weight {}{:?} and .scales {}{:?} do not describe a quantization of {cols} inputs",
            w.dtype, w.shape, s.dtype, s.shape
        )
    };
    if w.dtype != Dtype::U32
        || sl == 0
        || !cols.is_multiple_of(sl)
        || !(wl * 32).is_multiple_of(cols)
    {
        return Err(bad());
    }
    let (group, bits) = (cols / sl, (wl * 32 / cols) as u32);
    match s.dtype {
        Dtype::U8 if (bits, group) == (4, mxfp4::BLOCK) => Ok(MlxQuant::Mxfp4),
        Dtype::U8 => Err(format!(
            "`{m}`: {bits}-bit codes with U8 scales per {group} (mlx's mxfp8 or nvfp4) are not read; only mxfp4 (4 bits, group 32) is"
        )),
        Dtype::BF16 => {
            affine::check_params(bits, group).map_err(|e| format!("`{m}`: {e}"))?;
            Ok(MlxQuant::Affine { bits, group })
        }
        other => Err(format!(
            "`{m}`: affine scales in {other} are not read (only BF16, what mlx_lm.convert writes for BF16 models)"
        )),
    }
}

/// The entry of `m` in the config's `quantization` map, as the storage it declares
/// (`Some(None)`: declared unquantized).
fn declared(
    map: &serde_json::Map<String, Value>,
    m: &str,
) -> Result<Option<Option<MlxQuant>>, String> {
    let Some(v) = map.get(m) else {
        return Ok(None);
    };
    match v {
        Value::Bool(false) => Ok(Some(None)),
        Value::Bool(true) => declared_params(map, "the default").map(|q| Some(Some(q))),
        Value::Object(o) => declared_params(o, m).map(|q| Some(Some(q))),
        other => Err(format!("quantization.{m} is {other}, not an object")),
    }
}

fn declared_params(o: &serde_json::Map<String, Value>, what: &str) -> Result<MlxQuant, String> {
    let int = |k: &str| {
        o.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("quantization: {what} has no integer `{k}`"))
    };
    let (group, bits) = (int("group_size")? as usize, int("bits")? as u32);
    match o.get("mode").and_then(Value::as_str).unwrap_or("affine") {
        "affine" => Ok(MlxQuant::Affine { bits, group }),
        "mxfp4" if (bits, group) == (4, mxfp4::BLOCK) => Ok(MlxQuant::Mxfp4),
        mode => Err(format!(
            "quantization: {what} is mode {mode:?} with {bits} bits per {group}: only affine and mxfp4 (4 bits, group 32) are read"
        )),
    }
}

/// Reads the scheme of an MLX directory from its tensors (`tensor(name)` looks a stored tensor
/// up by name) and checks it against the config's `quantization` map where the map names a
/// module. Every module of a kind must be stored alike. Errors say which module.
pub fn read_scheme<'a>(
    config: &Value,
    cfg: &Config,
    tensor: impl Fn(&str) -> Option<&'a TensorInfo>,
) -> Result<MlxScheme, String> {
    let empty = serde_json::Map::new();
    let map = config
        .get("quantization")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut found = [MlxQuant::Float; 5];
    for (k, (kind, ids)) in kinds(cfg).enumerate() {
        let mut first: Option<(String, MlxQuant)> = None;
        for id in ids {
            let m = module(id);
            let cols = id.shape(cfg).1;
            let q = infer(&m, cols, &tensor)?;
            if let Some(d) = declared(map, &m)? {
                let d = d.unwrap_or(MlxQuant::Float);
                if d != q {
                    return Err(format!(
                        "`{m}`: config.json's quantization map says {}, its tensors are {}",
                        d.describe(),
                        q.describe()
                    ));
                }
            }
            match &first {
                None => first = Some((m, q)),
                Some((m0, q0)) if *q0 != q => {
                    return Err(format!(
                        "the {kind} weights are stored two ways (`{m0}` {}, `{m}` {}): oss-forge reads one scheme per kind of weight",
                        q0.describe(),
                        q.describe()
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some((_, q)) = first {
            found[k] = q;
        }
    }
    let [embedding, attention, router, lm_head, experts] = found;
    Ok(MlxScheme {
        embedding,
        attention,
        router,
        lm_head,
        experts,
    })
}

/// The number mlx-lm writes as the index's `metadata.total_parameters` (`get_total_parameters`):
/// every logical weight value of its leaf modules (a quantized module counts its unpacked
/// inputs), norms and biases included, the attention sinks not (they belong to the attention
/// block itself, not to a leaf module).
pub fn total_parameters(cfg: &Config) -> u64 {
    WeightId::all(cfg)
        .iter()
        .filter(|id| !matches!(id, WeightId::Sinks(_)))
        .map(|id| {
            let (r, c) = id.shape(cfg);
            (r * c) as u64
        })
        .sum()
}

/// The `quantization` map mlx-lm writes for a model converted to `scheme` from the release
/// (`None` when nothing is quantized): the default (the experts' scheme, loaded already
/// quantized from the release), then, in model order, one entry per module `quantize_model`
/// quantized: `{"group_size", "bits", "mode"}`, except the router, whose entry comes from
/// gpt-oss's `quant_predicate` and has no `mode`.
pub fn quantization_map(scheme: MlxScheme, cfg: &Config) -> Option<Vec<(String, PyJson)>> {
    use WeightId::*;
    let default = match (scheme.experts, scheme.attention) {
        (MlxQuant::Float, MlxQuant::Float) => return None,
        (MlxQuant::Float, q) => q,
        (q, _) => q,
    };
    let mut map = default.entry(true).expect("quantized");
    let mut add = |id: WeightId| {
        if let Some(e) = scheme
            .stored(id, cfg)
            .and_then(|q| q.entry(!matches!(id, Router(_))))
        {
            map.push((module(id), PyJson::Object(e)));
        }
    };
    add(Embedding);
    for l in 0..cfg.num_hidden_layers {
        for id in [QProj(l), KProj(l), VProj(l), OProj(l), Router(l)] {
            add(id);
        }
    }
    add(LmHead);
    Some(map)
}

/// The `config.json` of an MLX directory: `base` (the source's HF config) as mlx-lm's
/// `load_config` / `save_config` leave it: `eos_token_id` from `generation_config.json` when
/// that file has a non-empty one, no `quantization_config` of the source, no `_name_or_path` or
/// `vision_config`, the [`quantization_map`] under `quantization` and `quantization_config`,
/// top-level keys sorted, 4-space indent, no final newline (Python's `json.dump(..., indent=4)`).
pub fn config_json(
    base: &Value,
    generation_eos: Option<&Value>,
    scheme: MlxScheme,
    cfg: &Config,
) -> String {
    let mut top: std::collections::BTreeMap<String, PyJson> = base
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), PyJson::Leaf(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    for k in [
        "quantization",
        "quantization_config",
        "_name_or_path",
        "vision_config",
    ] {
        top.remove(k);
    }
    if let Some(eos) = generation_eos.filter(|v| python_truthy(v)) {
        top.insert("eos_token_id".into(), PyJson::Leaf(eos.clone()));
    }
    if let Some(map) = quantization_map(scheme, cfg) {
        top.insert("quantization".into(), PyJson::Object(map.clone()));
        top.insert("quantization_config".into(), PyJson::Object(map));
    }
    python_json(&PyJson::Object(top.into_iter().collect()))
}

/// Python's truth value of a JSON value (`if eos_token_id := ...` in mlx-lm).
fn python_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A JSON value whose objects keep a chosen key order (Python dicts keep insertion order;
/// `serde_json::Value` objects are sorted).
#[derive(Clone, Debug, PartialEq)]
pub enum PyJson {
    /// A value; its objects are written with sorted keys.
    Leaf(Value),
    /// An object with keys in this order.
    Object(Vec<(String, PyJson)>),
}

/// `json.dump(v, f, indent=4)` of CPython: 4-space indent, `", "` never (items end the line),
/// `": "` after keys, non-ASCII escaped as `\uXXXX`, floats as `repr` prints them
/// (`1e-05`, `32.0`), no final newline.
pub fn python_json(v: &PyJson) -> String {
    let mut out = String::new();
    write_py(v, 0, &mut out);
    out
}

fn write_py(v: &PyJson, depth: usize, out: &mut String) {
    match v {
        PyJson::Leaf(Value::Object(o)) => {
            let items: Vec<(String, PyJson)> = o
                .iter()
                .map(|(k, v)| (k.clone(), PyJson::Leaf(v.clone())))
                .collect();
            write_py(&PyJson::Object(items), depth, out);
        }
        PyJson::Object(items) => write_items(
            '{',
            '}',
            items.iter().map(|(k, v)| (Some(k.as_str()), v)),
            items.len(),
            depth,
            out,
        ),
        PyJson::Leaf(Value::Array(a)) => {
            let items: Vec<PyJson> = a.iter().cloned().map(PyJson::Leaf).collect();
            write_items(
                '[',
                ']',
                items.iter().map(|v| (None, v)),
                items.len(),
                depth,
                out,
            );
        }
        PyJson::Leaf(Value::Null) => out.push_str("null"),
        PyJson::Leaf(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        PyJson::Leaf(Value::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&python_float(n.as_f64().unwrap_or(f64::NAN))),
        },
        PyJson::Leaf(Value::String(s)) => python_string(s, out),
    }
}

fn write_items<'a>(
    open: char,
    close: char,
    items: impl Iterator<Item = (Option<&'a str>, &'a PyJson)>,
    n: usize,
    depth: usize,
    out: &mut String,
) {
    out.push(open);
    if n == 0 {
        out.push(close);
        return;
    }
    let pad = |d: usize, out: &mut String| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', 4 * d));
    };
    for (i, (k, v)) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        pad(depth + 1, out);
        if let Some(k) = k {
            python_string(k, out);
            out.push_str(": ");
        }
        write_py(v, depth + 1, out);
    }
    pad(depth, out);
    out.push(close);
}

/// A string as Python's `json` module writes it with `ensure_ascii=True`.
fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='\u{7e}' | '\u{7f}' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A float as CPython's `repr` prints it: the shortest digits that read back, in positional
/// notation when the decimal exponent is in `-5 < e < 16` (with `.0` for whole numbers), else
/// `d.ddde±XX`.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `-1.25e-5`.
    let e = format!("{x:e}");
    let (mant, exp) = e.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let (d0, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let es = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{d0}{frac}e{es}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if (point as usize) >= digits.len() {
        format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_as_python_repr() {
        for (x, want) in [
            (1e-5, "1e-05"),
            (32.0, "32.0"),
            (0.0, "0.0"),
            (0.02, "0.02"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (150000.5, "150000.5"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-2.5, "-2.5"),
            (1.702, "1.702"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.25e300, "1.25e+300"),
        ] {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn json_is_written_as_python_writes_it() {
        let v = PyJson::Object(vec![
            ("b".into(), PyJson::Leaf(json!([1, 2.0, "é\n"]))),
            ("a".into(), PyJson::Leaf(json!({"y": [], "x": {}}))),
            ("c".into(), PyJson::Leaf(json!(1e-5))),
        ]);
        assert_eq!(
            python_json(&v),
            "{\n    \"b\": [\n        1,\n        2.0,\n        \"\\u00e9\\n\"\n    ],\n    \"a\": {\n        \"x\": {},\n        \"y\": []\n    },\n    \"c\": 1e-05\n}"
        );
    }

    #[test]
    fn the_router_stays_8_bit_and_narrow_modules_stay_float() {
        let mut cfg = Config::from_hf_json(&crate::synth::preset_config(
            crate::synth::Preset::Tiny,
            None,
        ))
        .unwrap();
        let s = MlxScheme::mxfp4_affine(4);
        assert_eq!(
            s.stored(WeightId::Router(0), &cfg),
            Some(MlxQuant::Affine { bits: 8, group: 64 })
        );
        assert_eq!(s.stored(WeightId::QBias(0), &cfg), None);
        cfg.hidden_size = 96;
        assert_eq!(s.stored(WeightId::QProj(0), &cfg), Some(MlxQuant::Float));
        assert_eq!(s.stored(WeightId::Gate(0, 3), &cfg), Some(MlxQuant::Mxfp4));
        assert_eq!(
            quantization_map(s, &cfg)
                .unwrap()
                .iter()
                .filter(|(k, _)| k.ends_with("q_proj"))
                .count(),
            0,
            "unquantized modules have no entry"
        );
        assert_eq!(quantization_map(MlxScheme::FLOAT, &cfg), None);
    }
}
