//! Which buckets a sync request gets, with their priorities and subscription reasons, as the
//! service's `BucketParameterState` (service-core) resolves them through the sync-rules
//! engine's queriers.
//!
//! - A bucket definition, and a stream with `auto_subscribe: true`, is a default stream: it
//!   is resolved when the request's `include_defaults` is true (the default) or when a
//!   subscription names it.
//! - A stream is resolved once per subscription naming it (in request order, reason
//!   `{"sub": <index>}`, priority `override_priority` or the stream's) and, for a default
//!   stream, once more with reason `"default"` and empty subscription parameters — also when
//!   `include_defaults` is false but a subscription names it, as the service does.
//! - A bucket definition's buckets always have reason `"default"` and its priority.
//! - Buckets of the same id are merged, as the service's `mergeBuckets`: their reasons
//!   concatenated in querier order, the lowest priority number kept. Static buckets (no
//!   parameter rows involved) and dynamic ones are merged separately; for an id in both, the
//!   dynamic one is what the checkpoint describes (the service's `bucketDescriptionMap`).
//! - The checkpoint's `streams` lists every definition and stream the request resolved, in
//!   the order of the sync rules. A subscription naming no stream yields nothing, neither
//!   a bucket nor an entry (the client learns from its absence). A subscription whose
//!   buckets cannot be evaluated (`<column> IN <value>` on a value that is not JSON) gets an
//!   entry in its stream's `errors` instead of buckets, as in the service.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::SyncRules;
use super::eval::{Request, SqliteValue};

/// The `streams` object of a sync request.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamsRequest {
    /// Whether default streams are included (`include_defaults`, true when absent).
    pub include_defaults: bool,
    /// The explicit subscriptions, indexed by their position (the `sub` reason).
    pub subscriptions: Vec<StreamSubscription>,
}

impl StreamsRequest {
    /// A request without `streams`: the default streams only.
    pub fn defaults() -> Self {
        StreamsRequest {
            include_defaults: true,
            subscriptions: Vec::new(),
        }
    }

    /// The request body's `streams` (`None` when absent), validated as the service's
    /// `StreamSubscriptionRequest`: `subscriptions` required; each with a string `stream`,
    /// `parameters` an object or null, `override_priority` null or (stricter than the
    /// service, which takes any number) an integer from 0 to 3. The error names the field.
    pub fn from_json(value: Option<&Json>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(StreamsRequest::defaults());
        };
        let bad = |what: String| format!("streams: {what}");
        let Json::Object(object) = value else {
            return Err(bad("must be an object".to_owned()));
        };
        let include_defaults = match object.get("include_defaults") {
            None => true,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(bad("include_defaults must be a boolean".to_owned())),
        };
        let Some(Json::Array(items)) = object.get("subscriptions") else {
            return Err(bad("subscriptions must be an array".to_owned()));
        };
        let mut subscriptions = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(Json::String(stream)) = item.get("stream") else {
                return Err(bad(format!("subscriptions[{i}].stream must be a string")));
            };
            let parameters = match item.get("parameters") {
                None | Some(Json::Null) => Json::Object(Default::default()),
                Some(p @ Json::Object(_)) => p.clone(),
                Some(_) => {
                    return Err(bad(format!(
                        "subscriptions[{i}].parameters must be an object or null"
                    )));
                }
            };
            let override_priority = match item.get("override_priority") {
                None | Some(Json::Null) => None,
                Some(p) => Some(p.as_u64().filter(|p| *p <= 3).ok_or_else(|| {
                    bad(format!(
                        "subscriptions[{i}].override_priority must be null or an integer from 0 to 3"
                    ))
                })? as u8),
            };
            subscriptions.push(StreamSubscription {
                stream: stream.clone(),
                parameters,
                override_priority,
            });
        }
        Ok(StreamsRequest {
            include_defaults,
            subscriptions,
        })
    }
}

/// One explicit subscription of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSubscription {
    /// The stream's name.
    pub stream: String,
    /// Its parameters (`subscription.parameter(...)`): an object (`{}` when absent or null).
    pub parameters: Json,
    /// `override_priority`: the priority of its buckets instead of the stream's.
    pub override_priority: Option<u8>,
}

/// Why a bucket is in a request's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A default stream or bucket definition.
    Default,
    /// The explicit subscription with this index.
    Subscription(usize),
}

/// A bucket of a request, as the checkpoint line describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBucket {
    /// The bucket name (before versioning).
    pub bucket: String,
    /// The definition or stream it comes from.
    pub definition: String,
    /// Its priority for this request.
    pub priority: u8,
    /// Why the request has it, in the service's order.
    pub reasons: Vec<Reason>,
}

/// A stream (or bucket definition) of a request, for the checkpoint's `streams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// Its name.
    pub name: String,
    /// Whether it is a default stream.
    pub is_default: bool,
    /// The subscriptions whose buckets could not be evaluated, with the message.
    pub errors: Vec<(Reason, String)>,
}

