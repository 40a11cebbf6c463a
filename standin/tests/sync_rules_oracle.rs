//! Differential test of the stand-in's sync-rules engine (`standin::rules`) against the
//! service's own, `@powersync/service-sync-rules` from the npm registry (the version pinned in
//! `tests/oracle/package.json`), run under Node by `tests/oracle/oracle.mjs`.
//!
//! Both evaluate the same sync rules on the same rows and requests: generated cases drawn
//! from the supported subset with a fixed seed (rules x rows x requests; the rows are also the
//! parameter tables' rows for table-backed parameter queries), the examples of the
//! service's documentation, and rules both must reject. Every bucket name, output table, id
//! and row `data` string of `evaluate_row`, and every bucket set a connection gets (the
//! stream's path: `Store::request_buckets` over the store's index of the rows'
//! `evaluate_parameter_row` results), must be identical; a difference is a bug in the
//! stand-in.
//!
//! Needs `node` and `npm` (`scripts/setup` installs them); the package is installed with npm
//! into `target/tmp/sync-rules-oracle` on first use.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};
use standin::rules::{Resolution, SourceTable, SqliteValue, StreamSource, StreamsRequest};
use standin::store::{Definition, ParameterChange, Store};
use standin::{Error, SyncRules};
use testkit::ChildGuard;

const ORACLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle");

/// Installs the pinned package (once) and returns the directory holding `oracle.mjs`.
fn oracle_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sync-rules-oracle");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["package.json", "oracle.mjs"] {
        std::fs::copy(Path::new(ORACLE_DIR).join(file), dir.join(file)).unwrap();
    }
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    let installed = manifest["dependencies"]
        .as_object()
        .unwrap()
        .iter()
        .all(|(name, version)| {
            let path = dir.join("node_modules").join(name).join("package.json");
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| serde_json::from_str::<Json>(&text).ok())
                .is_some_and(|p| p["version"] == *version)
        });
    if !installed {
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--no-package-lock"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = ChildGuard::spawn("npm install", &mut npm)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run npm ({e}): install Node.js and npm (`scripts/setup` does, or \
                     `apt-get install -y npm`) to run the sync-rules oracle"
                )
            })
            .wait_with_output()
            .unwrap();
        assert!(
            output.status.success(),
            "`npm install` of the sync-rules oracle in {} failed (it needs the npm registry; \
             `scripts/setup` installs npm): {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    dir
}

/// Runs the oracle on `cases` (one JSON line each) and returns its answers in order.
fn run_oracle(cases: &[Json]) -> Vec<Json> {
    let dir = oracle_dir();
    let mut input = tempfile::tempfile().unwrap();
    {
        use std::io::{Seek, Write};
        for case in cases {
            writeln!(input, "{case}").unwrap();
        }
        input.rewind().unwrap();
    }
    let mut node = Command::new("node");
    node.arg("oracle.mjs")
        .current_dir(&dir)
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = ChildGuard::spawn("node oracle.mjs", &mut node)
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js (`scripts/setup`)"))
        .wait_with_output()
        .unwrap();
    assert!(
        output.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<Json> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per case");
    answers
}

/// A source row: its table and `(column, value)` in column order.
type SourceRow = (SourceTable, Vec<(String, SqliteValue)>);

/// One request: token payload, client parameters and the body's `streams` (`Json::Null`:
/// absent).
type Request = (Json, Json, Json);

/// One case: sync rules, rows and requests.
struct Case {
    rules: String,
    rows: Vec<SourceRow>,
    requests: Vec<Request>,
}

/// A row as the oracle reads it with JSONBig: integers are INTEGER, numbers with a fraction
/// or an exponent REAL.
fn record_text(row: &[(String, SqliteValue)]) -> String {
    let mut out = String::from("{");
    for (i, (column, value)) in row.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write!(out, "{}:", Json::from(column.as_str())).unwrap();
        match value {
            SqliteValue::Null => out.push_str("null"),
            SqliteValue::Integer(v) => write!(out, "{v}").unwrap(),
            // `{:?}` always has a `.` or an exponent: `2.0`, `1e21`.
            SqliteValue::Real(v) => write!(out, "{v:?}").unwrap(),
            SqliteValue::Text(t) => write!(out, "{}", Json::from(t.as_str())).unwrap(),
        }
    }
    out.push('}');
    out
}

impl Case {
    fn to_json(&self) -> Json {
        json!({
            "rules": self.rules,
            "rows": self.rows.iter().map(|(table, row)| json!({
                "schema": table.schema, "table": table.name, "record": record_text(row),
            })).collect::<Vec<_>>(),
            "requests": self.requests.iter().map(|(claims, params, streams)| {
                let mut request = json!({
                    "claims": claims.to_string(), "parameters": params.to_string(),
                });
                if !streams.is_null() {
                    request["streams"] = streams.clone();
                }
                request
            }).collect::<Vec<_>>(),
        })
    }
}

/// `(bucket, table, id, data)` per row, sorted, and per request the checkpoint's
/// `{"buckets": [{bucket, priority, subscriptions}] (sorted), "streams": [...]}`.
type Outcome = (Vec<Vec<[String; 4]>>, Vec<Json>);

