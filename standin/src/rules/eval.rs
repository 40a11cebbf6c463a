//! Evaluation of parsed sync rules, as the service's sync-rules engine evaluates bucket
//! definitions: which buckets a source row belongs to (with its output data), and which
//! buckets a request's parameter queries select.
//!
//! Values follow the engine's SQLite model: NULL, INTEGER, REAL, TEXT. Bucket names are the
//! definition name followed by the JSON array of the bucket parameter values, where an
//! INTEGER and a REAL of the same value print alike (`by_user["u1"]`, `by_num[5]`); row data
//! is the JSON object the service persists (`JSONBig.stringify`: a REAL with an integral
//! value keeps a `.0`, e.g. `2.0`).

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value as Json;

use super::sql::{Column, ParameterQuery, ParameterValue, RequestValue};
use super::{BucketDefinition, SourceTable, SyncRules};
use crate::rows::{format_js_number, push_json_string};

/// A value in the sync-rules engine's SQLite type system (BLOBs are never synced).
#[derive(Debug, Clone, PartialEq)]
pub enum SqliteValue {
    /// NULL.
    Null,
    /// INTEGER (PostgreSQL integers and booleans as 1/0).
    Integer(i64),
    /// REAL (PostgreSQL floats).
    Real(f64),
    /// TEXT (everything else, in the service's text form).
    Text(String),
}

/// A source row: `(column, value)` in table column order.
pub type Row = [(String, SqliteValue)];

/// One row of one bucket, as [`SyncRules::evaluate_row`] produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedRow {
    /// The bucket name before versioning: definition name + JSON parameter array.
    pub bucket: String,
    /// The output table (`object_type`).
    pub object_type: String,
    /// The output `id` as text (`""` without one), the op's `object_id`.
    pub object_id: String,
    /// The output row as the service's JSON `data` string.
    pub data: String,
}

impl SyncRules {
    /// Every `(bucket, object_type, object_id, data)` a row of `table` belongs to, over all
    /// bucket definitions (in definition order, then data query order). A row whose filter
    /// column is NULL (or missing) belongs to no bucket of that query.
    pub fn evaluate_row(&self, table: &SourceTable, row: &Row) -> Vec<EvaluatedRow> {
        let mut out = Vec::new();
        for bucket in &self.buckets {
            if let Some(stream) = &bucket.stream {
                out.extend(stream_row(bucket, stream, table, row));
                continue;
            }
            for query in bucket.queries.iter().filter(|q| &q.table == table) {
                let mut values = Vec::with_capacity(bucket.parameters.len());
                for parameter in &bucket.parameters {
                    let column = query
                        .filters
                        .iter()
                        .find(|(_, p)| p == parameter)
                        .map(|(c, _)| c.as_str());
                    match column.and_then(|c| lookup(row, c)) {
                        Some(SqliteValue::Null) | None => break,
                        Some(value) => values.push(value.clone()),
                    }
                }
                if values.len() != bucket.parameters.len() {
                    continue;
                }
                let (object_id, data) = output_row(&query.columns, row);
                out.push(EvaluatedRow {
                    bucket: bucket_name(&bucket.definition, &values),
                    object_type: query.object_type.clone(),
                    object_id,
                    data,
                });
            }
        }
        out
    }

    /// The buckets a request selects through the request-only parameter queries (and every
    /// global bucket), sorted and without duplicates. `claims` is the verified token payload,
    /// `parameters` the client's `parameters` object. Table-backed parameter queries select
    /// nothing here: see [`SyncRules::request_buckets_with`].
    pub fn request_buckets(&self, claims: &Json, parameters: &Json) -> Vec<String> {
        self.request_buckets_with(claims, parameters, &[])
    }

    /// [`SyncRules::request_buckets`] with the table-backed parameter queries evaluated
    /// against `parameter_rows`, the current [`SyncRules::evaluate_parameter_row`] results
    /// of the parameter tables' rows.
    pub fn request_buckets_with(
        &self,
        claims: &Json,
        parameters: &Json,
        parameter_rows: &[ParameterRow],
    ) -> Vec<String> {
        self.request_buckets_by(claims, parameters, |definition, query, lookup| {
            parameter_rows
                .iter()
                .filter(|r| r.definition == definition && r.query == query && r.lookup == lookup)
                .map(|r| r.columns.clone())
                .collect()
        })
    }

