//! A client database driven through `powersync_control` the way an SDK drives it: each call
//! in its own transaction, instructions collected, checksum failures turned into panics.
//! Shared by the core tests and the download benchmark.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::{Value, json};

/// The client schema: table `lww (k INTEGER, v INTEGER)`.
pub const SCHEMA: &str = r#"{"tables":[{"name":"lww","columns":[{"name":"k","type":"INTEGER"},{"name":"v","type":"INTEGER"}]}]}"#;

/// A client database with the core loaded and the `lww` schema applied.
pub struct CoreClient {
    /// The client database.
    pub conn: Connection,
    /// Every instruction the core returned so far.
    pub instructions: Vec<Value>,
}

impl CoreClient {
    /// An in-memory database with the core (`CoreLibrary::load`) and [`SCHEMA`].
    pub fn open() -> Self {
        let conn = Connection::open_in_memory().unwrap();
        powersync_sys::CoreLibrary::load()
            .expect("core library (run vendor/fetch-cores)")
            .load_into(&conn)
            .unwrap();
        conn.execute_batch("BEGIN").unwrap();
        conn.query_row("SELECT powersync_replace_schema(?1)", [SCHEMA], |_| Ok(()))
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        CoreClient {
            conn,
            instructions: Vec::new(),
        }
    }

    /// One `powersync_control` call in its own transaction; returns its instructions.
    pub fn control(&mut self, op: &str, payload: Option<&str>) -> Vec<Value> {
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let result: Option<String> = self
            .conn
            .query_row("SELECT powersync_control(?1, ?2)", (op, payload), |r| {
                r.get(0)
            })
            .unwrap();
        self.conn.execute_batch("COMMIT").unwrap();
        let list: Vec<Value> = result
            .map(|r| serde_json::from_str(&r).unwrap())
            .unwrap_or_default();
        self.check_and_keep(&list);
        list
    }

    /// `line_binary` with one BSON document, in its own transaction; returns its instructions.
    pub fn control_binary(&mut self, document: &[u8]) -> Vec<Value> {
        self.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let result: Option<String> = self
            .conn
            .query_row(
                "SELECT powersync_control('line_binary', ?1)",
                [document],
                |r| r.get(0),
            )
            .unwrap();
        self.conn.execute_batch("COMMIT").unwrap();
        let list: Vec<Value> = result
            .map(|r| serde_json::from_str(&r).unwrap())
            .unwrap_or_default();
        self.check_and_keep(&list);
        list
    }

    fn check_and_keep(&mut self, list: &[Value]) {
        for instruction in list {
            if let Some(log) = instruction.get("LogLine") {
                let line = log["line"].as_str().unwrap_or_default();
                assert!(
                    !line.contains("Checksums didn't match"),
                    "core rejected checksums: {line}"
                );
            }
        }
        self.instructions.extend(list.iter().cloned());
    }

    /// `start` in legacy checkpoint mode, returning the request body of `EstablishSyncStream`.
    pub fn start(&mut self) -> Value {
        self.start_in("legacy")["request"].clone()
    }

    /// `start` in `mode`, returning the whole `EstablishSyncStream` instruction.
    pub fn start_in(&mut self, mode: &str) -> Value {
        let payload = json!({ "checkpoint_mode": mode }).to_string();
        let instructions = self.control("start", Some(&payload));
        instructions
            .iter()
            .find_map(|i| i.get("EstablishSyncStream"))
            .cloned()
            .expect("EstablishSyncStream")
    }

    /// Number of rows in the `lww` view.
    pub fn count(&self) -> usize {
        self.conn
            .query_row("SELECT count(*) FROM lww", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    }

    /// The `lww` view as `id -> (k, v)`.
    pub fn rows(&self) -> BTreeMap<String, (i64, i64)> {
        let mut stmt = self.conn.prepare("SELECT id, k, v FROM lww").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `applied_checkpoint_request_id` of every `DidCompleteSync` so far.
    pub fn applied_request_ids(&self) -> Vec<String> {
        self.instructions
            .iter()
            .filter_map(|i| i.get("DidCompleteSync"))
            .filter_map(|d| d.get("applied_checkpoint_request_id"))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}
