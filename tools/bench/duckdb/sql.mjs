// Runs one SQL file in DuckDB and writes the rows as JSON Lines, every
// value as text: the independent evaluation tuned rules are checked against
// (rule_tuned_test.go, DuckDB SQL written by hand from each rule's KQL).
//
//   node sql.mjs QUERY.sql OUT.jsonl
import { readFileSync, writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const [file, out] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:', { threads: '1' });
const conn = await db.connect();
const rows = (await conn.runAndReadAll(readFileSync(file, 'utf8'))).getRowObjectsJS();
// Every value as text (COPY answers with a BIGINT count).
writeFileSync(out, rows.map((r) => JSON.stringify(r, (k, v) => (typeof v === 'bigint' ? String(v) : v)) + '\n').join(''));
