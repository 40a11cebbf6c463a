//! Sync rules: the subset of the service's `sync_rules.yaml` the stand-in implements.
//!
//! Supported: bucket definitions with request-only parameter queries
//! (`SELECT request.user_id() AS user_id`, `request.jwt() ->> '<claim>'`,
//! `request.parameters() ->> '<name>'`, `token_parameters.<name>`, `user_parameters.<name>`)
//! and table-backed ones (`SELECT id AS list_id FROM lists WHERE owner = request.user_id()`,
//! conditions `<column> = <request value>` joined by AND),
//! data queries `SELECT * | <column> [AS <name>], ... FROM <table> [AS <alias>]` (the table
//! optionally schema-qualified and/or double-quoted) with an optional
//! `WHERE <column> = bucket.<parameter> [AND ...]` covering every bucket parameter, each
//! definition with an optional `priority:` (0..=3, default 3), and the `config:` section's
//! `edition` (1 or 2) with its compatibility options ([`Compatibility`], `fixed_json_extract`).
//! Edition-2 Sync Streams (`streams:`) with equality, `IN <array>` and `IN (SELECT ...)`
//! conditions on request values are parsed by `streams` into definitions with a [`StreamDefinition`];
//! a request's buckets, priorities and subscription reasons come from
//! [`SyncRules::resolve_by`] (`resolve`).
//! Anything else (other expressions, `IN` on values, `OR`, edition 3) is
//! rejected with [`Error::UnsupportedSyncRules`] naming the construct instead of being
//! silently ignored. [`SyncRules::evaluate_row`], [`SyncRules::evaluate_parameter_row`] and
//! [`SyncRules::request_buckets_with`] evaluate
//! them as the service's engine does (`eval`), checked against it by
//! `tests/sync_rules_oracle.rs`.

mod eval;
mod resolve;
mod sql;
mod streams;

pub use eval::{
    EvaluatedRow, ParameterRow, Row, SqliteValue, bucket_name, lookup_key, row_from_data,
};
pub use resolve::{
    Reason, Resolution, ResolvedBucket, StreamDescription, StreamSubscription, StreamsRequest,
};
pub use sql::{Column, ParameterQuery, ParameterValue, RequestValue};
pub use streams::{StreamDefinition, StreamParameter, StreamSource, stream_prefix};

use serde::Deserialize;

use crate::Error;

/// A table a data query reads: PostgreSQL schema and table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceTable {
    /// Schema (default `public`).
    pub schema: String,
    /// Table name.
    pub name: String,
}

/// One data query of a bucket: rows of `table` appear as `object_type` ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataQuery {
    /// The source table.
    pub table: SourceTable,
    /// The output table name (`object_type`): the alias, or the table name.
    pub object_type: String,
    /// The output columns: `[Column::Star]` or named columns.
    pub columns: Vec<Column>,
    /// `WHERE` conditions `(row column, bucket parameter)`, one per bucket parameter.
    pub filters: Vec<(String, String)>,
}

/// The priority of buckets that do not name one (the service's default).
pub const DEFAULT_PRIORITY: u8 = 3;

/// A bucket definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDefinition {
    /// The name of its bucket when it has no parameters, before versioning:
    /// `<definition name>[]` (clients see `<generation>#<definition name>[]`, see
    /// [`BucketDefinition::versioned_name`]). A parameterised definition has one bucket per
    /// set of parameter values ([`SyncRules::evaluate_row`], [`SyncRules::request_buckets`]).
    pub name: String,
    /// The definition's name as written in the YAML (the default stream's name).
    pub definition: String,
    /// The bucket priority, 0 (synced first) to 3 (the default).
    pub priority: u8,
    /// The bucket parameters, in the order of the first parameter query's outputs (the order
    /// of the values in bucket names); empty for a global bucket.
    pub parameters: Vec<String>,
    /// Its parameter queries (none for a global bucket).
    pub parameter_queries: Vec<ParameterQuery>,
    /// Its data queries.
    pub queries: Vec<DataQuery>,
    /// `Some` for a Sync Stream (`streams:`), whose buckets are named
    /// `<stream>|0[<values>]` ([`stream_prefix`]) and whose parameter queries are its
    /// subqueries.
    pub stream: Option<StreamDefinition>,
}

