//! Sync Streams over real PostgreSQL and real HTTP: the checkpoint's `streams`, each bucket's
//! `subscriptions` reasons and priority, a subscription to a stream that does not exist, a
//! subscription's rows arriving, an error entry for a subscription parameter that is not
//! JSON, and a parameter row (a subquery's table) adding and removing a stream bucket on a
//! live connection.

mod common;

use common::*;
use serde_json::{Value, json};
use standin::StandIn;

const TABLES: &str = "CREATE TABLE lists (id text PRIMARY KEY, owner_id text, name text); \
     CREATE TABLE todos (id text PRIMARY KEY, list_id text, description text); \
     CREATE TABLE shares (id text PRIMARY KEY, list_id text, user_id text); \
     INSERT INTO lists VALUES ('l1', 'u1', 'mine'), ('l2', 'u2', 'theirs'); \
     INSERT INTO todos VALUES ('t1', 'l1', 'a'), ('t2', 'l2', 'b')";

/// The lead's client-test configuration plus a stream with a subquery.
const RULES: &str = "config:
  edition: 2
streams:
  my_lists:
    auto_subscribe: true
    query: SELECT * FROM lists WHERE owner_id = auth.user_id()
  list_todos:
    query: SELECT * FROM todos WHERE list_id = subscription.parameter('list')
  shared_todos:
    priority: 1
    query: SELECT id, description AS title FROM todos WHERE list_id IN (SELECT list_id FROM shares WHERE user_id = auth.user_id())
  picked_todos:
    query: SELECT * FROM todos WHERE list_id IN subscription.parameter('lists')
";

fn request(streams: Value) -> Value {
    json!({"buckets": [], "include_checksum": true, "raw_data": true, "binary_data": true,
           "client_id": "client-1", "parameters": {}, "streams": streams})
}

