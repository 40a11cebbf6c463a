//! The application's schema, built in Rust and serialised to the JSON that
//! `powersync_replace_schema` takes.
//!
//! ```
//! use powersync::schema::{Column, Index, Schema, Table};
//! let schema = Schema::new(vec![
//!     Table::new("todos", vec![Column::text("description"), Column::integer("done")])
//!         .index(Index::new("by_done", ["done"])),
//!     Table::new("drafts", vec![Column::text("body")]).local_only(),
//! ]);
//! assert!(schema.validate().is_ok());
//! ```
//!
//! Besides these tables (views over the core's JSON rows), a schema can declare
//! [raw tables](RawTable): SQLite tables the application creates itself, into which the sync
//! client writes synced rows with the application's own statements.

use std::collections::HashSet;

use powersync_sys::CoreVersion;
use serde::Serialize;

use crate::error::{Error, Result};

/// The most columns a table may have (the cores' limit since `powersync_json_merge`).
pub const MAX_COLUMNS: usize = 1999;

/// A column's type: how the view casts the JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ColumnType {
    /// `TEXT`
    #[serde(rename = "TEXT")]
    Text,
    /// `INTEGER`
    #[serde(rename = "INTEGER")]
    Integer,
    /// `REAL`
    #[serde(rename = "REAL")]
    Real,
}

/// A column of a synced table. Every table also has the implicit `id TEXT` primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The column's type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

impl Column {
    /// A `TEXT` column.
    pub fn text(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            column_type: ColumnType::Text,
        }
    }
    /// An `INTEGER` column.
    pub fn integer(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            column_type: ColumnType::Integer,
        }
    }
    /// A `REAL` column.
    pub fn real(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            column_type: ColumnType::Real,
        }
    }
}

/// One column of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexedColumn {
    /// The column's name.
    pub name: String,
    /// Ascending (true) or descending.
    pub ascending: bool,
    /// The column's type, filled in from the table when the schema is serialised.
    #[serde(rename = "type")]
    column_type: Option<ColumnType>,
}

/// An index on a table's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    /// The index's name (the core prefixes it with the table's).
    pub name: String,
    /// The indexed columns, in order.
    pub columns: Vec<IndexedColumn>,
}

impl Index {
    /// An index over `columns`, all ascending.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            name: name.into(),
            columns: columns
                .into_iter()
                .map(|c| IndexedColumn {
                    name: c.into(),
                    ascending: true,
                    column_type: None,
                })
                .collect(),
        }
    }

    /// Makes the column `name` descending.
    pub fn descending(mut self, name: &str) -> Self {
        for c in self.columns.iter_mut().filter(|c| c.name == name) {
            c.ascending = false;
        }
        self
    }
}

/// Which previous values `ps_crud` entries carry (`include_old`, core 0.3.13+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncludeOld {
    /// All columns.
    All,
    /// Only these columns.
    Columns(Vec<String>),
}

impl Serialize for IncludeOld {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_bool(true),
            Self::Columns(cols) => cols.serialize(s),
        }
    }
}

/// A table: a view over the core's `ps_data__<name>` table, with triggers that record writes in
/// the upload queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// The table's name, as synced.
    pub name: String,
    /// Overrides the view's name (defaults to `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_name: Option<String>,
    /// The columns, without `id`.
    pub columns: Vec<Column>,
    /// The indexes.
    pub indexes: Vec<Index>,
    /// Local-only: never synced, writes are not queued for upload.
    pub local_only: bool,
    /// Insert-only: inserts are queued for upload and not stored locally.
    pub insert_only: bool,
    /// Adds `_metadata` (recorded with each write) and `_deleted` columns (core 0.3.13+).
    pub include_metadata: bool,
    /// Previous values recorded with updates and deletes (core 0.3.13+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_old: Option<IncludeOld>,
    /// With `include_old`: only the values that changed.
    pub include_old_only_when_changed: bool,
    /// Skip updates that change nothing (core 0.3.13+).
    pub ignore_empty_update: bool,
}

