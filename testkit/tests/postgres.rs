//! Starts a real throwaway cluster: logical WAL, restart, database creation, cleanup on drop.

use testkit::TestPostgres;

#[tokio::test]
async fn cluster_starts_with_logical_wal_restarts_and_cleans_up() {
    let mut pg = TestPostgres::start().unwrap();
    let client = pg.client().await.unwrap();
    let row = client.query_one("SHOW wal_level", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "logical");
    client
        .batch_execute("CREATE TABLE t (id text primary key); INSERT INTO t VALUES ('a')")
        .await
        .unwrap();
    drop(client);

    let uri = pg.create_database("other db").await.unwrap();
    assert!(uri.ends_with("/other db?sslmode=disable"));
    let other = pg.client_for("other db").await.unwrap();
    other.batch_execute("SELECT 1").await.unwrap();
    drop(other);

    pg.restart().unwrap();
    let client = pg.client().await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "committed data survives an immediate restart");

    let dir = pg.socket_dir().parent().unwrap().to_path_buf();
    let port = pg.port();
    drop(client);
    drop(pg);
    assert!(!dir.exists(), "temp dir {dir:?} removed on drop");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server stopped on drop"
    );
}

/// `start` trades durability for speed; `start_durable` keeps PostgreSQL's defaults, so every
/// commit is flushed to the WAL before it is acknowledged.
#[tokio::test]
async fn a_durable_cluster_keeps_fsync_and_full_page_writes_on() {
    for (pg, on) in [
        (TestPostgres::start().unwrap(), "off"),
        (TestPostgres::start_durable().unwrap(), "on"),
    ] {
        let client = pg.client().await.unwrap();
        for setting in ["fsync", "full_page_writes"] {
            let row = client
                .query_one(&format!("SHOW {setting}"), &[])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), on, "{setting}");
        }
        let row = client.query_one("SHOW wal_level", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "logical");
    }
}
