// Usage: node validate.mjs FILE — prints the parser's diagnostics as JSON, exits 1 on errors.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
const errors = diagnostics.filter((d) => d.severity === 0);
console.log(JSON.stringify(diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path }))));
process.exit(document && errors.length === 0 ? 0 : 1);
