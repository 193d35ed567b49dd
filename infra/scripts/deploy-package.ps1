# Usage: infra/scripts/deploy-package.ps1 <resource-group> <function-app>
#
# Windows (PowerShell 7) twin of deploy-package.sh: builds the Flex
# Consumption package (go run ./tools/package), deploys it with the Azure
# CLI, retrying 403s while new role assignments propagate (every 30 s for up
# to TOKENPIVOT_DEPLOY_WAIT_SECONDS, 600), and waits for the host's
# eventgrid_extension key. AZURE_SUBSCRIPTION_ID names the subscription of
# every az call.
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
$waitMax = if ($env:TOKENPIVOT_DEPLOY_WAIT_SECONDS) { [int]$env:TOKENPIVOT_DEPLOY_WAIT_SECONDS } else { 600 }
Set-Location (Join-Path $PSScriptRoot '../..')

go run ./tools/package -o dist/tokenpivot.zip
if ($LASTEXITCODE -ne 0) { exit 1 }

$waited = 0
while ($true) {
    $out = az functionapp deploy --subscription $sub --resource-group $ResourceGroup --name $App `
        --src-path dist/tokenpivot.zip --type zip 2>&1
    if ($LASTEXITCODE -eq 0) { break }
    $text = $out | Out-String
    if ($text -notmatch '403|forbidden|AuthorizationPermissionMismatch|AuthorizationFailure') {
        [Console]::Error.WriteLine($text)
        [Console]::Error.WriteLine("${App}: package deployment failed (not a permission error, not retried)")
        exit 1
    }
    if ($waited -ge $waitMax) {
        [Console]::Error.WriteLine($text)
        [Console]::Error.WriteLine("${App}: package deployment still refused (403) after ${waited}s. The app's identity needs Storage Blob Data Owner on the storage account that holds the app-package container: check with")
        [Console]::Error.WriteLine("  az role assignment list --subscription $sub --all --assignee <AZURE_FUNCTION_IDENTITY_CLIENT_ID> --output table")
        exit 1
    }
    [Console]::Error.WriteLine("${App}: deployment refused with 403, most likely the new role assignments are still propagating; retrying in 30 s (${waited}s of ${waitMax}s waited)")
    Start-Sleep -Seconds 30
    $waited += 30
}

& (Join-Path $PSScriptRoot 'eventgrid-key.ps1') $ResourceGroup $App | Out-Null
if ($LASTEXITCODE -ne 0) { exit 1 }
Write-Output "${App}: package deployed, eventgrid_extension key present"