    /// [`SyncRules::request_buckets_with`] over an index of the parameter rows: `matching`
    /// gives the selected columns of every parameter row of `(definition, query index)` whose
    /// lookup equals the given one (see [`lookup_key`] for a hashable form of it).
    pub fn request_buckets_by(
        &self,
        claims: &Json,
        parameters: &Json,
        matching: impl Fn(&str, usize, &[SqliteValue]) -> Vec<Vec<(String, SqliteValue)>>,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .resolve_by(
                claims,
                parameters,
                &super::StreamsRequest::defaults(),
                matching,
            )
            .buckets
            .into_iter()
            .map(|b| b.bucket)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// What a row of `table` contributes to table-backed parameter queries: per query whose
    /// `WHERE` columns are all non-NULL, the lookup a request must produce to match it and the
    /// row's selected columns.
    pub fn evaluate_parameter_row(&self, table: &SourceTable, row: &Row) -> Vec<ParameterRow> {
        let mut out = Vec::new();
        for bucket in &self.buckets {
            for (query_index, query) in bucket.parameter_queries.iter().enumerate() {
                if query.table.as_ref() != Some(table) {
                    continue;
                }
                let key: Option<Vec<SqliteValue>> = query
                    .lookups
                    .iter()
                    .map(|(column, _)| match lookup(row, column) {
                        None | Some(SqliteValue::Null) => None,
                        Some(value) => Some(normalize(value)),
                    })
                    .collect();
                let Some(key) = key else { continue };
                let columns = query
                    .outputs
                    .iter()
                    .filter_map(|(name, value)| match value {
                        ParameterValue::Column(c) => Some((
                            name.clone(),
                            lookup(row, c).cloned().unwrap_or(SqliteValue::Null),
                        )),
                        ParameterValue::Request(_) => None,
                    })
                    .collect();
                out.push(ParameterRow {
                    definition: bucket.definition.clone(),
                    query: query_index,
                    lookup: key,
                    columns,
                });
            }
        }
        out
    }
}

/// One parameter table row's contribution to one table-backed parameter query.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterRow {
    /// The bucket definition.
    pub definition: String,
    /// The parameter query's index in the definition.
    pub query: usize,
    /// The row's `WHERE` column values (numbers with an integral value as INTEGER), which a
    /// request's values must equal.
    pub lookup: Vec<SqliteValue>,
    /// The row's selected columns, `(output name, value)`.
    pub columns: Vec<(String, SqliteValue)>,
}

/// A lookup value compared number-agnostically: a REAL with an integral value is INTEGER.
pub(super) fn normalize(value: &SqliteValue) -> SqliteValue {
    match value {
        SqliteValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            SqliteValue::Integer(*f as i64)
        }
        other => other.clone(),
    }
}

fn lookup<'a>(row: &'a Row, column: &str) -> Option<&'a SqliteValue> {
    row.iter().find(|(c, _)| c == column).map(|(_, v)| v)
}

/// A hashable form of a parameter row's lookup for `(definition, query index)`: equal for
/// lookups that [`SyncRules::request_buckets_with`] treats as equal (values are normalized
/// by [`SyncRules::evaluate_parameter_row`] and by the request side alike).
pub fn lookup_key(definition: &str, query: usize, lookup: &[SqliteValue]) -> String {
    let mut key = bucket_name(&format!("{definition}/{query}"), lookup);
    // A REAL and a TEXT print differently, but NULL, INTEGER and REAL need a type mark to
    // stay apart from TEXT that looks like them.
    for value in lookup {
        key.push(match value {
            SqliteValue::Null => 'n',
            SqliteValue::Integer(_) => 'i',
            SqliteValue::Real(_) => 'r',
            SqliteValue::Text(_) => 't',
        });
    }
    key
}

/// `<definition>[<values as a JSON array>]`, numbers printed as JavaScript prints them (so a
/// REAL 5.0 and an INTEGER 5 name the same bucket).
pub fn bucket_name(definition: &str, values: &[SqliteValue]) -> String {
    bucket_name_with(definition, values, false)
}