impl Table {
    /// A synced table with these columns.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Self {
        Self {
            name: name.into(),
            view_name: None,
            columns,
            indexes: Vec::new(),
            local_only: false,
            insert_only: false,
            include_metadata: false,
            include_old: None,
            include_old_only_when_changed: false,
            ignore_empty_update: false,
        }
    }

    /// Adds an index.
    pub fn index(mut self, index: Index) -> Self {
        self.indexes.push(index);
        self
    }

    /// Makes the table local-only.
    pub fn local_only(mut self) -> Self {
        self.local_only = true;
        self
    }

    /// Makes the table insert-only.
    pub fn insert_only(mut self) -> Self {
        self.insert_only = true;
        self
    }

    /// Sets the view's name.
    pub fn view_name(mut self, name: impl Into<String>) -> Self {
        self.view_name = Some(name.into());
        self
    }

    /// Records `_metadata` with each write.
    pub fn include_metadata(mut self) -> Self {
        self.include_metadata = true;
        self
    }

    /// Records previous values with updates and deletes.
    pub fn include_old(mut self, which: IncludeOld, only_when_changed: bool) -> Self {
        self.include_old = Some(which);
        self.include_old_only_when_changed = only_when_changed;
        self
    }

    /// Skips updates that change nothing.
    pub fn ignore_empty_update(mut self) -> Self {
        self.ignore_empty_update = true;
        self
    }

    /// The view's name.
    pub fn effective_view_name(&self) -> &str {
        self.view_name.as_deref().unwrap_or(&self.name)
    }

    /// Whether this table needs core 0.3.13's options.
    pub(crate) fn uses_tracking_options(&self) -> bool {
        self.include_metadata || self.include_old.is_some() || self.ignore_empty_update
    }
}

/// A value bound to one parameter of a [`PendingStatement`] when the sync client runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PendingStatementValue {
    /// The row's PowerSync id (text).
    Id,
    /// The value of this column of the synced row (`NULL` when the row has no such column).
    Column(String),
}

/// A statement the sync client runs against a [`RawTable`], with what to bind to each of its
/// parameters: `params[0]` to `?1`, `params[1]` to `?2`, and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingStatement {
    /// The SQL, with positional parameters.
    pub sql: String,
    /// One value per parameter, in order.
    pub params: Vec<PendingStatementValue>,
}

impl PendingStatement {
    /// A statement with these parameters.
    pub fn new(sql: impl Into<String>, params: Vec<PendingStatementValue>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// A raw table, as in the official SDKs (`RawTable`): a table the application creates,
/// migrates and indexes itself, into which the sync client writes the synced rows of type
/// [`name`](Self::name) with the [`put`](Self::put) and [`delete`](Self::delete) statements,
/// instead of a view over the core's JSON rows. Needs core 0.4.2 or newer (the sync `start`
/// request carries the schema).
///
/// Local writes to a raw table are uploaded only if the application records them, as the SDKs
/// document: triggers on the table that insert into the core's `powersync_crud` virtual table
/// (`op`, `id`, `type` = the raw table's name, `data` as a JSON object), skipped while the sync
/// client writes (`WHEN NOT powersync_in_sync_operation()`).
///
/// ```
/// use powersync::schema::{PendingStatement, PendingStatementValue as P, RawTable, Schema};
/// let todos = RawTable::new(
///     "todos",
///     PendingStatement::new(
///         "INSERT INTO todo_rows(id, description) VALUES (?1, ?2)
///          ON CONFLICT(id) DO UPDATE SET description = excluded.description",
///         vec![P::Id, P::Column("description".into())],
///     ),
///     PendingStatement::new("DELETE FROM todo_rows WHERE id = ?1", vec![P::Id]),
/// )
/// .clear("DELETE FROM todo_rows");
/// let schema = Schema::new(vec![]).with_raw_tables(vec![todos]);
/// assert!(schema.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawTable {
    /// The type of the synced rows this table receives (the table name the sync service uses),
    /// not necessarily the name of the SQLite table.
    pub name: String,
    /// Inserts or replaces a synced row.
    pub put: PendingStatement,
    /// Deletes a synced row; its parameters can only be [`PendingStatementValue::Id`].
    pub delete: PendingStatement,
    /// Run by [`disconnect_and_clear`](crate::PowerSyncDatabase::disconnect_and_clear)
    /// (`powersync_clear`) to empty the table, with the application's triggers skipped; core
    /// 0.4.12+ (0.4.8 to 0.4.11 run it but let the triggers queue every cleared row for upload,
    /// so this crate refuses it there). Without it, clearing leaves the raw table's rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear: Option<String>,
}

impl RawTable {
    /// A raw table receiving the synced rows of type `name`.
    pub fn new(name: impl Into<String>, put: PendingStatement, delete: PendingStatement) -> Self {
        Self {
            name: name.into(),
            put,
            delete,
            clear: None,
        }
    }

