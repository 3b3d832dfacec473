"""Backups of sites: the restic wrapper, the retention policy and the scheduled job."""