/// [`bucket_name`]; with `integral_as_integer`, a REAL with an integral value is printed as
/// the integer it is (`1000000000000000000000` for 1e21), as the service's
/// `normalizeParameterValue` turns a stream row's values into BigInts.
fn bucket_name_with(definition: &str, values: &[SqliteValue], integral_as_integer: bool) -> String {
    let mut name = String::with_capacity(definition.len() + 2 + 8 * values.len());
    name.push_str(definition);
    name.push('[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            name.push(',');
        }
        match value {
            SqliteValue::Null => name.push_str("null"),
            SqliteValue::Integer(i) => name.push_str(&i.to_string()),
            SqliteValue::Real(f) if integral_as_integer && f.is_finite() && f.fract() == 0.0 => {
                // `{:.0}` is the exact decimal value, as `BigInt(f)` prints it; -0 is 0.
                name.push_str(&format!("{:.0}", f + 0.0));
            }
            SqliteValue::Real(f) if f.is_finite() => name.push_str(&format_js_number(*f)),
            SqliteValue::Real(_) => name.push_str("null"),
            SqliteValue::Text(t) => push_json_string(&mut name, t),
        }
    }
    name.push(']');
    name
}

/// The output `(id, data)` of a data query's columns for `row`. A selected column the row
/// lacks is left out of `data`, as the service's serializer leaves out undefined values.
fn output_row(columns: &[Column], row: &Row) -> (String, String) {
    let mut outputs: Vec<(&str, &SqliteValue)> = Vec::new();
    for column in columns {
        match column {
            Column::Star => outputs.extend(
                row.iter()
                    .filter(|(c, _)| !c.starts_with('_'))
                    .map(|(c, v)| (c.as_str(), v)),
            ),
            Column::Named { source, output } => {
                if let Some(value) = lookup(row, source) {
                    outputs.push((output, value));
                }
            }
        }
    }
    let mut data = String::with_capacity(16 * outputs.len() + 2);
    data.push('{');
    let mut id = String::new();
    for (i, (name, value)) in outputs.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        push_json_string(&mut data, name);
        data.push(':');
        push_data_value(&mut data, value);
        if *name == "id" {
            id = match value {
                SqliteValue::Null => String::new(),
                SqliteValue::Integer(i) => i.to_string(),
                SqliteValue::Real(f) => js_to_string(*f),
                SqliteValue::Text(t) => t.clone(),
            };
        }
    }
    data.push('}');
    (id, data)
}

/// JavaScript's `String(number)`, non-finite values included.
fn js_to_string(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        format_js_number(f)
    }
}

/// A value as `JSONBig.stringify` writes it into `data`.
fn push_data_value(out: &mut String, value: &SqliteValue) {
    match value {
        SqliteValue::Null => out.push_str("null"),
        SqliteValue::Integer(i) => out.push_str(&i.to_string()),
        SqliteValue::Real(f) => push_jsonbig_number(out, *f),
        SqliteValue::Text(t) => push_json_string(out, t),
    }
}

/// A JavaScript number as `JSONBig.stringify` writes it: integral values keep a `.0` so that
/// they parse back as REAL.
fn push_jsonbig_number(out: &mut String, f: f64) {
    if f.is_finite() {
        out.push_str(&crate::rows::jsonbig_number(f));
    } else {
        out.push_str(&js_to_string(f));
    }
}

/// A JSON value (as JavaScript's `JSON.parse` produced it, so every number is a JavaScript
/// number) serialized by `JSONBig.stringify`.
/// With `bools_as_ints` (the engine's conversion of token and client parameters), booleans
/// nested in objects and arrays become 1/0 first.
fn push_jsonbig(out: &mut String, value: &Json, bools_as_ints: bool) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) if bools_as_ints => out.push_str(if *b { "1" } else { "0" }),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => push_jsonbig_number(out, n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => push_json_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_jsonbig(out, item, bools_as_ints);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                push_jsonbig(out, item, bools_as_ints);
            }
            out.push('}');
        }
    }
}

