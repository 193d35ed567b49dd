#!/bin/sh
# azd postprovision hook (azure.yaml): deploy the code, then run the second
# provisioning step that subscribes the export containers to Event Grid.
set -eu
# The nested `azd provision` below runs this hook again: nothing left to do.
if [ "${TOKENPIVOT_NESTED_PROVISION:-}" = 1 ]; then
	exit 0
fi
cd "$(dirname "$0")/../.."
infra/scripts/deploy-package.sh "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME"
if [ "${SUBSCRIBE_EVENTS:-false}" != true ]; then
	azd env set SUBSCRIBE_EVENTS true
	TOKENPIVOT_NESTED_PROVISION=1 azd provision --no-prompt
fi
