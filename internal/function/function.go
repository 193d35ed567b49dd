// Package function is tokenpivot's Azure Functions custom handler: an HTTP
// server the Functions host posts invocations to, one path per function
// (POST /OnExportCreated, /ProcessExport, /Sweep), with the host's
// {"Data":…,"Metadata":…} payload in and {"Outputs":…,"Logs":…,"ReturnValue":…}
// out. It answers non-2xx only when a retry can help: storage failures.
// Unreadable payloads and events naming blobs outside the export account and
// containers get a 200 with the reason logged, since redelivering them
// cannot succeed.
//
// Heavy work never runs under the Event Grid trigger, which waits at most
// 30 s: OnExportCreated turns each event into a queue message (output binding
// "work") that ProcessExport processes; the Sweep timer enqueues whatever the
// pipeline reports pending (lost events, grown append blobs, unfinished work).
//
// Event batches are decoded element by element, so their size is bounded
// only by MaxBody. ProcessExport invocations share a memory budget (see
// MemoryPerBlobByte and InstanceMemory): one whose blob does not fit waits.
package function
