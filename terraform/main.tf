locals {
  labels = merge(var.labels, { app = "aipress", "aipress-tenant-id" = "platform" })
  apis = [
    "run.googleapis.com", "sqladmin.googleapis.com", "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com", "cloudscheduler.googleapis.com", "bigquery.googleapis.com",
    "iam.googleapis.com", "logging.googleapis.com", "monitoring.googleapis.com",
    "aiplatform.googleapis.com", "identitytoolkit.googleapis.com", "dns.googleapis.com",
    "storage.googleapis.com", "compute.googleapis.com", "apikeys.googleapis.com",
    "servicenetworking.googleapis.com",
  ]
  # MySQL users of the platform's IAM identities: Cloud SQL for MySQL names an IAM service
  # account's database user by its e-mail up to the @ (users.insert takes the full e-mail).
  sql_users = {
    control_plane = split("@", google_service_account.control_plane.email)[0]
    billing_job   = split("@", google_service_account.billing_job.email)[0]
    cron_job      = split("@", google_service_account.cron_job.email)[0]
    backups_job   = split("@", google_service_account.backups_job.email)[0]
  }
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}

# --- Service accounts: one per workload, each with only what it needs -----------------------

resource "google_service_account" "control_plane" {
  account_id   = "aipress-control-plane"
  display_name = "AIPress control plane (provisions tenant resources)"
}

resource "google_service_account" "chatbot" {
  account_id   = "aipress-chatbot"
  display_name = "AIPress chatbot (Gemini, calls the control plane)"
}

resource "google_service_account" "billing_job" {
  account_id   = "aipress-billing"
  display_name = "AIPress billing aggregation job"
}

resource "google_service_account" "scheduler" {
  account_id   = "aipress-scheduler"
  display_name = "AIPress Cloud Scheduler (starts the billing, cron and backups jobs)"
}

resource "google_service_account" "backups_job" {
  account_id   = "aipress-backups"
  display_name = "AIPress backups job (scheduled backups of every site, then retention)"
}

resource "google_service_account" "cron_job" {
  account_id   = "aipress-cron"
  display_name = "AIPress cron job (runs each site's due WP-Cron events)"
}

