//! Splitting a text into overlapping chunks of whole paragraphs, each with its line range.
//!
//! A paragraph is a maximal run of non-blank lines (a Markdown heading followed by a blank
//! line is a paragraph of its own). Chunks take consecutive paragraphs while their length,
//! counted as the paragraphs' characters plus 2 per paragraph break, stays within
//! `max_chars`; a chunk always takes at least one. The next chunk starts `overlap` paragraphs
//! before the previous one ended, so that a passage cut at a chunk boundary is still whole in
//! one of the two; never at or before the previous chunk's start, so chunking always advances.
//! A single paragraph longer than `max_chars` is first cut at line boundaries (a line longer
//! than `max_chars` stays whole: nothing inside a line is cut).

use serde::{Deserialize, Serialize};

/// How texts are cut; recorded in the index, whose chunks are redone when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// The most characters (Unicode scalar values) a chunk holds, unless one line is longer.
    /// 600 characters are about 150 word pieces, within all-MiniLM-L6-v2's 256-token window.
    pub max_chars: usize,
    /// How many paragraphs at the end of a chunk open the next one as well.
    pub overlap: usize,
    /// Embed each chunk after its document's title (see [`embedding_texts`]), so that a chunk
    /// deep in a file still says what the file is about.
    pub title: bool,
}

impl Default for ChunkOptions {
    fn default() -> ChunkOptions {
        ChunkOptions { max_chars: 600, overlap: 1, title: true }
    }
}

/// One chunk: lines `start_line..=end_line` (1-based, as editors number them) of the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChunk {
    pub start_line: usize,
    pub end_line: usize,
    /// The lines, joined by `\n`, blank lines between paragraphs included.
    pub text: String,
}

/// A run of lines `start..end` (0-based, end exclusive) and its length in characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Paragraph {
    start: usize,
    end: usize,
    chars: usize,
}

/// Cuts `text` into chunks of whole paragraphs (see the module docs). A text with no
/// non-blank line gives no chunk.
///
/// ```
/// use deltaw_rag::{chunk_text, ChunkOptions};
/// let text = "# Title\n\nFirst paragraph,\nover two lines.\n\nSecond one.\n";
/// let chunks = chunk_text(text, &ChunkOptions { max_chars: 50, overlap: 1, title: true });
/// let ranges: Vec<(usize, usize)> = chunks.iter().map(|c| (c.start_line, c.end_line)).collect();
/// assert_eq!(ranges, [(1, 4), (3, 6)]); // the paragraph on lines 3-4 is in both
/// assert_eq!(chunks[1].text, "First paragraph,\nover two lines.\n\nSecond one.");
/// ```
///
/// # Panics
/// If `options.max_chars` is 0.
pub fn chunk_text(text: &str, options: &ChunkOptions) -> Vec<TextChunk> {
    assert!(options.max_chars > 0, "chunk_text: max_chars must be positive");
    let lines: Vec<&str> = text.lines().collect();
    let paragraphs: Vec<Paragraph> =
        paragraphs(&lines).into_iter().flat_map(|p| split_long(p, &lines, options.max_chars)).collect();
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < paragraphs.len() {
        let j = take_paragraphs(&paragraphs[i..], options.max_chars) + i; // paragraphs i..j
        let (start, end) = (paragraphs[i].start, paragraphs[j - 1].end);
        chunks.push(TextChunk { start_line: start + 1, end_line: end, text: lines[start..end].join("\n") });
        if j == paragraphs.len() {
            break;
        }
        i = j.saturating_sub(options.overlap).max(i + 1);
    }
    chunks
}

/// The title of a document: its first non-blank line, Markdown `#` marks removed, when that
/// line is a paragraph of its own (a heading, or a one-line opening paragraph); with its
/// 1-based line number.
///
/// ```
/// use deltaw_rag::chunk::document_title;
/// assert_eq!(document_title("\n# Tensors\n\nA tensor is..."), Some((2, "Tensors".to_string())));
/// assert_eq!(document_title("Plain text that\nruns on."), None);
/// ```
pub fn document_title(text: &str) -> Option<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let first = paragraphs(&lines).into_iter().next()?;
    if first.end - first.start != 1 {
        return None;
    }
    let title = lines[first.start].trim().trim_start_matches('#').trim();
    (!title.is_empty()).then(|| (first.start + 1, title.to_string()))
}

/// What is embedded for each of `chunks` (cut from `text`): the chunk's text, preceded by the
/// document's title and a blank line when `options.title` is set, the document has a title,
/// and the chunk does not already start with it.
pub fn embedding_texts(text: &str, chunks: &[TextChunk], options: &ChunkOptions) -> Vec<String> {
    let title = if options.title { document_title(text) } else { None };
    let with_title = |c: &TextChunk| match &title {
        Some((line, title)) if c.start_line > *line => format!("{title}\n\n{}", c.text),
        _ => c.text.clone(),
    };
    chunks.iter().map(with_title).collect()
}

/// How many of `paragraphs` (at least one) fit in `max_chars`, 2 characters per break.
fn take_paragraphs(paragraphs: &[Paragraph], max_chars: usize) -> usize {
    let mut size = paragraphs[0].chars;
    let mut n = 1;
    while n < paragraphs.len() && size + 2 + paragraphs[n].chars <= max_chars {
        size += 2 + paragraphs[n].chars;
        n += 1;
    }
    n
}

