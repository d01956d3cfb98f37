"""HTTP endpoints, one blueprint per API."""