/// A JSON value as a SQLite value (the engine's `jsonValueToSqlite`): booleans as 1/0,
/// objects and arrays as JSON text; `null` is NULL with `fixed`, else the text `null`.
/// `parameters` marks the engine's conversion of token and client parameters (integers stay
/// INTEGER, nested booleans become 1/0).
fn json_to_sqlite(value: Option<&Json>, fixed: bool, parameters: bool) -> SqliteValue {
    match value {
        None => SqliteValue::Null,
        Some(Json::Null) if fixed => SqliteValue::Null,
        Some(Json::Bool(b)) => SqliteValue::Integer(i64::from(*b)),
        Some(Json::String(s)) => SqliteValue::Text(s.clone()),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i) if parameters => SqliteValue::Integer(i),
            _ => SqliteValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Some(other) => {
            let mut text = String::new();
            push_jsonbig(&mut text, other, parameters);
            SqliteValue::Text(text)
        }
    }
}

/// The buckets of a stream a row of `table` belongs to: its column values in the order of the
/// stream's parameters. A NULL (or missing) column compared with a request value puts the row
/// in no bucket; one compared with a subquery's results is the value `null`, as the service's
/// `InOperator` keeps it.
fn stream_row(
    bucket: &BucketDefinition,
    stream: &super::StreamDefinition,
    table: &SourceTable,
    row: &Row,
) -> Vec<EvaluatedRow> {
    let mut out = Vec::new();
    for query in bucket.queries.iter().filter(|q| &q.table == table) {
        let mut values = Vec::with_capacity(stream.parameters.len());
        for parameter in &stream.parameters {
            match (lookup(row, &parameter.column), &parameter.source) {
                (
                    Some(SqliteValue::Null) | None,
                    super::StreamSource::Request(_) | super::StreamSource::RequestArray(_),
                ) => break,
                (None, super::StreamSource::Subquery(_)) => values.push(SqliteValue::Null),
                (Some(value), _) => values.push(value.clone()),
            }
        }
        if values.len() != stream.parameters.len() {
            continue;
        }
        let (object_id, data) = output_row(&query.columns, row);
        out.push(EvaluatedRow {
            bucket: bucket_name_with(&bucket.prefix(), &values, true),
            object_type: query.object_type.clone(),
            object_id,
            data,
        });
    }
    out
}

/// The values `<column> IN <value>` matches, as the service expands the value: a TEXT
/// holding a JSON array (`JSON.parse`) gives its strings, numbers (JavaScript numbers) and
/// nulls; anything else, nothing. Unparseable TEXT is an error.
fn json_array_elements(value: &SqliteValue) -> Result<Vec<SqliteValue>, serde_json::Error> {
    let SqliteValue::Text(text) = value else {
        return Ok(Vec::new());
    };
    let Json::Array(items) = serde_json::from_str::<Json>(text)? else {
        return Ok(Vec::new());
    };
    Ok(items
        .into_iter()
        .filter_map(|item| match item {
            Json::Null => Some(SqliteValue::Null),
            Json::String(s) => Some(SqliteValue::Text(s)),
            Json::Number(n) => n.as_f64().map(SqliteValue::Real),
            _ => None,
        })
        .collect())
}

/// The request a set of parameter queries is evaluated for.
pub(super) struct Request<'a> {
    /// The verified token payload.
    pub claims: &'a Json,
    /// The client's `parameters` object.
    pub parameters: &'a Json,
    /// The stream subscription's parameters (`{}` for a default subscription).
    pub subscription: &'a Json,
    /// The sync rules' `fixed_json_extract`.
    pub fixed_json_extract: bool,
}

/// The selected columns of the matching parameter rows of `(definition, query, lookup)`.
pub(super) type Matching<'m> =
    &'m dyn Fn(&str, usize, &[SqliteValue]) -> Vec<Vec<(String, SqliteValue)>>;

