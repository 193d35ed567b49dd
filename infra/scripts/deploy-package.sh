#!/bin/sh
# Usage: infra/scripts/deploy-package.sh <resource-group> <function-app>
#
# Builds the Flex Consumption package (go run ./tools/package), deploys it with
# the Azure CLI, and waits until the Functions host has created its
# eventgrid_extension system key, which the Event Grid subscriptions (step 2)
# put in their webhook URL.
set -eu
if [ $# -ne 2 ]; then
	echo "usage: $0 <resource-group> <function-app>" >&2
	exit 2
fi
rg=$1
app=$2
cd "$(dirname "$0")/../.."

go run ./tools/package -o dist/tokenpivot.zip
az functionapp deploy --resource-group "$rg" --name "$app" --src-path dist/tokenpivot.zip --type zip

# Listing keys wakes the host; the key appears once the Event Grid extension
# has started with OnExportCreated.
tries=0
until key=$(az functionapp keys list --resource-group "$rg" --name "$app" \
	--query systemKeys.eventgrid_extension --output tsv 2>/dev/null) && [ -n "$key" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt 30 ]; then
		echo "$app: no eventgrid_extension system key after 5 minutes; check the host's logs in Application Insights" >&2
		exit 1
	fi
	sleep 10
done
echo "$app: package deployed, eventgrid_extension key present"
