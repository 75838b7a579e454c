// Written for codegen/tests/asyncapi.rs: parses AsyncAPI documents with @asyncapi/parser
// (the AsyncAPI initiative's own parser: its schema validation, reference resolution and
// the Spectral rules of its core and AsyncAPI 3 rulesets) and prints every diagnostic.
//
// usage: node parse.js <parser tools dir> <document.json>...
// Prints, per document, one `DIAGNOSTIC <file> <severity> <code> <path> <message>` line per
// diagnostic (severity: error, warning, info or hint), then `PARSED <file> <count>` when
// the parser returned a document or `UNPARSED <file> <count>` when it did not.
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const [tools, ...documents] = process.argv.slice(2);
const requireTool = createRequire(path.join(path.resolve(tools), "package.json"));
const { Parser } = requireTool("@asyncapi/parser");
// Spectral's DiagnosticSeverity.
const SEVERITIES = ["error", "warning", "info", "hint"];

(async () => {
  const parser = new Parser();
  for (const file of documents) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"), {
      source: path.resolve(file),
    });
    for (const diagnostic of diagnostics) {
      const severity = SEVERITIES[diagnostic.severity] ?? `severity-${diagnostic.severity}`;
      console.log(
        `DIAGNOSTIC ${file} ${severity} ${diagnostic.code} ${JSON.stringify(diagnostic.path)} ${diagnostic.message}`,
      );
    }
    console.log(`${document === undefined ? "UNPARSED" : "PARSED"} ${file} ${diagnostics.length}`);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
