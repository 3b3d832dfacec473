"""AIPress tools package."""