fn standin_outcome(rules: &SyncRules, case: &Case) -> Outcome {
    let rows = case
        .rows
        .iter()
        .map(|(table, row)| {
            let mut out: Vec<[String; 4]> = rules
                .evaluate_row(table, row)
                .into_iter()
                .map(|r| [r.bucket, r.object_type, r.object_id, r.data])
                .collect();
            out.sort();
            out
        })
        .collect();
    // Bucket sets as the stream computes them: over the store's index of parameter rows.
    let store = Store::new();
    store.set_definitions(1, rules.buckets().iter().map(Definition::from).collect());
    let changes = case
        .rows
        .iter()
        .enumerate()
        .map(|(i, (table, row))| ParameterChange {
            row: format!("{}.{}/{i}", table.schema, table.name),
            rows: rules.evaluate_parameter_row(table, row),
        })
        .collect();
    store.apply_with(Vec::new(), changes, 1, 1);
    let requests = case
        .requests
        .iter()
        .map(|(claims, params, streams)| {
            let streams = (!streams.is_null()).then_some(streams);
            let request = StreamsRequest::from_json(streams).expect("a valid streams request");
            checkpoint_json(&store.resolve(rules, claims, params, &request))
        })
        .collect();
    (rows, requests)
}

/// Cuts each `errors` message of a request's `streams` to its prefix before the cause (the
/// cause is a JavaScript `SyntaxError` message in the service, serde_json's here).
fn error_prefixes(request: &mut Json) {
    for stream in request["streams"].as_array_mut().into_iter().flatten() {
        for error in stream["errors"].as_array_mut().into_iter().flatten() {
            if let Some(message) = error["message"].as_str() {
                let prefix = message.split(": ").next().unwrap_or_default().to_owned();
                error["message"] = Json::String(prefix);
            }
        }
    }
}

/// A resolution as the checkpoint line describes it (bucket ids without their version).
fn checkpoint_json(resolution: &Resolution) -> Json {
    let buckets: Vec<Json> = resolution
        .buckets
        .iter()
        .map(|b| {
            json!({"bucket": b.bucket.strip_prefix("1#").unwrap_or(&b.bucket),
                   "priority": b.priority, "subscriptions": resolution.subscriptions(b)})
        })
        .collect();
    let streams: Vec<Json> = resolution.streams.iter().map(|s| s.to_json()).collect();
    json!({"buckets": buckets, "streams": streams})
}

fn oracle_outcome(answer: &Json) -> Outcome {
    let text = |v: &Json| v.as_str().unwrap().to_owned();
    let rows = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut out: Vec<[String; 4]> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    [
                        text(&r["bucket"]),
                        text(&r["table"]),
                        text(&r["id"]),
                        text(&r["data"]),
                    ]
                })
                .collect();
            out.sort();
            out
        })
        .collect();
    let requests = answer["requests"].as_array().unwrap().clone();
    (rows, requests)
}

/// Compares the stand-in with the oracle on every case the stand-in accepts; returns the
/// number of rows and requests compared and describes every difference.
fn compare(cases: &[Case], answers: &[Json], mismatches: &mut Vec<String>) -> (usize, usize) {
    let (mut rows, mut requests) = (0, 0);
    for (case, answer) in cases.iter().zip(answers) {
        if let Some(exception) = answer.get("exception") {
            mismatches.push(format!("oracle exception on\n{}\n{exception}", case.rules));
            continue;
        }
        let rules = match SyncRules::parse(&case.rules) {
            Ok(rules) => rules,
            Err(e) => {
                mismatches.push(format!("the stand-in rejects\n{}\n{e}", case.rules));
                continue;
            }
        };
        if answer["errors"] != json!([]) {
            mismatches.push(format!(
                "the service rejects what the stand-in accepts:\n{}\n{}",
                case.rules, answer["errors"]
            ));
            continue;
        }
        let (mut ours, mut theirs) = (standin_outcome(&rules, case), oracle_outcome(answer));
        for request in ours.1.iter_mut().chain(theirs.1.iter_mut()) {
            error_prefixes(request);
        }
        for (i, (a, b)) in ours.0.iter().zip(&theirs.0).enumerate() {
            if a != b {
                mismatches.push(format!(
                    "rules\n{}row {} {}\nstand-in {a:?}\nservice  {b:?}",
                    case.rules,
                    case.rows[i].0.name,
                    record_text(&case.rows[i].1)
                ));
            }
        }
        for (i, (a, b)) in ours.1.iter().zip(&theirs.1).enumerate() {
            if a != b {
                mismatches.push(format!(
                    "rules\n{}request {} {} streams {}\nstand-in {a}\nservice  {b}",
                    case.rules, case.requests[i].0, case.requests[i].1, case.requests[i].2
                ));
            }
        }
        rows += ours.0.len();
        requests += ours.1.len();
    }
    (rows, requests)
}

// ---------------------------------------------------------------------------------------
// Generated cases
// ---------------------------------------------------------------------------------------