impl StreamDescription {
    /// The entry of the checkpoint's `streams`:
    /// `{name, is_default, errors: [{subscription: <index> | "default", message}]}`.
    pub fn to_json(&self) -> Json {
        let errors: Vec<Json> = self
            .errors
            .iter()
            .map(|(reason, message)| {
                let subscription = match reason {
                    Reason::Default => serde_json::json!("default"),
                    Reason::Subscription(i) => serde_json::json!(i),
                };
                serde_json::json!({"subscription": subscription, "message": message})
            })
            .collect();
        serde_json::json!({"name": self.name, "is_default": self.is_default, "errors": errors})
    }
}

/// Everything a request resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// The checkpoint's `streams`, in the sync rules' order.
    pub streams: Vec<StreamDescription>,
    /// The buckets, sorted by name.
    pub buckets: Vec<ResolvedBucket>,
}

impl Resolution {
    /// The index of `definition` in [`Resolution::streams`] (the `default` reason's value).
    pub fn stream_index(&self, definition: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.name == definition)
    }

    /// A bucket's `subscriptions` as the checkpoint line writes them:
    /// `{"default": <index into the checkpoint's streams>}` or `{"sub": <subscription>}`.
    pub fn subscriptions(&self, bucket: &ResolvedBucket) -> Vec<Json> {
        bucket
            .reasons
            .iter()
            .map(|reason| match reason {
                Reason::Default => {
                    serde_json::json!({"default": self.stream_index(&bucket.definition)})
                }
                Reason::Subscription(i) => serde_json::json!({"sub": i}),
            })
            .collect()
    }
}

/// `mergeBuckets`: one entry per bucket id, reasons concatenated, the lowest priority.
fn merge(buckets: Vec<ResolvedBucket>) -> Vec<ResolvedBucket> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: HashMap<String, ResolvedBucket> = HashMap::new();
    for bucket in buckets {
        match by_name.get_mut(&bucket.bucket) {
            Some(existing) => {
                existing.reasons.extend(bucket.reasons);
                existing.priority = existing.priority.min(bucket.priority);
            }
            None => {
                order.push(bucket.bucket.clone());
                by_name.insert(bucket.bucket.clone(), bucket);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|name| by_name.remove(&name))
        .collect()
}

impl SyncRules {
    /// The buckets and streams of a request (see the module documentation): `claims` is the
    /// verified token payload, `parameters` the client's `parameters` object, `matching`
    /// the selected columns of the current parameter rows of `(definition, query, lookup)`.
    pub fn resolve_by(
        &self,
        claims: &Json,
        parameters: &Json,
        request: &StreamsRequest,
        matching: impl Fn(&str, usize, &[SqliteValue]) -> Vec<Vec<(String, SqliteValue)>>,
    ) -> Resolution {
        let empty = Json::Object(Default::default());
        let mut streams = Vec::new();
        let (mut fixed, mut dynamic) = (Vec::new(), Vec::new());
        for bucket in &self.buckets {
            let subscriptions: Vec<(usize, &StreamSubscription)> = request
                .subscriptions
                .iter()
                .enumerate()
                .filter(|(_, s)| s.stream == bucket.definition)
                .collect();
            if !(bucket.is_default() && request.include_defaults) && subscriptions.is_empty() {
                continue;
            }
            let mut errors = Vec::new();
            let mut push =
                |buckets: Result<(Vec<String>, Vec<String>), String>, reason, priority| {
                    let (f, d) = match buckets {
                        Ok(buckets) => buckets,
                        Err(message) => {
                            errors.push((reason, message));
                            return;
                        }
                    };
                    for (names, into) in [(f, &mut fixed), (d, &mut dynamic)] {
                        into.extend(names.into_iter().map(|name| ResolvedBucket {
                            bucket: name,
                            definition: bucket.definition.clone(),
                            priority,
                            reasons: vec![reason],
                        }));
                    }
                };
            let request = |subscription| Request {
                claims,
                parameters,
                subscription,
                fixed_json_extract: self.fixed_json_extract,
            };
            let Some(stream) = &bucket.stream else {
                push(
                    Ok(request(&empty).definition_buckets(bucket, &matching)),
                    Reason::Default,
                    bucket.priority,
                );
                streams.push(StreamDescription {
                    name: bucket.definition.clone(),
                    is_default: true,
                    errors,
                });
                continue;
            };
            for (index, subscription) in subscriptions {
                push(
                    request(&subscription.parameters).stream_buckets(bucket, stream, &matching),
                    Reason::Subscription(index),
                    subscription.override_priority.unwrap_or(bucket.priority),
                );
            }
            if stream.auto_subscribe {
                push(
                    request(&empty).stream_buckets(bucket, stream, &matching),
                    Reason::Default,
                    bucket.priority,
                );
            }
            streams.push(StreamDescription {
                name: bucket.definition.clone(),
                is_default: bucket.is_default(),
                errors,
            });
        }
        let mut buckets: BTreeMap<String, ResolvedBucket> = BTreeMap::new();
        for bucket in merge(fixed).into_iter().chain(merge(dynamic)) {
            buckets.insert(bucket.bucket.clone(), bucket);
        }
        Resolution {
            streams,
            buckets: buckets.into_values().collect(),
        }
    }
}
