//! Hugging Face model cards (`README.md` with YAML front matter) for the variants `pipeline`
//! writes. Pure text from data: the same inputs give the same bytes.

use crate::fit;
use crate::pipeline::FileEntry;
use crate::report::{ToleranceJson, VariantJson, gate_words, rules_words, sci};
use convert::Variant;
use reference::Config;

/// What goes on one card.
pub struct CardInput<'a> {
    /// The source model's name (`gpt-oss-20b`, or the directory name).
    pub model_name: &'a str,
    /// `openai/gpt-oss-20b` for the real models, else the source name.
    pub base_model: &'a str,
    /// The variant.
    pub variant: Variant,
    /// Its config.
    pub config: &'a Config,
    /// Files of the variant (paths relative to the pipeline's output directory).
    pub files: &'a [FileEntry],
    /// The variant's verification result, as in the JSON report.
    pub verification: &'a VariantJson,
    /// The gates the run applied, as in the JSON report.
    pub tolerance: &'a ToleranceJson,
    /// Inexact-value notes of the conversion (`count what (max error)`).
    pub inexact: &'a [String],
    /// Warnings of the conversion.
    pub warnings: &'a [String],
}

/// Storage of each weight class, from the variant's row of the storage table
/// (`convert::variant::Storage`): (experts, other 2-D weights, 1-D / biases / router).
pub fn storage(v: Variant) -> (String, String, String) {
    use convert::variant::{Container, Store};
    let row = v.storage();
    let experts = match (row.container, row.experts) {
        (Container::Gguf, Store::Codec(quant::Codec::MXFP4)) => {
            format!("{}, ggml `block_mxfp4`", row.experts.describe())
        }
        (Container::Safetensors(convert::Layout::Release), store) => {
            format!(
                "{}, the release's `*_blocks` / `*_scales`",
                store.describe()
            )
        }
        (Container::Safetensors(_), Store::Codec(c)) => {
            format!("{c}, transformers' fused `gate_up_proj` / `down_proj`")
        }
        (Container::Safetensors(_), Store::Int8 { .. }) => format!(
            "{}, compressed-tensors `pack-quantized`, one module per expert",
            row.experts.describe()
        ),
        (Container::Mlx(_), store) => format!(
            "{}, MLX `mlp.experts.{{gate,up,down}}_proj` `[E, out, in]`",
            store.describe()
        ),
        (_, store) => store.describe(),
    };
    let dense = if row.embedding == row.dense {
        row.dense.describe()
    } else {
        format!(
            "{} (embedding: {})",
            row.dense.describe(),
            row.embedding.describe()
        )
    };
    let vectors = if row.router == Store::Codec(row.vectors) {
        row.vectors.name().to_string()
    } else {
        format!("{} (router: {})", row.vectors, row.router.describe())
    };
    (experts, dense, vectors)
}

