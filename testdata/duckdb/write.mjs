// Writes sign-in export fixtures into ../readers/ with DuckDB, a Parquet
// writer other than arrow-go, so the readers are tested against files they
// did not write themselves. Run: npm install && node write.mjs
//
// It first writes the JSON Lines exports (Log Analytics data export style:
// every column, 7 fractional digits, dynamic columns as objects), then has
// DuckDB read them and COPY them to Parquet in several physical layouts.
// internal/signin/fixtures_test.go holds the records each file must yield.
import { DuckDBInstance } from '@duckdb/node-api';
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../readers');
mkdirSync(out, { recursive: true });

// Columns and Kusto types of the two tables (Azure Monitor table reference).
const SIGNIN_COLUMNS = [
  ["AADTenantId","string"], ["AlternateSignInName","string"], ["AppDisplayName","string"], ["AppId","string"],
  ["AppliedConditionalAccessPolicies","string"], ["AppliedEventListeners","dynamic"], ["AuthenticationContextClassReferences","string"], ["AuthenticationDetails","string"],
  ["AuthenticationMethodsUsed","string"], ["AuthenticationProcessingDetails","string"], ["AuthenticationProtocol","string"], ["AuthenticationRequirement","string"],
  ["AuthenticationRequirementPolicies","string"], ["AutonomousSystemNumber","string"], ["_BilledSize","real"], ["Category","string"],
  ["ClientAppUsed","string"], ["ConditionalAccessPolicies","dynamic"], ["ConditionalAccessStatus","string"], ["CorrelationId","string"],
  ["CreatedDateTime","datetime"], ["CrossTenantAccessType","string"], ["DeviceDetail","dynamic"], ["DurationMs","long"],
  ["FlaggedForReview","bool"], ["HomeTenantId","string"], ["Id","string"], ["Identity","string"],
  ["IPAddress","string"], ["IPAddressFromResourceProvider","string"], ["_IsBillable","string"], ["IsInteractive","bool"],
  ["IsRisky","bool"], ["Level","string"], ["Location","string"], ["LocationDetails","dynamic"],
  ["MfaDetail","dynamic"], ["NetworkLocationDetails","string"], ["OperationName","string"], ["OperationVersion","string"],
  ["OriginalRequestId","string"], ["ProcessingTimeInMilliseconds","string"], ["Resource","string"], ["ResourceDisplayName","string"],
  ["ResourceGroup","string"], ["ResourceId","string"], ["ResourceIdentity","string"], ["ResourceProvider","string"],
  ["ResourceServicePrincipalId","string"], ["ResourceTenantId","string"], ["ResultDescription","string"], ["ResultSignature","string"],
  ["ResultType","string"], ["RiskDetail","string"], ["RiskEventTypes","string"], ["RiskEventTypes_V2","string"],
  ["RiskLevel","string"], ["RiskLevelAggregated","string"], ["RiskLevelDuringSignIn","string"], ["RiskState","string"],
  ["ServicePrincipalId","string"], ["ServicePrincipalName","string"], ["SessionLifetimePolicies","string"], ["SignInIdentifier","string"],
  ["SignInIdentifierType","string"], ["SourceSystem","string"], ["Status","dynamic"], ["TimeGenerated","datetime"],
  ["TokenIssuerName","string"], ["TokenIssuerType","string"], ["Type","string"], ["UniqueTokenIdentifier","string"],
  ["UserAgent","string"], ["UserDisplayName","string"], ["UserId","string"], ["UserPrincipalName","string"],
  ["UserType","string"],
];
const NONINTERACTIVE_COLUMNS = [
  ["AADTenantId","string"], ["Agent","string"], ["AlternateSignInName","string"], ["AppDisplayName","string"],
  ["AppId","string"], ["AppliedEventListeners","dynamic"], ["AppOwnerTenantId","string"], ["AuthenticationContextClassReferences","string"],
  ["AuthenticationDetails","string"], ["AuthenticationMethodsUsed","string"], ["AuthenticationProcessingDetails","string"], ["AuthenticationProtocol","string"],
  ["AuthenticationRequirement","string"], ["AuthenticationRequirementPolicies","string"], ["AuthenticatorAppLocation","string"], ["AutonomousSystemNumber","string"],
  ["_BilledSize","real"], ["Category","string"], ["ClientAppUsed","string"], ["ClientCredentialType","string"],
  ["ClientSessionId","string"], ["ConditionalAccessAudiences","string"], ["ConditionalAccessPolicies","string"], ["ConditionalAccessStatus","string"],
  ["CorrelationId","string"], ["CreatedDateTime","datetime"], ["CrossTenantAccessType","string"], ["DeviceDetail","string"],
  ["DurationMs","long"], ["FederatedCredentialId","string"], ["GlobalSecureAccessIpAddress","string"], ["HomeTenantId","string"],
  ["HomeTenantName","string"], ["Id","string"], ["Identity","string"], ["IncomingTokenType","string"],
  ["IPAddress","string"], ["_IsBillable","string"], ["IsInteractive","bool"], ["IsRisky","bool"],
  ["IsTenantRestricted","bool"], ["IsThroughGlobalSecureAccess","bool"], ["Level","string"], ["Location","string"],
  ["LocationDetails","string"], ["MfaDetail","string"], ["NetworkLocationDetails","string"], ["OperationName","string"],
  ["OperationVersion","string"], ["OriginalRequestId","string"], ["OriginalTransferMethod","string"], ["ProcessingTimeInMs","string"],
  ["ResourceDisplayName","string"], ["ResourceGroup","string"], ["ResourceIdentity","string"], ["ResourceOwnerTenantId","string"],
  ["ResourceServicePrincipalId","string"], ["ResourceTenantId","string"], ["ResultDescription","string"], ["ResultSignature","string"],
  ["ResultType","string"], ["RiskDetail","string"], ["RiskEventTypes","string"], ["RiskEventTypes_V2","string"],
  ["RiskLevelAggregated","string"], ["RiskLevelDuringSignIn","string"], ["RiskState","string"], ["ServicePrincipalId","string"],
  ["SessionId","string"], ["SessionLifetimePolicies","string"], ["SignInEventTypes","string"], ["SignInIdentifierType","string"],
  ["SourceSystem","string"], ["Status","string"], ["TenantId","string"], ["TimeGenerated","datetime"],
  ["TokenIssuerName","string"], ["TokenIssuerType","string"], ["TokenProtectionStatusDetails","string"], ["Type","string"],
  ["UniqueTokenIdentifier","string"], ["UserAgent","string"], ["UserDisplayName","string"], ["UserId","string"],
  ["UserPrincipalName","string"], ["UserType","string"],
];

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

