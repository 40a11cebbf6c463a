//! `powersync_control`: the core's sync state machine. Every call runs in its own write
//! transaction on the writer connection, and calls are serialised by the one sync task.

use serde::Deserialize;
use serde_json::Value;

use crate::db::PowerSyncDatabase;
use crate::error::{Error, Result};

/// The payload of one `powersync_control` call.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Null,
    Text(String),
    Binary(Vec<u8>),
}

/// One instruction the core returns. Unknown instructions are kept as [`Instruction::Unknown`]
/// so that newer cores do not break the wrapper.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Instruction {
    LogLine {
        severity: String,
        line: String,
    },
    UpdateSyncStatus {
        status: Value,
    },
    EstablishSyncStream {
        request: Value,
        /// Requests mode: the checkpoint request to post once the stream is open.
        checkpoint_request: Option<Value>,
    },
    FetchCredentials {
        did_expire: bool,
    },
    CloseSyncStream {
        hide_disconnect: bool,
    },
    DidCompleteSync,
    Unknown(String),
}

#[derive(Deserialize)]
struct LogLine {
    severity: String,
    line: String,
}

#[derive(Deserialize)]
struct UpdateSyncStatus {
    status: Value,
}

#[derive(Deserialize)]
struct EstablishSyncStream {
    request: Value,
    #[serde(default)]
    checkpoint_request: Option<Value>,
}

#[derive(Deserialize)]
struct FetchCredentials {
    did_expire: bool,
}

#[derive(Deserialize)]
struct CloseSyncStream {
    #[serde(default)]
    hide_disconnect: bool,
}

fn decode<T: serde::de::DeserializeOwned>(value: Value, what: &'static str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Decode {
        what,
        detail: e.to_string(),
    })
}

/// Parses the core's JSON array of externally tagged instructions.
pub(crate) fn parse_instructions(json: &str) -> Result<Vec<Instruction>> {
    let items: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(json).map_err(|e| Error::Decode {
            what: "powersync_control instructions",
            detail: e.to_string(),
        })?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some((tag, body)) = item.into_iter().next() else {
            continue;
        };
        out.push(match tag.as_str() {
            "LogLine" => {
                let l: LogLine = decode(body, "LogLine")?;
                Instruction::LogLine {
                    severity: l.severity,
                    line: l.line,
                }
            }
            "UpdateSyncStatus" => Instruction::UpdateSyncStatus {
                status: decode::<UpdateSyncStatus>(body, "UpdateSyncStatus")?.status,
            },
            "EstablishSyncStream" => {
                let e: EstablishSyncStream = decode(body, "EstablishSyncStream")?;
                Instruction::EstablishSyncStream {
                    request: e.request,
                    checkpoint_request: e.checkpoint_request.filter(|c| !c.is_null()),
                }
            }
            "FetchCredentials" => Instruction::FetchCredentials {
                did_expire: decode::<FetchCredentials>(body, "FetchCredentials")?.did_expire,
            },
            "CloseSyncStream" => Instruction::CloseSyncStream {
                hide_disconnect: decode::<CloseSyncStream>(body, "CloseSyncStream")?
                    .hide_disconnect,
            },
            "DidCompleteSync" => Instruction::DidCompleteSync,
            other => Instruction::Unknown(other.to_string()),
        });
    }
    Ok(out)
}

impl PowerSyncDatabase {
    /// Runs `powersync_control(op, payload)` in its own write transaction and parses the
    /// instructions it returns (none when the core returns NULL or a number).
    pub(crate) async fn control(
        &self,
        op: &'static str,
        payload: Payload,
    ) -> Result<Vec<Instruction>> {
        let result: Result<Option<String>> = self
            .internal_write_transaction(move |tx| {
                let value: rusqlite::types::Value = match payload {
                    Payload::Null => {
                        tx.query_row("SELECT powersync_control(?1, NULL)", [op], |r| r.get(0))?
                    }
                    Payload::Text(text) => {
                        tx.query_row("SELECT powersync_control(?1, ?2)", (op, text), |r| r.get(0))?
                    }
                    Payload::Binary(blob) => {
                        tx.query_row("SELECT powersync_control(?1, ?2)", (op, blob), |r| r.get(0))?
                    }
                };
                Ok(match value {
                    rusqlite::types::Value::Text(text) => Some(text),
                    _ => None,
                })
            })
            .await;
        let instructions = match result? {
            Some(json) => parse_instructions(&json)?,
            None => Vec::new(),
        };
        self.apply_priority_status(&instructions);
        Ok(instructions)
    }

    /// Copies the per-priority entries of every `UpdateSyncStatus` into the status (the rest
    /// of the status is applied by the download loop).
    fn apply_priority_status(&self, instructions: &[Instruction]) {
        let micros = self
            .capabilities()
            .is_ok_and(|c| c.last_synced_at == Some(powersync_sys::TimeUnit::Microseconds));
        for instruction in instructions {
            if let Instruction::UpdateSyncStatus { status } = instruction {
                self.inner
                    .sync
                    .shared
                    .status
                    .send_if_modified(|s| s.apply_priority_status(status, micros));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_instruction_and_tolerates_unknown_ones() {
        let json = r#"[
            {"LogLine":{"severity":"DEBUG","line":"hello"}},
            {"UpdateSyncStatus":{"status":{"connected":true}}},
            {"EstablishSyncStream":{"request":{"buckets":[]}}},
            {"EstablishSyncStream":{"request":{},"checkpoint_request":{"client_id":"c","checkpoint_request_id":"1"}}},
            {"FetchCredentials":{"did_expire":false}},
            {"CloseSyncStream":{"hide_disconnect":true}},
            {"DidCompleteSync":{"applied_checkpoint_request_id":"7"}},
            {"DidCompleteSync":{}},
            {"FlushFileSystem":{}},
            {"SomethingNew":{"x":1}}
        ]"#;
        let parsed = parse_instructions(json).unwrap();
        assert_eq!(
            parsed,
            [
                Instruction::LogLine {
                    severity: "DEBUG".into(),
                    line: "hello".into()
                },
                Instruction::UpdateSyncStatus {
                    status: serde_json::json!({"connected": true})
                },
                Instruction::EstablishSyncStream {
                    request: serde_json::json!({"buckets": []}),
                    checkpoint_request: None,
                },
                Instruction::EstablishSyncStream {
                    request: serde_json::json!({}),
                    checkpoint_request: Some(
                        serde_json::json!({"client_id": "c", "checkpoint_request_id": "1"})
                    ),
                },
                Instruction::FetchCredentials { did_expire: false },
                Instruction::CloseSyncStream {
                    hide_disconnect: true
                },
                Instruction::DidCompleteSync,
                Instruction::DidCompleteSync,
                Instruction::Unknown("FlushFileSystem".into()),
                Instruction::Unknown("SomethingNew".into()),
            ]
        );
        assert!(parse_instructions("not json").is_err());
    }
}
