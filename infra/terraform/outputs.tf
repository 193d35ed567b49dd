output "function_app_name" {
  description = "Name of the function app (deploy the package to it)."
  value       = azapi_resource.function_app.name
}

output "function_app_default_hostname" {
  description = "The app's default hostname as Azure assigned it (Flex Consumption hostnames are unique, not <name>.azurewebsites.net)."
  value       = local.function_app_hostname
}

output "storage_account_name" {
  description = "The function's own storage account."
  value       = azurerm_storage_account.storage.name
}

output "deployment_container_url" {
  description = "Blob container the Flex plan runs the package from."
  value       = "${azurerm_storage_account.storage.primary_blob_endpoint}${azurerm_storage_container.deployment_container.name}"
}

output "function_identity_client_id" {
  description = "Client id of the function's user-assigned identity (AZURE_CLIENT_ID)."
  value       = azurerm_user_assigned_identity.function_identity.client_id
}

output "event_grid_system_topic_name" {
  description = "Event Grid system topic on the export account."
  value       = local.export_topic_name
}

output "state_retention_days" {
  description = "Days after which the lifecycle policy deletes state (allowed lateness rounded up, plus the margin)."
  value       = local.state_retention_days
}
