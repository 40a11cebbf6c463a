//! Sync rules: the subset of the service's `sync_rules.yaml` the stand-in implements.
//!
//! Supported: global buckets whose data queries are `SELECT * FROM <table> [AS <alias>]`
//! (the table optionally schema-qualified and/or double-quoted). Anything else (parameter
//! queries, `WHERE`, column lists, Sync Streams) is rejected with
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

/// A global bucket definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDefinition {
    /// The bucket name as sent to clients: `<definition name>[]`.
    pub name: String,
    /// The definition's name as written in the YAML (the default stream's name).
    pub definition: String,
    /// Its data queries.
    pub queries: Vec<DataQuery>,
}

/// Parsed sync rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRules {
    buckets: Vec<BucketDefinition>,
}

#[derive(Deserialize)]
struct RulesFile {
    bucket_definitions: Option<BTreeMap<String, BucketYaml>>,
    streams: Option<serde_yaml_ng::Value>,
    config: Option<serde_yaml_ng::Value>,
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
        if file.config.is_some() {
            return Err(Error::UnsupportedSyncRules(
                "the `config:` section (editions/compatibility options) is not supported"
                    .to_owned(),
            ));
        }
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
            if def.priority.is_some() {
                return Err(Error::UnsupportedSyncRules(format!(
                    "bucket `{name}`: priorities are not supported"
                )));
            }
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
                queries,
            });
        }
        Ok(SyncRules { buckets })
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
    }
}