/// For a GGUF preset, the storage of each weight class as the file holds it (the types its
/// plan gives every tensor, llama-quantize's rules and fallbacks included: a preset's nominal
/// type may hold no tensor at all), in the same three classes as [`storage`]. `None` for the
/// other variants. Whether the source's experts are MXFP4 (a preset keeps them) is read from
/// the verification's expert tensors.
pub fn preset_storage(c: &CardInput<'_>) -> Option<(String, String, String)> {
    use std::collections::BTreeMap;
    let row = c.variant.storage();
    let preset = row.preset?;
    let mxfp4 = c
        .verification
        .weights
        .per_tensor
        .iter()
        .find(|t| t.name.contains(".experts.") && !t.name.ends_with(".bias"))
        .is_none_or(|t| t.original == "mxfp4");
    let order = convert::names::sorted_release_names(c.config);
    let plan = convert::variant::gguf::plan_tensors(&row, c.config, &order, mxfp4, false).ok()?;
    // Per class: type -> tensor kind (`attn_q`, `token_embd`) -> how many.
    let mut classes: [BTreeMap<&str, BTreeMap<String, usize>>; 3] = Default::default();
    let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
    for i in &plan.items {
        let name = i.tensor.name.as_str();
        let kind = match name.strip_prefix("blk.") {
            Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
            None => name,
        };
        let kind = kind.strip_suffix(".weight").unwrap_or(kind).to_string();
        let class = if kind.ends_with("_exps") {
            0
        } else if name.ends_with(".weight")
            && (kind.starts_with("attn_") && kind != "attn_norm" && kind != "attn_sinks"
                || kind == "token_embd"
                || kind == "output")
        {
            1
        } else {
            2
        };
        *per_kind.entry(kind.clone()).or_default() += 1;
        *classes[class]
            .entry(i.tensor.ty.name())
            .or_default()
            .entry(kind)
            .or_default() += 1;
    }
    let words = |m: &BTreeMap<&str, BTreeMap<String, usize>>| -> String {
        if m.len() == 1 {
            return m.keys().next().map(|t| t.to_string()).unwrap_or_default();
        }
        m.iter()
            .map(|(ty, kinds)| {
                let list: Vec<String> = kinds
                    .iter()
                    .map(|(k, &n)| match per_kind.get(k) {
                        Some(&all) if all > n => format!("{k} ({n} of {all} layers)"),
                        _ => k.clone(),
                    })
                    .collect();
                format!("{ty}: {}", list.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let rules = format!("llama-quantize's {} rules", preset.name());
    let experts = if classes[0].len() == 1 && classes[0].contains_key("MXFP4") {
        "MXFP4 (E2M1 + E8M0 scale per 32), ggml `block_mxfp4`, kept as the source holds them"
            .to_string()
    } else {
        format!("{} ({rules})", words(&classes[0]))
    };
    Some((
        experts,
        format!("{} ({rules})", words(&classes[1])),
        words(&classes[2]),
    ))
}

/// The Hugging Face `library_name` of a variant.
fn library(v: Variant) -> &'static str {
    match v.storage().container {
        convert::variant::Container::Gguf => "gguf",
        convert::variant::Container::Mlx(_) => "mlx",
        convert::variant::Container::Safetensors(_) => "transformers",
    }
}

/// Who can load a variant, where that is not obvious from its format.
fn loaders(v: Variant) -> Option<&'static str> {
    match v {
        Variant::SafetensorsInt8 => Some(
            "## Who can load this\n\n\
             | runtime | loads it? |\n|---|---|\n\
             | llm-compressor's MoE path (`llmcompressor.modeling.gpt_oss.convert_model_for_quantization_gptoss` on a \
             transformers `GptOssForCausalLM`, then compressed-tensors' decompression) | yes, exactly |\n\
             | stock transformers `from_pretrained` | **no**: the per-expert tensors are reported unexpected and the fused \
             experts missing, and the model runs with **randomly initialized experts**, with only a warning |\n\
             | vLLM, SGLang | **no**: their gpt-oss loaders map only the fused and the MXFP4 expert names and skip the \
             rest without an error |\n\
             | llama.cpp, ollama, LM Studio | no (GGUF only) |\n\n\
             For int8 on a real runtime use `gguf-q8_0` or `gguf-mxfp4-q8_0` (llama.cpp, ollama, LM Studio) or the MLX \
             8-bit variant.\n\n",
        ),
        _ => None,
    }
}

fn tags(v: Variant) -> Vec<&'static str> {
    let mut t = vec!["gpt-oss", "oss-forge", "verified"];
    match library(v) {
        "gguf" => t.push("gguf"),
        lib => t.extend(["safetensors", lib]),
    }
    match v {
        Variant::GgufMxfp4 | Variant::GgufMxfp4F16 | Variant::GgufMxfp4Q8_0 => t.push("mxfp4"),
        Variant::GgufQ8_0 => t.push("q8_0"),
        Variant::SafetensorsInt8 => t.extend(["int8", "compressed-tensors"]),
        Variant::MlxMxfp4Q8 | Variant::MlxMxfp4Q4 => t.push("mxfp4"),
        _ => {}
    }
    t
}

/// A metric in scientific notation, `n/a` when it was not finite.
fn metric(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), sci)
}

/// A fraction as a percentage, `n/a` when it was not finite.
fn percent(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{:.2}%", x * 100.0))
}

