"""The embedded OAuth 2.1 authorization server that issues tokens for the MCP endpoint."""
