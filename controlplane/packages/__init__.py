"""The platform catalogue of installable packages: archive checks, storage, versions."""