/// The card.
pub fn model_card(c: &CardInput<'_>) -> String {
    let v = c.variant;
    let (experts, dense, vectors) = preset_storage(c).unwrap_or_else(|| storage(v));
    let mut s = String::new();
    s.push_str("---\n");
    s.push_str(&format!("base_model: {}\n", c.base_model));
    s.push_str("base_model_relation: quantized\n");
    s.push_str("license: apache-2.0\n");
    s.push_str(&format!("library_name: {}\n", library(v)));
    s.push_str("pipeline_tag: text-generation\n");
    s.push_str("tags:\n");
    for t in tags(v) {
        s.push_str(&format!("- {t}\n"));
    }
    s.push_str("---\n\n");
    s.push_str(&format!("# {} — {}\n\n", c.model_name, v.name()));
    s.push_str(&format!(
        "`{}` converted to **{}** by [oss-forge](https://github.com/oss-forge/oss-forge) {} and verified against the original \
         checkpoint it was made from with a CPU reference forward pass.\n\n",
        c.model_name,
        v.name(),
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str("## Quantization\n\n| weights | storage |\n|---|---|\n");
    s.push_str(&format!("| MoE experts (gate, up, down) | {experts} |\n| attention, embeddings, lm_head | {dense} |\n| norms, biases, sinks, router | {vectors} |\n\n"));
    if c.inexact.is_empty() {
        s.push_str("Every value is stored exactly as in the original.\n\n");
    } else if c.inexact.len() <= 8 {
        s.push_str("Values not stored exactly:\n\n");
        for i in c.inexact {
            s.push_str(&format!("- {i}\n"));
        }
        s.push('\n');
    } else {
        s.push_str(&format!(
            "Values not stored exactly, in {} tensors (every one is listed in the pipeline's `manifest.json`); the first ones:\n\n",
            c.inexact.len()
        ));
        for i in &c.inexact[..5] {
            s.push_str(&format!("- {i}\n"));
        }
        s.push('\n');
    }
    for w in c.warnings {
        s.push_str(&format!("> **Warning:** {w}\n\n"));
    }
    if let Some(who) = loaders(v) {
        s.push_str(who);
    }
    s.push_str("## Verification\n\n");
    let ver = c.verification;
    let m = &ver.metrics;
    let (pass, positions) = (ver.pass, m.positions);
    s.push_str(&format!(
        "Logits of the reference forward pass over {positions} positions (built-in harmony chats and sequences crossing the \
         sliding window), original vs this variant. Result: **{}**{}{}.\n\n",
        if pass { "PASS" } else { "FAIL" },
        match ver.passed_by.as_deref() {
            Some(p) => format!(" (passed by: {p})"),
            None => String::new(),
        },
        if ver.lossless { ", every weight identical to the original after dequantization" } else { "" }
    ));
    if ver.logits_by_weights {
        s.push_str(
            "Its forward pass was not run: the reference forward pass gives bit-identical logits \
             for identical weight values, so this variant's logits are the original's.\n\n",
        );
    }
    s.push_str(&format!(
        "Gates: lossless: every weight identical and max |Δlogit| = 0; {}.",
        rules_words(c.tolerance)
    ));
    match &ver.gate {
        Some(g) if g.source == "format floor" => s.push_str(&format!(
            " This variant was judged by its format floor's gate: {} (the format floor was used{}).",
            gate_words(g.kld_mean, g.top1),
            if ver.format_floor_by_weights {
                "; its weights equal the floor's rounding, so the floor's logits are this variant's"
            } else {
                ""
            }
        )),
        Some(g) => s.push_str(&format!(
            " This variant was judged by the gates as stated: {} (the format floor was not used).",
            gate_words(g.kld_mean, g.top1)
        )),
        None => {}
    }
    s.push_str("\n\n");
    if !ver.requantization.is_empty() {
        s.push_str(
            "Requantized from the original's weights (the metrics below are against that original, not against an \
             MXFP4 release):\n\n",
        );
        for line in &ver.requantization {
            s.push_str(&format!("- {line}\n"));
        }
        s.push('\n');
    }
    if let Some(md) = &ver.metadata {
        s.push_str(&format!(
            "Metadata: {} keys a runtime reads (tokenizer, special tokens, chat template, hyperparameters{}) compared with the original's, {} differences.\n\n",
            md.compared,
            if c.variant.is_gguf() { "" } else { ", config and generation files" },
            md.differences.len()
        ));
    }
    let rows = [
        [
            "max abs Δlogit",
            "NMSE",
            "mean KLD",
            "p99 KLD",
            "max KLD",
            "top-1 agreement",
            "top-5 overlap",
        ]
        .map(String::from),
        [
            metric(m.max_abs),
            metric(m.nmse),
            metric(m.kld_mean),
            metric(m.kld_p99),
            metric(m.kld_max),
            percent(m.top1),
            percent(m.top5_overlap),
        ],
    ];
    s.push_str(&markdown_table(&rows));
    let w = &ver.weights;
    s.push_str(&format!(
        "\nWeight check: {} of {} tensors identical to the original, largest difference {}, {} values outside their storage's error bound, {} NaN/Inf where the original is finite.\n\n",
        w.identical, w.tensors, metric(w.max_abs_error), w.violations, w.nonfinite
    ));
    s.push_str("## Fits on\n\nWeights + F16 KV cache + runtime overhead (see `oss-forge fit`), at 8192 and 32768 tokens of context:\n\n");
    for ctx in [8192usize, 32768] {
        let row = fit::fit_rows(c.config, ctx)
            .into_iter()
            .find(|r| r.variant == v.name());
        if let Some(r) = row {
            s.push_str(&format!(
                "**Context {ctx}:** {} total ({} weights, {} KV cache, {} overhead)\n\n",
                fit::gib(r.total),
                fit::gib(r.weights),
                fit::gib(r.kv_cache),
                fit::gib(r.overhead)
            ));
            s.push_str(&fit::gpu_markdown(c.config, ctx, &[v]));
            s.push('\n');
        }
    }
    s.push_str("## Files\n\n| file | bytes | sha256 |\n|---|---|---|\n");
    let local = |f: &str| {
        f.strip_prefix(&format!("{}/", v.name()))
            .unwrap_or(f)
            .to_string()
    };
    for f in c.files {
        s.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            local(&f.path),
            f.bytes,
            f.sha256
        ));
    }
    s.push_str("\n## Use\n\n");
    if v.is_gguf() {
        let first = c
            .files
            .first()
            .map_or("model.gguf".to_string(), |f| local(&f.path));
        s.push_str(&format!(
            "```sh\nllama-cli -m {first} --jinja -p \"Hello\"\n```\n\n"
        ));
    } else if library(v) == "mlx" {
        s.push_str("```python\nfrom mlx_lm import load, generate\nmodel, tokenizer = load(\"PATH\")\nprint(generate(model, tokenizer, prompt=\"Hello\"))\n```\n\n");
    } else {
        s.push_str("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\nmodel = AutoModelForCausalLM.from_pretrained(\"PATH\", torch_dtype=\"auto\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n```\n\n");
    }
    s.push_str(&format!("Reproduce and re-check:\n\n```sh\noss-forge pipeline {} -o OUT --variants {}\noss-forge check OUT\n```\n", c.model_name, v.name()));
    s
}

