//! The golden-script file format: parsing, rewriting and a small line diff.
//!
//! A script is a sequence of comment lines (`#`), blank lines and command blocks:
//!
//! ```text
//! # What this file proves, in a paragraph.
//!
//! command pos1 pos2 key=value
//! ----
//! expected output line
//! expected output line
//! <blank line or end of file>
//! ```
//!
//! Invariants:
//! 1. Parsing and then rendering a script with its own expected output gives the file back
//!    (up to trailing blank lines), so a rewrite changes only outputs.
//! 2. Rendered output is never empty and never contains a blank line (the harness prints
//!    `ok` for a command that says nothing), so a blank line always ends a block.
//! 3. Lines of an output section that start with `# ` are notes (for example `# BUG: ...`):
//!    they are kept at the top of the section on rewrite and are not compared.

use std::collections::BTreeMap;

/// One item of a script file.
pub enum Item {
    /// A comment or blank line outside any block, kept verbatim.
    Text(String),
    /// A command and its expected output.
    Block(Block),
}

/// A command with its expected output.
pub struct Block {
    /// 1-based line number of the command, for error messages.
    pub line_no: usize,
    /// The command line as written.
    pub command: String,
    /// Note lines (`# ...`) inside the output section.
    pub notes: Vec<String>,
    /// Expected output lines.
    pub expected: Vec<String>,
}

/// A parsed command line: a name, positional arguments and `key=value` arguments.
pub struct Command {
    pub name: String,
    pub positional: Vec<String>,
    keyed: BTreeMap<String, String>,
}

/// Parses a script file.
///
/// # Errors
/// A message naming the line when a command is not followed by `----`.
pub fn parse(text: &str) -> Result<Vec<Item>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            items.push(Item::Text(line.to_string()));
            i += 1;
            continue;
        }
        let line_no = i + 1;
        if lines.get(i + 1).map(|l| l.trim_end()) != Some("----") {
            return Err(format!(
                "line {line_no}: command `{line}` must be followed by a `----` line"
            ));
        }
        i += 2;
        let mut notes = Vec::new();
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            if lines[i].starts_with("# ") || lines[i] == "#" {
                notes.push(lines[i].to_string());
            } else {
                expected.push(lines[i].to_string());
            }
            i += 1;
        }
        // The blank line that ends the block belongs to it.
        i += 1;
        items.push(Item::Block(Block {
            line_no,
            command: line.to_string(),
            notes,
            expected,
        }));
    }
    Ok(items)
}

/// Renders a script back to text, with `outputs[k]` as the output of the `k`-th block.
pub fn render(items: &[Item], outputs: &[Vec<String>]) -> String {
    let mut text = String::new();
    let mut k = 0;
    for item in items {
        match item {
            Item::Text(line) => {
                text.push_str(line);
                text.push('\n');
            }
            Item::Block(block) => {
                text.push_str(&block.command);
                text.push_str("\n----\n");
                for line in block.notes.iter().chain(&outputs[k]) {
                    text.push_str(line);
                    text.push('\n');
                }
                text.push('\n');
                k += 1;
            }
        }
    }
    let trimmed = text.trim_end_matches('\n');
    format!("{trimmed}\n")
}

impl Command {
    /// Splits a command line on whitespace; a token `key=value` is keyed, others positional.
    pub fn parse(line: &str) -> Command {
        let mut tokens = line.split_whitespace();
        let name = tokens.next().unwrap_or_default().to_string();
        let mut positional = Vec::new();
        let mut keyed = BTreeMap::new();
        for token in tokens {
            match token.split_once('=') {
                Some((k, v)) => {
                    keyed.insert(k.to_string(), v.to_string());
                }
                None => positional.push(token.to_string()),
            }
        }
        Command {
            name,
            positional,
            keyed,
        }
    }

    /// Takes the keyed argument `key`, if given.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.keyed.remove(key)
    }

    /// Takes the keyed argument `key` as a number.
    ///
    /// # Errors
    /// When the value is not a number.
    pub fn take_u64(&mut self, key: &str) -> Result<Option<u64>, String> {
        self.take(key)
            .map(|v| v.parse().map_err(|_| format!("{key}={v}: not a number")))
            .transpose()
    }

    /// Takes the keyed argument `key` as `true` or `false`.
    ///
    /// # Errors
    /// When the value is neither.
    pub fn take_bool(&mut self, key: &str) -> Result<Option<bool>, String> {
        self.take(key)
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("{key}={v}: expected true or false")),
            })
            .transpose()
    }

    /// Positional argument `i` as a number, if present.
    ///
    /// # Errors
    /// When it is present but not a number.
    pub fn positional_u64(&self, i: usize) -> Result<Option<u64>, String> {
        self.positional
            .get(i)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("argument `{v}`: not a number"))
            })
            .transpose()
    }

    /// Fails on keyed arguments no handler took (typos would otherwise pass silently).
    ///
    /// # Errors
    /// Naming the unknown keys.
    pub fn finish(&self) -> Result<(), String> {
        if self.keyed.is_empty() {
            Ok(())
        } else {
            let keys: Vec<&str> = self.keyed.keys().map(String::as_str).collect();
            Err(format!("unknown arguments: {}", keys.join(", ")))
        }
    }
}

/// A line diff of `expected` against `actual` (longest common subsequence), with `-` for
/// expected lines missing from the actual output and `+` for new ones.
pub fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // lcs[i][j]: length of the longest common subsequence of expected[i..] and actual[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push_str(&format!("  {}\n", expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", expected[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", actual[j]));
            j += 1;
        }
    }
    out
}