impl Request<'_> {
    /// The buckets of a bucket definition, `(static, dynamic)` as the service's queriers
    /// return them: one per request-only parameter query (or the global bucket), and per
    /// table-backed one as many as parameter rows match, duplicates included.
    pub(super) fn definition_buckets(
        &self,
        bucket: &BucketDefinition,
        matching: Matching<'_>,
    ) -> (Vec<String>, Vec<String>) {
        if bucket.parameter_queries.is_empty() {
            return (vec![bucket_name(&bucket.definition, &[])], Vec::new());
        }
        let (mut fixed, mut dynamic) = (Vec::new(), Vec::new());
        for (index, query) in bucket.parameter_queries.iter().enumerate() {
            if query.table.is_none() {
                fixed.push(self.bucket(bucket, query, &[]));
                continue;
            }
            let lookup = self.lookup(query);
            for columns in matching(&bucket.definition, index, &lookup) {
                dynamic.push(self.bucket(bucket, query, &columns));
            }
        }
        (fixed, dynamic)
    }

    /// The buckets of a stream for this request (and subscription), `(static, dynamic)`:
    /// the product of each parameter's values (one for a request value, the elements of a
    /// JSON array, a subquery's results over the parameter rows, duplicates included).
    /// `Err` with the service's error for a request value that `IN` cannot parse as JSON
    /// (the message after its prefix is serde_json's, not JavaScript's).
    pub(super) fn stream_buckets(
        &self,
        bucket: &BucketDefinition,
        stream: &super::StreamDefinition,
        matching: Matching<'_>,
    ) -> Result<(Vec<String>, Vec<String>), String> {
        let mut choices: Vec<Vec<SqliteValue>> = Vec::with_capacity(stream.parameters.len());
        for parameter in &stream.parameters {
            choices.push(match &parameter.source {
                super::StreamSource::Request(value) => vec![self.value(value)],
                super::StreamSource::RequestArray(value) => json_array_elements(&self.value(value))
                    .map_err(|e| format!("Error evaluating bucket ids: {e}"))?,
                super::StreamSource::Subquery(index) => {
                    let query = &bucket.parameter_queries[*index];
                    matching(&bucket.definition, *index, &self.lookup(query))
                        .into_iter()
                        .map(|columns| {
                            lookup(&columns, "result")
                                .cloned()
                                .unwrap_or(SqliteValue::Null)
                        })
                        .collect()
                }
            });
        }
        let mut names = vec![Vec::new()];
        for values in &choices {
            names = names
                .iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
        }
        let prefix = bucket.prefix();
        let names: Vec<String> = names.iter().map(|v| bucket_name(&prefix, v)).collect();
        Ok(if bucket.parameter_queries.is_empty() {
            (names, Vec::new())
        } else {
            (Vec::new(), names)
        })
    }

    /// The lookup a table-backed parameter query (or stream subquery) needs for this request.
    fn lookup(&self, query: &ParameterQuery) -> Vec<SqliteValue> {
        query
            .lookups
            .iter()
            .map(|(_, v)| normalize(&self.value(v)))
            .collect()
    }

    /// The bucket of `query` with a parameter row's `columns`.
    fn bucket(
        &self,
        bucket: &BucketDefinition,
        query: &ParameterQuery,
        columns: &[(String, SqliteValue)],
    ) -> String {
        let values: Vec<SqliteValue> = query
            .outputs
            .iter()
            .map(|(name, value)| match value {
                ParameterValue::Request(v) => self.value(v),
                ParameterValue::Column(_) => {
                    lookup(columns, name).cloned().unwrap_or(SqliteValue::Null)
                }
            })
            .collect();
        bucket_name(&bucket.definition, &values)
    }

    fn value(&self, value: &RequestValue) -> SqliteValue {
        match value {
            RequestValue::UserId => json_to_sqlite(self.claims.get("sub"), true, false),
            RequestValue::Jwt(path) => self.extract(self.claims, path),
            RequestValue::Parameters(path) => self.extract(self.parameters, path),
            RequestValue::TokenParameter(name) => json_to_sqlite(
                self.claims.get("parameters").and_then(|p| p.get(name)),
                true,
                true,
            ),
            RequestValue::UserParameter(name) => {
                json_to_sqlite(self.parameters.get(name), true, true)
            }
            RequestValue::AuthParameter(key) => extract(self.claims, key, true),
            // The engine's client parameters have nested booleans as 1/0 (`user_parameters`).
            RequestValue::ConnectionParameter(key) => {
                json_to_sqlite(extract_json(self.parameters, key, true), true, true)
            }
            RequestValue::SubscriptionParameter(key) => extract(self.subscription, key, true),
            RequestValue::SubscriptionParameters(path) => self.extract(self.subscription, path),
        }
    }

    /// `<json> ->> '<path>'` with the rules' `fixed_json_extract`.
    fn extract(&self, root: &Json, path: &str) -> SqliteValue {
        extract(root, path, self.fixed_json_extract)
    }
}