/// A Markdown table (header row first).
pub fn markdown_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
        if i == 0 {
            s.push_str(&format!("|{}\n", "---|".repeat(N)));
        }
    }
    s
}

/// The repository's own card (`README.md` at the top of a published directory): what was
/// converted from what, one row per variant with its files, size and verification, and how to
/// check the download. Pure text from the manifest.
pub fn repo_card(m: &crate::pipeline::Manifest) -> String {
    let variants: Vec<Variant> = m
        .variants
        .iter()
        .filter_map(|e| Variant::parse(&e.variant))
        .collect();
    let mut tags = vec!["gpt-oss", "oss-forge", "verified"];
    if variants.iter().any(|v| v.is_gguf()) {
        tags.push("gguf");
    }
    if variants.iter().any(|v| !v.is_gguf()) {
        tags.extend(["safetensors", "transformers"]);
    }
    let mut s = String::from("---\n");
    s.push_str(&format!(
        "base_model: {}\n",
        m.base_model.as_deref().unwrap_or(&m.source.name)
    ));
    s.push_str("base_model_relation: quantized\nlicense: apache-2.0\npipeline_tag: text-generation\ntags:\n");
    for t in tags {
        s.push_str(&format!("- {t}\n"));
    }
    s.push_str("---\n\n");
    let name = &m.source.name;
    let passed = m.variants.iter().filter(|e| e.verification.pass).count();
    let positions = m.prompts.iter().map(|p| p.tokens.len()).sum::<usize>();
    s.push_str(&format!("# {name}: verified variants\n\n"));
    s.push_str(&format!(
        "`{name}` ({} format, {} parameters) converted by [oss-forge](https://github.com/oss-forge/oss-forge) {} into {} variants, \
         each verified against the original with a CPU reference forward pass over {} prompts ({positions} positions). \
         Result: **{}**, {passed} of {} within tolerance.\n\n",
        m.source.format,
        m.source.parameters,
        m.tool.version,
        m.variants.len(),
        m.prompts.len(),
        if m.pass { "PASS" } else { "FAIL" },
        m.variants.len(),
    ));
    let mut rows = vec![
        [
            "variant", "files", "size", "weights", "mean KLD", "top-1", "result",
        ]
        .map(String::from),
    ];
    for e in &m.variants {
        let files: Vec<String> = e
            .files
            .iter()
            .filter(|f| !f.path.ends_with("/README.md"))
            .filter(|f| f.path.ends_with(".gguf") || f.path.ends_with("index.json"))
            .map(|f| format!("`{}`", f.path.rsplit('/').next().unwrap_or(&f.path)))
            .collect();
        let files = if files.len() > 2 {
            vec![format!("{} (+{} more splits)", files[0], files.len() - 1)]
        } else {
            files
        };
        let v = &e.verification;
        let weights = if v.lossless {
            "identical".to_string()
        } else {
            format!("{}/{} identical", v.weights.identical, v.weights.tensors)
        };
        rows.push([
            format!("[`{}`]({}/)", e.variant, e.variant),
            if files.is_empty() {
                "".into()
            } else {
                files.join(", ")
            },
            convert::units::bytes(e.bytes),
            weights,
            metric(v.metrics.kld_mean),
            percent(v.metrics.top1),
            if v.pass { "PASS" } else { "FAIL" }.to_string(),
        ]);
    }
    s.push_str(&markdown_table(&rows));
    s.push_str(
        "\nEach variant's folder has its own card: how every class of weights is stored, every metric, and which GPUs it fits.\n\n",
    );
    s.push_str("## Check the download\n\n```sh\nsha256sum -c SHA256SUMS\n```\n\n");
    s.push_str("`manifest.json` records the source checkpoint's files (with sha256), each variant's settings, files and metrics; `verify.json` is the verification report. `oss-forge check .` re-hashes everything against both.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{GateJson, MetricsJson, WeightsJson};

    fn verification(passed_by: &str, gate: Option<GateJson>) -> VariantJson {
        let m = MetricsJson {
            positions: 564,
            max_abs: Some(8.2),
            nmse: Some(0.1),
            kld_mean: Some(7.16e-2),
            kld_p99: Some(0.5),
            kld_max: Some(1.0),
            top1: Some(0.796),
            top5_overlap: Some(0.8),
            argmax_changed: 115,
            nonfinite: 0,
        };
        VariantJson {
            path: "gguf-q8_0/x.gguf".into(),
            format: "gguf MOSTLY_Q8_0".into(),
            pass: true,
            passed_by: Some(passed_by.into()),
            logits_by_weights: false,
            gate,
            lossless: false,
            failures: vec![],
            metadata: None,
            metrics: m.clone(),
            format_floor: Some(m),
            format_floor_by_weights: false,
            forward_positions: Some(1128),
            per_prompt: vec![],
            weights: WeightsJson {
                tensors: 79,
                identical: 30,
                max_abs_error: Some(0.01),
                violations: 0,
                nonfinite: 0,
                per_tensor: vec![],
            },
            requantization: vec![],
        }
    }

    fn card(v: &VariantJson, t: &ToleranceJson) -> String {
        let cfg = Config::from_hf_json(&convert::synth::preset_config(
            convert::synth::Preset::Tiny,
            None,
        ))
        .unwrap();
        model_card(&CardInput {
            model_name: "tiny",
            base_model: "tiny",
            variant: Variant::GgufQ8_0,
            config: &cfg,
            files: &[],
            verification: v,
            tolerance: t,
            inexact: &[],
            warnings: &[],
        })
    }

    #[test]
    fn cards_state_the_gates_and_whether_the_floor_was_used() {
        let defaults = ToleranceJson::from(crate::Rules::default());
        let floor = GateJson {
            kld_mean: Some(0.1074),
            top1: Some(0.776),
            source: "format floor".into(),
        };
        let c = card(&verification("format floor", Some(floor)), &defaults);
        assert!(
            c.contains("Result: **PASS** (passed by: format floor)"),
            "{c}"
        );
        assert!(
            c.contains(
                "mean KLD ≤ 5.000e-3 and top-1 ≥ 0.9000 (defaults), or within the format floor"
            ),
            "{c}"
        );
        assert!(c.contains("judged by its format floor's gate: mean KLD ≤ 1.074e-1 and top-1 ≥ 0.7760 (the format floor was used)"), "{c}");
        let explicit = ToleranceJson::from(crate::Rules::new(
            crate::Tolerance::parse("kld=0.1,top1=0.7").ok(),
            false,
        ));
        let gate = GateJson {
            kld_mean: Some(0.1),
            top1: Some(0.7),
            source: "tolerance".into(),
        };
        let c = card(&verification("gates", Some(gate)), &explicit);
        assert!(
            c.contains("(--tolerance, applied as given; no format floor)"),
            "{c}"
        );
        assert!(c.contains("(the format floor was not used)"), "{c}");
    }
}
