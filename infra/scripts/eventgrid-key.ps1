# Usage: infra/scripts/eventgrid-key.ps1 <resource-group> <function-app>
#
# Windows (PowerShell 7) twin of eventgrid-key.sh: prints the host's
# eventgrid_extension system key, waiting (up to 5 minutes) for the host to
# create it. The key goes to stdout only; messages go to stderr.
# AZURE_SUBSCRIPTION_ID names the subscription of every az call.
param(
    [Parameter(Mandatory = $true)][string]$ResourceGroup,
    [Parameter(Mandatory = $true)][string]$App
)
$ErrorActionPreference = 'Stop'
$sub = $env:AZURE_SUBSCRIPTION_ID
if (-not $sub) {
    [Console]::Error.WriteLine('set AZURE_SUBSCRIPTION_ID to the app''s subscription (az account show --query id -o tsv)')
    exit 2
}
# Listing keys wakes the host.
for ($tries = 0; $tries -le 30; $tries++) {
    $key = az functionapp keys list --subscription $sub --resource-group $ResourceGroup --name $App `
        --query systemKeys.eventgrid_extension --output tsv 2>$null
    if ($LASTEXITCODE -eq 0 -and $key) {
        Write-Output $key
        exit 0
    }
    Start-Sleep -Seconds 10
}
[Console]::Error.WriteLine("${App}: no eventgrid_extension system key after 5 minutes: is the package deployed (infra/scripts/deploy-package.ps1)? Check the host's logs in Application Insights (traces, exceptions)")
exit 1
