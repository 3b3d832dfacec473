output "chatbot_url" {
  description = "Open this: the dashboard, sign-in and the chat widget (/widget.js)."
  value       = google_cloud_run_v2_service.chatbot.uri
}

output "control_plane_url" {
  description = "The private control-plane API (invokable by the chatbot's service account only)."
  value       = google_cloud_run_v2_service.control_plane.uri
}

output "sql_connection_name" {
  description = "The shared Cloud SQL instance (AIPRESS_CLOUDSQL_INSTANCE)."
  value       = google_sql_database_instance.shared.connection_name
}

output "artifact_registry" {
  description = "Where to push the control-plane, chatbot and tenant images."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "billing_dataset" {
  description = "Point the Cloud Billing detailed export at this dataset."
  value       = google_bigquery_dataset.billing_export.dataset_id
}

output "service_accounts" {
  description = "The platform's identities."
  value = {
    control_plane = google_service_account.control_plane.email
    chatbot       = google_service_account.chatbot.email
    billing_job   = google_service_account.billing_job.email
    cron_job      = google_service_account.cron_job.email
  }
}

output "dns_name_servers" {
  description = "dns_provider = clouddns: delegate platform_domain to these name servers (NS records at its parent)."
  value       = var.dns_provider == "clouddns" ? google_dns_managed_zone.sites[0].name_servers : []
}