const LISTS: [&str; 7] = [
    "id",
    "owner_id",
    "org_id",
    "name",
    "score",
    "done",
    "_internal",
];
const TODOS: [&str; 4] = ["id", "list_id", "owner_id", "description"];

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn gen_value(rng: &mut fastrand::Rng) -> SqliteValue {
    match rng.u8(..10) {
        0 => SqliteValue::Null,
        1 | 2 => SqliteValue::Integer(*pick(rng, &[-1, 0, 1, 2, 42, 9_007_199_254_740_993])),
        3 | 4 => SqliteValue::Real(*pick(rng, &[1.0, 1.5, -0.0, 1e21, 2.5e-7, 0.1, 42.0])),
        _ => SqliteValue::Text(
            (*pick(
                rng,
                &[
                    "u1", "u2", "o1", "u1", "u2", "1", "x y", "ü\"q\\", "", "1.5", "null",
                ],
            ))
            .to_owned(),
        ),
    }
}

fn gen_row(rng: &mut fastrand::Rng, n: usize) -> SourceRow {
    let (name, columns): (&str, &[&str]) = if rng.bool() {
        ("lists", &LISTS)
    } else {
        ("todos", &TODOS)
    };
    let mut row = Vec::new();
    for column in columns {
        if rng.u8(..20) == 0 {
            continue; // a column the row lacks
        }
        let value = if *column == "id" && rng.u8(..5) != 0 {
            SqliteValue::Text(format!("r{n}"))
        } else {
            gen_value(rng)
        };
        row.push(((*column).to_owned(), value));
    }
    let schema = if rng.u8(..10) == 0 { "other" } else { "public" };
    (
        SourceTable {
            schema: schema.to_owned(),
            name: name.to_owned(),
        },
        row,
    )
}

fn gen_json_scalar(rng: &mut fastrand::Rng) -> Json {
    match rng.u8(..12) {
        0 => Json::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(1),
        4 => json!(1.0),
        5 => json!(2.5),
        6 => json!({"k": 1, "t": true, "z": [1.0, "a"]}),
        7 => json!([1, 2.5, null]),
        _ => json!(*pick(rng, &["u1", "u2", "o1", "1", "é\n"])),
    }
}

/// A JSON object with some of `keys` set (keys sort the same in serde_json and in the
/// service, which keeps the order of the JSON text).
fn gen_object(rng: &mut fastrand::Rng, keys: &[&str]) -> Json {
    let mut map = serde_json::Map::new();
    for key in keys {
        if rng.u8(..4) != 0 {
            map.insert((*key).to_owned(), gen_json_scalar(rng));
        }
    }
    Json::Object(map)
}

fn gen_request(rng: &mut fastrand::Rng) -> Request {
    let mut claims = gen_object(rng, &["a.b", "flag", "org", "sub"]);
    let map = claims.as_object_mut().unwrap();
    if rng.u8(..3) != 0 {
        map.insert("sub".into(), json!(*pick(rng, &["u1", "u2", "o1"])));
    }
    map.insert("a".into(), gen_object(rng, &["b"]));
    map.insert("nested".into(), gen_object(rng, &["k"]));
    if rng.bool() {
        map.insert(
            "parameters".into(),
            gen_object(rng, &["org", "p", "user_id"]),
        );
    }
    (claims, gen_object(rng, &["org", "p", "q"]), Json::Null)
}

/// Request values a parameter query can select, with their default output name.
const REQUEST_VALUES: [(&str, Option<&str>); 13] = [
    ("request.user_id()", None),
    ("request.jwt() ->> 'sub'", None),
    ("request.jwt() ->> 'org'", None),
    ("request.jwt() ->> 'a.b'", None),
    ("request.jwt() ->> '$.nested.k'", None),
    ("request.jwt() ->> 'flag'", None),
    ("request.jwt() ->> 'missing'", None),
    ("request.parameters() ->> 'p'", None),
    ("request.parameters() ->> 'q'", None),
    ("token_parameters.user_id", Some("user_id")),
    ("token_parameters.org", Some("org")),
    ("token_parameters.p", Some("p")),
    ("user_parameters.p", Some("p")),
];

fn gen_parameter_query(rng: &mut fastrand::Rng, params: &[&str]) -> String {
    let mut order: Vec<&str> = params.to_vec();
    rng.shuffle(&mut order);
    let outputs: Vec<String> = order
        .iter()
        .map(|name| {
            let (expr, default) = *pick(rng, &REQUEST_VALUES);
            if default == Some(name) && rng.bool() {
                expr.to_owned()
            } else {
                let as_kw = *pick(rng, &["AS", "as"]);
                format!("{expr} {as_kw} {name}")
            }
        })
        .collect();
    format!(
        "{} {}",
        pick(rng, &["SELECT", "select"]),
        outputs.join(", ")
    )
}

/// A table-backed parameter query on `table` selecting `params`.
fn gen_table_parameter_query(rng: &mut fastrand::Rng, table: &str, params: &[&str]) -> String {
    let columns: &[&str] = if table == "lists" { &LISTS } else { &TODOS };
    let column = |rng: &mut fastrand::Rng| {
        let c = *pick(rng, columns);
        if rng.u8(..3) == 0 {
            format!("{table}.{c}")
        } else {
            c.to_owned()
        }
    };
    let mut order: Vec<&str> = params.to_vec();
    rng.shuffle(&mut order);
    let outputs: Vec<String> = order
        .iter()
        .map(|name| {
            let value = if rng.u8(..5) < 3 {
                column(rng)
            } else {
                pick(rng, &REQUEST_VALUES).0.to_owned()
            };
            format!("{value} AS {name}")
        })
        .collect();
    // Distinct request values (`request.user_id()` and `token_parameters.user_id` are one).
    let mut values: Vec<&str> = REQUEST_VALUES
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| *v != "token_parameters.user_id")
        .collect();
    rng.shuffle(&mut values);
    if rng.bool() {
        for v in values.iter_mut().filter(|v| **v == "request.user_id()") {
            *v = "token_parameters.user_id";
        }
    }
    let conditions: Vec<String> = values[..*pick(rng, &[1, 1, 2])]
        .iter()
        .map(|v| {
            let c = column(rng);
            if rng.bool() {
                format!("{c} = {v}")
            } else {
                format!("{v} = {c}")
            }
        })
        .collect();
    let schema = if rng.u8(..5) == 0 { "public." } else { "" };
    format!(
        "SELECT {} FROM {schema}{table} WHERE {}",
        outputs.join(", "),
        conditions.join(" AND ")
    )
}

