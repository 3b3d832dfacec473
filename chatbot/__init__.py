"""AIPress chatbot package."""