    /// Sets the statement that empties the table on `powersync_clear`.
    pub fn clear(mut self, sql: impl Into<String>) -> Self {
        self.clear = Some(sql.into());
        self
    }
}

/// The application's tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Schema {
    /// The tables.
    pub tables: Vec<Table>,
    /// The raw tables (core 0.4.2+). Left out of the JSON when empty, so a schema without
    /// them is what every core reads.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub raw_tables: Vec<RawTable>,
}

impl Schema {
    /// A schema with these tables.
    pub fn new(tables: Vec<Table>) -> Self {
        Self {
            tables,
            raw_tables: Vec::new(),
        }
    }

    /// Adds raw tables.
    pub fn with_raw_tables(mut self, raw_tables: Vec<RawTable>) -> Self {
        self.raw_tables.extend(raw_tables);
        self
    }

    /// Checks that the core `version` can apply this schema: tracking options need 0.3.13, raw
    /// tables 0.4.2, a raw table's `clear` 0.4.12. The error names the first missing feature.
    pub fn check_core(&self, version: &CoreVersion) -> Result<()> {
        let unsupported = |feature, needs| {
            Err(Error::UnsupportedByCore {
                feature,
                needs,
                found: version.clone(),
            })
        };
        if self.tables.iter().any(Table::uses_tracking_options) && !version.at_least(0, 3, 13) {
            return unsupported(
                "include_old, include_metadata and ignore_empty_update",
                "0.3.13",
            );
        }
        if !self.raw_tables.is_empty() && !version.at_least(0, 4, 2) {
            return unsupported("raw tables", "0.4.2");
        }
        // Cores 0.4.8 to 0.4.11 run `clear` with the application's triggers active: every
        // cleared row would be queued as a delete for upload (fixed in 0.4.12, core PR #169).
        if self.raw_tables.iter().any(|t| t.clear.is_some()) && !version.at_least(0, 4, 12) {
            return unsupported("the clear statement of raw tables", "0.4.12");
        }
        Ok(())
    }

