//! Decoder for the `pgoutput` logical replication protocol, version 1 (text tuples): the
//! payload of each `XLogData` of the replication stream ([`crate::wal_stream`]) or each row of
//! `pg_logical_slot_peek_binary_changes`.
//!
//! Messages (PostgreSQL docs, "Logical Replication Message Formats"): Begin `B`, Commit `C`,
//! Origin `O`, Relation `R`, Type `Y`, Insert `I`, Update `U`, Delete `D`, Truncate `T` and
//! logical decoding Message `M`.

use crate::Error;

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Part of the replica identity key (flag bit 1).
    pub is_key: bool,
}

/// A Relation message: the table's current shape, sent before its first change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Table OID.
    pub id: u32,
    /// Schema.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// REPLICA IDENTITY setting: `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order (dropped and generated columns are not sent).
    pub columns: Vec<Column>,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL (also: not part of a key-only old tuple).
    Null,
    /// An unchanged TOASTed value whose data was not sent.
    UnchangedToast,
    /// The value in the type's text output format.
    Text(String),
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Start of a transaction.
    Begin {
        /// LSN of the commit record.
        final_lsn: u64,
        /// Transaction id.
        xid: u32,
    },
    /// End of a transaction.
    Commit {
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End LSN of the transaction.
        end_lsn: u64,
    },
    /// Replication origin (ignored).
    Origin,
    /// Table description.
    Relation(Relation),
    /// Type description (ignored: the stand-in maps types by OID).
    Type,
    /// A new row.
    Insert {
        /// Table OID.
        relation: u32,
        /// The new row.
        new: Vec<Value>,
    },
    /// An updated row.
    Update {
        /// Table OID.
        relation: u32,
        /// The old key (`K`) or old full row (`O`), when sent.
        old: Option<Vec<Value>>,
        /// The new row.
        new: Vec<Value>,
    },
    /// A deleted row.
    Delete {
        /// Table OID.
        relation: u32,
        /// The old key (`K`) or old full row (`O`).
        old: Vec<Value>,
    },
    /// TRUNCATE of one or more tables.
    Truncate {
        /// Table OIDs.
        relations: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`).
    Message {
        /// Whether it was emitted transactionally.
        transactional: bool,
        /// The LSN of the message in the WAL.
        lsn: u64,
        /// The prefix.
        prefix: String,
    },
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Error::Decode("message truncated".to_owned()))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, Error> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, Error> {
        Ok(self.u32()? as i32)
    }
    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn cstr(&mut self) -> Result<String, Error> {
        let rest = &self.buf[self.pos..];
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::Decode("unterminated string".to_owned()))?;
        let s = std::str::from_utf8(&rest[..nul])
            .map_err(|e| Error::Decode(format!("invalid UTF-8 in string: {e}")))?
            .to_owned();
        self.pos += nul + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Value>, Error> {
        let n = self.i16()?;
        let mut values = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' => {
                    let len = self.i32()?;
                    let len = usize::try_from(len)
                        .map_err(|_| Error::Decode(format!("negative length {len}")))?;
                    let bytes = self.take(len)?;
                    Value::Text(
                        std::str::from_utf8(bytes)
                            .map_err(|e| Error::Decode(format!("invalid UTF-8 in value: {e}")))?
                            .to_owned(),
                    )
                }
                other => {
                    return Err(Error::Decode(format!(
                        "unsupported tuple value kind {:?}",
                        other as char
                    )));
                }
            });
        }
        Ok(values)
    }
}

/// Decodes one pgoutput message (one `XLogData` payload, or one row of
/// `pg_logical_slot_*_binary_changes`).
pub fn decode(buf: &[u8]) -> Result<Message, Error> {
    let mut r = Reader { buf, pos: 0 };
    let kind = r.u8()?;
    let msg = match kind {
        b'B' => {
            let final_lsn = r.u64()?;
            let _commit_time = r.u64()?;
            let xid = r.u32()?;
            Message::Begin { final_lsn, xid }
        }
        b'C' => {
            let _flags = r.u8()?;
            let commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            let _time = r.u64()?;
            Message::Commit {
                commit_lsn,
                end_lsn,
            }
        }
        b'O' => Message::Origin,
        b'Y' => Message::Type,
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.i32()?;
                columns.push(Column {
                    name,
                    type_oid,
                    is_key: flags & 1 == 1,
                });
            }
            Message::Relation(Relation {
                id,
                // An empty namespace means pg_catalog in the protocol.
                namespace: if namespace.is_empty() {
                    "pg_catalog".to_owned()
                } else {
                    namespace
                },
                name,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(r.u8()?, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut marker = r.u8()?;
            let mut old = None;
            if marker == b'K' || marker == b'O' {
                old = Some(r.tuple()?);
                marker = r.u8()?;
            }
            expect(marker, b'N')?;
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let marker = r.u8()?;
            if marker != b'K' && marker != b'O' {
                return Err(Error::Decode(format!(
                    "delete: expected K or O, got {:?}",
                    marker as char
                )));
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            let mut relations = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.cstr()?;
            Message::Message {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
            }
        }
        other => {
            return Err(Error::Decode(format!(
                "unknown message type {:?}",
                other as char
            )));
        }
    };
    Ok(msg)
}

fn expect(got: u8, want: u8) -> Result<(), Error> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Decode(format!(
            "expected {:?}, got {:?}",
            want as char, got as char
        )))
    }
}

/// Parses an LSN in PostgreSQL's `X/Y` text form.
pub fn parse_lsn(text: &str) -> Result<u64, Error> {
    let (hi, lo) = text
        .split_once('/')
        .ok_or_else(|| Error::Decode(format!("bad LSN {text:?}")))?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| Error::Decode(format!("bad LSN {text:?}")))?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| Error::Decode(format!("bad LSN {text:?}")))?;
    Ok((hi << 32) | lo)
}

/// Formats an LSN in PostgreSQL's `X/Y` text form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend((s.len() as i32).to_be_bytes());
                    b.extend(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn decodes_relation_insert_update_delete_truncate() {
        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0lww\0");
        rel.push(b'd');
        rel.extend(2i16.to_be_bytes());
        rel.push(1);
        rel.extend(b"id\0");
        rel.extend(25u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        rel.push(0);
        rel.extend(b"k\0");
        rel.extend(23u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        let Message::Relation(r) = decode(&rel).unwrap() else {
            panic!()
        };
        assert_eq!((r.namespace.as_str(), r.name.as_str()), ("public", "lww"));
        assert!(r.columns[0].is_key && !r.columns[1].is_key);
        assert_eq!(r.columns[1].type_oid, 23);

        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("a"), Some("1")]));
        assert_eq!(
            decode(&ins).unwrap(),
            Message::Insert {
                relation: 16384,
                new: vec![Value::Text("a".into()), Value::Text("1".into())]
            }
        );

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple(&[Some("a"), None]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("b"), Some("2")]));
        let Message::Update { old, new, .. } = decode(&upd).unwrap() else {
            panic!()
        };
        assert_eq!(old.unwrap()[1], Value::Null);
        assert_eq!(new[0], Value::Text("b".into()));

        let mut del = vec![b'D'];
        del.extend(16384u32.to_be_bytes());
        del.push(b'K');
        del.extend(tuple(&[Some("b"), None]));
        assert!(matches!(decode(&del).unwrap(), Message::Delete { .. }));

        let mut tr = vec![b'T'];
        tr.extend(1i32.to_be_bytes());
        tr.push(0);
        tr.extend(16384u32.to_be_bytes());
        assert_eq!(
            decode(&tr).unwrap(),
            Message::Truncate {
                relations: vec![16384]
            }
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_messages() {
        assert!(decode(b"").is_err());
        assert!(decode(b"Z").is_err());
        assert!(decode(&[b'I', 0, 0]).is_err());
    }

    #[test]
    fn lsn_round_trip() {
        assert_eq!(parse_lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert!(parse_lsn("nope").is_err());
    }
}
