"""Importing a site made elsewhere: the upload on disk, its checks, what the import needs."""
