// Reads queries, one JSON string per line on stdin, and writes for each one
// JSON line: {"errors": [...]} with Microsoft's parser's syntax diagnostics
// (Kusto.Language's KustoCode.Parse). internal/kql's tests run it to confirm
// that what the compiler accepts is valid KQL, and what it refuses as a
// syntax error is not.
global.Bridge = require('@kusto/language-service-next/bridge.min.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
const readline = require('node:readline');
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const q = JSON.parse(line);
  const code = Kusto.Language.KustoCode.Parse(q);
  const diags = code.GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diags.Count; i++) {
    const d = diags.getItem(i);
    if (d.Severity === 'Error') errors.push(d.Message + ' @' + d.Start);
  }
  process.stdout.write(JSON.stringify({ errors }) + '\n');
});
