"""Who may call what: bearer tokens configured by hash (``tokens``) and the rules per RPC
(``policy``)."""
