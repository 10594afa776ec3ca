//! One model on an [`EvalSet`]: the loss and perplexity on the outputs, then an answer
//! generated for every prompt and scored against its reference.

use super::bleu::{corpus_bleu, Bleu};
use super::rouge::{mean_f1, rouge, Rouge};
use super::set::EvalSet;
use super::tokenize::Segmentation;
use crate::data::SftDataset;
use crate::error::Result;
use crate::trainer::validation_loss;
use deltaw_transformer::{generate_text, CausalLm, GenerateOptions, Tokenizer};
use serde::{Deserialize, Serialize};

/// How an evaluation runs.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Decoding: greedy by default; when sampling, example `i` is drawn with seed
    /// `generate.seed + i`, so one example's answer does not depend on the others.
    /// `max_new_tokens` is cut to the room the model's context leaves after the prompt.
    pub generate: GenerateOptions,
    /// How BLEU and ROUGE cut text (resolved against the references when `Auto`).
    pub segmentation: Segmentation,
    /// Samples per forward pass for the loss (the result does not depend on it).
    pub batch_size: usize,
}

/// Exact match, BLEU and ROUGE of a set of answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextScores {
    /// Percent of answers equal to their reference once surrounding whitespace is trimmed.
    pub exact_match: f64,
    /// Corpus BLEU-4, 0..100.
    pub bleu: Bleu,
    /// Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 over the examples, as percentages.
    pub rouge1: f64,
    pub rouge2: f64,
    pub rouge_l: f64,
    /// Each example's ROUGE scores (0..1, as rouge-score gives them).
    #[serde(skip)]
    pub per_example: Vec<Rouge>,
}

/// Scores `predictions` against `references` (same length, same order).
///
/// ```
/// use deltaw_train::evaluation::{score_answers, Segmentation};
/// let s = score_answers(&["Paris.", "4"], &["Paris.", "five"], Segmentation::Words);
/// assert_eq!(s.exact_match, 50.0);
/// assert_eq!(s.rouge1, 50.0); // 1 and 0
/// ```
///
/// # Panics
/// If the two slices differ in length.
pub fn score_answers<P: AsRef<str>, R: AsRef<str>>(
    predictions: &[P],
    references: &[R],
    segmentation: Segmentation,
) -> TextScores {
    let segmentation = segmentation.resolve(references);
    let exact = predictions.iter().zip(references).filter(|(p, r)| p.as_ref().trim() == r.as_ref().trim()).count();
    let per_example: Vec<Rouge> =
        predictions.iter().zip(references).map(|(p, r)| rouge(r.as_ref(), p.as_ref(), segmentation)).collect();
    let [rouge1, rouge2, rouge_l] = mean_f1(&per_example).map(|f| 100.0 * f);
    TextScores {
        exact_match: 100.0 * exact as f64 / predictions.len().max(1) as f64,
        bleu: corpus_bleu(predictions, references, segmentation),
        rouge1,
        rouge2,
        rouge_l,
        per_example,
    }
}

/// What one model did on an evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEval {
    /// Mean cross-entropy per output token (nats), weighted by tokens over the whole set.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Output (labelled) tokens the loss is taken over.
    pub output_tokens: usize,
    /// Examples longer than the model's context, cut to it for the loss.
    pub cut_to_context: usize,
    /// Prompts that fill the whole context: their answer is empty.
    pub no_room: usize,
    #[serde(flatten)]
    pub scores: TextScores,
    /// The generated answers, trimmed, in the set's order.
    #[serde(skip)]
    pub predictions: Vec<String>,
}

/// Evaluates `model` on `set`; `progress(done, total)` is called after each answer.
///
/// # Errors
/// A tokenizer that cannot decode the model's ids, or a tensor error.
pub fn evaluate_model(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    set: &EvalSet,
    options: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ModelEval> {
    let (loss, output_tokens, cut_to_context) = output_loss(model, set, options.batch_size.max(1))?;
    let mut predictions = Vec::with_capacity(set.len());
    let mut no_room = 0;
    for (i, example) in set.examples.iter().enumerate() {
        let room = model.max_positions().saturating_sub(example.prompt_ids.len());
        let max_new_tokens = options.generate.max_new_tokens.min(room);
        if example.prompt_ids.is_empty() || max_new_tokens == 0 {
            no_room += 1;
            predictions.push(String::new());
        } else {
            let seed = options.generate.seed.wrapping_add(i as u64);
            let generate = GenerateOptions { max_new_tokens, seed, ..options.generate.clone() };
            let answer = generate_text(model, tokenizer, &example.prompt_ids, &generate, &mut |_| {})?;
            predictions.push(answer.text.trim().to_string());
        }
        progress(i + 1, set.len());
    }
    let scores = score_answers(&predictions, &set.references(), options.segmentation);
    Ok(ModelEval { loss, perplexity: loss.exp(), output_tokens, cut_to_context, no_room, scores, predictions })
}

/// Token-weighted mean loss on the labelled tokens, the number of those tokens, and how many
/// samples had to be cut to the model's context (a cut sample keeps its first positions).
fn output_loss(model: &dyn CausalLm, set: &EvalSet, batch_size: usize) -> Result<(f64, usize, usize)> {
    let context = model.max_positions();
    let mut cut = 0;
    let mut data = SftDataset::default();
    for example in &set.examples {
        let mut sample = example.sample.clone();
        cut += sample.truncate(context) as usize;
        if sample.labels.iter().skip(1).any(|&l| l != crate::data::IGNORE_INDEX) {
            data.samples.push(sample);
        }
    }
    let tokens = crate::trainer::target_count(&data.samples.iter().collect::<Vec<_>>());
    if tokens == 0 {
        return Ok((f64::NAN, 0, cut));
    }
    let loss = validation_loss(model, &data, batch_size, 0)?;
    Ok((loss as f64, tokens, cut))
}