fn gen_data_query(rng: &mut fastrand::Rng, table: &str, params: &[&str]) -> String {
    let columns: &[&str] = if table == "lists" { &LISTS } else { &TODOS };
    let alias = (rng.u8(..4) == 0).then_some("t");
    let qualifier = alias.unwrap_or(table);
    let qualify = |rng: &mut fastrand::Rng, c: &str| {
        if rng.u8(..3) == 0 {
            format!("{qualifier}.{c}")
        } else {
            c.to_owned()
        }
    };
    let select = if rng.u8(..5) < 2 {
        "*".to_owned()
    } else {
        let mut outputs = vec!["id".to_owned()];
        let mut items = vec![qualify(rng, "id")];
        for _ in 0..rng.usize(0..4) {
            let source = *pick(rng, &[columns, &["ghost"]].concat());
            let output = if rng.bool() {
                pick(rng, &["title", "other", "_x", "Name"]).to_string()
            } else {
                source.to_owned()
            };
            let output_name = output.to_lowercase();
            if source == "id" || outputs.contains(&output_name) {
                continue;
            }
            outputs.push(output_name);
            let item = qualify(rng, source);
            items.push(if output == source {
                item
            } else {
                format!("{item} AS {output}")
            });
        }
        let id = items.remove(0);
        items.insert(rng.usize(..=items.len()), id);
        items.join(", ")
    };
    let schema = if rng.u8(..5) == 0 { "public." } else { "" };
    let alias = alias.map(|a| format!(" AS {a}")).unwrap_or_default();
    let mut sql = format!("SELECT {select} FROM {schema}{table}{alias}");
    let conditions: Vec<String> = params
        .iter()
        .map(|p| {
            let column = *pick(rng, &columns[1..]);
            let column = qualify(rng, column);
            if rng.bool() {
                format!("{column} = bucket.{p}")
            } else {
                format!("bucket.{p} = {column}")
            }
        })
        .collect();
    if !conditions.is_empty() {
        write!(sql, " WHERE {}", conditions.join(" AND ")).unwrap();
    }
    sql
}

fn gen_rules(rng: &mut fastrand::Rng) -> String {
    let mut yaml = String::new();
    match rng.u8(..5) {
        0 => yaml.push_str("config:\n  edition: 2\n"),
        1 => yaml.push_str("config:\n  fixed_json_extract: true\n"),
        2 => yaml.push_str("config:\n  edition: 2\n  fixed_json_extract: false\n"),
        _ => {}
    }
    yaml.push_str("bucket_definitions:\n");
    let mut names = vec!["by_user", "by_org", "g", "mixed"];
    rng.shuffle(&mut names);
    for name in &names[..rng.usize(1..=3)] {
        writeln!(yaml, "  {name}:").unwrap();
        if rng.u8(..5) == 0 {
            writeln!(yaml, "    priority: {}", rng.u8(..4)).unwrap();
        }
        let mut params = vec!["user_id", "org", "p", "team"];
        rng.shuffle(&mut params);
        let params = &params[..*pick(rng, &[0, 1, 1, 2])];
        if !params.is_empty() {
            let queries: Vec<String> = (0..rng.usize(1..=2))
                .map(|_| {
                    if rng.bool() {
                        let table = *pick(rng, &["lists", "todos"]);
                        gen_table_parameter_query(rng, table, params)
                    } else {
                        gen_parameter_query(rng, params)
                    }
                })
                .collect();
            if queries.len() == 1 && rng.bool() {
                writeln!(yaml, "    parameters: {}", queries[0]).unwrap();
            } else {
                yaml.push_str("    parameters:\n");
                for q in &queries {
                    writeln!(yaml, "      - {q}").unwrap();
                }
            }
        }
        yaml.push_str("    data:\n");
        let mut tables = vec!["lists", "todos"];
        rng.shuffle(&mut tables);
        for table in &tables[..rng.usize(1..=2)] {
            writeln!(yaml, "      - {}", gen_data_query(rng, table, params)).unwrap();
        }
    }
    yaml
}

fn generated_cases(count: usize) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0014);
    (0..count)
        .map(|_| Case {
            rules: gen_rules(&mut rng),
            rows: (0..8).map(|n| gen_row(&mut rng, n)).collect(),
            requests: (0..4).map(|_| gen_request(&mut rng)).collect(),
        })
        .collect()
}

