"""The embedded default's local services (MariaDB, PHP-FPM, nginx), run without systemd."""
