"""AIPress prompts package."""