/// Request values of stream conditions.
const STREAM_VALUES: [&str; 15] = [
    "auth.user_id()",
    "auth.parameter('sub')",
    "auth.parameter('org')",
    "auth.parameter('a.b')",
    "auth.parameter('$.a.b')",
    "auth.parameters() ->> 'org'",
    "auth.parameters() ->> 'a.b'",
    "subscription.parameter('p')",
    "subscription.parameter('q')",
    "subscription.parameter('$.n.k')",
    "subscription.parameter('a.b')",
    "subscription.parameters() ->> 'p'",
    "subscription.parameters() ->> 'a.b'",
    "connection.parameter('p')",
    "connection.parameters() ->> 'q'",
];

/// `<column> = <value>` (either side) on one of `columns`.
fn gen_stream_equality(rng: &mut fastrand::Rng, columns: &[&str]) -> String {
    let column = *pick(rng, columns);
    let value = *pick(rng, &STREAM_VALUES);
    if rng.bool() {
        format!("{column} = {value}")
    } else {
        format!("{value} = {column}")
    }
}

/// A stream's `WHERE` condition on `table`: an equality or an `IN` subquery on the other
/// table.
fn gen_stream_condition(rng: &mut fastrand::Rng, table: &str) -> String {
    let (columns, other, other_columns): (&[&str], &str, &[&str]) = if table == "lists" {
        (&LISTS, "todos", &TODOS)
    } else {
        (&TODOS, "lists", &LISTS)
    };
    match rng.u8(..10) {
        0..=4 => return gen_stream_equality(rng, &columns[1..]),
        5 | 6 => {
            let column = *pick(rng, &columns[1..]);
            let value = *pick(
                rng,
                &[
                    "subscription.parameter('ids')",
                    "(subscription.parameter('ids'))",
                    "auth.parameter('ids')",
                    "connection.parameter('ids')",
                    "subscription.parameters() ->> 'ids'",
                ],
            );
            return format!("{column} IN {value}");
        }
        _ => {}
    }
    let column = *pick(rng, &columns[1..]);
    let selected = if rng.bool() {
        "id"
    } else {
        *pick(rng, other_columns)
    };
    // Mostly the user's rows, so that parameter rows match requests.
    let conditions: Vec<String> = (0..*pick(rng, &[1, 1, 2]))
        .map(|_| {
            if rng.bool() {
                "owner_id = auth.user_id()".to_owned()
            } else {
                gen_stream_equality(rng, other_columns)
            }
        })
        .collect();
    format!(
        "{column} IN (SELECT {selected} FROM {other} WHERE {})",
        conditions.join(" AND ")
    )
}

const STREAM_NAMES: [&str; 3] = ["sa", "sb", "sc"];

fn gen_stream_rules(rng: &mut fastrand::Rng) -> String {
    let mut yaml = String::from("config:\n  edition: 2\n");
    if rng.u8(..4) == 0 {
        yaml.push_str("  fixed_json_extract: false\n");
    }
    match rng.u8(..4) {
        0 => yaml.push_str("bucket_definitions:\n  g:\n    data:\n      - SELECT * FROM lists\n"),
        1 => yaml.push_str(
            "bucket_definitions:\n  g:\n    parameters: SELECT request.user_id() AS u\n    \
             data:\n      - SELECT * FROM todos WHERE owner_id = bucket.u\n",
        ),
        _ => {}
    }
    yaml.push_str("streams:\n");
    let mut names = STREAM_NAMES.to_vec();
    rng.shuffle(&mut names);
    for name in &names[..rng.usize(1..=3)] {
        writeln!(yaml, "  {name}:").unwrap();
        if rng.u8(..3) == 0 {
            writeln!(yaml, "    auto_subscribe: {}", rng.bool()).unwrap();
        }
        if rng.u8(..4) == 0 {
            writeln!(yaml, "    priority: {}", rng.u8(..4)).unwrap();
        }
        let table = *pick(rng, &["lists", "todos"]);
        let mut query = gen_data_query(rng, table, &[]);
        let conditions: Vec<String> = (0..*pick(rng, &[0, 1, 1, 2]))
            .map(|_| gen_stream_condition(rng, table))
            .collect();
        if !conditions.is_empty() {
            write!(query, " WHERE {}", conditions.join(" AND ")).unwrap();
        }
        writeln!(yaml, "    query: \"{}\"", query.replace('"', "\\\"")).unwrap();
    }
    yaml
}

/// A request with `streams` (or, sometimes, without) subscribing to some of the streams, a
/// bucket definition and a stream that does not exist.
/// A value for an `IN` parameter: JSON arrays (as values or JSON text), text that is not
/// JSON, scalars.
fn gen_ids(rng: &mut fastrand::Rng) -> Json {
    match rng.u8(..8) {
        0 => json!(["u1", "l1", 1, null, true, 2.5, {"k": 1}]),
        1 => json!(["u2", "l2", "u1"]),
        2 => json!("[\"u1\", 1.0, \"l1\"]"),
        3 => json!("not json"),
        4 => json!("{\"a\": 1}"),
        5 => json!([]),
        6 => json!("u1"),
        _ => json!(7),
    }
}

