#!/bin/sh
# azd predown hook (azure.yaml): `azd down` deletes the whole resource group.
# If the export storage account (the SOC's exported sign-in logs) or the
# Sentinel workspace (TokenPivotAlerts_CL, the alert history) is in it, they
# would go too: refuse, unless TOKENPIVOT_DOWN_DELETES_EXPORT=true says that
# is meant. Every az call names AZURE_SUBSCRIPTION_ID.
set -eu
sub=${AZURE_SUBSCRIPTION_ID:?set AZURE_SUBSCRIPTION_ID to the subscription of the app, e.g. from: az account show --query id -o tsv}
rg=${AZURE_RESOURCE_GROUP:?AZURE_RESOURCE_GROUP is not set}
if [ "${TOKENPIVOT_DOWN_DELETES_EXPORT:-false}" = true ]; then
	exit 0
fi
export_rg=${TOKENPIVOT_EXPORT_RESOURCE_GROUP:-$rg}
lost=""
if [ -n "${TOKENPIVOT_EXPORT_ACCOUNT:-}" ] && [ "$(printf '%s' "$export_rg" | tr '[:upper:]' '[:lower:]')" = "$(printf '%s' "$rg" | tr '[:upper:]' '[:lower:]')" ] &&
	az storage account show --subscription "$sub" --resource-group "$rg" --name "$TOKENPIVOT_EXPORT_ACCOUNT" --query id --output tsv >/dev/null 2>&1; then
	lost="the export storage account $TOKENPIVOT_EXPORT_ACCOUNT (every exported sign-in log)"
fi
case "$(printf '%s' "${TOKENPIVOT_SENTINEL_WORKSPACE_ID:-}" | tr '[:upper:]' '[:lower:]')" in
*/resourcegroups/"$(printf '%s' "$rg" | tr '[:upper:]' '[:lower:]')"/*)
	lost="${lost:+$lost and }the Sentinel workspace with TokenPivotAlerts_CL (the alert history)" ;;
esac
if [ -n "$lost" ]; then
	cat >&2 <<MSG
=====================================================================
REFUSED: azd down deletes the resource group $rg, and with it
$lost.
Move the data out of the group first, or delete only tokenpivot's
resources. To delete everything anyway:
  azd env set TOKENPIVOT_DOWN_DELETES_EXPORT true && azd down
=====================================================================
MSG
	exit 1
fi