// The rows that matter to the rule; every other column gets a realistic filler.
// A field set to undefined is left out of the JSON line (an absent key).
const SIGNINS = [
  { TimeGenerated: '2026-11-20T10:15:30.1234567Z', UserPrincipalName: 'alice@contoso.com', IPAddress: '203.0.113.7', Location: 'US',
    ResultType: '0', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: 'Microsoft Teams', CorrelationId: '7c1e5a2b-3f4d-4b6e-9a8c-1d2e3f4a5b6c',
    UniqueTokenIdentifier: 'k3Jx9QbZ2EaYt1uVwXy0AA', Id: 'f0e1d2c3-b4a5-4968-8776-655443322110' },
  { TimeGenerated: '2026-11-20T10:20:01.0000001Z', UserPrincipalName: 'bob@contoso.com', IPAddress: '2001:db8:85a3::8a2e:370:7334', Location: 'DE',
    ResultType: '50126', AuthenticationRequirement: 'multiFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: 'Office 365 Exchange Online', CorrelationId: '0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d',
    UniqueTokenIdentifier: 'Zm9vYmFyYmF6cXV4cXV1eA', Id: '1a2b3c4d-5e6f-4071-8293-a4b5c6d7e8f9' },
  { TimeGenerated: '2026-11-20T10:31:45.9999999Z', UserPrincipalName: 'józef.nowak@fabrikam.com', IPAddress: '198.51.100.23', Location: 'PL',
    ResultType: '0', AuthenticationRequirement: 'multiFactorAuthentication', ConditionalAccessStatus: 'success',
    AppDisplayName: 'Azure Portal', CorrelationId: '5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e',
    UniqueTokenIdentifier: 'cXV1eGZvb2JhcmJhenF1eA', Id: '9e8d7c6b-5a4f-4e3d-a2c1-b0a9f8e7d6c5' },
  { TimeGenerated: '2026-11-20T10:40:00.0000000Z', UserPrincipalName: 'dave@contoso.com', IPAddress: '192.0.2.44', Location: undefined,
    ResultType: '0', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: null, CorrelationId: '2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a',
    UniqueTokenIdentifier: 'ZGF2ZWRhdmVkYXZlZGF2ZQ', Id: '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f' },
  { TimeGenerated: '2026-11-20T11:02:00.5000000Z', UserPrincipalName: 'alice@contoso.com', IPAddress: '203.0.113.7', Location: 'US',
    ResultType: '0', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: 'Microsoft Outlook', CorrelationId: '6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b',
    UniqueTokenIdentifier: 'YWxpY2VhbGljZWFsaWNlYQ', Id: '4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a' },
];