fn gen_stream_request(rng: &mut fastrand::Rng) -> Request {
    let (mut claims, mut parameters, _) = gen_request(rng);
    for object in [&mut claims, &mut parameters] {
        if rng.bool() {
            object["ids"] = gen_ids(rng);
        }
    }
    if rng.u8(..6) == 0 {
        return (claims, parameters, Json::Null);
    }
    let mut streams = serde_json::Map::new();
    if rng.u8(..3) != 0 {
        streams.insert("include_defaults".into(), json!(rng.bool()));
    }
    let subscriptions: Vec<Json> = (0..rng.usize(0..=3))
        .map(|_| {
            let mut subscription = serde_json::Map::new();
            let stream = *pick(rng, &["sa", "sb", "sc", "sa", "g", "missing"]);
            subscription.insert("stream".into(), json!(stream));
            match rng.u8(..4) {
                0 => {}
                1 => {
                    subscription.insert("parameters".into(), Json::Null);
                }
                _ => {
                    let mut parameters = gen_object(rng, &["a.b", "n", "p", "q"]);
                    if rng.bool() {
                        parameters["ids"] = gen_ids(rng);
                    }
                    subscription.insert("parameters".into(), parameters);
                }
            }
            match rng.u8(..3) {
                0 => {}
                1 => {
                    subscription.insert("override_priority".into(), Json::Null);
                }
                _ => {
                    subscription.insert("override_priority".into(), json!(rng.u8(..4)));
                }
            }
            Json::Object(subscription)
        })
        .collect();
    streams.insert("subscriptions".into(), Json::Array(subscriptions));
    (claims, parameters, Json::Object(streams))
}

fn generated_stream_cases(count: usize) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0015);
    (0..count)
        .map(|_| {
            let mut rows: Vec<SourceRow> = (0..8).map(|n| gen_row(&mut rng, n)).collect();
            // Lists of u1 and u2 with a todo each, which subqueries on the owner find.
            let text = |s: &str| SqliteValue::Text(s.to_owned());
            for (user, list) in [("u1", "l1"), ("u2", "l2")] {
                let table = |name: &str| SourceTable {
                    schema: "public".into(),
                    name: name.into(),
                };
                rows.push((
                    table("lists"),
                    vec![
                        ("id".to_owned(), text(list)),
                        ("owner_id".to_owned(), text(user)),
                    ],
                ));
                rows.push((
                    table("todos"),
                    vec![
                        ("id".to_owned(), text(&format!("t{list}"))),
                        ("list_id".to_owned(), text(list)),
                        ("owner_id".to_owned(), text(user)),
                    ],
                ));
            }
            Case {
                rules: gen_stream_rules(&mut rng),
                rows,
                requests: (0..6).map(|_| gen_stream_request(&mut rng)).collect(),
            }
        })
        .collect()
}

/// Rows and requests every hand-written example is evaluated on.
fn example_inputs() -> (Vec<SourceRow>, Vec<Request>) {
    let mut rng = fastrand::Rng::with_seed(0xd0c5);
    let mut rows: Vec<SourceRow> = (0..12).map(|n| gen_row(&mut rng, n)).collect();
    let text = |s: &str| SqliteValue::Text(s.to_owned());
    let row = |table: &str, cells: Vec<(&str, SqliteValue)>| {
        (
            SourceTable {
                schema: "public".into(),
                name: table.into(),
            },
            cells
                .into_iter()
                .map(|(c, v)| (c.to_owned(), v))
                .collect::<Vec<_>>(),
        )
    };
    rows.push(row(
        "lists",
        vec![
            ("id", text("l1")),
            ("owner_id", text("u1")),
            ("org_id", text("o1")),
            ("name", text("Groceries")),
        ],
    ));
    rows.push(row(
        "todos",
        vec![
            ("id", text("t1")),
            ("list_id", text("l1")),
            ("owner_id", text("u1")),
            ("description", text("Milk")),
        ],
    ));
    rows.push(row(
        "users",
        vec![("id", text("u1")), ("org_id", text("org1"))],
    ));
    rows.push(row(
        "documents",
        vec![("id", text("d1")), ("org_id", text("org1"))],
    ));
    rows.push(row(
        "issues",
        vec![
            ("id", text("i1")),
            ("owner_id", text("u1")),
            ("name", text("bug")),
        ],
    ));
    rows.push(row(
        "comments",
        vec![
            ("id", text("c1")),
            ("issue_id", text("i1")),
            ("content", text("hello")),
        ],
    ));
    let mut requests: Vec<Request> = (0..6).map(|_| gen_request(&mut rng)).collect();
    requests.push((
        json!({"sub": "u1", "app_metadata": {"org_id": "org1"}, "org_id": "org1"}),
        json!({"current_project": "p1"}),
        Json::Null,
    ));
    let u1 = json!({"sub": "u1", "parameters": {"test": "u1"}});
    requests.push((
        u1.clone(),
        json!({}),
        json!({"include_defaults": true, "subscriptions": [
            {"stream": "s", "parameters": {"id": "i1", "s": "u1"}, "override_priority": null},
            {"stream": "s", "parameters": null, "override_priority": 1},
            {"stream": "nope", "parameters": {}, "override_priority": 0},
        ]}),
    ));
    requests.push((
        u1.clone(),
        json!({}),
        json!({"include_defaults": false, "subscriptions": [
            {"stream": "s", "parameters": {"id": "i2"}, "override_priority": 2}]}),
    ));
    requests.push((
        u1,
        json!({}),
        json!({"include_defaults": false, "subscriptions": []}),
    ));
    (rows, requests)
}

