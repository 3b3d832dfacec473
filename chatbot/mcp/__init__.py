"""The agent's tools for other agents: an MCP server on the chat service, OAuth-protected."""
