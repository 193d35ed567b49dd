-- The Token Theft Pivot rule as DuckDB SQL, with exactly the KQL semantics
-- tokenpivot implements (docs/performance.md): the baseline of `make bench`.
-- rule.mjs replaces the quoted placeholders with the export folders' globs.
-- Safe lists are the seed rule's: KnownSafeIPs empty, KnownSafeNetworks only
-- the placeholder 0.0.0.0/32, so an IPAddress of exactly '0.0.0.0' is safe.
-- A null string reads as '' (KQL has no null strings). Exports repeat
-- records on retry: a pair of source rows (by Id) is reported once.
WITH interactive AS (
    SELECT coalesce(UserPrincipalName, '') AS upn,
           TimeGenerated                   AS t,
           coalesce(IPAddress, '')         AS ip,
           coalesce(Location, '')          AS loc,
           Id                              AS id
    FROM read_parquet('@INTERACTIVE@')
    WHERE CAST(ResultType AS VARCHAR) = '0'
      AND (AuthenticationRequirement = 'singleFactorAuthentication'
           OR ConditionalAccessStatus = 'notApplied')
      AND coalesce(IPAddress, '') <> '0.0.0.0'
),
noninteractive AS (
    SELECT coalesce(UserPrincipalName, '')     AS upn,
           TimeGenerated                       AS t,
           coalesce(IPAddress, '')             AS ip,
           coalesce(Location, '')              AS loc,
           coalesce(AppDisplayName, '')        AS app,
           coalesce(CorrelationId, '')         AS corr,
           coalesce(UniqueTokenIdentifier, '') AS uti,
           Id                                  AS id
    FROM read_parquet('@NONINTERACTIVE@')
    WHERE CAST(ResultType AS VARCHAR) = '0'
      AND coalesce(IPAddress, '') <> '0.0.0.0'
),
pairs AS (
    SELECT DISTINCT ON (i.id, n.id)
           n.t AS ni_t, i.t AS i_t, n.upn, n.app, n.ip AS ni_ip, n.loc AS ni_loc,
           i.ip AS i_ip, i.loc AS i_loc, n.corr, n.uti,
           epoch_us(n.t) - epoch_us(i.t) AS gap_us
    FROM noninteractive n
    JOIN interactive i ON n.upn = i.upn
    WHERE n.ip <> i.ip
      AND n.loc <> i.loc
      AND n.t - i.t BETWEEN INTERVAL 1 MINUTE AND INTERVAL 2 HOUR
)
SELECT strftime(ni_t, '%Y-%m-%dT%H:%M:%S.%fZ') AS NISignInTime,
       strftime(i_t, '%Y-%m-%dT%H:%M:%S.%fZ')  AS InteractiveTime,
       upn    AS UserPrincipalName,
       app    AS AppDisplayName,
       ni_ip  AS NIIPAddress,
       ni_loc AS NICountry,
       i_ip   AS InteractiveIP,
       i_loc  AS InteractiveCountry,
       corr   AS CorrelationId,
       uti    AS UniqueTokenIdentifier,
       -- KQL timespan text: hh:mm:ss[.fffffff] (the window is under a day).
       printf('%02d:%02d:%02d', gap_us // 3600000000, gap_us // 60000000 % 60, gap_us // 1000000 % 60)
         || CASE WHEN gap_us % 1000000 = 0 THEN '' ELSE printf('.%07d', gap_us % 1000000 * 10) END
              AS TimeSinceInteractive
FROM pairs
ORDER BY UserPrincipalName, InteractiveTime