const NONINTERACTIVE = [
  { TimeGenerated: '2026-11-20T10:45:12.7654321Z', UserPrincipalName: 'alice@contoso.com', IPAddress: '45.155.205.10', Location: 'RU',
    ResultType: '0', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: 'Microsoft Office', CorrelationId: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
    UniqueTokenIdentifier: 'bm9uaW50ZXJhY3RpdmUwMQ', Id: 'b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e' },
  { TimeGenerated: '2026-11-20T10:16:00.0000000Z', UserPrincipalName: 'alice@contoso.com', IPAddress: '203.0.113.7', Location: 'US',
    ResultType: '0', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: 'Microsoft Teams', CorrelationId: '7c1e5a2b-3f4d-4b6e-9a8c-1d2e3f4a5b6c',
    UniqueTokenIdentifier: 'bm9uaW50ZXJhY3RpdmUwMg', Id: 'c3d4e5f6-a7b8-4c9d-8e1f-2a3b4c5d6e7f' },
  { TimeGenerated: '2026-11-20T10:50:00.0100000Z', UserPrincipalName: 'bob@contoso.com', IPAddress: '2001:db8::5', Location: 'FR',
    ResultType: '0', AuthenticationRequirement: 'multiFactorAuthentication', ConditionalAccessStatus: 'success',
    AppDisplayName: 'OfficeHome', CorrelationId: 'd4e5f6a7-b8c9-4d0e-9f2a-3b4c5d6e7f8a',
    UniqueTokenIdentifier: 'bm9uaW50ZXJhY3RpdmUwMw', Id: 'e5f6a7b8-c9d0-4e1f-8a3b-4c5d6e7f8a9b' },
  { TimeGenerated: '2026-11-20T11:59:59.9999999Z', UserPrincipalName: 'erin@contoso.com', IPAddress: '203.0.113.99', Location: 'NL',
    ResultType: '50140', AuthenticationRequirement: 'singleFactorAuthentication', ConditionalAccessStatus: 'notApplied',
    AppDisplayName: null, CorrelationId: 'f6a7b8c9-d0e1-4f2a-9b4c-5d6e7f8a9b0c',
    UniqueTokenIdentifier: undefined, Id: 'a7b8c9d0-e1f2-4a3b-8c5d-6e7f8a9b0c1d' },
];