/// Examples from the service's documentation (packages/sync-rules/README.md, the
/// service's sync rules template, and the documented parameter-query shapes), with the
/// construct the stand-in rejects, if any.
const EXAMPLES: [(&str, Option<&str>); 20] = [
    (
        "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lists\n      - SELECT * FROM todos\n",
        None,
    ),
    (
        "bucket_definitions:\n  user_lists:\n    parameters: SELECT request.user_id() as user_id\n    \
         data:\n      - SELECT * FROM lists WHERE owner_id = bucket.user_id\n",
        None,
    ),
    (
        "bucket_definitions:\n  user_todos:\n    parameters: SELECT token_parameters.user_id\n    \
         data:\n      - SELECT id, description AS title FROM todos WHERE todos.owner_id = bucket.user_id\n",
        None,
    ),
    (
        "bucket_definitions:\n  by_org:\n    parameters: SELECT request.jwt() ->> 'app_metadata.org_id' AS org_id\n    \
         data:\n      - select * from documents where org_id = bucket.org_id\n",
        None,
    ),
    (
        "config:\n  edition: 2\nbucket_definitions:\n  by_org:\n    parameters: SELECT request.jwt() ->> '$.app_metadata.org_id' AS org_id\n    \
         data:\n      - select * from documents where org_id = bucket.org_id\n",
        None,
    ),
    (
        "bucket_definitions:\n  by_org:\n    parameters: select org_id from users where id = token_parameters.user_id\n    \
         data:\n      - select * from documents where org_id = bucket.org_id\n",
        None,
    ),
    (
        "bucket_definitions:\n  project:\n    parameters: SELECT (request.parameters() ->> 'current_project') as project_id\n    \
         data:\n      - SELECT * FROM todos WHERE list_id = bucket.project_id\n",
        Some("found `(`"),
    ),
    (
        "bucket_definitions:\n  user_lists:\n    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()\n    \
         data:\n      - SELECT * FROM todos WHERE list_id = bucket.list_id\n",
        None,
    ),
    (
        "streams:\n  lists:\n    query: SELECT * FROM lists WHERE owner_id = auth.user_id()\n",
        Some("edition 2"),
    ),
    // The Sync Streams of the service's tests (packages/sync-rules/test/src/legacy/streams.test.ts).
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM comments\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    auto_subscribe: true\n    query: SELECT * FROM comments\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM comments WHERE issue_id = subscription.parameter('id')\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    auto_subscribe: true\n    query: SELECT * FROM issues WHERE owner_id = auth.parameter('$.parameters.test')\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    priority: 1\n    query: SELECT * FROM comments WHERE issue_id IN (SELECT id FROM issues WHERE owner_id = auth.user_id())\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM issues WHERE owner_id IN (SELECT id FROM \"users\" WHERE id = subscription.parameter('s'))\n",
        None,
    ),
    (
        "config:\n  edition: 2\nbucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lists\nstreams:\n  s:\n    auto_subscribe: true\n    query: SELECT id, content AS body FROM comments WHERE issue_id = subscription.parameter('id')\n",
        None,
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM comments WHERE issue_id = subscription.parameter('issue') OR issue_id IN (SELECT id FROM issues WHERE owner_id = auth.user_id())\n",
        Some("OR"),
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM issues WHERE auth.user_id() IN (SELECT id FROM users WHERE is_admin)\n",
        Some("IN"),
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM comments WHERE issue_id IN (subscription.parameters() -> 'issue_id')\n",
        Some("IN"),
    ),
    (
        "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM comments WHERE length(content) > 5\n",
        Some("length"),
    ),
];

/// Rules outside what either engine accepts: both must reject them.
const INVALID: [&str; 7] = [
    // Streams without edition 2.
    "streams:\n  s:\n    query: SELECT * FROM lists\n",
    // `queries` before edition 3.
    "config:\n  edition: 2\nstreams:\n  s:\n    queries:\n      - SELECT * FROM lists\n",
    // A stream and a bucket definition of the same name.
    "config:\n  edition: 2\nbucket_definitions:\n  s:\n    data:\n      - SELECT * FROM lists\nstreams:\n  s:\n    query: SELECT * FROM todos\n",
    // A data query that does not match the bucket parameter.
    "bucket_definitions:\n  b:\n    parameters: SELECT request.user_id() AS u\n    data:\n      - SELECT * FROM lists\n",
    // No `id` column.
    "bucket_definitions:\n  b:\n    data:\n      - SELECT name FROM lists\n",
    // A bucket parameter no parameter query defines.
    "bucket_definitions:\n  b:\n    parameters: SELECT request.user_id() AS u\n    data:\n      - SELECT * FROM lists WHERE owner_id = bucket.x\n",
    // Parameter queries with different parameters.
    "bucket_definitions:\n  b:\n    parameters:\n      - SELECT request.user_id() AS u\n      - SELECT request.jwt() ->> 'org' AS o\n    data:\n      - SELECT * FROM lists WHERE owner_id = bucket.u\n",
];

