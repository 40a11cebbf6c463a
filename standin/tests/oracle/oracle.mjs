// The differential oracle of tests/sync_rules_oracle.rs: the service's own sync-rules engine
// (@powersync/service-sync-rules, pinned in package.json) evaluated on the same cases as the
// stand-in's src/rules.
//
// stdin: one JSON case per line:
//   {"rules": "<yaml>",
//    "rows": [{"schema": "public", "table": "lists", "record": "<JSONBig text>"}],
//    "requests": [{"claims": "<JSON text>", "parameters": "<JSON text>"}]}
// The rows are also the parameter tables' rows: their evaluateParameterRow results, stored
// as the service's storage does (JSONBig round trip), answer the table-backed lookups.
// A row's record is parsed with JSONBig as the service's rows are typed (integers BigInt =
// INTEGER, other numbers REAL); claims and client parameters with JSON.parse, as the service
// parses the token payload and the request body.
// stdout: one JSON line per case:
//   {"errors": ["<message>", ...],            // fatal errors of fromYaml (warnings left out)
//    "rows": [[{"bucket", "table", "id", "data"}], ...],   // data = JSONBig.stringify, as stored
//    "requests": [["<bucket>", ...], ...]}    // static and dynamic buckets of the querier, sorted
import * as readline from 'node:readline';
import { DEFAULT_HYDRATION_STATE, DEFAULT_TAG, RequestParameters, BaseJwtPayload, SqlSyncRules } from '@powersync/service-sync-rules';
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
    const { querier, errors } = hydrated.getBucketParameterQuerier({ globalParameters, hasDefaultStreams: true, streams: {} });
    if (errors.length > 0) {
      throw new Error(`getBucketParameterQuerier: ${JSON.stringify(errors)}`);
    }
    const buckets = [...querier.staticBuckets];
    if (querier.hasDynamicBuckets) {
      buckets.push(...(await querier.queryDynamicBucketDescriptions(source)));
    }
    requests.push([...new Set(buckets.map((b) => b.bucket))].sort());
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
