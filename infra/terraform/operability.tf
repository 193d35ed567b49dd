# Operability (Bicep: main.bicep's operability section). Three ways work can
# be lost without a word, each an Azure Monitor alert (notifying
# var.alert_action_group_id when set):
#   - Event Grid gave up on an event (30 attempts over 24 h) and wrote it to
#     the dead-letter container: that export blob was never processed;
#   - the Functions host moved a work item to the poison queue
#     (tokenpivot-work-poison) after its last dequeue;
#   - function executions failed.

locals {
  alert_action_groups = var.alert_action_group_id == "" ? [] : [var.alert_action_group_id]
  export_topic_id     = one(concat(azurerm_eventgrid_system_topic.export_topic[*].id, data.azurerm_eventgrid_system_topic.existing_export_topic[*].id))
}

resource "azurerm_monitor_metric_alert" "dead_letter_alert" {
  name                = "alert-tokenpivot-deadletter-${var.name_suffix}"
  resource_group_name = data.azurerm_resource_group.rg.name
  scopes              = [local.export_topic_id]
  description         = "Event Grid dead-lettered a BlobCreated event of the export containers into ${local.dead_letter_container_name}: that export blob was not processed. Requeue it (infra/README.md, Operability)."
  severity            = 1
  enabled             = true
  frequency           = "PT5M"
  window_size         = "PT1H"
  auto_mitigate       = true
  tags                = var.tags

  criteria {
    metric_namespace = "Microsoft.EventGrid/systemTopics"
    metric_name      = "DeadLetteredCount"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 0
  }

  dynamic "action" {
    for_each = local.alert_action_groups
    content {
      action_group_id = action.value
    }
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "poison_queue_alert" {
  name                    = "alert-tokenpivot-poison-${var.name_suffix}"
  resource_group_name     = data.azurerm_resource_group.rg.name
  location                = local.location
  display_name            = "tokenpivot: work item moved to the poison queue"
  description             = "The Functions host moved a ${local.work_queue_name} message to ${local.work_queue_name}-poison after its last attempt: that export blob was not processed. Requeue it (infra/README.md, Operability)."
  severity                = 1
  enabled                 = true
  scopes                  = [azurerm_application_insights.app_insights.id]
  evaluation_frequency    = "PT15M"
  window_duration         = "PT1H"
  auto_mitigation_enabled = false
  tags                    = var.tags

  criteria {
    query                   = "traces\n| where message has \"${local.work_queue_name}-poison\""
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0
    failing_periods {
      number_of_evaluation_periods             = 1
      minimum_failing_periods_to_trigger_alert = 1
    }
  }

  action {
    action_groups = local.alert_action_groups
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "function_failures_alert" {
  name                    = "alert-tokenpivot-failures-${var.name_suffix}"
  resource_group_name     = data.azurerm_resource_group.rg.name
  location                = local.location
  display_name            = "tokenpivot: function executions failed"
  description             = "Executions of the tokenpivot functions failed in the last hour (Application Insights requests with success false); the work queue retries them, the poison-queue alert says when it gives up."
  severity                = 2
  enabled                 = true
  scopes                  = [azurerm_application_insights.app_insights.id]
  evaluation_frequency    = "PT15M"
  window_duration         = "PT1H"
  auto_mitigation_enabled = false
  tags                    = var.tags

  criteria {
    query                   = "requests\n| where success == false"
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0
    failing_periods {
      number_of_evaluation_periods             = 1
      minimum_failing_periods_to_trigger_alert = 1
    }
  }

  action {
    action_groups = local.alert_action_groups
  }
}