/// `<json> ->> '<path>'`: a path starting with `$` splits on `.` (dropping the `$`);
/// another path is one key with `fixed` (`fixed_json_extract`, and always for the streams'
/// `*.parameter('<key>')`), else also split on `.`.
fn extract(root: &Json, path: &str, fixed: bool) -> SqliteValue {
    // Numbers went through `JSONBig.stringify` and back, so they are all REAL here.
    json_to_sqlite(extract_json(root, path, fixed), fixed, false)
}

/// The JSON value at `path` in `root` (see [`extract`]).
fn extract_json<'a>(root: &'a Json, path: &str, fixed: bool) -> Option<&'a Json> {
    let components: Vec<&str> = if let Some(rest) = path.strip_prefix('$') {
        rest.split('.').skip(1).collect()
    } else if fixed {
        vec![path]
    } else {
        path.split('.').collect()
    };
    let mut value = Some(root);
    for component in components {
        value = match value {
            Some(Json::Object(map)) => map.get(component),
            Some(Json::Array(items)) => component
                .parse::<usize>()
                .ok()
                .filter(|i| i.to_string() == component)
                .and_then(|i| items.get(i)),
            Some(Json::Null) | None => break,
            Some(_) => None,
        };
    }
    value
}

/// Parses a `data` string as the stand-in builds it (`crate::rows::row_data`) back into a
/// row in column order: integers as INTEGER, other numbers as REAL, strings as TEXT.
pub fn row_from_data(data: &str) -> Result<Vec<(String, SqliteValue)>, serde_json::Error> {
    struct RowVisitor;
    impl<'de> Visitor<'de> for RowVisitor {
        type Value = Vec<(String, SqliteValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of column values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut row = Vec::new();
            while let Some((column, value)) = map.next_entry::<String, Json>()? {
                let value = match value {
                    Json::Null => SqliteValue::Null,
                    Json::Bool(b) => SqliteValue::Integer(i64::from(b)),
                    Json::Number(n) => match n.as_i64() {
                        Some(i) => SqliteValue::Integer(i),
                        None => SqliteValue::Real(n.as_f64().unwrap_or(f64::NAN)),
                    },
                    Json::String(s) => SqliteValue::Text(s),
                    other => SqliteValue::Text(other.to_string()),
                };
                row.push((column, value));
            }
            Ok(row)
        }
    }
    let mut de = serde_json::Deserializer::from_str(data);
    let row = de.deserialize_map(RowVisitor)?;
    de.end()?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> SqliteValue {
        SqliteValue::Text(s.to_owned())
    }

    #[test]
    fn bucket_names_and_data() {
        assert_eq!(
            bucket_name(
                "b",
                &[
                    text("u\"1"),
                    SqliteValue::Integer(5),
                    SqliteValue::Real(5.0),
                    SqliteValue::Real(1.5),
                    SqliteValue::Null
                ]
            ),
            r#"b["u\"1",5,5,1.5,null]"#
        );
        let row = vec![
            ("id".to_owned(), SqliteValue::Integer(7)),
            ("_hidden".to_owned(), text("x")),
            ("f".to_owned(), SqliteValue::Real(2.0)),
            ("g".to_owned(), SqliteValue::Real(1e21)),
        ];
        assert_eq!(
            output_row(&[Column::Star], &row),
            ("7".to_owned(), r#"{"id":7,"f":2.0,"g":1e+21}"#.to_owned())
        );
        let named = [
            Column::Named {
                source: "f".into(),
                output: "id".into(),
            },
            Column::Named {
                source: "missing".into(),
                output: "m".into(),
            },
        ];
        assert_eq!(
            output_row(&named, &row),
            ("2".to_owned(), r#"{"id":2.0}"#.to_owned())
        );
    }

    #[test]
    fn rows_parse_back_in_column_order() {
        let row = row_from_data(r#"{"z":1,"a":1.5,"m":"x","n":null}"#).unwrap();
        assert_eq!(
            row,
            vec![
                ("z".to_owned(), SqliteValue::Integer(1)),
                ("a".to_owned(), SqliteValue::Real(1.5)),
                ("m".to_owned(), text("x")),
                ("n".to_owned(), SqliteValue::Null),
            ]
        );
        assert!(row_from_data("[1]").is_err());
    }
}