/// The maximal runs of non-blank lines.
fn paragraphs(lines: &[&str]) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, line) in lines.iter().enumerate() {
        match (line.trim().is_empty(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push(paragraph(lines, s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(paragraph(lines, s, lines.len()));
    }
    out
}

/// Lines `start..end` as a paragraph: their characters plus one per line break.
fn paragraph(lines: &[&str], start: usize, end: usize) -> Paragraph {
    let chars = lines[start..end].iter().map(|l| l.chars().count()).sum::<usize>() + (end - start - 1);
    Paragraph { start, end, chars }
}

/// `p` itself when it fits in `max_chars`, else consecutive line windows that each fit (or
/// hold a single line that is longer on its own).
fn split_long(p: Paragraph, lines: &[&str], max_chars: usize) -> Vec<Paragraph> {
    if p.chars <= max_chars {
        return vec![p];
    }
    let mut out = Vec::new();
    let mut start = p.start;
    while start < p.end {
        let mut end = start + 1;
        while end < p.end && paragraph(lines, start, end + 1).chars <= max_chars {
            end += 1;
        }
        out.push(paragraph(lines, start, end));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(chunks: &[TextChunk]) -> Vec<(usize, usize)> {
        chunks.iter().map(|c| (c.start_line, c.end_line)).collect()
    }

    #[test]
    fn paragraphs_are_runs_of_non_blank_lines_with_their_lengths() {
        let lines = ["", "ab", "cde", "  ", "", "f", ""];
        let found = paragraphs(&lines);
        assert_eq!(found, [Paragraph { start: 1, end: 3, chars: 6 }, Paragraph { start: 5, end: 6, chars: 1 }]);
    }

    #[test]
    fn small_text_is_one_chunk_from_first_to_last_non_blank_line() {
        let text = "\n\nalpha\nbeta\n\n\ngamma\n\n";
        let chunks = chunk_text(text, &ChunkOptions::default());
        assert_eq!(ranges(&chunks), [(3, 7)]);
        assert_eq!(chunks[0].text, "alpha\nbeta\n\n\ngamma");
    }

    #[test]
    fn chunks_break_at_paragraphs_and_repeat_the_overlap() {
        // Four 9-character paragraphs on lines 1, 3, 5, 7; 20 chars fit two (9 + 2 + 9).
        let text = "para one.\n\npara two.\n\npara thr.\n\npara fou.";
        let no_overlap = chunk_text(text, &ChunkOptions { max_chars: 20, overlap: 0, title: false });
        assert_eq!(ranges(&no_overlap), [(1, 3), (5, 7)]);
        let overlap = chunk_text(text, &ChunkOptions { max_chars: 20, overlap: 1, title: false });
        assert_eq!(ranges(&overlap), [(1, 3), (3, 5), (5, 7)]);
        assert_eq!(overlap[1].text, "para two.\n\npara thr.");
    }

    #[test]
    fn overlap_never_stalls_when_a_chunk_holds_one_paragraph() {
        let text = "aaaaaaaaaa\n\nbbbbbbbbbb\n\ncccccccccc";
        let chunks = chunk_text(text, &ChunkOptions { max_chars: 10, overlap: 3, title: false });
        assert_eq!(ranges(&chunks), [(1, 1), (3, 3), (5, 5)]);
    }

    #[test]
    fn a_long_paragraph_is_cut_at_lines_and_a_long_line_stays_whole() {
        let text = "1234\n5678\n9abc\n0123456789abcdef\nxy";
        let chunks = chunk_text(text, &ChunkOptions { max_chars: 9, overlap: 0, title: false });
        assert_eq!(ranges(&chunks), [(1, 2), (3, 3), (4, 4), (5, 5)]);
        assert_eq!(chunks[2].text, "0123456789abcdef");
    }

    #[test]
    fn later_chunks_are_embedded_after_the_title() {
        let text = "# Title\n\nfirst para\n\nsecond para";
        let options = ChunkOptions { max_chars: 12, overlap: 0, title: true };
        let chunks = chunk_text(text, &options);
        assert_eq!(ranges(&chunks), [(1, 1), (3, 3), (5, 5)]);
        assert_eq!(
            embedding_texts(text, &chunks, &options),
            ["# Title", "Title\n\nfirst para", "Title\n\nsecond para"]
        );
        let plain = ChunkOptions { title: false, ..options };
        assert_eq!(embedding_texts(text, &chunks, &plain), ["# Title", "first para", "second para"]);
    }

    #[test]
    fn crlf_text_and_empty_text() {
        let chunks = chunk_text("a\r\nb\r\n\r\nc\r\n", &ChunkOptions { max_chars: 3, overlap: 0, title: false });
        assert_eq!(ranges(&chunks), [(1, 2), (4, 4)]);
        assert_eq!(chunks[0].text, "a\nb");
        assert!(chunk_text(" \n\t\n", &ChunkOptions::default()).is_empty());
    }

    #[test]
    fn every_line_of_every_paragraph_lands_in_some_chunk() {
        let text: String =
            (0..40).map(|i| format!("line {i} {}\n{}", "x".repeat(i % 7 * 9), "\n".repeat(i % 3))).collect();
        let lines: Vec<&str> = text.lines().collect();
        for overlap in 0..3 {
            let chunks = chunk_text(&text, &ChunkOptions { max_chars: 50, overlap, title: false });
            for (i, line) in lines.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let n = i + 1;
                assert!(chunks.iter().any(|c| c.start_line <= n && n <= c.end_line), "line {n} {line:?} lost");
            }
            assert!(chunks.windows(2).all(|w| w[0].start_line < w[1].start_line), "chunks advance");
        }
    }
}
