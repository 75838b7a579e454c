// Written for codegen/tests/asyncapi.rs: validates AsyncAPI documents against the official
// AsyncAPI 3.0.0 JSON Schema (from @asyncapi/specs; its `-without-$id` variant, because the
// bundled draft-07 meta-schema would clash with the one Ajv registers itself) with Ajv
// (draft-07), then checks messages a NATS server stored, or records a Kafka broker stored,
// against the first valid document.
//
// usage: node validate.js <tools dir> <received.json> <document.json>...
// Prints one line per document, `VALID <file>` or `INVALID <file> <errors as JSON>`, and one
// line per received message, `RECEIVED <index> <message key>` when exactly one message of
// the document matches it, else `RECEIVED <index> unmatched <why as JSON>`.
//
// A received message is `{"form", "subject", "headers": {name: [values]}, "body": text}`,
// and a Kafka record also has `"key"`. It matches a message of the document when: the
// message is on the channel whose address is the subject (the topic), its `x-factum.form`
// is the form, every header has one value and is named in the message's headers schema,
// the headers validate against that schema, the body (as JSON) against the message's
// payload schema, and a key against the message's Kafka binding's `key` schema (a record
// has a key exactly when the message's binding describes one).
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const [tools, receivedFile, ...documents] = process.argv.slice(2);
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

const received = JSON.parse(fs.readFileSync(receivedFile, "utf8"));
if (received.length > 0) {
  // The payload and header schemas, as a draft-07 validator reads them, with `$ref`s
  // resolved against the whole document (as AsyncAPI resolves them).
  const data = new Ajv({ allErrors: true, strict: false, validateSchema: false, logger: false });
  addFormats(data);
  for (const format of ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float", "double"]) {
    data.addFormat(format, true);
  }
  data.addSchema(lastValid, "document.json");
  const pointer = (ref) =>
    ref
      .replace(/^#\//, "")
      .split("/")
      .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
      .reduce((node, part) => node[part], lastValid);
  const resolve = (node) => (node && node.$ref ? resolve(pointer(node.$ref)) : node);
  // Every property a headers schema names, through `$ref` and `allOf`.
  const named = (schema) => {
    const node = resolve(schema);
    const names = new Set(Object.keys(node.properties ?? {}));
    for (const part of node.allOf ?? []) {
      for (const name of named(part)) names.add(name);
    }
    return names;
  };
  received.forEach((message, index) => {
    // What is wrong with the message itself, and why each candidate did not match.
    const problems = [];
    const why = [];
    const channels = Object.entries(lastValid.channels).filter(
      ([, channel]) => channel.address === message.subject,
    );
    if (channels.length !== 1) {
      console.log(`RECEIVED ${index} unmatched ${JSON.stringify(`${channels.length} channels at ${message.subject}`)}`);
      return;
    }
    const [channelKey, channel] = channels[0];
    const headers = {};
    for (const [name, values] of Object.entries(message.headers)) {
      if (values.length !== 1) problems.push(`header ${name} has ${values.length} values`);
      headers[name] = values[0];
    }
    let body;
    try {
      body = JSON.parse(message.body);
    } catch (error) {
      problems.push(`the body is not JSON: ${error.message}`);
    }
    const matches = [];
    for (const [key, ref] of Object.entries(channel.messages)) {
      const candidate = resolve(ref);
      if (candidate["x-factum"]?.form !== message.form) continue;
      // Ajv follows no `$ref` inside a JSON pointer: point at the message itself.
      const base = ref.$ref
        ? `document.json${ref.$ref}`
        : `document.json#/channels/${channelKey.replace(/~/g, "~0").replace(/\//g, "~1")}/messages/${key}`;
      const undocumented = Object.keys(headers).filter((name) => !named(candidate.headers).has(name));
      const headersValid = data.validate({ $ref: `${base}/headers` }, headers);
      const headerErrors = data.errors;
      const payloadValid = data.validate({ $ref: `${base}/payload` }, body);
      const payloadErrors = data.errors;
      const keySchema = candidate.bindings?.kafka?.key;
      let keyValid = keySchema === undefined ? !("key" in message) : typeof message.key === "string";
      let keyErrors = keyValid ? null : [`a key ${keySchema === undefined ? "where none is described" : "missing or not a string"}`];
      if (keyValid && keySchema !== undefined) {
        keyValid = data.validate({ $ref: `${base}/bindings/kafka/key` }, message.key);
        keyErrors = data.errors;
      }
      if (undocumented.length === 0 && headersValid && payloadValid && keyValid && problems.length === 0) {
        matches.push(key);
      } else {
        why.push({ key, undocumented, headers: headerErrors?.slice(0, 3), payload: payloadErrors?.slice(0, 3), recordKey: keyErrors?.slice(0, 3) });
      }
    }
    console.log(
      matches.length === 1
        ? `RECEIVED ${index} ${matches[0]}`
        : `RECEIVED ${index} unmatched ${JSON.stringify({ matches, problems, why })}`,
    );
  });
}