impl BucketDefinition {
    /// The bucket name before the JSON array of parameter values: the definition name, or
    /// `<stream>|0` for a stream.
    pub fn prefix(&self) -> String {
        match self.stream {
            Some(_) => stream_prefix(&self.definition),
            None => self.definition.clone(),
        }
    }

    /// Whether clients get it without subscribing: every bucket definition, and a stream
    /// with `auto_subscribe: true`.
    pub fn is_default(&self) -> bool {
        self.stream.as_ref().is_none_or(|s| s.auto_subscribe)
    }

    /// Whether the definition has no bucket parameters (one bucket, `<definition>[]`).
    pub fn is_global(&self) -> bool {
        self.parameters.is_empty()
    }

    /// The bucket id clients see for snapshot `generation`: `<generation>#<name>`, as the
    /// service versions bucket ids with the sync rules' replication id (storage v2), so a new
    /// snapshot gets new buckets instead of clashing with what clients already hold.
    pub fn versioned_name(&self, generation: u64) -> String {
        format!("{generation}#{}", self.name)
    }
}

/// The compatibility options of the `config:` section that change what the stand-in sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compatibility {
    /// `edition` (1 = legacy, the default; 2 turns on the options fixed in it).
    pub edition: u8,
    /// `timestamps_iso8601`: `timestamp`/`timestamptz` with a `T` between date and time
    /// (on by default from edition 2).
    pub timestamps_iso8601: bool,
}

/// Parsed sync rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRules {
    buckets: Vec<BucketDefinition>,
    compatibility: Compatibility,
    /// `fixed_json_extract` (on by default from edition 2): `->> 'a.b'` reads the key `a.b`
    /// instead of the path `a` then `b`.
    fixed_json_extract: bool,
}

#[derive(Deserialize)]
struct RulesFile {
    /// In file order (the order of the checkpoint's `streams`, as the service lists them).
    bucket_definitions: Option<serde_yaml_ng::Mapping>,
    streams: Option<serde_yaml_ng::Mapping>,
    config: Option<ConfigYaml>,
}

/// One entry of `streams:` (edition 2). `queries` and `with` are rejected, as the service
/// rejects them before edition 3.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamYaml {
    query: Option<serde_yaml_ng::Value>,
    queries: Option<serde_yaml_ng::Value>,
    with: Option<serde_yaml_ng::Value>,
    auto_subscribe: Option<bool>,
    priority: Option<serde_yaml_ng::Value>,
    accept_potentially_dangerous_queries: Option<bool>,
}

/// The entries of a `bucket_definitions:` or `streams:` map, in file order.
fn entries<T: serde::de::DeserializeOwned>(
    what: &str,
    map: Option<serde_yaml_ng::Mapping>,
) -> Result<Vec<(String, T)>, Error> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(key, value)| {
            let name = match key {
                serde_yaml_ng::Value::String(name) => name,
                other => {
                    return Err(Error::Config(format!(
                        "sync rules: {what} names must be strings, got {other:?}"
                    )));
                }
            };
            let value = serde_yaml_ng::from_value(value)
                .map_err(|e| Error::Config(format!("sync rules: {what} `{name}`: {e}")))?;
            Ok((name, value))
        })
        .collect()
}

fn parse_stream_yaml(
    name: String,
    def: StreamYaml,
    edition: u8,
) -> Result<BucketDefinition, Error> {
    let unsupported = |why: String| Error::UnsupportedSyncRules(format!("stream `{name}`: {why}"));
    if edition < 2 {
        return Err(unsupported(
            "Sync streams require edition 2 or later (`config: {edition: 2}`)".to_owned(),
        ));
    }
    if def.queries.is_some() {
        return Err(unsupported(
            "`queries`: multiple queries are not supported before edition 3 (as in the service)"
                .to_owned(),
        ));
    }
    if def.with.is_some() {
        return Err(unsupported(
            "`with`: common table expressions are not supported before edition 3 (as in the service)"
                .to_owned(),
        ));
    }
    let _ = def.accept_potentially_dangerous_queries;
    let sql = match def.query {
        Some(serde_yaml_ng::Value::String(sql)) => sql,
        Some(_) => {
            return Err(Error::Config(format!(
                "stream `{name}`: query must be a string"
            )));
        }
        None => {
            return Err(Error::Config(format!(
                "stream `{name}`: a `query` is required"
            )));
        }
    };
    // Validated, but without effect: the service's edition-2 streams (`SyncStream` in
    // `legacy/streams/`) never read it and keep the default priority; only a subscription's
    // `override_priority` changes it.
    parse_priority(&name, def.priority)?;
    streams::parse_stream(
        &name,
        &sql,
        def.auto_subscribe == Some(true),
        DEFAULT_PRIORITY,
    )
    .map_err(|why| unsupported(format!("`{sql}`: {why}")))
}