    /// Checks names, columns, indexes and option combinations; returns the first problem.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::InvalidSchema(msg));
        let mut views = HashSet::new();
        let mut names = HashSet::new();
        for table in &self.tables {
            check_name("table", &table.name)?;
            if let Some(view) = &table.view_name {
                check_name("view", view)?;
            }
            if !names.insert(table.name.as_str()) {
                return invalid(format!("table {:?} is defined twice", table.name));
            }
            if !views.insert(table.effective_view_name().to_string()) {
                return invalid(format!(
                    "view name {:?} is used twice",
                    table.effective_view_name()
                ));
            }
            if table.columns.len() > MAX_COLUMNS {
                return invalid(format!(
                    "table {:?} has {} columns; at most {MAX_COLUMNS} are allowed",
                    table.name,
                    table.columns.len()
                ));
            }
            let mut columns = HashSet::new();
            for column in &table.columns {
                check_name("column", &column.name)?;
                if column.name.eq_ignore_ascii_case("id") {
                    return invalid(format!(
                        "table {:?}: `id` is implicit and must not be declared",
                        table.name
                    ));
                }
                if !columns.insert(column.name.to_ascii_lowercase()) {
                    return invalid(format!(
                        "table {:?}: column {:?} is declared twice",
                        table.name, column.name
                    ));
                }
            }
            if table.local_only && (table.include_metadata || table.include_old.is_some()) {
                return invalid(format!(
                    "table {:?}: local-only tables cannot track metadata or previous values",
                    table.name
                ));
            }
            if table.local_only && table.insert_only {
                return invalid(format!(
                    "table {:?} cannot be both local-only and insert-only",
                    table.name
                ));
            }
            if let Some(IncludeOld::Columns(cols)) = &table.include_old {
                for col in cols {
                    if !columns.contains(&col.to_ascii_lowercase()) {
                        return invalid(format!(
                            "table {:?}: include_old names unknown column {col:?}",
                            table.name
                        ));
                    }
                }
            }
            let mut indexes = HashSet::new();
            for index in &table.indexes {
                check_name("index", &index.name)?;
                if !indexes.insert(index.name.as_str()) {
                    return invalid(format!(
                        "table {:?}: index {:?} is defined twice",
                        table.name, index.name
                    ));
                }
                if index.columns.is_empty() {
                    return invalid(format!(
                        "table {:?}: index {:?} has no columns",
                        table.name, index.name
                    ));
                }
                for col in &index.columns {
                    if !columns.contains(&col.name.to_ascii_lowercase()) {
                        return invalid(format!(
                            "table {:?}: index {:?} names unknown column {:?}",
                            table.name, index.name, col.name
                        ));
                    }
                }
            }
        }
        for raw in &self.raw_tables {
            check_name("raw table", &raw.name)?;
            if !names.insert(raw.name.as_str()) {
                return invalid(format!(
                    "raw table {:?}: the name is already used by another table",
                    raw.name
                ));
            }
            for (what, statement) in [("put", &raw.put), ("delete", &raw.delete)] {
                if statement.sql.trim().is_empty() {
                    return invalid(format!(
                        "raw table {:?}: the {what} statement is empty",
                        raw.name
                    ));
                }
            }
            if let Some(column) = raw.delete.params.iter().find_map(|p| match p {
                PendingStatementValue::Column(c) => Some(c),
                PendingStatementValue::Id => None,
            }) {
                return invalid(format!(
                    "raw table {:?}: the delete statement can only bind the id, not column {column:?}",
                    raw.name
                ));
            }
            if raw.clear.as_ref().is_some_and(|c| c.trim().is_empty()) {
                return invalid(format!(
                    "raw table {:?}: the clear statement is empty",
                    raw.name
                ));
            }
        }
        Ok(())
    }

    /// The `schema` of the sync `start` request: the core needs the raw tables there to route
    /// synced rows to them. `None` without raw tables (the core then reads the regular tables
    /// from the database, and older cores need nothing).
    pub(crate) fn start_schema(&self) -> Result<Option<serde_json::Value>> {
        if self.raw_tables.is_empty() {
            return Ok(None);
        }
        let json = self.to_json()?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::InvalidSchema(e.to_string()))
    }

    /// The JSON for `powersync_replace_schema`, after validation. Index columns get their
    /// table column's type.
    pub fn to_json(&self) -> Result<String> {
        self.validate()?;
        let mut resolved = self.clone();
        for table in &mut resolved.tables {
            let types: Vec<(String, ColumnType)> = table
                .columns
                .iter()
                .map(|c| (c.name.to_ascii_lowercase(), c.column_type))
                .collect();
            for index in &mut table.indexes {
                for col in &mut index.columns {
                    col.column_type = types
                        .iter()
                        .find(|(n, _)| *n == col.name.to_ascii_lowercase())
                        .map(|(_, t)| *t);
                }
            }
        }
        serde_json::to_string(&resolved).map_err(|e| Error::InvalidSchema(e.to_string()))
    }
}

