"""A fake Bitrix24 portal: a real HTTPS server implementing the documented subset the gateway uses.

``portal.FakePortal`` is the server (start/stop/restart on the same port, records every request);
``methods`` holds the REST methods with their required parameters and documented errors.
"""
