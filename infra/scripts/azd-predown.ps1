# azd predown hook on Windows (azure.yaml), the twin of azd-predown.sh:
# `azd down` deletes the whole resource group; refuse when the export storage
# account or the Sentinel workspace is in it, unless
# TOKENPIVOT_DOWN_DELETES_EXPORT=true says that is meant. Every az call names
# AZURE_SUBSCRIPTION_ID.
$ErrorActionPreference = 'Stop'
$sub = $env:AZURE_SUBSCRIPTION_ID
$rg = $env:AZURE_RESOURCE_GROUP
if (-not $sub -or -not $rg) {
    [Console]::Error.WriteLine('AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP must be set')
    exit 2
}
if ($env:TOKENPIVOT_DOWN_DELETES_EXPORT -eq 'true') { exit 0 }
$exportRg = if ($env:TOKENPIVOT_EXPORT_RESOURCE_GROUP) { $env:TOKENPIVOT_EXPORT_RESOURCE_GROUP } else { $rg }
$lost = @()
if ($env:TOKENPIVOT_EXPORT_ACCOUNT -and $exportRg -ieq $rg) {
    az storage account show --subscription $sub --resource-group $rg --name $env:TOKENPIVOT_EXPORT_ACCOUNT --query id --output tsv 2>$null | Out-Null
    if ($LASTEXITCODE -eq 0) {
        $lost += "the export storage account $($env:TOKENPIVOT_EXPORT_ACCOUNT) (every exported sign-in log)"
    }
}
if ($env:TOKENPIVOT_SENTINEL_WORKSPACE_ID -and $env:TOKENPIVOT_SENTINEL_WORKSPACE_ID.ToLower().Contains("/resourcegroups/$($rg.ToLower())/")) {
    $lost += 'the Sentinel workspace with TokenPivotAlerts_CL (the alert history)'
}
if ($lost.Count -gt 0) {
    [Console]::Error.WriteLine(@"
=====================================================================
REFUSED: azd down deletes the resource group $rg, and with it
$($lost -join ' and ').
Move the data out of the group first, or delete only tokenpivot's
resources. To delete everything anyway:
  azd env set TOKENPIVOT_DOWN_DELETES_EXPORT true; azd down
=====================================================================
"@)
    exit 1
}
