#!/bin/sh
# Usage: infra/scripts/deploy-package.sh <resource-group> <function-app>
#
# Builds the Flex Consumption package (go run ./tools/package), deploys it with
# the Azure CLI, and waits until the Functions host has created its
# eventgrid_extension system key (infra/scripts/eventgrid-key.sh), which the
# Event Grid subscriptions (step 2) put in their webhook URL.
#
# Right after the first provisioning, the app's identity may not yet hold
# Storage Blob Data Owner on the deployment container everywhere (role
# assignments take minutes to propagate), and the deployment fails with 403:
# it is retried every 30 s for up to TOKENPIVOT_DEPLOY_WAIT_SECONDS (600).
#
# AZURE_SUBSCRIPTION_ID names the subscription of every az call (azd sets it
# in hooks): the CLI's default subscription may be another one.
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 <resource-group> <function-app>" >&2
	exit 2
fi
rg=$1
app=$2
sub=${AZURE_SUBSCRIPTION_ID:?set AZURE_SUBSCRIPTION_ID to the subscription of the app, e.g. from: az account show --query id -o tsv}
wait_max=${TOKENPIVOT_DEPLOY_WAIT_SECONDS:-600}
cd "$(dirname "$0")/../.."

go run ./tools/package -o dist/tokenpivot.zip

log=$(mktemp)
trap 'rm -f "$log"' EXIT
waited=0
until az functionapp deploy --subscription "$sub" --resource-group "$rg" --name "$app" \
	--src-path dist/tokenpivot.zip --type zip 2>"$log"; do
	if ! grep -Eqi '403|forbidden|AuthorizationPermissionMismatch|AuthorizationFailure' "$log"; then
		cat "$log" >&2
		echo "$app: package deployment failed (not a permission error, not retried)" >&2
		exit 1
	fi
	if [ "$waited" -ge "$wait_max" ]; then
		cat "$log" >&2
		echo "$app: package deployment still refused (403) after ${waited}s. The app's identity needs Storage Blob Data Owner on the storage account that holds the app-package container: check with" >&2
		echo "  az role assignment list --subscription $sub --all --assignee <AZURE_FUNCTION_IDENTITY_CLIENT_ID> --output table" >&2
		echo "and rerun this script (TOKENPIVOT_DEPLOY_WAIT_SECONDS waits longer)." >&2
		exit 1
	fi
	echo "$app: deployment refused with 403, most likely the new role assignments are still propagating; retrying in 30 s (${waited}s of ${wait_max}s waited)" >&2
	sleep 30
	waited=$((waited + 30))
done

infra/scripts/eventgrid-key.sh "$rg" "$app" >/dev/null
echo "$app: package deployed, eventgrid_extension key present"