#[test]
fn the_stand_in_evaluates_sync_rules_as_the_service_does() {
    let mut cases = generated_cases(300);
    let generated = cases.len();
    cases.extend(generated_stream_cases(300));
    let generated_streams = cases.len() - generated;
    let (rows, requests) = example_inputs();
    let mut expected_rejections = Vec::new();
    for (yaml, rejected) in EXAMPLES {
        match rejected {
            None => cases.push(Case {
                rules: yaml.to_owned(),
                rows: rows.clone(),
                requests: requests.clone(),
            }),
            Some(construct) => expected_rejections.push((yaml, construct)),
        }
    }
    let invalid_from = cases.len();
    for yaml in INVALID {
        cases.push(Case {
            rules: yaml.to_owned(),
            rows: Vec::new(),
            requests: Vec::new(),
        });
    }
    let json: Vec<Json> = cases.iter().map(Case::to_json).collect();
    let answers = run_oracle(&json);

    let mut mismatches = Vec::new();
    let (rows_compared, requests_compared) = compare(
        &cases[..invalid_from],
        &answers[..invalid_from],
        &mut mismatches,
    );
    for (case, answer) in cases[invalid_from..].iter().zip(&answers[invalid_from..]) {
        let ours = SyncRules::parse(&case.rules);
        let theirs = answer["errors"].as_array().map_or(0, Vec::len);
        if ours.is_ok() || theirs == 0 {
            mismatches.push(format!(
                "both should reject\n{}stand-in {:?}\nservice  {}",
                case.rules,
                ours.err(),
                answer
            ));
        }
    }
    for (yaml, construct) in expected_rejections {
        match SyncRules::parse(yaml) {
            Err(Error::UnsupportedSyncRules(msg)) if msg.contains(construct) => {}
            other => mismatches.push(format!(
                "expected a rejection naming `{construct}` for\n{yaml}got {other:?}"
            )),
        }
    }
    // Matching buckets must actually occur, or the comparison would prove little.
    let buckets_seen: usize = cases[..generated]
        .iter()
        .filter_map(|c| SyncRules::parse(&c.rules).ok().map(|r| (r, c)))
        .map(|(r, c)| {
            c.rows
                .iter()
                .map(|(t, row)| r.evaluate_row(t, row).len())
                .sum::<usize>()
        })
        .sum();
    // And so must buckets that only table-backed parameter queries select.
    let table_backed: usize = cases[..generated]
        .iter()
        .filter_map(|c| SyncRules::parse(&c.rules).ok().map(|r| (r, c)))
        .map(|(r, c)| {
            let parameter_rows: Vec<_> = c
                .rows
                .iter()
                .flat_map(|(t, row)| r.evaluate_parameter_row(t, row))
                .collect();
            c.requests
                .iter()
                .map(|(claims, params, _)| {
                    r.request_buckets_with(claims, params, &parameter_rows)
                        .len()
                        - r.request_buckets(claims, params).len()
                })
                .sum::<usize>()
        })
        .sum();
    // And stream buckets: from request values, from subqueries, per subscription.
    let (mut stream_buckets, mut subquery_buckets, mut subscribed) = (0, 0, 0);
    let (mut stream_errors, mut array_buckets) = (0, 0);
    for case in &cases[generated..generated + generated_streams] {
        let Ok(rules) = SyncRules::parse(&case.rules) else {
            continue;
        };
        for request in standin_outcome(&rules, case).1 {
            stream_errors += request["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["errors"].as_array().map_or(0, Vec::len))
                .sum::<usize>();
            for bucket in request["buckets"].as_array().unwrap() {
                let name = bucket["bucket"].as_str().unwrap();
                if name.contains("|0[") {
                    stream_buckets += 1;
                    let definition = name.split('|').next().unwrap();
                    let def = rules.buckets().iter().find(|b| b.definition == definition);
                    subquery_buckets +=
                        usize::from(def.is_some_and(|d| !d.parameter_queries.is_empty()));
                    array_buckets += usize::from(def.is_some_and(|d| {
                        d.stream.as_ref().is_some_and(|s| {
                            s.parameters
                                .iter()
                                .any(|p| matches!(p.source, StreamSource::RequestArray(_)))
                        })
                    }));
                }
                subscribed += usize::from(bucket["subscriptions"].to_string().contains("sub"));
            }
        }
    }
    eprintln!(
        "{generated_streams} generated stream cases: {stream_buckets} stream buckets in \
         requests ({subquery_buckets} through subqueries, {array_buckets} through `IN` on an array, \
         {subscribed} with a `sub` reason), \
         {stream_errors} subscription errors"
    );
    eprintln!(
        "{} cases ({generated} generated), {rows_compared} rows ({buckets_seen} bucket rows in \
         generated cases) and {requests_compared} requests ({table_backed} buckets from \
         table-backed parameter queries) compared, {} mismatches",
        cases.len(),
        mismatches.len()
    );
    assert!(
        table_backed > 50,
        "too few table-backed buckets: {table_backed}"
    );
    assert!(
        buckets_seen > 500,
        "too few rows in buckets: {buckets_seen}"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches between the stand-in and @powersync/service-sync-rules; the first:\n\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(
        stream_buckets > 500
            && subquery_buckets > 50
            && array_buckets > 50
            && subscribed > 200
            && stream_errors > 10,
        "too few stream buckets or errors: {stream_buckets}, {subquery_buckets}, \
         {array_buckets}, {subscribed}, {stream_errors}"
    );
}