# The control plane creates each tenant's Cloud Run services, buckets, secrets and service
# accounts, and grants each tenant's runtime account access to exactly its own resources.
resource "google_project_iam_member" "control_plane" {
  for_each = toset([
    "roles/run.admin", "roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/secretmanager.admin",
    "roles/storage.admin", "roles/iam.serviceAccountAdmin", "roles/iam.serviceAccountUser",
    "roles/logging.viewer", "roles/monitoring.viewer", "roles/dns.admin",
    "roles/compute.networkViewer", # deploys sites with Direct VPC egress into the sites' subnet
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.control_plane.email}"
}

resource "google_project_iam_member" "chatbot" {
  for_each = toset(["roles/aiplatform.user", "roles/cloudsql.client", "roles/logging.logWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.chatbot.email}"
}

# The chatbot signs Firebase custom tokens for MCP callers (chatbot/oauth/control_plane.py):
# firebase-admin on Cloud Run signs them through IAM signBlob as its own account, which needs
# token creation on that one account, itself, and on no other.
resource "google_service_account_iam_member" "chatbot_signs_as_itself" {
  service_account_id = google_service_account.chatbot.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.chatbot.email}"
}

resource "google_project_iam_member" "billing_job" {
  for_each = toset(["roles/bigquery.jobUser", "roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.billing_job.email}"
}

# The cron job reads the sites from the control-plane database and calls their public URLs.
resource "google_project_iam_member" "cron_job" {
  for_each = toset(["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.cron_job.email}"
}

# The backups job reads the sites and writes Backup rows in the control-plane database (its
# own IAM database user), dumps tenant databases as the instance's admin user (cloudsql.client
# also holds instances.get: the disk size a restore is checked against), and copies uploads:
# it reads every site's bucket and writes only the backups bucket.
resource "google_project_iam_member" "backups_job" {
  for_each = toset(["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter", "roles/storage.objectViewer"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.backups_job.email}"
}

resource "google_storage_bucket_iam_member" "backups_job_writes_backups" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.backups_job.email}"
}

resource "google_bigquery_dataset_iam_member" "billing_job_reads_export" {
  dataset_id = google_bigquery_dataset.billing_export.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.billing_job.email}"
}

# --- Shared Cloud SQL instance (tenant databases are created in SQL by the control plane) ---

resource "google_sql_database_instance" "shared" {
  name                = "aipress-shared"
  database_version    = "MYSQL_8_0"
  region              = var.region
  deletion_protection = true
  settings {
    edition           = "ENTERPRISE" # explicit: the API's default differs by version
    tier              = var.sql_tier
    availability_type = "ZONAL"
    disk_autoresize   = true
    user_labels       = local.labels
    backup_configuration {
      enabled            = true
      binary_log_enabled = true
    }
    # Public IP for the platform's own identities (the connector, IAM login); a private IP
    # in the sites' network for tenant sites (password login, no IAM role of theirs).
    ip_configuration {
      ipv4_enabled    = true
      private_network = google_compute_network.sites.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }
    database_flags {
      name  = "cloudsql_iam_authentication"
      value = "on"
    }
  }
  depends_on = [google_project_service.apis, google_service_networking_connection.sites]
}

resource "google_sql_database" "control_plane" {
  name     = "aipress"
  instance = google_sql_database_instance.shared.name
}

# IAM database authentication: no password exists for these users. For MySQL the Admin API
# takes the full e-mail (the .gserviceaccount.com-less form is PostgreSQL's). A new IAM
# database user holds no privilege: the control plane grants them at start (as the admin).
resource "google_sql_user" "iam" {
  for_each = {
    control_plane = google_service_account.control_plane.email
    billing_job   = google_service_account.billing_job.email
    cron_job      = google_service_account.cron_job.email
    backups_job   = google_service_account.backups_job.email
  }
  name     = each.value
  instance = google_sql_database_instance.shared.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# The built-in admin user: makes tenant databases and users, and grants the IAM users
# theirs. Only the control plane can read its password.
resource "random_password" "sql_admin" {
  length  = 32
  special = false
}

resource "google_sql_user" "admin" {
  name     = "aipress-admin"
  instance = google_sql_database_instance.shared.name
  password = random_password.sql_admin.result
}

resource "google_secret_manager_secret" "sql_admin_password" {
  secret_id = "aipress-sql-admin-password"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "sql_admin_password" {
  secret      = google_secret_manager_secret.sql_admin_password.id
  secret_data = random_password.sql_admin.result
}

# --- The chatbot's conversations (LangGraph checkpoints need PostgreSQL) ---------------------

resource "google_sql_database_instance" "chat" {
  name                = "aipress-chat"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = true
  settings {
    # PostgreSQL 16 defaults to ENTERPRISE_PLUS, which has no shared-core tier.
    edition     = "ENTERPRISE"
    tier        = var.chat_sql_tier
    user_labels = local.labels
    backup_configuration {
      enabled = true
    }
    # Public IP for the platform's own identities (the connector, IAM login); a private IP
    # in the sites' network for tenant sites (password login, no IAM role of theirs).
    ip_configuration {
      ipv4_enabled    = true
      private_network = google_compute_network.sites.id
      ssl_mode        = "ENCRYPTED_ONLY"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "chat" {
  name     = "chat"
  instance = google_sql_database_instance.chat.name
}

resource "random_password" "chat" {
  length  = 32
  special = false
}

resource "google_sql_user" "chatbot" {
  name     = "chatbot"
  instance = google_sql_database_instance.chat.name
  password = random_password.chat.result
}

resource "google_secret_manager_secret" "chat_database_url" {
  secret_id = "aipress-chat-database-url"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "chat_database_url" {
  secret      = google_secret_manager_secret.chat_database_url.id
  secret_data = "postgresql://chatbot:${random_password.chat.result}@/chat?host=/cloudsql/${google_sql_database_instance.chat.connection_name}"
}

resource "google_secret_manager_secret_iam_member" "chatbot_reads_database_url" {
  secret_id = google_secret_manager_secret.chat_database_url.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.chatbot.email}"
}

# --- Backups (database dumps and uploads, each object under its tenant's own CSEK) ---------
# No lifecycle rule: what is kept is the control plane's retention (7 daily, 4 weekly, 3
# monthly scheduled backups; pre-* backups 30 days; deleted sites' after
# AIPRESS_DELETED_SITE_RETENTION_DAYS; manual ones until their owner deletes them), which an
# age rule cannot tell apart (a backup's objects carry no kind).

resource "google_storage_bucket" "backups" {
  name                        = "${var.project_id}-aipress-backups"
  location                    = upper(var.region)
  uniform_bucket_level_access = true
  labels                      = local.labels
}

# The platform catalogue: plugin, theme and core zips under catalogue/<kind>/<slug>/<version>.zip.
# Written by the control plane alone (this binding; its project-wide storage.admin also covers
# it); read by the tenants' packages jobs, each tenant's account granted objectViewer on this
# bucket's own policy by the control plane (accounts are made per tenant, after terraform).
# Never public, never writable by a tenant.
resource "google_storage_bucket" "catalogue" {
  name                        = "${var.project_id}-aipress-catalogue"
  location                    = upper(var.region)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels
}

resource "google_storage_bucket_iam_member" "control_plane_writes_catalogue" {
  bucket = google_storage_bucket.catalogue.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.control_plane.email}"
}

# --- Images, platform secrets ---------------------------------------------------------------

resource "google_artifact_registry_repository" "images" {
  repository_id = "aipress"
  location      = var.region
  format        = "DOCKER"
  labels        = local.labels
  depends_on    = [google_project_service.apis]
}

resource "google_secret_manager_secret" "encryption_keys" {
  secret_id = "aipress-encryption-keys"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

# The first key of the keyring (kid:base64url); rotate by adding a version by hand.
resource "random_id" "encryption_key" {
  byte_length = 32
}

resource "google_secret_manager_secret_version" "encryption_keys" {
  secret      = google_secret_manager_secret.encryption_keys.id
  secret_data = "k1:${random_id.encryption_key.b64_url}"
}

resource "google_secret_manager_secret" "cloudflare_token" {
  secret_id = "aipress-cloudflare-token"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "cloudflare_token" {
  count       = var.dns_provider == "cloudflare" ? 1 : 0
  secret      = google_secret_manager_secret.cloudflare_token.id
  secret_data = var.cloudflare_api_token
  lifecycle {
    precondition {
      condition     = var.cloudflare_api_token != "" && var.cloudflare_zone_id != ""
      error_message = "dns_provider = cloudflare needs cloudflare_api_token and cloudflare_zone_id."
    }
  }
}

resource "google_secret_manager_secret_iam_member" "control_plane_keys" {
  for_each = {
    keys       = google_secret_manager_secret.encryption_keys.id
    cloudflare = google_secret_manager_secret.cloudflare_token.id
    sql_admin  = google_secret_manager_secret.sql_admin_password.id
  }
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.control_plane.email}"
}

# --- Site names: a Cloud DNS zone for the platform domain (dns_provider = clouddns) -------

resource "google_dns_managed_zone" "sites" {
  count       = var.dns_provider == "clouddns" ? 1 : 0
  name        = "aipress-sites"
  dns_name    = "${var.platform_domain}."
  description = "Preview names and customers' CNAMEs of AIPress sites (delegate it: see the name_servers output)."
  labels      = local.labels
  depends_on  = [google_project_service.apis]
}

# --- The browser's Firebase (Identity Platform) key: not a secret, limited to sign-in APIs --

resource "google_apikeys_key" "browser" {
  name         = "aipress-browser"
  display_name = "AIPress dashboard sign-in"
  restrictions {
    api_targets {
      service = "identitytoolkit.googleapis.com"
    }
    api_targets {
      service = "securetoken.googleapis.com"
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "billing_job_keys" {
  secret_id = google_secret_manager_secret.encryption_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.billing_job.email}"
}

resource "google_secret_manager_secret_iam_member" "backups_job_keys" {
  for_each = {
    keys      = google_secret_manager_secret.encryption_keys.id
    sql_admin = google_secret_manager_secret.sql_admin_password.id
  }
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.backups_job.email}"
}

resource "google_secret_manager_secret_iam_member" "cron_job_keys" {
  secret_id = google_secret_manager_secret.encryption_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.cron_job.email}"
}

# --- Cloud Run: the control plane (private) and the chatbot (public) ------------------------

locals {
  control_plane_env = merge({
    AIPRESS_PROVIDER            = "gcp"
    AIPRESS_WORKLOAD            = "control_plane"
    AIPRESS_CELL                = var.cell
    AIPRESS_GCP_PROJECT         = var.project_id
    AIPRESS_GCP_LOCATION        = var.region
    AIPRESS_FIREBASE_PROJECT_ID = var.project_id
    AIPRESS_CLOUDSQL_INSTANCE   = google_sql_database_instance.shared.connection_name
    AIPRESS_CLOUDSQL_USER       = local.sql_users.control_plane
    AIPRESS_CLOUDSQL_JOB_USERS  = jsonencode([local.sql_users.billing_job, local.sql_users.cron_job, local.sql_users.backups_job])
    AIPRESS_CLOUDSQL_PRIVATE_IP = google_sql_database_instance.shared.private_ip_address
    AIPRESS_SITES_SUBNETWORK    = google_compute_subnetwork.sites.id
    AIPRESS_SITES_NETWORK_TAG   = local.sites_tag
    AIPRESS_PLATFORM_DOMAIN     = var.platform_domain
    AIPRESS_TENANT_IMAGE        = var.tenant_image
    AIPRESS_DNS_PROVIDER        = var.dns_provider
    AIPRESS_BACKUPS_BUCKET      = google_storage_bucket.backups.name
    AIPRESS_CATALOGUE_BUCKET    = google_storage_bucket.catalogue.name
    AIPRESS_FRONT_DOOR_IPV4     = google_compute_global_address.sites_ipv4.address
    AIPRESS_FRONT_DOOR_IPV6     = google_compute_global_address.sites_ipv6.address
    }, var.dns_provider == "clouddns" ? {
    AIPRESS_CLOUDDNS_ZONE = google_dns_managed_zone.sites[0].name
    } : {
    AIPRESS_CLOUDFLARE_ZONE_ID = var.cloudflare_zone_id
  })
  # Env read from Secret Manager (the latest version): lists, so the env keeps its order.
  encryption_keys_env = { env = "AIPRESS_ENCRYPTION_KEYS", secret = google_secret_manager_secret.encryption_keys.secret_id }
  sql_admin_env       = { env = "AIPRESS_CLOUDSQL_ADMIN_PASSWORD", secret = google_secret_manager_secret.sql_admin_password.secret_id }
  control_plane_secret_env = concat(
    [local.encryption_keys_env, local.sql_admin_env],
    var.dns_provider == "cloudflare" ? [{ env = "AIPRESS_CLOUDFLARE_API_TOKEN", secret = google_secret_manager_secret.cloudflare_token.secret_id }] : [],
  )
  # A job connects as its own IAM database user (never as the control plane's).
  job_env = {
    billing = { AIPRESS_WORKLOAD = "job", AIPRESS_CLOUDSQL_USER = local.sql_users.billing_job }
    cron    = { AIPRESS_WORKLOAD = "job", AIPRESS_CLOUDSQL_USER = local.sql_users.cron_job }
    backups = { AIPRESS_WORKLOAD = "job", AIPRESS_CLOUDSQL_USER = local.sql_users.backups_job }
  }
}

# --- The platform network: the only route to the control plane ------------------------------
# The control plane takes internal traffic only; the chatbot reaches it through this VPC
# (Direct VPC egress, all traffic), with Private Google Access for Google's APIs. Tenant
# services are never on this network (theirs is `sites`, below): from a tenant's site the
# control plane has no route at all, and IAM (only the chatbot may invoke it) would refuse
# it even if it had one.
resource "google_compute_network" "platform" {
  name                    = "aipress-platform"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "platform" {
  name                     = "aipress-platform-${var.region}"
  region                   = var.region
  network                  = google_compute_network.platform.id
  ip_cidr_range            = "10.8.0.0/24"
  private_ip_google_access = true
}

# The chatbot's other egress (the Cloud SQL public endpoint, anything not behind Private
# Google Access) leaves the VPC through Cloud NAT.
resource "google_compute_router" "platform" {
  name    = "aipress-platform"
  region  = var.region
  network = google_compute_network.platform.id
}

resource "google_compute_router_nat" "platform" {
  name                               = "aipress-platform"
  router                             = google_compute_router.platform.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
}

# --- The sites' network: tenant sites to Cloud SQL's private IP, and nowhere else private --
# Its own VPC, never peered with the platform's: from a site the control plane has no route.
# Sites use Direct VPC egress for private ranges only (the internet is reached directly);
# the firewall lets their tag reach port 3306 of Cloud SQL's peered range and denies every
# other private destination. Cloud Run takes IPs in blocks of 16 per revision as it scales:
# a /16 holds 4,096 such blocks (see the README's cell design).
locals {
  sites_tag = "aipress-site"
}

resource "google_compute_network" "sites" {
  name                    = "aipress-sites"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.apis]
}

resource "google_compute_subnetwork" "sites" {
  name          = "aipress-sites-${var.region}"
  region        = var.region
  network       = google_compute_network.sites.id
  ip_cidr_range = "10.64.0.0/16"
}

# Private services access: Cloud SQL's private IP comes from this range, over VPC peering.
resource "google_compute_global_address" "sites_sql" {
  name          = "aipress-sites-sql"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.sites.id
  labels        = local.labels
}

resource "google_service_networking_connection" "sites" {
  network                 = google_compute_network.sites.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sites_sql.name]
}

resource "google_compute_firewall" "sites_to_sql" {
  name               = "aipress-sites-to-sql"
  network            = google_compute_network.sites.id
  direction          = "EGRESS"
  priority           = 900
  target_tags        = [local.sites_tag]
  destination_ranges = ["${google_compute_global_address.sites_sql.address}/${google_compute_global_address.sites_sql.prefix_length}"]
  allow {
    protocol = "tcp"
    ports    = ["3306"]
  }
}

resource "google_compute_firewall" "sites_deny_private" {
  name               = "aipress-sites-deny-private"
  network            = google_compute_network.sites.id
  direction          = "EGRESS"
  priority           = 1000
  target_tags        = [local.sites_tag]
  destination_ranges = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]
  deny {
    protocol = "all"
  }
}

resource "google_cloud_run_v2_service" "control_plane" {
  name                = "aipress-control-plane"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false
  labels              = local.labels
  template {
    service_account = google_service_account.control_plane.email
    labels          = local.labels
    scaling {
      min_instance_count = 1 # the provisioning engine runs in the process
      max_instance_count = 3
    }
    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.shared.connection_name]
      }
    }
    containers {
      image = var.control_plane_image
      resources {
        limits   = { cpu = "1", memory = "1Gi" }
        cpu_idle = false
      }
      dynamic "env" {
        for_each = local.control_plane_env
        content {
          name  = env.key
          value = env.value
        }
      }
      dynamic "env" {
        for_each = local.control_plane_secret_env
        content {
          name = env.value.env
          value_source {
            secret_key_ref {
              secret  = env.value.secret
              version = "latest"
            }
          }
        }
      }
      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }
    }
  }
  # Cloud Run checks at deploy that each secret it reads has a version the service account
  # may access: the versions and the accessor bindings come first.
  depends_on = [
    google_project_service.apis, google_secret_manager_secret_version.encryption_keys,
    google_secret_manager_secret_iam_member.control_plane_keys,
    google_secret_manager_secret_version.sql_admin_password,
    google_secret_manager_secret_version.cloudflare_token, google_sql_user.iam, google_sql_user.admin,
  ]
}

# Only the chatbot's service account may invoke the control plane: no allUsers binding.
resource "google_cloud_run_v2_service_iam_member" "chatbot_invokes_control_plane" {
  name     = google_cloud_run_v2_service.control_plane.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.chatbot.email}"
}

data "google_project" "platform" {
  project_id = var.project_id
}

resource "google_cloud_run_v2_service" "chatbot" {
  name                = "aipress-chatbot"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = false
  # Public without an allUsers binding, which Domain Restricted Sharing (on by default in
  # new organisations) refuses; callers are still checked by their Firebase ID token.
  invoker_iam_disabled = true
  labels               = local.labels
  template {
    service_account = google_service_account.chatbot.email
    labels          = local.labels
    vpc_access {
      network_interfaces {
        network    = google_compute_network.platform.id
        subnetwork = google_compute_subnetwork.platform.id
      }
      egress = "ALL_TRAFFIC" # internal-ingress services are reached only through the VPC
    }
    scaling {
      min_instance_count = 0
      max_instance_count = 10
    }
    volumes {
      name = "cloudsql"
      cloud_sql_instance {
        instances = [google_sql_database_instance.chat.connection_name]
      }
    }
    containers {
      image   = var.chatbot_image
      command = ["sh", "-c", "exec uvicorn chatbot.service:create_app --factory --host 0.0.0.0 --port $PORT"]
      volume_mounts {
        name       = "cloudsql"
        mount_path = "/cloudsql"
      }
      env {
        name = "AIPRESS_CHAT_DATABASE_URL"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.chat_database_url.secret_id
            version = "latest"
          }
        }
      }
      resources {
        limits = { cpu = "1", memory = "1Gi" }
      }
      env {
        name  = "AIPRESS_PROVIDER"
        value = "gcp"
      }
      env {
        name  = "AIPRESS_WORKLOAD"
        value = "chatbot"
      }
      env {
        name  = "AIPRESS_FIREBASE_WEB_API_KEY"
        value = google_apikeys_key.browser.key_string
      }
      env {
        name  = "AIPRESS_FIREBASE_AUTH_DOMAIN"
        value = "${var.project_id}.firebaseapp.com"
      }
      env {
        name  = "AIPRESS_CHAT_CONTROL_PLANE_URL"
        value = google_cloud_run_v2_service.control_plane.uri
      }
      env {
        name  = "AIPRESS_GCP_PROJECT"
        value = var.project_id
      }
      env {
        name  = "AIPRESS_GCP_LOCATION"
        value = var.region
      }
      env {
        name  = "AIPRESS_GEMINI_MODEL"
        value = var.gemini_model
      }
      env {
        # The OAuth issuer and the MCP resource URL: the service's deterministic run.app URL
        # (its own `uri` attribute would be a cycle).
        name  = "AIPRESS_CHAT_PUBLIC_URL"
        value = "https://aipress-chatbot-${data.google_project.platform.number}.${var.region}.run.app"
      }
      env {
        name  = "AIPRESS_FIREBASE_PROJECT_ID"
        value = var.project_id
      }
      env {
        # Every instance signs and verifies MCP access tokens with this one key.
        name = "AIPRESS_MCP_SIGNING_KEY"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.mcp_signing_key.secret_id
            version = "latest"
          }
        }
      }
    }
  }
  depends_on = [
    google_project_service.apis, google_secret_manager_secret_version.chat_database_url,
    google_secret_manager_secret_iam_member.chatbot_reads_database_url,
    google_secret_manager_secret_iam_member.chatbot_reads_mcp_signing_key,
    google_secret_manager_secret_version.mcp_signing_key,
  ]
}

