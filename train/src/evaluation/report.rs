//! The evaluation report: the models' metrics side by side, the examples where two models
//! differ most, as a terminal table, JSON (`report.json`) and markdown (`report.md`).

use super::run::ModelEval;
use super::set::EvalSet;
use super::tokenize::Segmentation;
use serde::Serialize;
use std::fmt::Write;

/// One evaluated model and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct NamedEval {
    /// `base`, `tuned`, or the folder's name.
    pub name: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    pub metrics: ModelEval,
}

/// One example in the report: its reference and each model's answer and ROUGE-L F1.
#[derive(Clone, Debug, Serialize)]
pub struct ExampleRow {
    /// Position in the evaluation set (0-based).
    pub index: usize,
    pub reference: String,
    pub predictions: Vec<String>,
    pub rouge_l: Vec<f64>,
}

/// Everything an evaluation found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub data: String,
    pub examples_count: usize,
    /// How BLEU and ROUGE cut the text (resolved, never `auto`).
    pub segmentation: Segmentation,
    /// The decoding settings, as the caller describes them.
    pub decoding: serde_json::Value,
    pub models: Vec<NamedEval>,
    /// Indices of the examples where the first two models differ most, most first.
    pub most_different: Vec<usize>,
    /// Every example with every model's answer.
    pub examples: Vec<ExampleRow>,
}

impl Report {
    /// Builds the report of `models` (one or more, evaluated on `set`), keeping the `show`
    /// examples where the first two differ most.
    pub fn new(
        data: String,
        set: &EvalSet,
        segmentation: Segmentation,
        decoding: serde_json::Value,
        models: Vec<NamedEval>,
        show: usize,
    ) -> Report {
        let most_different = match models.as_slice() {
            [a, b, ..] => most_different(&a.metrics, &b.metrics, show),
            _ => Vec::new(),
        };
        let examples = (0..set.len())
            .map(|i| ExampleRow {
                index: i,
                reference: set.examples[i].reference.clone(),
                predictions: models.iter().map(|m| m.metrics.predictions[i].clone()).collect(),
                rouge_l: models.iter().map(|m| m.metrics.scores.per_example[i].rouge_l.f1).collect(),
            })
            .collect();
        Report { data, examples_count: set.len(), segmentation, decoding, models, most_different, examples }
    }

    /// The metric rows: name and one value per model, formatted.
    fn rows(&self) -> Vec<(&'static str, Vec<String>)> {
        let column = |f: &dyn Fn(&ModelEval) -> String| self.models.iter().map(|m| f(&m.metrics)).collect();
        vec![
            ("loss (output tokens)", column(&|m| format!("{:.4}", m.loss))),
            ("perplexity", column(&|m| format!("{:.3}", m.perplexity))),
            ("exact match %", column(&|m| format!("{:.2}", m.scores.exact_match))),
            ("BLEU-4", column(&|m| format!("{:.2}", m.scores.bleu.score))),
            ("ROUGE-1 F1 %", column(&|m| format!("{:.2}", m.scores.rouge1))),
            ("ROUGE-2 F1 %", column(&|m| format!("{:.2}", m.scores.rouge2))),
            ("ROUGE-L F1 %", column(&|m| format!("{:.2}", m.scores.rouge_l))),
        ]
    }

    /// The side-by-side table and the most different examples, for a terminal.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let _ = writeln!(s, "{:<22}{}", "metric", names.iter().map(|n| format!("{n:>12}")).collect::<String>());
        for (name, values) in self.rows() {
            let _ = writeln!(s, "{name:<22}{}", values.iter().map(|v| format!("{v:>12}")).collect::<String>());
        }
        let _ = writeln!(s, "({} examples; {})", self.examples_count, segmentation_note(self.segmentation));
        for &i in &self.most_different {
            let row = &self.examples[i];
            let _ = writeln!(s, "\nexample {i}: reference: {}", one_line(&row.reference));
            for (name, (answer, r)) in names.iter().zip(row.predictions.iter().zip(&row.rouge_l)) {
                let _ = writeln!(s, "  {name} (ROUGE-L {:.2}): {}", r, one_line(answer));
            }
        }
        s
    }

    /// The report as markdown: settings, the metrics table, the most different examples.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# Evaluation\n\n");
        let _ = writeln!(s, "- data: `{}` ({} examples)", self.data, self.examples_count);
        let _ = writeln!(s, "- BLEU / ROUGE text units: {}", segmentation_note(self.segmentation));
        let _ = writeln!(s, "- decoding: `{}`", self.decoding);
        for m in &self.models {
            let adapter = m.adapter.as_ref().map(|a| format!(" + adapter `{a}`")).unwrap_or_default();
            let _ = writeln!(s, "- {}: `{}`{adapter}", m.name, m.model);
        }
        let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let _ = write!(s, "\n| metric | {} |\n|---|{}\n", names.join(" | "), "---:|".repeat(names.len()));
        for (name, values) in self.rows() {
            let _ = writeln!(s, "| {name} | {} |", values.join(" | "));
        }
        if !self.most_different.is_empty() {
            s.push_str("\n## Where the models differ most\n");
        }
        for &i in &self.most_different {
            let row = &self.examples[i];
            let _ = write!(s, "\n### Example {i}\n\nReference: {}\n\n", one_line(&row.reference));
            for (name, (answer, r)) in names.iter().zip(row.predictions.iter().zip(&row.rouge_l)) {
                let _ = writeln!(s, "- **{name}** (ROUGE-L {r:.2}): {}", one_line(answer));
            }
        }
        s
    }
}

fn segmentation_note(segmentation: Segmentation) -> &'static str {
    match segmentation {
        Segmentation::Chinese => "Chinese characters (sacrebleu `zh` tokenizer; ROUGE over Han characters)",
        _ => "words (sacrebleu `13a` tokenizer; rouge-score tokenizer, no stemming)",
    }
}

/// `text` on one line, at most 160 characters.
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// The indices of up to `k` examples whose answers differ between `a` and `b`, largest
/// |ΔROUGE-L F1| first (ties: the earlier example first). Identical answers are left out.
///
/// # Panics
/// If the two evaluations are of sets of different sizes.
pub fn most_different(a: &ModelEval, b: &ModelEval, k: usize) -> Vec<usize> {
    assert_eq!(a.predictions.len(), b.predictions.len(), "most_different: evaluations of different sets");
    let mut differing: Vec<(f64, usize)> = (0..a.predictions.len())
        .filter(|&i| a.predictions[i] != b.predictions[i])
        .map(|i| ((a.scores.per_example[i].rouge_l.f1 - b.scores.per_example[i].rouge_l.f1).abs(), i))
        .collect();
    differing.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    differing.into_iter().take(k).map(|(_, i)| i).collect()
}