/// `(bucket, priority, subscriptions)` of every bucket of a checkpoint line.
fn described(line: &Value) -> Vec<(String, u64, Value)> {
    let (body, key) = match line.get("checkpoint") {
        Some(c) => (c, "buckets"),
        None => (&line["checkpoint_diff"], "updated_buckets"),
    };
    let mut out: Vec<(String, u64, Value)> = body[key]
        .as_array()
        .expect("bucket list")
        .iter()
        .map(|b| {
            (
                b["bucket"].as_str().unwrap().to_owned(),
                b["priority"].as_u64().unwrap(),
                b["subscriptions"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `(bucket, op, object_id, data)` of every op in `lines`.
fn bucket_ops(lines: &[Value]) -> Vec<(String, String, String, Value)> {
    lines
        .iter()
        .filter_map(|l| l.get("data"))
        .flat_map(|d| {
            let bucket = d["bucket"].as_str().unwrap().to_owned();
            d["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |op| {
                    (
                        bucket.clone(),
                        op["op"].as_str().unwrap().to_owned(),
                        op["object_id"].as_str().unwrap_or_default().to_owned(),
                        op["data"].clone(),
                    )
                })
        })
        .collect()
}

#[tokio::test]
async fn subscriptions_reasons_priorities_and_live_parameter_rows() {
    let (pg, db) = postgres(TABLES).await;
    let standin = StandIn::start(config(&pg, RULES)).await.unwrap();
    let streams = json!({"include_defaults": true, "subscriptions": [
        {"stream": "list_todos", "parameters": {"list": "l2"}, "override_priority": 0},
        {"stream": "does_not_exist", "parameters": null, "override_priority": null},
        {"stream": "shared_todos", "parameters": {}, "override_priority": null},
        {"stream": "my_lists", "parameters": {"ignored": 1}, "override_priority": 2},
    ]});
    let mut lines = Lines::new(open_stream(&standin.url(), &token("u1"), &request(streams)).await);

    let first = lines.until_complete().await;
    let cp = &first[0]["checkpoint"];
    // In the order of the sync rules; the unknown stream has no entry (the service's way of
    // telling the client), and `shared_todos` is listed although it has no bucket yet.
    assert_eq!(
        cp["streams"],
        json!([
            {"name": "my_lists", "is_default": true, "errors": []},
            {"name": "list_todos", "is_default": false, "errors": []},
            {"name": "shared_todos", "is_default": false, "errors": []},
        ])
    );
    assert_eq!(
        described(&first[0]),
        vec![
            ("1#list_todos|0[\"l2\"]".to_owned(), 0, json!([{"sub": 0}])),
            // Subscribed explicitly (priority 2) and by default (3): both reasons, the
            // higher priority.
            (
                "1#my_lists|0[\"u1\"]".to_owned(),
                2,
                json!([{"sub": 3}, {"default": 0}])
            ),
        ]
    );
    let mut got = bucket_ops(&first);
    got.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    assert_eq!(
        got,
        vec![
            (
                "1#list_todos|0[\"l2\"]".to_owned(),
                "PUT".to_owned(),
                "t2".to_owned(),
                json!("{\"id\":\"t2\",\"list_id\":\"l2\",\"description\":\"b\"}")
            ),
            (
                "1#my_lists|0[\"u1\"]".to_owned(),
                "PUT".to_owned(),
                "l1".to_owned(),
                json!("{\"id\":\"l1\",\"owner_id\":\"u1\",\"name\":\"mine\"}")
            ),
        ]
    );

    // A share of l2 with u1 adds the subquery stream's bucket on the live connection.
    db.batch_execute("INSERT INTO shares VALUES ('s1', 'l2', 'u1')")
        .await
        .unwrap();
    let second = lines.until_complete().await;
    // Priority 3: the service's edition-2 streams ignore `priority:` (only a subscription's
    // `override_priority` changes it).
    assert_eq!(
        described(&second[0]),
        vec![(
            "1#shared_todos|0[\"l2\"]".to_owned(),
            3,
            json!([{"sub": 2}])
        )],
        "{second:?}"
    );
    assert_eq!(
        bucket_ops(&second),
        vec![(
            "1#shared_todos|0[\"l2\"]".to_owned(),
            "PUT".to_owned(),
            "t2".to_owned(),
            json!("{\"id\":\"t2\",\"title\":\"b\"}")
        )]
    );

    // t2 moves to l1: it leaves both l2 buckets (REMOVE), and no bucket of u1 gains it.
    db.batch_execute("UPDATE todos SET list_id = 'l1' WHERE id = 't2'")
        .await
        .unwrap();
    let third = lines.until_complete().await;
    let mut got: Vec<(String, String, String)> = bucket_ops(&third)
        .into_iter()
        .map(|(b, op, id, _)| (b, op, id))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "1#list_todos|0[\"l2\"]".to_owned(),
                "REMOVE".to_owned(),
                "t2".to_owned()
            ),
            (
                "1#shared_todos|0[\"l2\"]".to_owned(),
                "REMOVE".to_owned(),
                "t2".to_owned()
            ),
        ]
    );

    // The share goes: its bucket is removed from the connection.
    db.batch_execute("DELETE FROM shares WHERE id = 's1'")
        .await
        .unwrap();
    let fourth = lines.until_complete().await;
    assert_eq!(
        fourth[0]["checkpoint_diff"]["removed_buckets"],
        json!(["1#shared_todos|0[\"l2\"]"]),
        "{fourth:?}"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn defaults_and_bad_subscriptions() {
    let (pg, _db) = postgres(TABLES).await;
    let standin = StandIn::start(config(&pg, RULES)).await.unwrap();

    // Without `streams` (an older client) and with include_defaults absent: the default
    // stream only.
    for body in [
        json!({"buckets": [], "client_id": "c"}),
        request(json!({"subscriptions": []})),
    ] {
        let mut lines = Lines::new(open_stream(&standin.url(), &token("u2"), &body).await);
        let first = lines.until_complete().await;
        assert_eq!(
            first[0]["checkpoint"]["streams"],
            json!([{"name": "my_lists", "is_default": true, "errors": []}])
        );
        assert_eq!(
            described(&first[0]),
            vec![(
                "1#my_lists|0[\"u2\"]".to_owned(),
                3,
                json!([{"default": 0}])
            )]
        );
    }

    // include_defaults false and nothing subscribed: nothing at all.
    let body = request(json!({"include_defaults": false, "subscriptions": []}));
    let mut lines = Lines::new(open_stream(&standin.url(), &token("u2"), &body).await);
    let first = lines.until_complete().await;
    assert_eq!(first[0]["checkpoint"]["streams"], json!([]));
    assert_eq!(first[0]["checkpoint"]["buckets"], json!([]));

    // A subscription without its parameter gets the bucket of `null`, which holds nothing.
    let body = request(json!({"include_defaults": false, "subscriptions": [
        {"stream": "list_todos", "parameters": null, "override_priority": null}]}));
    let mut lines = Lines::new(open_stream(&standin.url(), &token("u2"), &body).await);
    let first = lines.until_complete().await;
    assert_eq!(
        described(&first[0]),
        vec![("1#list_todos|0[null]".to_owned(), 3, json!([{"sub": 0}]))]
    );
    assert!(bucket_ops(&first).is_empty());

    // `IN` on a subscription parameter: a JSON array gives one bucket per element; a value
    // that is not JSON is the service's error entry for that subscription, not a failure.
    let body = request(json!({"include_defaults": false, "subscriptions": [
        {"stream": "picked_todos", "parameters": {"lists": "not json"}, "override_priority": null},
        {"stream": "picked_todos", "parameters": {"lists": ["l1", "l2", true]}, "override_priority": 1}]}));
    let mut lines = Lines::new(open_stream(&standin.url(), &token("u2"), &body).await);
    let first = lines.until_complete().await;
    let streams = &first[0]["checkpoint"]["streams"];
    assert_eq!(streams.as_array().unwrap().len(), 1, "{streams}");
    assert_eq!(streams[0]["name"], "picked_todos");
    assert_eq!(
        streams[0]["errors"].as_array().unwrap().len(),
        1,
        "{streams}"
    );
    assert_eq!(streams[0]["errors"][0]["subscription"], 0);
    let message = streams[0]["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Error evaluating bucket ids: "),
        "{message}"
    );
    assert_eq!(
        described(&first[0]),
        vec![
            (
                "1#picked_todos|0[\"l1\"]".to_owned(),
                1,
                json!([{"sub": 1}])
            ),
            (
                "1#picked_todos|0[\"l2\"]".to_owned(),
                1,
                json!([{"sub": 1}])
            ),
        ]
    );
    let mut ids: Vec<String> = bucket_ops(&first).into_iter().map(|o| o.2).collect();
    ids.sort();
    assert_eq!(ids, ["t1", "t2"]);

    // Malformed `streams` are a 400 naming the field, never a stream.
    for (streams, field) in [
        (json!("all"), "streams"),
        (json!({"include_defaults": true}), "subscriptions"),
        (
            json!({"subscriptions": [{"stream": "list_todos", "parameters": "l1"}]}),
            "parameters",
        ),
        (
            json!({"subscriptions": [{"stream": 5, "parameters": {}}]}),
            "stream",
        ),
        (
            json!({"subscriptions": [{"stream": "list_todos", "override_priority": 9}]}),
            "override_priority",
        ),
    ] {
        let response = open_stream(&standin.url(), &token("u2"), &request(streams)).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "PSYNC_S2001");
        let description = body["error"]["description"].as_str().unwrap();
        assert!(description.contains(field), "{description}");
    }
    standin.shutdown().await;
}
