//! The README's "Every command in a minute" block, run line by line as written (from the
//! repository root, its `/tmp/dw` folder swapped for a fresh temporary one), so the quickstart
//! a newcomer copies cannot drift from what the binary accepts.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const HEADING: &str = "## Every command in a minute";
const SCRATCH: &str = "/tmp/dw";

/// The lines of the first ```sh block after `HEADING`.
fn quickstart(readme: &str) -> Vec<&str> {
    let section = &readme[readme.find(HEADING).expect("the README has the quickstart heading")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    block[..block.find("```").expect("the block ends")].lines().collect()
}

/// Shell words of `line` without its trailing comment: blanks split, double quotes group.
fn words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => (quoted, started) = (!quoted, true),
            '#' if !quoted && !started => break,
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => (word, started) = (word + &c.to_string(), true),
        }
    }
    assert!(!quoted, "unbalanced quotes in {line:?}");
    if started {
        words.push(word);
    }
    words
}

#[test]
fn words_split_like_a_shell() {
    assert_eq!(words(r#"deltaw embed "a b" c  # note"#), ["deltaw", "embed", "a b", "c"]);
    assert_eq!(words("x -o /tmp/dw/a.png"), ["x", "-o", "/tmp/dw/a.png"]);
}

#[test]
fn every_quickstart_command_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let scratch = std::env::temp_dir().join(format!("deltaw-readme-{}", std::process::id()));
    std::fs::remove_dir_all(&scratch).ok();
    let lines = quickstart(&readme);
    let commands: Vec<Vec<String>> = lines.iter().map(|l| words(l)).filter(|w| !w.is_empty()).collect();
    assert!(commands.len() >= 10, "the quickstart lost its commands: {lines:?}");
    let mut seen = std::collections::BTreeSet::new();
    for command in &commands {
        assert_eq!(command[0], "deltaw", "a quickstart line that is not a deltaw command: {command:?}");
        seen.insert(command[1].clone());
        let args: Vec<String> = command[1..].iter().map(|a| a.replace(SCRATCH, scratch.to_str().unwrap())).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_deltaw"))
            .args(&args)
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .expect("deltaw runs");
        assert!(
            out.status.success(),
            "README quickstart `{}` failed:\n{}",
            command.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all = [
        "chat",
        "data",
        "demo",
        "embed",
        "eval",
        "generate",
        "info",
        "inspect-data",
        "merge",
        "plot",
        "rag",
        "sft",
        "train",
    ];
    assert_eq!(seen.iter().map(String::as_str).collect::<Vec<_>>(), all, "every command has a quickstart line");
    assert!(Path::new(&scratch.join("lora.png")).is_file());
    std::fs::remove_dir_all(&scratch).ok();
}
