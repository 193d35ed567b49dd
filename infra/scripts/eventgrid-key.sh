#!/bin/sh
# Usage: infra/scripts/eventgrid-key.sh <resource-group> <function-app>
#
# Prints the host's eventgrid_extension system key, waiting (up to 5 minutes)
# for the host to create it: it exists once the code is deployed and the host
# has started the Event Grid extension with OnExportCreated. Step 2 of the
# deployment passes it in (Bicep: TOKENPIVOT_EVENTGRID_KEY with
# main.bicepparam, i.e. the eventGridExtensionKey parameter). The key goes to
# stdout only; messages go to stderr.
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
# Listing keys wakes the host.
tries=0
until key=$(az functionapp keys list --subscription "$sub" --resource-group "$rg" --name "$app" \
	--query systemKeys.eventgrid_extension --output tsv 2>/dev/null) && [ -n "$key" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt 30 ]; then
		echo "$app: no eventgrid_extension system key after 5 minutes: is the package deployed (infra/scripts/deploy-package.sh)? Check the host's logs in Application Insights (traces, exceptions)" >&2
		exit 1
	fi
	sleep 10
done
printf '%s\n' "$key"