/// Names become SQL identifiers inside the core's generated SQL: keep them to letters, digits
/// and underscores, not starting with a digit, and not in the core's `ps_` namespace.
fn check_name(kind: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(Error::InvalidSchema(format!(
            "{kind} name {name:?} is invalid: use 1-255 letters, digits and underscores, not starting with a digit"
        )));
    }
    if kind != "column" && kind != "index" && name.to_ascii_lowercase().starts_with("ps_") {
        return Err(Error::InvalidSchema(format!(
            "{kind} name {name:?} uses the reserved prefix ps_"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn todos() -> Table {
        Table::new(
            "todos",
            vec![
                Column::text("description"),
                Column::integer("done"),
                Column::real("weight"),
            ],
        )
    }

    #[test]
    fn serialises_the_cores_schema_shape() {
        let schema = Schema::new(vec![
            todos().index(Index::new("by_done", ["done"]).descending("done")),
            Table::new("logs", vec![Column::text("msg")])
                .insert_only()
                .view_name("log_view"),
            Table::new("items", vec![Column::text("name")])
                .include_old(IncludeOld::Columns(vec!["name".into()]), true)
                .include_metadata()
                .ignore_empty_update(),
        ]);
        let json: serde_json::Value = serde_json::from_str(&schema.to_json().unwrap()).unwrap();
        let t = &json["tables"][0];
        assert_eq!(t["name"], "todos");
        assert_eq!(
            t["columns"][1],
            serde_json::json!({"name": "done", "type": "INTEGER"})
        );
        assert_eq!(
            t["indexes"][0]["columns"][0],
            serde_json::json!({"name": "done", "ascending": false, "type": "INTEGER"})
        );
        assert_eq!(t["local_only"], false);
        assert!(t.get("view_name").is_none() && t.get("include_old").is_none());
        assert_eq!(json["tables"][1]["view_name"], "log_view");
        assert_eq!(json["tables"][1]["insert_only"], true);
        assert_eq!(
            json["tables"][2]["include_old"],
            serde_json::json!(["name"])
        );
        assert_eq!(json["tables"][2]["include_old_only_when_changed"], true);
        assert_eq!(json["tables"][2]["include_metadata"], true);
        assert_eq!(json["tables"][2]["ignore_empty_update"], true);
        let all = Table::new("a", vec![Column::text("x")]).include_old(IncludeOld::All, false);
        let json: serde_json::Value =
            serde_json::from_str(&Schema::new(vec![all]).to_json().unwrap()).unwrap();
        assert_eq!(json["tables"][0]["include_old"], true);
    }

    #[test]
    fn rejects_invalid_schemas_with_a_reason() {
        let cases: Vec<(Schema, &str)> = vec![
            (Schema::new(vec![Table::new("", vec![])]), "table name \"\""),
            (Schema::new(vec![Table::new("to dos", vec![])]), "invalid"),
            (
                Schema::new(vec![Table::new("x\"; DROP", vec![])]),
                "invalid",
            ),
            (Schema::new(vec![Table::new("1x", vec![])]), "invalid"),
            (
                Schema::new(vec![Table::new("ps_data", vec![])]),
                "reserved prefix",
            ),
            (Schema::new(vec![todos(), todos()]), "defined twice"),
            (
                Schema::new(vec![todos(), Table::new("b", vec![]).view_name("todos")]),
                "used twice",
            ),
            (
                Schema::new(vec![Table::new("t", vec![Column::text("id")])]),
                "implicit",
            ),
            (
                Schema::new(vec![Table::new(
                    "t",
                    vec![Column::text("a"), Column::integer("A")],
                )]),
                "declared twice",
            ),
            (
                Schema::new(vec![
                    Table::new("t", vec![Column::text("a")])
                        .local_only()
                        .include_metadata(),
                ]),
                "local-only",
            ),
            (
                Schema::new(vec![
                    Table::new("t", vec![Column::text("a")])
                        .local_only()
                        .insert_only(),
                ]),
                "both",
            ),
            (
                Schema::new(vec![todos().index(Index::new("i", ["nope"]))]),
                "unknown column",
            ),
            (
                Schema::new(vec![todos().index(Index::new("i", Vec::<String>::new()))]),
                "no columns",
            ),
            (
                Schema::new(vec![
                    todos().include_old(IncludeOld::Columns(vec!["nope".into()]), false),
                ]),
                "unknown column",
            ),
            (
                Schema::new(vec![Table::new(
                    "t",
                    (0..=MAX_COLUMNS)
                        .map(|i| Column::text(format!("c{i}")))
                        .collect(),
                )]),
                "at most 1999",
            ),
        ];
        for (schema, expected) in cases {
            let err = schema.to_json().unwrap_err();
            assert!(matches!(err, Error::InvalidSchema(_)), "{err:?}");
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected:?}"
            );
        }
    }

    fn raw_todos() -> RawTable {
        RawTable::new(
            "todos_raw",
            PendingStatement::new(
                "INSERT OR REPLACE INTO rows(id, description) VALUES (?1, ?2)",
                vec![
                    PendingStatementValue::Id,
                    PendingStatementValue::Column("description".into()),
                ],
            ),
            PendingStatement::new(
                "DELETE FROM rows WHERE id = ?1",
                vec![PendingStatementValue::Id],
            ),
        )
    }

    #[test]
    fn raw_tables_serialise_as_the_core_reads_them_and_only_when_present() {
        let plain = Schema::new(vec![todos()]);
        let json: serde_json::Value = serde_json::from_str(&plain.to_json().unwrap()).unwrap();
        assert!(json.get("raw_tables").is_none(), "{json}");
        assert_eq!(plain.start_schema().unwrap(), None);

        let mut other = raw_todos().clear("DELETE FROM rows");
        other.name = "other".into();
        let schema = Schema::new(vec![todos()]).with_raw_tables(vec![raw_todos(), other]);
        let json: serde_json::Value = serde_json::from_str(&schema.to_json().unwrap()).unwrap();
        assert_eq!(
            json["raw_tables"][0],
            serde_json::json!({
                "name": "todos_raw",
                "put": {
                    "sql": "INSERT OR REPLACE INTO rows(id, description) VALUES (?1, ?2)",
                    "params": ["Id", {"Column": "description"}]
                },
                "delete": {"sql": "DELETE FROM rows WHERE id = ?1", "params": ["Id"]}
            })
        );
        assert_eq!(json["raw_tables"][1]["clear"], "DELETE FROM rows");
        assert_eq!(schema.start_schema().unwrap(), Some(json));
    }

    #[test]
    fn raw_tables_are_validated_and_gated_by_core_version() {
        let mut bad_delete = raw_todos();
        bad_delete
            .delete
            .params
            .push(PendingStatementValue::Column("description".into()));
        let mut empty_put = raw_todos();
        empty_put.put.sql = " ".into();
        let cases = [
            (
                Schema::new(vec![Table::new("todos_raw", vec![])])
                    .with_raw_tables(vec![raw_todos()]),
                "already used",
            ),
            (
                Schema::new(vec![]).with_raw_tables(vec![bad_delete]),
                "can only bind the id",
            ),
            (
                Schema::new(vec![]).with_raw_tables(vec![empty_put]),
                "put statement is empty",
            ),
            (
                Schema::new(vec![]).with_raw_tables(vec![raw_todos().clear("")]),
                "clear statement is empty",
            ),
        ];
        for (schema, expected) in cases {
            let err = schema.to_json().unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }

        let v = |s: &str| CoreVersion::parse(s).unwrap();
        let raw = Schema::new(vec![]).with_raw_tables(vec![raw_todos()]);
        let err = raw.check_core(&v("0.3.14")).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedByCore { needs: "0.4.2", .. }),
            "{err:?}"
        );
        raw.check_core(&v("0.4.6")).unwrap();
        let clear =
            Schema::new(vec![]).with_raw_tables(vec![raw_todos().clear("DELETE FROM rows")]);
        let err = clear.check_core(&v("0.4.11")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedByCore {
                    needs: "0.4.12",
                    ..
                }
            ),
            "{err:?}"
        );
        clear.check_core(&v("0.4.12")).unwrap();
        let tracking = Schema::new(vec![todos().include_metadata()]);
        assert!(tracking.check_core(&v("0.3.11")).is_err());
        tracking.check_core(&v("0.3.14")).unwrap();
        Schema::new(vec![todos()]).check_core(&v("0.3.11")).unwrap();
    }
}
