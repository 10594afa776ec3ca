//! The byte codec as a Hugging Face `tokenizer.json`, so a model pretrained on bytes is a
//! complete model folder: `deltaw generate`, `deltaw sft` and transformers' `AutoTokenizer`
//! all read the same ids [`ByteCodec`] trained it on.
//!
//! The file is a byte-level BPE with no merges. Its byte-level pre-tokenizer spells every byte
//! `b` as one printable character `σ(b)` (GPT-2's table: the printable Latin-1 bytes `!`..`~`,
//! `¡`..`¬`, `®`..`ÿ` stand for themselves, and the other 68 bytes, in increasing order, take
//! the code points 256, 257, ...), and the vocabulary maps `σ(b)` to id `b`; with no merges,
//! every byte stays its own token, so the ids are the UTF-8 bytes. `<|endoftext|>` is the
//! special token 256. The one difference from [`ByteCodec::encode`]: text containing the literal
//! string `<|endoftext|>` becomes id 256 there, as in GPT-2's own tokenizer.

use super::codec::ByteCodec;
use crate::error::Result;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The character GPT-2's byte-level table writes for `byte`.
fn byte_char(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        return char::from(byte);
    }
    let rank = (0..byte).filter(|&b| !printable(b)).count() as u32; // among the non-printable bytes
    char::from_u32(256 + rank).expect("256..324 are valid code points")
}

impl ByteCodec {
    /// The `tokenizer.json` that encodes text to the same ids as this codec (see the module
    /// docs for the one exception).
    pub fn tokenizer_json() -> Value {
        let vocab: Map<String, Value> = (0..=255u8).map(|b| (byte_char(b).to_string(), json!(b))).collect();
        let byte_level =
            json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false });
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [{
                "id": ByteCodec::EOS_ID, "content": "<|endoftext|>", "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true
            }],
            "normalizer": null,
            "pre_tokenizer": byte_level,
            "post_processor": byte_level,
            "decoder": byte_level,
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": []
            }
        })
    }

    /// Writes `tokenizer.json` and a `generation_config.json` naming EOS (256) into the model
    /// folder `dir`, atomically each.
    ///
    /// # Errors
    /// A file that cannot be written.
    pub fn save_files(dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let tokenizer = serde_json::to_string(&Self::tokenizer_json()).expect("JSON serialises") + "\n";
        deltaw_tensor::safetensors::write_atomic(&dir.join("tokenizer.json"), tokenizer.as_bytes())?;
        let eos = Self::EOS_ID;
        let generation = json!({ "bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos });
        let generation = serde_json::to_string_pretty(&generation).expect("JSON serialises") + "\n";
        deltaw_tensor::safetensors::write_atomic(&dir.join("generation_config.json"), generation.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::codec::{HfCodec, TextCodec};

    #[test]
    fn the_byte_table_is_a_bijection_onto_printable_characters() {
        let chars: std::collections::BTreeSet<char> = (0..=255u8).map(byte_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!((byte_char(b'a'), byte_char(b' '), byte_char(b'\n')), ('a', 'Ġ', 'Ċ')); // GPT-2's spellings
        assert!(chars.iter().all(|c| !c.is_whitespace() && !c.is_control()));
    }

    #[test]
    fn the_tokenizer_json_gives_the_byte_codec_s_ids() {
        let dir = std::env::temp_dir().join(format!("deltaw-byte-tokenizer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ByteCodec::save_files(&dir).unwrap();
        let hf = HfCodec::from_dir(&dir).unwrap();
        assert_eq!(hf.eos_id, ByteCodec::EOS_ID);
        for text in ["upper abcd=", "  two  spaces\nand\ttabs\r\n", "é ü 日本 🦀", "\u{0}\u{7f}", ""] {
            let ids = ByteCodec.encode(text).unwrap();
            assert_eq!(hf.encode(text).unwrap(), ids, "{text:?}");
            assert_eq!(hf.decode(&ids).unwrap(), text);
        }
        assert_eq!(hf.encode("a<|endoftext|>").unwrap(), [97, ByteCodec::EOS_ID]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
