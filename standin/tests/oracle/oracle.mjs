// The differential oracle of tests/sync_rules_oracle.rs: the service's own sync-rules engine
// (@powersync/service-sync-rules, pinned in package.json) evaluated on the same cases as the
// stand-in's src/rules.
//
// stdin: one JSON case per line:
//   {"rules": "<yaml>",
//    "rows": [{"schema": "public", "table": "lists", "record": "<JSONBig text>"}],
//    "requests": [{"claims": "<JSON text>", "parameters": "<JSON text>",
//                  "streams": <the request body's streams, absent or an object>}]}
// The rows are also the parameter tables' rows: their evaluateParameterRow results, stored
// as the service's storage does (JSONBig round trip), answer the table-backed lookups.
// A row's record is parsed with JSONBig as the service's rows are typed (integers BigInt =
// INTEGER, other numbers REAL); claims and client parameters with JSON.parse, as the service
// parses the token payload and the request body.
// stdout: one JSON line per case:
//   {"errors": ["<message>", ...],            // fatal errors of fromYaml (warnings left out)
//    "rows": [[{"bucket", "table", "id", "data"}], ...],   // data = JSONBig.stringify, as stored
//    "requests": [{"buckets": [{"bucket", "priority", "subscriptions"}], // sorted by bucket
//                  "streams": [{"name", "is_default", "errors"}]}]}
// The request side follows service-core's BucketParameterState and checkpoint line
// (BucketChecksumState.ts), which are not part of the npm package: the subscriptions become
// the querier's `streams` (opaque_id = index, parameters ?? {}), include_defaults defaults to
// true, static and dynamic buckets are merged with mergeBuckets separately (a dynamic
// description wins for an id in both), and reasons become {"default": <index into streams>}
// or {"sub": <index>}.
import * as readline from 'node:readline';
import { DEFAULT_HYDRATION_STATE, DEFAULT_TAG, RequestParameters, BaseJwtPayload, SqlSyncRules, mergeBuckets } from '@powersync/service-sync-rules';
import { JSONBig } from '@powersync/service-jsonbig';

async function evaluate(input) {
  const { config, errors } = SqlSyncRules.fromYaml(input.rules, { defaultSchema: 'public', throwOnError: false });
  const fatal = errors.filter((e) => e.type !== 'warning').map((e) => e.message);
  if (fatal.length > 0) {
    return { errors: fatal, rows: [], requests: [] };
  }
  const hydrated = config.hydrate({ hydrationState: DEFAULT_HYDRATION_STATE, sqlite: null });
  const parameterSets = new Map();
  const rows = input.rows.map((row) => {
    const sourceTable = { connectionTag: DEFAULT_TAG, schema: row.schema, name: row.table };
    const record = JSONBig.parse(row.record);
    const parameters = hydrated.evaluateParameterRowWithErrors(sourceTable, record);
    if (parameters.errors.length > 0) {
      throw new Error(`evaluateParameterRow: ${JSON.stringify(parameters.errors)}`);
    }
    for (const p of parameters.results) {
      const key = p.lookup.serializedRepresentation;
      const stored = JSONBig.parse(JSONBig.stringify(p.bucketParameters));
      parameterSets.set(key, [...(parameterSets.get(key) ?? []), ...stored]);
    }
    const { results, errors } = hydrated.evaluateRowWithErrors({ sourceTable, record });
    if (errors.length > 0) {
      throw new Error(`evaluateRow: ${JSON.stringify(errors)}`);
    }
    return results.map((r) => ({ bucket: r.bucket, table: r.table, id: r.id, data: JSONBig.stringify(r.data) }));
  });
  const source = {
    async getParameterSets(lookups) {
      return lookups.map((lookup) => ({ lookup, rows: parameterSets.get(lookup.serializedRepresentation) ?? [] }));
    }
  };
  const requests = [];
  for (const request of input.requests) {
    const globalParameters = new RequestParameters(
      new BaseJwtPayload(JSON.parse(request.claims)),
      JSON.parse(request.parameters)
    );
    const subscriptions = request.streams?.subscriptions ?? [];
    const streamsByName = {};
    subscriptions.forEach((subscription, i) => {
      const requested = {
        priorityOverride: subscription.override_priority,
        parameters: subscription.parameters ?? {},
        opaque_id: i
      };
      (streamsByName[subscription.stream] ??= []).push(requested);
    });
    const includeDefaults = request.streams?.include_defaults ?? true;
    const { querier, errors } = hydrated.getBucketParameterQuerier({
      globalParameters,
      hasDefaultStreams: includeDefaults,
      streams: streamsByName
    });
    const descriptions = new Map();
    for (const b of mergeBuckets(querier.staticBuckets)) descriptions.set(b.bucket, b);
    if (querier.hasDynamicBuckets) {
      for (const b of mergeBuckets(await querier.queryDynamicBucketDescriptions(source))) descriptions.set(b.bucket, b);
    }
    const streams = [];
    const index = new Map();
    for (const definition of hydrated.bucketSourceDefinitions) {
      if ((definition.subscribedToByDefault && includeDefaults) || Object.hasOwn(streamsByName, definition.name)) {
        index.set(definition.name, streams.length);
        streams.push({
          name: definition.name,
          is_default: definition.subscribedToByDefault,
          errors: errors
            .filter((e) => e.descriptor == definition.name)
            .map((e) => ({ subscription: e.subscription?.opaque_id ?? 'default', message: e.message }))
        });
      }
    }
    const buckets = [...descriptions.values()]
      .map((b) => ({
        bucket: b.bucket,
        priority: b.priority,
        subscriptions: b.inclusion_reasons.map((r) => (r == 'default' ? { default: index.get(b.definition) } : { sub: r.subscription }))
      }))
      .sort((a, b) => (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : 0));
    requests.push({ buckets, streams });
  }
  return { errors: [], rows, requests };
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  let output;
  try {
    output = await evaluate(JSON.parse(line));
  } catch (e) {
    output = { exception: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(output) + '\n');
}
