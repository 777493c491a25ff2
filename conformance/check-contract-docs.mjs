// Parses schemas/asyncapi.yaml with the AsyncAPI reference parser and
// compiles every JSON Schema with ajv. Exits non-zero on any error
// diagnostic or compile error; prints one JSON line of counts on success.
//
//   node check-contract-docs.mjs ../schemas

import { resolve } from "node:path";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";
import { fromFile } from "@asyncapi/parser";
import { loadSchemas } from "./schemas.mjs";

const dir = resolve(process.argv[2] ?? "../schemas");
let failed = false;

const { ids } = loadSchemas(dir);

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, resolve(dir, "asyncapi.yaml")).parse();
for (const d of diagnostics) {
  const where = (d.path ?? []).join("/");
  if (d.severity === DiagnosticSeverity.Error) {
    failed = true;
    console.error(`asyncapi error: ${d.code}: ${d.message} at ${where}`);
  } else {
    console.error(`asyncapi note (severity ${d.severity}): ${d.code}: ${d.message} at ${where}`);
  }
}
if (!document) failed = true;
if (failed) process.exit(1);
console.log(JSON.stringify({
  schemas: ids.length,
  channels: document.channels().length,
  messages: document.components().messages().length,
  operations: document.operations().length,
}));

