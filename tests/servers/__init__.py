"""Real SIP servers for integration tests: kamailio (registrar + proxy) and baresip (far end)."""
