// Runs rule.sql in DuckDB over two export folders and writes the result rows
// as JSON Lines (the keys and text forms of `tokenpivot detect --format jsonl`).
//
//   node rule.mjs INTERACTIVE_DIR NONINTERACTIVE_DIR OUT.jsonl [THREADS]
import { readFileSync, writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const [interactive, noninteractive, out, threads = '2'] = process.argv.slice(2);
if (!interactive || !noninteractive || !out) {
  console.error('usage: node rule.mjs INTERACTIVE_DIR NONINTERACTIVE_DIR OUT.jsonl [THREADS]');
  process.exit(2);
}
const quote = (s) => s.replaceAll("'", "''");
const glob = (dir) => quote(dir.replace(/\/+$/, '') + '/**/*.parquet');
const sql = readFileSync(new URL('./rule.sql', import.meta.url), 'utf8')
  .replace('@INTERACTIVE@', glob(interactive))
  .replace('@NONINTERACTIVE@', glob(noninteractive));

const db = await DuckDBInstance.create(':memory:', { threads: String(Number(threads)) });
const conn = await db.connect();
const reader = await conn.runAndReadAll(sql);
const rows = reader.getRowObjectsJS();
writeFileSync(out, rows.map((r) => JSON.stringify(r) + '\n').join(''));
const version = (await conn.runAndReadAll('SELECT version() AS v')).getRowObjectsJS()[0].v;
console.error(`duckdb ${version}: ${rows.length} result rows, threads=${threads}`);
