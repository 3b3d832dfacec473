"""The chatbot service: a LangGraph agent over the control-plane API, served on :8001."""
