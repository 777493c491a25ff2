// Loads every JSON Schema in schemas/ into ajv (draft 2020-12, formats on),
// keyed by its $id, so a dataschema names the schema that validates data.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

export function loadSchemas(dir) {
  const ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: false });
  addFormats(ajv);
  const ids = [];
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
    const schema = JSON.parse(readFileSync(join(dir, f), "utf8"));
    if (!schema.$id) throw new Error(`${f}: no $id`);
    ajv.addSchema(schema);
    ids.push(schema.$id);
  }
  // Compile each one now: an unresolvable $ref or an unknown keyword fails here.
  for (const id of ids) ajv.getSchema(id);
  return { ajv, ids };
}
