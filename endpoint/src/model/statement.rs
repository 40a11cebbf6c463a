//! How the connectors send one upload statement: in one round trip, or as the seed endpoint's
//! Dart driver does.

use tokio_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};

/// How one upload statement is sent to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statement {
    /// One round trip: the parameter types are given, so Parse, Bind and Execute go out together
    /// (`execute_typed`). Used inside the connectors' PostgreSQL transactions, where the
    /// round trips only cost time.
    Typed,
    /// Three awaited round trips, as the seed endpoint's driver spends them (Dart `postgres`
    /// 3.2.1, its `pubspec.lock`): `Connection.execute` with parameters prepares a named
    /// statement and waits for ParseComplete, runs it and waits for its result, then closes it
    /// and waits for CloseComplete (`lib/src/v3/connection.dart`: `_prepare`, `run`,
    /// `dispose`). The seed's `CrudBatchConnector` commits each entry on its own, so this time
    /// between two commits is the window in which a PostgreSQL reader sees part of a
    /// transaction: sending it in one round trip would hide the seed's finding.
    DartDriver,
}

impl Statement {
    /// Runs `sql` with `params` (each with its type) and returns the number of rows affected.
    pub async fn execute(
        self,
        client: &impl GenericClient,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> std::result::Result<u64, tokio_postgres::Error> {
        match self {
            Statement::Typed => client.execute_typed(sql, params).await,
            Statement::DartDriver => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
                let prepared = client.prepare_typed(sql, &types).await?;
                let rows = client.execute(&prepared, &values).await?;
                // Dropping the statement sends its Close; tokio-postgres does not wait for the
                // answer, so an empty query behind it does: the driver's third round trip.
                drop(prepared);
                client.batch_execute("").await?;
                Ok(rows)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio_postgres::NoTls;

    use super::*;

    /// A TCP relay to PostgreSQL for one connection that counts the server's ReadyForQuery
    /// messages: PostgreSQL sends one for each Sync and each simple query, so one per awaited
    /// exchange. Its threads end when either side closes.
    fn counting_relay(pg_port: u16) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let ready = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ready);
        std::thread::spawn(move || {
            let (mut client, _) = listener.accept().expect("accept");
            let mut server = TcpStream::connect(("127.0.0.1", pg_port)).expect("connect");
            let (mut from_client, mut to_server) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            // Server to client, message by message: a type byte, then a length counting itself.
            let mut head = [0u8; 5];
            while server.read_exact(&mut head).is_ok() {
                let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                let mut body = vec![0u8; len.saturating_sub(4)];
                if server.read_exact(&mut body).is_err() {
                    break;
                }
                if head[0] == b'Z' {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                if client
                    .write_all(&head)
                    .and_then(|()| client.write_all(&body))
                    .is_err()
                {
                    break;
                }
            }
            let _ = client.shutdown(Shutdown::Both);
        });
        (port, ready)
    }

    /// `Typed` is one exchange; `DartDriver` is the Dart driver's three awaited ones (Parse,
    /// Bind/Execute, Close; the Close's answer is awaited behind an empty query) and leaves no
    /// prepared statement behind, as the driver's `dispose` does. Both write the row.
    #[tokio::test]
    async fn the_dart_driver_waits_for_parse_execute_and_close_and_typed_for_one() {
        let pg = testkit::TestPostgres::start().expect("PostgreSQL");
        let setup = pg.client().await.expect("client");
        setup
            .batch_execute(
                "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, '')",
            )
            .await
            .expect("table");
        let (port, ready) = counting_relay(pg.port());
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            NoTls,
        )
        .await
        .expect("connect through the relay");
        let connection = tokio::spawn(connection);
        for (statement, exchanges, v) in [
            (Statement::Typed, 1, "typed"),
            (Statement::DartDriver, 4, "dart"),
        ] {
            let before = ready.load(Ordering::SeqCst);
            let rows = statement
                .execute(
                    &client,
                    "UPDATE t SET v = $1 WHERE id = $2",
                    &[(&v, Type::TEXT), (&1i32, Type::INT4)],
                )
                .await
                .expect("update");
            assert_eq!(rows, 1, "{statement:?}");
            assert_eq!(
                ready.load(Ordering::SeqCst) - before,
                exchanges,
                "{statement:?}: ReadyForQuery messages"
            );
            let row = setup
                .query_one("SELECT v FROM t WHERE id = 1", &[])
                .await
                .expect("read back");
            assert_eq!(row.get::<_, String>(0), v, "{statement:?} committed");
            // A simple query: a prepared one would list itself.
            let open = client
                .simple_query("SELECT count(*) FROM pg_prepared_statements")
                .await
                .expect("prepared statements");
            let open = open.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            });
            assert_eq!(
                open.as_deref(),
                Some("0"),
                "{statement:?} left a statement open"
            );
        }
        drop(client);
        connection
            .await
            .expect("connection task")
            .expect("connection");
    }
}
