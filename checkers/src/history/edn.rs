//! EDN, Jepsen's `history.edn` form: one operation map per line (or one vector of them), e.g.
//! `{:index 0, :time 123, :type :invoke, :process 0, :f :txn, :value [[:append 3 7] [:r 3 nil]]}`.
//!
//! The reader understands the subset of EDN that Jepsen histories use: maps, vectors, lists,
//! sets, keywords, symbols, strings, integers, floats, `nil`, booleans, characters, tagged
//! literals such as `#jepsen.history.Op{...}` (the tag is dropped) and `#_` discards. Forms are
//! turned into JSON values (keywords lose their colon, map keys become strings) so that one
//! decoder ([`super::json::op_from_json`]) serves both forms.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value as Json};

use super::{History, ListAppendMop, MwwMop, NodeResult, Op, Process, Value};
use crate::error::{Error, Result};

/// Parses every top-level EDN form in `text` into JSON values.
pub fn parse_forms(text: &str) -> Result<Vec<Json>> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_blank();
        if p.i >= p.s.len() {
            return Ok(out);
        }
        if let Some(v) = p.form()? {
            out.push(v);
        }
    }
}

/// Parses one EDN form, e.g. the endpoint's `"[1 4 6 7]"` read strings.
pub fn parse_one(text: &str) -> Result<Json> {
    let mut forms = parse_forms(text)?;
    match (forms.pop(), forms.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(Error::Edn {
            line: 1,
            reason: format!("expected exactly one form in {text:?}"),
        }),
    }
}

/// Parses a Jepsen `history.edn`.
pub fn read_history(text: &str) -> Result<History> {
    let mut forms = parse_forms(text)?;
    if forms.len() == 1
        && let Some(Json::Array(inner)) = forms.first()
    {
        forms = inner.clone();
    }
    let mut keys = super::json::Keys::default();
    let ops = forms
        .iter()
        .enumerate()
        .map(|(i, v)| super::json::op_from_json(i, v, &mut keys))
        .collect::<Result<Vec<_>>>()?;
    Ok(History::with_keys(ops, keys))
}

/// Renders an operation as one EDN map.
pub fn op_to_edn(op: &Op) -> String {
    let mut s = format!(
        "{{:index {}, :time {}, :type :{}, :process {}, :f {}, :value {}",
        op.index,
        op.time,
        op.op_type.name(),
        match &op.process {
            Process::Client(p) => p.to_string(),
            Process::Named(n) => keyword(n),
        },
        keyword(&op.f),
        value_to_edn(&op.value)
    );
    if let Some(node) = &op.node {
        let _ = write!(s, ", :node {}", string(node));
    }
    if op.final_read {
        s.push_str(", :final-read? true");
    }
    if let Some(e) = &op.error {
        let _ = write!(s, ", :error {}", string(e));
    }
    s.push('}');
    s
}

/// Renders a history as EDN, one operation map per line.
pub fn write_history(h: &History) -> String {
    let mut out = String::new();
    for op in &h.ops {
        out.push_str(&op_to_edn(op));
        out.push('\n');
    }
    out
}

/// A keyword if the name is a valid one, else a string.
fn keyword(name: &str) -> String {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "*+!-_?<>=./".contains(c));
    if ok { format!(":{name}") } else { string(name) }
}

fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ints(xs: &[i64]) -> String {
    xs.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

fn value_to_edn(v: &Value) -> String {
    let mops: Vec<String> = match v {
        Value::None => return "nil".into(),
        Value::Nodes(nodes) => {
            let body: Vec<String> = nodes
                .iter()
                .map(|(node, r)| match r {
                    NodeResult::Keyword(k) => format!("{} {}", string(node), keyword(k)),
                    NodeResult::Int(i) => format!("{} {i}", string(node)),
                })
                .collect();
            return format!("{{{}}}", body.join(", "));
        }
        Value::ListAppend(mops) => mops
            .iter()
            .map(|m| match m {
                ListAppendMop::Append { key, element } => format!("[:append {key} {element}]"),
                ListAppendMop::Read { key, list: None } => format!("[:r {key} nil]"),
                ListAppendMop::Read {
                    key,
                    list: Some(xs),
                } => format!("[:r {key} [{}]]", ints(xs)),
            })
            .collect(),
        Value::Mww(mops) => mops
            .iter()
            .map(|m| {
                let (f, kv) = match m {
                    MwwMop::ReadAll(kv) => ("readAll", kv),
                    MwwMop::WriteSome(kv) => ("writeSome", kv),
                };
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!("[:{f} nil {{{}}}]", body.join(", "))
            })
            .collect(),
    };
    format!("[{}]", mops.join(" "))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        let end = self.i.min(self.s.len());
        Error::Edn {
            line: self.s[..end].iter().filter(|&&b| b == b'\n').count() + 1,
            reason: reason.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || c == b',' {
                self.i += 1;
            } else if c == b';' {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.i += 1;
                }
            } else {
                break;
            }
        }
    }

    /// One form; `None` for a `#_` discard.
    fn form(&mut self) -> Result<Option<Json>> {
        self.skip_blank();
        let c = self
            .peek()
            .ok_or_else(|| self.err("unexpected end of input"))?;
        let v = match c {
            b'{' => {
                self.i += 1;
                self.map(b'}')?
            }
            b'[' | b'(' => {
                self.i += 1;
                Json::Array(self.seq(if c == b'[' { b']' } else { b')' })?)
            }
            b'#' => return self.dispatch(),
            b'"' => Json::String(self.string()?),
            b'\\' => {
                self.i += 1;
                let tok = self.token();
                Json::String(if tok.is_empty() {
                    self.take_char()?
                } else {
                    tok
                })
            }
            b':' => {
                self.i += 1;
                Json::String(self.token())
            }
            b']' | b')' | b'}' => return Err(self.err(format!("unexpected {:?}", c as char))),
            _ => self.atom()?,
        };
        Ok(Some(v))
    }

    fn dispatch(&mut self) -> Result<Option<Json>> {
        self.i += 1;
        match self.peek() {
            Some(b'_') => {
                self.i += 1;
                self.form()?;
                Ok(None)
            }
            Some(b'{') => {
                self.i += 1;
                Ok(Some(Json::Array(self.seq(b'}')?)))
            }
            _ => {
                // A tagged literal: drop the tag, keep the form.
                let tag = self.token();
                if tag.is_empty() {
                    return Err(self.err("bad # dispatch"));
                }
                self.form()
            }
        }
    }

    fn take_char(&mut self) -> Result<String> {
        let rest = std::str::from_utf8(&self.s[self.i..]).map_err(|e| self.err(e.to_string()))?;
        let c = rest
            .chars()
            .next()
            .ok_or_else(|| self.err("bad character"))?;
        self.i += c.len_utf8();
        Ok(c.to_string())
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Json>> {
        let mut out = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => return Err(self.err(format!("missing {:?}", close as char))),
                Some(c) if c == close => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(_) => {
                    if let Some(v) = self.form()? {
                        out.push(v);
                    }
                }
            }
        }
    }

    fn map(&mut self, close: u8) -> Result<Json> {
        let items = self.seq(close)?;
        if items.len() % 2 != 0 {
            return Err(self.err("map with an odd number of forms"));
        }
        let mut m = Map::new();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let k = match k {
                Json::String(s) => s,
                other => other.to_string(),
            };
            m.insert(k, v);
        }
        Ok(Json::Object(m))
    }

    fn token(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || b",()[]{}\";".contains(&c) {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn string(&mut self) -> Result<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|e| self.err(e.to_string()))
    }

    fn atom(&mut self) -> Result<Json> {
        let tok = self.token();
        if tok.is_empty() {
            return Err(self.err("empty token"));
        }
        Ok(match tok.as_str() {
            "nil" => Json::Null,
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            t => {
                let digits = t.trim_end_matches(['N', 'M']);
                if let Ok(i) = digits.parse::<i64>() {
                    Json::Number(i.into())
                } else if let Some(n) = digits.parse::<f64>().ok().and_then(Number::from_f64) {
                    Json::Number(n)
                } else {
                    // A symbol.
                    Json::String(t.to_owned())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpType;

    #[test]
    fn reads_an_elle_history_line() {
        let h = read_history(
            "{:index 0, :time 123, :type :invoke, :process 0, :f :txn, :value [[:append 3 7] [:r 3 nil]]}\n\
             #jepsen.history.Op{:index 1, :time 130, :type :ok, :process 0, :f :txn, :value [[:append 3 7] [:r 3 [1 7]]]}\n\
             {:index 2 :type :info :process :nemesis :f :start-partition :value [:isolated {\"n1\" #{\"n2\"}}]}",
        )
        .unwrap();
        assert_eq!(h.ops.len(), 3);
        assert_eq!(h.ops[0].time, 123);
        assert_eq!(h.ops[1].op_type, OpType::Ok);
        assert_eq!(
            h.ops[1].value,
            Value::ListAppend(vec![
                ListAppendMop::Append { key: 3, element: 7 },
                ListAppendMop::Read {
                    key: 3,
                    list: Some(vec![1, 7])
                },
            ])
        );
        assert_eq!(h.ops[2].process, Process::Named("nemesis".into()));
        assert_eq!(h.ops[2].value, Value::None);
    }

    #[test]
    fn detects_edn_behind_comments_and_vectors() {
        let line = "{:index 0, :time 1, :type :ok, :process 0, :f :txn, :value [[:r 3 nil]]}";
        let one = History::parse(line).unwrap();
        assert_eq!(History::parse(&format!("; history\n{line}")).unwrap(), one);
        assert_eq!(History::parse(&format!("[{line}]")).unwrap(), one);
    }

    #[test]
    fn writes_elle_format() {
        let h = read_history(
            "{:index 0, :time 123, :type :invoke, :process 0, :f :txn, :value [[:append 3 7] [:r 3 nil]]}",
        )
        .unwrap();
        assert_eq!(
            write_history(&h),
            "{:index 0, :time 123, :type :invoke, :process 0, :f :txn, :value [[:append 3 7] [:r 3 nil]]}\n"
        );
    }

    #[test]
    fn round_trips_mww_and_optional_fields() {
        let text = "{:index 4, :time 9, :type :ok, :process 2, :f :r-final, :value [[:readAll nil {0 -1, 1 12}] [:writeSome nil {}]], :node \"n3\", :final-read? true, :error \"x \\\"y\\\"\"}\n";
        let h = read_history(text).unwrap();
        assert!(h.ops[0].final_read);
        assert_eq!(h.ops[0].node.as_deref(), Some("n3"));
        assert_eq!(h.ops[0].error.as_deref(), Some("x \"y\""));
        assert_eq!(
            h.ops[0].value,
            Value::Mww(vec![
                MwwMop::ReadAll([(0, -1), (1, 12)].into_iter().collect()),
                MwwMop::WriteSome(Default::default()),
            ])
        );
        assert_eq!(write_history(&h), text);
        // And through JSON lines too.
        let json = crate::history::json::write_history(&h);
        assert_eq!(crate::history::json::read_history(&json).unwrap(), h);
    }

    #[test]
    fn round_trips_nemesis_values_naming_their_nodes() {
        let text = "{:index 2, :time 5, :type :info, :process :nemesis, :f :bump-clock, :value {\"n1\" 60000, \"n2\" :killed}}\n";
        let h = read_history(text).unwrap();
        assert_eq!(
            h.ops[0].value,
            Value::Nodes(
                [
                    ("n1".to_owned(), NodeResult::Int(60_000)),
                    ("n2".to_owned(), NodeResult::Keyword("killed".into())),
                ]
                .into_iter()
                .collect()
            )
        );
        assert_eq!(write_history(&h), text);
        let json = crate::history::json::write_history(&h);
        assert!(
            json.contains(r#""value":{"n1":60000,"n2":"killed"}"#),
            "{json}"
        );
        assert_eq!(crate::history::json::read_history(&json).unwrap(), h);
    }

    #[test]
    fn parses_one_form_and_reports_errors() {
        assert_eq!(
            parse_one("[1 4 6 7]").unwrap(),
            serde_json::json!([1, 4, 6, 7])
        );
        assert_eq!(parse_one("; c\n#_ 9 [] ").unwrap(), serde_json::json!([]));
        assert!(matches!(parse_one("[1 2"), Err(Error::Edn { .. })));
        assert!(matches!(parse_one("{:a}"), Err(Error::Edn { .. })));
        assert!(matches!(parse_one("1 2"), Err(Error::Edn { .. })));
        let err = read_history("{:type :ok :process -1}\n{:type :ok :process 0 :value [[:r]]}")
            .unwrap_err();
        assert!(matches!(err, Error::Op { position: 0, .. }), "{err}");
    }
}