// filler returns a plausible value for a column the rule does not read.
function filler(name, type, row, table, i) {
  switch (name) {
    case 'AADTenantId': case 'HomeTenantId': case 'ResourceTenantId': case 'TenantId': case 'AppOwnerTenantId': case 'ResourceOwnerTenantId':
      return TENANT;
    case 'Type': return table;
    case 'Category': return table === 'SigninLogs' ? 'SignInLogs' : 'NonInteractiveUserSignInLogs';
    case 'OperationName': return 'Sign-in activity';
    case 'OperationVersion': return '1.0';
    case 'SourceSystem': return 'Azure AD';
    case 'Level': return '4';
    case 'ResultSignature': return 'None';
    case 'ResultDescription': return row.ResultType === '0' ? '' : 'Invalid username or password or Invalid on-premise username or password.';
    case 'Identity': case 'UserDisplayName': return row.UserPrincipalName.split('@')[0];
    case 'UserId': return `0000000${i}-1111-4222-8333-444455556666`;
    case 'UserType': return 'Member';
    case 'ClientAppUsed': return 'Browser';
    case 'UserAgent': return 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0';
    case 'AutonomousSystemNumber': return '8075';
    case 'CreatedDateTime': return row.TimeGenerated;
    case 'DeviceDetail': {
      const v = { deviceId: '', operatingSystem: 'Windows10', browser: 'Edge 120.0.0', isCompliant: false, trustType: '' };
      return type === 'dynamic' ? v : JSON.stringify(v);
    }
    case 'LocationDetails': {
      const v = { city: 'Redmond', state: 'Washington', countryOrRegion: row.Location ?? '', geoCoordinates: { latitude: 47.68, longitude: -122.12 } };
      return type === 'dynamic' ? v : JSON.stringify(v);
    }
    case 'Status': {
      const v = { errorCode: Number(row.ResultType), additionalDetails: 'MFA requirement satisfied by claim in the token' };
      return type === 'dynamic' ? v : JSON.stringify(v);
    }
    case 'MfaDetail': return type === 'dynamic' ? {} : '{}';
    case 'AuthenticationDetails': return JSON.stringify([{ authenticationStepDateTime: row.TimeGenerated, authenticationMethod: 'Password', succeeded: row.ResultType === '0' }]);
    case 'ConditionalAccessPolicies': case 'AppliedEventListeners':
      return type === 'dynamic' ? [] : '[]';
  }
  switch (type) {
    case 'bool': return name === 'IsInteractive' ? table === 'SigninLogs' : false;
    case 'long': return 100 + 37 * i;
    case 'real': return 5123 + i;
    case 'dynamic': return {};
    case 'datetime': return row.TimeGenerated;
  }
  return '';
}

function exportRows(columns, rows, table) {
  return rows.map((row, i) => {
    const o = {};
    for (const [name, type] of columns) {
      if (name in row) {
        if (row[name] !== undefined) o[name] = row[name];
      } else {
        o[name] = filler(name, type, row, table, i);
      }
    }
    return o;
  });
}

const signins = exportRows(SIGNIN_COLUMNS, SIGNINS, 'SigninLogs');
const nonInteractive = exportRows(NONINTERACTIVE_COLUMNS, NONINTERACTIVE, 'AADNonInteractiveUserSignInLogs');
const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
writeFileSync(path.join(out, 'signinlogs.jsonl'), jsonl(signins));
writeFileSync(path.join(out, 'aadnoninteractive.jsonl'), jsonl(nonInteractive));

const db = await DuckDBInstance.create(':memory:', { threads: '1' });
const conn = await db.connect();

// Load each JSON Lines file with the Kusto types mapped to DuckDB's; dynamic
// columns stay JSON text, as export jobs write them.
const duckType = { string: 'VARCHAR', dynamic: 'VARCHAR', datetime: 'VARCHAR', bool: 'BOOLEAN', long: 'BIGINT', real: 'DOUBLE' };
async function load(table, file, columns) {
  const spec = columns.map(([n, t]) => `'${n}': '${duckType[t]}'`).join(', ');
  await conn.run(`CREATE TABLE ${table} AS SELECT * FROM read_json('${path.join(out, file)}', format = 'newline_delimited', columns = {${spec}})`);
}
await load('si', 'signinlogs.jsonl', SIGNIN_COLUMNS);
await load('ni', 'aadnoninteractive.jsonl', NONINTERACTIVE_COLUMNS);

