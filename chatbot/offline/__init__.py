"""The offline planner: an English-to-tool-call model that runs with no network."""
