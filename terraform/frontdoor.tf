# --- The front door: one global external HTTPS load balancer for every site -----------------
# The control plane adds, per site, a serverless NEG, a backend service with Cloud CDN and a
# host rule in this URL map, and per name a Certificate Manager certificate and an entry in
# this certificate map (controlplane/providers/gcp/frontdoor.py). Terraform owns the shared
# parts and leaves the host rules to the control plane.

resource "google_project_service" "frontdoor_apis" {
  for_each           = toset(["compute.googleapis.com", "certificatemanager.googleapis.com"])
  service            = each.value
  disable_on_destroy = false
}

# The control plane manages the per-site load balancer resources and certificates.
resource "google_project_iam_member" "control_plane_frontdoor" {
  for_each = toset(["roles/compute.loadBalancerAdmin", "roles/certificatemanager.editor"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.control_plane.email}"
}

resource "google_compute_global_address" "sites_ipv4" {
  name       = "aipress-sites-ipv4"
  ip_version = "IPV4"
  labels     = local.labels
  depends_on = [google_project_service.frontdoor_apis]
}

resource "google_compute_global_address" "sites_ipv6" {
  name       = "aipress-sites-ipv6"
  ip_version = "IPV6"
  labels     = local.labels
  depends_on = [google_project_service.frontdoor_apis]
}

# A name no site serves goes to the platform's own address (no backend of its own).
resource "google_compute_url_map" "sites" {
  name = "aipress-sites"
  default_url_redirect {
    host_redirect          = var.platform_domain
    https_redirect         = true
    redirect_response_code = "FOUND"
    strip_query            = true
  }
  # Host rules and path matchers are the control plane's (one per site).
  lifecycle {
    ignore_changes = [host_rule, path_matcher]
  }
  depends_on = [google_project_service.frontdoor_apis]
}

# Where a stopped site's names point (AIPRESS_FRONT_DOOR_STOPPED_BACKEND): one shared Cloud
# Run service of the platform image that answers every request with the stopped page (503,
# no-store: a started site needs no invalidation). Public as sites are, by
# invoker_iam_disabled: no allUsers grant, so Domain Restricted Sharing needs no exception
# (a backend bucket would: the load balancer reads it as allUsers). Its ingress admits the
# load balancer only. The control plane routes a stopped site's host rule here and
# invalidates Cloud CDN's copies of its pages.
resource "google_service_account" "stopped_page" {
  account_id   = "aipress-stopped-page"
  display_name = "AIPress stopped page (holds no role, reads nothing)"
}

resource "google_cloud_run_v2_service" "stopped_page" {
  name                 = "aipress-stopped"
  location             = var.region
  ingress              = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  invoker_iam_disabled = true
  deletion_protection  = false
  labels               = local.labels
  template {
    service_account = google_service_account.stopped_page.email
    labels          = local.labels
    scaling {
      min_instance_count = 0
      max_instance_count = 2
    }
    containers {
      image   = var.control_plane_image
      command = ["python", "-m", "controlplane.stopped_page"]
      resources {
        limits = { cpu = "1", memory = "256Mi" }
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_compute_region_network_endpoint_group" "stopped_page" {
  name                  = "aipress-stopped"
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = google_cloud_run_v2_service.stopped_page.name
  }
  depends_on = [google_project_service.frontdoor_apis]
}

resource "google_compute_backend_service" "stopped" {
  name                  = "aipress-stopped"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  enable_cdn            = false
  backend {
    group = google_compute_region_network_endpoint_group.stopped_page.id
  }
}

# The platform's wildcard, proven by a DNS authorization (a CNAME in the platform's zone:
# output frontdoor_dns_authorization). Sites' names get their own certificates.
resource "google_certificate_manager_dns_authorization" "platform" {
  name       = "aipress-platform"
  domain     = var.platform_domain
  labels     = local.labels
  depends_on = [google_project_service.frontdoor_apis]
}

resource "google_certificate_manager_certificate" "platform_wildcard" {
  name   = "aipress-platform-wildcard"
  labels = local.labels
  managed {
    domains            = [var.platform_domain, "*.${var.platform_domain}"]
    dns_authorizations = [google_certificate_manager_dns_authorization.platform.id]
  }
}

resource "google_certificate_manager_certificate_map" "sites" {
  name       = "aipress-sites"
  labels     = local.labels
  depends_on = [google_project_service.frontdoor_apis]
}

resource "google_certificate_manager_certificate_map_entry" "platform_wildcard" {
  name         = "aipress-platform-wildcard"
  map          = google_certificate_manager_certificate_map.sites.name
  hostname     = "*.${var.platform_domain}"
  certificates = [google_certificate_manager_certificate.platform_wildcard.id]
  labels       = local.labels
}

resource "google_compute_target_https_proxy" "sites" {
  name            = "aipress-sites"
  url_map         = google_compute_url_map.sites.id
  certificate_map = "//certificatemanager.googleapis.com/${google_certificate_manager_certificate_map.sites.id}"
}

# Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "sites_http" {
  name = "aipress-sites-http"
  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
  depends_on = [google_project_service.frontdoor_apis]
}

resource "google_compute_target_http_proxy" "sites_http" {
  name    = "aipress-sites-http"
  url_map = google_compute_url_map.sites_http.id
}

# Both ports on both addresses: "https-ipv4", "https-ipv6", "http-ipv4", "http-ipv6".
locals {
  sites_ports = {
    https = { port = "443", target = google_compute_target_https_proxy.sites.id }
    http  = { port = "80", target = google_compute_target_http_proxy.sites_http.id }
  }
  sites_addresses = { ipv4 = google_compute_global_address.sites_ipv4.id, ipv6 = google_compute_global_address.sites_ipv6.id }
  sites_entries = {
    for pair in setproduct(keys(local.sites_ports), keys(local.sites_addresses)) :
    "${pair[0]}-${pair[1]}" => merge(local.sites_ports[pair[0]], { address = local.sites_addresses[pair[1]] })
  }
}

resource "google_compute_global_forwarding_rule" "sites" {
  for_each              = local.sites_entries
  name                  = "aipress-sites-${each.key}"
  ip_address            = each.value.address
  port_range            = each.value.port
  target                = each.value.target
  load_balancing_scheme = "EXTERNAL_MANAGED"
  labels                = local.labels
}

output "frontdoor_ipv4" {
  description = "The sites' load balancer address (AIPRESS_FRONT_DOOR_IPV4; customers' A records)."
  value       = google_compute_global_address.sites_ipv4.address
}

output "frontdoor_ipv6" {
  description = "The sites' load balancer IPv6 address (AIPRESS_FRONT_DOOR_IPV6; AAAA records)."
  value       = google_compute_global_address.sites_ipv6.address
}

output "frontdoor_dns_authorization" {
  description = "The CNAME that proves the platform's domain to Certificate Manager."
  value       = google_certificate_manager_dns_authorization.platform.dns_resource_record
}
