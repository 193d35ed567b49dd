# azd postprovision hook on Windows (azure.yaml), the twin of
# azd-postprovision.sh: deploy the code, then provision again with the host's
# eventgrid_extension key and SUBSCRIBE_EVENTS=true (the Event Grid
# subscriptions).
$ErrorActionPreference = 'Stop'
# The nested `azd provision` below runs this hook again: nothing left to do.
if ($env:TOKENPIVOT_NESTED_PROVISION -eq '1') {
    exit 0
}
Set-Location (Join-Path $PSScriptRoot '../..')
& (Join-Path $PSScriptRoot 'deploy-package.ps1') $env:AZURE_RESOURCE_GROUP $env:AZURE_FUNCTION_APP_NAME
if ($LASTEXITCODE -ne 0) { exit 1 }
if ($env:SUBSCRIBE_EVENTS -ne 'true') {
    $key = & (Join-Path $PSScriptRoot 'eventgrid-key.ps1') $env:AZURE_RESOURCE_GROUP $env:AZURE_FUNCTION_APP_NAME
    if ($LASTEXITCODE -ne 0) { exit 1 }
    # Kept in the azd environment (.azure/<env>/.env, local and not committed)
    # so that later `azd provision` runs keep the subscriptions.
    azd env set TOKENPIVOT_EVENTGRID_KEY $key
    azd env set SUBSCRIBE_EVENTS true
    $env:TOKENPIVOT_NESTED_PROVISION = '1'
    azd provision --no-prompt
    if ($LASTEXITCODE -ne 0) { exit 1 }
}
