variable "project_id" {
  description = "The Google Cloud project that hosts the platform."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region of Cloud Run, Cloud SQL, Artifact Registry and the tenant buckets."
  type        = string
  default     = "us-central1"
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region must look like us-central1."
  }
}

variable "platform_domain" {
  description = "Sites get <site>.<tenant>.<platform_domain> as their preview name."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.platform_domain))
    error_message = "platform_domain must be a DNS name such as sites.example.com."
  }
}

variable "control_plane_image" {
  description = "The platform image (runtime/platform/Dockerfile) for the control plane and billing job."
  type        = string
}

variable "chatbot_image" {
  description = "The platform image for the chatbot (usually the same as control_plane_image)."
  type        = string
}

variable "tenant_image" {
  description = "The tenant WordPress image built from runtime/wordpress."
  type        = string
}

variable "sql_tier" {
  description = "Machine tier of the shared Cloud SQL for MySQL instance (Enterprise edition)."
  type        = string
  default     = "db-custom-1-3840"
  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|f1-micro|g1-small|n1-(standard|highmem)-[0-9]+)$", var.sql_tier))
    error_message = "sql_tier must be an Enterprise-edition tier such as db-custom-1-3840 (db-perf-optimized-* tiers are Enterprise Plus)."
  }
}

variable "chat_sql_tier" {
  description = "Machine tier of the chatbot's Cloud SQL for PostgreSQL instance (Enterprise edition)."
  type        = string
  default     = "db-f1-micro"
  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|f1-micro|g1-small)$", var.chat_sql_tier))
    error_message = "chat_sql_tier must be an Enterprise-edition tier such as db-f1-micro or db-custom-1-3840."
  }
}

variable "cell" {
  description = "This deployment's cell id (one project with its own Cloud SQL instance): recorded on every tenant and site."
  type        = string
  default     = "cell-1"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.cell))
    error_message = "cell must be a short lowercase id such as cell-1."
  }
}

variable "billing_export_table" {
  description = "The Cloud Billing export table (project.dataset.gcp_billing_export_v1_...), filled by Cloud Billing once the export is turned on."
  type        = string
  default     = ""
}

variable "cron_interval_minutes" {
  description = "How often each site's due WP-Cron events run (minutes; divides 60)."
  type        = number
  default     = 5
  validation {
    condition     = var.cron_interval_minutes >= 1 && var.cron_interval_minutes <= 60 && 60 % var.cron_interval_minutes == 0
    error_message = "cron_interval_minutes must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)."
  }
}

variable "cron_concurrency" {
  description = "How many sites' cron runs the job makes at a time."
  type        = number
  default     = 8
  validation {
    condition     = var.cron_concurrency >= 1 && var.cron_concurrency <= 64
    error_message = "cron_concurrency must be between 1 and 64."
  }
}

variable "billing_schedule" {
  description = "Cron schedule (UTC) of the billing aggregation job."
  type        = string
  default     = "30 4 * * *"
}

variable "backups_schedule" {
  description = "Cron schedule (UTC) of the backups job (hourly: each site's own policy picks its time)."
  type        = string
  default     = "7 * * * *"
}

variable "gemini_model" {
  description = "The Gemini model of the agent."
  type        = string
  default     = "gemini-2.5-flash"
}

variable "dns_provider" {
  description = "Where site names are published: cloudflare or clouddns."
  type        = string
  default     = "clouddns"
  validation {
    condition     = contains(["cloudflare", "clouddns"], var.dns_provider)
    error_message = "dns_provider must be cloudflare or clouddns."
  }
}

variable "cloudflare_zone_id" {
  description = "The Cloudflare zone of platform_domain (dns_provider = cloudflare)."
  type        = string
  default     = ""
  validation {
    condition     = var.cloudflare_zone_id == "" || can(regex("^[0-9a-f]{32}$", var.cloudflare_zone_id))
    error_message = "cloudflare_zone_id must be the zone's 32-character hex id."
  }
}

variable "cloudflare_api_token" {
  description = "A Cloudflare API token with DNS edit on that zone (dns_provider = cloudflare); stored in Secret Manager."
  type        = string
  default     = ""
  sensitive   = true
}

variable "labels" {
  description = "Extra labels for every resource."
  type        = map(string)
  default     = {}
}
