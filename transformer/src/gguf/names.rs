//! llama.cpp's tensor names and transformers' keys, both ways, from one table per family.

use super::config::GgufArch;

/// Per layer: llama.cpp's part (`blk.N.<part>.weight`) and transformers' module
/// (`model.layers.N.<module>.weight`).
const LLAMA_LAYER: [(&str, &str); 11] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];
const LLAMA_GLOBAL: [(&str, &str); 3] =
    [("token_embd", "model.embed_tokens"), ("output_norm", "model.norm"), ("output", "lm_head")];
/// GPT-2 (`h.N.<module>`, without `GPT2LMHeadModel`'s `transformer.` prefix).
const GPT2_LAYER: [(&str, &str); 6] = [
    ("attn_norm", "ln_1"),
    ("attn_qkv", "attn.c_attn"),
    ("attn_output", "attn.c_proj"),
    ("ffn_norm", "ln_2"),
    ("ffn_up", "mlp.c_fc"),
    ("ffn_down", "mlp.c_proj"),
];
const GPT2_GLOBAL: [(&str, &str); 3] = [("token_embd", "wte"), ("position_embd", "wpe"), ("output_norm", "ln_f")];

/// Pairs of (llama.cpp name part, transformers module).
type Table = &'static [(&'static str, &'static str)];

fn tables(arch: GgufArch) -> (Table, Table, &'static str) {
    match arch {
        GgufArch::Llama(_) => (&LLAMA_GLOBAL, &LLAMA_LAYER, "model.layers"),
        GgufArch::Gpt2 => (&GPT2_GLOBAL, &GPT2_LAYER, "h"),
    }
}

/// transformers' key for llama.cpp's tensor `name`: `None` for a name deltaw does not know,
/// `Some("")` for a tensor to drop (GPT-2's `output.weight`, the converter's copy of the tied
/// embedding).
///
/// ```
/// use deltaw_transformer::gguf::{hf_name, GgufArch};
/// use deltaw_transformer::LlamaFamily;
/// let llama = GgufArch::Llama(LlamaFamily::Llama);
/// assert_eq!(hf_name(llama, "blk.3.ffn_gate.weight").as_deref(), Some("model.layers.3.mlp.gate_proj.weight"));
/// assert_eq!(hf_name(GgufArch::Gpt2, "blk.0.attn_qkv.bias").as_deref(), Some("h.0.attn.c_attn.bias"));
/// assert_eq!(hf_name(llama, "blk.0.ssm_in.weight"), None);
/// ```
pub fn hf_name(arch: GgufArch, name: &str) -> Option<String> {
    let (stem, kind) = name.rsplit_once('.')?; // kind: weight / bias
    let (global, layer, prefix) = tables(arch);
    if arch == GgufArch::Gpt2 && stem == "output" {
        return Some(String::new());
    }
    if let Some((_, hf)) = global.iter().find(|(g, _)| *g == stem) {
        return Some(format!("{hf}.{kind}"));
    }
    let (index, part) = stem.strip_prefix("blk.")?.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let (_, module) = layer.iter().find(|(g, _)| *g == part)?;
    Some(format!("{prefix}.{index}.{module}.{kind}"))
}

/// llama.cpp's name for transformers' key `key` (the inverse of [`hf_name`]), `None` when the
/// key is not one of the family's.
///
/// ```
/// use deltaw_transformer::gguf::{gguf_name, GgufArch};
/// assert_eq!(gguf_name(GgufArch::Gpt2, "h.1.mlp.c_fc.weight").as_deref(), Some("blk.1.ffn_up.weight"));
/// ```
pub fn gguf_name(arch: GgufArch, key: &str) -> Option<String> {
    let (stem, kind) = key.rsplit_once('.')?;
    let (global, layer, prefix) = tables(arch);
    if let Some((g, _)) = global.iter().find(|(_, hf)| *hf == stem) {
        return Some(format!("{g}.{kind}"));
    }
    let (index, module) = stem.strip_prefix(prefix)?.strip_prefix('.')?.split_once('.')?;
    let index: usize = index.parse().ok()?;
    let (part, _) = layer.iter().find(|(_, hf)| *hf == module)?;
    Some(format!("blk.{index}.{part}.{kind}"))
}
