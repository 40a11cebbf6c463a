//! Sync Streams on the client (issue #14): subscriptions stored by the real core, the stream
//! status it reports, and, end to end over the stand-in and real PostgreSQL, subscribing and
//! unsubscribing while connected.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::time::{Duration, SystemTime};

use powersync::schema::{Column, Schema, Table};
use powersync::{CoreLibrary, Error, SubscribeOptions};
use serde_json::json;

fn schema() -> Schema {
    Schema::new(vec![
        Table::new(
            "lists",
            vec![Column::text("owner_id"), Column::text("name")],
        ),
        Table::new(
            "todos",
            vec![Column::text("list_id"), Column::text("description")],
        ),
    ])
}

/// The cores with Sync Streams that download (0.4.6+) from the vendored test set.
fn stream_cores() -> Vec<&'static CoreLibrary> {
    common::cores()
        .into_iter()
        .filter(|c| c.version().at_least(0, 4, 6))
        .collect()
}

fn list(id: &str) -> serde_json::Map<String, serde_json::Value> {
    json!({ "list": id })
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn near(t: Option<SystemTime>, want: SystemTime, within: Duration) -> bool {
    t.is_some_and(|t| {
        let d = t.duration_since(want).unwrap_or_else(|e| e.duration());
        d <= within
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_stored_by_the_core_and_shown_offline() {
    for core in stream_cores() {
        let v = core.version();
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        let stream = db.sync_stream("list_todos", Some(&list("la")));
        let before = SystemTime::now();
        let sub = stream
            .subscribe(
                SubscribeOptions::default()
                    .with_ttl(Duration::from_secs(3600))
                    .with_priority(1),
            )
            .await
            .unwrap();
        let status = db.status();
        let entry = sub
            .status_in(&status)
            .unwrap_or_else(|| panic!("core {v}: no stream entry in {:?}", status.streams));
        assert!(
            entry.has_explicit_subscription && !entry.is_default,
            "core {v}"
        );
        assert!(!entry.active, "core {v}: no service has acknowledged it");
        assert!(!entry.has_synced(), "core {v}");
        assert!(
            near(
                entry.expires_at,
                before + Duration::from_secs(3600),
                Duration::from_secs(120)
            ),
            "core {v}: expires_at {:?} is not an hour from now",
            entry.expires_at
        );
        assert_eq!(entry.parameters, Some(json!({"list": "la"})), "core {v}");
        // Another parameter set is another subscription; the first is not it.
        assert!(
            status
                .for_stream("list_todos", Some(&json!({"list": "lb"})))
                .is_none()
        );

        // Out of range: refused, nothing stored.
        let refused = db
            .sync_stream("list_todos", Some(&list("lb")))
            .subscribe(SubscribeOptions::default().with_priority(4))
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{refused:?}"
        );
        assert_eq!(db.status().streams.len(), 1, "core {v}");

        // Dropping the handle keeps the stored subscription (its TTL runs); `unsubscribe_all`
        // ends it: the core keeps the row but no longer as an explicit subscription, so it is
        // no longer requested.
        sub.unsubscribe();
        assert!(db.status().streams[0].has_explicit_subscription, "core {v}");
        stream.unsubscribe_all().await.unwrap();
        let status = db.status();
        assert!(
            status.streams.iter().all(|s| !s.has_explicit_subscription),
            "core {v}: {:?}",
            status.streams
        );
        db.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cores_without_sync_streams_refuse_to_subscribe() {
    for core in common::cores()
        .into_iter()
        .filter(|c| !c.version().at_least(0, 4, 5))
    {
        let (_dir, db) = pg::open_client_with(core, &schema()).await;
        let refused = db
            .sync_stream("list_todos", None)
            .subscribe(SubscribeOptions::default())
            .await;
        assert!(
            matches!(
                refused,
                Err(Error::UnsupportedByCore { needs: "0.4.5", .. })
            ),
            "core {}: {refused:?}",
            core.version()
        );
        db.close().await.unwrap();
    }
}
