//! Which SQLite table holds which of the application's tables: `ps_data__todos` is the view
//! `todos`. Change notifications speak the application's names.

use std::collections::{BTreeSet, HashMap};

use crate::schema::Schema;

/// SQLite table name → the application's view name.
pub(crate) struct TableNames {
    map: std::sync::RwLock<HashMap<String, String>>,
}

fn mapping(schema: &Schema) -> HashMap<String, String> {
    schema
        .tables
        .iter()
        .map(|t| {
            let prefix = if t.local_only {
                "ps_data_local__"
            } else {
                "ps_data__"
            };
            (
                format!("{prefix}{}", t.name),
                t.effective_view_name().to_string(),
            )
        })
        .collect()
}

impl TableNames {
    pub(crate) fn new(schema: &Schema) -> Self {
        Self {
            map: std::sync::RwLock::new(mapping(schema)),
        }
    }

    /// Replaces the mapping after a schema change.
    pub(crate) fn replace(&self, schema: &Schema) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = mapping(schema);
    }

    /// The application's names for the SQLite tables in `changed`: schema tables by their view
    /// name; other tables of the application as they are; the core's own `ps_*` tables left out.
    pub(crate) fn views(&self, changed: &BTreeSet<String>) -> BTreeSet<String> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        changed
            .iter()
            .filter_map(|table| match map.get(table) {
                Some(view) => Some(view.clone()),
                None if table.starts_with("ps_") => None,
                None => Some(table.clone()),
            })
            .collect()
    }

    /// Every SQLite table behind the schema (for "everything may have changed").
    pub(crate) fn all_tables(&self) -> BTreeSet<String> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }

    /// The SQLite tables behind the given names (view names or SQLite table names).
    pub(crate) fn resolve(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .map(|name| {
                map.iter()
                    .find(|(_, view)| *view == name)
                    .map(|(table, _)| table.clone())
                    .unwrap_or_else(|| name.clone())
            })
            .collect()
    }
}
