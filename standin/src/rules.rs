//! Sync rules: the subset of the service's `sync_rules.yaml` the stand-in implements.
//!
//! Supported: global buckets whose data queries are `SELECT * FROM <table> [AS <alias>]`
//! (the table optionally schema-qualified and/or double-quoted), each with an optional
//! `priority:` (0..=3, default 3), and the `config:` section's `edition` (1 or 2) with the
//! compatibility options that apply to such buckets ([`Compatibility`]). Anything else
//! (parameter queries, `WHERE`, column lists, Sync Streams) is rejected with
//! [`Error::UnsupportedSyncRules`] instead of being silently ignored.

use std::collections::BTreeMap;

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
}

/// The priority of buckets that do not name one (the service's default).
pub const DEFAULT_PRIORITY: u8 = 3;

/// A global bucket definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDefinition {
    /// The bucket's name before versioning: `<definition name>[]` (clients see
    /// `<generation>#<definition name>[]`, see [`BucketDefinition::versioned_name`]).
    pub name: String,
    /// The definition's name as written in the YAML (the default stream's name).
    pub definition: String,
    /// The bucket priority, 0 (synced first) to 3 (the default).
    pub priority: u8,
    /// Its data queries.
    pub queries: Vec<DataQuery>,
}

impl BucketDefinition {
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
}

#[derive(Deserialize)]
struct RulesFile {
    bucket_definitions: Option<BTreeMap<String, BucketYaml>>,
    streams: Option<serde_yaml_ng::Value>,
    config: Option<ConfigYaml>,
}

/// The `config:` section. Unknown keys are rejected rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigYaml {
    edition: Option<u8>,
    timestamps_iso8601: Option<bool>,
    /// Bucket ids are always versioned here (as with the service's storage v2).
    versioned_bucket_ids: Option<bool>,
    /// No expressions are supported, so this changes nothing.
    fixed_json_extract: Option<bool>,
    custom_postgres_types: Option<bool>,
}

fn parse_compatibility(config: Option<ConfigYaml>) -> Result<Compatibility, Error> {
    let Some(config) = config else {
        return Ok(Compatibility {
            edition: 1,
            timestamps_iso8601: false,
        });
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
    let _ = (config.fixed_json_extract, config.custom_postgres_types);
    Ok(Compatibility {
        edition,
        timestamps_iso8601: config.timestamps_iso8601.unwrap_or(edition >= 2),
    })
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
        if file.streams.is_some() {
            return Err(Error::UnsupportedSyncRules(
                "Sync Streams (`streams:`) are not supported".to_owned(),
            ));
        }
        let compatibility = parse_compatibility(file.config)?;
        let defs = file.bucket_definitions.unwrap_or_default();
        if defs.is_empty() {
            return Err(Error::Config(
                "sync rules define no bucket_definitions".to_owned(),
            ));
        }
        let mut buckets = Vec::new();
        for (name, def) in defs {
            if def.parameters.is_some() {
                return Err(Error::UnsupportedSyncRules(format!(
                    "bucket `{name}`: parameter queries are not supported (global buckets only)"
                )));
            }
            let priority = parse_priority(&name, def.priority)?;
            let mut queries = Vec::new();
            for sql in def.data.unwrap_or_default() {
                let query = parse_select_star(&sql).map_err(|why| {
                    Error::UnsupportedSyncRules(format!("bucket `{name}`: `{sql}`: {why}"))
                })?;
                if queries.contains(&query) {
                    continue;
                }
                if queries
                    .iter()
                    .any(|q: &DataQuery| q.object_type == query.object_type)
                {
                    return Err(Error::UnsupportedSyncRules(format!(
                        "bucket `{name}`: two tables output as `{}`",
                        query.object_type
                    )));
                }
                queries.push(query);
            }
            buckets.push(BucketDefinition {
                name: format!("{name}[]"),
                definition: name,
                priority,
                queries,
            });
        }
        Ok(SyncRules {
            buckets,
            compatibility,
        })
    }

    /// The `config:` section's compatibility options.
    pub fn compatibility(&self) -> Compatibility {
        self.compatibility
    }

    /// The bucket definitions, sorted by name.
    pub fn buckets(&self) -> &[BucketDefinition] {
        &self.buckets
    }

    /// Every source table some bucket reads.
    pub fn tables(&self) -> Vec<SourceTable> {
        let mut tables: Vec<SourceTable> = self
            .buckets
            .iter()
            .flat_map(|b| b.queries.iter().map(|q| q.table.clone()))
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// `(bucket name, object_type)` for every bucket a row of `table` belongs to.
    pub fn targets(&self, table: &SourceTable) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for bucket in &self.buckets {
            for query in &bucket.queries {
                if &query.table == table {
                    out.push((bucket.name.clone(), query.object_type.clone()));
                }
            }
        }
        out
    }
}

