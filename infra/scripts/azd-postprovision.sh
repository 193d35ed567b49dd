#!/bin/sh
# azd postprovision hook (azure.yaml): deploy the code, then run the second
# provisioning step that subscribes the export containers to Event Grid, with
# the host's eventgrid_extension key passed in (TOKENPIVOT_EVENTGRID_KEY, read
# by main.bicepparam as eventGridExtensionKey).
set -eu
# The nested `azd provision` below runs this hook again: nothing left to do.
if [ "${TOKENPIVOT_NESTED_PROVISION:-}" = 1 ]; then
	exit 0
fi
cd "$(dirname "$0")/../.."
infra/scripts/deploy-package.sh "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME"
if [ "${SUBSCRIBE_EVENTS:-false}" != true ]; then
	key=$(infra/scripts/eventgrid-key.sh "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME")
	# Kept in the azd environment (.azure/<env>/.env, local and not committed)
	# so that later `azd provision` runs keep the subscriptions; the
	# preprovision hook refreshes it.
	azd env set TOKENPIVOT_EVENTGRID_KEY "$key"
	azd env set SUBSCRIBE_EVENTS true
	TOKENPIVOT_NESTED_PROVISION=1 azd provision --no-prompt
fi