# The chat service's MCP token key (an Ed25519 private key as the base64 of its 32 raw
# bytes); only the chatbot may read it. The chatbot holds no encryption key of the platform.
resource "google_secret_manager_secret" "mcp_signing_key" {
  secret_id = "aipress-mcp-signing-key"
  labels    = local.labels
  replication {
    auto {}
  }
  depends_on = [google_project_service.apis]
}

resource "random_id" "mcp_signing_key" {
  byte_length = 32
}

resource "google_secret_manager_secret_version" "mcp_signing_key" {
  secret      = google_secret_manager_secret.mcp_signing_key.id
  secret_data = random_id.mcp_signing_key.b64_std
}

resource "google_secret_manager_secret_iam_member" "chatbot_reads_mcp_signing_key" {
  secret_id = google_secret_manager_secret.mcp_signing_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.chatbot.email}"
}

# --- Billing: the export's dataset (the aggregation job is a scheduled job, below) ----------

resource "google_bigquery_dataset" "billing_export" {
  dataset_id  = "billing_export"
  location    = "US"
  description = "Cloud Billing detailed export (turn the export on in the billing console)."
  labels      = local.labels
  depends_on  = [google_project_service.apis]
}

# --- Scheduled jobs: billing, cron and backups --------------------------------------------
# Each is a Cloud Run job of the platform image (python -m <module>), running as its own
# service account and connecting to Cloud SQL as that account's IAM database user; Cloud
# Scheduler starts it as the scheduler account, which may run these jobs and nothing else.