/// The `config:` section. Unknown keys are rejected rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigYaml {
    edition: Option<u8>,
    timestamps_iso8601: Option<bool>,
    /// Bucket ids are always versioned here (as with the service's storage v2).
    versioned_bucket_ids: Option<bool>,
    /// How `->>` splits paths.
    fixed_json_extract: Option<bool>,
    custom_postgres_types: Option<bool>,
}

/// The compatibility options and `fixed_json_extract`.
fn parse_compatibility(config: Option<ConfigYaml>) -> Result<(Compatibility, bool), Error> {
    let Some(config) = config else {
        return Ok((
            Compatibility {
                edition: 1,
                timestamps_iso8601: false,
            },
            false,
        ));
    };
    let edition = config.edition.unwrap_or(1);
    if !(1..=2).contains(&edition) {
        return Err(Error::UnsupportedSyncRules(format!(
            "config.edition {edition}: only editions 1 and 2 are supported"
        )));
    }
    if config.versioned_bucket_ids == Some(false) {
        return Err(Error::UnsupportedSyncRules(
            "config.versioned_bucket_ids: false is not supported (bucket ids are always versioned)"
                .to_owned(),
        ));
    }
    let _ = config.custom_postgres_types;
    Ok((
        Compatibility {
            edition,
            timestamps_iso8601: config.timestamps_iso8601.unwrap_or(edition >= 2),
        },
        config.fixed_json_extract.unwrap_or(edition >= 2),
    ))
}

fn parse_priority(name: &str, value: Option<serde_yaml_ng::Value>) -> Result<u8, Error> {
    let Some(value) = value else {
        return Ok(DEFAULT_PRIORITY);
    };
    value
        .as_u64()
        .filter(|p| *p <= 3)
        .map(|p| p as u8)
        .ok_or_else(|| {
            Error::Config(format!(
                "bucket `{name}`: priority must be an integer from 0 to 3, got {value:?}"
            ))
        })
}

#[derive(Deserialize)]
struct BucketYaml {
    parameters: Option<serde_yaml_ng::Value>,
    data: Option<Vec<String>>,
    priority: Option<serde_yaml_ng::Value>,
}

