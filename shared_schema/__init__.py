"""Factorion's shared vocabulary: items, entities, the world grid, game mapping and messages."""

SCHEMA_VERSION: int = 1
"""Version of the message schema (`shared_schema.messages`) that mod, bridge and server speak."""
