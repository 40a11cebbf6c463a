//! Process lifecycle against the real binary: SIGKILL and restart, SIGSTOP/SIGCONT, SIGTERM, and
//! logs free of `ERROR` throughout.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Workdir, assert_no_error_in_log, stored_list};
use nix::sys::signal::Signal;

#[tokio::test]
async fn kill_9_then_restart_keeps_every_acknowledged_append() {
    let wd = Workdir::new();
    let ep = Arc::new(wd.start(&[("ENDPOINT_LOG_LEVEL", "INFO")], &[]));
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, i64)>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // Four writers append unique values until the process dies under them.
    let mut writers = Vec::new();
    for w in 0..4_i64 {
        let (url, acknowledged, client) =
            (ep.url("/sql-txn"), acknowledged.clone(), client.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let (k, n) = ((w * 7 + i) % 100, w * 1_000_000 + i);
                let body = format!(r#"{{"value":[{{"f":"append","k":{k},"v":{n}}}]}}"#);
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push((k, n)),
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the process was killed
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    ep.signal(Signal::SIGKILL);
    for writer in writers {
        writer.await.unwrap();
    }
    drop(ep);
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "only {} appends before the kill",
        acknowledged.len()
    );

    let ep = wd.start(&[("ENDPOINT_LOG_LEVEL", "INFO")], &[]);
    let rows = ep.rows().await;
    assert_eq!(rows.len(), 100);
    let stored: HashSet<(i64, i64)> = rows
        .iter()
        .flat_map(|r| {
            let k = r["k"].as_i64().unwrap();
            stored_list(r["v"].as_str().unwrap())
                .into_iter()
                .map(move |n| (k, n))
        })
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|a| !stored.contains(a))
        .collect();
    assert!(lost.is_empty(), "acknowledged appends lost: {lost:?}");
    // At most the requests in flight at the kill (one per writer) may be stored unacknowledged.
    assert!(
        stored.len() <= acknowledged.len() + 4,
        "{} stored, {} acknowledged",
        stored.len(),
        acknowledged.len()
    );
    // It serves after the restart.
    ep.txn(r#"{"value":[{"f":"r","k":0,"v":null}]}"#).await;
    assert_no_error_in_log(&wd.log());
}

#[tokio::test]
async fn sigstop_then_sigcont_and_it_still_serves() {
    let wd = Workdir::new();
    let ep = Arc::new(wd.start(&[], &[]));
    ep.txn(r#"{"value":[{"f":"append","k":1,"v":1}]}"#).await;

    ep.signal(Signal::SIGSTOP);
    let pending = {
        let ep = ep.clone();
        tokio::spawn(async move {
            ep.txn(r#"{"value":[{"f":"append","k":1,"v":2},{"f":"r","k":1,"v":null}]}"#)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pending.is_finished(), "a stopped process answered");
    ep.signal(Signal::SIGCONT);
    let reply = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply["value"][1]["v"], "[1 2]");

    let reply = ep
        .txn(r#"{"value":[{"f":"append","k":1,"v":3},{"f":"r","k":1,"v":null}]}"#)
        .await;
    assert_eq!(reply["value"][1]["v"], "[1 2 3]");
    assert_no_error_in_log(&wd.log());
}

#[tokio::test]
async fn sigterm_and_sigint_shut_down_cleanly_and_data_stays() {
    let wd = Workdir::new();
    for (i, signal) in [Signal::SIGTERM, Signal::SIGINT].into_iter().enumerate() {
        let mut ep = wd.start(&[], &[]);
        let body = format!(r#"{{"value":[{{"f":"append","k":4,"v":{i}}}]}}"#);
        ep.txn(&body).await;
        ep.signal(signal);
        let status = ep
            .wait_exit(Duration::from_secs(10))
            .expect("it exits after the signal");
        assert!(status.success(), "{signal}: {status}");
    }
    let log = wd.log();
    assert_eq!(log.matches("shut down cleanly").count(), 2, "{log}");
    let ep = wd.start(&[], &[]);
    assert_eq!(ep.rows().await[4]["v"], " 0 1");
    assert_no_error_in_log(&wd.log());
}

#[tokio::test]
async fn a_stalled_client_delays_sigterm_shutdown_only_for_the_drain_timeout() {
    use std::io::Write;

    let wd = Workdir::new();
    let mut ep = wd.start(&[], &[]);
    // A request whose body never arrives keeps its connection busy.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", ep.port)).unwrap();
    stalled
        .write_all(b"POST /sql-txn HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"value\":")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = std::time::Instant::now();
    ep.signal(Signal::SIGTERM);
    let status = ep
        .wait_exit(Duration::from_secs(15))
        .expect("it exits despite the stalled client");
    let waited = start.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        waited >= Duration::from_secs(4),
        "it should have waited for the request ({waited:?})"
    );
    let log = wd.log();
    assert!(
        log.contains("closing anyway") && log.contains("shut down cleanly"),
        "{log}"
    );
    drop(stalled);
}