locals {
  scheduled_jobs = {
    # Aggregates the Cloud Billing export into tenant costs, once a day.
    billing = {
      job_name        = "aipress-billing"
      scheduler_name  = "aipress-billing-daily"
      schedule        = var.billing_schedule
      module          = "controlplane.billing"
      service_account = google_service_account.billing_job.email
      max_retries     = 2
      timeout         = null # Cloud Run's default
      limits          = null # Cloud Run's default
      env = merge(local.control_plane_env, local.job_env.billing, {
        AIPRESS_BILLING_EXPORT_TABLE     = var.billing_export_table
        AIPRESS_BILLING_BIGQUERY_PROJECT = var.project_id
      })
      secret_env = [local.encryption_keys_env]
    }
    # WordPress's own WP-Cron is off on every site; this job runs each ready site's due
    # events once per interval (each site at a stable offset in it), a few sites at a time.
    cron = {
      job_name        = "aipress-cron"
      scheduler_name  = "aipress-cron"
      schedule        = "*/${var.cron_interval_minutes} * * * *"
      module          = "controlplane.cron"
      service_account = google_service_account.cron_job.email
      max_retries     = 0 # the next interval's run comes anyway
      timeout         = "${var.cron_interval_minutes * 60 + 300}s"
      limits          = null
      env = merge(local.control_plane_env, local.job_env.cron, {
        AIPRESS_CRON_INTERVAL_SECONDS = tostring(var.cron_interval_minutes * 60)
        AIPRESS_CRON_CONCURRENCY      = tostring(var.cron_concurrency)
      })
      secret_env = [local.encryption_keys_env]
    }
    # Every hour: backs up the sites whose policy makes one due, then applies retention.
    # Each site's dump streams through the job.
    backups = {
      job_name        = "aipress-backups"
      scheduler_name  = "aipress-backups-hourly"
      schedule        = var.backups_schedule
      module          = "controlplane.backups"
      service_account = google_service_account.backups_job.email
      max_retries     = 1 # a backup is idempotent by its id: a retry finishes it
      timeout         = "3300s"
      limits          = { cpu = "1", memory = "1Gi" }
      env             = merge(local.control_plane_env, local.job_env.backups)
      secret_env      = [local.encryption_keys_env, local.sql_admin_env]
    }
  }
}

