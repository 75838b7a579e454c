// Written for codegen/tests/asyncapi.rs: validates AsyncAPI documents against the official
// AsyncAPI 3.0.0 JSON Schema (from @asyncapi/specs; its `-without-$id` variant, because the
// bundled draft-07 meta-schema would clash with the one Ajv registers itself) with Ajv
// (draft-07), then checks sample messages against the generated payload and header schemas.
//
// usage: node validate.js <tools dir> <samples.json> <document.json>...
// Prints one line per document, `VALID <file>` or `INVALID <file> <errors as JSON>`, and one
// line per sample, `SAMPLE <index> accepted|rejected`.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const [tools, samplesFile, ...documents] = process.argv.slice(2);
const requireTool = createRequire(path.join(path.resolve(tools), "package.json"));
const Ajv = requireTool("ajv").default;
const addFormats = requireTool("ajv-formats").default;
const specsDir = path.dirname(requireTool.resolve("@asyncapi/specs/package.json"));
const specSchema = JSON.parse(
  fs.readFileSync(path.join(specsDir, "schemas", "3.0.0-without-$id.json"), "utf8"),
);

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validateSpec = ajv.compile(specSchema);
let lastValid = null;
for (const file of documents) {
  const document = JSON.parse(fs.readFileSync(file, "utf8"));
  if (validateSpec(document)) {
    console.log(`VALID ${file}`);
    lastValid = lastValid ?? document;
  } else {
    console.log(`INVALID ${file} ${JSON.stringify(validateSpec.errors.slice(0, 5))}`);
  }
}

// The payload and header schemas, as a draft-07 validator reads them, with `$ref`s
// resolved against the whole document (as AsyncAPI resolves them).
const samples = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
if (samples.length > 0) {
  const data = new Ajv({ allErrors: true, strict: false, validateSchema: false, logger: false });
  addFormats(data);
  for (const format of ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float", "double"]) {
    data.addFormat(format, true);
  }
  data.addSchema(lastValid, "document.json");
  samples.forEach((sample, index) => {
    const check = (part) =>
      data.validate({ $ref: `document.json#/components/messages/${sample.message}/${part}` }, sample[part]);
    const payload = check("payload");
    const headers = sample.headers === undefined ? true : check("headers");
    console.log(`SAMPLE ${index} ${payload && headers ? "accepted" : "rejected"}`);
  });
}