impl SyncRules {
    /// Parses `sync_rules.yaml` text.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        let file: RulesFile =
            serde_yaml_ng::from_str(yaml).map_err(|e| Error::Config(format!("sync rules: {e}")))?;
        let (compatibility, fixed_json_extract) = parse_compatibility(file.config)?;
        let defs: Vec<(String, BucketYaml)> =
            entries("bucket definition", file.bucket_definitions)?;
        let stream_defs: Vec<(String, StreamYaml)> = entries("stream", file.streams)?;
        if defs.is_empty() && stream_defs.is_empty() {
            return Err(Error::Config(
                "sync rules define no bucket_definitions or streams".to_owned(),
            ));
        }
        let mut buckets: Vec<BucketDefinition> = defs
            .into_iter()
            .map(|(name, def)| parse_bucket(name, def))
            .collect::<Result<_, _>>()?;
        for (name, def) in stream_defs {
            if buckets.iter().any(|b| b.definition == name) {
                return Err(Error::Config(format!(
                    "`{name}`: duplicate stream or bucket definition"
                )));
            }
            buckets.push(parse_stream_yaml(name, def, compatibility.edition)?);
        }
        Ok(SyncRules {
            buckets,
            compatibility,
            fixed_json_extract,
        })
    }

    /// Checks that the rules need nothing the stand-in's stream cannot serve: two source
    /// tables output under the same name in one definition would share object ids in its
    /// buckets (the service keeps them apart by source table), which the stand-in does not.
    pub fn check_served_by_stream(&self) -> Result<(), Error> {
        for bucket in &self.buckets {
            for (i, query) in bucket.queries.iter().enumerate() {
                if bucket.queries[..i]
                    .iter()
                    .any(|q| q.object_type == query.object_type && q.table != query.table)
                {
                    return Err(Error::UnsupportedSyncRules(format!(
                        "bucket `{}`: two tables output as `{}` are not served by the \
                         stand-in's stream",
                        bucket.definition, query.object_type
                    )));
                }
            }
        }
        Ok(())
    }

    /// `(bucket name, object_type)` of every bucket a row of `table` belongs to, when that
    /// needs no evaluation: every data query of `table` is `SELECT *` in a global bucket and
    /// no parameter query reads it, so each row goes whole to the same buckets (its `data` is
    /// [`crate::rows::row_data`]). `None` when rows of `table` must be evaluated one by one
    /// ([`SyncRules::evaluate_row`], [`SyncRules::evaluate_parameter_row`]).
    pub fn direct_targets(&self, table: &SourceTable) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        for bucket in &self.buckets {
            if bucket
                .parameter_queries
                .iter()
                .any(|q| q.table.as_ref() == Some(table))
            {
                return None;
            }
            for query in bucket.queries.iter().filter(|q| &q.table == table) {
                if !bucket.is_global() || query.columns != [Column::Star] {
                    return None;
                }
                out.push((bucket.name.clone(), query.object_type.clone()));
            }
        }
        Some(out)
    }

    /// The `config:` section's compatibility options.
    pub fn compatibility(&self) -> Compatibility {
        self.compatibility
    }

    /// The bucket definitions in file order, then the streams in file order (the service's
    /// order of bucket sources).
    pub fn buckets(&self) -> &[BucketDefinition] {
        &self.buckets
    }

    /// Every source table some data or parameter query reads.
    pub fn tables(&self) -> Vec<SourceTable> {
        let mut tables: Vec<SourceTable> = self
            .buckets
            .iter()
            .flat_map(|b| {
                let data = b.queries.iter().map(|q| q.table.clone());
                data.chain(b.parameter_queries.iter().filter_map(|q| q.table.clone()))
            })
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }
}

