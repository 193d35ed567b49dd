# azd preprovision hook on Windows (azure.yaml), the twin of
# azd-preprovision.sh: once the subscriptions exist (SUBSCRIBE_EVENTS=true),
# refresh the host's eventgrid_extension key before every provisioning.
$ErrorActionPreference = 'Stop'
if ($env:SUBSCRIBE_EVENTS -ne 'true' -or -not $env:AZURE_FUNCTION_APP_NAME) {
    exit 0
}
Set-Location (Join-Path $PSScriptRoot '../..')
$key = & (Join-Path $PSScriptRoot 'eventgrid-key.ps1') $env:AZURE_RESOURCE_GROUP $env:AZURE_FUNCTION_APP_NAME
if ($LASTEXITCODE -ne 0) { exit 1 }
azd env set TOKENPIVOT_EVENTGRID_KEY $key
if ($LASTEXITCODE -ne 0) { exit 1 }