/// Splits SQL into identifier/keyword tokens; double-quoted identifiers keep their case.
fn tokens(sql: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = sql.trim().trim_end_matches(';').chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut ident = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        ident.push('"');
                    }
                    Some('"') => break,
                    Some(ch) => ident.push(ch),
                    None => return Err("unterminated quoted identifier".to_owned()),
                }
            }
            out.push((ident, true));
        } else if c == '*' || c == '.' {
            chars.next();
            out.push((c.to_string(), false));
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                    word.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push((word, false));
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(out)
}

fn parse_select_star(sql: &str) -> Result<DataQuery, String> {
    const SHAPE: &str = "only `SELECT * FROM <table> [AS <alias>]` is supported";
    let toks = tokens(sql)?;
    let word = |i: usize| {
        toks.get(i)
            .filter(|t| !t.1)
            .map(|t| t.0.to_ascii_lowercase())
    };
    let ident = |i: usize| -> Option<String> {
        toks.get(i).and_then(|(t, quoted)| {
            if *quoted {
                Some(t.clone())
            } else if t != "*" && t != "." {
                // Unquoted identifiers fold to lower case, as in PostgreSQL.
                Some(t.to_lowercase())
            } else {
                None
            }
        })
    };
    if word(0).as_deref() != Some("select")
        || word(1).as_deref() != Some("*")
        || word(2).as_deref() != Some("from")
    {
        return Err(SHAPE.to_owned());
    }
    let mut i = 3;
    let first = ident(i).ok_or_else(|| SHAPE.to_owned())?;
    i += 1;
    let (schema, name) = if word(i).as_deref() == Some(".") {
        let second = ident(i + 1).ok_or_else(|| SHAPE.to_owned())?;
        i += 2;
        (first, second)
    } else {
        ("public".to_owned(), first)
    };
    let mut object_type = name.clone();
    if word(i).as_deref() == Some("as") {
        object_type = ident(i + 1).ok_or_else(|| SHAPE.to_owned())?;
        i += 2;
    }
    if i != toks.len() {
        return Err(SHAPE.to_owned());
    }
    Ok(DataQuery {
        table: SourceTable { schema, name },
        object_type,
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
            rules.targets(&lww),
            vec![
                ("global[]".to_owned(), "lww".to_owned()),
                ("other[]".to_owned(), "lww".to_owned())
            ]
        );
        let todos = SourceTable {
            schema: "app".into(),
            name: "Todos".into(),
        };
        assert_eq!(
            rules.targets(&todos),
            vec![("global[]".to_owned(), "todos".to_owned())]
        );
        assert_eq!(rules.tables().len(), 2);
    }

    #[test]
    fn rejects_what_it_does_not_implement() {
        for yaml in [
            "bucket_definitions:\n  b:\n    parameters: SELECT token_parameters.user_id\n    data:\n      - SELECT * FROM t\n",
            "bucket_definitions:\n  b:\n    data:\n      - SELECT id FROM t\n",
            "bucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t WHERE x = 1\n",
            "streams:\n  s:\n    query: SELECT * FROM t\n",
            "bucket_definitions:\n  b:\n    data:\n      - SELECT * FROM t\n      - SELECT * FROM u AS t\n",
        ] {
            assert!(
                matches!(SyncRules::parse(yaml), Err(Error::UnsupportedSyncRules(_))),
                "{yaml}"
            );
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
        assert_eq!(prios, [("rest[]", 3), ("urgent[]", 0)]);
        assert_eq!(rules.buckets()[1].versioned_name(4), "4#urgent[]");
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
}
