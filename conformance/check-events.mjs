// Reads what the Smart Rent bridge published, as a shop's consumer in
// another language would, and checks each message against the public
// contract (docs/contract.md):
//   - SMARTRENT_OUT and the ingress's smartrent.in.inbank.callback events:
//     headers Content-Type application/cloudevents+json and Nats-Msg-Id =
//     event id; the raw JSON has "data" as an object and no "data_base64";
//     the CloudEvents JavaScript SDK parses and validates the event; its
//     data validates (ajv) against the schema its dataschema names; the
//     subject is data.orderId.
//   - SMARTRENT_DLQ: every dead letter has the contract's headers.
// Prints one JSON line {"types":{type:count},"deadLetters":n,"failures":[...]}
// and exits 1 when any check failed.
//
//   node check-events.mjs nats://127.0.0.1:4222 ../schemas
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { HTTP } from "cloudevents";
import { loadSchemas } from "./schemas.mjs";

const [servers = "nats://127.0.0.1:4222", schemaDir = "../schemas"] = process.argv.slice(2);
const { ajv } = loadSchemas(schemaDir);
const failures = [];
const types = {};
let deadLetters = 0;

const nc = await connect({ servers, name: "smartrent-conformance-js" });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);

// readAll returns every message of stream (optionally of one subject),
// through an ordered consumer, as a shop's consumer would read them.
async function readAll(stream, subject) {
  const si = await jsm.streams.info(stream, subject ? { subjects_filter: subject } : undefined);
  const want = subject ? (si.state.subjects?.[subject] ?? 0) : si.state.messages;
  const out = [];
  if (want === 0) return out;
  const c = await js.consumers.get(stream, subject ? { filter_subjects: [subject] } : {});
  const msgs = await c.consume();
  const timer = setTimeout(() => msgs.stop(), 20_000);
  for await (const m of msgs) {
    out.push({ subject: m.subject, seq: m.seq, data: m.string(), headers: m.headers });
    if (m.info.pending === 0) break;
  }
  clearTimeout(timer);
  await msgs.close();
  return out;
}

function fail(m, what) {
  failures.push(`${m.subject} #${m.seq}: ${what}`);
}

function checkEvent(m) {
  const ct = m.headers?.get("Content-Type");
  if (ct !== "application/cloudevents+json") fail(m, `Content-Type is ${JSON.stringify(ct)}`);
  let raw;
  try {
    raw = JSON.parse(m.data);
  } catch (e) {
    return fail(m, `body is not JSON: ${e.message}`);
  }
  if ("data_base64" in raw) fail(m, "has data_base64");
  if (raw.data === null || typeof raw.data !== "object" || Array.isArray(raw.data)) fail(m, `data is ${typeof raw.data}, not an object`);
  if (m.headers?.get("Nats-Msg-Id") !== raw.id) fail(m, `Nats-Msg-Id ${m.headers?.get("Nats-Msg-Id")} is not the event id ${raw.id}`);
  if (raw.datacontenttype !== "application/json") fail(m, `datacontenttype is ${raw.datacontenttype}`);

  let ce;
  try {
    ce = HTTP.toEvent({ headers: { "content-type": ct }, body: m.data });
    ce.validate();
  } catch (e) {
    return fail(m, `CloudEvents SDK refused it: ${e.message} ${JSON.stringify(e.errors ?? "")}`);
  }
  types[ce.type] = (types[ce.type] ?? 0) + 1;
  if (ce.data === null || typeof ce.data !== "object") fail(m, `the SDK's event.data is ${typeof ce.data}`);
  const validate = ajv.getSchema(ce.dataschema);
  if (!validate) return fail(m, `no schema has $id ${ce.dataschema}`);
  if (!validate(ce.data)) fail(m, `data breaks ${ce.dataschema}: ${ajv.errorsText(validate.errors)}`);
  if (ce.subject !== ce.data?.orderId) fail(m, `subject ${ce.subject} is not data.orderId ${ce.data?.orderId}`);
}

function checkDeadLetter(m) {
  deadLetters++;
  for (const h of ["Smartrent-Dlq-Reason", "Smartrent-Dlq-Stream", "Smartrent-Dlq-Stream-Seq", "Smartrent-Dlq-Deliveries", "Smartrent-Dlq-Time", "Nats-Msg-Id"]) {
    if (!m.headers?.get(h)) fail(m, `dead letter without ${h}`);
  }
  if (!m.subject.startsWith("smartrent.dlq.smartrent.")) fail(m, "dead-letter subject is not smartrent.dlq.<original subject>");
  if (Number.isNaN(Date.parse(m.headers?.get("Smartrent-Dlq-Time") ?? ""))) fail(m, "Smartrent-Dlq-Time is not a time");
}

try {
  for (const m of await readAll("SMARTRENT_OUT")) checkEvent(m);
  for (const m of await readAll("SMARTRENT_CALLBACKS", "smartrent.in.inbank.callback")) checkEvent(m);
  for (const m of await readAll("SMARTRENT_DLQ")) checkDeadLetter(m);
} finally {
  await nc.close();
}
console.log(JSON.stringify({ types, deadLetters, failures }));
process.exit(failures.length ? 1 : 0);
