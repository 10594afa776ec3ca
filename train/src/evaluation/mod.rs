//! Evaluation on held-out `<input, output>` pairs: how well a model answers, not only how low
//! its loss is. For each model:
//!
//! - **perplexity** on the outputs: `exp` of the mean cross-entropy over the tokens `sft`
//!   trains on (the answers and their end-of-turn), weighted by tokens over the whole set;
//! - an **answer** generated for each prompt (greedy, or seeded sampling), through the model's
//!   chat template when it has one ([`EvalSet`] builds prompts as `sft` builds samples);
//! - **exact match**, corpus **BLEU-4** as sacrebleu computes it by default (`13a` tokenizer,
//!   brevity penalty, exp smoothing), and **ROUGE-1/2/L** F1 as rouge-score computes them,
//!   averaged over the examples.
//!
//! Chinese has no spaces between words: with [`Segmentation::Chinese`] (chosen automatically
//! when a reference holds a Han character) BLEU counts characters through sacrebleu's `zh`
//! tokenizer and ROUGE counts each Han character as a token. No word segmenter is used.
//! `tests/fixtures/text_metrics.py` checks all of this against sacrebleu and rouge-score.
//!
//! ```text
//! file ─EvalSet::load─► EvalSet ─evaluate_model (per model)─► ModelEval ─Report::new─► table / JSON / markdown
//! ```

mod bleu;
mod report;
mod rouge;
mod run;
mod set;
mod tokenize;

pub use bleu::{corpus_bleu, Bleu, MAX_ORDER};
pub use report::{most_different, ExampleRow, NamedEval, Report};
pub use rouge::{mean_f1, rouge, Rouge, RougeScore};
pub use run::{evaluate_model, score_answers, EvalOptions, ModelEval, TextScores};
pub use set::{Encoder, EvalExample, EvalSet};
pub use tokenize::{is_han, tokenize_13a, tokenize_zh, Segmentation};
