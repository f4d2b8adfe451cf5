"""smithers: durable workflows for AI agents, on an append-only event log."""