/// The `parameters:` of a bucket: one query or a list of them.
fn parameter_sqls(name: &str, value: Option<serde_yaml_ng::Value>) -> Result<Vec<String>, Error> {
    let bad = || {
        Error::Config(format!(
            "bucket `{name}`: parameters must be a query or a list of queries"
        ))
    };
    match value {
        None => Ok(Vec::new()),
        Some(serde_yaml_ng::Value::String(sql)) => Ok(vec![sql]),
        Some(serde_yaml_ng::Value::Sequence(items)) => items
            .into_iter()
            .map(|item| match item {
                serde_yaml_ng::Value::String(sql) => Ok(sql),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn parse_bucket(name: String, def: BucketYaml) -> Result<BucketDefinition, Error> {
    let unsupported = |sql: &str, why: String| {
        Error::UnsupportedSyncRules(format!("bucket `{name}`: `{sql}`: {why}"))
    };
    let priority = parse_priority(&name, def.priority)?;
    let mut parameter_queries: Vec<ParameterQuery> = Vec::new();
    let mut parameters: Vec<String> = Vec::new();
    for sql in parameter_sqls(&name, def.parameters)? {
        let query = sql::parse_parameter_query(&sql).map_err(|why| unsupported(&sql, why))?;
        let names: Vec<String> = query.outputs.iter().map(|(n, _)| n.clone()).collect();
        if parameter_queries.is_empty() {
            parameters = names;
        } else {
            let mut a = names.clone();
            let mut b = parameters.clone();
            a.sort();
            b.sort();
            if a != b {
                return Err(unsupported(
                    &sql,
                    format!(
                        "bucket parameters must match for each parameter query (expected {parameters:?})"
                    ),
                ));
            }
        }
        parameter_queries.push(query);
    }
    let mut queries: Vec<DataQuery> = Vec::new();
    for sql in def.data.unwrap_or_default() {
        let parsed = sql::parse_data_query(&sql).map_err(|why| unsupported(&sql, why))?;
        let mut covered: Vec<&str> = parsed.filters.iter().map(|(_, p)| p.as_str()).collect();
        covered.sort();
        let mut expected: Vec<&str> = parameters.iter().map(String::as_str).collect();
        expected.sort();
        if covered != expected {
            return Err(unsupported(
                &sql,
                format!(
                    "the WHERE clause must match each bucket parameter exactly once with \
                     `<column> = bucket.<parameter>` (parameters {parameters:?}, matched {covered:?})"
                ),
            ));
        }
        let query = DataQuery {
            table: parsed.table,
            object_type: parsed.object_type,
            columns: parsed.columns,
            filters: parsed.filters,
        };
        if !queries.contains(&query) {
            queries.push(query);
        }
    }
    Ok(BucketDefinition {
        name: format!("{name}[]"),
        definition: name,
        priority,
        parameters,
        parameter_queries,
        queries,
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_global_buckets_over_several_tables() {
        let rules = SyncRules::parse(
            "bucket_definitions:\n  global:\n    data:\n      - SELECT * FROM lww\n      \
             - select * from app.\"Todos\" as todos;\n  other:\n    data:\n      - SELECT * FROM lww\n",
        )
        .unwrap();
        let names: Vec<_> = rules.buckets().iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["global[]", "other[]"]);
        let lww = SourceTable {
            schema: "public".into(),
            name: "lww".into(),
        };
        assert_eq!(
            rules.direct_targets(&lww),
            Some(vec![
                ("global[]".to_owned(), "lww".to_owned()),
                ("other[]".to_owned(), "lww".to_owned())
            ])
        );
        let todos = SourceTable {
            schema: "app".into(),
            name: "Todos".into(),
        };
        assert_eq!(
            rules.direct_targets(&todos),
            Some(vec![("global[]".to_owned(), "todos".to_owned())])
        );
        assert_eq!(rules.tables().len(), 2);
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        for yaml in [
            "bucket_definitions:\n  b:\n    parameters: SELECT token_parameters.user_id\n    data:\n      - SELECT * FROM t\n",
            "bucket_definitions:\n  b:\n    data:\n      - SELECT name FROM t\n",
            "bucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t WHERE x = 1\n",
            "streams:\n  s:\n    query: SELECT * FROM t\n",
        ] {
            assert!(
                matches!(SyncRules::parse(yaml), Err(Error::UnsupportedSyncRules(_))),
                "{yaml}"
            );
        }
        let clash = SyncRules::parse(
            "bucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n      - SELECT * FROM u AS t\n",
        )
        .unwrap();
        assert!(matches!(
            clash.check_served_by_stream(),
            Err(Error::UnsupportedSyncRules(_))
        ));
        for yaml in [
            "bucket_definitions:\n  b:\n    data:\n      - SELECT id, x FROM t\n",
            "bucket_definitions:\n  b:\n    parameters: SELECT request.user_id() AS u\n    data:\n      - SELECT * FROM t WHERE o = bucket.u\n",
        ] {
            let rules = SyncRules::parse(yaml).unwrap();
            rules.check_served_by_stream().unwrap();
            let t = SourceTable {
                schema: "public".into(),
                name: "t".into(),
            };
            assert_eq!(rules.direct_targets(&t), None, "{yaml}");
        }
        assert!(matches!(
            SyncRules::parse("bucket_definitions: {}\n"),
            Err(Error::Config(_))
        ));
        for yaml in [
            "config:\n  edition: 3\nbucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n",
            "config:\n  versioned_bucket_ids: false\nbucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n",
        ] {
            assert!(
                matches!(SyncRules::parse(yaml), Err(Error::UnsupportedSyncRules(_))),
                "{yaml}"
            );
        }
        for bad in ["4", "-1", "high", "1.5"] {
            let yaml = format!(
                "bucket_definitions:\n  b:\n    priority: {bad}\n    data:\n      - SELECT * FROM t\n"
            );
            let err = SyncRules::parse(&yaml).unwrap_err();
            assert!(err.to_string().contains("priority"), "{err}");
        }
        let err = SyncRules::parse(
            "config:\n  nonsense: 1\nbucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn priorities_and_editions() {
        let rules = SyncRules::parse(
            "config:\n  edition: 2\nbucket_definitions:\n  urgent:\n    priority: 0\n    data:\n      - SELECT * FROM a\n  \
             rest:\n    data:\n      - SELECT * FROM b\n",
        )
        .unwrap();
        let prios: Vec<(&str, u8)> = rules
            .buckets()
            .iter()
            .map(|b| (b.name.as_str(), b.priority))
            .collect();
        assert_eq!(prios, [("urgent[]", 0), ("rest[]", 3)]);
        assert_eq!(rules.buckets()[0].versioned_name(4), "4#urgent[]");
        assert_eq!(
            rules.compatibility(),
            Compatibility {
                edition: 2,
                timestamps_iso8601: true
            }
        );
        let legacy = SyncRules::parse(
            "config:\n  timestamps_iso8601: true\nbucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n",
        )
        .unwrap();
        assert!(legacy.compatibility().timestamps_iso8601);
        assert!(
            !SyncRules::parse("bucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n")
                .unwrap()
                .compatibility()
                .timestamps_iso8601
        );
    }

    #[test]
    fn streams_and_their_requests() {
        let rules = SyncRules::parse(
            "config:\n  edition: 2\nbucket_definitions:\n  zglobal:\n    data:\n      - SELECT * FROM g\n\
             streams:\n  my_lists:\n    auto_subscribe: true\n    query: SELECT * FROM lists WHERE owner_id = auth.user_id()\n  \
             list_todos:\n    priority: 1\n    query: SELECT * FROM todos WHERE list_id = subscription.parameter('list')\n",
        )
        .unwrap();
        let names: Vec<&str> = rules
            .buckets()
            .iter()
            .map(|b| b.definition.as_str())
            .collect();
        assert_eq!(names, ["zglobal", "my_lists", "list_todos"]);
        let claims = serde_json::json!({"sub": "u1"});
        let none = |_: &str, _: usize, _: &[SqliteValue]| Vec::new();
        let request = StreamsRequest {
            include_defaults: true,
            subscriptions: vec![
                StreamSubscription {
                    stream: "list_todos".into(),
                    parameters: serde_json::json!({"list": "l1"}),
                    override_priority: Some(0),
                },
                StreamSubscription {
                    stream: "nope".into(),
                    parameters: serde_json::json!({}),
                    override_priority: None,
                },
                StreamSubscription {
                    stream: "my_lists".into(),
                    parameters: serde_json::json!({}),
                    override_priority: Some(2),
                },
            ],
        };
        let resolution = rules.resolve_by(&claims, &serde_json::json!({}), &request, none);
        let streams: Vec<(&str, bool)> = resolution
            .streams
            .iter()
            .map(|s| (s.name.as_str(), s.is_default))
            .collect();
        assert_eq!(
            streams,
            [("zglobal", true), ("my_lists", true), ("list_todos", false)]
        );
        let buckets: Vec<(&str, u8, Vec<Reason>)> = resolution
            .buckets
            .iter()
            .map(|b| (b.bucket.as_str(), b.priority, b.reasons.clone()))
            .collect();
        assert_eq!(
            buckets,
            [
                ("list_todos|0[\"l1\"]", 0, vec![Reason::Subscription(0)]),
                (
                    "my_lists|0[\"u1\"]",
                    2,
                    vec![Reason::Subscription(2), Reason::Default]
                ),
                ("zglobal[]", 3, vec![Reason::Default]),
            ]
        );
        let without_defaults = StreamsRequest {
            include_defaults: false,
            subscriptions: request.subscriptions[..1].to_vec(),
        };
        let resolution = rules.resolve_by(&claims, &serde_json::json!({}), &without_defaults, none);
        assert_eq!(resolution.streams.len(), 1);
        assert_eq!(resolution.buckets.len(), 1);
        let table = SourceTable {
            schema: "public".into(),
            name: "todos".into(),
        };
        let row = row_from_data(r#"{"id":"t1","list_id":"l1"}"#).unwrap();
        let evaluated = rules.evaluate_row(&table, &row);
        assert_eq!(evaluated[0].bucket, "list_todos|0[\"l1\"]");
        assert_eq!(rules.direct_targets(&table), None);
        for yaml in [
            "streams:\n  s:\n    query: SELECT * FROM t\n",
            "config:\n  edition: 2\nstreams:\n  s:\n    queries: [SELECT * FROM t]\n",
            "config:\n  edition: 2\nstreams:\n  s:\n    query: SELECT * FROM t WHERE a = 1\n",
        ] {
            assert!(
                matches!(SyncRules::parse(yaml), Err(Error::UnsupportedSyncRules(_))),
                "{yaml}"
            );
        }
        let duplicate = "config:\n  edition: 2\nbucket_definitions:\n  s:\n    data: [SELECT * FROM t]\nstreams:\n  s:\n    query: SELECT * FROM t\n";
        assert!(
            SyncRules::parse(duplicate)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }
}
