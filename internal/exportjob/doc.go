// Package exportjob requests the hourly Parquet exports that the pipeline
// reads, with Log Analytics export jobs (preview), and tracks them to the end.
//
// # The API
//
// Sources: Microsoft Learn, "Run an export job in Azure Monitor Logs
// (preview)" (articles/azure-monitor/logs/export-job.md in
// MicrosoftDocs/azure-monitor-docs, ms.date 05/19/2026), and the LAJobLogs
// table reference (azure-monitor/reference/tables/LAJobLogs). What they say,
// and what this package does with it:
//
//   - Create: POST {endpoint}/v2/subscriptions/{s}/resourcegroups/{rg}/providers/
//     Microsoft.OperationalInsights/workspaces/{ws}/jobs/export?api-version=2025-06-01-preview
//     with {startTime, endTime, query, destinationStorageAccounts (resource ids,
//     1 to 10), containerName, outputDataFormat "Parquet", dateTimeFormat
//     "yyyy-MM-ddTHH" (default) or "year=yyyy/month=MM/day=dd/hour=HH"};
//     answer 202 {"operationId": "<guid>"}, the jobId for everything else.
//   - Status: GET .../jobs/export/{jobId}/status → 200 {"jobStatus":
//     "InProgress", "resultStatistics": {progressPercentage, resultCount,
//     scannedGigabytes}}. The page shows only "InProgress" (and "Canceled" from
//     /cancel); LAJobLogs lists Started, Succeeded, Canceled, Failed. The full
//     set of jobStatus values is not documented, so only Succeeded, Failed and
//     Canceled (case-insensitive, also "Cancelled") are terminal here and any
//     other value counts as still running: an unknown value is never taken
//     for success or failure.
//   - Retry: POST .../jobs/export/{jobId}/retry → 202 {"operationId"}. It
//     "skips data already exported successfully and only processes incomplete
//     or missing bins, preventing duplicates", at most 5 times per jobId, each
//     within 7 days of the latest completion. A canceled job cannot be retried.
//     Whether the operationId of a retry is a new id is not said (the example
//     shows the same GUID); the jobId keeps naming the job ("5 retries per
//     jobId"), so status is polled on the original jobId and the retry's id is
//     only recorded.
//   - Output: <container>/workspaceId/<workspace-guid>/jobId/<jobId>/
//     timestamp=<yyyy-MM-ddTHH>/<guid>.gz.parquet, partitioned into hourly
//     folders: the layout the pipeline's Event Grid trigger already reads.
//   - Tokens: the data-plane audience api.loganalytics.io (the page:
//     "api.loganalytics.io (equivalent to api.loganalytics.azure.com)"), so the
//     scope is https://api.loganalytics.io/.default.
//   - Limits: 5 active jobs per workspace including retries (MaxActive keeps
//     this scheduler under it), 7-day job timeout, startTime and endTime
//     earlier than now.
//   - Permissions: the caller needs workspaces/query/read and
//     workspaces/jobs/export/action (Log Analytics Reader); the workspace's
//     system-assigned identity needs Storage Blob Data Contributor and
//     Microsoft.Storage/storageAccounts/read (Log Analytics Reader) on the
//     destination account.
//
// Silent in the documentation, and the choice made here:
//
//   - Whether endTime is inclusive, and the time zone of startTime/endTime
//     (the examples have no offset): times are sent in UTC with a "Z", and the
//     query itself bounds TimeGenerated to the half-open hour
//     [start, start+1h), so a row on the hour boundary is exported by exactly
//     one of two adjacent jobs whichever way endTime is read.
//   - What the API answers past the 5-job limit, or to a retry of a job that
//     has not failed: any 4xx but 408 is taken as "not created" (the hour is
//     released and asked again on a later run); a 5xx, a 408 or a transport
//     error is ambiguous (the job may exist) and the hour is kept claimed
//     until its lease runs out, like a crash; then the job's output folder
//     is looked up (FindJob) before the hour is asked again. No token, a 401
//     or a 403 is an identity or RBAC outage: retried every run, never
//     counted against the hour's attempts.
//   - Idempotency keys: none are documented, and separate jobs do not
//     de-duplicate one another (only /retry of one job skips exported bins).
//     See Scheduler for what that means after a crash.
//
// # State
//
// One blob per table and hour in the state container,
// exports/<table>/<yyyy/MM/dd/HH>.json, holding a State. See Scheduler.
package exportjob
