//! Reads a history from a stream, one operation at a time, so that only the operations are
//! held (not the text, nor its lines or parsed values besides the one being decoded).
//!
//! The form is told by the first significant text: EDN when it is `{:`, a tagged literal
//! (`#`) or a comment (`;`), else JSON lines. A history wrapped in one vector or array (`[`)
//! is one form and is read whole. EDN operations may span lines: a form ends where its
//! brackets balance (outside strings, comments and character literals).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value as Json;

use super::json::{Keys, op_from_json, op_from_line};
use super::{History, Key, Op, edn};
use crate::error::{Error, Result};

/// Which form a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Edn,
    JsonLines,
}

/// Reads a whole history from `input` (see the module documentation).
pub fn read<R: BufRead>(input: R) -> Result<History> {
    let mut ops = Vec::new();
    let key_names = for_each_op(input, |op| {
        ops.push(op);
        Ok(())
    })?;
    Ok(History { ops, key_names })
}

/// Reads a history file, handing each operation to `each` in order as soon as it is decoded
/// (see [`for_each_op`]); I/O errors name the file.
pub fn for_each_op_in_file(
    path: &Path,
    each: impl FnMut(Op) -> Result<()>,
) -> Result<BTreeMap<Key, String>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for_each_op(std::io::BufReader::new(file), each).map_err(|e| match e {
        Error::Io { source, .. } => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        other => other,
    })
}

/// Reads a history from `input`, handing each operation to `each` in order as soon as it is
/// decoded, so that the caller decides what to keep; stops at the first error, `each`'s
/// included. Returns the names of named keys by their ids (see [`History::key_names`]).
pub fn for_each_op<R: BufRead>(
    mut input: R,
    mut each: impl FnMut(Op) -> Result<()>,
) -> Result<BTreeMap<Key, String>> {
    let io = |source| Error::Io {
        path: "<history>".into(),
        source,
    };
    let mut line = String::new();
    let mut line_no = 0;
    // Find the first significant line.
    let form = loop {
        line.clear();
        if input.read_line(&mut line).map_err(io)? == 0 {
            return Ok(BTreeMap::new());
        }
        line_no += 1;
        let start = line.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if start.is_empty() {
            continue;
        }
        if start.starts_with('[') {
            let mut text = std::mem::take(&mut line);
            input.read_to_string(&mut text).map_err(io)?;
            let inner = text.trim_start().trim_start_matches('[').trim_start();
            let history = if inner.starts_with(['#', ';']) || inner.starts_with("{:") {
                edn::read_history(&text)
            } else {
                super::json::read_history(&text)
            }?;
            history.ops.into_iter().try_for_each(&mut each)?;
            return Ok(history.key_names);
        }
        break if start.starts_with(['#', ';']) || start.starts_with("{:") {
            Form::Edn
        } else {
            Form::JsonLines
        };
    };
    let mut keys = Keys::default();
    let mut position = 0;
    match form {
        Form::JsonLines => loop {
            if !line.trim().is_empty() {
                each(op_from_line(position, line_no, &line, &mut keys)?)?;
                position += 1;
            }
            line.clear();
            if input.read_line(&mut line).map_err(io)? == 0 {
                break;
            }
            line_no += 1;
        },
        Form::Edn => {
            let mut push = |v: &Json| -> Result<()> {
                each(op_from_json(position, v, &mut keys)?)?;
                position += 1;
                Ok(())
            };
            let mut form = String::new();
            let mut form_line = line_no;
            let mut scan = Scan::default();
            loop {
                if form.trim().is_empty() {
                    form_line = line_no;
                }
                scan.feed(&line);
                form.push_str(&line);
                if scan.depth == 0 && !scan.in_string {
                    parse_chunk(&form, form_line, &mut push)?;
                    form.clear();
                }
                line.clear();
                if input.read_line(&mut line).map_err(io)? == 0 {
                    break;
                }
                line_no += 1;
            }
            if !form.trim().is_empty() {
                parse_chunk(&form, form_line, &mut push)?;
            }
        }
    }
    Ok(keys.names)
}

/// Parses the complete EDN forms in `chunk` (starting at line `first_line`) and hands each to
/// `each`; error lines are the stream's.
fn parse_chunk(
    chunk: &str,
    first_line: usize,
    each: &mut dyn FnMut(&Json) -> Result<()>,
) -> Result<()> {
    let forms = edn::parse_forms(chunk).map_err(|e| match e {
        Error::Edn { line, reason } => Error::Edn {
            line: line + first_line - 1,
            reason,
        },
        other => other,
    })?;
    forms.iter().try_for_each(each)
}

/// Bracket depth of EDN text fed line by line.
#[derive(Debug, Default)]
struct Scan {
    depth: i64,
    in_string: bool,
}

impl Scan {
    fn feed(&mut self, line: &str) {
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if self.in_string {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                ';' => break,
                '\\' => {
                    chars.next();
                }
                '{' | '[' | '(' => self.depth += 1,
                '}' | ']' | ')' => self.depth -= 1,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ListAppendMop, OpType, Process, Value};

    #[test]
    fn edn_ops_may_span_lines_and_errors_name_the_stream_line() {
        let text = "; a comment\n{:index 0 :type :invoke :process 0 :f :txn\n :value [[:r 1 nil]\n  [:append 1 \"}\"]]}\n";
        // The string element is not an integer: the error is the op's, not a bracket count's.
        assert!(matches!(read(text.as_bytes()), Err(Error::Mop { .. })));
        let ok = "{:index 0 :type :invoke :process 0 :f :txn\n :value [[:r 1 nil]]}\n\n{:index 1 :type :ok :process 0 :f :txn :value [[:r 1 [2]]]}\n";
        let h = read(ok.as_bytes()).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[1].op_type, OpType::Ok);
        let bad = "{:index 0 :type :ok :process 0 :value []}\n{:index 1 :type :ok :value [1 2}\n";
        let err = read(bad.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Edn { line: 2, .. }), "{err}");
    }

    #[test]
    fn json_lines_errors_name_the_line() {
        let text = "{\"type\":\"invoke\",\"process\":0,\"value\":[]}\n\n{\"type\":\n";
        let err = read(text.as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Json { line: 3, .. }), "{err}");
    }

    #[test]
    fn named_keys_short_reads_and_missing_processes_are_read() {
        let text = "{:type :invoke, :value [[:append :x 1] [:r \"y\"]]}\n\
                    {:type :ok, :value [[:append :x 1] [:r \"y\" [3]]]}\n\
                    {:type :invoke, :value [[:r :x]]}\n";
        let h = read(text.as_bytes()).unwrap();
        let x = h.key_names.iter().find(|(_, n)| *n == "x").map(|(k, _)| *k);
        let y = h.key_names.iter().find(|(_, n)| *n == "y").map(|(k, _)| *k);
        let (Some(x), Some(y)) = (x, y) else {
            panic!("{:?}", h.key_names);
        };
        assert_ne!(x, y);
        assert_eq!(
            h.ops[0].process,
            Process::Client(super::super::json::NO_PROCESS)
        );
        assert_eq!(
            h.ops[1].value,
            Value::ListAppend(vec![
                ListAppendMop::Append { key: x, element: 1 },
                ListAppendMop::Read {
                    key: y,
                    list: Some(vec![3])
                },
            ])
        );
        assert_eq!(
            h.ops[2].value,
            Value::ListAppend(vec![ListAppendMop::Read { key: x, list: None }])
        );
        // Indexes default to the position.
        assert_eq!(h.ops[2].index, 2);
    }
}
