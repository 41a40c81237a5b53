"""API keys, tenants and who may see what."""
