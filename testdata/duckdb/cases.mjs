// Writes the rule cases (../cases/*.jsonl) as Parquet with DuckDB, so the
// end-to-end test runs the rule on files from another writer. TimeGenerated
// becomes TIMESTAMP_NS (the cases need 100 ns precision), the dynamic
// columns JSON text, as exports write them. Run: npm install && node cases.mjs
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const cases = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cases');
mkdirSync(path.join(cases, 'parquet'), { recursive: true });
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
for (const table of ['interactive', 'noninteractive']) {
  const src = path.join(cases, `${table}.jsonl`);
  const dst = path.join(cases, 'parquet', `${table}.parquet`);
  // Read every column as text, then type the ones Log Analytics types.
  await con.run(`
    COPY (
      SELECT * REPLACE (
        CAST(replace(TimeGenerated, 'Z', '') AS TIMESTAMP_NS) AS TimeGenerated,
        CAST(IsInteractive AS BOOLEAN) AS IsInteractive)
      FROM read_json('${src}', format = 'newline_delimited', sample_size = -1, columns = {
        TenantId: 'VARCHAR', SourceSystem: 'VARCHAR', TimeGenerated: 'VARCHAR', OperationName: 'VARCHAR',
        Category: 'VARCHAR', ResultType: 'VARCHAR', ResultDescription: 'VARCHAR', CorrelationId: 'VARCHAR',
        AppDisplayName: 'VARCHAR', AppId: 'VARCHAR', AuthenticationRequirement: 'VARCHAR',
        ConditionalAccessStatus: 'VARCHAR', ClientAppUsed: 'VARCHAR', DeviceDetail: 'VARCHAR', IPAddress: 'VARCHAR',
        IsInteractive: 'VARCHAR', Location: 'VARCHAR', LocationDetails: 'VARCHAR', Status: 'VARCHAR', UserAgent: 'VARCHAR',
        UserDisplayName: 'VARCHAR', UserPrincipalName: 'VARCHAR', UserId: 'VARCHAR', UniqueTokenIdentifier: 'VARCHAR',
        Id: 'VARCHAR', Type: 'VARCHAR'})
      ORDER BY UserPrincipalName DESC
    ) TO '${dst}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 8)`);
  console.log(`wrote ${dst}`);
}