const q = (n) => `"${n}"`;
// select lists the columns in the given order, with TimeGenerated and
// CreatedDateTime cast by timeCast and ResultType by resultCast.
function select(columns, { timeCast, resultCast = 'VARCHAR', extra = {} }) {
  return columns.map(([n]) => {
    if (n in extra) return `${extra[n]} AS ${q(n)}`;
    if (n === 'TimeGenerated' || n === 'CreatedDateTime') return timeCast ? `${q(n)}::${timeCast} AS ${q(n)}` : q(n);
    if (n === 'ResultType') return `${q(n)}::${resultCast} AS ${q(n)}`;
    return q(n);
  }).join(', ');
}

async function copy(file, sql, options) {
  await conn.run(`COPY (${sql}) TO '${path.join(out, file)}' (FORMAT parquet, ${options})`);
  const meta = await conn.runAndReadAll(`SELECT DISTINCT path_in_schema, type, compression, encodings FROM parquet_metadata('${path.join(out, file)}') WHERE path_in_schema IN ('TimeGenerated', 'ResultType', 'UserPrincipalName')`);
  const logical = await conn.runAndReadAll(`SELECT name, type, logical_type FROM parquet_schema('${path.join(out, file)}') WHERE name IN ('TimeGenerated', 'ResultType')`);
  const groups = await conn.runAndReadAll(`SELECT count(DISTINCT row_group_id) AS n FROM parquet_metadata('${path.join(out, file)}')`);
  console.log(file, JSON.stringify(meta.getRowObjectsJson()), JSON.stringify(logical.getRowObjectsJson()), 'row groups:', groups.getRowObjectsJson()[0].n);
}

// 1. SigninLogs as an export job writes it: schema order, TIMESTAMP WITH TIME
//    ZONE (micros, UTC-adjusted), ZSTD.
await copy('signinlogs-duckdb-zstd.parquet',
  `SELECT ${select(SIGNIN_COLUMNS, { timeCast: 'TIMESTAMPTZ' })} FROM si`,
  'COMPRESSION zstd');

// 2. SigninLogs with nanosecond local timestamps, an integer ResultType, gzip,
//    and DeviceDetail as a nested struct (extra columns may be nested).
await copy('signinlogs-duckdb-ns-gzip.parquet',
  `SELECT ${select(SIGNIN_COLUMNS, {
    timeCast: 'TIMESTAMP_NS', resultCast: 'INTEGER',
    extra: { DeviceDetail: `{'operatingSystem': json_extract_string("DeviceDetail", '$.operatingSystem'), 'browser': json_extract_string("DeviceDetail", '$.browser')}` },
  })} FROM si`,
  'COMPRESSION gzip');

// 3. Non-interactive with the columns in reverse order, millisecond
//    timestamps, BIGINT ResultType, snappy.
await copy('aadnoninteractive-duckdb-ms-snappy.parquet',
  `SELECT ${select([...NONINTERACTIVE_COLUMNS].reverse(), { timeCast: 'TIMESTAMP_MS', resultCast: 'BIGINT' })} FROM ni`,
  'COMPRESSION snappy');

// 4. Non-interactive with TimeGenerated kept as the ISO 8601 text (7 digits),
//    columns sorted by name, uncompressed.
await copy('aadnoninteractive-duckdb-strtime.parquet',
  `SELECT ${select([...NONINTERACTIVE_COLUMNS].sort((a, b) => a[0].localeCompare(b[0])), {})} FROM ni`,
  'COMPRESSION uncompressed');

// 5. The SigninLogs rows repeated 600 times (3000 rows): DuckDB then picks
//    dictionary encoding and, with 2048-row groups, writes two row groups.
await copy('signinlogs-duckdb-dict-600x.parquet',
  `SELECT ${select(SIGNIN_COLUMNS, { timeCast: 'TIMESTAMPTZ' })} FROM si, range(600) AS rep(n) ORDER BY rep.n, si."TimeGenerated"`,
  'COMPRESSION zstd, ROW_GROUP_SIZE 2048');