resource "google_cloud_run_v2_job" "scheduled" {
  for_each            = local.scheduled_jobs
  name                = each.value.job_name
  location            = var.region
  deletion_protection = false
  labels              = local.labels
  template {
    labels = local.labels
    template {
      service_account = each.value.service_account
      max_retries     = each.value.max_retries
      timeout         = each.value.timeout
      volumes {
        name = "cloudsql"
        cloud_sql_instance {
          instances = [google_sql_database_instance.shared.connection_name]
        }
      }
      containers {
        image   = var.control_plane_image
        command = ["python", "-m", each.value.module]
        dynamic "resources" {
          for_each = each.value.limits == null ? [] : [each.value.limits]
          content {
            limits = resources.value
          }
        }
        dynamic "env" {
          for_each = each.value.env
          content {
            name  = env.key
            value = env.value
          }
        }
        dynamic "env" {
          for_each = each.value.secret_env
          content {
            name = env.value.env
            value_source {
              secret_key_ref {
                secret  = env.value.secret
                version = "latest"
              }
            }
          }
        }
        volume_mounts {
          name       = "cloudsql"
          mount_path = "/cloudsql"
        }
      }
    }
  }
  # Cloud Run checks at deploy that each secret a job reads has a version its service
  # account may access: the versions and the accessor bindings come first.
  depends_on = [
    google_project_service.apis, google_secret_manager_secret_version.encryption_keys,
    google_secret_manager_secret_version.sql_admin_password,
    google_secret_manager_secret_iam_member.billing_job_keys,
    google_secret_manager_secret_iam_member.cron_job_keys,
    google_secret_manager_secret_iam_member.backups_job_keys, google_sql_user.iam,
  ]
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs" {
  for_each = google_cloud_run_v2_job.scheduled
  name     = each.value.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_cloud_scheduler_job" "scheduled" {
  for_each  = local.scheduled_jobs
  name      = each.value.scheduler_name
  region    = var.region
  schedule  = each.value.schedule
  time_zone = "Etc/UTC"
  http_target {
    http_method = "POST"
    uri         = "https://${var.region}-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/${var.project_id}/jobs/${google_cloud_run_v2_job.scheduled[each.key].name}:run"
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
  depends_on = [google_project_service.apis]
}

# The jobs, their invoker bindings and their schedules were one resource each until
# 2026-12: the state keeps them.
moved {
  from = google_cloud_run_v2_job.billing
  to   = google_cloud_run_v2_job.scheduled["billing"]
}

moved {
  from = google_cloud_run_v2_job.cron
  to   = google_cloud_run_v2_job.scheduled["cron"]
}

moved {
  from = google_cloud_run_v2_job.backups
  to   = google_cloud_run_v2_job.scheduled["backups"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_billing
  to   = google_cloud_run_v2_job_iam_member.scheduler_runs["billing"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_cron
  to   = google_cloud_run_v2_job_iam_member.scheduler_runs["cron"]
}

moved {
  from = google_cloud_run_v2_job_iam_member.scheduler_runs_backups
  to   = google_cloud_run_v2_job_iam_member.scheduler_runs["backups"]
}

moved {
  from = google_cloud_scheduler_job.billing
  to   = google_cloud_scheduler_job.scheduled["billing"]
}

moved {
  from = google_cloud_scheduler_job.cron
  to   = google_cloud_scheduler_job.scheduled["cron"]
}

moved {
  from = google_cloud_scheduler_job.backups
  to   = google_cloud_scheduler_job.scheduled["backups"]
}

# The front door's HTTPS and HTTP forwarding rules (frontdoor.tf) were two resources until
# 2026-12; every moved block of the module stands here.
moved {
  from = google_compute_global_forwarding_rule.sites_https["ipv4"]
  to   = google_compute_global_forwarding_rule.sites["https-ipv4"]
}

moved {
  from = google_compute_global_forwarding_rule.sites_https["ipv6"]
  to   = google_compute_global_forwarding_rule.sites["https-ipv6"]
}

moved {
  from = google_compute_global_forwarding_rule.sites_http["ipv4"]
  to   = google_compute_global_forwarding_rule.sites["http-ipv4"]
}

moved {
  from = google_compute_global_forwarding_rule.sites_http["ipv6"]
  to   = google_compute_global_forwarding_rule.sites["http-ipv6"]
}

# --- Firebase Auth (Identity Platform) ------------------------------------------------------

resource "google_identity_platform_config" "auth" {
  project = var.project_id
  sign_in {
    email {
      enabled           = true
      password_required = false # e-mail link sign-in
    }
  }
  authorized_domains = [trimprefix(google_cloud_run_v2_service.chatbot.uri, "https://")]
  depends_on         = [google_project_service.apis]
}
