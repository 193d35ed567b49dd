#!/bin/sh
# azd preprovision hook (azure.yaml): once the subscriptions exist
# (SUBSCRIBE_EVENTS=true), every provisioning needs the host's
# eventgrid_extension key (main.bicep fails without it rather than subscribe a
# webhook that rejects every event). Refresh it from the running app, so a
# rotated key is picked up.
set -eu
if [ "${SUBSCRIBE_EVENTS:-false}" != true ] || [ -z "${AZURE_FUNCTION_APP_NAME:-}" ]; then
	exit 0
fi
cd "$(dirname "$0")/../.."
key=$(infra/scripts/eventgrid-key.sh "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME")
azd env set TOKENPIVOT_EVENTGRID_KEY "$key"
