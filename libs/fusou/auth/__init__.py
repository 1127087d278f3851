"""Who may call what: bearer tokens configured by hash (``tokens``). The rules per RPC that
apply them speak the wire, so they live in the API layer."""
